use crate::fused::{self, formula::formula};
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

/// The hyperbolic tangent, `tanh(x) = (eˣ - e⁻ˣ) / (eˣ + e⁻ˣ)`, with `tanh'(x) = 1 - tanh²(x)`.
///
/// PyTorch: `nn.Tanh`. Zero-centred, saturates at ±1.
#[derive(Module, Debug, Default)]
pub struct Tanh;

impl Tanh {
    /// Applies `tanh(x)` element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        fused::pointwise(input, TanhFormula {}).unwrap_or_else(Tensor::tanh)
    }
}

formula!(
    /// `tanh x`; the backward `1 - tanh²(x)` from the output.
    TanhFormula {},
    value: |x| x.tanh(),
    backward: |y, grad| grad * (R::from(1.0) - y * y),
    saves_output: |s| true,
);

parameterless_kind!(
    Tanh,
    kind: "tanh",
    description: "hyperbolic tangent; zero-centred, saturates at ±1",
    bounded: true,
    fused_kernel: true,
    formula: TanhFormula = TanhFormula {},
    pointwise: true,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn odd_and_bounded() {
        let (y, g) = value_and_grad(&[-100.0, 0.0, 1.0], |x| Tanh.forward(x));
        assert_close(&y, &[-1.0, 0.0, 0.761_594_2]);
        assert_close(&g, &[0.0, 1.0, 0.419_974_3]);
    }
}
