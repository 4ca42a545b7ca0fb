use crate::fused::{self, Pointwise};
use burn::module::Module;
use burn::tensor::{Tensor, activation::sigmoid};

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
        fused::pointwise(input, Pointwise::Mish).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        input.clone() * softplus(input, 1.0, 20.0).tanh()
    }

    /// `tanh(sp(x)) + x σ(x) (1 - tanh²(sp(x)))`.
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let t = softplus(input.clone(), 1.0, 20.0).tanh();
        let sech2 = t.clone().square().neg().add_scalar(1.0);
        t + input.clone() * sigmoid(input) * sech2
    }
}

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
