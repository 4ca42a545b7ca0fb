//! What happens when things go wrong, through the real `fmnist` binary on small synthetic IDX
//! files: a process killed at every step of a checkpoint write (and at random moments) resumes
//! to the same results as an uninterrupted run; damaged checkpoint and weight files are refused
//! with a message, never a panic; a second writer on the same run directory is refused.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::processes::{baseline, data_dir, results, run, spawn, train_command};

/// The process aborts at each step of writing a checkpoint (and of the final files); resuming
/// always ends with the uninterrupted run's results, bit for bit.
#[test]
fn a_crash_at_any_step_resumes_to_identical_results() {
    let data = data_dir();
    let (_whole, expected) = baseline(data.path());
    let steps = [
        "model@2",
        "optimizer@2",
        "state@2",
        "manifest@2",
        "switch@2",
        "cleanup@3",
        "final-model@3",
        "final-summary@3",
    ];
    for step in steps {
        let out = tempfile::tempdir().unwrap();
        let mut crashing = train_command(data.path(), out.path(), &[]);
        crashing.env("FMNIST_ABORT_AT", step);
        let (ok, text) = run(crashing);
        assert!(!ok && text.contains("aborting at"), "{step}: {text}");
        if !step.starts_with("final-summary") {
            assert!(
                !out.path().join("summary.json").exists(),
                "{step}: a summary without its run"
            );
        }
        let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
        assert!(ok, "{step}: resume failed: {text}");
        assert_eq!(results(out.path()), expected, "{step}");
    }
}

/// SIGKILL at random moments, then resume, several times over one run: the same results.
#[test]
fn random_kills_then_resume_give_the_same_results() {
    let data = data_dir();
    let (_whole, expected) = baseline(data.path());
    let out = tempfile::tempdir().unwrap();
    let mut state = 0x5eed_u64;
    for round in 0..6 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(200 + (state >> 33) % 2500);
        let mut child = spawn(train_command(data.path(), out.path(), &["--resume"]));
        let started = Instant::now();
        while started.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed after {delay:?} ({status})");
    }
    let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
    assert!(ok, "{text}");
    assert_eq!(results(out.path()), expected);
}

