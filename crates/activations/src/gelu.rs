use crate::InvalidConfig;
use crate::fused::{self, Pointwise, formula::formula};
use crate::kind::ActivationKind;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// `1 / √2`, the scale of `erf`'s argument in `Φ(x)`.
pub(crate) const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// `1 / √(2π)`, the standard normal density at 0 (PyTorch's `kAlpha` in the GELU backward).
pub(crate) const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
/// `√(2/π)`, the scale of the tanh form.
pub(crate) const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh form.
pub(crate) const TANH_CUBIC: f32 = 0.044_715;

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
        fused::pointwise(input, self.op()).unwrap_or_else(|input| self.composite(input))
    }

    /// The fused op of this form.
    fn op(&self) -> Pointwise {
        if self.tanh_approximation {
            Pointwise::new(GeluTanhFormula {})
        } else {
            Pointwise::new(GeluFormula {})
        }
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
}

formula!(
    /// `x Φ(x)` with the exact normal CDF; derivative `Φ(x) + x φ(x)`.
    GeluFormula {},
    value: |x| x * 0.5 * ((x * FRAC_1_SQRT_2).erf() + 1.0),
    backward: |x, grad| {
        // One exponential serves both: erf(x/√2) needs e^{-x²/2}, and so does the density.
        let gaussian = (x * -0.5 * x).exp_nonpositive();
        let cdf = ((x * FRAC_1_SQRT_2).erf_given_gaussian(gaussian) + 1.0) * 0.5;
        let pdf = gaussian * FRAC_1_SQRT_2PI;
        grad * (cdf + x * pdf)
    },
);

formula!(
    /// `½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))` and its derivative.
    GeluTanhFormula {},
    value: |x| {
        let inner = (x + x * TANH_CUBIC * x * x) * SQRT_2_OVER_PI;
        x * 0.5 * (inner.tanh() + 1.0)
    },
    backward: |x, grad| {
        let x_sq = x * x;
        let inner = (x + x_sq * TANH_CUBIC * x) * SQRT_2_OVER_PI;
        let t = inner.tanh();
        let left_derivative = (t + 1.0) * 0.5;
        let right_derivative = x * 0.5 * (R::from(1.0) - t * t) * SQRT_2_OVER_PI
            * (x_sq * (3.0 * TANH_CUBIC) + 1.0);
        grad * (left_derivative + right_derivative)
    },
);

impl ActivationKind for Gelu {
    const KIND: &'static str = "gelu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "x·Φ(x), exact (erf) or tanh approximation (Transformers)";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = GeluConfig;

    fn validate(_: &GeluConfig) -> Result<(), InvalidConfig> {
        Ok(())
    }
    fn from_config(config: &GeluConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(_: &GeluConfig) -> bool {
        true
    }
    fn is_learnable(_: &GeluConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(self.op())
    }
    fn pointwise(&self) -> Option<Pointwise> {
        self.formula()
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
