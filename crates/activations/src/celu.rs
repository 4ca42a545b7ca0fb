use crate::InvalidConfig;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::elu::{ExponentialLinearFormula, exponential_linear};
use crate::fused::Pointwise;
use crate::kind::ActivationKind;

/// Continuously differentiable ELU (Barron, 2017): `max(0, x) + min(0, α (exp(x/α) - 1))`.
///
/// PyTorch: `nn.CELU(alpha=1.0)`. Its derivative is 1 at 0 for every `α`.
#[derive(Module, Debug)]
pub struct Celu {
    /// The negative saturation value is `-alpha`.
    pub alpha: f64,
}

/// Configuration of [`Celu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CeluConfig {
    /// The negative saturation value is `-alpha`; must not be 0. Default 1.
    pub alpha: f64,
}

impl Default for CeluConfig {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

impl CeluConfig {
    /// Checks `alpha` is finite and non-zero.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !self.alpha.is_finite() || self.alpha == 0.0 {
            return Err(InvalidConfig::new(
                "celu.alpha",
                format!("must be finite and non-zero, got {}",
                self.alpha),
            ));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> Celu {
        Celu { alpha: self.alpha }
    }
}

impl Celu {
    /// Applies CELU element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        exponential_linear(input, self.alpha, 1.0, 1.0 / self.alpha)
    }
}

impl ActivationKind for Celu {
    const KIND: &'static str = "celu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "continuously differentiable ELU";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = CeluConfig;

    fn validate(config: &CeluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &CeluConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(config: &CeluConfig) -> bool {
        // The backward works from the output, which needs α > 0 to tell the sides apart.
        config.alpha > 0.0
    }
    fn is_learnable(_: &CeluConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(ExponentialLinearFormula::new(self.alpha, 1.0, 1.0 / self.alpha)))
    }
    fn pointwise(&self) -> Option<Pointwise> {
        crate::elu::exponential_linear_op(self.alpha, 1.0, 1.0 / self.alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn slope_at_zero_is_one_for_any_alpha() {
        let module = CeluConfig { alpha: 2.0 }.init();
        let (y, g) = value_and_grad(&[-1e4, 0.0, 3.0], |x| module.forward(x));
        assert_close(&y, &[-2.0, 0.0, 3.0]);
        assert_close(&g, &[0.0, 1.0, 1.0]);
    }

    #[test]
    fn zero_alpha_is_rejected() {
        assert!(CeluConfig { alpha: 0.0 }.validate().is_err());
    }
}
