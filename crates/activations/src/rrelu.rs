use crate::InvalidConfig;
use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use crate::fused::Pointwise;
use crate::kind::ActivationKind;
use crate::leaky_relu::{LeakyReluFormula, leaky};

/// Randomized leaky ReLU (Xu et al., 2015): `x` for `x > 0`, `a · x` otherwise, where
/// `a ~ U(lower, upper)` is drawn per element in training and `a = (lower + upper) / 2` in
/// evaluation.
///
/// PyTorch: `nn.RReLU(lower=1/8, upper=1/3)`. As every Burn module, it trains (random slopes) when
/// the input is on an autodiff device and the module is in training mode; `module.valid()` or a
/// plain device gives the deterministic evaluation form.
#[derive(Module, Debug)]
pub struct RRelu {
    /// Lower bound of the random slope.
    pub lower: f64,
    /// Upper bound of the random slope.
    pub upper: f64,
    /// Training (random slopes) or evaluation (mean slope).
    pub training: Param<burn::module::Flag>,
}

/// Configuration of [`RRelu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RReluConfig {
    /// Lower bound of the slope. Default 1/8.
    pub lower: f64,
    /// Upper bound of the slope. Default 1/3.
    pub upper: f64,
}

impl Default for RReluConfig {
    fn default() -> Self {
        Self {
            lower: 1.0 / 8.0,
            upper: 1.0 / 3.0,
        }
    }
}

impl RReluConfig {
    /// Checks `lower ≤ upper`, both finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !(self.lower.is_finite() && self.upper.is_finite() && self.lower <= self.upper) {
            return Err(InvalidConfig::new(
                "rrelu",
                format!("needs finite lower <= upper, got lower = {}, upper = {}",
                self.lower, self.upper),
            ));
        }
        Ok(())
    }

    /// Builds the module, in training mode.
    pub fn init(&self) -> RRelu {
        RRelu {
            lower: self.lower,
            upper: self.upper,
            training: Param::from_bool(true),
        }
    }
}

impl RRelu {
    fn is_training<const D: usize>(&self, input: &Tensor<D>) -> bool {
        input.device().is_autodiff() && self.training.is_enabled()
    }

    /// Random slopes in training, the mean slope in evaluation.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if !self.is_training(&input) {
            return leaky(input, self.mean_slope());
        }
        let slope = input
            .clone()
            .detach()
            .random_like(Distribution::Uniform(self.lower, self.upper));
        let positive = input.clone().greater_elem(0.0);
        (input.clone() * slope).mask_where(positive, input)
    }

    /// The slope used in evaluation, `(lower + upper) / 2`.
    pub fn mean_slope(&self) -> f64 {
        (self.lower + self.upper) / 2.0
    }
}

impl ActivationKind for RRelu {
    const KIND: &'static str = "rrelu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "leaky ReLU with a random slope in training, mean slope in eval";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = RReluConfig;
    fn validate(config: &RReluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &RReluConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    /// The kernel is its evaluation form.
    fn has_fused_kernel(_: &RReluConfig) -> bool {
        true
    }
    fn is_learnable(_: &RReluConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(LeakyReluFormula {
            negative_slope: self.mean_slope() as f32,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn training_draws_slopes_between_bounds() {
        let module = RReluConfig::default().init();
        let x = Tensor::<1>::full([4096], -1.0, &device());
        let slopes: Vec<f32> = to_vec(module.forward(x).neg());
        assert!(
            slopes
                .iter()
                .all(|s| (0.125..=1.0 / 3.0).contains(&(*s as f64)))
        );
        let mean = slopes.iter().sum::<f32>() / slopes.len() as f32;
        assert!(
            (mean as f64 - module.mean_slope()).abs() < 0.01,
            "mean slope {mean}"
        );
        assert!(
            slopes.iter().any(|s| (s - slopes[0]).abs() > 1e-3),
            "slopes must vary"
        );
    }

    #[test]
    fn evaluation_uses_mean_slope() {
        let module = RReluConfig::default().init().valid();
        let (y, g) = value_and_grad(&[-24.0, 5.0], |x| module.forward(x));
        assert_close(&y, &[-5.5, 5.0]);
        assert_close(&g, &[0.229_166_67, 1.0]);
    }
}
