use crate::fused::{Formula, Real};
use crate::hardtanh::HardTanhFormula;
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

use crate::hardtanh::clamp_with_open_gradient;

/// ReLU6, `min(max(0, x), 6)` (MobileNetV2).
///
/// PyTorch: `nn.ReLU6`, i.e. `hardtanh(x, 0, 6)`: gradient 1 on `(0, 6)`, 0 elsewhere,
/// including both kinks and NaN.
#[derive(Module, Debug, Default)]
pub struct Relu6;

impl Relu6 {
    /// Applies `min(max(0, x), 6)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        clamp_with_open_gradient(input, 0.0, 6.0)
    }
}

/// ReLU6 is PyTorch's `hardtanh(x, 0, 6)`, in value and gradient.
const RELU6: HardTanhFormula = HardTanhFormula {
    min_val: 0.0,
    max_val: 6.0,
};

/// `min(max(v, 0), 6)`, keeping NaN (also the ramp of hard sigmoid and hard swish).
#[inline(always)]
pub(crate) fn ramp6<R: Real>(v: R) -> R {
    HardTanhFormula::value(RELU6.parameters().map(R::from), v)
}

parameterless_kind!(
    Relu6,
    kind: "relu6",
    description: "ReLU clamped at 6 (MobileNet)",
    bounded: true,
    fused_kernel: false,
    formula: HardTanhFormula = RELU6,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn clamps_to_six_with_zero_gradient_at_kinks() {
        let (y, g) = value_and_grad(&[-1.0, 0.0, 3.0, 6.0, 7.0], |x| Relu6.forward(x));
        assert_close(&y, &[0.0, 0.0, 3.0, 6.0, 6.0]);
        assert_close(&g, &[0.0, 0.0, 1.0, 0.0, 0.0]);
    }
}
