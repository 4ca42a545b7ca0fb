//! Preemption, through the real `fmnist` binary on small synthetic IDX files: SIGTERM or
//! SIGINT stops `fmnist train` and `fmnist compare` after the current step with a verified
//! checkpoint there and exit status 75; `--resume` (or the same compare command) then ends with
//! the results of a run that was never stopped, bit for bit. A second signal ends the process at
//! once and loses nothing already checkpointed.
#![cfg(unix)]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use actlab_train::rng::SplitMix64;
use common::processes::{
    EPOCHS, baseline, data_dir, results, run, signal_once_there, status_and_text, train_command,
};

/// SIGTERM's number on Linux and the BSDs.
const SIGTERM: i32 = 15;

/// Steps per epoch of [`train_command`]'s runs: 400 images in batches of 50.
const STEPS: usize = 8;

/// Whether the stop was reported as an error (other lines may be: Mesa's complaints about
/// XDG_RUNTIME_DIR when the backends are listed).
fn is_error(text: &str) -> bool {
    text.lines()
        .any(|line| line.starts_with("error:") && line.contains("stopped"))
}

fn checkpoint_names(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One run signalled at several random steps (and once at an epoch's last step), resumed
/// after each stop: every stop leaves a verified checkpoint at that very step, and the end is
/// the uninterrupted run's results.
#[test]
fn signals_at_random_steps_stop_with_a_checkpoint_there_and_resume_bit_identical() {
    let data = data_dir();
    let (_whole, expected) = baseline(data.path());
    let out = tempfile::tempdir().unwrap();

    // Increasing positions (a resumed run starts after the previous one); printed, so a
    // failure can be replayed.
    let mut rng = SplitMix64::new(0x51_6e_a1);
    let mut positions: Vec<(usize, usize)> = (0..3)
        .map(|_| {
            let epoch = 1 + (rng.next_u64() as usize) % EPOCHS;
            (epoch, (rng.next_u64() as usize) % (STEPS - 1))
        })
        .collect();
    positions.push((1, STEPS - 1));
    positions.sort();
    positions.dedup();
    eprintln!("signalled after (epoch, step): {positions:?}");

    for &(epoch, step) in &positions {
        let mut signalled = train_command(data.path(), out.path(), &["--resume"]);
        signalled.env("FMNIST_SIGNAL_AT", format!("{step}@{epoch}"));
        let (status, text) = status_and_text(signalled);
        assert_eq!(status.code(), Some(75), "{epoch}/{step}: {text}");
        let expected_checkpoint = if step + 1 == STEPS {
            assert!(
                text.contains(&format!("after epoch {epoch}")),
                "{epoch}/{step}: {text}"
            );
            format!("epoch-{epoch:04}")
        } else {
            assert!(
                text.contains(&format!("at step {} of epoch {epoch}", step + 1)),
                "{epoch}/{step}: {text}"
            );
            format!("epoch-{epoch:04}-step-{:06}", step + 1)
        };
        assert!(
            text.contains("SIGTERM stopped the run") && text.contains("--resume"),
            "{text}"
        );
        assert!(!is_error(&text), "a stop is not an error: {text}");
        assert!(
            checkpoint_names(out.path()).contains(&expected_checkpoint),
            "{epoch}/{step}: {:?}",
            checkpoint_names(out.path())
        );
        assert!(!out.path().join("summary.json").exists());
        // fmnist verify sees the stop as an incomplete run that resumes there.
        let mut verify = Command::new(env!("CARGO_BIN_EXE_fmnist"));
        verify.args(["verify", out.path().to_str().unwrap()]);
        let (status, text) = status_and_text(verify);
        assert!(!status.success(), "{text}");
        let place = if step + 1 == STEPS {
            format!("resumes after epoch {epoch}")
        } else {
            format!("resumes at step {} of epoch {epoch}", step + 1)
        };
        assert!(
            text.contains("incomplete") && text.contains(&place),
            "{text}"
        );
    }
    let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
    assert!(ok, "{text}");
    assert_eq!(results(out.path()), expected);
}

/// A second signal while the first is handled ends the process at once, killed by the signal;
/// what was checkpointed before is still there, and resuming from it gives the same results.
#[test]
fn a_second_signal_ends_the_run_at_once_losing_nothing_checkpointed() {
    let data = data_dir();
    let (_whole, expected) = baseline(data.path());
    let out = tempfile::tempdir().unwrap();
    let mut signalled = train_command(data.path(), out.path(), &[]);
    signalled.env("FMNIST_SIGNAL_AT", "3@2x2");
    let (status, text) = status_and_text(signalled);
    assert_eq!(status.signal(), Some(SIGTERM), "{status}: {text}");
    assert_eq!(checkpoint_names(out.path()), ["epoch-0001"]);
    let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
    assert!(ok, "{text}");
    assert_eq!(results(out.path()), expected);
}

/// Ctrl-C from outside, at whatever step the run has reached: exit 75, a checkpoint, and the
/// same results after --resume.
#[test]
fn sigint_from_outside_stops_the_run_and_resume_finishes_it() {
    let data = data_dir();
    let (_whole, expected) = baseline(data.path());
    let out = tempfile::tempdir().unwrap();
    let mut command = train_command(data.path(), out.path(), &[]);
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first epoch's checkpoint is there, the run is in epoch 2 or later.
    signal_once_there(
        &out.path().join("checkpoints/epoch-0001"),
        child.id(),
        "-INT",
    );
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    if output.status.success() {
        // The run ended before the signal came: nothing to test this time.
        eprintln!("the run finished before SIGINT arrived");
        return;
    }
    assert_eq!(output.status.code(), Some(75), "{text}");
    assert!(text.contains("SIGINT stopped the run"), "{text}");
    let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
    assert!(ok, "{text}");
    assert_eq!(results(out.path()), expected);
}

/// `fmnist compare` stops the same way, and the same command again finishes the study with
/// the results of one never stopped.
#[test]
fn a_stopped_compare_continues_with_the_same_command() {
    let data = data_dir();
    let compare = |out: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fmnist"));
        command
            .args(["compare", "--quiet", "--config", "compare"])
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--out", out.to_str().unwrap()])
            .args(["--set", "data.verify=false", "--set", "model.hidden=[16]"])
            .args(["--set", "train.batch_size=50"])
            .args(["--set", "train.epochs=2", "--set", "compare.seeds=[1]"])
            .args(["--set", r#"compare.activations=["relu","prelu"]"#])
            .env_remove("FMNIST_SIGNAL_AT");
        command
    };
    let whole = tempfile::tempdir().unwrap();
    let (ok, text) = run(compare(whole.path()));
    assert!(ok, "{text}");

    let parts = tempfile::tempdir().unwrap();
    let mut signalled = compare(parts.path());
    // The first run (relu) stops in its second epoch.
    signalled.env("FMNIST_SIGNAL_AT", "2@2");
    let (status, text) = status_and_text(signalled);
    assert_eq!(status.code(), Some(75), "{text}");
    assert!(
        text.contains("run the same fmnist compare command again") && !is_error(&text),
        "{text}"
    );
    assert!(!parts.path().join("report.md").exists());
    let (ok, text) = run(compare(parts.path()));
    assert!(ok, "{text}");
    let names = |root: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("summary.json").is_file())
            .collect();
        names.sort();
        names
    };
    let runs = names(parts.path());
    assert_eq!(runs.len(), 2, "{runs:?}");
    for (resumed, uninterrupted) in runs.iter().zip(names(whole.path())) {
        assert_eq!(results(resumed), results(&uninterrupted), "{resumed:?}");
    }
}
