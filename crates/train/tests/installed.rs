//! `fmnist` as `cargo install` leaves it: the binary alone in a fresh root's `bin/`, run from
//! an empty directory with an empty HOME, far from the checkout. The shipped configs must
//! come from inside the binary.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::no_data_here;

struct Installed {
    _root: tempfile::TempDir,
    binary: PathBuf,
    work: tempfile::TempDir,
    home: tempfile::TempDir,
}

/// Copies the built binary into `ROOT/bin/fmnist`, as `cargo install --root ROOT` does.
fn install() -> Installed {
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let binary = bin.join("fmnist");
    std::fs::copy(env!("CARGO_BIN_EXE_fmnist"), &binary).unwrap();
    // Runnable before it is handed out (see retry_while_busy), also to the SLURM script.
    let version = retry_while_busy(|| Command::new(&binary).arg("--version").output());
    assert!(version.status.success());
    Installed {
        _root: root,
        binary,
        work: tempfile::tempdir().unwrap(),
        home: tempfile::tempdir().unwrap(),
    }
}

impl Installed {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = retry_while_busy(|| {
            Command::new(&self.binary)
                .args(args)
                .current_dir(self.work.path())
                .env("HOME", self.home.path())
                .env_remove("FASHION_MNIST_DIR")
                .output()
        });
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.work.path().join(relative)
    }
}

/// Runs `spawn` again while it fails with "text file busy": a test thread that forks while
/// another test copies a binary hands the child the copy's open write handle until the child
/// execs, and executing the copy meanwhile fails (a known hazard of copy-then-exec in
/// multi-threaded test binaries).
fn retry_while_busy(
    mut spawn: impl FnMut() -> std::io::Result<std::process::Output>,
) -> std::process::Output {
    for _ in 0..100 {
        match spawn() {
            Err(error) if error.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => return result.unwrap(),
        }
    }
    panic!("the installed binary stayed busy for 5 s");
}

