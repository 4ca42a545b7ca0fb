use activations::burn::module::Module;
use activations::burn::nn::conv::{Conv2d, Conv2dConfig};
use activations::burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use activations::burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use activations::burn::tensor::{Device, Tensor};
use activations::{Activation, ActivationConfig};
use serde::{Deserialize, Serialize};

use crate::mlp::{DenseBlock, dense_stack};
use crate::slots::{
    check_activations, check_dropout, check_slots, check_widths, is_selu, lecun_normal,
    slot_activations, slot_key,
};
use crate::{ConfigError, IMAGE_SIZE, Tap, kernels};

/// The CNN: per entry of `channels`, Conv2d 3×3 (padding 1) → optional BatchNorm → activation →
/// MaxPool 2×2; flatten; per entry of `hidden`, Linear → activation → dropout; Linear to 10
/// classes. The defaults are the reference network (421,642 parameters).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CnnConfig {
    /// Output channels of each conv block. Default `[32, 64]`.
    pub channels: Vec<usize>,
    /// Width of each hidden dense layer. Default `[128]`.
    pub hidden: Vec<usize>,
    /// BatchNorm after each convolution. Default false.
    pub batch_norm: bool,
    /// Dropout after each hidden dense activation (AlphaDropout after SELU). Default 0.
    pub dropout: f64,
    /// The activation of every slot without an override. Default relu.
    pub activation: ActivationConfig,
    /// One activation per conv block, overriding `activation`.
    pub conv_activations: Option<Vec<ActivationConfig>>,
    /// One activation per hidden dense layer, overriding `activation`.
    pub hidden_activations: Option<Vec<ActivationConfig>>,
}

impl Default for CnnConfig {
    fn default() -> Self {
        Self {
            channels: vec![32, 64],
            hidden: vec![128],
            batch_norm: false,
            dropout: 0.0,
            activation: ActivationConfig::Relu,
            conv_activations: None,
            hidden_activations: None,
        }
    }
}

impl CnnConfig {
    pub(crate) fn conv_slots(&self) -> Result<Vec<ActivationConfig>, ConfigError> {
        slot_activations(
            &self.activation,
            &self.conv_activations,
            self.channels.len(),
            "conv_activations",
            "channels",
        )
    }

    pub(crate) fn hidden_slots(&self) -> Result<Vec<ActivationConfig>, ConfigError> {
        slot_activations(
            &self.activation,
            &self.hidden_activations,
            self.hidden.len(),
            "hidden_activations",
            "hidden",
        )
    }

    /// Side of the feature maps after the conv blocks (each max-pool halves it, rounding down).
    pub fn feature_size(&self) -> usize {
        self.channels.iter().fold(IMAGE_SIZE, |size, _| size / 2)
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.channels.is_empty() {
            return Err(ConfigError::new(
                "channels",
                "is empty: give at least one conv block, e.g. channels = [32, 64] (or use kind = \"mlp\")",
            ));
        }
        check_widths("channels", &self.channels)?;
        check_widths("hidden", &self.hidden)?;
        if self.feature_size() == 0 {
            return Err(ConfigError::new(
                "channels",
                format!(
                    "{} blocks halve the 28×28 image to nothing: use at most 4",
                    self.channels.len()
                ),
            ));
        }
        check_dropout(self.dropout)?;
        check_activations("activation", std::slice::from_ref(&self.activation))?;
        check_activations("conv_activations", &self.conv_slots()?)?;
        check_activations("hidden_activations", &self.hidden_slots()?)?;
        let conv_key = slot_key(&self.conv_activations, "conv_activations");
        check_slots(conv_key, &self.conv_slots()?, &self.channels, true)?;
        let hidden_key = slot_key(&self.hidden_activations, "hidden_activations");
        check_slots(hidden_key, &self.hidden_slots()?, &self.hidden, false)?;
        Ok(())
    }

