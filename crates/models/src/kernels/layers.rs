//! What the models call in place of Burn's layers: [`conv2d`], [`conv2d_residual`], [`max_pool2d`],
//! [`conv_block`] and [`activation_max_pool`] take Burn's modules, use the kernels for f32 on Flex ([`has_kernels`]) and
//! run the modules' own forward otherwise.

use super::ops::{BlockActivation, LayerKernelOps, PooledHandoff, ResidualHandoff, Window2d};
use activations::Activation;
use activations::burn::backend::Dispatch;
use activations::burn::nn::PaddingConfig2d;
use activations::burn::nn::conv::Conv2d;
use activations::burn::nn::pool::MaxPool2d;
use activations::burn::tensor::{DType, Tensor};

/// Whether `tensor` can use the kernels: f32 on Flex, with the project's kernels switched on.
pub fn has_kernels<const D: usize>(tensor: &Tensor<D>) -> bool {
    if !activations::fused::fused_enabled() || tensor.dtype() != DType::F32 {
        return false;
    }
    #[cfg(feature = "flex")]
    {
        use activations::burn::backend::DispatchDevice;
        matches!(
            tensor.device().as_dispatch().clone().inner(),
            DispatchDevice::Flex(_)
        )
    }
    #[cfg(not(feature = "flex"))]
    false
}

/// The padding per axis when it is explicit and symmetric (`Valid` is zero); `None` for
/// asymmetric padding and for `Same`, which Burn's modules resolve per input.
fn symmetric_padding(padding: &PaddingConfig2d) -> Option<[usize; 2]> {
    match *padding {
        PaddingConfig2d::Valid => Some([0, 0]),
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            Some([top, left])
        }
        _ => None,
    }
}

/// The window, weight and bias of `conv` when the kernels can run it on `x`.
pub(super) fn conv_parts(conv: &Conv2d, x: &Tensor<4>) -> Option<(Window2d, Tensor<4>, Tensor<1>)> {
    let [_, channels_in, height, width] = x.dims();
    let weight = conv.weight.val();
    let [_, weight_channels, ..] = weight.dims();
    let padding = symmetric_padding(&conv.padding)?;
    // Zero channels: nothing for the kernels to split into per-sample chunks.
    let fits =
        conv.groups == 1 && weight_channels == channels_in && weight.shape().num_elements() > 0;
    if !fits || !has_kernels(x) || weight.dtype() != DType::F32 {
        return None;
    }
    let window = Window2d {
        kernel: conv.kernel_size,
        stride: conv.stride,
        padding,
        dilation: conv.dilation,
    };
    // A misfit goes to Burn's own forward, which reports it.
    window.output_size(0, height)?;
    window.output_size(1, width)?;
    let bias = match &conv.bias {
        Some(bias) => bias.val(),
        None => Tensor::zeros([weight.dims()[0]], &weight.device()),
    };
    Some((window, weight, bias))
}

/// The output shape of a convolution that [`conv_parts`] accepted.
pub(super) fn output_shape(x: &Tensor<4>, weight: &Tensor<4>, window: &Window2d) -> [usize; 4] {
    let [batch, _, height, width] = x.dims();
    let size = |axis, size| {
        window
            .output_size(axis, size)
            .expect("conv_parts checked it")
    };
    [batch, weight.dims()[0], size(0, height), size(1, width)]
}

/// `conv.forward(x)`, through the kernels when `x` can use them.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some((window, weight, bias)) = conv_parts(conv, &x) else {
        return conv.forward(x);
    };
    let output = <Dispatch as LayerKernelOps>::layer_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        window,
    );
    Tensor::from_dispatch(output)
}

/// `conv.forward(x) + residual` (a residual block's second convolution and its shortcut),
/// with the addition in the convolution's output pass when the kernels can run it
/// ([`LayerKernelOps::layer_conv2d_residual`]): `x` and `residual` f32 on Flex, a convolution
/// [`conv2d`] would run, and a residual of the output's shape (else Burn's broadcasting `+`).
/// With the `handoff` of a [`batch_norm_of_residual`](super::batch_norm_of_residual) of the
/// same `residual`, that BatchNorm's backward adds the residual's gradient (see there).
pub fn conv2d_residual(
    conv: &Conv2d,
    x: Tensor<4>,
    residual: Tensor<4>,
    handoff: Option<&ResidualHandoff>,
) -> Tensor<4> {
    let Some((window, weight, bias)) = conv_parts(conv, &x) else {
        return conv.forward(x) + residual;
    };
    if residual.dims() != output_shape(&x, &weight, &window) || !has_kernels(&residual) {
        return conv2d(conv, x) + residual;
    }
    let output = <Dispatch as LayerKernelOps>::layer_conv2d_residual(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        residual.into_dispatch(),
        window,
        handoff.cloned(),
    );
    Tensor::from_dispatch(output)
}

