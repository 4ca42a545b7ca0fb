use crate::InvalidConfig;
use crate::fused::{self, Channelwise, Pointwise};
use crate::kind::{ActivationKind, channelwise_derivative};
use crate::leaky_relu::LeakyReluFormula;
use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// Parametric ReLU (He et al., 2015): `x` for `x > 0`, `a · x` otherwise, with a learned slope `a`.
///
/// PyTorch: `nn.PReLU(num_parameters=1, init=0.25)`. With `num_parameters = C > 1` there is one
/// slope per channel, the channel being dim 1 of the input (`[N, C, ...]`). The gradient with
/// respect to `a` is `Σ x` over the elements with `x ≤ 0` (of that channel).
#[derive(Module, Debug)]
pub struct PRelu {
    /// The slopes, shape `[num_parameters]`.
    pub weight: Param<Tensor<1>>,
}

/// Configuration of [`PRelu`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PReluConfig {
    /// One slope shared by all channels (`false`, PyTorch's default `num_parameters = 1`) or one
    /// per channel (`true`): the registry then uses the slot's channel count.
    pub per_channel: bool,
    /// Initial slope. Default 0.25.
    pub init: f64,
}

impl Default for PReluConfig {
    fn default() -> Self {
        Self {
            per_channel: false,
            init: 0.25,
        }
    }
}

impl PReluConfig {
    /// Checks the initial slope is finite.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if !self.init.is_finite() {
            return Err(InvalidConfig::new(
                "prelu.init",
                format!("must be finite, got {}", self.init),
            ));
        }
        Ok(())
    }

    /// Builds the module with `num_parameters` slopes (1, or the channel count).
    pub fn init_with(&self, num_parameters: usize, device: &Device) -> PRelu {
        assert!(num_parameters > 0, "PReLU needs at least one slope");
        PRelu {
            weight: Param::from_tensor(Tensor::full([num_parameters], self.init, device)),
        }
    }

    /// Builds the module for a slot with `channels` channels.
    pub fn init(&self, channels: usize, device: &Device) -> PRelu {
        self.init_with(if self.per_channel { channels } else { 1 }, device)
    }
}

impl PRelu {
    fn broadcast_weight<const D: usize>(&self, input: &Tensor<D>) -> Tensor<D> {
        let [num_parameters] = self.weight.dims();
        let mut shape = [1usize; D];
        if num_parameters > 1 {
            let dims = input.dims();
            assert!(
                D >= 2 && dims[1] == num_parameters,
                "PReLU has {num_parameters} slopes, one per channel, but the input has shape \
                 {dims:?}: its dim 1 must have {num_parameters} channels"
            );
            shape[1] = num_parameters;
        }
        self.weight.val().reshape(shape)
    }

    /// Applies the PReLU; input `[N, C, ...]` when there is one slope per channel.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let channels = if D >= 2 { input.dims()[1] } else { 1 };
        match self.channelwise(channels) {
            Some((op, parameters)) => fused::channelwise(input, parameters, op)
                .unwrap_or_else(|input| self.composite(input)),
            // The composite explains the mismatch.
            None => self.composite(input),
        }
    }

    /// The same with Burn's built-in tensor ops: the path on backends without a fused kernel.
    fn composite<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let weight = self.broadcast_weight(&input);
        let positive = input.clone().greater_elem(0.0);
        (input.clone() * weight).mask_where(positive, input)
    }

    /// The slopes' current values.
    fn slopes(&self) -> Vec<f32> {
        self.weight
            .val()
            .into_data()
            .convert::<f32>()
            .try_into_vec()
            .expect("converted to f32")
    }
}

impl ActivationKind for PRelu {
    const KIND: &'static str = "prelu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str = "ReLU with a learned negative slope (shared or per channel)";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = true;
    type Config = PReluConfig;
    fn validate(config: &PReluConfig) -> Result<(), InvalidConfig> {
        config.validate()
    }
    fn from_config(config: &PReluConfig, channels: usize, device: &Device) -> Self {
        config.init(channels, device)
    }
    fn has_fused_kernel(_: &PReluConfig) -> bool {
        true
    }
    fn is_learnable(_: &PReluConfig) -> bool {
        true
    }
    /// The formula of a shared slope; `None` with one slope per channel (see `derivative`).
    fn formula(&self) -> Option<Pointwise> {
        match self.slopes()[..] {
            [negative_slope] => Some(Pointwise::new(LeakyReluFormula { negative_slope })),
            _ => None,
        }
    }

    /// Leaky ReLU with each channel's slope, `[C, 1]` (or `[1, 1]`, shared).
    fn channelwise(&self, channels: usize) -> Option<(Channelwise, Tensor<2>)> {
        let [num_parameters] = self.weight.dims();
        (num_parameters == 1 || num_parameters == channels).then(|| {
            let parameters = self.weight.val().reshape([num_parameters, 1]);
            (Channelwise::of::<LeakyReluFormula>(), parameters)
        })
    }

    fn channel_parameters(&self) -> Vec<(&'static str, Vec<f32>)> {
        vec![("slope", self.slopes())]
    }

    /// 1 for `x > 0`, the channel's slope otherwise (channels on dim 1).
    fn derivative<const D: usize>(&self, input: Tensor<D>) -> Option<Tensor<D>> {
        // Checks the channel count with the forward's message.
        let _ = self.broadcast_weight(&input);
        let [num_parameters] = self.weight.dims();
        let parameters = self.weight.val().reshape([num_parameters, 1]);
        let op = Channelwise::of::<LeakyReluFormula>();
        Some(channelwise_derivative(op, parameters, input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    #[test]
    fn shared_slope_learns_from_negative_inputs() {
        let module = PReluConfig::default().init(3, &device());
        assert_eq!(module.weight.dims(), [1]);
        let x = tensor(&[-2.0, 0.0, 4.0]).require_grad();
        let y = module.forward(x.clone());
        assert_close(&to_vec(y.clone()), &[-0.5, 0.0, 4.0]);
        let grads = y.sum().backward();
        assert_close(&to_vec(x.grad(&grads).unwrap()), &[0.25, 0.25, 1.0]);
        let weight_grad = module.weight.val().grad(&grads).unwrap();
        assert_close(&to_vec(weight_grad), &[-2.0]);
    }

    #[test]
    fn per_channel_slopes_follow_dim_one() {
        let config = PReluConfig {
            per_channel: true,
            init: 0.1,
        };
        assert_eq!(config.init(2, &device()).weight.dims(), [2]);
        let x = Tensor::<2>::from_data(TensorData::from([[-1.0f32, -1.0], [2.0, -3.0]]), &device());
        let module = PRelu {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::from([0.1f32, 0.5]),
                &device(),
            )),
        };
        assert_close(&to_vec(module.forward(x)), &[-0.1, -0.5, 2.0, -1.5]);
    }

    #[test]
    #[should_panic(expected = "dim 1 must have 2 channels")]
    fn wrong_channel_count_is_explained() {
        let module = PReluConfig {
            per_channel: true,
            init: 0.25,
        }
        .init(2, &device());
        module.forward(Tensor::<2>::zeros([4, 3], &device()));
    }
}
