use crate::InvalidConfig;
use crate::acon_c::{AconCFormula, AconInit, composite};
use crate::aprelu::{BatchNorm1d, spatial_mean};
use crate::fused::{self, Channelwise, Pointwise};
use crate::kind::{ActivationKind, Coefficients, PerSample, host_values, means_from_summary};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, activation::sigmoid};
use serde::{Deserialize, Serialize};

/// Meta-ACON (Ma et al., "Activate or Not: Learning Customized Activation", CVPR 2021): ACON-C
/// whose switching factor `β` is computed per sample and channel by a small network on the
/// channel means, so each sample decides how much to activate.
///
/// ```text
/// s = mean over H, W, ... of x                                    [N, C]
/// β = σ(BN(Linear(BN(Linear(s)))))                                [N, C],  C → max(r, C/r) → C
/// f(x) = (p1 − p2)·x · σ(β·(p1 − p2)·x) + p2·x                     p1, p2 learned per channel
/// ```
///
/// As the authors' `MetaAconC` (`nmaac/acon`): the two 1×1 convolutions on the pooled
/// `[N, C, 1, 1]` are linears with PyTorch's default initialisation, each followed by a
/// BatchNorm (PyTorch's, momentum 0.1, ε = 1e-5; no ReLU between them), the hidden width is
/// `max(r, C / r)` with `r = 16`, and `p1`, `p2` ~ N(0, 1). On `[N, C]` the means are the input
/// itself. The apply is ACON-C's channel-wise kernel with one row of parameters per sample and
/// channel.
#[derive(Module, Debug)]
pub struct MetaAconC {
    /// `C → max(r, C/r)`.
    pub fc1: Linear,
    /// Normalises the hidden layer.
    pub bn1: BatchNorm1d,
    /// `max(r, C/r) → C`.
    pub fc2: Linear,
    /// Normalises the switching logits.
    pub bn2: BatchNorm1d,
    /// `p1`, shape `[C]`.
    pub p1: Param<Tensor<1>>,
    /// `p2`, shape `[C]`.
    pub p2: Param<Tensor<1>>,
}

/// Configuration of [`MetaAconC`] (`kind = "meta_acon"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaAconConfig {
    /// `r`: the hidden layer has `max(r, C / r)` units. Default 16 (the authors').
    pub reduction: usize,
    /// How `p1` and `p2` start: `"normal"` (default, the authors' code) or `"swish"`.
    pub init: AconInit,
    /// BatchNorm momentum, PyTorch's convention. Default 0.1.
    pub momentum: f64,
    /// BatchNorm ε. Default 1e-5.
    pub epsilon: f64,
}

impl Default for MetaAconConfig {
    fn default() -> Self {
        Self {
            reduction: 16,
            init: AconInit::Normal,
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }
}

impl MetaAconConfig {
    /// Checks `reduction ≥ 1`, `momentum ∈ [0, 1]`, `epsilon > 0`.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.reduction == 0 {
            return Err(InvalidConfig::new(
                "meta_acon.reduction",
                "must be at least 1 (the hidden layer has max(r, C / r) units)",
            ));
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(InvalidConfig::new(
                "meta_acon.momentum",
                format!("must be in [0, 1], got {}", self.momentum),
            ));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(InvalidConfig::new(
                "meta_acon.epsilon",
                format!("must be positive, got {}", self.epsilon),
            ));
        }
        Ok(())
    }

    /// Builds the module for inputs with `channels` channels (dim 1).
    pub fn init(&self, channels: usize, device: &Device) -> MetaAconC {
        assert!(channels > 0, "Meta-ACON needs at least one channel");
        let reduction = self.reduction.max(1);
        let hidden = reduction.max(channels / reduction);
        let (p1, p2) = self.init.p1_p2(channels, device);
        MetaAconC {
            // Burn's default initialiser is PyTorch's (uniform, bound 1/√fan_in, bias too).
            fc1: LinearConfig::new(channels, hidden).init(device),
            bn1: BatchNorm1d::new(hidden, self.momentum, self.epsilon, device),
            fc2: LinearConfig::new(hidden, channels).init(device),
            bn2: BatchNorm1d::new(channels, self.momentum, self.epsilon, device),
            p1: Param::from_tensor(p1),
            p2: Param::from_tensor(p2),
        }
    }
}

impl MetaAconC {
    /// The number of channels this module expects on dim 1.
    pub fn channels(&self) -> usize {
        self.p1.dims()[0]
    }

    /// The switching factors `β ∈ (0, 1)`, shape `[N, C]`, that `forward` would apply.
    pub fn switching<const D: usize>(&self, input: Tensor<D>) -> Tensor<2> {
        self.check_channels(&input);
        self.switching_from_means(spatial_mean(input))
    }

    /// `β` from the channel means `[N, C]`.
    pub fn switching_from_means(&self, means: Tensor<2>) -> Tensor<2> {
        let hidden = self.bn1.forward(self.fc1.forward(means));
        sigmoid(self.bn2.forward(self.fc2.forward(hidden)))
    }

    /// `[N·C, 3]`: each sample's and channel's `p1`, `p2`, `β`, as the channel-wise kernels read
    /// them.
    fn parameters(&self, beta: Tensor<2>) -> Tensor<2> {
        let [samples, channels] = beta.dims();
        let per_sample =
            |p: &Param<Tensor<1>>| p.val().reshape([1, channels]).expand([samples, channels]);
        let rows = vec![per_sample(&self.p1), per_sample(&self.p2), beta];
        Tensor::stack::<3>(rows, 2).reshape([samples * channels, 3])
    }

