use crate::fused::formula::formula;
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

/// The rectified linear unit, `ReLU(x) = max(0, x)`.
///
/// PyTorch: `nn.ReLU`. Gradient 1 for `x > 0` and 0 for `x ≤ 0` (PyTorch's choice at the kink);
/// a NaN input gives a NaN output and, as in PyTorch, gradient 1.
#[derive(Module, Debug, Default)]
pub struct Relu;

impl Relu {
    /// Applies `max(0, x)` element-wise: the fused kernel where there is one (in place,
    /// its backward from the output), else Burn's `relu`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        match crate::fused::pointwise(input, ReluFormula {}) {
            Ok(output) => output,
            Err(input) => burn::tensor::activation::relu(input),
        }
    }
}

formula!(
    /// `max(0, x)` keeping NaN; `ReLU'(x) = 1` for `x > 0`, else 0 (0 at the kink, 1 for NaN,
    /// as PyTorch's backward).
    ReluFormula {},
    value: |x| R::select(x.less_eq(0.0), 0.0, x),
    backward: |x, grad| R::select(x.less_eq(0.0), 0.0, grad),
    // The output is positive exactly where the input is (and NaN where it is).
    saves_output: |s| true,
);

parameterless_kind!(
    Relu,
    kind: "relu",
    description: "max(0, x); the default, units can die",
    bounded: false,
    fused_kernel: true,
    formula: ReluFormula = ReluFormula {},
    pointwise: true,
);

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
