use crate::fused::formula::formula;
use crate::kind::parameterless_kind;
use burn::module::Module;
use burn::tensor::Tensor;

/// The identity, `f(x) = x`: the "no activation" baseline of a comparison.
///
/// PyTorch: `nn.Identity`. A network with identity activations is linear, so it shows what the
/// non-linearities add.
#[derive(Module, Debug, Default)]
pub struct Identity;

impl Identity {
    /// Returns the input unchanged.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input
    }
}

formula!(
    /// `x`, derivative 1.
    IdentityFormula {},
    value: |x| x,
    backward: |x, grad| grad,
);

parameterless_kind!(
    Identity,
    kind: "identity",
    description: "no non-linearity: the linear baseline",
    bounded: false,
    fused_kernel: false,
    formula: IdentityFormula = IdentityFormula {},
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn passes_values_and_gradient_through() {
        let (y, g) = value_and_grad(&[-2.0, 0.0, 3.5], |x| Identity.forward(x));
        assert_close(&y, &[-2.0, 0.0, 3.5]);
        assert_close(&g, &[1.0, 1.0, 1.0]);
    }
}
