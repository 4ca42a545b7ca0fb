//! Training end to end: real data, NaN stop, the wgpu path, sweeps, the CLI.
//! (Resume equivalence is in `resume.rs`, a process of its own.)
mod common;

use actlab_train::{Backend, RunConfig, TrainOptions, train_on};
use common::{fmnist, options, small_config, synthetic_splits};

#[test]
fn resume_with_a_different_config_is_refused() {
    let data = synthetic_splits();
    let dir = tempfile::tempdir().unwrap();
    let mut one = small_config(&[]);
    one.train.epochs = 1;
    train_on(&one, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    let other = small_config(&["train.lr=0.01"]);
    let error = train_on(&other, &data, &options(dir.path(), Backend::Flex, true)).unwrap_err();
    assert!(
        matches!(
            error,
            actlab_train::run::TrainError::Checkpoint(
                actlab_train::run::CheckpointError::OtherConfig { .. }
            )
        ),
        "{error:?}"
    );
    let error = error.to_string();
    assert!(error.contains("different config"), "{}", error);
}

#[test]
fn run_directory_holds_config_metrics_summary_and_weights() {
    let data = synthetic_splits();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(&["model.activation=gelu"]);
    let summary = train_on(&config, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    assert!(
        summary.test_accuracy > 0.5,
        "synthetic bands are easy: {}",
        summary.test_accuracy
    );
    let resolved = RunConfig::load(&dir.path().join("config.toml"), &[]).unwrap();
    assert_eq!(resolved, config);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    for key in [
        "activation",
        "backend",
        "epochs",
        "test_accuracy",
        "test_loss",
        "train_images_per_second",
        "seconds",
        "params",
    ] {
        assert!(json.get(key).is_some(), "summary.json lacks {key}");
    }
    assert_eq!(json["activation"], "gelu");
    let metrics = std::fs::read_to_string(dir.path().join("metrics.csv")).unwrap();
    assert!(metrics.starts_with("epoch,split,loss,accuracy"));
    assert!(dir.path().join("model.bpk").is_file());
    let (_, model) = actlab_train::run::load_trained(dir.path(), Backend::Flex).unwrap();
    let again = actlab_train::run::evaluate_split(&model, &data.test, Backend::Flex);
    assert!((again.accuracy - summary.test_accuracy).abs() < 1e-12);
}

#[test]
fn diverging_loss_stops_with_a_clear_message() {
    let data = synthetic_splits();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config(&[
        "model.activation=identity",
        "train.optimizer=\"sgd\"",
        "train.lr=1e12",
    ]);
    let error = train_on(&config, &data, &options(dir.path(), Backend::Flex, false))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("loss became") && error.contains("train.lr"),
        "{}",
        error
    );
}

fn real_data_config(sets: &[&str]) -> Option<RunConfig> {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let config = RunConfig::parse("", "test", &sets).unwrap();
    match actlab_train::run::load_data(&config) {
        Ok(_) => Some(config),
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("CI must have the real data (apt-get install dataset-fashion-mnist): {error}")
        }
        Err(error) => {
            eprintln!("skipped: no Fashion-MNIST here ({error})");
            None
        }
    }
}

/// Trains `config` on flex into a scratch directory and prints what it reached.
fn train_on_flex(config: &RunConfig, what: &str) -> actlab_train::run::Summary {
    let dir = tempfile::tempdir().unwrap();
    let summary = actlab_train::train(config, &options(dir.path(), Backend::Flex, false)).unwrap();
    eprintln!(
        "real data, {what}: {:.2}% at {:.0} img/s",
        100.0 * summary.test_accuracy,
        summary.train_images_per_second
    );
    summary
}

/// A short run on the real data must learn: more than 80% test accuracy.
#[test]
fn short_real_training_run_beats_80_percent() {
    let Some(config) = real_data_config(&[
        "train.epochs=1",
        "data.train_limit=20000",
        "data.offline=true",
    ]) else {
        return;
    };
    let summary = train_on_flex(&config, "20k images, 1 epoch");
    assert!(summary.test_accuracy > 0.80, "{}", summary.test_accuracy);
}

/// One epoch of a small ResNet on all 60,000 training images must learn well: a broken
/// residual path, BatchNorm or stride-2 convolution stays far below this floor.
#[test]
fn one_full_data_epoch_of_a_small_resnet_beats_81_percent() {
    let Some(config) = real_data_config(&[
        "model.kind=\"resnet\"",
        "model.stem=8",
        "model.stages=[8, 16, 32]",
        "model.blocks_per_stage=1",
        "train.epochs=1",
        "data.offline=true",
    ]) else {
        return;
    };
    let summary = train_on_flex(&config, "small ResNet, 60k images, 1 epoch");
    // Burn 83.57% here; the PyTorch twin (scripts/torch_model.py --train) 82.61% with seed 1.
    assert!(summary.test_accuracy > 0.81, "{}", summary.test_accuracy);
}

