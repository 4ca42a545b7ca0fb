use crate::InvalidConfig;
use crate::fused::{self, Pointwise, formula::formula};
use crate::kind::ActivationKind;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Leaky ReLU: `x` for `x > 0`, `negative_slope · x` otherwise.
///
/// PyTorch: `nn.LeakyReLU(negative_slope=0.01)`. The gradient at 0 (and for NaN) is
/// `negative_slope`, as PyTorch's backward (`x > 0 ? 1 : negative_slope`).
#[derive(Module, Debug)]
pub struct LeakyRelu {
    /// Slope for negative inputs.
    pub negative_slope: f64,
}

/// Configuration of [`LeakyRelu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LeakyReluConfig {
    /// Slope for negative inputs. Default 0.01.
    pub negative_slope: f64,
}

impl Default for LeakyReluConfig {
    fn default() -> Self {
        Self {
            negative_slope: 0.01,
        }
    }
}

impl LeakyReluConfig {
    /// Checks the slope is finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !self.negative_slope.is_finite() {
            return Err(InvalidConfig::new(
                "leaky_relu.negative_slope",
                format!("must be finite, got {}",
                self.negative_slope),
            ));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> LeakyRelu {
        LeakyRelu {
            negative_slope: self.negative_slope,
        }
    }
}

impl LeakyRelu {
    /// Applies the leaky ReLU element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        leaky(input, self.negative_slope)
    }
}

formula!(
    /// `x > 0 ? x : negative_slope · x` (also PReLU's per slope and RReLU's evaluation form);
    /// derivative 1 for `x > 0`, `negative_slope` otherwise (at 0 and for NaN too).
    LeakyReluFormula { negative_slope },
    value: |x| R::select(x.greater(0.0), x, x * negative_slope),
    // From the output when the slope is positive (y > 0 exactly when x > 0), else the input.
    backward: |saved, grad| R::select(saved.greater(0.0), grad, grad * negative_slope),
    saves_output: |s| s.negative_slope > 0.0,
    // PReLU's slope gradient, PyTorch's `x > 0 ? 0 : x · grad`: -0.0 where x > 0 leaves a
    // sum unchanged (+0.0 would turn a -0.0 sum into +0.0), so the kernels add it under a mask
    // instead of blending two sums; an infinite `grad` where x > 0 adds nothing, as in PyTorch.
    parameter_backward: |x, grad| [R::select(x.greater(0.0), -0.0, x * grad)],
);

impl ActivationKind for LeakyRelu {
    const KIND: &'static str = "leaky_relu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "ReLU with a small fixed slope for x < 0";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = LeakyReluConfig;

    fn validate(config: &LeakyReluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &LeakyReluConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(_: &LeakyReluConfig) -> bool {
        true
    }
    fn is_learnable(_: &LeakyReluConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(LeakyReluFormula {
            negative_slope: self.negative_slope as f32,
        }))
    }
    fn pointwise(&self) -> Option<Pointwise> {
        self.formula()
    }
}

/// `x > 0 ? x : slope · x`, with the gradient PyTorch uses (`slope` at 0 and for NaN).
pub(crate) fn leaky<const D: usize>(input: Tensor<D>, negative_slope: f64) -> Tensor<D> {
    let formula = LeakyReluFormula {
        negative_slope: negative_slope as f32,
    };
    let input = match fused::pointwise(input, formula) {
        Ok(output) => return output,
        Err(input) => input,
    };
    let positive = input.clone().greater_elem(0.0);
    input
        .clone()
        .mul_scalar(negative_slope)
        .mask_where(positive, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn default_slope_is_pytorchs() {
        assert_eq!(LeakyReluConfig::default().negative_slope, 0.01);
    }

    #[test]
    fn slope_applies_at_zero() {
        let module = LeakyReluConfig {
            negative_slope: 0.1,
        }
        .init();
        let (y, g) = value_and_grad(&[-2.0, 0.0, 3.0], |x| module.forward(x));
        assert_close(&y, &[-0.2, 0.0, 3.0]);
        assert_close(&g, &[0.1, 0.1, 1.0]);
    }
}
