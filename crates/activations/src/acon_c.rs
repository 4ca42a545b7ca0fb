use crate::InvalidConfig;
use crate::fused::{self, Channelwise, Pointwise, Real, formula::formula};
use crate::kind::{ActivationKind, channelwise_derivative, host_values};
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor, activation::sigmoid};
use serde::{Deserialize, Serialize};

/// ACON-C (Ma et al., "Activate or Not: Learning Customized Activation", CVPR 2021): a learned
/// choice, per channel, between activating and not.
///
/// ```text
/// f(x) = (p1 − p2)·x · σ(β·(p1 − p2)·x) + p2·x
/// ```
///
/// with `p1`, `p2` and the switching factor `β` learned per channel (dim 1 of `[N, C, ...]`).
/// `p1 = 1, p2 = 0` is Swish with `β`; `β → ∞` gives `max(p1·x, p2·x)`, `β = 0` the linear
/// `(p1 + p2)/2 · x`. Computed as the authors' code (`nmaac/acon`, `AconC`) writes it, so that
/// special values (±inf, NaN) and every gradient follow PyTorch's autograd of that expression.
/// Initialisation as that code: `p1`, `p2` ~ N(0, 1) per channel, `β = 1` (or `init = "swish"`).
#[derive(Module, Debug)]
pub struct AconC {
    /// `p1`, shape `[C]`.
    pub p1: Param<Tensor<1>>,
    /// `p2`, shape `[C]`.
    pub p2: Param<Tensor<1>>,
    /// The switching factor `β`, shape `[C]`.
    pub beta: Param<Tensor<1>>,
}

/// How [`AconC`] starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AconInit {
    /// `p1`, `p2` ~ N(0, 1) per channel, as the authors' code (the default).
    #[default]
    Normal,
    /// `p1 = 1`, `p2 = 0`: Swish with the configured `β`.
    Swish,
}

impl AconInit {
    /// The initial `p1` and `p2` of `channels` channels.
    pub(crate) fn p1_p2(self, channels: usize, device: &Device) -> (Tensor<1>, Tensor<1>) {
        match self {
            AconInit::Normal => {
                let normal = Distribution::Normal(0.0, 1.0);
                (
                    Tensor::random([channels], normal, device),
                    Tensor::random([channels], normal, device),
                )
            }
            AconInit::Swish => (
                Tensor::ones([channels], device),
                Tensor::zeros([channels], device),
            ),
        }
    }
}

/// Configuration of [`AconC`] (`kind = "acon_c"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AconCConfig {
    /// How `p1` and `p2` start: `"normal"` (default, the authors' code) or `"swish"`.
    pub init: AconInit,
    /// Initial `β` of every channel. Default 1.
    pub beta: f64,
}

impl Default for AconCConfig {
    fn default() -> Self {
        Self {
            init: AconInit::Normal,
            beta: 1.0,
        }
    }
}

impl AconCConfig {
    /// Checks `beta` is finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !self.beta.is_finite() {
            return Err(InvalidConfig::new(
                "acon_c.beta",
                format!("must be finite, got {}", self.beta),
            ));
        }
        Ok(())
    }

    /// Builds the module for a slot with `channels` channels.
    pub fn init(&self, channels: usize, device: &Device) -> AconC {
        assert!(channels > 0, "ACON-C needs at least one channel");
        let (p1, p2) = self.init.p1_p2(channels, device);
        AconC {
            p1: Param::from_tensor(p1),
            p2: Param::from_tensor(p2),
            beta: Param::from_tensor(Tensor::full([channels], self.beta, device)),
        }
    }
}

formula!(
    /// ACON-C with one channel's `p1`, `p2`, `β`, in the order of operations of the authors'
    /// `(p1·x − p2·x) · σ(β·(p1·x − p2·x)) + p2·x`, and the gradients autograd takes through it.
    AconCFormula { p1, p2, beta },
    value: |x| {
        let difference = p1 * x - p2 * x;
        difference * (beta * difference).sigmoid() + p2 * x
    },
    backward: |x, grad| {
        let parts = BackwardParts::new(p1, p2, beta, x, grad);
        parts.difference_grad * p1 - parts.difference_grad * p2 + grad * p2
    },
    parameter_backward: |x, grad| {
        let parts = BackwardParts::new(p1, p2, beta, x, grad);
        let through_p1 = parts.difference_grad * x;
        [through_p1, -through_p1 + grad * x, parts.switch_grad * parts.difference]
    },
);

/// What autograd carries back through ACON-C's expression, shared by the input's and the
/// parameters' gradients.
struct BackwardParts<R> {
    /// `p1·x − p2·x`.
    difference: R,
    /// The gradient reaching `p1·x − p2·x`: through the product and through the switch.
    difference_grad: R,
    /// The gradient reaching `β·(p1·x − p2·x)`: `grad · difference · (1 − σ)σ`, PyTorch's
    /// sigmoid_backward.
    switch_grad: R,
}

