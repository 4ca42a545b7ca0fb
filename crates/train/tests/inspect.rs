//! `fmnist inspect`: what a trained model's activation slots do on the test set.
mod common;

use actlab_train::Backend;
use actlab_train::inspect::inspect;
use common::{fmnist, no_data_here, options, small_config, synthetic, synthetic_splits};

/// PReLU's slopes come out as the model holds them, APReLU's α is counted once per sample and
/// channel (and per class), and ReLU's zeros show as sparsity.
#[test]
fn every_slot_is_summarised_from_the_model_and_the_data() {
    let config = small_config(&[
        "model.conv_activations=[{ kind = \"prelu\", per_channel = true }]",
        "model.hidden_activations=[\"aprelu\"]",
        "train.epochs=1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let data = synthetic_splits();
    actlab_train::train_on(&config, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    let (_, model) = actlab_train::run::load_trained(dir.path(), Backend::Flex).unwrap();
    let split = synthetic(50, 9);
    let inspection = inspect(&model, &split, Backend::Flex);
    assert_eq!(inspection.images, 50);
    let names: Vec<&str> = inspection.slots.iter().map(|s| s.slot.as_str()).collect();
    assert_eq!(names, ["conv1", "fc1"]);

    let conv = &inspection.slots[0];
    let models::Model::Cnn(cnn) = &model else {
        panic!()
    };
    let activations::Activation::Prelu(prelu) = &cnn.blocks[0].activation else {
        panic!()
    };
    let weights: Vec<f32> = prelu.weight.val().into_data().try_to_vec().unwrap();
    assert_eq!(conv.prelu_slopes.as_deref(), Some(&weights[..]));
    assert_eq!(conv.channels, 4);
    assert!(conv.aprelu.is_none());
    assert_eq!(conv.preactivation.total(), 50 * 4 * 28 * 28);

    let dense = &inspection.slots[1];
    let alpha = dense.aprelu.as_ref().expect("fc1 is APReLU");
    assert_eq!(dense.channels, 16);
    assert_eq!(alpha.histogram.total(), 50 * 16);
    for class in &alpha.class_histograms {
        assert_eq!(class.total(), 5 * 16, "5 images of each class");
    }
    assert!(alpha.mean > 0.0 && alpha.mean < 1.0);
    assert!(alpha.within_class_std.is_finite() && alpha.between_class_std.is_finite());
    assert_eq!(alpha.class_means.len(), 10);

    // ReLU everywhere: about half of the outputs are exactly zero.
    let relu = small_config(&["train.epochs=1"]);
    let dir = tempfile::tempdir().unwrap();
    actlab_train::train_on(&relu, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    let (_, model) = actlab_train::run::load_trained(dir.path(), Backend::Flex).unwrap();
    let inspection = inspect(&model, &split, Backend::Flex);
    let zeros = inspection.slots[0].zero_fraction;
    assert!(zeros > 0.2 && zeros < 0.95, "{zeros}");
    assert!(inspection.slots.iter().all(|s| s.prelu_slopes.is_none()));
}

/// The learned kinds beyond PReLU and APReLU: ACON-C's per-channel p1, p2, β as the model
/// holds them; Meta-ACON's β and DyReLU's slopes counted once per sample and channel.
#[test]
fn learned_parameters_and_per_sample_coefficients_of_every_kind() {
    let data = synthetic_splits();
    let split = synthetic(50, 9);
    let config = small_config(&[
        "model.conv_activations=[\"acon_c\"]",
        "model.hidden_activations=[\"meta_acon\"]",
        "train.epochs=1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    actlab_train::train_on(&config, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    let (_, model) = actlab_train::run::load_trained(dir.path(), Backend::Flex).unwrap();
    let inspection = inspect(&model, &split, Backend::Flex);
    let (conv, dense) = (&inspection.slots[0], &inspection.slots[1]);
    let models::Model::Cnn(cnn) = &model else {
        panic!()
    };
    let activations::Activation::AconC(acon) = &cnn.blocks[0].activation else {
        panic!()
    };
    let names: Vec<&str> = conv
        .channel_parameters
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["p1", "p2", "β"]);
    let beta: Vec<f32> = acon.beta.val().into_data().try_to_vec().unwrap();
    assert_eq!(conv.channel_parameters[2].values, beta);
    assert!(conv.coefficients.is_empty() && conv.prelu_slopes.is_none());
    // ACON-C's learned curve per channel; its initial parameters are random, so no initial one.
    let curves = conv.curves.as_ref().expect("ACON-C has learned curves");
    assert_eq!(curves.rows.len(), conv.channels);
    assert!(curves.initial.is_none());
    assert!(
        dense.curves.is_none(),
        "Meta-ACON's parameters are per sample"
    );
    assert_eq!(dense.coefficients.len(), 1);
    let beta = &dense.coefficients[0];
    assert_eq!(beta.symbol, "β");
    assert_eq!(beta.summary.histogram.total(), 50 * 16);
    assert!(beta.summary.mean > 0.0 && beta.summary.mean < 1.0);
    assert!(dense.aprelu.is_none());

    let config = small_config(&["model.activation=\"dyrelu\"", "train.epochs=1"]);
    let dir = tempfile::tempdir().unwrap();
    actlab_train::train_on(&config, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    let (_, model) = actlab_train::run::load_trained(dir.path(), Backend::Flex).unwrap();
    let inspection = inspect(&model, &split, Backend::Flex);
    for slot in &inspection.slots {
        let symbols: Vec<&str> = slot
            .coefficients
            .iter()
            .map(|c| c.symbol.as_str())
            .collect();
        assert_eq!(symbols, ["a¹", "a²"], "{}", slot.slot);
        let total = slot.coefficients[0].summary.histogram.total();
        assert_eq!(total, 50 * slot.channels as u64, "{}", slot.slot);
        assert!(slot.curves.is_none());
    }

    // PAU: each channel's learned curve (conv, per channel) or the layer's (dense), over the
    // least-squares fit it started as, which a freshly built PAU reproduces.
    let config = small_config(&[
        "model.conv_activations=[{ kind = \"pau\", per_channel = true }]",
        "model.hidden_activations=[\"pau\"]",
        "train.epochs=1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    actlab_train::train_on(&config, &data, &options(dir.path(), Backend::Flex, false)).unwrap();
    let (_, model) = actlab_train::run::load_trained(dir.path(), Backend::Flex).unwrap();
    let inspection = inspect(&model, &split, Backend::Flex);
    let fresh = activations::PauConfig::default().init(1, &burn::tensor::Device::flex());
    let fresh = activations::ActivationKind::formula(&fresh).unwrap();
    for (slot, rows) in inspection
        .slots
        .iter()
        .zip([inspection.slots[0].channels, 1])
    {
        let curves = slot.curves.as_ref().expect("PAU has learned curves");
        assert_eq!(curves.rows.len(), rows, "{}", slot.slot);
        let initial = curves
            .initial
            .as_ref()
            .expect("PAU knows its initial function");
        for (&x, &y) in curves.x.iter().zip(initial) {
            assert_eq!(y, fresh.value(x), "{} at {x}", slot.slot);
        }
        let moved = curves.rows[0].iter().zip(initial).any(|(a, b)| a != b);
        assert!(moved, "{}: training changed the coefficients", slot.slot);
        let names: Vec<&str> = slot
            .channel_parameters
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            ["a0", "a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3", "b4"]
        );
    }
}

/// The command end to end on the real test set: the report, its JSON and its figures.
#[test]
fn inspect_writes_the_report_and_refuses_what_is_not_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = fmnist(&[
        "inspect",
        "--model",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert!(!ok && text.contains("none"), "{text}");
    assert!(!text.contains("panicked"), "{text}");

    let run = dir.path().join("run");
    let (ok, text) = fmnist(&[
        "train",
        "--config",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/default.toml"),
        "--set",
        "model.channels=[4]",
        "--set",
        "model.hidden=[8]",
        "--set",
        "model.conv_activations=[{ kind = \"prelu\", per_channel = true }]",
        "--set",
        "model.hidden_activations=[\"aprelu\"]",
        "--set",
        "train.epochs=1",
        "--set",
        "data.train_limit=500",
        "--set",
        "data.test_limit=100",
        "--set",
        "data.offline=true",
        "--out",
        run.to_str().unwrap(),
        "-q",
    ]);
    if no_data_here(ok, &text) {
        return;
    }
    assert!(ok, "{text}");
    let (ok, text) = fmnist(&["inspect", "--model", run.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("10000 test images"), "{text}");
    let out = run.join("inspect");
    for file in [
        "report.md",
        "summary.json",
        "preactivations.png",
        "preactivations.svg",
        "prelu_slopes.png",
        "aprelu_fc1_alpha.png",
        "aprelu_fc1_classes.png",
        // PReLU's learned curve per channel (APReLU's slopes are per sample: no curve).
        "curve_conv1.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing: {text}");
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## APReLU `fc1`") && report.contains("## PReLU"));
    assert!(report.contains("## Learned curves") && !out.join("curve_fc1.png").exists());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["images"], 10000);
}

/// `fmnist compare` inspects its learnable runs, and the report says what they learned.
#[test]
fn compare_reports_what_the_learnable_activations_learned() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("compare.toml");
    std::fs::write(
        &config,
        "[compare]\nactivations = [\"relu\", \"aprelu\", { kind = \"prelu\", per_channel = true }]\n\
         seeds = [1]\n[data]\ntrain_limit = 300\ntest_limit = 200\noffline = true\n\
         [model]\nkind = \"mlp\"\nhidden = [16]\n[train]\nepochs = 1\nbatch_size = 32\n",
    )
    .unwrap();
    let out = dir.path().join("sweep");
    let (ok, text) = fmnist(&[
        "compare",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    if no_data_here(ok, &text) {
        return;
    }
    assert!(ok, "{text}");
    assert!(
        out.join("aprelu-seed1/inspect/summary.json").is_file(),
        "{text}"
    );
    assert!(
        out.join("aprelu-seed1/inspect/aprelu_fc1_alpha.png")
            .is_file()
    );
    assert!(
        !out.join("relu-seed1/inspect").exists(),
        "relu learns nothing to inspect"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## What the learnable activations learned")
            && report.contains("| aprelu seed 1 | fc1 | α mean")
            && report.contains("seed 1 | fc1 | slopes"),
        "{report}"
    );
    // A second compare finds everything done and keeps the inspections.
    let before = std::fs::read(out.join("aprelu-seed1/inspect/summary.json")).unwrap();
    let (ok, text) = fmnist(&[
        "compare",
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("3 of 3 runs finished; report"), "{text}");
    assert_eq!(
        std::fs::read(out.join("aprelu-seed1/inspect/summary.json")).unwrap(),
        before
    );
    // A config with fewer runs over the same directory: its count is of its own runs (it said
    // "3 of 1"), and the report still covers the others.
    let (ok, text) = fmnist(&[
        "compare",
        "--config",
        config.to_str().unwrap(),
        "--set",
        "compare.activations=[\"relu\"]",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("1 of 1 runs finished (the report also covers 2 more finished run(s)"),
        "{text}"
    );
}
