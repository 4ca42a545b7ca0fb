use crate::fused::{self, formula::formula};
use crate::kind::parameterless_kind;
use crate::relu6::ramp6;
use burn::module::Module;
use burn::tensor::Tensor;

/// Hard sigmoid: `ReLU6(x + 3) / 6`, i.e. 0 below -3, 1 above 3, `x/6 + 1/2` in between.
///
/// PyTorch: `nn.Hardsigmoid()`. Gradient `1/6` strictly inside `(-3, 3)`, 0 elsewhere (including
/// both kinks and NaN).
#[derive(Module, Debug, Default)]
pub struct HardSigmoid;

impl HardSigmoid {
    /// Applies the hard sigmoid element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, HardSigmoidFormula {})
            .unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let interior = interior(&input);
        let linear = input.mul_scalar(ONE_SIXTH).add_scalar(0.5);
        let clamped = linear.clone().detach().clamp(0.0, 1.0);
        clamped.mask_where(interior, linear)
    }
}

/// `1/6`: multiplying by it instead of dividing by 6 (as PyTorch writes it) differs by at most
/// an ulp and avoids a division, the slowest instruction in the kernels' loops.
pub(crate) const ONE_SIXTH: f32 = 1.0 / 6.0;

formula!(
    /// `relu6(x + 3) / 6`; derivative `1/6` strictly inside `(-3, 3)`, 0 elsewhere.
    HardSigmoidFormula {},
    value: |x| ramp6(x + 3.0) * ONE_SIXTH,
    backward: |x, grad| R::select(x.greater(-3.0) & x.less(3.0), grad * ONE_SIXTH, 0.0),
);

parameterless_kind!(
    HardSigmoid,
    kind: "hardsigmoid",
    description: "piecewise-linear sigmoid, relu6(x+3)/6",
    bounded: true,
    fused_kernel: true,
    formula: HardSigmoidFormula = HardSigmoidFormula {},
    pointwise: true,
);

fn interior<const D: usize>(input: &Tensor<D>) -> Tensor<D, burn::tensor::Bool> {
    input
        .clone()
        .greater_elem(-3.0)
        .bool_and(input.clone().lower_elem(3.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn gradient_vanishes_on_the_kinks() {
        let (y, g) = value_and_grad(&[-4.0, -3.0, 0.0, 3.0], |x| HardSigmoid.forward(x));
        assert_close(&y, &[0.0, 0.0, 0.5, 1.0]);
        assert_close(&g, &[0.0, 0.0, 1.0 / 6.0, 0.0]);
    }
}
