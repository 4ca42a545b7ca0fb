//! The `models` crate from a user's side: TOML in, network out.
use activations::burn::module::Module;
use activations::burn::tensor::{Device, Distribution, Tensor};
use activations::{Activation, ActivationConfig};
use actlab_models::{CnnConfig, Model, ModelConfig};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: ModelConfig,
}

fn parse(text: &str) -> Result<ModelConfig, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    file.model.validate().map_err(|e| e.to_string())?;
    Ok(file.model)
}

fn device() -> Device {
    Device::flex()
}

fn images(n: usize) -> Tensor<4> {
    Tensor::random([n, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device())
}

fn hidden_kinds() -> Vec<ActivationConfig> {
    ActivationConfig::catalog()
        .into_iter()
        // Softmax and log-softmax are for output layers; learned kinds that are not
        // element-wise (APReLU, Meta-ACON, DyReLU) take any hidden slot.
        .filter(|a| a.is_elementwise() || a.is_learnable())
        .collect()
}

#[test]
fn default_cnn_has_the_reference_parameter_count() {
    let model = ModelConfig::default().init(&device());
    assert_eq!(model.num_params(), 421_642);
}

#[test]
fn cnn_and_mlp_run_with_every_activation_kind() {
    for activation in hidden_kinds() {
        let mut configs = vec![ModelConfig::Cnn(CnnConfig {
            channels: vec![4, 8],
            hidden: vec![16],
            ..Default::default()
        })];
        // A kind for convolutional slots alone (FReLU) goes in the CNN's conv slots only.
        let dense_too = activation.check_slot(16, false).is_ok();
        if dense_too {
            configs.push(ModelConfig::Mlp(actlab_models::MlpConfig {
                hidden: vec![16, 8],
                ..Default::default()
            }));
        }
        for mut config in configs {
            match (&mut config, dense_too) {
                (ModelConfig::Cnn(cnn), false) => {
                    cnn.conv_activations = Some(vec![activation.clone(), activation.clone()]);
                }
                _ => config.set_activation(activation.clone()),
            }
            let model = config.init(&device());
            let out = model.forward_with_taps(images(3));
            assert_eq!(out.logits.dims(), [3, 10], "{activation}");
            assert_eq!(out.taps.len(), model.slot_names().len(), "{activation}");
            assert_eq!(
                model.slot_activations().len(),
                out.taps.len(),
                "{activation}"
            );
            let three_d: Tensor<3> = images(2).reshape([2, 28, 28]);
            assert_eq!(model.forward(three_d).dims(), [2, 10]);
        }
    }
}

/// FReLU's condition is a 3×3 convolution: a dense slot is refused, naming the key and where
/// it can go instead.
#[test]
fn frelu_in_a_dense_slot_is_refused() {
    let error = parse("[model]\nkind = \"mlp\"\nactivation = \"frelu\"").unwrap_err();
    assert!(
        error.contains("activation")
            && error.contains("frelu")
            && error.contains("conv_activations"),
        "{error}"
    );
    let error = parse("[model]\nchannels = [8]\nhidden_activations = [\"frelu\"]").unwrap_err();
    assert!(error.contains("hidden_activations"), "{error}");
    let config = parse("[model]\nchannels = [8]\nconv_activations = [\"frelu\"]").unwrap();
    assert_eq!(config.init(&device()).forward(images(2)).dims(), [2, 10]);
    // set_activation (compare, bench): the CNN's conv slots take it, its dense slots keep ReLU;
    // the MLP has no slot for it.
    let frelu: ActivationConfig = "frelu".parse().unwrap();
    let mut cnn = ModelConfig::default();
    cnn.set_activation(frelu.clone());
    assert!(cnn.validate().is_ok());
    assert_eq!(cnn.activation().name(), "frelu");
    let mut mlp = parse("[model]\nkind = \"mlp\"").unwrap();
    mlp.set_activation(frelu);
    assert!(mlp.validate().is_err());
}

#[test]
fn taps_have_one_entry_per_slot_with_matching_shapes() {
    let model = ModelConfig::default().init(&device());
    let out = model.forward_with_taps(images(2));
    let names: Vec<_> = out.taps.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["conv1", "conv2", "fc1"]);
    assert_eq!(out.taps[0].pre.dims(), [2, 32, 28, 28]);
    assert_eq!(out.taps[1].post.dims(), [2, 64, 14, 14]);
    assert_eq!(out.taps[2].post.dims(), [2, 128, 1, 1]);
    // relu's post-activation has no negatives.
    let min: f32 = out.taps[0].post.clone().min().into_scalar();
    assert!(min >= 0.0);
}