/// The checkpoints of a run stopped after epoch 2, newest first.
fn checkpoints(out: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// A truncated or zeroed checkpoint file is never handed to Burn: the previous checkpoint is
/// used (same results), and with none left the refusal names the damaged file.
#[test]
fn damaged_checkpoints_are_refused_or_skipped_never_loaded() {
    let data = data_dir();
    let (_whole, expected) = baseline(data.path());
    for (file, damage) in [
        ("model.bpk", "truncate"),
        ("optimizer.bpk", "zero"),
        ("state.json", "truncate"),
        ("manifest.json", "zero"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let (ok, text) = run(train_command(
            data.path(),
            out.path(),
            &["--stop-after", "2"],
        ));
        assert!(ok, "{text}");
        let kept = checkpoints(out.path());
        assert_eq!(kept.len(), 2, "the last two are kept: {kept:?}");
        let damage_in = |dir: &Path| {
            let path = dir.join(file);
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            match damage {
                "truncate" => std::fs::write(&path, &std::fs::read(&path).unwrap()[..len / 2]),
                _ => std::fs::write(&path, vec![0u8; len]),
            }
            .unwrap();
        };
        damage_in(&kept[0]);
        let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
        assert!(ok && text.contains("warning"), "{file}: {text}");
        assert!(!text.contains("panicked"), "{file}: {text}");
        assert_eq!(results(out.path()), expected, "{file}");

        // Both damaged: a clear refusal naming the file, no panic, exit code 1.
        let out = tempfile::tempdir().unwrap();
        run(train_command(
            data.path(),
            out.path(),
            &["--stop-after", "2"],
        ));
        checkpoints(out.path())
            .iter()
            .for_each(|dir| damage_in(dir));
        let (ok, text) = run(train_command(data.path(), out.path(), &["--resume"]));
        assert!(!ok && !text.contains("panicked"), "{file}: {text}");
        assert!(
            text.contains(file) && text.contains("to start over"),
            "{file}: {text}"
        );
    }
}

/// Damaged final weights: eval refuses them with a message instead of loading them.
#[test]
fn damaged_final_weights_are_refused() {
    let data = data_dir();
    let (out, _) = baseline(data.path());
    let model = out.path().join("model.bpk");
    let bytes = std::fs::read(&model).unwrap();
    for damaged in [bytes[..bytes.len() / 3].to_vec(), vec![0u8; bytes.len()]] {
        std::fs::write(&model, &damaged).unwrap();
        let mut eval = Command::new(env!("CARGO_BIN_EXE_fmnist"));
        eval.args(["eval", "--model", out.path().to_str().unwrap()])
            .args(["--data-dir", data.path().to_str().unwrap()]);
        let (ok, text) = run(eval);
        assert!(!ok && !text.contains("panicked"), "{text}");
        assert!(text.contains("model.bpk is damaged"), "{text}");
    }
}

/// Every file of a finished run, damaged as a full disk, a bad copy or a stray editor leaves it
/// (cut short, zeroed, replaced by other bytes), gives `eval`, `predict` and `report` a clear
/// error that names the file, a non-zero exit, and never a panic; the other files are left as
/// they were. A run of a newer format is refused by name.
#[test]
fn every_damaged_run_file_is_a_clear_error() {
    let data = data_dir();
    let (out, _) = baseline(data.path());
    let run_dir = out.path();
    let png = run_dir.join("image.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n").unwrap();
    let fmnist = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fmnist"));
        command
            .args(args)
            .args(["--data-dir", data.path().to_str().unwrap()]);
        command
    };
    let eval = || fmnist(&["eval", "--model", run_dir.to_str().unwrap()]);
    let report_dir = run_dir.join("report");
    let report = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fmnist"));
        command.args(["report", run_dir.to_str().unwrap()]);
        command.args(["--out", report_dir.to_str().unwrap()]);
        command
    };
    let command = |name: &str| if name == "eval" { eval() } else { report() };
    let damages = |bytes: &[u8]| {
        vec![
            ("cut short", bytes[..bytes.len() / 2].to_vec()),
            ("zeroed", vec![0u8; bytes.len()]),
            ("other bytes", b"\xff\xfe garbage \x00\x01 [[[ {{{".to_vec()),
            ("empty", Vec::new()),
        ]
    };
    for (file, commands) in [
        ("config.toml", &["eval", "report"][..]),
        ("summary.json", &["eval", "report"]),
        ("metrics.csv", &["report"]),
        ("model.bpk", &["eval", "report"]),
    ] {
        let path = run_dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let others: Vec<(PathBuf, Vec<u8>)> =
            ["config.toml", "summary.json", "metrics.csv", "model.bpk"]
                .iter()
                .filter(|other| **other != file)
                .map(|other| {
                    (
                        run_dir.join(other),
                        std::fs::read(run_dir.join(other)).unwrap(),
                    )
                })
                .collect();
        for (damage, bytes) in damages(&original) {
            std::fs::write(&path, &bytes).unwrap();
            for name in commands {
                let (ok, text) = run(command(name));
                let case = format!("{name} with {file} {damage}");
                assert!(!ok, "{case}: accepted\n{text}");
                assert!(!text.contains("panicked"), "{case}: {text}");
                assert!(
                    text.contains("error: ") && text.contains(file),
                    "{case}: {text}"
                );
            }
            for (other, bytes) in &others {
                assert_eq!(
                    &std::fs::read(other).unwrap(),
                    bytes,
                    "{file} {damage}: {other:?} changed"
                );
            }
        }
        std::fs::write(&path, &original).unwrap();
    }

    // A PNG that is not one, for predict.
    let mut predict = Command::new(env!("CARGO_BIN_EXE_fmnist"));
    predict.args([
        "predict",
        "--model",
        run_dir.to_str().unwrap(),
        png.to_str().unwrap(),
    ]);
    let (ok, text) = run(predict);
    assert!(!ok && !text.contains("panicked"), "{text}");
    assert!(text.contains("image.png is not a readable PNG"), "{text}");

    // A run written by a newer version: refused by name, not misread.
    let summary_path = run_dir.join("summary.json");
    let original = std::fs::read_to_string(&summary_path).unwrap();
    let newer = original.replacen("\"run_format\": 1", "\"run_format\": 99", 1);
    assert_ne!(newer, original, "summary.json records run_format");
    std::fs::write(&summary_path, newer).unwrap();
    let (ok, text) = run(eval());
    assert!(
        !ok && text.contains("newer fmnist (run format 99"),
        "{text}"
    );
    std::fs::write(&summary_path, original).unwrap();
    let (ok, text) = run(eval());
    assert!(ok, "the restored run evaluates: {text}");

    // A run published without its weights (a study's committed runs keep one seed's models):
    // the report stands on its numbers, while eval names the missing file.
    let model = run_dir.join("model.bpk");
    let weights = std::fs::read(&model).unwrap();
    std::fs::remove_file(&model).unwrap();
    let (ok, text) = run(report());
    assert!(ok, "a report without the weights: {text}");
    let (ok, text) = run(eval());
    assert!(!ok && text.contains("model.bpk is missing"), "{text}");
    std::fs::write(&model, weights).unwrap();
}

/// Two trainers on one directory: the second is refused with the first one's PID, and the
/// first finishes undisturbed.
#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let data = data_dir();
    let out = tempfile::tempdir().unwrap();
    let mut first = train_command(data.path(), out.path(), &[]);
    first.args(["--set", "train.epochs=200"]);
    let mut first = spawn(first);
    let lock = out.path().join("run.lock");
    let started = Instant::now();
    // Well into its run: a few epochs checkpointed.
    while !out.path().join("checkpoints/epoch-0005").is_dir()
        || std::fs::read_to_string(&lock).map_or(true, |pid| pid.is_empty())
    {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ok, text) = run(train_command(data.path(), out.path(), &[]));
    let _ = first.kill();
    first.wait().unwrap();
    assert!(!ok, "{text}");
    assert!(
        text.contains("in use by another fmnist process")
            && text.contains(&format!("PID {}", first.id())),
        "{text}"
    );
    // The lock dies with its holder, even after SIGKILL.
    let (ok, text) = run(train_command(data.path(), out.path(), &[]));
    assert!(ok, "{text}");
    // A fresh run keeps none of the killed run's later epochs beside its own.
    let kept: Vec<String> = checkpoints(out.path())
        .iter()
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(kept, ["epoch-0003", "epoch-0002"]);
}

