//! The CNN's convolution and max-pooling with this project's own kernels on Flex.
//!
//! Burn's Flex convolution is an im2col + gemm over the whole batch; its backward runs as a
//! transposed convolution (input gradient) and as a convolution of the swapped input with the
//! swapped output gradient (weight gradient), with layout copies around both; its max-pooling
//! computes indices in a generic loop. On the reference CNN these took three quarters of a
//! training step (docs/performance.md). The kernels here work one sample at a time, so every
//! intermediate stays in cache, and call the same `gemm` crate:
//! - forward: im2col of one sample, then `out = W · col` with the bias as the initial value;
//! - backward, one pass per sample: `dW += dout · colᵀ`, `db += Σ dout`, and
//!   `dx = col2im(Wᵀ · dout)` — each only when its tensor is tracked;
//! - max-pooling: one pass; its backward finds each window's maximum again in the saved input
//!   instead of keeping an index tensor;
//! - a conv block (convolution → element-wise activation or PReLU → 2×2 max-pool, the CNN's):
//!   one pass per sample that applies the activation and pools while the convolution's output
//!   is in cache, keeping only each window's winner and the value the activation's backward
//!   needs;
//! - APReLU's conv block, whose slopes need the whole convolution output: the squeeze in the
//!   convolution's output pass, the excitation by Burn, then the apply and the pooling in one
//!   pass; its backward builds each sample's output gradient once, in cache
//!   ([`PooledHandoff`]).
//!
//! # Map
//! - [`LayerKernelOps`]: the backend extension (`#[backend_extension]`), implemented for Flex
//!   (`flex/`: `conv.rs` with `conv/im2col.rs`, `pool.rs`, `block.rs`, `aprelu_block.rs`, and
//!   the 2×2 pooling rows they use, `pool_rows.rs` with `pool_rows_avx512.rs`) and for
//!   `Autodiff<B>` with a handwritten backward (`autodiff.rs`) that calls
//!   [`LayerKernelBackward`].
//! - [`conv2d`], [`max_pool2d`] and [`conv_block`]: what the CNN calls in place of
//!   `Conv2d::forward`, `MaxPool2d::forward` and the three together. They take Burn's modules,
//!   so parameters, records and exports are unchanged, use the kernels for f32 on Flex, and
//!   run the modules' own forward otherwise (other backends and dtypes, groups, asymmetric
//!   padding, ceil mode; for the block, activations without an element-wise kernel other than
//!   PReLU and APReLU, and other pooling windows). The CNN uses the block unless BatchNorm
//!   sits between the layers or diagnostics tap the activation's input and output.
//!
//! The kernels follow the activations' switch: `ACTIVATIONS_FUSED=0` or
//! [`activations::fused::without_fused`] turn them off too.

mod autodiff;
mod batch_norm;
#[cfg(feature = "flex")]
mod flex;

pub use batch_norm::batch_norm;

use activations::Activation;
use activations::burn::backend::tensor::FloatTensor;
use activations::burn::backend::{Backend, Dispatch, backend_extension};
use activations::burn::nn::PaddingConfig2d;
use activations::burn::nn::conv::Conv2d;
use activations::burn::nn::pool::MaxPool2d;
use activations::burn::tensor::{DType, Shape, Tensor};
use activations::fused::Pointwise;
use std::any::Any;
use std::sync::{Arc, Mutex};

/// Stride, symmetric zero padding and dilation of a 2-D convolution or pooling window, per
/// axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Window2d {
    /// The output size along `axis` for an input of `size`, PyTorch's floor rule; `None` when
    /// the dilated window does not fit in the padded input.
    pub fn output_size(&self, axis: usize, size: usize) -> Option<usize> {
        let span = self.dilation[axis] * (self.kernel[axis] - 1) + 1;
        let padded = size + 2 * self.padding[axis];
        (padded >= span && self.stride[axis] > 0).then(|| (padded - span) / self.stride[axis] + 1)
    }
}

