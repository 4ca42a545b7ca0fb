//! Running the real `fmnist` binary on small synthetic IDX files: the crash and signal tests'
//! data, commands and the results two runs must share.
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use super::synthetic;

/// A data directory with the four IDX files of a small synthetic Fashion-MNIST.
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (stem, split) in [("train", synthetic(400, 1)), ("t10k", synthetic(100, 2))] {
        let n = split.labels.len();
        let images = actlab_train::data::idx::encode(&[n, 28, 28], &split.images);
        let labels = actlab_train::data::idx::encode(&[n], &split.labels);
        std::fs::write(dir.path().join(format!("{stem}-images-idx3-ubyte")), images).unwrap();
        std::fs::write(dir.path().join(format!("{stem}-labels-idx1-ubyte")), labels).unwrap();
    }
    dir
}

pub const EPOCHS: usize = 3;

pub fn train_command(data: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fmnist"));
    command
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args([
            "train",
            "--config",
            "configs/default.toml",
            "--quiet",
            "--no-verify",
        ])
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args([
            "--set",
            "model.channels=[4]",
            "--set",
            "model.hidden=[16]",
            "--set",
            "train.batch_size=50",
            "--set",
            "model.dropout=0.2",
            "--set",
            &format!("train.epochs={EPOCHS}"),
        ])
        .args(extra)
        .env_remove("FMNIST_ABORT_AT")
        .env_remove("FMNIST_SIGNAL_AT");
    command
}

/// Runs `command`: its exit status, and its stdout and stderr together.
pub fn status_and_text(mut command: Command) -> (ExitStatus, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    let text = String::from_utf8_lossy(&stdout).to_string() + &String::from_utf8_lossy(&stderr);
    (status, text)
}

/// Runs `command`: whether it succeeded, and its stdout and stderr together.
pub fn run(command: Command) -> (bool, String) {
    let (status, text) = status_and_text(command);
    (status.success(), text)
}

/// Waits until `dir` exists (a run's first checkpoint, say), then sends `signal` (`-INT`,
/// `-USR1`, ...) to process `pid`.
pub fn signal_once_there(dir: &Path, pid: u32, signal: &str) {
    let started = std::time::Instant::now();
    while !dir.is_dir() {
        assert!(
            started.elapsed().as_secs() < 120,
            "{} never appeared",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let kill = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
}

/// What must be identical between an interrupted-and-resumed run and an uninterrupted one:
/// every metric except timings (at full precision), and the final test results. (The weights
/// files themselves differ in bytes: burnpack records each parameter's random id.)
pub fn results(out: &Path) -> (Vec<String>, serde_json::Value) {
    let metrics = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let header: Vec<&str> = metrics.lines().next().unwrap().split(',').collect();
    let rows = metrics
        .lines()
        .map(|line| {
            line.split(',')
                .zip(&header)
                .filter(|(_, name)| !name.contains("second"))
                .map(|(cell, _)| cell)
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    let finals = serde_json::json!({
        "test_accuracy": summary["test_accuracy"],
        "test_loss": summary["test_loss"],
        "confusion": summary["confusion"],
        "per_class_accuracy": summary["per_class_accuracy"],
    });
    (rows, finals)
}

pub fn baseline(data: &Path) -> (tempfile::TempDir, (Vec<String>, serde_json::Value)) {
    let out = tempfile::tempdir().unwrap();
    let (ok, text) = run(train_command(data, out.path(), &[]));
    assert!(ok, "{text}");
    let expected = results(out.path());
    (out, expected)
}

/// Starts `command` with its output discarded.
pub fn spawn(mut command: Command) -> Child {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}
