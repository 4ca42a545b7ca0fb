use activations::burn::module::Module;
use activations::burn::nn::conv::{Conv2d, Conv2dConfig};
use activations::burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use activations::burn::tensor::{Device, Tensor};
use activations::{Activation, ActivationConfig};
use serde::{Deserialize, Serialize};

use crate::slots::{check_activations, check_slots, check_widths, slot_activations, slot_key};
use crate::{ConfigError, IMAGE_SIZE, NUM_CLASSES, Tap, kernels};

/// A pre-activation residual network (He et al., "Identity Mappings in Deep Residual
/// Networks", ECCV 2016), the design whose residual blocks the APReLU paper (Zhao et al., IEEE
/// TIE 2020) puts its activation into:
///
/// ```text
/// stem    conv 3×3 (padding 1) to `stem` channels
/// stages  per entry of `stages`, `blocks_per_stage` residual blocks; the first block of every
///         stage after the first halves the feature map (stride 2): 28 → 14 → 7 → ...
/// block   y = conv2(act2(BN2(conv1(act1(BN1(x)))))) + shortcut
///         shortcut = x, or a 1×1 conv (stride of conv1) of act1(BN1(x)) when the block
///         changes the channels or the size
/// head    act(BN(x)) → global average pooling → Linear to 10 classes
/// ```
///
/// The convolutions are 3×3 with padding 1 and have no bias: each feeds a BatchNorm, directly
/// or after the addition. Every activation slot (two per block, one in the head) takes its
/// module from the registry with that slot's channel count, so PReLU and APReLU get one slope
/// or one SE network per channel. The defaults (stem 16, stages `[16, 32, 64]`, 2 blocks per
/// stage) have 174,778 trainable parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResnetConfig {
    /// Output channels of the stem convolution. Default 16.
    pub stem: usize,
    /// Channels of each stage. Default `[16, 32, 64]`.
    pub stages: Vec<usize>,
    /// Residual blocks per stage. Default 2.
    pub blocks_per_stage: usize,
    /// The activation of every slot without an override. Default relu.
    pub activation: ActivationConfig,
    /// One activation per stage, overriding `activation` in both slots of each of the stage's
    /// blocks; the head uses the last stage's.
    pub stage_activations: Option<Vec<ActivationConfig>>,
}

impl Default for ResnetConfig {
    fn default() -> Self {
        Self {
            stem: 16,
            stages: vec![16, 32, 64],
            blocks_per_stage: 2,
            activation: ActivationConfig::Relu,
            stage_activations: None,
        }
    }
}

impl ResnetConfig {
    pub(crate) fn stage_slots(&self) -> Result<Vec<ActivationConfig>, ConfigError> {
        slot_activations(
            &self.activation,
            &self.stage_activations,
            self.stages.len(),
            "stage_activations",
            "stages",
        )
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.stem == 0 {
            return Err(ConfigError::new(
                "stem",
                "is 0: the stem convolution needs at least one channel, e.g. stem = 16",
            ));
        }
        if self.stages.is_empty() {
            return Err(ConfigError::new(
                "stages",
                "is empty: give at least one stage, e.g. stages = [16, 32, 64]",
            ));
        }
        check_widths("stages", &self.stages)?;
        if self.blocks_per_stage == 0 {
            return Err(ConfigError::new(
                "blocks_per_stage",
                "is 0: every stage needs at least one residual block",
            ));
        }
        check_activations("activation", std::slice::from_ref(&self.activation))?;
        check_activations("stage_activations", &self.stage_slots()?)?;
        // A stage's first block sees the previous width, its others the stage's: the narrower.
        let narrowest: Vec<usize> = std::iter::once(self.stem)
            .chain(self.stages.iter().copied())
            .collect::<Vec<_>>()
            .windows(2)
            .map(|pair| pair[0].min(pair[1]))
            .collect();
        let key = slot_key(&self.stage_activations, "stage_activations");
        check_slots(key, &self.stage_slots()?, &narrowest, true)?;
        Ok(())
    }

