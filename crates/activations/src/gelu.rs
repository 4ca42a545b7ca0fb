use crate::fused::{self, Pointwise};
use burn::module::Module;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2π)`, the standard normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// `sqrt(2 / π)`.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const TANH_CUBIC: f64 = 0.044_715;

/// Which form of GELU to compute, as PyTorch's `approximate` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GeluApproximation {
    /// The exact `x Φ(x)` with the error function (PyTorch's default, `"none"`).
    #[default]
    None,
    /// `0.5 x (1 + tanh(sqrt(2/π) (x + 0.044715 x³)))` (`"tanh"`, as in BERT/GPT-2).
    Tanh,
}

/// Gaussian error linear unit (Hendrycks & Gimpel, 2016): `GELU(x) = x Φ(x)
/// = 0.5 x (1 + erf(x / √2))`, or its tanh approximation.
///
/// PyTorch: `nn.GELU(approximate='none')`. `GELU'(x) = Φ(x) + x φ(x)`. The gradient is computed
/// from the erf formula itself (Burn's built-in `gelu` backward uses the tanh form for both).
#[derive(Module, Debug)]
pub struct Gelu {
    /// `true` for the tanh approximation.
    pub tanh_approximation: bool,
}

/// Configuration of [`Gelu`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeluConfig {
    /// `"none"` (exact, default) or `"tanh"`.
    pub approximate: GeluApproximation,
}

impl GeluConfig {
    /// Builds the module.
    pub fn init(&self) -> Gelu {
        Gelu {
            tanh_approximation: self.approximate == GeluApproximation::Tanh,
        }
    }
}

impl Gelu {
    /// Applies GELU element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let op = if self.tanh_approximation {
            Pointwise::GeluTanh
        } else {
            Pointwise::Gelu
        };
        fused::pointwise(input, op).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.tanh_approximation {
            let inner = tanh_inner(input.clone());
            input.mul_scalar(0.5) * (inner.tanh() + 1.0)
        } else {
            let cdf = input
                .clone()
                .mul_scalar(FRAC_1_SQRT_2)
                .erf()
                .add_scalar(1.0);
            input.mul_scalar(0.5) * cdf
        }
    }

    /// Exact: `Φ(x) + x φ(x)`; tanh form: its derivative.
    pub fn derivative<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.tanh_approximation {
            let t = tanh_inner(input.clone()).tanh();
            let slope = input
                .clone()
                .square()
                .mul_scalar(3.0 * TANH_CUBIC)
                .add_scalar(1.0)
                .mul_scalar(SQRT_2_OVER_PI);
            let sech2 = t.clone().square().neg().add_scalar(1.0);
            t.add_scalar(1.0).mul_scalar(0.5) + input.mul_scalar(0.5) * sech2 * slope
        } else {
            let cdf = input
                .clone()
                .mul_scalar(FRAC_1_SQRT_2)
                .erf()
                .add_scalar(1.0)
                .mul_scalar(0.5);
            let pdf = input
                .clone()
                .square()
                .mul_scalar(-0.5)
                .exp()
                .mul_scalar(FRAC_1_SQRT_2PI);
            cdf + input * pdf
        }
    }
}

/// `sqrt(2/π) (x + 0.044715 x³)`; `x·x·x` rather than `powf`, which is NaN for negative bases
/// on some backends.
fn tanh_inner<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let cube = x.clone() * x.clone() * x.clone();
    (x + cube.mul_scalar(TANH_CUBIC)).mul_scalar(SQRT_2_OVER_PI)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn exact_form_uses_erf_in_value_and_gradient() {
        let module = GeluConfig::default().init();
        let (y, g) = value_and_grad(&[-3.0, 0.0, 1.0, 1e4], |x| module.forward(x));
        assert_close(&y, &[-0.004_049_7, 0.0, 0.841_344_7, 1e4]);
        // The tanh form's gradient at -3 is -0.011584: the exact one must differ.
        assert_close(&g, &[-0.011_945_5, 0.5, 1.083_315, 1.0]);
    }

    #[test]
    fn tanh_form_matches_pytorch_approximate() {
        let config: GeluConfig = toml::from_str("approximate = \"tanh\"").unwrap();
        let module = config.init();
        let (y, g) = value_and_grad(&[-3.0, 1.0], |x| module.forward(x));
        assert_close(&y, &[-0.003_637_4, 0.841_192]);
        assert_close(&g, &[-0.011_584, 1.082_964]);
    }
}
