use crate::InvalidConfig;
use crate::aprelu::spatial_mean;
use crate::fused::{self, Channelwise, Pointwise, formula::formula};
use crate::kind::{ActivationKind, Coefficients, PerSample, means_from_summary};
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::relu, activation::sigmoid};
use serde::{Deserialize, Serialize};

/// Dynamic ReLU, variant B (Chen et al., "Dynamic ReLU", ECCV 2020): a piecewise-linear
/// function per sample and channel whose two lines are computed from the input.
///
/// ```text
/// s  = mean over H, W, ... of x                                     [N, C]
/// θ  = 2σ(Linear(ReLU(Linear(s)))) − 1                              [N, 4C],  C → C/r → 4C
/// (a¹, a², b¹, b²)_c = (1, 0, 0, 0) + (λa θ, λa θ, λb θ, λb θ)_c    λa = 1, λb = 0.5
/// y_c = max(a¹_c · x_c + b¹_c, a²_c · x_c + b²_c)
/// ```
///
/// `K = 2` lines: it starts near ReLU (`a¹ = 1`, `a² = 0`: the residual around the ReLU
/// initialisation). As the widely used reference implementation (`DyReLUB` of
/// `Islanna/DynamicReLU`): `θ` viewed as `[N, C, 2K]`, slopes first; both linears with
/// PyTorch's default initialisation; the gradient of the maximum goes to the first line on a
/// tie, as `torch.max(dim)`. On `[N, C]` the means are the input itself.
#[derive(Module, Debug)]
pub struct DyRelu {
    /// `C → C/r`.
    pub fc1: Linear,
    /// `C/r → 4C`.
    pub fc2: Linear,
}

/// Configuration of [`DyRelu`] (`kind = "dyrelu"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DyReluConfig {
    /// `r`: the hidden layer has `C / r` units. Default 4; at most the slot's channel count.
    pub reduction: usize,
}

impl Default for DyReluConfig {
    fn default() -> Self {
        Self { reduction: 4 }
    }
}

/// `λa` for the slopes and `λb` for the intercepts, and the initial `(a¹, a², b¹, b²)`.
const LAMBDAS: [f32; 4] = [1.0, 1.0, 0.5, 0.5];
const INITIAL: [f32; 4] = [1.0, 0.0, 0.0, 0.0];

impl DyReluConfig {
    /// Checks `reduction ≥ 1`.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.reduction == 0 {
            return Err(InvalidConfig::new(
                "dyrelu.reduction",
                "must be at least 1 (the hidden layer has C / reduction units)",
            ));
        }
        Ok(())
    }

    /// Checks that a slot with `channels` channels keeps at least one hidden unit.
    pub fn check_channels(&self, channels: usize) -> Result<(), InvalidConfig> {
        if self.reduction > channels {
            return Err(InvalidConfig::new(
                "dyrelu.reduction",
                format!(
                    "is {} but the slot has {channels} channels, which would leave no hidden \
                     unit: use a reduction of at most {channels}",
                    self.reduction
                ),
            ));
        }
        Ok(())
    }

    /// Builds the module for inputs with `channels` channels (dim 1). A reduction wider than
    /// the channels (refused by [`check_channels`](Self::check_channels), which the models
    /// call) still gets one hidden unit here, where PyTorch's reference would have none.
    pub fn init(&self, channels: usize, device: &Device) -> DyRelu {
        let hidden = (channels / self.reduction.max(1)).max(1);
        DyRelu {
            // Burn's default initialiser is PyTorch's (uniform, bound 1/√fan_in, bias too).
            fc1: LinearConfig::new(channels, hidden).init(device),
            fc2: LinearConfig::new(hidden, 4 * channels).init(device),
        }
    }
}

formula!(
    /// The larger of two lines, `max(a1·x + b1, a2·x + b2)`, with the gradient on the first
    /// where they tie (`torch.max(dim)` returns the first maximum).
    DyReluFormula { a1, a2, b1, b2 },
    value: |x| {
        let (first, second) = (a1 * x + b1, a2 * x + b2);
        R::select(second.greater(first), second, first)
    },
    backward: |x, grad| {
        let second_wins = (a2 * x + b2).greater(a1 * x + b1);
        grad * R::select(second_wins, a2, a1)
    },
    parameter_backward: |x, grad| {
        let second_wins = (a2 * x + b2).greater(a1 * x + b1);
        let on_first = R::select(second_wins, -0.0, grad);
        let on_second = R::select(second_wins, grad, -0.0);
        [on_first * x, on_second * x, on_first, on_second]
    },
);

impl DyRelu {
    /// The number of channels this module expects on dim 1.
    pub fn channels(&self) -> usize {
        self.fc1.weight.dims()[0]
    }

    /// The coefficients `(a¹, a², b¹, b²)` of each sample and channel, `[N, C, 4]`.
    pub fn coefficients<const D: usize>(&self, input: Tensor<D>) -> Tensor<3> {
        let (channels, dims) = (self.channels(), input.dims());
        assert!(
            D >= 2 && dims[1] == channels,
            "DyReLU was built for {channels} channels on dim 1, but the input has shape {dims:?}"
        );
        self.coefficients_from_means(spatial_mean(input))
    }

