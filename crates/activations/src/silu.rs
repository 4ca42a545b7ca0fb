use crate::InvalidConfig;
use crate::fused::{self, Channelwise, Pointwise, formula::formula};
use crate::kind::{ActivationKind, channelwise_derivative, host_values};
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, activation::sigmoid};
use serde::{Deserialize, Serialize};

/// SiLU / Swish (Elfwing et al. 2017; Ramachandran et al. 2017): `x σ(β x)`.
///
/// PyTorch: `nn.SiLU()` is `β = 1`. Swish's `β` can be set, or learned (one scalar, or one per
/// channel with `per_channel = true`, initialised to `beta`).
/// `SiLU'(x) = σ(βx) + β x σ(βx)(1 - σ(βx))`; `∂/∂β = x² σ(βx)(1 - σ(βx))`.
#[derive(Module, Debug)]
pub struct Silu {
    /// Fixed `β` (used when `learnable_beta` is `None`).
    pub beta: f64,
    /// Learned `β`, shape `[1]` or `[C]` (one per channel, dim 1 of the input).
    pub learnable_beta: Option<Param<Tensor<1>>>,
}

/// Configuration of [`Silu`] (`kind = "silu"` or its alias `"swish"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiluConfig {
    /// `β` in `x σ(βx)`. Default 1 (SiLU).
    pub beta: f64,
    /// Learn `β` by gradient descent. Default false.
    pub learnable: bool,
    /// With `learnable`: one `β` per channel (the slot's channel count) instead of one shared
    /// by all. Default false.
    pub per_channel: bool,
}

impl Default for SiluConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            learnable: false,
            per_channel: false,
        }
    }
}

impl SiluConfig {
    /// Checks `beta` is finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !self.beta.is_finite() {
            return Err(InvalidConfig::new(
                "silu.beta",
                format!("must be finite, got {}", self.beta),
            ));
        }
        if self.per_channel && !self.learnable {
            return Err(InvalidConfig::new(
                "silu.per_channel",
                "needs learnable = true (a fixed β is one number); set learnable = true or \
                 remove per_channel",
            ));
        }
        Ok(())
    }

    /// Builds the module for a slot with `channels` channels (used with `per_channel`).
    pub fn init(&self, channels: usize, device: &Device) -> Silu {
        let count = if self.per_channel { channels } else { 1 };
        Silu {
            beta: self.beta,
            learnable_beta: self
                .learnable
                .then(|| Param::from_tensor(Tensor::full([count], self.beta, device))),
        }
    }
}

impl Silu {
    fn scaled<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        match &self.learnable_beta {
            Some(beta) => {
                let [count] = beta.dims();
                let mut shape = [1; D];
                if count > 1 {
                    shape[1] = count;
                }
                input * beta.val().reshape(shape)
            }
            None if self.beta == 1.0 => input,
            None => input.mul_scalar(self.beta),
        }
    }

    /// Applies `x σ(βx)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if let Some(op) = ActivationKind::pointwise(self) {
            return fused::pointwise(input, op).unwrap_or_else(|input| self.composite(input));
        }
        let channels = if D >= 2 { input.dims()[1] } else { 1 };
        match self.channelwise(channels) {
            Some((op, parameters)) => fused::channelwise(input, parameters, op)
                .unwrap_or_else(|input| self.composite(input)),
            None => {
                let dims = input.dims();
                panic!(
                    "SiLU has one β per channel for {} channels, but the input has shape \
                     {dims:?}: its dim 1 must have that many channels",
                    self.learnable_beta.as_ref().map_or(1, |beta| beta.dims()[0])
                )
            }
        }
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() * sigmoid(self.scaled(input))
    }

    /// `β`: the learned value when it is learned (the first channel's when per channel).
    pub fn current_beta(&self) -> f64 {
        match &self.learnable_beta {
            Some(beta) => beta.val().narrow(0, 0, 1).into_scalar::<f64>(),
            None => self.beta,
        }
    }
}

