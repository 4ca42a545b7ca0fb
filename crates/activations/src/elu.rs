use crate::InvalidConfig;
use crate::fused::{self, Formula, Pointwise, Real, formula::formula};
use crate::kind::ActivationKind;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Exponential linear unit (Clevert et al., 2015): `x` for `x > 0`, `α (exp(x) - 1)` otherwise.
///
/// PyTorch: `nn.ELU(alpha=1.0)`. `ELU'(x) = 1` for `x > 0`, `α exp(x)` for `x ≤ 0` (so `α` at 0).
/// `exp` is only evaluated on the non-positive part, so `x = 1e4` gives gradient 1, not NaN.
#[derive(Module, Debug)]
pub struct Elu {
    /// Scale of the negative saturation value `-α`.
    pub alpha: f64,
}

/// Configuration of [`Elu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EluConfig {
    /// The negative saturation value is `-alpha`. Default 1.
    pub alpha: f64,
}

impl Default for EluConfig {
    fn default() -> Self {
        Self { alpha: 1.0 }
    }
}

impl EluConfig {
    /// Checks `alpha` is finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !self.alpha.is_finite() {
            return Err(InvalidConfig::new(
                "elu.alpha",
                format!("must be finite, got {}", self.alpha),
            ));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> Elu {
        Elu { alpha: self.alpha }
    }
}

impl Elu {
    /// Applies the ELU element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        exponential_linear(input, self.alpha, 1.0, 1.0)
    }
}

impl ActivationKind for Elu {
    const KIND: &'static str = "elu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "smooth negative saturation at -alpha";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = EluConfig;

    fn validate(config: &EluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &EluConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(config: &EluConfig) -> bool {
        // The backward works from the output, which needs α > 0 to tell the sides apart.
        config.alpha > 0.0
    }
    fn is_learnable(_: &EluConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(ExponentialLinearFormula::new(self.alpha, 1.0, 1.0)))
    }
    fn pointwise(&self) -> Option<Pointwise> {
        exponential_linear_op(self.alpha, 1.0, 1.0)
    }
}

formula!(
    /// The ELU family (ELU, SELU, CELU): `x > 0 ? positive_coef · x :
    /// negative_coef · (exp(input_scale · x) - 1)`, with `negative_coef = scale · α` and
    /// `positive_coef = scale`.
    ExponentialLinearFormula {
        negative_coef,
        positive_coef,
        input_scale
    },
    value: |x| {
        // The positive side never reaches `exp` (its value is discarded; NaN stays NaN).
        let negative_input = R::select(x.greater(0.0), 0.0, x);
        let negative = ((negative_input * input_scale).exp_nonpositive() - 1.0) * negative_coef;
        R::select(x.less_eq(0.0), negative, x * positive_coef)
    },
    // From the output: y > 0 exactly when x > 0 for positive α. NaN takes the exponential
    // side, whose formula gives NaN, as PyTorch's vectorised `x > 0 ? ... : ...` blend does.
    backward: |y, grad| {
        let negative = negative_side(input_scale, negative_coef, grad, y);
        R::select(y.greater(0.0), grad * positive_coef, negative)
    },
    saves_output: |s| s.negative_coef > 0.0 && s.positive_coef > 0.0 && s.input_scale > 0.0,
    // From the input, which tells the sides apart for every α.
    derivative: |s, x| {
        if x > 0.0 {
            s.positive_coef
        } else {
            negative_side(s.input_scale, s.negative_coef, 1.0, s.at(x))
        }
    },
);

impl ExponentialLinearFormula {
    /// The formula of `scale · elu(x · input_scale, α)`-style parameters, as PyTorch's `elu`
    /// kernel takes them.
    pub(crate) fn new(alpha: f64, scale: f64, input_scale: f64) -> Self {
        Self {
            negative_coef: (alpha * scale) as f32,
            positive_coef: scale as f32,
            input_scale: input_scale as f32,
        }
    }

}

/// `grad · f'(x)` on the negative side, from the output `y = negative_coef (e^{input_scale · x} - 1)`.
#[inline(always)]
fn negative_side<R: Real>(input_scale: R, negative_coef: R, grad: R, y: R) -> R {
    grad * input_scale * (y + negative_coef)
}

/// The fused op of the ELU family, when it has one: its backward works from the output, which
/// needs a positive α to tell the sides apart.
pub(crate) fn exponential_linear_op(alpha: f64, scale: f64, input_scale: f64) -> Option<Pointwise> {
    let formula = ExponentialLinearFormula::new(alpha, scale, input_scale);
    formula.saves_output().then(|| Pointwise::new(formula))
}

/// The ELU family, `scale · (x > 0 ? x : α (exp(x · input_scale) - 1))`, as PyTorch's `elu` kernel
/// (`celu` uses `input_scale = 1/α`, `selu` its fixed `scale` and `α`).
///
/// The positive inputs are replaced by 0 before `exp`, so the unused branch stays finite and its
/// zero gradient cannot turn into `0 · inf = NaN`.
pub(crate) fn exponential_linear<const D: usize>(
    input: Tensor<D>,
    alpha: f64,
    scale: f64,
    input_scale: f64,
) -> Tensor<D> {
    let input = match exponential_linear_op(alpha, scale, input_scale) {
        Some(op) => match fused::pointwise(input, op) {
            Ok(output) => return output,
            Err(input) => input,
        },
        None => input,
    };
    let positive = input.clone().greater_elem(0.0);
    let negative_part = input.clone().mask_fill(positive.clone(), 0.0);
    let negative = negative_part
        .mul_scalar(input_scale)
        .exp()
        .sub_scalar(1.0)
        .mul_scalar(alpha * scale);
    let linear = if scale == 1.0 {
        input
    } else {
        input.mul_scalar(scale)
    };
    negative.mask_where(positive, linear)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn large_inputs_keep_finite_gradients() {
        let module = EluConfig::default().init();
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1e4], |x| module.forward(x));
        assert_close(&y, &[-1.0, 0.0, 1e4]);
        assert_close(&g, &[0.0, 1.0, 1.0]);
    }

    #[test]
    fn alpha_scales_saturation_and_slope_at_zero() {
        let module = EluConfig { alpha: 0.5 }.init();
        let (y, g) = value_and_grad(&[-100.0, 0.0], |x| module.forward(x));
        assert_close(&y, &[-0.5, 0.0]);
        assert_close(&g, &[0.0, 0.5]);
    }
}