impl<R: Real> BackwardParts<R> {
    #[inline(always)]
    fn new(p1: R, p2: R, beta: R, x: R, grad: R) -> Self {
        let difference = p1 * x - p2 * x;
        let switch = (beta * difference).sigmoid();
        let switch_grad = grad * difference * (-(switch - 1.0)) * switch;
        Self {
            difference,
            difference_grad: grad * switch + switch_grad * beta,
            switch_grad,
        }
    }
}

impl AconC {
    /// The number of channels (of `p1`, `p2`, `β`).
    pub fn channels(&self) -> usize {
        self.p1.dims()[0]
    }

    /// `[C, 3]`: each channel's `p1`, `p2`, `β`, as the channel-wise kernels read them.
    pub fn parameters(&self) -> Tensor<2> {
        Tensor::stack(vec![self.p1.val(), self.p2.val(), self.beta.val()], 1)
    }

    /// Applies ACON-C; input `[N, C, ...]` (or any shape with one channel).
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.check_channels(&input);
        fused::channelwise(input, self.parameters(), Channelwise::of::<AconCFormula>())
            .unwrap_or_else(|input| self.composite(input))
    }

    fn check_channels<const D: usize>(&self, input: &Tensor<D>) {
        let (channels, dims) = (self.channels(), input.dims());
        assert!(
            channels == 1 || (D >= 2 && dims[1] == channels),
            "ACON-C has parameters for {channels} channels, but the input has shape {dims:?}: \
             its dim 1 must have {channels} channels"
        );
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let mut shape = [1usize; D];
        if self.channels() > 1 {
            shape[1] = self.channels();
        }
        let [p1, p2, beta] = [&self.p1, &self.p2, &self.beta].map(|p| p.val().reshape(shape));
        composite(p1, p2, beta, input)
    }
}

/// ACON-C with Burn's ops, the parameters broadcast against `input`: the fallback of ACON-C and
/// Meta-ACON on backends without the channel-wise kernel.
pub(crate) fn composite<const D: usize>(
    p1: Tensor<D>,
    p2: Tensor<D>,
    beta: Tensor<D>,
    input: Tensor<D>,
) -> Tensor<D> {
    let difference = p1 * input.clone() - p2.clone() * input.clone();
    difference.clone() * sigmoid(beta * difference) + p2 * input
}

impl ActivationKind for AconC {
    const KIND: &'static str = "acon_c";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "(p1−p2)x·σ(β(p1−p2)x) + p2·x, learned per channel: activate or not (ACON-C)";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = AconCConfig;
    fn validate(config: &AconCConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &AconCConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &AconCConfig) -> bool {
        true
    }
    fn is_learnable(_: &AconCConfig) -> bool {
        true
    }
    /// The formula of the first channel (plots show one curve per module).
    fn formula(&self) -> Option<Pointwise> {
        let parameters = self.parameters().slice([0..1, 0..3]);
        let row = parameters.into_data().convert::<f32>().try_into_vec::<f32>().ok()?;
        Some(Channelwise::of::<AconCFormula>().at(&row))
    }
    fn channelwise(&self, channels: usize) -> Option<(Channelwise, Tensor<2>)> {
        (self.channels() == 1 || self.channels() == channels)
            .then(|| (Channelwise::of::<AconCFormula>(), self.parameters()))
    }
    fn channel_parameters(&self) -> Vec<(&'static str, Vec<f32>)> {
        [("p1", &self.p1), ("p2", &self.p2), ("β", &self.beta)]
            .map(|(name, p)| (name, host_values(p.val())))
            .into()
    }

    /// Each channel's derivative (channels on dim 1).
    fn derivative<const D: usize>(&self, input: Tensor<D>) -> Option<Tensor<D>> {
        self.check_channels(&input);
        let op = Channelwise::of::<AconCFormula>();
        Some(channelwise_derivative(op, self.parameters(), input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn module(p1: f32, p2: f32, beta: f32) -> AconC {
        let param = |v: f32| Param::from_tensor(Tensor::from_floats([v], &device()));
        AconC {
            p1: param(p1),
            p2: param(p2),
            beta: param(beta),
        }
    }

    #[test]
    fn swish_is_the_special_case_p1_one_p2_zero() {
        let acon = module(1.0, 0.0, 1.0);
        let (y, g) = value_and_grad(&[-1.0, 0.0, 1.0], |x| acon.forward(x));
        assert_close(&y, &[-0.268_941_43, 0.0, 0.731_058_6]);
        assert_close(&g, &[0.072_329, 0.5, 0.927_671]);
    }

    #[test]
    fn a_large_switching_factor_approaches_the_maximum_of_the_two_lines() {
        let acon = module(1.0, 0.25, 100.0);
        let (y, _) = value_and_grad(&[-2.0, 3.0], |x| acon.forward(x));
        assert_close(&y, &[-0.5, 3.0]);
    }

    #[test]
    fn swish_init_and_config_errors() {
        let config = AconCConfig {
            init: AconInit::Swish,
            beta: 2.0,
        };
        let acon = config.init(3, &device());
        assert_close(&to_vec(acon.parameters().reshape([9])), &[
            1.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0, 0.0, 2.0,
        ]);
        let error = AconCConfig {
            beta: f64::NAN,
            ..AconCConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("acon_c.beta"), "{error}");
    }
}
