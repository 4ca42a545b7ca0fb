use burn::module::Module;
use burn::tensor::Tensor;

/// The rectified linear unit, `ReLU(x) = max(0, x)`.
///
/// PyTorch: `nn.ReLU`. Gradient 1 for `x > 0` and 0 for `x ≤ 0` (PyTorch's choice at the kink);
/// a NaN input gives a NaN output and, as in PyTorch, gradient 1.
#[derive(Module, Debug, Default)]
pub struct Relu;

impl Relu {
    /// Applies `max(0, x)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        burn::tensor::activation::relu(input)
    }

    /// `ReLU'(x) = 1` for `x > 0`, else 0 (0 at the kink, 1 for NaN, as PyTorch's backward).
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let not_positive = input.clone().lower_equal_elem(0.0);
        input.ones_like().mask_fill(not_positive, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn gradient_at_zero_is_zero() {
        let (y, g) = value_and_grad(&[-1.0, 0.0, 2.0], |x| Relu.forward(x));
        assert_close(&y, &[0.0, 0.0, 2.0]);
        assert_close(&g, &[0.0, 0.0, 1.0]);
    }
}
