//! `kind = "resnet"`: the pre-activation residual network, from its TOML to its wiring.
use activations::burn::module::{Module, Param};
use activations::burn::tensor::{Device, Distribution, Tensor};
use activations::{Activation, ActivationConfig};
use actlab_models::{Model, ModelConfig, Resnet};

fn config(text: &str) -> Result<ModelConfig, String> {
    let config: ModelConfig =
        toml::from_str(&format!("kind = \"resnet\"\n{text}")).map_err(|e| e.to_string())?;
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn resnet(text: &str) -> Resnet {
    match config(text).unwrap().init(&Device::flex()) {
        Model::Resnet(resnet) => resnet,
        _ => panic!("expected a ResNet"),
    }
}

fn images(n: usize) -> Tensor<4> {
    Tensor::random(
        [n, 1, 28, 28],
        Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    )
}

fn values<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().try_to_vec().unwrap()
}

#[test]
fn default_resnet_has_three_stages_and_its_documented_size() {
    let model = config("").unwrap().init(&Device::flex());
    // Burn counts BatchNorm's running mean and variance too: 174,778 trainable parameters (what
    // PyTorch's twin reports) plus 2 × 464 running statistics.
    assert_eq!(model.num_params(), 174_778 + 928);
    let Model::Resnet(resnet) = &model else {
        panic!()
    };
    assert_eq!(resnet.blocks.len(), 6);
    // Projections only where a block changes the channels or the size.
    let projected: Vec<bool> = resnet.blocks.iter().map(|b| b.shortcut.is_some()).collect();
    assert_eq!(projected, [false, false, true, false, true, false]);
    assert_eq!(resnet.blocks[2].conv1.stride, [2, 2]);
    assert!(resnet.stem.bias.is_none() && resnet.blocks[0].conv1.bias.is_none());

    let out = model.forward_with_taps(images(2));
    assert_eq!(out.logits.dims(), [2, 10]);
    let names: Vec<&str> = out.taps.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, model.slot_names());
    assert_eq!(names.len(), 13);
    assert_eq!(&names[..4], ["s1b1.1", "s1b1.2", "s1b2.1", "s1b2.2"]);
    assert_eq!(names[4], "s2b1.1");
    assert_eq!(names[12], "head");
    let dims = |name: &str| out.taps.iter().find(|t| t.name == name).unwrap().pre.dims();
    assert_eq!(dims("s1b1.1"), [2, 16, 28, 28]);
    // A downsampling block's first slot sees its input, its second the halved map.
    assert_eq!(dims("s2b1.1"), [2, 16, 28, 28]);
    assert_eq!(dims("s2b1.2"), [2, 32, 14, 14]);
    assert_eq!(dims("s3b2.2"), [2, 64, 7, 7]);
    assert_eq!(dims("head"), [2, 64, 7, 7]);

    let layers = model.layer_names();
    assert_eq!(layers.len(), model.layer_weights().len());
    assert_eq!(layers[0], "stem");
    assert!(layers.contains(&"s2b1.shortcut".to_string()));
    assert_eq!(layers.last().unwrap(), "output");
}

#[test]
fn learnable_activations_get_each_slots_channel_count() {
    let resnet = resnet(
        "stem = 8\nstages = [8, 16]\nblocks_per_stage = 1\n\
         stage_activations = [{ kind = \"prelu\", per_channel = true }, \"aprelu\"]",
    );
    match &resnet.blocks[0].activation2 {
        Activation::Prelu(p) => assert_eq!(p.weight.dims(), [8]),
        other => panic!("stage 1 should be prelu, got {other:?}"),
    }
    // The downsampling block: its first slot has the stage's input channels.
    match (&resnet.blocks[1].activation1, &resnet.blocks[1].activation2) {
        (Activation::Aprelu(a), Activation::Aprelu(b)) => {
            assert_eq!((a.channels(), b.channels()), (8, 16))
        }
        other => panic!("stage 2 should be aprelu, got {other:?}"),
    }
    // The head takes the last stage's activation.
    assert!(matches!(&resnet.head_activation, Activation::Aprelu(a) if a.channels() == 16));
}

#[test]
fn every_hidden_activation_kind_runs_in_a_resnet() {
    for activation in ActivationConfig::catalog()
        .into_iter()
        .filter(|a| a.is_elementwise() || matches!(a, ActivationConfig::Aprelu(_)))
    {
        let mut config = config("stem = 4\nstages = [4, 8]\nblocks_per_stage = 1").unwrap();
        config.set_activation(activation.clone());
        let model = config.init(&Device::flex());
        let logits = model.forward(images(2));
        assert_eq!(logits.dims(), [2, 10], "{activation}");
        assert!(values(logits).iter().all(|v| v.is_finite()), "{activation}");
    }
}

/// The residual wiring: with every second convolution zeroed, each identity block passes its
/// input through unchanged, so the logits are the head applied to the stem's output.
#[test]
fn a_block_whose_second_convolution_is_zero_is_the_identity() {
    let mut resnet = resnet("stem = 8\nstages = [8]\nblocks_per_stage = 3\nactivation = \"gelu\"");
    assert!(resnet.blocks.iter().all(|b| b.shortcut.is_none()));
    for block in &mut resnet.blocks {
        let dims = block.conv2.weight.dims();
        block.conv2.weight = Param::from_tensor(Tensor::zeros(dims, &Device::flex()));
    }
    let x = images(3);
    let stem = resnet.stem.forward(x.clone());
    let head = resnet
        .head_activation
        .forward(resnet.head_norm.forward(stem));
    let pooled = head.mean_dim(3).mean_dim(2).reshape([3, 8]);
    let expected = values(resnet.output.forward(pooled));
    let model = Model::Resnet(resnet);
    let actual = values(model.forward(x));
    for (a, e) in actual.iter().zip(&expected) {
        assert!((a - e).abs() <= 1e-5 * e.abs().max(1.0), "{a} vs {e}");
    }
}

#[test]
fn save_and_load_gives_identical_logits() {
    let dir = tempfile_dir();
    let path = dir.join("model");
    let config = config(
        "stem = 4\nstages = [4, 8]\nblocks_per_stage = 1\n\
         activation = { kind = \"prelu\", per_channel = true }",
    )
    .unwrap();
    let model = config.init(&Device::flex());
    let x = images(4);
    let before = values(model.forward(x.clone()));
    model.save_file(&path).unwrap();
    let loaded = config.init(&Device::flex()).load_file(&path);
    assert_eq!(before, values(loaded.forward(x)));
    std::fs::remove_dir_all(&dir).ok();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("models-resnet-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn impossible_values_are_rejected_with_the_key() {
    for (text, key) in [
        ("stem = 0", "model.stem"),
        ("stages = []", "model.stages"),
        ("stages = [16, 0]", "model.stages"),
        ("blocks_per_stage = 0", "model.blocks_per_stage"),
        ("stage_activations = [\"relu\"]", "model.stage_activations"),
        ("activation = \"softmax\"", "model.activation"),
    ] {
        let error = config(text).unwrap_err();
        assert!(error.starts_with(key), "{text}: {error}");
    }
    let error = config("channels = [32]").unwrap_err();
    assert!(
        error.contains("channels") && error.contains("stages"),
        "{error}"
    );
}

#[test]
fn the_config_describes_itself_for_reports() {
    let config = config("").unwrap();
    assert_eq!(
        config.to_string(),
        "pre-activation ResNet, stem 16, stages [16, 32, 64], 2 blocks per stage"
    );
    let text = toml::to_string(&config).unwrap();
    let back: ModelConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, config);
}
