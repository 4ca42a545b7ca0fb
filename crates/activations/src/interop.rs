//! Moving from `burn::nn`'s activations: every [`burn::nn::activation::ActivationConfig`] that has a
//! counterpart here converts with `try_from`/`try_into`; the others are an error that names
//! them and says why.
//!
//! ```
//! use actlab_activations::ActivationConfig;
//! use actlab_activations::burn::nn::activation as nn;
//!
//! let config = ActivationConfig::try_from(nn::ActivationConfig::Gelu).unwrap();
//! assert_eq!(config.name(), "gelu");
//! assert!(ActivationConfig::try_from(nn::ActivationConfig::HardSwish).is_ok());
//! ```
use burn::nn::activation::ActivationConfig as BurnActivation;

use crate::{
    ActivationConfig, CeluConfig, EluConfig, GeluApproximation, GeluConfig, LeakyReluConfig,
    PReluConfig, SoftplusConfig, SoftshrinkConfig,
};

/// A `burn::nn` activation with no counterpart in this crate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedBurnActivation {
    /// Burn's variant, as `Debug` prints it.
    pub burn: String,
    /// Why it does not convert, and what to use instead.
    pub reason: &'static str,
}

impl std::fmt::Display for UnsupportedBurnActivation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "burn::nn::activation::ActivationConfig::{} has no counterpart here: {}",
            self.burn, self.reason
        )
    }
}

impl std::error::Error for UnsupportedBurnActivation {}

impl TryFrom<BurnActivation> for ActivationConfig {
    type Error = UnsupportedBurnActivation;

    fn try_from(burn: BurnActivation) -> Result<Self, Self::Error> {
        let unsupported = |reason| {
            Err(UnsupportedBurnActivation {
                burn: format!("{burn:?}"),
                reason,
            })
        };
        Ok(match &burn {
            BurnActivation::Identity => Self::Identity,
            BurnActivation::Relu => Self::Relu,
            BurnActivation::Sigmoid => Self::Sigmoid,
            BurnActivation::Tanh => Self::Tanh,
            BurnActivation::Selu => Self::Selu,
            BurnActivation::HardSwish => Self::Hardswish,
            BurnActivation::Softsign => Self::Softsign,
            BurnActivation::Gelu => Self::Gelu(GeluConfig::default()),
            BurnActivation::GeluApproximate => Self::Gelu(GeluConfig {
                approximate: GeluApproximation::Tanh,
            }),
            BurnActivation::LeakyRelu(c) => Self::LeakyRelu(LeakyReluConfig {
                negative_slope: c.negative_slope,
            }),
            BurnActivation::PRelu(c) => Self::Prelu(PReluConfig {
                // Burn names the count; here the slot's channel count is used when per channel.
                per_channel: c.num_parameters > 1,
                init: c.alpha,
            }),
            BurnActivation::Softplus(c) => Self::Softplus(SoftplusConfig {
                beta: c.beta,
                threshold: c.threshold,
            }),
            BurnActivation::Elu(c) => Self::Elu(EluConfig { alpha: c.alpha }),
            BurnActivation::Celu(c) => Self::Celu(CeluConfig { alpha: c.alpha }),
            BurnActivation::SoftShrink(c) => {
                Self::Softshrink(SoftshrinkConfig { lambda: c.lambda })
            }
            // PyTorch's hardsigmoid is relu6(x + 3) / 6; Burn's takes ONNX's alpha and beta.
            BurnActivation::HardSigmoid(c) if c.alpha == 1.0 / 6.0 && c.beta == 0.5 => {
                Self::Hardsigmoid
            }
            BurnActivation::HardSigmoid(_) => {
                return unsupported(
                    "only alpha = 1/6, beta = 0.5 (PyTorch's hardsigmoid) has a counterpart; \
                     Burn's default is ONNX's alpha = 0.2",
                );
            }
            BurnActivation::SwiGlu(_) => {
                return unsupported("a gated linear unit with weights, not an activation slot");
            }
            BurnActivation::ThresholdedRelu(_)
            | BurnActivation::HardShrink(_)
            | BurnActivation::Shrink(_) => {
                return unsupported("not in this crate's catalog (see `fmnist activations`)");
            }
            _ => return unsupported("a variant newer than this crate"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::nn::activation as nn;

    /// Every convertible variant computes what Burn's own module computes, on ordinary inputs
    /// (the golden tests cover the tails where Burn and PyTorch differ).
    #[test]
    fn converted_configs_compute_what_burns_modules_compute() {
        let convertible = [
            nn::ActivationConfig::Identity,
            nn::ActivationConfig::Relu,
            nn::ActivationConfig::Sigmoid,
            nn::ActivationConfig::Tanh,
            nn::ActivationConfig::Selu,
            nn::ActivationConfig::HardSwish,
            nn::ActivationConfig::Softsign,
            nn::ActivationConfig::Gelu,
            nn::ActivationConfig::GeluApproximate,
            nn::ActivationConfig::LeakyRelu(nn::LeakyReluConfig::new().with_negative_slope(0.2)),
            nn::ActivationConfig::PRelu(nn::PReluConfig::new().with_alpha(0.3)),
            nn::ActivationConfig::Softplus(nn::SoftplusConfig::new().with_beta(2.0)),
            nn::ActivationConfig::Elu(nn::EluConfig::new().with_alpha(0.5)),
            nn::ActivationConfig::Celu(nn::CeluConfig::new().with_alpha(2.0)),
            nn::ActivationConfig::SoftShrink(nn::SoftShrinkConfig::new().with_lambda(0.7)),
            nn::ActivationConfig::HardSigmoid(nn::HardSigmoidConfig::new().with_alpha(1.0 / 6.0)),
        ];
        let xs: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.15 + 0.01).collect();
        for burn in convertible {
            let label = format!("{burn:?}");
            let ours = ActivationConfig::try_from(burn.clone())
                .unwrap()
                .init(1, &device());
            let theirs = burn.init(&device());
            let x = || tensor(&xs).reshape([1, xs.len()]);
            let (a, b) = (to_vec(ours.forward(x())), to_vec(theirs.forward(x())));
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
                    "{label} at {}: {a} vs {b}",
                    xs[i]
                );
            }
        }
    }

    #[test]
    fn unsupported_variants_name_themselves_and_the_reason() {
        let error = ActivationConfig::try_from(nn::ActivationConfig::HardSigmoid(
            nn::HardSigmoidConfig::new(),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("HardSigmoid") && error.contains("alpha"),
            "{error}"
        );
        let error = ActivationConfig::try_from(nn::ActivationConfig::HardShrink(
            nn::HardShrinkConfig::new(),
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("HardShrink") && error.contains("catalog"),
            "{error}"
        );
    }
}