formula!(
    /// `x σ(βx)`; derivative `σ(βx) (1 + βx (1 - σ(βx)))`.
    SiluFormula { beta },
    value: |x| x * (x * beta).sigmoid(),
    backward: |x, grad| {
        let scaled = x * beta;
        let sig = scaled.sigmoid();
        grad * sig * (scaled * (R::from(1.0) - sig) + 1.0)
    },
    // A learned β: autograd's `grad · x · (1 − σ)σ · x` through `x · σ(β · x)`.
    parameter_backward: |x, grad| {
        let sig = (x * beta).sigmoid();
        [grad * x * (-(sig - 1.0)) * sig * x]
    },
);

impl ActivationKind for Silu {
    const KIND: &'static str = "silu";
    const ALIASES: &'static [&'static str] = &["swish"];
    const DESCRIPTION: &'static str = "x·σ(βx), a.k.a. swish; β fixed or learned";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = SiluConfig;

    fn validate(config: &SiluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &SiluConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &SiluConfig) -> bool {
        true
    }
    fn is_learnable(config: &SiluConfig) -> bool {
        config.learnable
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(SiluFormula {
            beta: self.current_beta() as f32,
        }))
    }
    fn pointwise(&self) -> Option<Pointwise> {
        // A learnable β is a parameter: the channel-wise kernel differentiates it.
        self.learnable_beta.is_none().then(|| {
            Pointwise::new(SiluFormula {
                beta: self.beta as f32,
            })
        })
    }
    /// A learned β, one or one per channel of a slot with `channels` channels.
    fn channelwise(&self, channels: usize) -> Option<(Channelwise, Tensor<2>)> {
        let beta = self.learnable_beta.as_ref()?;
        let [count] = beta.dims();
        (count == 1 || count == channels)
            .then(|| (Channelwise::of::<SiluFormula>(), beta.val().reshape([count, 1])))
    }
    fn channel_parameters(&self) -> Vec<(&'static str, Vec<f32>)> {
        self.learnable_beta
            .iter()
            .map(|beta| ("β", host_values(beta.val())))
            .collect()
    }

    /// Each channel's derivative when β is learned per channel.
    fn derivative<const D: usize>(&self, input: Tensor<D>) -> Option<Tensor<D>> {
        let channels = if D >= 2 { input.dims()[1] } else { 1 };
        match self.channelwise(channels) {
            Some((op, parameters)) => Some(channelwise_derivative(op, parameters, input)),
            None => {
                let formula = self.formula()?;
                Some(crate::kind::map_on_host(input, |x| formula.derivative(x)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn silu_values_and_gradient() {
        let module = SiluConfig::default().init(1, &device());
        let (y, g) = value_and_grad(&[-1.0, 0.0, 1.0], |x| module.forward(x));
        assert_close(&y, &[-0.268_941_43, 0.0, 0.731_058_6]);
        assert_close(&g, &[0.072_329, 0.5, 0.927_671]);
    }

    #[test]
    fn learnable_beta_receives_gradient() {
        let module = SiluConfig {
            beta: 1.5,
            learnable: true,
            per_channel: false,
        }
        .init(1, &device());
        let x = tensor(&[-1.0, 2.0]);
        let grads = module.forward(x).sum().backward();
        let beta = module.learnable_beta.as_ref().unwrap().val();
        // d/dβ x σ(βx) = x² σ(βx)(1 - σ(βx)) summed over x = -1, 2.
        let s = |z: f32| 1.0 / (1.0 + (-z).exp());
        let expected = s(-1.5) * (1.0 - s(-1.5)) + 4.0 * s(3.0) * (1.0 - s(3.0));
        assert_close(&to_vec(beta.grad(&grads).unwrap()), &[expected]);
    }

    #[test]
    fn per_channel_beta_needs_learnable() {
        let config = SiluConfig {
            per_channel: true,
            ..SiluConfig::default()
        };
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("silu.per_channel") && error.contains("learnable = true"), "{error}");
    }
}
