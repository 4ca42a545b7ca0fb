use crate::kind::{ActivationKind, NotElementwise};
use burn::module::Module;
use burn::tensor::{Device, Tensor, activation};

use crate::softmax::{SoftmaxConfig, resolve_dim};

/// Log-softmax over one dimension: `xᵢ - log Σⱼ exp(xⱼ)`, stable for large inputs.
///
/// PyTorch: `nn.LogSoftmax(dim)`. For output layers trained with negative log-likelihood.
#[derive(Module, Debug)]
pub struct LogSoftmax {
    /// The dimension normalised over; negative counts from the end.
    pub dim: i64,
}

impl SoftmaxConfig {
    /// Builds a log-softmax.
    pub fn init_log(&self) -> LogSoftmax {
        LogSoftmax { dim: self.dim }
    }
}

impl LogSoftmax {
    /// Applies log-softmax along `dim`.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        activation::log_softmax(input, resolve_dim::<D>(self.dim, "log_softmax"))
    }
}

impl ActivationKind for LogSoftmax {
    const KIND: &'static str = "log_softmax";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "log of softmax over a dim (output layers)";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = false;
    type Config = SoftmaxConfig;
    type Formula = NotElementwise;

    fn validate(_: &SoftmaxConfig) -> Result<(), String> {
        Ok(())
    }
    fn from_config(config: &SoftmaxConfig, _: usize, _: &Device) -> Self {
        config.init_log()
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
    fn log_probabilities_of_extreme_logits() {
        let y = SoftmaxConfig::default()
            .init_log()
            .forward(tensor(&[1e4, 1e4, -1e4]));
        assert_close(
            &to_vec(y),
            &[
                -std::f32::consts::LN_2,
                -std::f32::consts::LN_2,
                -20_000.693,
            ],
        );
    }
}
