use burn::module::Module;
use burn::tensor::Tensor;

use crate::elu::{ExponentialLinearFormula, exponential_linear};
use crate::kind::parameterless_kind;

/// `α` of SELU (Klambauer et al., 2017), as in PyTorch.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// `λ` (scale) of SELU, as in PyTorch.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// Scaled exponential linear unit: `λ x` for `x > 0`, `λ α (exp(x) - 1)` otherwise, with
/// `α ≈ 1.6733`, `λ ≈ 1.0507`.
///
/// PyTorch: `nn.SELU()`. Self-normalising only with LeCun-normal initialisation of the preceding
/// layer and AlphaDropout (the `models` crate pairs them automatically).
#[derive(Module, Debug, Default)]
pub struct Selu;

impl Selu {
    /// Applies SELU element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        exponential_linear(input, SELU_ALPHA, SELU_SCALE, 1.0)
    }
}

parameterless_kind!(
    Selu,
    kind: "selu",
    description: "self-normalising scaled ELU (pairs with LeCun init + AlphaDropout)",
    bounded: false,
    fused_kernel: true,
    formula: ExponentialLinearFormula = ExponentialLinearFormula::new(SELU_ALPHA, SELU_SCALE, 1.0),
    pointwise: true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn saturates_at_minus_lambda_alpha() {
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1.0], |x| Selu.forward(x));
        assert_close(&y, &[-1.758_099_3, 0.0, 1.050_701]);
        assert_close(&g, &[0.0, 1.758_099_3, 1.050_701]);
    }
}