/// The backend extension: forward ops that backends implement with their own kernels.
#[backend_extension(Flex: cfg(feature = "flex"), Autodiff)]
pub trait LayerKernelOps: Backend {
    /// Cross-correlation of `x` `[N, C_in, H, W]` with `weight` `[C_out, C_in, kH, kW]`, plus
    /// `bias` `[C_out]`, with `window.kernel` equal to the weight's kernel size. (A layer
    /// without bias passes zeros: the extension macro does not route optional tensors.)
    fn layer_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        window: Window2d,
    ) -> FloatTensor<Self>;

    /// Max-pooling of `x` `[N, C, H, W]` (padding counts as -inf, as in PyTorch).
    fn layer_max_pool2d(x: FloatTensor<Self>, window: Window2d) -> FloatTensor<Self>;

    /// A conv block: [`layer_conv2d`](Self::layer_conv2d), then `activation` element-wise,
    /// then a 2×2 stride-2 max-pool (floor mode), in one pass per sample;
    /// `[N, C_out, H_out / 2, W_out / 2]`. `slopes` are PReLU's (`[C_out]` or `[1]`); other
    /// activations ignore them.
    fn layer_conv_block(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
    ) -> FloatTensor<Self>;

    /// PReLU with one slope per sample and channel (`slopes` `[N, C]`, APReLU's apply), then a
    /// 2×2 stride-2 max-pool (floor mode), in one pass over `x` `[N, C, H, W]`:
    /// `[N, C, H / 2, W / 2]`.
    ///
    /// With a `handoff` from [`layer_conv2d_squeeze`](Self::layer_conv2d_squeeze) (which made
    /// `x`), the backward leaves the output gradient there instead of computing `x`'s.
    fn layer_prelu_max_pool(
        x: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
        handoff: Option<PooledHandoff>,
    ) -> FloatTensor<Self>;

    /// [`layer_conv2d`](Self::layer_conv2d) and APReLU's squeeze of its output (`[N, 2C_out]`:
    /// each sample's channel means of `max(z, 0)`, then of `min(z, 0)`) in one pass per sample:
    /// `(z, squeeze)`. Under autodiff only the squeeze is tracked; `z` is for
    /// [`layer_prelu_max_pool`](Self::layer_prelu_max_pool) with the same `handoff`, whose
    /// output gradient the squeeze's backward step adds to its own (APReLU's conv block).
    fn layer_conv2d_squeeze(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        window: Window2d,
        handoff: PooledHandoff,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm in training mode on `x` `[N, C, ...]` with the batch's own statistics:
    /// `(y, statistics)`, the statistics `[2, C]` (each channel's mean, then its biased
    /// variance, as Burn's `batch_norm_train` returns them). Under autodiff `y` is tracked
    /// through `x`, `gamma` and `beta`; the statistics are not.
    fn layer_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// Where APReLU's pooling ([`LayerKernelOps::layer_prelu_max_pool`]) leaves its output gradient
/// for the backward of the convolution and squeeze that made its input
/// ([`LayerKernelOps::layer_conv2d_squeeze`]). Autodiff runs the pooling's step first (the
/// squeeze feeds the pooling's slopes through the excitation); the convolution's step then
/// builds each sample's output gradient once, in cache — the pooling's part and the
/// squeeze's — where autodiff would add two dense gradients and the convolution read the sum.
#[derive(Clone, Default)]
pub struct PooledHandoff(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl PooledHandoff {
    fn put<B: LayerKernelBackward>(&self, stash: PooledStash<B>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(stash));
    }

    fn take<B: LayerKernelBackward>(&self) -> Option<PooledStash<B>> {
        let stash = self.0.lock().unwrap_or_else(|e| e.into_inner()).take()?;
        Some(
            *stash
                .downcast()
                .expect("a pooled gradient of the same backend"),
        )
    }
}

impl std::fmt::Debug for PooledHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PooledHandoff")
    }
}