    /// Side of the feature maps after the last stage (each stride-2 stage rounds up).
    pub fn feature_size(&self) -> usize {
        self.stages
            .iter()
            .skip(1)
            .fold(IMAGE_SIZE, |size, _| size.div_ceil(2))
    }

    /// Builds the network.
    ///
    /// # Panics
    /// On an invalid config (see [`validate`](Self::validate)).
    pub fn init(&self, device: &Device) -> Resnet {
        if let Err(error) = self.validate() {
            panic!("invalid ResNet config: {error}");
        }
        let stage_slots = self.stage_slots().unwrap();
        let mut in_channels = self.stem;
        let mut blocks = Vec::new();
        for (stage, (&channels, activation)) in self.stages.iter().zip(&stage_slots).enumerate() {
            for block in 0..self.blocks_per_stage {
                let stride = if stage > 0 && block == 0 { 2 } else { 1 };
                blocks.push(ResidualBlock::new(
                    in_channels,
                    channels,
                    stride,
                    activation,
                    device,
                ));
                in_channels = channels;
            }
        }
        let head_activation = stage_slots.last().expect("validated: at least one stage");
        Resnet {
            stem: conv(1, self.stem, 3, 1, device),
            blocks,
            head_norm: BatchNormConfig::new(in_channels).init(device),
            head_activation: head_activation.init(in_channels, device),
            output: LinearConfig::new(in_channels, NUM_CLASSES).init(device),
            blocks_per_stage: self.blocks_per_stage,
        }
    }
}

/// A bias-free `kernel × kernel` convolution with PyTorch's default initialisation; 3×3 ones
/// pad by 1, so only the stride changes the size.
fn conv(
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    device: &Device,
) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .init(device)
}

/// One pre-activation residual block; see [`ResnetConfig`].
#[derive(Module, Debug)]
pub struct ResidualBlock {
    /// BatchNorm of the block's input.
    pub norm1: BatchNorm,
    /// The first activation slot (the block's input channels).
    pub activation1: Activation,
    /// 3×3, stride 1 or 2.
    pub conv1: Conv2d,
    /// BatchNorm between the convolutions.
    pub norm2: BatchNorm,
    /// The second activation slot (the block's output channels).
    pub activation2: Activation,
    /// 3×3, stride 1.
    pub conv2: Conv2d,
    /// 1×1 projection when the block changes the channels or the size; else the identity.
    pub shortcut: Option<Conv2d>,
}

impl ResidualBlock {
    fn new(
        in_channels: usize,
        out_channels: usize,
        stride: usize,
        activation: &ActivationConfig,
        device: &Device,
    ) -> Self {
        let projects = stride != 1 || in_channels != out_channels;
        Self {
            norm1: BatchNormConfig::new(in_channels).init(device),
            activation1: activation.init(in_channels, device),
            conv1: conv(in_channels, out_channels, 3, stride, device),
            norm2: BatchNormConfig::new(out_channels).init(device),
            activation2: activation.init(out_channels, device),
            conv2: conv(out_channels, out_channels, 3, 1, device),
            shortcut: projects.then(|| conv(in_channels, out_channels, 1, stride, device)),
        }
    }

    fn run(&self, x: Tensor<4>, name: &str, taps: &mut Option<Vec<Tap>>) -> Tensor<4> {
        // An identity shortcut adds `x` back: its gradient joins the first BatchNorm's.
        let handoff = self
            .shortcut
            .is_none()
            .then(kernels::ResidualHandoff::default);
        let handoff = handoff.as_ref();
        // Without taps, each BatchNorm and activation runs inside the convolution after it
        // (`kernels::norm_conv2d`), except where the projection reads the activation too.
        let fused = taps.is_none();
        let (hidden, shortcut) = match &self.shortcut {
            None if fused => {
                let first = (&self.norm1, &self.activation1, &self.conv1);
                let hidden = kernels::norm_conv2d(first.0, first.1, first.2, x.clone(), handoff);
                (hidden, x)
            }
            _ => {
                let pre = match handoff {
                    Some(handoff) => {
                        kernels::batch_norm_of_residual(&self.norm1, x.clone(), handoff)
                    }
                    None => kernels::batch_norm(&self.norm1, x.clone()),
                };
                let activated = activate(&self.activation1, pre, format!("{name}.1"), taps);
                let shortcut = match &self.shortcut {
                    Some(projection) => kernels::conv2d(projection, activated.clone()),
                    None => x,
                };
                (kernels::conv2d(&self.conv1, activated), shortcut)
            }
        };
        if fused {
            let second = (&self.norm2, &self.activation2, &self.conv2);
            return kernels::norm_conv2d_residual(
                second.0, second.1, second.2, hidden, shortcut, handoff,
            );
        }
        let pre = kernels::batch_norm(&self.norm2, hidden);
        let activated = activate(&self.activation2, pre, format!("{name}.2"), taps);
        kernels::conv2d_residual(&self.conv2, activated, shortcut, handoff)
    }
}

