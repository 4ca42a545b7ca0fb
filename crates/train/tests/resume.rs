//! `--resume` equivalence, in a process of its own: Burn's device RNG (dropout masks) is shared
//! by every training in a process, so runs in parallel test threads would draw each other's
//! numbers; a single fmnist process trains one run at a time.
mod common;

use std::path::Path;

use actlab_train::{Backend, TrainOptions, train_on};
use common::{options, small_config, synthetic_splits};

/// The rows of metrics.csv without the timing columns, which differ between any two runs.
fn metrics_without_timings(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].contains("second"))
        .collect();
    text.lines()
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            keep.iter().map(|&i| cells[i]).collect::<Vec<_>>().join(",")
        })
        .collect()
}

/// An interrupted run resumed with `--resume` gives bit-identical results to an uninterrupted
/// one: same weights, Adam moments and step counts, data order, dropout masks, schedule.
#[test]
fn resumed_run_equals_an_uninterrupted_one() {
    let data = synthetic_splits();
    let config = small_config(&["model.dropout=0.3", "train.schedule=cosine"]);
    let with_diagnostics = |dir: &Path, resume: bool| TrainOptions {
        diagnostics: true,
        ..options(dir, Backend::Flex, resume)
    };
    let whole = tempfile::tempdir().unwrap();
    let expected = train_on(&config, &data, &with_diagnostics(whole.path(), false)).unwrap();
    assert!(expected.complete);

    let parts = tempfile::tempdir().unwrap();
    let mut interrupted = with_diagnostics(parts.path(), false);
    interrupted.stop_after = Some(1);
    let partial = train_on(&config, &data, &interrupted).unwrap();
    assert!(!partial.complete && partial.epochs == 1);
    assert!(
        !parts.path().join("summary.json").exists(),
        "a stopped run is not finished"
    );
    let epoch_one = metrics_without_timings(parts.path());
    assert_eq!(epoch_one.len(), 1 + 2, "{epoch_one:?}");

    let resumed = train_on(&config, &data, &with_diagnostics(parts.path(), true)).unwrap();
    assert!(resumed.complete);
    let diagnostics = |dir: &Path| std::fs::read_to_string(dir.join("diagnostics.csv")).unwrap();
    assert_eq!(diagnostics(parts.path()), diagnostics(whole.path()));
    // conv1, fc1, output per epoch.
    assert_eq!(diagnostics(whole.path()).lines().count(), 1 + 2 * 3);
    assert_eq!(
        metrics_without_timings(parts.path()),
        metrics_without_timings(whole.path())
    );
    assert_eq!(resumed.test_loss, expected.test_loss);
    assert_eq!(resumed.test_accuracy, expected.test_accuracy);
    assert_eq!(resumed.confusion, expected.confusion);
}
