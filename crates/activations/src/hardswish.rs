use crate::fused::{self, formula::formula};
use crate::hardsigmoid::ONE_SIXTH;
use crate::kind::parameterless_kind;
use crate::relu6::ramp6;
use burn::module::Module;
use burn::tensor::Tensor;

/// Hard swish (MobileNetV3): `x · ReLU6(x + 3) / 6`.
///
/// PyTorch: `nn.Hardswish()`. Gradient 0 for `x ≤ -3`, `x/3 + 1/2` on `(-3, 3)`, 1 for `x ≥ 3`
/// (so 0 at -3 and 1 at 3, PyTorch's choice at the kinks). `-inf · 0` is NaN, as in PyTorch.
#[derive(Module, Debug, Default)]
pub struct HardSwish;

impl HardSwish {
    /// Applies hard swish element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, HardSwishFormula {}).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let low = input.clone().lower_equal_elem(-3.0);
        let high = input.clone().greater_equal_elem(3.0);
        // The quadratic piece sees 0 instead of the outer inputs so that its unused gradient
        // stays finite (`0 · inf` would be NaN at x = ±inf).
        let middle = input
            .clone()
            .mask_fill(low.clone().bool_or(high.clone()), 0.0);
        let quadratic = middle.clone() * middle.add_scalar(3.0).div_scalar(6.0);
        // `x · 0` keeps PyTorch's signed zero below -3, and its NaN at -inf.
        let zero_times_input = input.clone().detach().mul_scalar(0.0);
        quadratic
            .mask_where(high, input)
            .mask_where(low, zero_times_input)
    }
}

/// `1/3`, multiplied rather than divided by (see [`ONE_SIXTH`]).
pub(crate) const ONE_THIRD: f32 = 1.0 / 3.0;

formula!(
    /// `x · relu6(x + 3) / 6`; derivative 0 for `x ≤ -3`, `x/3 + 1/2` on `(-3, 3)`, 1 for
    /// `x ≥ 3`.
    HardSwishFormula {},
    value: |x| x * ramp6(x + 3.0) * ONE_SIXTH,
    backward: |x, grad| {
        // NaN falls through to the middle formula (NaN), as in PyTorch's blends.
        let upper = R::select(x.greater_eq(3.0), grad, grad * (x * ONE_THIRD + 0.5));
        R::select(x.less_eq(-3.0), 0.0, upper)
    },
);

parameterless_kind!(
    HardSwish,
    kind: "hardswish",
    description: "x·hardsigmoid(x) (MobileNetV3)",
    bounded: false,
    fused_kernel: true,
    formula: HardSwishFormula = HardSwishFormula {},
    pointwise: true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn kinks_follow_pytorch() {
        let (y, g) = value_and_grad(&[-4.0, -3.0, 0.0, 3.0, 1e4], |x| HardSwish.forward(x));
        assert_close(&y, &[0.0, 0.0, 0.0, 3.0, 1e4]);
        assert_close(&g, &[0.0, 0.0, 0.5, 1.0, 1.0]);
    }
}
