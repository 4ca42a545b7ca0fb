use burn::module::Module;
use burn::tensor::{Tensor, activation};

use crate::softmax::{SoftmaxConfig, normalizing_kind, resolve_dim};

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

normalizing_kind!(
    LogSoftmax,
    kind: "log_softmax",
    description: "log of softmax over a dim (output layers)",
    bounded: false,
    init: init_log
);

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
