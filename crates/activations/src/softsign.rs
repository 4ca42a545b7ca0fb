use crate::fused::{self, Pointwise};
use burn::module::Module;
use burn::tensor::Tensor;

/// Softsign: `x / (1 + |x|)`, with `Softsign'(x) = 1 / (1 + |x|)²`.
///
/// PyTorch: `nn.Softsign()`. Like tanh but with polynomial tails. As PyTorch, `±inf` gives NaN
/// (`inf / inf`).
#[derive(Module, Debug, Default)]
pub struct Softsign;

impl Softsign {
    /// Applies softsign element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, Pointwise::Softsign).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() / input.abs().add_scalar(1.0)
    }

    /// `1 / (1 + |x|)²`.
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.abs().add_scalar(1.0).square().recip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn values_and_gradient() {
        let (y, g) = value_and_grad(&[-3.0, 0.0, 1.0], |x| Softsign.forward(x));
        assert_close(&y, &[-0.75, 0.0, 0.5]);
        assert_close(&g, &[0.0625, 1.0, 0.25]);
    }
}
