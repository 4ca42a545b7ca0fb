use crate::InvalidConfig;
use crate::fused::{self, Pointwise};
use crate::kind::{ActivationKind, SpatialMax};
use burn::module::Module;
use crate::aprelu::BatchNorm1d;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::tensor::{Device, Tensor};

/// Funnel activation, FReLU (Ma et al., "Funnel Activation for Visual Recognition", ECCV 2020):
/// ReLU's `max(x, 0)` with the 0 replaced by a spatial condition of the neighbourhood.
///
/// ```text
/// T(x) = BN(depthwise 3×3 conv(x))          one 3×3 filter per channel, padding 1, with bias
/// f(x) = max(x, T(x))
/// ```
///
/// As the authors' `FReLU` (`megvii-model/FunnelAct`): the convolution with PyTorch's default
/// initialisation, then PyTorch's `BatchNorm2d` (momentum 0.1, ε = 1e-5, running variance
/// unbiased). `torch.max(x, T)` sends half the
/// gradient to each side where they tie, and so does this module. Only for convolutional slots
/// (`[N, C, H, W]`): the models refuse it in dense slots
/// ([`ActivationKind::check_slot`]). `activation = "frelu"`: it has no parameters to set.
///
/// On Flex and the Cube backends the whole of it is one fused op ([`fused::spatial_max`]; the
/// `actlab-models` CNN also pools its output plane by plane, through
/// [`ActivationKind::spatial_max`]);
/// elsewhere (ndarray) Burn's grouped convolution, this crate's BatchNorm1d and a
/// tie-splitting maximum.
#[derive(Module, Debug)]
pub struct FRelu {
    /// The depthwise 3×3 convolution (`groups = C`; the authors' name, as in exported files).
    pub conv_frelu: Conv2d,
    /// The BatchNorm after it, over `N·H·W` values per channel: PyTorch's `BatchNorm2d`
    /// (Burn's `BatchNorm` updates the running variance with the biased estimate).
    pub bn_frelu: BatchNorm1d,
}

/// Refuses a dense slot: the condition is a 3×3 convolution.
fn check_slot(spatial: bool) -> Result<(), InvalidConfig> {
    if !spatial {
        return Err(InvalidConfig::new(
            "frelu",
            "needs a convolutional slot ([N, C, H, W]): its condition is a 3×3 convolution; use \
             it in conv_activations (CNN) or a ResNet, and another kind in dense slots",
        ));
    }
    Ok(())
}

impl FRelu {
    /// Builds the module for inputs with `channels` channels (the authors' initialisation:
    /// PyTorch's defaults, which Burn's `Conv2d` follows; γ = 1, β = 0).
    pub fn new(channels: usize, device: &Device) -> Self {
        assert!(channels > 0, "FReLU needs at least one channel");
        Self {
            conv_frelu: Conv2dConfig::new([channels, channels], [3, 3])
                .with_groups(channels)
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            bn_frelu: BatchNorm1d::new(channels, 0.1, 1e-5, device),
        }
    }
}

impl FRelu {
    /// The condition `T(x)` of `[N, C, H, W]`.
    pub fn condition(&self, input: Tensor<4>) -> Tensor<4> {
        let convolved = self.conv_frelu.forward(input);
        let [n, c, h, w] = convolved.dims();
        let rows = convolved.permute([0, 2, 3, 1]).reshape([n * h * w, c]);
        let normalised = self.bn_frelu.forward(rows);
        normalised.reshape([n, h, w, c]).permute([0, 3, 1, 2])
    }

