use crate::InvalidConfig;
use burn::module::{Flag, Initializer, Module, Param, RunningState};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::sigmoid};
use serde::{Deserialize, Serialize};

use crate::fused;
use crate::fused::formula::formula;
use crate::fused::{Channelwise, Pointwise};
use crate::sigmoid::SigmoidFormula;
use crate::kind::{ActivationKind, Coefficients, PerSample};

/// Adaptively parametric ReLU (Zhao et al., "Deep residual networks with adaptively parametric
/// rectifier linear units for fault diagnosis", IEEE TIE 2020): a ReLU whose negative slope is
/// computed per sample and per channel by a small squeeze-and-excitation network.
///
/// For `x` of shape `[N, C]` or `[N, C, H, W]` (any `[N, C, ...]`):
///
/// ```text
/// pos = max(x, 0)            neg = min(x, 0)
/// s   = [GAP(pos), GAP(neg)]                                  [N, 2C]  (GAP over H, W, ...)
/// α   = σ(BN(Linear(ReLU(BN(Linear(s))))))                    [N, C],  Linear: 2C → C/r → C
/// y   = pos + α · neg                                         α broadcast over H, W
/// ```
///
/// Both linears are He-normal initialised (biases zero); both BatchNorms follow PyTorch's
/// `BatchNorm1d` (momentum 0.1, ε = 1e-5, running variance updated with the unbiased batch
/// variance). Training behaviour (batch statistics, running-stat updates) applies on an autodiff
/// device in training mode, as for every Burn module; `module.valid()` uses the running
/// statistics. A training batch of one sample, where PyTorch raises, is normalised with the
/// running statistics and leaves them unchanged (a loop's last batch can be that small).
#[derive(Module, Debug)]
pub struct AprRelu {
    /// `2C → C/r`.
    pub fc1: Linear,
    /// Normalises the hidden layer.
    pub bn1: BatchNorm1d,
    /// `C/r → C`.
    pub fc2: Linear,
    /// Normalises the slope logits.
    pub bn2: BatchNorm1d,
}

/// Configuration of [`AprRelu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AprReluConfig {
    /// Reduction ratio `r` of the hidden layer (`C/r` units, at least 1). Default 1.
    pub reduction: usize,
    /// BatchNorm momentum, PyTorch's convention (weight of the new batch). Default 0.1.
    pub momentum: f64,
    /// BatchNorm ε. Default 1e-5.
    pub epsilon: f64,
}

impl Default for AprReluConfig {
    fn default() -> Self {
        Self {
            reduction: 1,
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }
}

impl AprReluConfig {
    /// Checks `reduction ≥ 1`, `momentum ∈ [0, 1]`, `epsilon > 0`.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.reduction == 0 {
            return Err(InvalidConfig::new("aprelu.reduction", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(InvalidConfig::new(
                "aprelu.momentum",
                format!("must be in [0, 1], got {}",
                self.momentum),
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(InvalidConfig::new(
                "aprelu.epsilon",
                format!("must be positive, got {}",
                self.epsilon),
            ));
        }
        Ok(())
    }

    /// Builds the module for inputs with `channels` channels (dim 1).
    pub fn init(&self, channels: usize, device: &Device) -> AprRelu {
        assert!(channels > 0, "APReLU needs at least one channel");
        let hidden = (channels / self.reduction.max(1)).max(1);
        let he_normal = |d_input, d_output| {
            let mut linear = LinearConfig::new(d_input, d_output)
                .with_initializer(Initializer::KaimingNormal {
                    gain: std::f64::consts::SQRT_2,
                    fan_out_only: false,
                })
                .init(device);
            linear.bias = Some(Param::from_tensor(Tensor::zeros([d_output], device)));
            linear
        };
        AprRelu {
            fc1: he_normal(2 * channels, hidden),
            bn1: BatchNorm1d::new(hidden, self.momentum, self.epsilon, device),
            fc2: he_normal(hidden, channels),
            bn2: BatchNorm1d::new(channels, self.momentum, self.epsilon, device),
        }
    }
}

impl ActivationKind for AprRelu {
    const KIND: &'static str = "aprelu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "adaptively parametric ReLU: SE network sets per-sample, per-channel slopes";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = false;
    type Config = AprReluConfig;

    fn validate(config: &AprReluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &AprReluConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &AprReluConfig) -> bool {
        true
    }
    fn is_learnable(_: &AprReluConfig) -> bool {
        true
    }
    fn per_sample_channelwise(&self, channels: usize) -> Option<PerSample<'_>> {
        (channels == self.channels()).then(|| PerSample {
            op: Channelwise::of::<AprReluFormula>(),
            parameters: Box::new(|summary| {
                let slopes = self.excite(summary);
                let [samples, channels] = slopes.dims();
                slopes.reshape([samples * channels, 1])
            }),
        })
    }
    fn per_sample_coefficients<const D: usize>(
        &self,
        input: Tensor<D>,
    ) -> Vec<Coefficients> {
        let values = self.slopes(input);
        vec![Coefficients { symbol: "α", range: (0.0, 1.0), values }]
    }
    fn formula(&self) -> Option<Pointwise> {
        None
    }
}

impl AprRelu {
    /// The number of channels this module expects on dim 1.
    pub fn channels(&self) -> usize {
        self.fc2.weight.dims()[1]
    }

