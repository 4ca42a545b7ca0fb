//! BatchNorm as PyTorch trains it: the batch's statistics through one fused op on Flex
//! ([`LayerKernelOps::layer_batch_norm`], two passes forward, two backward) or Burn's
//! `batch_norm_train` elsewhere, and the running statistics updated as `torch.nn.BatchNorm2d`
//! does — `running = (1 − momentum) · running + momentum · batch`, with the batch's *unbiased*
//! variance (`m / (m − 1)` times the biased one that normalises the batch, `m` values per
//! channel). Burn's own `BatchNorm::forward` keeps the biased one.
use activations::burn::backend::Dispatch;
use activations::burn::nn::BatchNorm;
use activations::burn::tensor::{DType, Device, Tensor};

use super::layers::has_kernels;
use super::ops::{LayerKernelOps, ResidualHandoff};

/// `norm.forward(x)` with PyTorch's running statistics: in training (an autodiff device and
/// the layer's training flag on) the batch statistics, otherwise the running ones; through the
/// fused kernels when `x` can use them ([`LayerKernelOps::layer_batch_norm`], in training two
/// passes forward and two backward, in evaluation one), else Burn's ops.
pub fn batch_norm<const D: usize>(norm: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    normalise(norm, x, None)
}

/// [`batch_norm`] of a residual block's input `x` that the block's last convolution adds back
/// ([`conv2d_residual`](super::conv2d_residual) with the same `handoff`): on the fused path the
/// backward adds that convolution's gradient for `x` into its own input gradient's pass,
/// instead of autodiff adding the two in a pass of its own. Values and gradients are those of
/// [`batch_norm`] and Burn's `+`, to the bit.
pub fn batch_norm_of_residual<const D: usize>(
    norm: &BatchNorm,
    x: Tensor<D>,
    handoff: &ResidualHandoff,
) -> Tensor<D> {
    normalise(norm, x, Some(handoff.clone()))
}

fn normalise<const D: usize>(
    norm: &BatchNorm,
    x: Tensor<D>,
    handoff: Option<ResidualHandoff>,
) -> Tensor<D> {
    let device = x.device();
    let training = trains(norm, &device);
    let dims = x.dims();
    let channels = dims[1];
    let per_channel = x.shape().num_elements() / channels.max(1);
    let gamma = norm.gamma.val();
    let beta = norm.beta.val();
    let fused = has_kernels(&x) && gamma.dtype() == DType::F32 && beta.dtype() == DType::F32;
    if !training && !fused {
        return norm.forward(x);
    }
    let (output, mean, variance) = if fused {
        let (output, statistics) = <Dispatch as LayerKernelOps>::layer_batch_norm(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            running_statistics(norm, &device).into_dispatch(),
            norm.epsilon,
            training,
            handoff,
        );
        if !training {
            return Tensor::from_dispatch(output);
        }
        let (mean, variance) = split_statistics(Tensor::from_dispatch(statistics));
        (Tensor::from_dispatch(output), mean, variance)
    } else {
        let result =
            activations::burn::tensor::module::batch_norm_train(x, gamma, beta, norm.epsilon);
        (result.output, result.mean, result.variance)
    };
    record_batch_statistics(norm, mean, variance, per_channel);
    output
}

/// Whether `norm` normalises with the batch's statistics: in training (an autodiff device and
/// the layer's training flag on).
pub(super) fn trains(norm: &BatchNorm, device: &Device) -> bool {
    device.is_autodiff() && norm.training.is_enabled()
}

/// The running mean and variance as one `[2, C]` tensor on `device`, for the kernels.
pub(super) fn running_statistics(norm: &BatchNorm, device: &Device) -> Tensor<2> {
    Tensor::stack::<2>(
        vec![
            norm.running_mean.value_sync().to_device(device),
            norm.running_var.value_sync().to_device(device),
        ],
        0,
    )
}

/// The kernels' `[2, C]` statistics as `(mean, variance)`.
pub(super) fn split_statistics(statistics: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let [_, channels] = statistics.dims();
    let mean = statistics.clone().narrow(0, 0, 1).reshape([channels]);
    let variance = statistics.narrow(0, 1, 1).reshape([channels]);
    (mean, variance)
}

/// Updates `norm`'s running statistics with a batch's `mean` and biased `variance`
/// (`per_channel` values per channel), as PyTorch does.
pub(super) fn record_batch_statistics(
    norm: &BatchNorm,
    mean: Tensor<1>,
    variance: Tensor<1>,
    per_channel: usize,
) {
    let device = mean.device();
    // One value per channel has no spread to correct (PyTorch refuses to train on it).
    let bessel = if per_channel > 1 {
        per_channel as f64 / (per_channel - 1) as f64
    } else {
        1.0
    };
    let momentum = norm.momentum;
    let running_mean = norm.running_mean.value_sync().to_device(&device);
    let running_var = norm.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - momentum)
        .add(mean.detach().mul_scalar(momentum));
    let running_var = running_var
        .mul_scalar(1.0 - momentum)
        .add(variance.detach().mul_scalar(momentum * bessel));
    norm.running_mean.update(running_mean.detach());
    norm.running_var.update(running_var.detach());
}
