use crate::kind::{ActivationKind, NotElementwise};
use burn::module::Module;
use burn::tensor::{Device, Tensor, activation};
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

impl ActivationKind for Softmax {
    const KIND: &'static str = "softmax";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "normalised exponentials over a dim (output layers)";
    const BOUNDED: bool = true;
    const ELEMENTWISE: bool = false;
    type Config = SoftmaxConfig;
    type Formula = NotElementwise;

    fn validate(_: &SoftmaxConfig) -> Result<(), String> {
        Ok(())
    }
    fn from_config(config: &SoftmaxConfig, _: usize, _: &Device) -> Self {
        config.init()
    }
    fn has_fused_kernel(_: &SoftmaxConfig) -> bool {
        false
    }
    fn is_learnable(_: &SoftmaxConfig) -> bool {
        false
    }
    fn formula(&self) -> Option<NotElementwise> {
        None
    }
}

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