    /// The negative slopes `α ∈ (0, 1)`, shape `[N, C]`, that `forward` would apply.
    pub fn slopes<const D: usize>(&self, input: Tensor<D>) -> Tensor<2> {
        self.check_channels(&input);
        let summary = fused::aprelu_squeeze(&input).unwrap_or_else(|| {
            let (pos, neg) = split(input);
            squeeze_parts(pos, neg)
        });
        self.excite(summary)
    }

    fn check_channels<const D: usize>(&self, input: &Tensor<D>) {
        let dims = input.dims();
        let channels = self.channels();
        assert!(
            D >= 2 && dims[1] == channels,
            "APReLU was built for {channels} channels on dim 1, but the input has shape {dims:?}"
        );
    }

    /// The excitation: the squeeze's `[N, 2C]` summary (each sample's channel means of
    /// `max(x, 0)`, then of `min(x, 0)`) → slopes `[N, C]`. For fused kernels of other crates
    /// that compute the squeeze themselves (the `models` crate's conv block computes it while
    /// the convolution's output is in cache); [`slopes`](Self::slopes) does both steps.
    pub fn excite(&self, summary: Tensor<2>) -> Tensor<2> {
        let hidden = burn::tensor::activation::relu(self.bn1.forward(self.fc1.forward(summary)));
        let logits = self.bn2.forward(self.fc2.forward(hidden));
        fused::pointwise(logits, SigmoidFormula {}).unwrap_or_else(sigmoid)
    }

