use crate::fused::{self, formula::formula};
use crate::kind::parameterless_kind;
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
        fused::pointwise(input, SoftsignFormula {}).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() / input.abs().add_scalar(1.0)
    }
}

formula!(
    /// `x / (1 + |x|)`; derivative `1 / (1 + |x|)²`.
    SoftsignFormula {},
    value: |x| x / (x.abs() + 1.0),
    backward: |x, grad| {
        let magnitude = x.abs();
        let denominator = magnitude + 1.0;
        // `denominator - magnitude` is 1, or NaN at ±inf as PyTorch's autograd gives.
        grad * (denominator - magnitude) / (denominator * denominator)
    },
    // Shader compilers assume finite math and fold `denominator - magnitude` to 1, so the
    // gradient at ±inf would be 0, not NaN: the Cube backends keep the composite path, the
    // cheapest of them.
    cube: false,
);

parameterless_kind!(
    Softsign,
    kind: "softsign",
    description: "x/(1+|x|); tanh-like with polynomial tails",
    bounded: true,
    fused_kernel: true,
    formula: SoftsignFormula = SoftsignFormula {},
    pointwise: true,
);

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
