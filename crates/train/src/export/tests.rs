//! Export's names and layouts, and import's refusals.
use super::*;
use burn::module::Module;
use burn::tensor::Device;
use models::ModelConfig;

fn model(text: &str) -> Model {
    #[derive(serde::Deserialize)]
    struct File {
        model: ModelConfig,
    }
    let file: File = toml::from_str(text).unwrap();
    file.model.init(&Device::flex())
}

/// (name, shape, f32 values or None for i64) of an exported model, in file order.
fn exported(model: &Model) -> Vec<(String, Vec<usize>, Option<Vec<f32>>)> {
    let bytes = safetensors_bytes(model, "").unwrap();
    let parsed = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<_> = parsed
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = (view.dtype() == Dtype::F32).then(|| {
                view.data()
                    .chunks(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect()
            });
            (name, view.shape().to_vec(), values)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

#[test]
fn reference_cnn_has_pytorch_names_and_layouts() {
    let model = model("[model]\nkind = \"cnn\"");
    let tensors = exported(&model);
    let shapes: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|t| (t.0.as_str(), t.1.as_slice()))
        .collect();
    let mut expected = vec![
        ("blocks.0.conv.weight", &[32, 1, 3, 3][..]),
        ("blocks.0.conv.bias", &[32][..]),
        ("blocks.1.conv.weight", &[64, 32, 3, 3][..]),
        ("blocks.1.conv.bias", &[64][..]),
        ("dense.0.linear.weight", &[128, 3136][..]),
        ("dense.0.linear.bias", &[128][..]),
        ("output.weight", &[10, 128][..]),
        ("output.bias", &[10][..]),
    ];
    expected.sort();
    assert_eq!(shapes, expected);
    let count: usize = tensors.iter().map(|t| t.1.iter().product::<usize>()).sum();
    assert_eq!(count, model.num_params());

    // The linear weight is Burn's [in, out] transposed: element (o, i) = burn (i, o).
    let Model::Cnn(cnn) = &model else { panic!() };
    let burn_weight: Vec<f32> = cnn.output.weight.val().into_data().try_to_vec().unwrap();
    let exported = tensors.iter().find(|t| t.0 == "output.weight").unwrap();
    let values = exported.2.as_ref().unwrap();
    for (o, i) in [(0, 0), (3, 17), (9, 127)] {
        assert_eq!(values[o * 128 + i], burn_weight[i * 10 + o]);
    }
}

#[test]
fn batch_norm_prelu_and_aprelu_follow_pytorch_names() {
    let model = model(
        "[model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\nbatch_norm = true\n\
         conv_activations = [{ kind = \"prelu\", per_channel = true }]\n\
         hidden_activations = [\"aprelu\"]",
    );
    let names: Vec<String> = exported(&model).into_iter().map(|t| t.0).collect();
    for expected in [
        "blocks.0.norm.weight",
        "blocks.0.norm.bias",
        "blocks.0.norm.running_mean",
        "blocks.0.norm.running_var",
        "blocks.0.norm.num_batches_tracked",
        "blocks.0.activation.weight",
        "dense.0.activation.fc1.weight",
        "dense.0.activation.bn1.weight",
        "dense.0.activation.bn2.running_var",
        "dense.0.activation.bn2.num_batches_tracked",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !names
            .iter()
            .any(|n| n.contains("gamma") || n.contains("Cnn"))
    );
}

/// The learned kinds' parameters under the names of their PyTorch references
/// (scripts/torch_activations.py, from the authors' code).
#[test]
fn learned_kinds_follow_their_pytorch_references_names() {
    let model = model(
        "[model]\nkind = \"cnn\"\nchannels = [4, 4, 4]\nhidden = [8, 8, 8]\n\
         conv_activations = [\"acon_c\", \"frelu\", \"dyrelu\"]\n\
         hidden_activations = [\"meta_acon\", { kind = \"silu\", learnable = true }, \
         { kind = \"pau\", per_channel = true }]",
    );
    let names: Vec<String> = exported(&model).into_iter().map(|t| t.0).collect();
    for expected in [
        "blocks.0.activation.p1",
        "blocks.0.activation.beta",
        "blocks.1.activation.conv_frelu.weight",
        "blocks.1.activation.conv_frelu.bias",
        "blocks.1.activation.bn_frelu.weight",
        "blocks.1.activation.bn_frelu.running_var",
        "blocks.2.activation.fc2.weight",
        "dense.0.activation.p2",
        "dense.0.activation.bn1.weight",
        "dense.0.activation.bn2.bias",
        "dense.1.activation.learnable_beta",
        "dense.2.activation.numerator",
        "dense.2.activation.denominator",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n.contains("gamma")), "{names:?}");
}