    fn check_channels<const D: usize>(&self, input: &Tensor<D>) {
        let (channels, dims) = (self.channels(), input.dims());
        assert!(
            D >= 2 && dims[1] == channels,
            "Meta-ACON was built for {channels} channels on dim 1, but the input has shape \
             {dims:?}"
        );
    }

    /// Applies Meta-ACON to `[N, C, ...]`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let beta = self.switching(input.clone());
        let parameters = self.parameters(beta.clone());
        fused::channelwise(input, parameters, Channelwise::of::<AconCFormula>())
            .unwrap_or_else(|input| self.composite(input, beta))
    }

    /// The same with Burn's built-in tensor ops.
    fn composite<const D: usize>(&self, input: Tensor<D>, beta: Tensor<2>) -> Tensor<D> {
        let [samples, channels] = beta.dims();
        let mut shape = [1usize; D];
        shape[1] = channels;
        let (p1, p2) = (self.p1.val().reshape(shape), self.p2.val().reshape(shape));
        shape[0] = samples;
        composite(p1, p2, beta.reshape(shape), input)
    }
}

impl ActivationKind for MetaAconC {
    const KIND: &'static str = "meta_acon";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "ACON-C with β per sample and channel from a small network on the channel means";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = false;
    type Config = MetaAconConfig;
    fn validate(config: &MetaAconConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &MetaAconConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &MetaAconConfig) -> bool {
        true
    }
    fn is_learnable(_: &MetaAconConfig) -> bool {
        true
    }
    fn per_sample_channelwise(&self, channels: usize) -> Option<PerSample<'_>> {
        (channels == self.channels()).then(|| PerSample {
            op: Channelwise::of::<AconCFormula>(),
            parameters: Box::new(|summary| {
                let beta = self.switching_from_means(means_from_summary(summary));
                self.parameters(beta)
            }),
        })
    }
    fn per_sample_coefficients<const D: usize>(
        &self,
        input: Tensor<D>,
    ) -> Vec<Coefficients> {
        let values = self.switching(input);
        vec![Coefficients { symbol: "β", range: (0.0, 1.0), values }]
    }
    fn channel_parameters(&self) -> Vec<(&'static str, Vec<f32>)> {
        [("p1", &self.p1), ("p2", &self.p2)]
            .map(|(name, p)| (name, host_values(p.val())))
            .into()
    }
    fn formula(&self) -> Option<Pointwise> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::Distribution;

    #[test]
    fn hidden_width_is_the_authors_and_bad_reductions_are_refused() {
        let module = MetaAconConfig::default().init(64, &device());
        assert_eq!(module.fc1.weight.dims(), [64, 16]);
        let module = MetaAconConfig::default().init(512, &device());
        assert_eq!(module.fc1.weight.dims(), [512, 32]);
        let error = MetaAconConfig {
            reduction: 0,
            ..MetaAconConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("meta_acon.reduction"), "{error}");
    }

    /// The fused channel-wise kernel (one row of parameters per sample and channel) against the
    /// composite, on one module: value, input gradient, p1's and fc1's gradients.
    #[test]
    fn fused_equals_composite_with_per_sample_rows() {
        let module = MetaAconConfig {
            reduction: 2,
            ..MetaAconConfig::default()
        }
        .init(6, &device());
        let x = Tensor::<4>::random([3, 6, 5, 4], Distribution::Normal(0.0, 2.0), &device());
        let upstream = Tensor::<4>::random([3, 6, 5, 4], Distribution::Default, &device());
        let run = || {
            let x = x.clone().require_grad();
            let y = module.forward(x.clone());
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let p1 = module.p1.val().grad(&grads).unwrap();
            let fc1 = module.fc1.weight.val().grad(&grads).unwrap();
            [to_vec(y), to_vec(x.grad(&grads).unwrap()), to_vec(p1), to_vec(fc1)]
        };
        let fused = run();
        let composite = crate::fused::without_fused(run);
        for (what, (fused, composite)) in ["value", "grad", "p1", "fc1"].iter().zip(fused.iter().zip(&composite)) {
            let scale = composite.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            for (a, e) in fused.iter().zip(composite) {
                assert!((a - e).abs() <= 1e-5 * scale, "{what}: fused {a}, composite {e}");
            }
        }
    }

    #[test]
    fn swish_init_with_a_switching_factor_of_one_half_everywhere() {
        let config = MetaAconConfig {
            init: AconInit::Swish,
            ..MetaAconConfig::default()
        };
        let mut module = config.init(2, &device());
        // Zero logits: β = σ(0) = 1/2, so f(x) = x·σ(x/2).
        module.fc2.weight = Param::from_tensor(Tensor::zeros([16, 2], &device()));
        module.fc2.bias = Some(Param::from_tensor(Tensor::zeros([2], &device())));
        let x = Tensor::<2>::from_floats([[-1.0, 2.0], [0.5, -3.0]], &device());
        let y = to_vec(module.forward(x));
        let swish = |x: f32| x / (1.0 + (-x / 2.0).exp());
        assert_close(&y, &[swish(-1.0), swish(2.0), swish(0.5), swish(-3.0)]);
    }
}
