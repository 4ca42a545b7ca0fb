use crate::fused::{self, Pointwise};
use burn::module::Module;
use burn::tensor::Tensor;
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
    pub fn validate(&self) -> Result<(), String> {
        if !self.negative_slope.is_finite() {
            return Err(format!(
                "leaky_relu.negative_slope must be finite, got {}",
                self.negative_slope
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

    /// 1 for `x > 0`, `negative_slope` otherwise.
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let positive = input.clone().greater_elem(0.0);
        input
            .ones_like()
            .mul_scalar(self.negative_slope)
            .mask_fill(positive, 1.0)
    }
}

/// `x > 0 ? x : slope · x`, with the gradient PyTorch uses (`slope` at 0 and for NaN).
pub(crate) fn leaky<const D: usize>(input: Tensor<D>, negative_slope: f64) -> Tensor<D> {
    let input = match fused::pointwise(input, Pointwise::LeakyRelu { negative_slope }) {
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