#[test]
fn per_slot_overrides_are_applied_with_the_right_channel_counts() {
    let config = parse(
        r#"
        [model]
        kind = "cnn"
        activation = "relu"
        conv_activations = [{ kind = "prelu", per_channel = true }, "aprelu"]
        hidden_activations = ["gelu"]
        "#,
    )
    .unwrap();
    let Model::Cnn(cnn) = config.init(&device()) else {
        panic!("expected a CNN")
    };
    match &cnn.blocks[0].activation {
        Activation::Prelu(p) => assert_eq!(p.weight.dims(), [32]),
        other => panic!("conv1 should be prelu, got {other:?}"),
    }
    match &cnn.blocks[1].activation {
        Activation::Aprelu(a) => assert_eq!(a.channels(), 64),
        other => panic!("conv2 should be aprelu, got {other:?}"),
    }
    assert!(matches!(cnn.dense[0].activation, Activation::Gelu(_)));
    // Every slot overridden: `activation` (relu) describes none of them, so the run is named
    // by the slots' kinds in order, each once.
    assert_eq!(config.label(), "prelu+aprelu+gelu");
}

#[test]
fn a_run_is_named_by_its_activation_key_when_a_slot_uses_it() {
    assert_eq!(ModelConfig::default().label(), "relu");
    // FReLU's CNN keeps ReLU in its dense slots: still a frelu run.
    let mut cnn = ModelConfig::default();
    cnn.set_activation("frelu".parse().unwrap());
    assert_eq!(cnn.label(), "frelu");
    let partial = parse("[model]\nactivation = \"gelu\"\nhidden_activations = [\"silu\"]").unwrap();
    assert_eq!(partial.label(), "gelu");
    assert_eq!(partial.mixed_label(), None);
    let resnet =
        parse("[model]\nkind = \"resnet\"\nstage_activations = [\"prelu\", \"prelu\", \"elu\"]")
            .unwrap();
    assert_eq!(resnet.label(), "prelu+elu");
    // Both conv slots overridden, the key's ReLU left in the dense slot only: not a relu run.
    let conv_only = parse("[model]\nconv_activations = [\"frelu\", \"frelu\"]").unwrap();
    assert_eq!(conv_only.label(), "frelu+relu");
    let one_conv = parse("[model]\nconv_activations = [\"relu\", \"frelu\"]").unwrap();
    assert_eq!(one_conv.label(), "relu");
    // A list of the wrong length is validate's to name; the label falls back to the key.
    let mut broken = ModelConfig::default();
    if let ModelConfig::Cnn(cnn) = &mut broken {
        cnn.conv_activations = Some(vec!["gelu".parse().unwrap()]);
    }
    assert_eq!(broken.label(), "relu");
}

#[test]
fn selu_mlp_self_normalises_at_init() {
    let config = parse(
        r#"
        [model]
        kind = "mlp"
        hidden = [256, 256, 256, 256, 256, 256, 256, 256]
        activation = "selu"
        dropout = 0.1
        "#,
    )
    .unwrap();
    let model = config.init(&device());
    let Model::Mlp(mlp) = &model else { panic!() };
    assert!(
        mlp.dense
            .iter()
            .all(|b| b.alpha_dropout.is_some() && b.dropout.is_none())
    );
    let out = model.forward_with_taps(images(512));
    let last = out.taps.last().unwrap().post.clone();
    let mean: f32 = last.clone().mean().into_scalar();
    let std: f32 = last.var(0).mean().sqrt().into_scalar();
    assert!(mean.abs() < 0.15, "mean {mean}");
    assert!((std - 1.0).abs() < 0.2, "std {std}");

    // The same depth with relu and PyTorch's default init does not keep unit scale.
    let mut relu = config.clone();
    relu.set_activation(ActivationConfig::Relu);
    let out = relu.init(&device()).forward_with_taps(images(512));
    let last = out.taps.last().unwrap().post.clone();
    let std: f32 = last.var(0).mean().sqrt().into_scalar();
    assert!(std < 0.5, "relu std {std}");
}