fn shipped_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("configs/{name}.toml"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn installed_binary_lists_and_writes_out_its_configs() {
    let fmnist = install();
    let (ok, list, err) = fmnist.run(&["configs"]);
    assert!(ok, "{err}");
    for name in ["default", "prelu", "aprelu", "resnet", "compare_cnn"] {
        assert!(
            list.lines().any(|line| line.starts_with(name)),
            "{name} missing:\n{list}"
        );
    }
    assert!(list.contains("compare_cnn        compare"), "{list}");

    let (ok, text, err) = fmnist.run(&["configs", "show", "prelu"]);
    assert!(ok, "{err}");
    assert_eq!(text, shipped_file("prelu"));

    let (ok, _, err) = fmnist.run(&["configs", "show", "prelu7"]);
    assert!(
        !ok && err.contains("prelu7") && err.contains("default, prelu"),
        "{err}"
    );

    // --config naming neither a file nor a shipped config lists the shipped names.
    let (ok, _, err) = fmnist.run(&["train", "--config", "configs/default.toml"]);
    assert!(
        !ok && err.contains("configs/default.toml") && err.contains("shipped: default, prelu"),
        "{err}"
    );
    // A shipped config's errors name it.
    let (ok, _, err) = fmnist.run(&["train", "--config", "resnet", "--set", "train.lr=-1"]);
    assert!(
        !ok && err.contains("configs/resnet.toml (shipped with fmnist)")
            && err.contains("train.lr"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn installed_binary_trains_and_compares_from_any_directory() {
    let fmnist = install();
    let data = [
        "--set",
        "train.batch_size=32",
        "--set",
        "data.train_limit=1000",
        "--set",
        "data.test_limit=200",
        "--set",
        "train.epochs=1",
        "--quiet",
    ];
    let small = [
        &data[..],
        &["--set", "model.channels=[4]", "--set", "model.hidden=[16]"],
    ]
    .concat();
    // No --config: the reference CNN, from inside the binary. --json: one JSON object on
    // stdout, nothing else.
    let (ok, out, err) = fmnist.run(&[&["train", "--json"][..], &small].concat());
    if no_data_here(ok, &err) {
        return;
    }
    assert!(ok, "{out}{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(summary["run_dir"], "runs/relu");
    assert_eq!(summary["activation"], "relu");
    assert_eq!(summary["complete"], true);
    let accuracy = summary["test_accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.3, "{out}");
    let (ok, out, err) = fmnist.run(&["eval", "--model", "runs/relu", "--json"]);
    assert!(ok, "{err}");
    let eval: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(eval["images"], 10_000);
    assert_eq!(eval["classes"][9], "Ankle boot");
    assert_eq!(eval["per_class_accuracy"].as_array().unwrap().len(), 10);
    let counted: u64 = eval["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(counted, 10_000);
    let config = std::fs::read_to_string(fmnist.path("runs/relu/config.toml")).unwrap();
    assert!(config.contains("kind = \"cnn\""), "{config}");
    assert!(fmnist.path("runs/relu/summary.json").is_file());

    // A config written out, edited, and used as a file.
    let (ok, text, _) = fmnist.run(&["configs", "show", "prelu"]);
    assert!(ok);
    std::fs::write(fmnist.path("my.toml"), text).unwrap();
    let mine = [
        &["train", "--config", "my.toml", "--out", "mine"][..],
        &small,
    ]
    .concat();
    let (ok, out, err) = fmnist.run(&mine);
    assert!(ok, "{out}{err}");
    let summary = std::fs::read_to_string(fmnist.path("mine/summary.json")).unwrap();
    assert!(summary.contains("\"activation\": \"prelu\""), "{summary}");

    // fmnist compare's default config (an MLP study), cut to one small run.
    let compare = [
        &[
            "compare",
            "--set",
            "compare.activations=[\"relu\"]",
            "--set",
            "compare.seeds=[1]",
            "--set",
            "model.hidden=[16]",
        ][..],
        &data,
    ]
    .concat();
    let (ok, out, err) = fmnist.run(&compare);
    assert!(ok, "{out}{err}");
    assert!(fmnist.path("runs/compare/report.md").is_file(), "{out}");
}

/// scripts/slurm_compare.sh as SLURM would run it: each array task's command line with the
/// array variables set (two shards, indices starting at 1 as `--array=1-2` gives), then the
/// merge; and `submit` hands sbatch the array and the dependent merge job (a stand-in sbatch
/// on PATH records what it was given).
#[test]
fn the_slurm_script_runs_shards_and_merges_them() {
    let fmnist = install();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm_compare.sh");
    let study = fmnist.path("study");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .current_dir(fmnist.work.path())
            .env("HOME", fmnist.home.path())
            .env("FMNIST", &fmnist.binary)
            .env("CONFIG", "compare")
            .env("OUT", &study)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let small = [
        &[
            "--set",
            "compare.activations=[\"relu\", \"tanh\"]",
            "--set",
            "compare.seeds=[1]",
        ][..],
        &common::TINY_RUNS,
    ]
    .concat();
    for task in ["1", "2"] {
        let (ok, text) = run(
            &small,
            &[
                ("SLURM_ARRAY_TASK_ID", task),
                ("SLURM_ARRAY_TASK_COUNT", "2"),
                ("SLURM_ARRAY_TASK_MIN", "1"),
            ],
        );
        if no_data_here(ok, &text) {
            return;
        }
        assert!(ok, "task {task}: {text}");
    }
    // Each shard trained its own run: both are there before the merge.
    for run_dir in ["relu-seed1", "tanh-seed1"] {
        assert!(
            study.join(run_dir).join("summary.json").is_file(),
            "{run_dir}"
        );
    }
    let (ok, text) = run(&["merge"], &[]);
    assert!(ok, "{text}");
    let report = std::fs::read_to_string(study.join("report.md")).unwrap();
    assert!(
        report.contains("2 runs: 2 activations × 1 seed(s)."),
        "{report}"
    );

    // Outside an array job the shard mode says so instead of running shard 0 of 1.
    let (ok, text) = run(&[], &[]);
    assert!(!ok && text.contains("not in a SLURM array job"), "{text}");

    // `submit 4`: the array, then the merge after it.
    let bin = fmnist.home.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = fmnist.home.path().join("sbatch.log");
    std::fs::write(
        bin.join("sbatch"),
        format!("#!/bin/sh\necho \"$@\" >> {}\necho 4242\n", log.display()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("sbatch"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (ok, text) = run(
        &["submit", "4", "--set", "train.epochs=3"],
        &[("PATH", &path)],
    );
    assert!(ok, "{text}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[0].starts_with("--parsable --array=0-3 ")
            && calls[0].ends_with("slurm_compare.sh --set train.epochs=3"),
        "{calls:?}"
    );
    assert!(
        calls[1].starts_with("--dependency=afterany:4242 ") && calls[1].ends_with(" merge"),
        "{calls:?}"
    );
}

/// A stand-in for a SLURM command on PATH: it appends its arguments to `log`.
fn fake_slurm_command(bin: &Path, name: &str, log: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin).unwrap();
    let path = bin.join(name);
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A shard stopped by a signal (fmnist's own SIGTERM, or the USR1 SLURM sends the script
/// before the time limit) exits 75 and requeues its task; run again, it finishes the study.
#[cfg(unix)]
#[test]
fn the_slurm_script_requeues_a_stopped_shard() {
    let fmnist = install();
    let data = common::processes::data_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm_compare.sh");
    let bin = fmnist.home.path().join("bin");
    let log = fmnist.home.path().join("scontrol.log");
    fake_slurm_command(&bin, "scontrol", &log);
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shard = |study: &Path, epochs: &str| {
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .args(["--data-dir", data.path().to_str().unwrap()])
            .args(["--set", "data.verify=false", "--set", "model.hidden=[8]"])
            .args([
                "--set",
                "compare.activations=[\"relu\"]",
                "--set",
                "compare.seeds=[1]",
            ])
            .args(["--set", "train.batch_size=50", "--set", epochs])
            .current_dir(fmnist.work.path())
            .env("HOME", fmnist.home.path())
            .env("PATH", &path)
            .env("FMNIST", &fmnist.binary)
            .env("CONFIG", "compare")
            .env("OUT", study)
            .env("SLURM_JOB_ID", "777")
            .env("SLURM_ARRAY_TASK_ID", "0")
            .env("SLURM_ARRAY_TASK_COUNT", "1")
            .env_remove("FMNIST_SIGNAL_AT");
        command
    };
    let requeues = || std::fs::read_to_string(&log).unwrap_or_default();

    // fmnist signalled in its second epoch: exit 75, one requeue of this job.
    let study = fmnist.path("study");
    let mut signalled = shard(&study, "train.epochs=2");
    signalled.env("FMNIST_SIGNAL_AT", "3@2");
    let out = signalled.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{text}");
    assert_eq!(requeues(), "requeue 777\n", "{text}");
    // The requeued task continues there and finishes.
    let out = shard(&study, "train.epochs=2").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(study.join("relu-seed1/summary.json").is_file());
    assert_eq!(requeues(), "requeue 777\n");

    // USR1 to the script (SLURM's warning before the time limit) stops fmnist the same way.
    let study = fmnist.path("study-usr1");
    let child = shard(&study, "train.epochs=200")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    common::processes::signal_once_there(
        &study.join("relu-seed1/checkpoints/epoch-0001"),
        child.id(),
        "-USR1",
    );
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{text}");
    assert!(text.contains("SIGTERM stopped the run"), "{text}");
    assert_eq!(requeues(), "requeue 777\nrequeue 777\n", "{text}");
}