    /// Builds the network.
    ///
    /// # Panics
    /// On an invalid config (see [`validate`](Self::validate)).
    pub fn init(&self, device: &Device) -> Cnn {
        if let Err(error) = self.validate() {
            panic!("invalid CNN config: {error}");
        }
        let conv_slots = self.conv_slots().unwrap();
        let mut in_channels = 1;
        let blocks = self
            .channels
            .iter()
            .zip(&conv_slots)
            .map(|(&out_channels, activation)| {
                let mut config = Conv2dConfig::new([in_channels, out_channels], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1));
                if is_selu(activation) {
                    config = config.with_initializer(lecun_normal());
                }
                in_channels = out_channels;
                ConvBlock {
                    conv: config.init(device),
                    norm: self
                        .batch_norm
                        .then(|| BatchNormConfig::new(out_channels).init(device)),
                    activation: activation.init(out_channels, device),
                }
            })
            .collect();
        let size = self.feature_size();
        let flat = in_channels * size * size;
        let (dense, output) = dense_stack(
            flat,
            &self.hidden,
            &self.hidden_slots().unwrap(),
            self.dropout,
            device,
        );
        Cnn {
            blocks,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            dense,
            output,
        }
    }
}

/// Conv 3×3 → optional BatchNorm → activation (the max-pool is shared by [`Cnn`]).
#[derive(Module, Debug)]
pub struct ConvBlock {
    /// The convolution.
    pub conv: Conv2d,
    /// BatchNorm, when `batch_norm = true`.
    pub norm: Option<BatchNorm>,
    /// The slot's activation.
    pub activation: Activation,
}

/// The network built by [`CnnConfig`].
#[derive(Module, Debug)]
pub struct Cnn {
    /// The conv blocks.
    pub blocks: Vec<ConvBlock>,
    /// 2×2 max-pool after each block.
    pub pool: MaxPool2d,
    /// Hidden dense layers.
    pub dense: Vec<DenseBlock>,
    /// Linear to the class logits.
    pub output: activations::burn::nn::Linear,
}

impl Cnn {
    /// Logits `[N, 10]` for images `[N, 1, 28, 28]`, plus the taps when asked for.
    pub(crate) fn run(&self, images: Tensor<4>, taps: &mut Option<Vec<Tap>>) -> Tensor<2> {
        let mut x = images;
        for (index, block) in self.blocks.iter().enumerate() {
            if taps.is_none() && block.norm.is_none() {
                // Convolution, activation and pooling in one pass where the kernels allow.
                match kernels::conv_block(&block.conv, &block.activation, &self.pool, x) {
                    Ok(pooled) => {
                        x = pooled;
                        continue;
                    }
                    Err(input) => x = input,
                }
            }
            let mut pre = kernels::conv2d(&block.conv, x);
            if let Some(norm) = &block.norm {
                pre = kernels::batch_norm(norm, pre);
            }
            x = match taps {
                Some(taps) => {
                    let post = block.activation.forward(pre.clone());
                    taps.push(Tap::new(format!("conv{}", index + 1), pre, post.clone()));
                    kernels::max_pool2d(&self.pool, post)
                }
                // Nothing else holds `pre`: a fused activation may overwrite it, and one that
                // is a spatial max (FReLU) pools its output plane by plane.
                None => kernels::activation_max_pool(&block.activation, &self.pool, pre),
            };
        }
        let [n, c, h, w] = x.dims();
        let flat = x.reshape([n, c * h * w]);
        let hidden = DenseBlock::run_all(&self.dense, flat, taps);
        self.output.forward(hidden)
    }

    /// Names of the activation slots, in order (`conv1`, ..., `fc1`, ...).
    pub fn slot_names(&self) -> Vec<String> {
        (1..=self.blocks.len())
            .map(|i| format!("conv{i}"))
            .chain((1..=self.dense.len()).map(|i| format!("fc{i}")))
            .collect()
    }
}