    /// The coefficients from the channel means `[N, C]`.
    pub fn coefficients_from_means(&self, means: Tensor<2>) -> Tensor<3> {
        let [samples, channels] = means.dims();
        let hidden = relu(self.fc1.forward(means));
        let theta = sigmoid(self.fc2.forward(hidden)).mul_scalar(2.0).sub_scalar(1.0);
        let device = theta.device();
        let lambdas = Tensor::<1>::from_floats(LAMBDAS, &device).reshape([1, 1, 4]);
        let initial = Tensor::<1>::from_floats(INITIAL, &device).reshape([1, 1, 4]);
        theta.reshape([samples, channels, 4]) * lambdas + initial
    }

    /// Applies DyReLU-B to `[N, C, ...]`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let coefficients = self.coefficients(input.clone());
        let [samples, channels, _] = coefficients.dims();
        let parameters = coefficients.clone().reshape([samples * channels, 4]);
        fused::channelwise(input, parameters, Channelwise::of::<DyReluFormula>())
            .unwrap_or_else(|input| composite(input, coefficients))
    }
}

/// The same with Burn's built-in tensor ops.
fn composite<const D: usize>(input: Tensor<D>, coefficients: Tensor<3>) -> Tensor<D> {
    let [samples, channels, _] = coefficients.dims();
    let mut shape = [1usize; D];
    shape[0] = samples;
    shape[1] = channels;
    let part = |k: usize| coefficients.clone().narrow(2, k, 1).reshape(shape);
    let first = part(0) * input.clone() + part(2);
    let second = part(1) * input + part(3);
    first.clone().mask_where(second.clone().greater(first), second)
}

impl ActivationKind for DyRelu {
    const KIND: &'static str = "dyrelu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "dynamic ReLU (B): max of two lines whose coefficients a small network computes per sample";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = false;
    type Config = DyReluConfig;
    fn validate(config: &DyReluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn check_slot(config: &DyReluConfig, channels: usize, _: bool) -> Result<(), InvalidConfig> {
        config.check_channels(channels)
    }
    fn from_config(config: &DyReluConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &DyReluConfig) -> bool {
        true
    }
    fn is_learnable(_: &DyReluConfig) -> bool {
        true
    }
    fn per_sample_channelwise(&self, channels: usize) -> Option<PerSample<'_>> {
        (channels == self.channels()).then(|| PerSample {
            op: Channelwise::of::<DyReluFormula>(),
            parameters: Box::new(|summary| {
                let coefficients = self.coefficients_from_means(means_from_summary(summary));
                let [samples, channels, _] = coefficients.dims();
                coefficients.reshape([samples * channels, 4])
            }),
        })
    }
    /// The two slopes; the intercepts are left out (they scale with the input's range).
    fn per_sample_coefficients<const D: usize>(
        &self,
        input: Tensor<D>,
    ) -> Vec<Coefficients> {
        let coefficients = self.coefficients(input);
        let [samples, channels, _] = coefficients.dims();
        let slope = |k: usize| coefficients.clone().narrow(2, k, 1).reshape([samples, channels]);
        // a = initial ± λa: a¹ in (0, 2), a² in (−1, 1).
        vec![
            Coefficients { symbol: "a¹", range: (0.0, 2.0), values: slope(0) },
            Coefficients { symbol: "a²", range: (-1.0, 1.0), values: slope(1) },
        ]
    }
    fn formula(&self) -> Option<Pointwise> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::module::Param;
    use burn::tensor::Distribution;

    #[test]
    fn zero_weights_give_relu() {
        let mut module = DyReluConfig { reduction: 2 }.init(2, &device());
        // θ = 2σ(0) − 1 = 0: the initial lines, x and 0.
        module.fc2.weight = Param::from_tensor(Tensor::zeros([1, 8], &device()));
        module.fc2.bias = Some(Param::from_tensor(Tensor::zeros([8], &device())));
        let x = Tensor::<2>::from_floats([[-1.0, 2.0], [0.5, -3.0]], &device());
        assert_close(&to_vec(module.forward(x)), &[0.0, 2.0, 0.5, 0.0]);
    }

    #[test]
    fn a_reduction_above_the_channel_count_is_refused() {
        let error = DyReluConfig { reduction: 8 }.check_channels(4).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("dyrelu.reduction") && message.contains("at most 4"), "{message}");
        assert!(DyReluConfig { reduction: 0 }.validate().is_err());
    }

    /// The fused kernel against the composite on one module: value and every gradient.
    #[test]
    fn fused_equals_composite() {
        let module = DyReluConfig::default().init(8, &device());
        let x = Tensor::<4>::random([3, 8, 5, 4], Distribution::Normal(0.0, 2.0), &device());
        let upstream = Tensor::<4>::random([3, 8, 5, 4], Distribution::Default, &device());
        let run = || {
            let x = x.clone().require_grad();
            let y = module.forward(x.clone());
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let fc2 = module.fc2.weight.val().grad(&grads).unwrap();
            [to_vec(y), to_vec(x.grad(&grads).unwrap()), to_vec(fc2)]
        };
        let fused = run();
        let composite = crate::fused::without_fused(run);
        for (what, (fused, composite)) in ["value", "grad", "fc2"].iter().zip(fused.iter().zip(&composite)) {
            let scale = composite.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (a, e) in fused.iter().zip(composite) {
                assert!((a - e).abs() <= 1e-5 * scale, "{what}: fused {a}, composite {e}");
            }
        }
    }
}
