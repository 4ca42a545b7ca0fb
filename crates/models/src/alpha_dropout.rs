use activations::burn::module::{Flag, Module, Param};
use activations::burn::tensor::{Distribution, Tensor};

/// `-λα` of SELU: the value SELU saturates to, which AlphaDropout drops to.
const SELU_SATURATION: f64 = 1.758_099_340_847_376_6;

/// AlphaDropout (Klambauer et al., 2017): dropout for SELU networks that keeps mean 0 and
/// variance 1 by dropping to SELU's saturation value and applying an affine correction.
///
/// PyTorch: `nn.AlphaDropout(p)`: `a · (x·m + α'(m - 1)) + α' a p` with `m ~ Bernoulli(1 - p)`,
/// `α' = 1.7581`, `a = ((α'² p + 1)(1 - p))^-1/2`. Identity in evaluation.
#[derive(Module, Debug)]
pub struct AlphaDropout {
    /// Probability of dropping an element.
    pub prob: f64,
    /// Training mode flag (see `Module::valid`).
    pub training: Param<Flag>,
}

impl AlphaDropout {
    /// A new AlphaDropout with drop probability `prob ∈ [0, 1)`.
    pub fn new(prob: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&prob),
            "dropout must be in [0, 1), got {prob}"
        );
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Applies AlphaDropout in training, the identity otherwise.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if self.prob == 0.0 || !self.training.is_enabled() || !input.device().is_autodiff() {
            return input;
        }
        let p = self.prob;
        let alpha = SELU_SATURATION;
        let a = 1.0 / ((alpha * alpha * p + 1.0) * (1.0 - p)).sqrt();
        let keep = input
            .clone()
            .detach()
            .random_like(Distribution::Bernoulli(1.0 - p));
        let shift = keep
            .clone()
            .sub_scalar(1.0)
            .mul_scalar(alpha * a)
            .add_scalar(alpha * a * p);
        input * keep.mul_scalar(a) + shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use activations::burn::tensor::Device;

    #[test]
    fn keeps_zero_mean_unit_variance() {
        let device = Device::flex().autodiff();
        let x = Tensor::<1>::random([200_000], Distribution::Normal(0.0, 1.0), &device);
        let y = AlphaDropout::new(0.2).forward(x);
        let values: Vec<f32> = y.into_data().try_to_vec().unwrap();
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let var = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / values.len() as f32;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn identity_in_evaluation() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([1.0, -2.0], &device);
        let y = AlphaDropout::new(0.5).forward(x);
        assert_eq!(y.into_data().try_to_vec::<f32>().unwrap(), vec![1.0, -2.0]);
    }
}