/// What [`PooledHandoff`] carries: APReLU's pooling's output gradient, its slopes and what its
/// forward kept.
#[derive(Debug)]
pub struct PooledStash<B: LayerKernelBackward> {
    pub output_grad: FloatTensor<B>,
    pub slopes: FloatTensor<B>,
    pub saved: B::BlockSaved,
}

/// Which gradients a convolution's backward computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGradients {
    pub x: bool,
    pub weight: bool,
    pub bias: bool,
}

/// The gradients of a convolution, each present when asked for.
pub struct Conv2dGrads<T> {
    pub x: Option<T>,
    pub weight: Option<T>,
    pub bias: Option<T>,
}

/// The activation of a conv block ([`LayerKernelOps::layer_conv_block`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BlockActivation {
    /// An element-wise kernel ([`activations::Activation::pointwise`]).
    Pointwise(Pointwise),
    /// PReLU with the block's slopes, which get a gradient.
    PRelu,
}

/// What a conv block's backward reads: the input, the weight, PReLU's slopes and what the
/// forward kept.
#[derive(Clone, Debug)]
pub struct ConvBlockParts<B: LayerKernelBackward> {
    pub x: FloatTensor<B>,
    pub weight: FloatTensor<B>,
    pub slopes: FloatTensor<B>,
    pub saved: B::BlockSaved,
}