    /// Applies `max(x, 0) + α · min(x, 0)` with the input-dependent slopes `α`: fused (one pass
    /// for the squeeze, one for the result) where the tensor has kernels, else composed from
    /// Burn's ops with the two parts computed once.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.check_channels(&input);
        if let Some(summary) = fused::aprelu_squeeze(&input) {
            let slopes = self.excite(summary);
            let [samples, channels] = slopes.dims();
            let parameters = slopes.clone().reshape([samples * channels, 1]);
            return fused::channelwise(input, parameters, Channelwise::of::<AprReluFormula>())
                .unwrap_or_else(|input| {
                    let (pos, neg) = split(input);
                    combine(pos, neg, slopes)
                });
        }
        let (pos, neg) = split(input);
        let slopes = self.excite(squeeze_parts(pos.clone(), neg.clone()));
        combine(pos, neg, slopes)
    }
}

formula!(
    /// APReLU's apply with one sample's channel slope: the reference's `max(x, 0) + slope ·
    /// min(x, 0)`, literally, so that a non-finite slope makes positive inputs NaN too
    /// (slope · 0), as in PyTorch, where `x > 0 ? x : slope · x` would hide it. The slope's
    /// gradient sums `min(x, 0) · grad`: an infinite or NaN `grad` where x > 0 makes it NaN
    /// (0 · inf), as in PyTorch.
    AprReluFormula { slope },
    value: |x| R::select(x.greater(0.0), x, 0.0) + slope * R::select(x.greater(0.0), 0.0, x),
    backward: |saved, grad| R::select(saved.greater(0.0), grad, grad * slope),
    parameter_backward: |x, grad| [R::select(x.greater(0.0), 0.0, x) * grad],
);

/// `[N, 2C]`: the channel means of the two parts.
fn squeeze_parts<const D: usize>(pos: Tensor<D>, neg: Tensor<D>) -> Tensor<2> {
    Tensor::cat(vec![spatial_mean(pos), spatial_mean(neg)], 1)
}

/// `pos + α · neg`, α of shape `[N, C]` broadcast over the dims after the channels.
fn combine<const D: usize>(pos: Tensor<D>, neg: Tensor<D>, slopes: Tensor<2>) -> Tensor<D> {
    let [n, c] = slopes.dims();
    let mut shape = [1usize; D];
    shape[0] = n;
    shape[1] = c;
    pos + slopes.reshape(shape) * neg
}

/// `(max(x, 0), min(x, 0))`; at `x = 0` the gradient goes to the negative part (as
/// `torch.clamp(x, max=0)` and `relu` do in the reference).
fn split<const D: usize>(input: Tensor<D>) -> (Tensor<D>, Tensor<D>) {
    (
        burn::tensor::activation::relu(input.clone()),
        input.clamp_max(0.0),
    )
}

/// `[N, C, ...] → [N, C]`, the mean over every dim after the channels.
pub(crate) fn spatial_mean<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    let dims = x.dims();
    let (n, c) = (dims[0], dims[1]);
    if D == 2 {
        return x.reshape([n, c]);
    }
    let rest: usize = dims[2..].iter().product();
    x.reshape([n, c, rest]).mean_dim(2).reshape([n, c])
}

/// PyTorch's `BatchNorm1d` on `[N, F]`: batch statistics in training (biased variance for the
/// output, unbiased for the running estimate), running statistics in evaluation.
#[derive(Module, Debug)]
pub struct BatchNorm1d {
    /// Scale γ, shape `[F]`.
    pub gamma: Param<Tensor<1>>,
    /// Shift β, shape `[F]`.
    pub beta: Param<Tensor<1>>,
    /// Running mean, shape `[F]`.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (unbiased) variance, shape `[F]`.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the new batch in the running statistics.
    pub momentum: f64,
    /// Added to the variance.
    pub epsilon: f64,
    /// Training mode flag (see [`Module::valid`]).
    pub training: Param<Flag>,
}

impl BatchNorm1d {
    /// γ = 1, β = 0, running mean 0 and variance 1, as PyTorch.
    pub fn new(features: usize, momentum: f64, epsilon: f64, device: &Device) -> Self {
        Self {
            gamma: Param::from_tensor(Tensor::ones([features], device)),
            beta: Param::from_tensor(Tensor::zeros([features], device)),
            running_mean: RunningState::new(Tensor::zeros([features], device)),
            running_var: RunningState::new(Tensor::ones([features], device)),
            momentum,
            epsilon,
            training: Param::from_bool(true),
        }
    }