#[test]
fn resnet_has_the_pytorch_twins_names() {
    let model = model(
        "[model]\nkind = \"resnet\"\nstem = 4\nstages = [4, 8]\nblocks_per_stage = 1\n\
         activation = { kind = \"prelu\", per_channel = true }",
    );
    let tensors = exported(&model);
    let shape = |name: &str| {
        tensors
            .iter()
            .find(|t| t.0 == name)
            .map(|t| t.1.clone())
            .unwrap_or_else(|| panic!("{name} not exported"))
    };
    assert_eq!(shape("stem.weight"), [4, 1, 3, 3]);
    assert_eq!(shape("blocks.0.norm1.weight"), [4]);
    assert_eq!(
        shape("blocks.0.norm1.num_batches_tracked"),
        Vec::<usize>::new()
    );
    assert_eq!(shape("blocks.0.activation1.weight"), [4]);
    assert_eq!(shape("blocks.1.conv1.weight"), [8, 4, 3, 3]);
    assert_eq!(shape("blocks.1.activation2.weight"), [8]);
    assert_eq!(shape("blocks.1.shortcut.weight"), [8, 4, 1, 1]);
    assert_eq!(shape("head_norm.running_var"), [8]);
    assert_eq!(shape("head_activation.weight"), [8]);
    assert_eq!(shape("output.weight"), [10, 8]);
    let names: Vec<&str> = tensors.iter().map(|t| t.0.as_str()).collect();
    // Bias-free convolutions, no projection where the shape stays, no Burn-only constants.
    assert!(!names.contains(&"stem.bias") && !names.contains(&"blocks.0.conv1.bias"));
    assert!(!names.iter().any(|n| n.starts_with("blocks.0.shortcut")));
    assert!(!names.iter().any(|n| n.contains("blocks_per_stage")));
}

/// A file whose weights hold NaN (a run that diverged, an edited file) is refused, naming
/// the parameter; it is never handed on to train or evaluate with.
#[test]
fn non_finite_weights_are_refused_by_name() {
    let text = "[model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\n\
                conv_activations = [\"acon_c\"]";
    let Model::Cnn(mut cnn) = model(text) else {
        panic!()
    };
    let activations::Activation::AconC(acon) = &mut cnn.blocks[0].activation else {
        panic!()
    };
    let values = [1.0, f32::NAN, 0.5, f32::INFINITY];
    acon.p1 = burn::module::Param::from_tensor(burn::tensor::Tensor::from_floats(
        values,
        &Device::flex(),
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    export_safetensors(&Model::Cnn(cnn), "", &path).unwrap();
    let error = import_safetensors(model(text), &path).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ExportError::NonFinite { .. })
            && message.contains("blocks.0.activation.p1 (2)")
            && message.contains("NaN"),
        "{message}"
    );
}

#[test]
fn export_then_import_gives_the_same_weights() {
    let text = "[model]\nkind = \"cnn\"\nchannels = [4]\nhidden = [8]\nbatch_norm = true\n\
                conv_activations = [{ kind = \"prelu\", per_channel = true }]\n\
                hidden_activations = [\"aprelu\"]";
    let original = model(text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    export_safetensors(&original, "config = 1", &path).unwrap();
    assert_eq!(config_in(&path).unwrap().as_deref(), Some("config = 1"));
    let imported = import_safetensors(model(text), &path).unwrap();
    assert_eq!(exported(&imported), exported(&original));

    // Another architecture is refused, tensor by tensor.
    let error = import_safetensors(model("[model]\nkind = \"cnn\""), &path).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ExportError::Mismatch { .. }) && message.contains("blocks.0.conv.weight"),
        "{message}"
    );
}
