use crate::fused::{self, Real, formula::formula};
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

use crate::softplus::softplus;

/// Mish (Misra, 2019): `x tanh(softplus(x))`.
///
/// PyTorch: `nn.Mish()`. `Mish'(x) = tanh(sp(x)) + x σ(x) (1 - tanh²(sp(x)))`. Softplus is taken
/// linear above 20 (where `tanh` is already 1 in f32), which keeps `exp` finite at `x = 1e4`.
#[derive(Module, Debug, Default)]
pub struct Mish;

impl Mish {
    /// Applies Mish element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, MishFormula {}).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() * softplus(input, 1.0, 20.0).tanh()
    }
}

/// `tanh(softplus(x))` in one exponential: with `e = eˣ`, `tanh(ln(1 + e)) = n / (n + 2)` where
/// `n = e (e + 2)`. Past x = 20 it is 1 in f32, and capping there keeps `n` finite.
#[inline(always)]
fn tanh_softplus<R: Real>(x: R) -> R {
    let capped = R::select(x.less(20.0), x, 20.0);
    let e = capped.exp();
    let n = e * (e + 2.0);
    n / (n + 2.0)
}

formula!(
    /// `x tanh(sp(x))`; derivative `tanh(sp(x)) + x σ(x) (1 - tanh²(sp(x)))`.
    MishFormula {},
    value: |x| x * tanh_softplus(x),
    backward: |x, grad| {
        let t = tanh_softplus(x);
        grad * (t + x * x.sigmoid() * (R::from(1.0) - t * t))
    },
);

parameterless_kind!(
    Mish,
    kind: "mish",
    description: "x·tanh(softplus(x))",
    bounded: false,
    fused_kernel: true,
    formula: MishFormula = MishFormula {},
    pointwise: true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn values_and_gradient_including_tails() {
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1.0, 1e4], |x| Mish.forward(x));
        assert_close(&y, &[0.0, 0.0, 0.865_098, 1e4]);
        assert_close(&g, &[0.0, 0.6, 1.049_035_8, 1.0]);
    }
}