#[test]
fn save_and_load_gives_identical_logits() {
    let dir = std::env::temp_dir().join(format!("models-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model");
    let config = parse(
        "[model]\nkind = \"cnn\"\nchannels = [4, 8]\nhidden = [16]\nbatch_norm = true\n\
         activation = { kind = \"prelu\", per_channel = true }",
    )
    .unwrap();
    let model = config.init(&device());
    let x = images(4);
    let before: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
    model.save_file(&path).unwrap();
    let loaded = config.init(&device()).load_file(&path);
    let after: Vec<f32> = loaded.forward(x).into_data().try_to_vec().unwrap();
    assert_eq!(before, after);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unknown_keys_and_activations_are_named_with_the_choices() {
    let error = parse("[model]\nkind = \"cnn\"\nchanels = [32]").unwrap_err();
    assert!(
        error.contains("chanels") && error.contains("channels"),
        "{error}"
    );
    let error = parse("[model]\nkind = \"cnn\"\nactivation = \"relu7\"").unwrap_err();
    assert!(
        error.contains("relu7") && error.contains("leaky_relu"),
        "{error}"
    );
    let error = parse("[model]\nkind = \"transformer\"").unwrap_err();
    assert!(
        error.contains("transformer")
            && error.contains("cnn")
            && error.contains("mlp")
            && error.contains("resnet"),
        "{error}"
    );
}

/// A slot too narrow for an activation's parameters names the key the user wrote (the
/// activation, or the override list) and the largest value that fits.
#[test]
fn a_reduction_wider_than_a_slot_is_refused_with_its_key() {
    let error =
        parse("[model]\nchannels = [8, 16]\nactivation = { kind = \"dyrelu\", reduction = 12 }")
            .unwrap_err();
    assert!(
        error.contains("activation")
            && error.contains("dyrelu.reduction")
            && error.contains("at most 8"),
        "{error}"
    );
    let error = parse(
        "[model]\nkind = \"mlp\"\nhidden = [32, 4]\n\
         hidden_activations = [\"relu\", { kind = \"dyrelu\", reduction = 8 }]",
    )
    .unwrap_err();
    assert!(
        error.contains("hidden_activations") && error.contains("at most 4"),
        "{error}"
    );
    let error = parse(
        "[model]\nkind = \"resnet\"\nstem = 4\nstages = [16]\n\
         activation = { kind = \"dyrelu\", reduction = 8 }",
    )
    .unwrap_err();
    assert!(error.contains("at most 4"), "{error}");
}

#[test]
fn a_model_section_without_kind_is_the_cnn() {
    let config = parse("[model]\nactivation = \"gelu\"\nchannels = [8]").unwrap();
    let ModelConfig::Cnn(cnn) = &config else {
        panic!("expected the cnn, got {config:?}");
    };
    assert_eq!(cnn.channels, vec![8]);
    assert_eq!(config.activation().name(), "gelu");
    // Unknown keys are still refused, with the CNN's keys as the choices.
    let error = parse("[model]\ndepth = 3").unwrap_err();
    assert!(
        error.contains("depth") && error.contains("channels"),
        "{error}"
    );
}

#[test]
fn impossible_values_are_rejected_with_the_key() {
    for (text, key) in [
        ("channels = []", "model.channels"),
        ("channels = [32, 0]", "model.channels"),
        ("dropout = 1.0", "model.dropout"),
        ("conv_activations = [\"relu\"]", "model.conv_activations"),
        ("channels = [8, 8, 8, 8, 8]", "model.channels"),
        ("activation = \"softmax\"", "model.activation"),
    ] {
        let error = parse(&format!("[model]\nkind = \"cnn\"\n{text}")).unwrap_err();
        assert!(error.starts_with(key), "{text}: {error}");
    }
}