/// `activation.forward(pre)`, recording the tap when asked for.
fn activate(
    activation: &Activation,
    pre: Tensor<4>,
    name: String,
    taps: &mut Option<Vec<Tap>>,
) -> Tensor<4> {
    match taps {
        Some(taps) => {
            let post = activation.forward(pre.clone());
            taps.push(Tap::new(name, pre, post.clone()));
            post
        }
        // Nothing else holds `pre`: a fused activation may overwrite it.
        None => activation.forward(pre),
    }
}

/// The network built by [`ResnetConfig`].
#[derive(Module, Debug)]
pub struct Resnet {
    /// The stem convolution (3×3, 1 → `stem` channels).
    pub stem: Conv2d,
    /// Every residual block, stage after stage.
    pub blocks: Vec<ResidualBlock>,
    /// BatchNorm before the head's activation.
    pub head_norm: BatchNorm,
    /// The head's activation slot.
    pub head_activation: Activation,
    /// Linear from the pooled channels to the class logits.
    pub output: Linear,
    /// Blocks per stage, for the slot names.
    pub blocks_per_stage: usize,
}

impl Resnet {
    /// Logits `[N, 10]` for images `[N, 1, 28, 28]`, plus the taps when asked for.
    pub(crate) fn run(&self, images: Tensor<4>, taps: &mut Option<Vec<Tap>>) -> Tensor<2> {
        let mut x = kernels::conv2d(&self.stem, images);
        for (index, block) in self.blocks.iter().enumerate() {
            x = block.run(x, &self.block_name(index), taps);
        }
        let pre = kernels::batch_norm(&self.head_norm, x);
        let x = activate(&self.head_activation, pre, "head".into(), taps);
        let [n, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([n, c]);
        self.output.forward(pooled)
    }

    /// `s2b1` for the first block of the second stage.
    fn block_name(&self, index: usize) -> String {
        let per_stage = self.blocks_per_stage.max(1);
        format!("s{}b{}", index / per_stage + 1, index % per_stage + 1)
    }

    /// Names of the activation slots, in order: `s1b1.1`, `s1b1.2`, ..., `head`.
    pub fn slot_names(&self) -> Vec<String> {
        (0..self.blocks.len())
            .flat_map(|index| {
                let block = self.block_name(index);
                [format!("{block}.1"), format!("{block}.2")]
            })
            .chain(std::iter::once("head".to_string()))
            .collect()
    }

    /// The activation module of each slot, in the order of [`slot_names`](Self::slot_names).
    pub fn slot_activations(&self) -> Vec<&Activation> {
        self.blocks
            .iter()
            .flat_map(|block| [&block.activation1, &block.activation2])
            .chain(std::iter::once(&self.head_activation))
            .collect()
    }

    /// The convolutions with their names: `stem`, then per block `conv1`, `conv2` and the
    /// projection `shortcut` where there is one.
    pub fn convolutions(&self) -> Vec<(String, &Conv2d)> {
        let mut list = vec![("stem".to_string(), &self.stem)];
        for (index, block) in self.blocks.iter().enumerate() {
            let name = self.block_name(index);
            list.push((format!("{name}.conv1"), &block.conv1));
            list.push((format!("{name}.conv2"), &block.conv2));
            if let Some(shortcut) = &block.shortcut {
                list.push((format!("{name}.shortcut"), shortcut));
            }
        }
        list
    }
}