    /// Normalises `[N, F]` over the batch.
    pub fn forward(&self, input: Tensor<2>) -> Tensor<2> {
        let [n, features] = input.dims();
        let device = input.device();
        let gamma = self.gamma.val().reshape([1, features]);
        let beta = self.beta.val().reshape([1, features]);
        // A batch of one has no batch variance (PyTorch raises here). A training loop's last
        // batch can hold a single sample (Burn's DataLoader has no drop_last), so that batch is
        // normalised with the running statistics, which it leaves unchanged; γ and β still
        // learn from it.
        if !(device.is_autodiff() && self.training.is_enabled()) || n == 1 {
            let mean = self
                .running_mean
                .value_sync()
                .to_device(&device)
                .reshape([1, features]);
            let var = self
                .running_var
                .value_sync()
                .to_device(&device)
                .reshape([1, features]);
            return (input - mean) / var.add_scalar(self.epsilon).sqrt() * gamma + beta;
        }
        let mean = input.clone().mean_dim(0);
        let centered = input - mean.clone();
        let var = centered.clone().square().mean_dim(0);
        let output = centered / var.clone().add_scalar(self.epsilon).sqrt() * gamma + beta;

        let momentum = self.momentum;
        let unbiased = var
            .detach()
            .reshape([features])
            .mul_scalar(n as f64 / (n as f64 - 1.0));
        let running_mean = self.running_mean.value_sync().to_device(&device);
        let running_var = self.running_var.value_sync().to_device(&device);
        self.running_mean.update(
            (running_mean.mul_scalar(1.0 - momentum)
                + mean.detach().reshape([features]).mul_scalar(momentum))
            .detach(),
        );
        self.running_var.update(
            (running_var.mul_scalar(1.0 - momentum) + unbiased.mul_scalar(momentum)).detach(),
        );
        output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn shapes_and_slope_range() {
        let module = AprReluConfig::default().init(3, &device());
        let x = Tensor::<4>::random([4, 3, 5, 5], burn::tensor::Distribution::Default, &device())
            .sub_scalar(0.5);
        assert_eq!(module.forward(x.clone()).dims(), [4, 3, 5, 5]);
        let slopes = to_vec(module.slopes(x));
        assert_eq!(slopes.len(), 12);
        assert!(slopes.iter().all(|a| *a > 0.0 && *a < 1.0));
    }

    #[test]
    fn reduction_sets_hidden_width_and_he_init() {
        let module = AprReluConfig {
            reduction: 4,
            ..Default::default()
        }
        .init(64, &device());
        assert_eq!(module.fc1.weight.dims(), [128, 16]);
        assert_eq!(module.fc2.weight.dims(), [16, 64]);
        let weights = to_vec(module.fc1.weight.val());
        let std = (weights.iter().map(|w| w * w).sum::<f32>() / weights.len() as f32).sqrt();
        let he = (2.0f32 / 128.0).sqrt();
        assert!((std - he).abs() < 0.1 * he, "std {std}, He {he}");
        assert!(
            to_vec(module.fc1.bias.as_ref().unwrap().val())
                .iter()
                .all(|b| *b == 0.0)
        );
    }

    #[test]
    fn gradients_reach_every_parameter() {
        let module = AprReluConfig::default().init(2, &device());
        let x = Tensor::<2>::random(
            [6, 2],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device(),
        );
        let grads = module.forward(x).sum().backward();
        for (name, p) in [
            ("fc1", module.fc1.weight.val()),
            ("fc2", module.fc2.weight.val()),
        ] {
            assert!(p.grad(&grads).is_some(), "{name} has no gradient");
        }
        assert!(module.bn2.gamma.val().grad(&grads).is_some());
    }

    /// A training batch of one sample (a loop's last batch) does not abort: it is normalised
    /// with the running statistics, as in evaluation, and leaves them unchanged.
    #[test]
    fn a_training_batch_of_one_uses_the_running_statistics() {
        let module = AprReluConfig::default().init(3, &device());
        let x = Tensor::<4>::random(
            [1, 3, 4, 4],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device(),
        );
        let before = to_vec(module.bn1.running_mean.value_sync());
        let y = module.forward(x.clone());
        let expected = module.clone().valid().forward(x.inner());
        assert_close(&to_vec(y.clone()), &to_vec(expected));
        assert_eq!(to_vec(module.bn1.running_mean.value_sync()), before);
        let grads = y.sum().backward();
        assert!(module.fc1.weight.val().grad(&grads).is_some());
        assert!(module.bn2.beta.val().grad(&grads).is_some());
    }

    #[test]
    fn invalid_reduction_is_rejected() {
        let config = AprReluConfig {
            reduction: 0,
            ..Default::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("reduction"));
    }
}
