use crate::InvalidConfig;
use crate::fused::{self, Pointwise, formula::formula};
use crate::kind::ActivationKind;
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Softplus: `(1/β) log(1 + exp(β x))`, and `x` itself where `β x > threshold`.
///
/// PyTorch: `nn.Softplus(beta=1.0, threshold=20.0)`. `Softplus'(x) = σ(βx)` (1 above the
/// threshold). `exp` only sees inputs at most `threshold`, so nothing overflows.
#[derive(Module, Debug)]
pub struct Softplus {
    /// Sharpness `β`.
    pub beta: f64,
    /// Above `β x > threshold` the function is linear.
    pub threshold: f64,
}

/// Configuration of [`Softplus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftplusConfig {
    /// Sharpness `β`; must be positive. Default 1.
    pub beta: f64,
    /// Linear above `β x > threshold`. Default 20.
    pub threshold: f64,
}

impl Default for SoftplusConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            threshold: 20.0,
        }
    }
}

impl SoftplusConfig {
    /// Checks `beta > 0` and a finite threshold.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !(self.beta.is_finite() && self.beta > 0.0 && self.threshold.is_finite()) {
            return Err(InvalidConfig::new(
                "softplus",
                format!("needs beta > 0 and a finite threshold, got beta = {}, threshold = {}",
                self.beta, self.threshold),
            ));
        }
        Ok(())
    }

    /// Builds the module.
    pub fn init(&self) -> Softplus {
        Softplus {
            beta: self.beta,
            threshold: self.threshold,
        }
    }
}

impl Default for Softplus {
    fn default() -> Self {
        SoftplusConfig::default().init()
    }
}

impl Softplus {
    /// Applies softplus element-wise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let op = ActivationKind::pointwise(self).expect("softplus has a kernel");
        fused::pointwise(input, op).unwrap_or_else(|input| self.composite(input))
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        softplus(input, self.beta, self.threshold)
    }
}

formula!(
    /// `βx > threshold ? x : ln(1 + e^{βx}) / β`; derivative `σ(βx)`, 1 above the threshold.
    SoftplusFormula {
        beta,
        inverse_beta,
        threshold
    },
    value: |x| {
        let scaled = x * beta;
        let positive_part = R::select(scaled.greater(0.0), scaled, 0.0);
        let smooth = (positive_part + (-scaled.abs()).exp_nonpositive().log1p_unit()) * inverse_beta;
        R::select(scaled.greater(threshold), x, smooth)
    },
    backward: |x, grad| {
        let scaled = x * beta;
        R::select(scaled.greater(threshold), grad, grad * scaled.sigmoid())
    },
);

impl SoftplusFormula {
    /// The formula for PyTorch's `beta` and `threshold`.
    pub(crate) fn new(beta: f64, threshold: f64) -> Self {
        Self {
            beta: beta as f32,
            inverse_beta: (1.0 / beta) as f32,
            threshold: threshold as f32,
        }
    }
}

impl ActivationKind for Softplus {
    const KIND: &'static str = "softplus";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "smooth ReLU, log(1+e^(βx))/β";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = SoftplusConfig;

    fn validate(config: &SoftplusConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &SoftplusConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(_: &SoftplusConfig) -> bool {
        true
    }
    fn is_learnable(_: &SoftplusConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<Pointwise> {
        Some(Pointwise::new(SoftplusFormula::new(self.beta, self.threshold)))
    }
    fn pointwise(&self) -> Option<Pointwise> {
        self.formula()
    }
}

/// PyTorch's softplus: `βx > threshold ? x : log1p(exp(βx)) / β`. The linear elements are
/// replaced by 0 before `exp`, so their (unused) branch stays finite in value and gradient.
pub(crate) fn softplus<const D: usize>(input: Tensor<D>, beta: f64, threshold: f64) -> Tensor<D> {
    let scaled = if beta == 1.0 {
        input.clone()
    } else {
        input.clone().mul_scalar(beta)
    };
    let linear = scaled.clone().greater_elem(threshold);
    let smooth = scaled.mask_fill(linear.clone(), 0.0).exp().log1p();
    let smooth = if beta == 1.0 {
        smooth
    } else {
        smooth.div_scalar(beta)
    };
    smooth.mask_where(linear, input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn defaults_match_pytorch() {
        assert_eq!(
            SoftplusConfig::default(),
            SoftplusConfig {
                beta: 1.0,
                threshold: 20.0
            }
        );
    }

    #[test]
    fn linear_above_threshold_without_overflow() {
        let module = Softplus::default();
        let (y, g) = value_and_grad(&[-1e4, 0.0, 1e4], |x| module.forward(x));
        assert_close(&y, &[0.0, std::f32::consts::LN_2, 1e4]);
        assert_close(&g, &[0.0, 0.5, 1.0]);
    }

    #[test]
    fn non_positive_beta_is_rejected() {
        let config = SoftplusConfig {
            beta: 0.0,
            threshold: 20.0,
        };
        assert!(config.validate().unwrap_err().to_string().contains("beta > 0"));
    }
}
