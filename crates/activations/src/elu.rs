use crate::fused::{self, Pointwise};
use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Exponential linear unit (Clevert et al., 2015): `x` for `x > 0`, `α (exp(x) - 1)` otherwise.
///
/// PyTorch: `nn.ELU(alpha=1.0)`. `ELU'(x) = 1` for `x > 0`, `α exp(x)` for `x ≤ 0` (so `α` at 0).
/// `exp` is only evaluated on the non-positive part, so `x = 1e4` gives gradient 1, not NaN.
#[derive(Module, Debug)]
pub struct Elu {
    /// Scale of the negative saturation value `-α`.
    pub alpha: f64,
}

/// Configuration of [`Elu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EluConfig {
    /// The negative saturation value is `-alpha`. Default 1.
    pub alpha: f64,
}

impl Default for EluConfig {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

impl EluConfig {
    /// Checks `alpha` is finite.
    pub fn validate(&self) -> Result<(), String> {
        if !self.alpha.is_finite() {
            return Err(format!("elu.alpha must be finite, got {}", self.alpha));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> Elu {
        Elu { alpha: self.alpha }
    }
}

impl Elu {
    /// Applies the ELU element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        exponential_linear(input, self.alpha, 1.0, 1.0)
    }

    /// 1 for `x > 0`, `α exp(x)` otherwise.
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        exponential_linear_derivative(input, self.alpha, 1.0, 1.0)
    }
}

/// The ELU family, `scale · (x > 0 ? x : α (exp(x · input_scale) - 1))`, as PyTorch's `elu` kernel
/// (`celu` uses `input_scale = 1/α`, `selu` its fixed `scale` and `α`).
///
/// The positive inputs are replaced by 0 before `exp`, so the unused branch stays finite and its
/// zero gradient cannot turn into `0 · inf = NaN`.
pub(crate) fn exponential_linear<const D: usize>(
    input: Tensor<D>,
    alpha: f64,
    scale: f64,
    input_scale: f64,
) -> Tensor<D> {
    let op = Pointwise::ExponentialLinear {
        alpha,
        scale,
        input_scale,
    };
    // The fused backward works from the output, which needs a positive α to tell the sides apart.
    let input = if op.saves_output() {
        match fused::pointwise(input, op) {
            Ok(output) => return output,
            Err(input) => input,
        }
    } else {
        input
    };
    let positive = input.clone().greater_elem(0.0);
    let negative_part = input.clone().mask_fill(positive.clone(), 0.0);
    let negative = negative_part
        .mul_scalar(input_scale)
        .exp()
        .sub_scalar(1.0)
        .mul_scalar(alpha * scale);
    let linear = if scale == 1.0 {
        input
    } else {
        input.mul_scalar(scale)
    };
    negative.mask_where(positive, linear)
}

/// `scale` for `x > 0`, `scale · α · input_scale · exp(x · input_scale)` otherwise.
pub(crate) fn exponential_linear_derivative<const D: usize>(
    input: Tensor<D>,
    alpha: f64,
    scale: f64,
    input_scale: f64,
) -> Tensor<D> {
    let positive = input.clone().greater_elem(0.0);
    input
        .mask_fill(positive.clone(), 0.0)
        .mul_scalar(input_scale)
        .exp()
        .mul_scalar(alpha * scale * input_scale)
        .mask_fill(positive, scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn large_inputs_keep_finite_gradients() {
        let module = EluConfig::default().init();
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1e4], |x| module.forward(x));
        assert_close(&y, &[-1.0, 0.0, 1e4]);
        assert_close(&g, &[0.0, 1.0, 1.0]);
    }

    #[test]
    fn alpha_scales_saturation_and_slope_at_zero() {
        let module = EluConfig { alpha: 0.5 }.init();
        let (y, g) = value_and_grad(&[-100.0, 0.0], |x| module.forward(x));
        assert_close(&y, &[-0.5, 0.0]);
        assert_close(&g, &[0.0, 0.5]);
    }
}