    /// Applies FReLU to `[N, C, H, W]`.
    ///
    /// # Panics
    /// When the input is not `[N, C, H, W]` with the module's channels.
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let dims = input.dims();
        let channels = self.conv_frelu.weight.dims()[0];
        assert!(
            D == 4 && dims[1] == channels,
            "FReLU takes [N, {channels}, H, W] (a convolution's output), got shape {dims:?}"
        );
        let x: Tensor<4> = input.reshape([dims[0], dims[1], dims[2], dims[3]]);
        if let Some(output) = self.fused(&x) {
            return output.reshape(dims);
        }
        let condition = self.condition(x.clone());
        maximum(x, condition).reshape(dims)
    }

    /// The forward as one fused op on Flex ([`fused::spatial_max`]), with the running
    /// statistics updated as [`BatchNorm1d::forward`] updates them; `None` elsewhere.
    fn fused(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let op = self.spatial_max_inputs(x);
        let (output, statistics) =
            fused::spatial_max(x, &op.parameters, &op.running, op.epsilon, op.batch)?;
        if let Some(statistics) = statistics {
            (op.record)(statistics);
        }
        Some(output)
    }

    /// The fused op's inputs for `x` `[N, C, H, W]` ([`ActivationKind::spatial_max`]).
    fn spatial_max_inputs(&self, x: &Tensor<4>) -> SpatialMax<'_> {
        let [n, channels, h, w] = x.dims();
        let bn = &self.bn_frelu;
        let rows = n * h * w;
        let device = x.device();
        // As BatchNorm1d over the N·H·W rows: batch statistics while training, unless a
        // single row has no variance.
        let batch = device.is_autodiff() && bn.training.is_enabled() && rows > 1;
        let bias = match &self.conv_frelu.bias {
            Some(bias) => bias.val(),
            None => Tensor::zeros([channels], &device),
        };
        let parameters = Tensor::cat(
            vec![
                self.conv_frelu.weight.val().reshape([channels, 9]),
                bias.reshape([channels, 1]),
                bn.gamma.val().reshape([channels, 1]),
                bn.beta.val().reshape([channels, 1]),
            ],
            1,
        );
        let running = Tensor::stack::<2>(
            vec![
                bn.running_mean.value_sync().to_device(&device),
                bn.running_var.value_sync().to_device(&device),
            ],
            1,
        );
        let record = move |statistics: Tensor<2>| {
            let statistics = statistics.detach();
            let mean = statistics.clone().slice([0..channels, 0..1]).reshape([channels]);
            let var = statistics.slice([0..channels, 1..2]).reshape([channels]);
            let unbiased = var.mul_scalar(rows as f64 / (rows as f64 - 1.0));
            let momentum = bn.momentum;
            let running_mean = bn.running_mean.value_sync().to_device(&device);
            let running_var = bn.running_var.value_sync().to_device(&device);
            bn.running_mean.update(
                (running_mean.mul_scalar(1.0 - momentum) + mean.mul_scalar(momentum)).detach(),
            );
            bn.running_var.update(
                (running_var.mul_scalar(1.0 - momentum) + unbiased.mul_scalar(momentum))
                    .detach(),
            );
        };
        SpatialMax {
            parameters,
            running,
            epsilon: bn.epsilon as f32,
            batch,
            record: Box::new(record),
        }
    }
}

/// `torch.maximum(a, b)` with its gradient: all to the larger, half to each on a tie.
fn maximum(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let middle = (a.clone() + b.clone()).mul_scalar(0.5);
    let a_wins = a.clone().greater(b.clone());
    let b_wins = a.clone().lower(b.clone());
    middle.mask_where(b_wins, b).mask_where(a_wins, a)
}

impl ActivationKind for FRelu {
    const KIND: &'static str = "frelu";
    const ALIASES: &'static [&'static str] = &[];
    const DESCRIPTION: &'static str =
        "funnel ReLU: max(x, BN(depthwise 3×3 conv(x))), a spatial condition (conv slots only)";
    const BOUNDED: bool = false;
    const ELEMENTWISE: bool = false;
    type Config = ();
    fn validate(_: &()) -> Result<(), InvalidConfig> {
        Ok(())
    }
    fn check_slot(_: &(), _: usize, spatial: bool) -> Result<(), InvalidConfig> {
        check_slot(spatial)
    }
    fn from_config(_: &(), channels: usize, device: &Device) -> Self {
        Self::new(channels, device)
    }
    fn has_fused_kernel(_: &()) -> bool {
        true
    }
    fn is_learnable(_: &()) -> bool {
        true
    }
    fn formula(&self) -> Option<Pointwise> {
        None
    }
    fn spatial_max(&self, input: &Tensor<4>) -> Option<SpatialMax<'_>> {
        let channels = self.conv_frelu.weight.dims()[0];
        (input.dims()[1] == channels).then(|| self.spatial_max_inputs(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use burn::tensor::TensorData;

    #[test]
    fn ties_split_the_gradient_as_torch_maximum() {
        let a = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [1, 1, 1, 3]), &device())
            .require_grad();
        let b = Tensor::<4>::from_data(TensorData::new(vec![2.0f32, 2.0, 1.0], [1, 1, 1, 3]), &device())
            .require_grad();
        let y = maximum(a.clone(), b.clone());
        assert_close(&to_vec(y.clone()), &[2.0, 2.0, 3.0]);
        let grads = y.sum().backward();
        assert_close(&to_vec(a.grad(&grads).unwrap()), &[0.0, 0.5, 1.0]);
        assert_close(&to_vec(b.grad(&grads).unwrap()), &[1.0, 0.5, 0.0]);
    }

    #[test]
    fn dense_slots_are_refused() {
        let error = check_slot(false).unwrap_err().to_string();
        assert!(error.contains("frelu") && error.contains("conv_activations"), "{error}");
        assert!(check_slot(true).is_ok());
    }
}
