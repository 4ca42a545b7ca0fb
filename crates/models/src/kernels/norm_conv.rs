//! A pre-activation block's `conv(activation(BatchNorm(x)))` as one op where the kernels can
//! run it ([`LayerKernelOps::layer_norm_conv2d`]): BatchNorm's output and the activation's
//! never go to memory; each sample's activated input is made where the convolution reads it.

use activations::Activation;
use activations::burn::backend::Dispatch;
use activations::burn::nn::BatchNorm;
use activations::burn::nn::conv::Conv2d;
use activations::burn::tensor::{DType, Device, Tensor};

use super::batch_norm::{
    batch_norm, batch_norm_of_residual, record_batch_statistics, running_statistics,
    split_statistics, trains,
};
use super::layers::{conv_parts, conv2d, conv2d_residual, has_kernels, output_shape};
use super::ops::{
    BlockActivation, LayerKernelOps, NormActivation, NormConvHandoffs, ResidualHandoff,
};

/// `conv2d(conv, activation.forward(batch_norm(norm, x)))`, as one op when the kernels can run
/// it: `x` f32 on Flex, an activation with a fused element-wise kernel
/// ([`Activation::pointwise`]) or a channel-wise one ([`Activation::channelwise`]: PReLU, one
/// slope or one per channel; ACON-C; PAU), f32 BatchNorm parameters and a convolution
/// [`conv2d`] would run. BatchNorm's running statistics are updated as
/// [`batch_norm`] updates them. With a `handoff`, BatchNorm plays
/// [`batch_norm_of_residual`]'s part: the backward adds the
/// gradient a residual convolution of `x` left there.
///
/// Values and gradients are those of the three layers, to the bit (`tests/norm_conv.rs`),
/// except a channel-wise activation's parameter gradient, whose sums run per sample and
/// plane (within rounding).
pub fn norm_conv2d(
    norm: &BatchNorm,
    activation: &Activation,
    conv: &Conv2d,
    x: Tensor<4>,
    handoff: Option<&ResidualHandoff>,
) -> Tensor<4> {
    let handoffs = NormConvHandoffs {
        x: handoff.cloned(),
        residual: None,
    };
    fused(norm, activation, conv, x, None, handoffs).unwrap_or_else(|(x, _)| {
        let pre = match handoff {
            Some(handoff) => batch_norm_of_residual(norm, x, handoff),
            None => batch_norm(norm, x),
        };
        conv2d(conv, activation.forward(pre))
    })
}

/// [`norm_conv2d`] plus `residual` (of the output's shape), added in the convolution's output
/// pass: a pre-activation block's second half, `conv2d_residual(conv,
/// activation.forward(batch_norm(norm, x)), residual, handoff)`
/// ([`conv2d_residual`], whose `handoff` this is).
pub fn norm_conv2d_residual(
    norm: &BatchNorm,
    activation: &Activation,
    conv: &Conv2d,
    x: Tensor<4>,
    residual: Tensor<4>,
    handoff: Option<&ResidualHandoff>,
) -> Tensor<4> {
    let handoffs = NormConvHandoffs {
        x: None,
        residual: handoff.cloned(),
    };
    fused(norm, activation, conv, x, Some(residual), handoffs).unwrap_or_else(|(x, residual)| {
        let activated = activation.forward(batch_norm(norm, x));
        let residual = residual.expect("handed back as given");
        conv2d_residual(conv, activated, residual, handoff)
    })
}

/// The fused op, or the inputs handed back when the kernels cannot run it.
// The error hands the inputs back by value for the fallback; boxing them would cost an
// allocation per call.
#[allow(clippy::result_large_err, clippy::type_complexity)]
fn fused(
    norm: &BatchNorm,
    activation: &Activation,
    conv: &Conv2d,
    x: Tensor<4>,
    residual: Option<Tensor<4>>,
    handoffs: NormConvHandoffs,
) -> Result<Tensor<4>, (Tensor<4>, Option<Tensor<4>>)> {
    let (gamma, beta) = (norm.gamma.val(), norm.beta.val());
    let channels = x.dims()[1];
    let parts = conv_parts(conv, &x);
    let op = block_activation(activation, channels, &x.device());
    let (Some((op, parameters)), Some((window, weight, bias))) = (op, parts) else {
        return Err((x, residual));
    };
    let output_shape = output_shape(&x, &weight, &window);
    let residual_fits = residual
        .as_ref()
        .is_none_or(|residual| residual.dims() == output_shape && has_kernels(residual));
    let parameters_fit = gamma.dtype() == DType::F32 && beta.dtype() == DType::F32;
    if !residual_fits || !parameters_fit || channels != gamma.dims()[0] {
        return Err((x, residual));
    }
    let device = x.device();
    let training = trains(norm, &device);
    let residual = residual.unwrap_or_else(|| Tensor::zeros([0, 0, 0, 0], &device));
    let norm_activation = NormActivation {
        epsilon: norm.epsilon,
        batch_statistics: training,
        activation: op,
    };
    let per_channel = x.shape().num_elements() / channels.max(1);
    let (output, statistics) = <Dispatch as LayerKernelOps>::layer_norm_conv2d(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        running_statistics(norm, &device).into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        residual.into_dispatch(),
        parameters.into_dispatch(),
        window,
        norm_activation,
        handoffs,
    );
    if training {
        let (mean, variance) = split_statistics(Tensor::from_dispatch(statistics));
        record_batch_statistics(norm, mean, variance, per_channel);
    }
    Ok(Tensor::from_dispatch(output))
}

/// The activation as the op runs it, with its parameters: an element-wise kernel
/// ([`Activation::pointwise`]; placeholder parameters), or a channel-wise one with f32
/// parameters for `channels` channels ([`Activation::channelwise`]: PReLU, ACON-C, PAU).
fn block_activation(
    activation: &Activation,
    channels: usize,
    device: &Device,
) -> Option<(BlockActivation, Tensor<2>)> {
    if let Some(op) = activation.pointwise() {
        return Some((
            BlockActivation::Pointwise(op),
            Tensor::zeros([1, 1], device),
        ));
    }
    let (op, parameters) = activation.channelwise(channels)?;
    (parameters.dtype() == DType::F32).then_some((BlockActivation::Channelwise(op), parameters))
}