/// The GPU code path, on lavapipe in CI: a small subset must learn well above chance (10%).
#[test]
fn wgpu_training_learns_on_a_subset() {
    let required = std::env::var("ACTIVATIONS_REQUIRE_WGPU").is_ok_and(|v| v == "1");
    let probe = std::panic::catch_unwind(|| {
        let device = Backend::Wgpu(None).device();
        let x = actlab_train::burn::tensor::Tensor::<1>::from_floats([1.0], &device);
        let _: f32 = x.into_scalar();
    });
    if probe.is_err() {
        assert!(!required, "ACTIVATIONS_REQUIRE_WGPU=1 but no wgpu device");
        eprintln!("skipped: no wgpu device");
        return;
    }
    // Two epochs: after one (24 steps) the seed alone moves this CNN between 39% and 58% on
    // flex; after two, 69-71% over four seeds.
    let cnn = [
        "model.kind=\"cnn\"",
        "model.channels=[8, 16]",
        "model.hidden=[32]",
        "train.epochs=2",
        "train.batch_size=64",
    ];
    // Stride-2 and 1×1 convolutions, BatchNorm and the residual additions on the GPU path. A
    // ResNet starts slower (flex: 37% after these 141 steps; PyTorch's twin 43%), so its floor
    // is lower, still far above chance (10%).
    let resnet = [
        "model.kind=\"resnet\"",
        "model.stem=8",
        "model.stages=[8, 16]",
        "model.blocks_per_stage=1",
        "train.epochs=3",
        "train.batch_size=32",
    ];
    for (model, floor) in [(&cnn[..], 0.5), (&resnet[..], 0.25)] {
        let mut sets = vec![
            "data.train_limit=1500",
            "data.test_limit=500",
            "data.offline=true",
        ];
        sets.extend_from_slice(model);
        let Some(config) = real_data_config(&sets) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let summary =
            actlab_train::train(&config, &options(dir.path(), Backend::Wgpu(None), false)).unwrap();
        let name = model[0];
        eprintln!("wgpu subset, {name}: {:.2}%", 100.0 * summary.test_accuracy);
        assert_eq!(summary.backend, "wgpu");
        assert!(
            summary.test_accuracy > floor,
            "{name}: {}",
            summary.test_accuracy
        );
    }
}

#[test]
fn cli_rejects_bad_input_with_clear_errors() {
    let (ok, text) = fmnist(&["train", "--backend", "tpu"]);
    assert!(
        !ok && text.contains("unknown backend `tpu`") && text.contains("flex"),
        "{text}"
    );
    let (ok, text) = fmnist(&["train", "--config", "configs/missing.toml"]);
    assert!(
        !ok && text.contains("cannot read config configs/missing.toml"),
        "{text}"
    );
    let (ok, text) = fmnist(&["train", "--set", "train.lr=0"]);
    assert!(
        !ok && text.contains("configs/default.toml") && text.contains("train.lr"),
        "{text}"
    );
    assert!(!text.contains("panicked"), "{text}");
    let (ok, text) = fmnist(&["compare", "--shard", "2/2"]);
    assert!(!ok && text.contains("expected I/N"), "{text}");
    let (ok, text) = fmnist(&["compare", "--set", "compare.activations=[\"relu7\"]"]);
    assert!(
        !ok && text.contains("configs/compare.toml") && text.contains("relu7"),
        "{text}"
    );
    // An output directory that exists but cannot be written (/proc/1, even for root) is
    // refused before training, naming it.
    let (ok, text) = fmnist(&["train", "--out", "/proc/1", "--set", "data.train_limit=100"]);
    assert!(
        !ok && text.contains("cannot write into run directory /proc/1"),
        "{text}"
    );
    let (ok, text) = fmnist(&["compare", "--out", "/proc/1"]);
    assert!(
        !ok && text.contains("cannot write into study directory /proc/1"),
        "{text}"
    );
    let (ok, text) = fmnist(&["report", "/nonexistent/sweep"]);
    assert!(!ok && text.contains("not a directory"), "{text}");
    let (ok, text) = fmnist(&["export", "--model", "/nonexistent/run", "--format", "onnx"]);
    assert!(!ok && text.contains("safetensors"), "{text}");
    let (ok, text) = fmnist(&["eval", "--model", "/nonexistent/run"]);
    assert!(
        !ok && text.contains("not a finished run directory"),
        "{text}"
    );
}

