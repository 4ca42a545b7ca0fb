use crate::InvalidConfig;
use crate::fused::{self, Pointwise, formula::formula};
use crate::kind::ActivationKind;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, activation::sigmoid};
use serde::{Deserialize, Serialize};

/// SiLU / Swish (Elfwing et al. 2017; Ramachandran et al. 2017): `x σ(β x)`.
///
/// PyTorch: `nn.SiLU()` is `β = 1`. Swish's `β` can be set, or learned (one scalar, initialised
/// to `beta`). `SiLU'(x) = σ(βx) + β x σ(βx)(1 - σ(βx))`.
#[derive(Module, Debug)]
pub struct Silu {
    /// Fixed `β` (used when `learnable_beta` is `None`).
    pub beta: f64,
    /// Learned `β`, shape `[1]`.
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
}

impl Default for SiluConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            learnable: false,
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
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self, device: &Device) -> Silu {
        Silu {
            beta: self.beta,
            learnable_beta: self
                .learnable
                .then(|| Param::from_tensor(Tensor::full([1], self.beta, device))),
        }
    }
}

impl Silu {
    fn scaled<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        match &self.learnable_beta {
            Some(beta) => input * beta.val().reshape([1; D]),
            None if self.beta == 1.0 => input,
            None => input.mul_scalar(self.beta),
        }
    }

    /// Applies `x σ(βx)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.learnable_beta.is_some() {
            return self.composite(input);
        }
        let op = ActivationKind::pointwise(self).expect("β is fixed");
        fused::pointwise(input, op).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() * sigmoid(self.scaled(input))
    }

    /// `β`: the learned value when it is learned.
    pub fn current_beta(&self) -> f64 {
        match &self.learnable_beta {
            Some(beta) => beta.val().into_scalar::<f64>(),
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
    fn from_config(config: &SiluConfig, _: usize, device: &Device) -> Self {
        config.init(device)
    }
    fn has_fused_kernel(config: &SiluConfig) -> bool {
        !config.learnable
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
        // A learnable β is a parameter the kernel does not differentiate.
        self.learnable_beta.is_none().then(|| {
            Pointwise::new(SiluFormula {
                beta: self.beta as f32,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn silu_values_and_gradient() {
        let module = SiluConfig::default().init(&device());
        let (y, g) = value_and_grad(&[-1.0, 0.0, 1.0], |x| module.forward(x));
        assert_close(&y, &[-0.268_941_43, 0.0, 0.731_058_6]);
        assert_close(&g, &[0.072_329, 0.5, 0.927_671]);
    }

    #[test]
    fn learnable_beta_receives_gradient() {
        let module = SiluConfig {
            beta: 1.5,
            learnable: true,
        }
        .init(&device());
        let x = tensor(&[-1.0, 2.0]);
        let grads = module.forward(x).sum().backward();
        let beta = module.learnable_beta.as_ref().unwrap().val();
        // d/dβ x σ(βx) = x² σ(βx)(1 - σ(βx)) summed over x = -1, 2.
        let s = |z: f32| 1.0 / (1.0 + (-z).exp());
        let expected = s(-1.5) * (1.0 - s(-1.5)) + 4.0 * s(3.0) * (1.0 - s(3.0));
        assert_close(&to_vec(beta.grad(&grads).unwrap()), &[expected]);
    }
}
