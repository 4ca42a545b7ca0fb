//! PyTorch → Burn: weights trained by `scripts/torch_model.py --train` (the fixtures: a small
//! CNN with BatchNorm, per-channel PReLU and APReLU, a small ResNet with the same layers plus
//! bias-free and projection convolutions, and a CNN with the learned families PAU, FReLU,
//! Meta-ACON, ACON-C and DyReLU) come in through `fmnist import` and evaluate to
//! PyTorch's own test accuracy; damaged or foreign safetensors files are clear errors.
mod common;

use std::path::Path;

use actlab_train::backend::Backend;
use actlab_train::export::{ExportError, import_safetensors};
use common::fmnist;
use proptest::prelude::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/torch_cnn.safetensors"
);

fn fixture_model() -> models::Model {
    let config = actlab_train::RunConfig::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch_cnn.toml"),
        &[],
    )
    .unwrap();
    config.model.init(&Backend::Flex.device())
}

/// The ResNet twin (`ResNet` in scripts/torch_model.py).
const RESNET_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/torch_resnet.safetensors"
);

#[test]
fn pytorch_weights_import_and_evaluate_to_pytorchs_accuracy() {
    import_and_evaluate(FIXTURE);
}

#[test]
fn a_pytorch_trained_resnet_imports_and_evaluates_to_pytorchs_accuracy() {
    import_and_evaluate(RESNET_FIXTURE);
}

/// PAU, FReLU, Meta-ACON, ACON-C and DyReLU trained in PyTorch (their reference modules, with
/// FReLU's and Meta-ACON's BatchNorm running statistics) evaluate in Burn as in PyTorch.
#[test]
fn pytorch_trained_learned_activations_import_and_evaluate_to_pytorchs_accuracy() {
    import_and_evaluate(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/torch_learned.safetensors"
    ));
}

fn import_and_evaluate(fixture: &str) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("from-torch");
    let (ok, text) = fmnist(&["import", "--from", fixture, "--out", run.to_str().unwrap()]);
    assert!(ok, "{text}");

    // A second import into the same directory changes nothing.
    let before = std::fs::read(run.join("model.bpk")).unwrap();
    let (ok, text) = fmnist(&["import", "--from", fixture, "--out", run.to_str().unwrap()]);
    assert!(!ok && text.contains("already holds a model"), "{text}");
    assert_eq!(std::fs::read(run.join("model.bpk")).unwrap(), before);

    let (config, model) = actlab_train::run::load_trained(&run, Backend::Flex).unwrap();
    let data = match actlab_train::run::load_data(&config) {
        Ok(data) => data,
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!("CI must have the real data (apt-get install dataset-fashion-mnist): {error}")
        }
        Err(error) => return eprintln!("skipped the accuracy check: no Fashion-MNIST ({error})"),
    };
    let evaluation = actlab_train::run::evaluate_split(&model, &data.test, Backend::Flex);
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{fixture}.json")).unwrap()).unwrap();
    let expected_correct = expected["correct"].as_u64().unwrap() as f64;
    let correct = (evaluation.accuracy * data.test.len() as f64).round();
    // Same weights, same arithmetic up to float summation order: at most a borderline image.
    assert!(
        (correct - expected_correct).abs() <= 2.0,
        "Burn {correct} correct, PyTorch {expected_correct}"
    );
    let expected_loss = expected["test_loss"].as_f64().unwrap();
    assert!(
        (evaluation.loss - expected_loss).abs() < 1e-3,
        "{} vs {expected_loss}",
        evaluation.loss
    );
}

#[test]
fn another_architecture_or_a_foreign_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let (ok, text) = fmnist(&[
        "import",
        "--from",
        FIXTURE,
        "--out",
        out.to_str().unwrap(),
        "--set",
        "model.hidden=[32]",
    ]);
    assert!(
        !ok && text.contains("does not fit the model") && text.contains("dense.0.linear.weight"),
        "{text}"
    );
    assert!(!out.join("model.bpk").exists(), "nothing written");

    let foreign = dir.path().join("foreign.safetensors");
    std::fs::write(&foreign, b"not a safetensors file").unwrap();
    let (ok, text) = fmnist(&[
        "import",
        "--from",
        foreign.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && !text.contains("panicked"), "{text}");
    assert!(
        text.contains("foreign.safetensors is not a valid safetensors file"),
        "{text}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary bytes are refused, never a panic.
    #[test]
    fn safetensors_reader_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        prop_assert!(import_safetensors(fixture_model(), &path).is_err());
    }

    /// A real file with any byte changed (header: names, dtypes, shapes, offsets; or data)
    /// loads or is refused, never a panic.
    #[test]
    fn a_changed_byte_anywhere_never_panics(at in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut bytes = std::fs::read(FIXTURE).unwrap();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        // Half the cases in the header, where the structure is.
        let index = if value % 2 == 0 { at.index(header) } else { at.index(bytes.len()) };
        bytes[index] = value;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, &bytes).unwrap();
        match import_safetensors(fixture_model(), &path) {
            // A changed data byte can make a value NaN or infinite (an exponent byte of 0x7f or
            // 0xff): refused by name like the rest.
            Ok(_)
            | Err(
                ExportError::NotSafetensors { .. }
                | ExportError::Mismatch { .. }
                | ExportError::Limit { .. }
                | ExportError::NonFinite { .. },
            ) => {}
            Err(other) => prop_assert!(false, "{other}"),
        }
    }
}