#[test]
fn every_shipped_config_is_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let is_compare = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("compare"));
        if is_compare {
            actlab_train::sweep::CompareConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        } else if path.extension().is_some_and(|e| e == "toml") {
            RunConfig::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(
        count >= 7,
        "expected the seven shipped configs, found {count}"
    );
}

#[test]
fn cli_lists_the_registry() {
    let (ok, text) = fmnist(&["activations"]);
    assert!(ok, "{text}");
    for name in activations::ActivationConfig::names() {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("negative_slope = 0.01"), "{text}");
}

/// A sweep split over two shards, re-run, interrupted and resumed, then merged into one report.
#[test]
fn sweeps_skip_finished_runs_resume_interrupted_ones_and_merge() {
    use actlab_train::report::collect_runs;
    use actlab_train::sweep::{CompareConfig, CompareOptions, RunStatus, Shard};
    let data = synthetic_splits();
    let config = CompareConfig::parse(
        "[compare]\nactivations = [\"relu\", { kind = \"leaky_relu\", negative_slope = 0.2 }]\n\
         seeds = [1, 2]\n[model]\nchannels = [4]\nhidden = [16]\n[train]\nepochs = 2\nbatch_size = 32",
        "sweep.toml",
        &[],
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let sweep = |dir: &str, shard: &str| CompareOptions {
        backend: Backend::Flex,
        out_dir: root.path().join(dir),
        shard: shard.parse::<Shard>().unwrap(),
        quiet: true,
        stop: Default::default(),
    };

    // Run 2 of shard 0 was interrupted after its first epoch.
    let plan = config.plan();
    let stop = TrainOptions {
        stop_after: Some(1),
        diagnostics: true,
        ..options(
            &root.path().join("a").join(&plan[2].dir_name),
            Backend::Flex,
            false,
        )
    };
    train_on(&plan[2].config, &data, &stop).unwrap();

    let first = actlab_train::sweep::run_sweep_on(&config, &data, &sweep("a", "0/2")).unwrap();
    let statuses: Vec<&RunStatus> = first.iter().map(|(_, s)| s).collect();
    assert_eq!(
        statuses,
        [
            &RunStatus::Trained,
            &RunStatus::OtherShard,
            &RunStatus::Resumed,
            &RunStatus::OtherShard
        ]
    );
    let again = actlab_train::sweep::run_sweep_on(&config, &data, &sweep("a", "0/2")).unwrap();
    assert_eq!(again[0].1, RunStatus::Skipped);
    assert_eq!(again[2].1, RunStatus::Skipped);
    actlab_train::sweep::run_sweep_on(&config, &data, &sweep("b", "1/2")).unwrap();

    let runs = collect_runs(&[root.path().join("a"), root.path().join("b")]).unwrap();
    assert_eq!(runs.len(), 4);
    let resumed = runs
        .iter()
        .find(|r| r.dir.ends_with(&plan[2].dir_name))
        .unwrap();
    assert_eq!(resumed.summary.epochs, 2);
    assert_eq!(
        resumed
            .history
            .iter()
            .filter(|h| h.split == actlab_train::run::SplitName::Train)
            .count(),
        2
    );
    assert_eq!(
        resumed.diagnostics.len(),
        2 * 3,
        "conv1, fc1, output per epoch"
    );

    let report_dir = root.path().join("merged");
    actlab_train::report::write_report(&runs, &report_dir, "Backend: flex.", "relu").unwrap();
    // A report inside a sweep directory does not hide its runs from the next collection.
    actlab_train::report::write_report(&runs, &root.path().join("a"), "Backend: flex.", "relu")
        .unwrap();
    assert_eq!(collect_runs(&[root.path().join("a")]).unwrap().len(), 2);
    let report = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(report.contains("`relu`") && report.contains("`leaky_relu(negative_slope=0.2)`"));
    let csv = std::fs::read_to_string(report_dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 2, "{csv}");

    // The same sweep with a changed config refuses to mix results in one directory.
    let changed = CompareConfig::parse(
        "[compare]\nactivations = [\"relu\"]\nseeds = [1]\n[model]\nchannels = [4]\nhidden = [16]\n\
         [train]\nepochs = 3\nbatch_size = 32",
        "changed.toml",
        &[],
    )
    .unwrap();
    let error = actlab_train::sweep::run_sweep_on(&changed, &data, &sweep("a", "0/1"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("different config"), "{}", error);
}

/// APReLU in a plain Burn training loop over Burn's DataLoader, whose last batch holds a single
/// sample (Burn has no drop_last): it trains through it instead of aborting.
#[test]
fn aprelu_trains_through_a_dataloader_whose_last_batch_has_one_sample() {
    use actlab_train::burn::data::dataloader::DataLoaderBuilder;
    use actlab_train::burn::module::Module;
    use actlab_train::burn::nn::loss::CrossEntropyLossConfig;
    use actlab_train::burn::optim::{AdamConfig, GradientsParams};
    use actlab_train::data::{FashionMnistBatcher, FashionMnistDataset};

    let device = actlab_train::burn::tensor::Device::flex().autodiff();
    let loader = DataLoaderBuilder::new(FashionMnistBatcher)
        .batch_size(4)
        .set_device(device.clone())
        .build(FashionMnistDataset::from_split(common::synthetic(9, 3)));
    let config: models::ModelConfig =
        toml::from_str("kind = \"cnn\"\nchannels = [4]\nhidden = [8]\nactivation = \"aprelu\"")
            .unwrap();
    let mut model = config.init(&device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut sizes = Vec::new();
    for (images, labels) in loader.iter().map(Result::unwrap) {
        sizes.push(labels.dims()[0]);
        let loss = loss_fn.forward(model.forward(images), labels);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-3, model, grads);
    }
    assert_eq!(sizes, [4, 4, 1]);
    let _ = model.valid();
}

/// Three `fmnist compare` shards started at once into one `--out`: each writes the study's
/// report.md, results.csv, summary.json and plots (and inspects the PReLU runs) while the
/// others do. Nothing may be lost or torn: every run is finished and verified, every shared
/// file is whole, no temporary file is left, and `fmnist report` merges all six runs.
#[test]
fn three_shards_sharing_one_out_directory_lose_and_tear_nothing() {
    // Whether the shards' writes overlap is up to the scheduler: this checks the outcome end
    // to end, and crate::atomic's unit test makes four writers collide on purpose.
    three_shards_round();
}

/// Trains the study and checks what it left (nothing when there is no real data here, outside
/// CI).
fn three_shards_round() {
    let root = tempfile::tempdir().unwrap();
    let study = root.path().join("study");
    let study_arg = study.to_str().unwrap();
    let shard = |index: usize| {
        std::process::Command::new(env!("CARGO_BIN_EXE_fmnist"))
            .args([
                "compare",
                "--quiet",
                "--out",
                study_arg,
                "--shard",
                &format!("{index}/3"),
                "--set",
                "compare.activations=[\"relu\", \"prelu\", \"tanh\"]",
                "--set",
                "compare.seeds=[1, 2]",
            ])
            .args(common::TINY_RUNS)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let shards: Vec<_> = (0..3).map(shard).collect();
    for child in shards {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if common::no_data_here(out.status.success(), &text) {
            return;
        }
        assert!(out.status.success(), "{text}");
    }

    // Every run finished, its files matching the hashes it recorded.
    let runs = actlab_train::report::collect_runs(std::slice::from_ref(&study)).unwrap();
    assert_eq!(runs.len(), 6);
    // The files every shard rewrote are whole versions: a CSV whose rows all have the
    // header's fields, a report that ends where reports end, JSON that parses.
    let csv = std::fs::read_to_string(study.join("results.csv")).unwrap();
    let fields = csv.lines().next().unwrap().split(',').count();
    assert!(csv.lines().count() >= 3, "{csv}");
    for line in csv.lines() {
        assert_eq!(
            line.split(',').count(),
            fields,
            "torn row {line:?} in\n{csv}"
        );
    }
    let report = std::fs::read_to_string(study.join("report.md")).unwrap();
    assert!(
        report.trim_end().ends_with("aggregates: `summary.json`."),
        "{report}"
    );
    let summary = std::fs::read_to_string(study.join("summary.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&summary).unwrap();
    // No temporary file anywhere in the study.
    let mut pending = vec![study.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                !name.starts_with('.') && !name.ends_with(".tmp") && !name.ends_with(".partial"),
                "left behind: {}",
                path.display()
            );
            if path.is_dir() {
                pending.push(path);
            }
        }
    }
    // Merged: all six runs in one report.
    let (ok, text) = fmnist(&["report", study_arg]);
    assert!(ok, "{text}");
    let csv = std::fs::read_to_string(study.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
    let report = std::fs::read_to_string(study.join("report.md")).unwrap();
    assert!(
        report.contains("6 runs: 3 activations × 2 seed(s)."),
        "{report}"
    );
}
