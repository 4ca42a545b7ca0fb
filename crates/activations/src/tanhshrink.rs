use crate::fused::formula::formula;
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

/// Tanhshrink: `x - tanh(x)`, with derivative `tanh²(x)`.
///
/// PyTorch: `nn.Tanhshrink()`.
#[derive(Module, Debug, Default)]
pub struct Tanhshrink;

impl Tanhshrink {
    /// Applies `x - tanh(x)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() - input.tanh()
    }
}

formula!(
    /// `x - tanh(x)`, derivative `tanh²(x)`.
    TanhshrinkFormula {},
    value: |x| x - x.tanh(),
    backward: |x, grad| {
        let t = x.tanh();
        grad * t * t
    },
);

parameterless_kind!(
    Tanhshrink,
    kind: "tanhshrink",
    description: "x - tanh(x)",
    bounded: false,
    fused_kernel: false,
    formula: TanhshrinkFormula = TanhshrinkFormula {},
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn values_and_gradient() {
        let (y, g) = value_and_grad(&[-1.0, 0.0, 100.0], |x| Tanhshrink.forward(x));
        assert_close(&y, &[-0.238_405_85, 0.0, 99.0]);
        assert_close(&g, &[0.580_026, 0.0, 1.0]);
    }
}