/// Overlapping shards: a run another process is training (its directory locked) is skipped,
/// not failed, not written; the sweep trains the others and a later pass finishes it.
#[test]
fn a_sweep_skips_a_run_that_another_process_is_training() {
    use actlab_train::run::RunDir;
    use actlab_train::sweep::{CompareConfig, CompareOptions, RunStatus, Shard};
    let data = common::synthetic_splits();
    let config = CompareConfig::parse(
        "[compare]\nactivations = [\"relu\", \"tanh\"]\nseeds = [1]\n[model]\nchannels = [4]\n\
         hidden = [16]\n[train]\nepochs = 1\nbatch_size = 32",
        "sweep.toml",
        &[],
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let options = CompareOptions {
        backend: actlab_train::Backend::Flex,
        out_dir: root.path().into(),
        shard: Shard::default(),
        quiet: true,
        stop: Default::default(),
    };
    let busy_dir = root.path().join(&config.plan()[0].dir_name);
    let held = RunDir::create(&busy_dir).unwrap().lock().unwrap();
    let statuses = actlab_train::sweep::run_sweep_on(&config, &data, &options).unwrap();
    let statuses: Vec<&RunStatus> = statuses.iter().map(|(_, status)| status).collect();
    assert_eq!(statuses, [&RunStatus::InUse, &RunStatus::Trained]);
    assert!(!busy_dir.join("summary.json").exists());
    drop(held);
    let statuses = actlab_train::sweep::run_sweep_on(&config, &data, &options).unwrap();
    let statuses: Vec<&RunStatus> = statuses.iter().map(|(_, status)| status).collect();
    assert_eq!(statuses, [&RunStatus::Trained, &RunStatus::Skipped]);
}

/// `fmnist verify` on a study: one run finished and whole, one stopped after an epoch, one
/// whose weights were changed after it finished, one whose checkpoints are all damaged, and
/// one the study's config plans but nobody trained. Each is named with its state, the exit
/// code is non-zero, and a whole run alone passes.
#[test]
fn verify_lists_intact_incomplete_damaged_and_missing_runs() {
    let data = data_dir();
    let study = tempfile::tempdir().unwrap();
    let train = |name: &str, extra: &[&str]| {
        let (ok, text) = run(train_command(data.path(), &study.path().join(name), extra));
        assert!(ok, "{name}: {text}");
    };
    train("relu-seed1", &[]);
    train("relu-seed2", &["--stop-after", "1"]);
    train("gelu-seed1", &[]);
    train("gelu-seed2", &["--stop-after", "2"]);
    let model = study.path().join("gelu-seed1/model.bpk");
    let mut bytes = std::fs::read(&model).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(&model, bytes).unwrap();
    for dir in checkpoints(&study.path().join("gelu-seed2")) {
        std::fs::write(dir.join("state.json"), b"{").unwrap();
    }
    let config = study.path().join("study.toml");
    std::fs::write(
        &config,
        "[compare]\nactivations = [\"relu\", \"gelu\", \"tanh\"]\nseeds = [1, 2]\n",
    )
    .unwrap();

    let verify = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fmnist"));
        command.arg("verify").args(args);
        run(command)
    };
    let study_arg = study.path().to_str().unwrap();
    let (ok, text) = verify(&[study_arg, "--config", config.to_str().unwrap()]);
    assert!(!ok && !text.contains("panicked"), "{text}");
    let line = |name: &str| {
        text.lines()
            .find(|line| line.contains(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"))
            .to_string()
    };
    assert!(line("relu-seed1").starts_with("intact "), "{text}");
    assert!(
        line("relu-seed2").starts_with("incomplete ")
            && line("relu-seed2").contains("resumes after epoch 1"),
        "{text}"
    );
    assert!(
        line("gelu-seed1").starts_with("damaged ") && line("gelu-seed1").contains("model.bpk"),
        "{text}"
    );
    assert!(
        line("gelu-seed2").starts_with("damaged ") && line("gelu-seed2").contains("state.json"),
        "{text}"
    );
    for missing in ["tanh-seed1", "tanh-seed2"] {
        assert!(line(missing).starts_with("missing "), "{text}");
    }
    assert!(text.contains("5 of 6 run(s) are not intact"), "{text}");

    let (ok, text) = verify(&[study.path().join("relu-seed1").to_str().unwrap()]);
    assert!(ok && text.contains("all 1 run(s) intact"), "{text}");
    let (ok, text) = verify(&["/nonexistent/study"]);
    assert!(!ok && text.contains("not a directory"), "{text}");
}
