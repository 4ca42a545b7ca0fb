use crate::fused::{self, formula::formula};
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::{Tensor, activation};

/// The logistic sigmoid, `σ(x) = 1 / (1 + exp(-x))`, with `σ'(x) = σ(x)(1 - σ(x))`.
///
/// PyTorch: `nn.Sigmoid`. Saturates to exactly 0 and 1 in f32 for |x| ≳ 17 (and 88 below zero),
/// where its gradient vanishes: the classic cause of vanishing gradients in deep nets.
#[derive(Module, Debug, Default)]
pub struct Sigmoid;

impl Sigmoid {
    /// Applies `σ(x)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, SigmoidFormula {}).unwrap_or_else(activation::sigmoid)
    }
}

formula!(
    /// `σ(x)`; the backward `σ'(x) = σ(x)(1 - σ(x))` from the output.
    SigmoidFormula {},
    value: |x| x.sigmoid(),
    backward: |y, grad| grad * (R::from(1.0) - y) * y,
    saves_output: |s| true,
);

parameterless_kind!(
    Sigmoid,
    kind: "sigmoid",
    description: "logistic 1/(1+e^-x); saturates, vanishing gradients in deep nets",
    bounded: true,
    fused_kernel: true,
    formula: SigmoidFormula = SigmoidFormula {},
    pointwise: true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn saturates_without_overflow() {
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1e4], |x| Sigmoid.forward(x));
        assert_close(&y, &[0.0, 0.5, 1.0]);
        assert_close(&g, &[0.0, 0.25, 0.0]);
    }
}
