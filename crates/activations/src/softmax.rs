use burn::module::Module;
use burn::tensor::{Tensor, activation};
use serde::{Deserialize, Serialize};

/// Softmax over one dimension: `exp(xᵢ) / Σⱼ exp(xⱼ)`, computed with the maximum subtracted so
/// that `x = 1e4` does not overflow.
///
/// PyTorch: `nn.Softmax(dim)`. Not element-wise: meant for output layers (probabilities), so it
/// has no scalar `derivative`.
#[derive(Module, Debug)]
pub struct Softmax {
    /// The dimension normalised over; negative counts from the end.
    pub dim: i64,
}

/// Configuration of [`Softmax`] and [`LogSoftmax`](crate::LogSoftmax).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SoftmaxConfig {
    /// The dimension normalised over; negative counts from the end. Default -1 (the last).
    pub dim: i64,
}

impl Default for SoftmaxConfig {
    fn default() -> Self {
        Self { dim: -1 }
    }
}

impl SoftmaxConfig {
    /// Builds a softmax.
    pub fn init(&self) -> Softmax {
        Softmax { dim: self.dim }
    }
}

/// Resolves a possibly negative `dim` for a rank-`D` tensor, with a clear message when it is out
/// of range.
pub(crate) fn resolve_dim<const D: usize>(dim: i64, what: &str) -> usize {
    let rank = D as i64;
    let resolved = if dim < 0 { rank + dim } else { dim };
    assert!(
        (0..rank).contains(&resolved),
        "{what}: dim {dim} is out of range for a tensor of rank {D} (use -{D}..{D})"
    );
    resolved as usize
}

impl Softmax {
    /// Applies softmax along `dim`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        activation::softmax(input, resolve_dim::<D>(self.dim, "softmax"))
    }
}

/// The [`ActivationKind`] of a normalisation over `dim` (softmax, log-softmax): configured by
/// [`SoftmaxConfig`], not element-wise, nothing fused or learned.
macro_rules! normalizing_kind {
    ($module:ident, kind: $kind:literal, description: $description:literal,
     bounded: $bounded:literal, init: $init:ident) => {
        impl $crate::kind::ActivationKind for $module {
            const KIND: &'static str = $kind;
            const ALIASES: &'static [&'static str] = &[];
            const DESCRIPTION: &'static str = $description;
            const BOUNDED: bool = $bounded;
            const ELEMENTWISE: bool = false;
            type Config = $crate::softmax::SoftmaxConfig;

            fn validate(_: &Self::Config) -> Result<(), $crate::InvalidConfig> {
                Ok(())
            }
            fn from_config(config: &Self::Config, _: usize, _: &burn::tensor::Device) -> Self {
                config.$init()
            }
            fn has_fused_kernel(_: &Self::Config) -> bool {
                false
            }
            fn is_learnable(_: &Self::Config) -> bool {
                false
            }
            fn formula(&self) -> Option<$crate::fused::Pointwise> {
                None
            }
        }
    };
}

pub(crate) use normalizing_kind;

normalizing_kind!(
    Softmax,
    kind: "softmax",
    description: "normalised exponentials over a dim (output layers)",
    bounded: true,
    init: init
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn sums_to_one_without_overflow() {
        let y = SoftmaxConfig::default()
            .init()
            .forward(tensor(&[1e4, 1e4, -1e4]));
        assert_close(&to_vec(y), &[0.5, 0.5, 0.0]);
    }

    #[test]
    #[should_panic(expected = "dim 2 is out of range")]
    fn out_of_range_dim_is_explained() {
        SoftmaxConfig { dim: 2 }.init().forward(tensor(&[1.0]));
    }
}
