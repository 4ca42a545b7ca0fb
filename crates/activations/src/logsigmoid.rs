use crate::fused::{self, formula::formula};
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

use crate::softplus::softplus;

/// Log-sigmoid: `log σ(x) = -softplus(-x)`, with derivative `σ(-x) = 1 - σ(x)`.
///
/// PyTorch: `nn.LogSigmoid()`. Computed as `-softplus(-x)` (linear below -20), so `x = -1e4`
/// gives `-1e4` with gradient 1 and `x = 1e4` gives 0, without overflow.
#[derive(Module, Debug, Default)]
pub struct LogSigmoid;

impl LogSigmoid {
    /// Applies `log σ(x)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, LogSigmoidFormula {}).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        softplus(input.neg(), 1.0, 20.0).neg()
    }
}

formula!(
    /// `min(x, 0) - log1p(e^{-|x|})`; derivative `σ(-x)`.
    LogSigmoidFormula {},
    value: |x| {
        // `min(x, 0)` that keeps NaN.
        let negative_part = R::select(x.greater(0.0), 0.0, x);
        negative_part - (-x.abs()).exp_nonpositive().log1p_unit()
    },
    backward: |x, grad| {
        let e = (-x.abs()).exp_nonpositive();
        let ratio = e / (e + 1.0);
        R::select(x.less(0.0), grad * (R::from(1.0) - ratio), grad * ratio)
    },
);

parameterless_kind!(
    LogSigmoid,
    kind: "logsigmoid",
    description: "log σ(x); numerically stable",
    bounded: false,
    fused_kernel: true,
    formula: LogSigmoidFormula = LogSigmoidFormula {},
    pointwise: true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn stable_tails() {
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1e4], |x| LogSigmoid.forward(x));
        assert_close(&y, &[-1e4, -std::f32::consts::LN_2, 0.0]);
        assert_close(&g, &[1.0, 0.5, 0.0]);
    }
}
