use crate::InvalidConfig;
use crate::fused::{Pointwise, formula::formula};
use crate::kind::ActivationKind;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Soft shrinkage (Donoho & Johnstone's soft thresholding): `x - λ` for `x > λ`, `x + λ` for
/// `x < -λ`, 0 in between.
///
/// PyTorch: `nn.Softshrink(lambd=0.5)`. Gradient 1 outside `[-λ, λ]`, 0 on it (both edges
/// included, as PyTorch), 1 for NaN.
#[derive(Module, Debug)]
pub struct Softshrink {
    /// The threshold `λ`.
    pub lambda: f64,
}

/// Configuration of [`Softshrink`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftshrinkConfig {
    /// The threshold `λ ≥ 0` (PyTorch's `lambd`). Default 0.5.
    pub lambda: f64,
}

impl Default for SoftshrinkConfig {
    fn default() -> Self {
        Self { lambda: 0.5 }
    }
}

impl SoftshrinkConfig {
    /// Checks `lambda` is finite and not negative.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(InvalidConfig::new(
                "softshrink.lambda",
                format!("must be finite and at least 0, got {}",
                self.lambda),
            ));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> Softshrink {
        Softshrink {
            lambda: self.lambda,
        }
    }
}

impl Softshrink {
    /// Applies soft shrinkage element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        // `x - clamp(x, -λ, λ)`: exactly 0 inside, and Burn's clamp passes the gradient on its
        // edges, so the gradient is 0 there as in PyTorch.
        input.clone() - input.clamp(-self.lambda, self.lambda)
    }
}

formula!(
    /// `x > λ ? x - λ : x < -λ ? x + λ : 0`; derivative 1 outside `[-λ, λ]`, 0 on it, 1 for NaN.
    SoftshrinkFormula { lambda },
    value: |x| {
        let inner = R::select(x.less(-lambda), x + lambda, x * 0.0);
        R::select(x.greater(lambda), x - lambda, inner)
    },
    backward: |x, grad| R::select(x.greater_eq(-lambda) & x.less_eq(lambda), 0.0, grad),
);

impl ActivationKind for Softshrink {
    const KIND: &'static str = "softshrink";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "soft thresholding: shrinks x towards 0 by lambda";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = SoftshrinkConfig;

    fn validate(config: &SoftshrinkConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &SoftshrinkConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(_: &SoftshrinkConfig) -> bool {
        false
    }
    fn is_learnable(_: &SoftshrinkConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(SoftshrinkFormula {
            lambda: self.lambda as f32,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn shrinks_towards_zero_with_zero_gradient_on_the_edges() {
        let module = SoftshrinkConfig::default().init();
        let (y, g) = value_and_grad(&[-2.0, -0.5, 0.2, 0.5, 1.5], |x| module.forward(x));
        assert_close(&y, &[-1.5, 0.0, 0.0, 0.0, 1.0]);
        assert_close(&g, &[1.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn negative_lambda_is_rejected() {
        let config = SoftshrinkConfig { lambda: -1.0 };
        assert!(config.validate().unwrap_err().to_string().contains("at least 0"));
    }
}