/// The backward kernels that the autodiff implementation of [`LayerKernelOps`] calls.
pub trait LayerKernelBackward: LayerKernelOps {
    /// The gradients of [`LayerKernelOps::layer_conv2d`] asked for by `wanted`.
    fn layer_conv2d_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        window: Window2d,
        wanted: ConvGradients,
    ) -> Conv2dGrads<FloatTensor<Self>>;

    /// The input gradient of [`LayerKernelOps::layer_max_pool2d`]: each output's gradient goes
    /// to its window's maximum (the last NaN if there is one, else the first maximum).
    fn layer_max_pool2d_backward(
        x: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        window: Window2d,
    ) -> FloatTensor<Self>;

    /// What a conv block's backward needs from its forward besides the input and the weight.
    type BlockSaved: Clone + Send + Sync + std::fmt::Debug + 'static;

    /// [`LayerKernelOps::layer_conv_block`], keeping what its backward needs.
    fn layer_conv_block_saving(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
    ) -> (FloatTensor<Self>, Self::BlockSaved);

    /// The gradients of [`LayerKernelOps::layer_conv_block`] asked for by `wanted`, and PReLU's
    /// slope gradient (shaped like `slopes`) when `activation` is PReLU.
    fn layer_conv_block_backward(
        parts: ConvBlockParts<Self>,
        output_grad: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
        wanted: ConvGradients,
    ) -> (Conv2dGrads<FloatTensor<Self>>, Option<FloatTensor<Self>>);

    /// [`LayerKernelOps::layer_prelu_max_pool`], keeping what its backward needs.
    fn layer_prelu_max_pool_saving(
        x: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, Self::BlockSaved);

    /// The slopes' gradient alone (`[N, C]`) of [`LayerKernelOps::layer_prelu_max_pool`] on an
    /// input of shape `x_shape`, when the input's goes through a [`PooledHandoff`].
    fn layer_prelu_max_pool_slope_grad(
        x_shape: Shape,
        saved: Self::BlockSaved,
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradients asked for by `wanted` of [`LayerKernelOps::layer_conv2d_squeeze`], from the
    /// squeeze's gradient `squeeze_grad` (`[N, 2C_out]`) and, when the pooling's backward left
    /// one, the pooling's output gradient (its input is `output`, the convolution's output).
    fn layer_conv2d_squeeze_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output: FloatTensor<Self>,
        squeeze_grad: FloatTensor<Self>,
        pooled: Option<PooledStash<Self>>,
        window: Window2d,
        wanted: ConvGradients,
    ) -> Conv2dGrads<FloatTensor<Self>>;

    /// The gradients of [`LayerKernelOps::layer_prelu_max_pool`] on an input of shape
    /// `x_shape`: the input's (each window's gradient times PReLU's derivative at its winner,
    /// zero elsewhere) and the slopes' (`[N, C]`: `Σ x ≤ 0 ? x · grad : 0` over each plane's
    /// winners, PyTorch's PReLU rule).
    fn layer_prelu_max_pool_backward(
        x_shape: Shape,
        slopes: FloatTensor<Self>,
        saved: Self::BlockSaved,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients `(x, gamma, beta)` of [`LayerKernelOps::layer_batch_norm_train`], from its
    /// input, `gamma`, the statistics it returned and the output's gradient.
    fn layer_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> [FloatTensor<Self>; 3];
}

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
fn conv_parts(conv: &Conv2d, x: &Tensor<4>) -> Option<(Window2d, Tensor<4>, Tensor<1>)> {
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

/// `pool.forward(activation.forward(conv.forward(x)))` as one fused kernel
/// ([`LayerKernelOps::layer_conv_block`]) when the kernels can run all three: `x` f32 on Flex,
/// a convolution [`conv2d`] would run, an activation with a fused element-wise kernel
/// ([`Activation::pointwise`]), PReLU (one slope, or one per output channel) or APReLU (built
/// for the convolution's output channels; [`LayerKernelOps::layer_conv2d_squeeze`] and
/// [`LayerKernelOps::layer_prelu_max_pool`]), and a 2×2 stride-2 max-pool without padding,
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
    let pool_fits = pool.kernel_size == [2, 2]
        && pool.stride == [2, 2]
        && pool.dilation == [1, 1]
        && !pool.ceil_mode
        && symmetric_padding(&pool.padding) == Some([0, 0]);
    let Some((window, weight, bias)) = conv_parts(conv, &x).filter(|_| pool_fits) else {
        return Err(x);
    };
    let [_, _, height, width] = x.dims();
    let pooled_fits = [(0, height), (1, width)]
        .iter()
        .all(|&(axis, size)| window.output_size(axis, size).is_some_and(|out| out >= 2));
    if !pooled_fits {
        return Err(x);
    }
    if let (None, Activation::Aprelu(aprelu)) = (activation.pointwise(), activation) {
        if aprelu.channels() != weight.dims()[0] {
            return Err(x);
        }
        // The slopes come from the whole convolution output (the squeeze, computed while each
        // sample's output is in cache), so the output goes to memory; the apply and the
        // pooling are one pass over it.
        let handoff = PooledHandoff::default();
        let (output, summary) = <Dispatch as LayerKernelOps>::layer_conv2d_squeeze(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            window,
            handoff.clone(),
        );
        let slopes = aprelu.excite(Tensor::from_dispatch(summary));
        let pooled = <Dispatch as LayerKernelOps>::layer_prelu_max_pool(
            output,
            slopes.into_dispatch(),
            Some(handoff),
        );
        return Ok(Tensor::from_dispatch(pooled));
    }
    let out_channels = weight.dims()[0];
    let (block_activation, slopes) = match (activation.pointwise(), activation) {
        (Some(op), _) => (
            BlockActivation::Pointwise(op),
            Tensor::zeros([1], &weight.device()),
        ),
        (None, Activation::Prelu(prelu)) => {
            let slopes = prelu.weight.val();
            let count = slopes.dims()[0];
            if !(count == 1 || count == out_channels) || slopes.dtype() != DType::F32 {
                return Err(x);
            }
            (BlockActivation::PRelu, slopes)
        }
        _ => return Err(x),
    };
    let output = <Dispatch as LayerKernelOps>::layer_conv_block(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        slopes.into_dispatch(),
        window,
        block_activation,
    );
    Ok(Tensor::from_dispatch(output))
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
