//! Helpers shared by the integration tests: synthetic data and small configs.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

use actlab_train::data::dataset::Splits;
use actlab_train::data::{Located, Split};
use actlab_train::{Backend, RunConfig, TrainOptions};

pub mod processes;

/// Small synthetic data: each class lights up its own band of rows, plus noise.
pub fn synthetic(n: usize, seed: u64) -> Split {
    let mut rng = actlab_train::rng::SplitMix64::new(seed);
    let mut images = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 10) as u8;
        for row in 0..28 {
            for _ in 0..28 {
                let band = row / 3 == label as usize;
                let noise = (rng.next_u64() % 64) as u8;
                images.push(if band { 180 + noise } else { noise });
            }
        }
        labels.push(label);
    }
    Split { images, labels }
}

pub fn synthetic_splits() -> Splits {
    Splits {
        located: Located {
            dir: PathBuf::from("synthetic"),
            how: "test".into(),
        },
        train: synthetic(300, 1),
        validation: Split::default(),
        test: synthetic(100, 2),
    }
}

pub fn small_config(extra: &[&str]) -> RunConfig {
    let mut sets = vec![
        "model.channels=[4]".to_string(),
        "model.hidden=[16]".to_string(),
        "train.batch_size=32".to_string(),
        "train.epochs=2".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    RunConfig::parse("[model]\nkind = \"cnn\"", "test", &sets).unwrap()
}

pub fn options(dir: &Path, backend: Backend, resume: bool) -> TrainOptions {
    TrainOptions {
        backend,
        out_dir: dir.into(),
        resume,
        quiet: true,
        stop_after: None,
        diagnostics: false,
        stop: Default::default(),
    }
}

/// `--set`s that make each run of a compare study tiny (an 8-unit MLP, 300 training and 100
/// test images of the real data, one epoch): for tests of the machinery around the runs.
pub const TINY_RUNS: [&str; 8] = [
    "--set",
    "model.hidden=[8]",
    "--set",
    "data.train_limit=300",
    "--set",
    "data.test_limit=100",
    "--set",
    "train.epochs=1",
];

/// Runs the `fmnist` binary from the repository root (so `configs/...` paths work): whether it
/// succeeded, and its stdout and stderr together.
pub fn fmnist(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fmnist"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Whether a failed `fmnist` call failed only for want of the real data, outside CI (where the
/// test is then skipped; CI must have the data).
pub fn no_data_here(ok: bool, text: &str) -> bool {
    let missing = !ok && std::env::var_os("CI").is_none() && text.contains("Fashion-MNIST");
    if missing {
        eprintln!("skipped: no Fashion-MNIST here ({text})");
    }
    missing
}