/// `pool.forward(activation.forward(conv.forward(x)))` as one fused kernel
/// ([`LayerKernelOps::layer_conv_block`]) when the kernels can run all three: `x` f32 on Flex,
/// a convolution [`conv2d`] would run, an activation with a fused element-wise kernel
/// ([`Activation::pointwise`]) or a channel-wise one ([`Activation::channelwise`]: PReLU, one
/// slope or one per output channel; ACON-C), or one whose parameters a network computes per
/// sample from the channel means ([`Activation::per_sample_channelwise`]: APReLU, Meta-ACON,
/// DyReLU, built for the convolution's output channels;
/// [`LayerKernelOps::layer_conv2d_squeeze`] and
/// [`LayerKernelOps::layer_channelwise_max_pool`]), and a 2×2 stride-2 max-pool without padding,
/// dilation or ceil mode. Otherwise `Err(x)`, for the caller to run the layers one by one.
///
/// Values and gradients are those of the three layers (`tests/kernels.rs`, and
/// `tests/aprelu_block.rs` with APReLU's parameters and running statistics), except that in a
/// pooling window with two or more NaNs or infinities the losers get a zero gradient where the
/// layers would give NaN (the window's gradient is NaN at its winner either way).
// The error hands the input back by value for the fallback; boxing it would cost an
// allocation per call.
#[allow(clippy::result_large_err)]
pub fn conv_block(
    conv: &Conv2d,
    activation: &Activation,
    pool: &MaxPool2d,
    x: Tensor<4>,
) -> Result<Tensor<4>, Tensor<4>> {
    let Some((window, weight, bias)) = conv_parts(conv, &x).filter(|_| plain_2x2(pool)) else {
        return Err(x);
    };
    let [_, _, height, width] = x.dims();
    let pooled_fits = [(0, height), (1, width)]
        .iter()
        .all(|&(axis, size)| window.output_size(axis, size).is_some_and(|out| out >= 2));
    if !pooled_fits {
        return Err(x);
    }
    let out_channels = weight.dims()[0];
    let per_sample = activation
        .pointwise()
        .is_none()
        .then(|| activation.per_sample_channelwise(out_channels))
        .flatten();
    if let Some(per_sample) = per_sample {
        // The parameters come from the whole convolution output (the squeeze, computed while
        // each sample's output is in cache), so the output goes to memory; the apply and the
        // pooling are one pass over it.
        let handoff = PooledHandoff::default();
        let (output, summary) = <Dispatch as LayerKernelOps>::layer_conv2d_squeeze(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            window,
            handoff.clone(),
        );
        let parameters = (per_sample.parameters)(Tensor::from_dispatch(summary));
        let pooled = <Dispatch as LayerKernelOps>::layer_channelwise_max_pool(
            output,
            parameters.into_dispatch(),
            per_sample.op,
            Some(handoff),
        );
        return Ok(Tensor::from_dispatch(pooled));
    }
    let (block_activation, parameters) = match activation.pointwise() {
        Some(op) => (
            BlockActivation::Pointwise(op),
            Tensor::zeros([1, 1], &weight.device()),
        ),
        None => match activation.channelwise(out_channels) {
            Some((op, parameters)) if parameters.dtype() == DType::F32 => {
                (BlockActivation::Channelwise(op), parameters)
            }
            _ => return Err(x),
        },
    };
    let output = <Dispatch as LayerKernelOps>::layer_conv_block(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        parameters.into_dispatch(),
        window,
        block_activation,
    );
    Ok(Tensor::from_dispatch(output))
}

/// `pool.forward(activation.forward(x))`: for an activation that is a spatial max
/// ([`Activation::spatial_max`]: FReLU) and a 2×2 stride-2 max-pool without padding, dilation
/// or ceil mode, on `x` f32 on Flex with at least one window per plane, as one op
/// ([`LayerKernelOps::layer_spatial_max_pool`]) that pools each plane of the activation's output
/// while it is in cache, with the module's running statistics updated as its own forward
/// updates them; otherwise the two layers ([`max_pool2d`] after the activation's forward).
/// Values and gradients are those of the two layers (`tests/spatial_max_pool.rs`).
pub fn activation_max_pool(activation: &Activation, pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let fits = plain_2x2(pool) && height >= 2 && width >= 2 && has_kernels(&x);
    let op = fits.then(|| activation.spatial_max(&x)).flatten();
    let Some(op) = op.filter(|op| op.parameters.dtype() == DType::F32) else {
        return max_pool2d(pool, activation.forward(x));
    };
    let (pooled, statistics) = <Dispatch as LayerKernelOps>::layer_spatial_max_pool(
        x.into_dispatch(),
        op.parameters.into_dispatch(),
        op.running.into_dispatch(),
        op.epsilon,
        op.batch,
    );
    if op.batch {
        (op.record)(Tensor::from_dispatch(statistics));
    }
    Tensor::from_dispatch(pooled)
}

/// Whether `pool` is a 2×2 stride-2 max-pool without padding, dilation or ceil mode.
fn plain_2x2(pool: &MaxPool2d) -> bool {
    pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && symmetric_padding(&pool.padding) == Some([0, 0])
}

/// `pool.forward(x)`, through the kernels when `x` can use them.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let [_, _, height, width] = x.dims();
    let padding = symmetric_padding(&pool.padding);
    let window = padding.map(|padding| Window2d {
        kernel: pool.kernel_size,
        stride: pool.stride,
        padding,
        dilation: pool.dilation,
    });
    match window {
        Some(window)
            if !pool.ceil_mode
                && has_kernels(&x)
                // PyTorch's rule: padding at most half the kernel.
                && (0..2).all(|axis| 2 * window.padding[axis] <= window.kernel[axis])
                && window.output_size(0, height).is_some()
                && window.output_size(1, width).is_some() =>
        {
            let output = <Dispatch as LayerKernelOps>::layer_max_pool2d(x.into_dispatch(), window);
            Tensor::from_dispatch(output)
        }
        _ => pool.forward(x),
    }
}
