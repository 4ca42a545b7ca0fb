//! [`LayerKernelOps`], the backend extension with the layers' fused forward ops, the types its
//! ops exchange, and [`LayerKernelBackward`], the backward kernels its autodiff implementation
//! calls. Implemented for Flex (`flex/`) and `Autodiff<B>` (`autodiff/`).

use activations::burn::backend::autodiff::NodeId;
use activations::burn::backend::tensor::FloatTensor;
use activations::burn::backend::{Backend, backend_extension};
use activations::burn::tensor::Shape;
use activations::fused::{Channelwise, Pointwise};
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

    /// [`layer_conv2d`](Self::layer_conv2d) plus `residual` (of the output's shape), added
    /// while each sample's output is in cache: a residual block's second convolution and its
    /// shortcut in one pass. Under autodiff the residual's gradient is the output's; with a
    /// `handoff` that a BatchNorm of the residual armed, it goes to that BatchNorm's backward
    /// instead ([`ResidualHandoff`]).
    fn layer_conv2d_residual(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        window: Window2d,
        handoff: Option<ResidualHandoff>,
    ) -> FloatTensor<Self>;

    /// Max-pooling of `x` `[N, C, H, W]` (padding counts as -inf, as in PyTorch).
    fn layer_max_pool2d(x: FloatTensor<Self>, window: Window2d) -> FloatTensor<Self>;

    /// A conv block: [`layer_conv2d`](Self::layer_conv2d), then `activation` element-wise,
    /// then a 2×2 stride-2 max-pool (floor mode), in one pass per sample;
    /// `[N, C_out, H_out / 2, W_out / 2]`. `parameters` are a channel-wise activation's
    /// (`[C_out, K]` or `[1, K]`, [`BlockActivation::Channelwise`]); element-wise ones ignore
    /// them.
    fn layer_conv_block(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
    ) -> FloatTensor<Self>;

    /// A channel-wise activation `op` with one row of parameters per sample and channel
    /// (`parameters` `[N·C, K]`, row-major; APReLU's apply), then a 2×2 stride-2 max-pool
    /// (floor mode), in one pass over `x` `[N, C, H, W]`: `[N, C, H / 2, W / 2]`.
    ///
    /// With a `handoff` from [`layer_conv2d_squeeze`](Self::layer_conv2d_squeeze) (which made
    /// `x`), the backward leaves the output gradient there instead of computing `x`'s.
    fn layer_channelwise_max_pool(
        x: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        op: Channelwise,
        handoff: Option<PooledHandoff>,
    ) -> FloatTensor<Self>;

    /// [`layer_conv2d`](Self::layer_conv2d) and APReLU's squeeze of its output (`[N, 2C_out]`:
    /// each sample's channel means of `max(z, 0)`, then of `min(z, 0)`) in one pass per sample:
    /// `(z, squeeze)`. Under autodiff only the squeeze is tracked; `z` is for
    /// [`layer_channelwise_max_pool`](Self::layer_channelwise_max_pool) with the same `handoff`, whose
    /// output gradient the squeeze's backward step adds to its own (APReLU's conv block).
    fn layer_conv2d_squeeze(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        window: Window2d,
        handoff: PooledHandoff,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// FReLU's spatial max ([`activations::fused::spatial_max`]: `x` `[N, C, H, W]`,
    /// `parameters` `[C, 12]`, `running` `[C, 2]`, `batch_statistics` to use the batch's own),
    /// then a 2×2 stride-2 max-pool (floor mode), each output plane pooled while it is in
    /// cache: `(pooled, statistics)`, `[N, C, H / 2, W / 2]` and the statistics used `[C, 2]`
    /// (untracked). Under autodiff `pooled` is tracked through `x` and `parameters`.
    fn layer_spatial_max_pool(
        x: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm on `x` `[N, C, ...]`: `(y, statistics)`, `y = (x − μ)·γ/√(σ² + ε) + β` per
    /// channel, with the statistics `[2, C]` (each channel's mean, then its variance) it used:
    /// with `batch_statistics` the batch's own (training; the biased variance, as Burn's
    /// `batch_norm_train` returns it), otherwise `running` `[2, C]` (evaluation). Under
    /// autodiff `y` is tracked through `x`, `gamma` and `beta` (and through the batch
    /// statistics when they are the batch's); the statistics are not. With a `handoff`, the
    /// backward also adds the gradient a residual convolution of `x` left there into `x`'s.
    #[allow(clippy::too_many_arguments)]
    fn layer_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f64,
        batch_statistics: bool,
        handoff: Option<ResidualHandoff>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// A pre-activation block's BatchNorm, activation and convolution:
    /// `(layer_conv2d(op(y), weight, bias) + residual, statistics)` with `(y, statistics)` =
    /// [`layer_batch_norm`](Self::layer_batch_norm)`(x, gamma, beta, running, ...)` as `norm`
    /// says, and `op` element-wise or channel-wise with `parameters` (`[C, K]` or `[1, K]`;
    /// element-wise ones ignore them, as in [`layer_conv_block`](Self::layer_conv_block)).
    /// `op(y)` is made per sample where the convolution reads it, in cache, and again in the
    /// backward for the weight gradient, instead of going to memory. `residual` has the
    /// output's shape, or no elements for none (the extension macro does not route optional
    /// tensors). Under autodiff the output is tracked through `x`, `gamma`, `beta`, `weight`,
    /// `bias`, `residual` and `parameters`; the statistics are not. The handoffs play [`layer_batch_norm`](Self::layer_batch_norm)'s
    /// (`x_handoff`: the backward adds the gradient a residual convolution of `x` left there)
    /// and [`layer_conv2d_residual`](Self::layer_conv2d_residual)'s (`residual_handoff`: the
    /// residual's gradient goes there when a BatchNorm of the residual armed it).
    #[allow(clippy::too_many_arguments)]
    fn layer_norm_conv2d(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        running: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        window: Window2d,
        norm: NormActivation,
        handoffs: NormConvHandoffs,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// The BatchNorm and activation of [`LayerKernelOps::layer_norm_conv2d`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormActivation {
    pub epsilon: f64,
    /// The batch's own statistics (training), else the running ones.
    pub batch_statistics: bool,
    /// The activation between the BatchNorm and the convolution.
    pub activation: BlockActivation,
}

/// The handoffs of [`LayerKernelOps::layer_norm_conv2d`].
#[derive(Clone, Debug, Default)]
pub struct NormConvHandoffs {
    /// Armed with `x`: the backward adds the gradient a residual convolution of `x` left.
    pub x: Option<ResidualHandoff>,
    /// Where the residual's gradient goes when a BatchNorm of the residual armed it.
    pub residual: Option<ResidualHandoff>,
}

/// What [`LayerKernelBackward::layer_norm_conv2d_backward`] reads: the input, the BatchNorm's
/// parameters, the statistics the forward used, the convolution's weight and the activation's
/// parameters.
#[derive(Clone, Debug)]
pub struct NormConvParts<B: Backend> {
    pub x: FloatTensor<B>,
    pub gamma: FloatTensor<B>,
    pub beta: FloatTensor<B>,
    pub statistics: FloatTensor<B>,
    pub weight: FloatTensor<B>,
    pub parameters: FloatTensor<B>,
}

/// The gradients of [`LayerKernelOps::layer_norm_conv2d`], each present when asked for (in
/// [`LayerKernelBackward::layer_norm_conv2d_backward`]'s `wanted`, `true` for wanted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NormConvGrads<T> {
    pub x: T,
    pub gamma: T,
    pub beta: T,
    pub weight: T,
    pub bias: T,
    /// A channel-wise activation's parameters.
    pub parameters: T,
}

/// Where APReLU's pooling ([`LayerKernelOps::layer_channelwise_max_pool`]) leaves its output gradient
/// for the backward of the convolution and squeeze that made its input
/// ([`LayerKernelOps::layer_conv2d_squeeze`]). Autodiff runs the pooling's step first (the
/// squeeze feeds the pooling's slopes through the excitation); the convolution's step then
/// builds each sample's output gradient once, in cache — the pooling's part and the
/// squeeze's — where autodiff would add two dense gradients and the convolution read the sum.
#[derive(Clone, Default)]
pub struct PooledHandoff(Arc<Mutex<Option<Box<dyn Any + Send>>>>);

impl PooledHandoff {
    pub(super) fn put<B: LayerKernelBackward>(&self, stash: PooledStash<B>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(stash));
    }

    pub(super) fn take<B: LayerKernelBackward>(&self) -> Option<PooledStash<B>> {
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

/// Where a residual convolution ([`LayerKernelOps::layer_conv2d_residual`]) leaves its
/// residual's gradient for the BatchNorm whose input that residual is
/// ([`LayerKernelOps::layer_batch_norm`]): a pre-activation block's input feeds both, and the
/// BatchNorm's backward adds the gradient in its input gradient's pass, where autodiff would
/// add the two in a pass of its own (single-threaded on Flex). The BatchNorm arms it with its
/// input's autodiff node; a residual convolution whose residual is another tensor, or a
/// handoff nobody armed, leaves the residual's gradient to autodiff.
#[derive(Clone, Default)]
pub struct ResidualHandoff(Arc<Mutex<ResidualSlot>>);

#[derive(Default)]
struct ResidualSlot {
    /// The BatchNorm's input, whose gradient its backward completes.
    armed: Option<NodeId>,
    grad: Option<Box<dyn Any + Send>>,
}

impl ResidualHandoff {
    fn slot(&self) -> std::sync::MutexGuard<'_, ResidualSlot> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The BatchNorm's forward on `input`: its backward will take the gradient.
    pub(super) fn arm(&self, input: NodeId) {
        self.slot().armed = Some(input);
    }

    /// The gradient of the residual `residual`, left for the BatchNorm of that tensor; handed
    /// back when no BatchNorm of it armed the handoff.
    pub(super) fn put<B: LayerKernelBackward>(
        &self,
        residual: NodeId,
        grad: FloatTensor<B>,
    ) -> Result<(), FloatTensor<B>> {
        let mut slot = self.slot();
        if slot.armed != Some(residual) {
            return Err(grad);
        }
        slot.grad = Some(Box::new(grad));
        Ok(())
    }

    pub(super) fn take<B: LayerKernelBackward>(&self) -> Option<FloatTensor<B>> {
        let grad = self.slot().grad.take()?;
        Some(
            *grad
                .downcast()
                .expect("a residual gradient of the same backend"),
        )
    }
}

impl std::fmt::Debug for ResidualHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResidualHandoff")
    }
}

/// What [`PooledHandoff`] carries: APReLU's pooling's output gradient already taken through
/// the activation at each window's winner
/// ([`LayerKernelBackward::layer_channelwise_max_pool_parameter_grad`]), and what its forward kept.
#[derive(Debug)]
pub struct PooledStash<B: LayerKernelBackward> {
    pub winner_grad: FloatTensor<B>,
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
    /// A learned channel-wise activation with the block's parameters, which get a gradient.
    Channelwise(Channelwise),
}

/// What a conv block's backward reads: the input, the weight, the activation's parameters and
/// what the forward kept.
#[derive(Clone, Debug)]
pub struct ConvBlockParts<B: LayerKernelBackward> {
    pub x: FloatTensor<B>,
    pub weight: FloatTensor<B>,
    pub parameters: FloatTensor<B>,
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
        parameters: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
    ) -> (FloatTensor<Self>, Self::BlockSaved);

    /// The gradients of [`LayerKernelOps::layer_conv_block`] asked for by `wanted`, and the
    /// parameters' gradient (shaped like `parameters`) when `activation` is channel-wise.
    fn layer_conv_block_backward(
        parts: ConvBlockParts<Self>,
        output_grad: FloatTensor<Self>,
        window: Window2d,
        activation: BlockActivation,
        wanted: ConvGradients,
    ) -> (Conv2dGrads<FloatTensor<Self>>, Option<FloatTensor<Self>>);

    /// [`LayerKernelOps::layer_channelwise_max_pool`], keeping what its backward needs.
    fn layer_channelwise_max_pool_saving(
        x: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        op: Channelwise,
    ) -> (FloatTensor<Self>, Self::BlockSaved);

    /// The parameters' gradient (`[N·C, K]`) of
    /// [`LayerKernelOps::layer_channelwise_max_pool`] on an input of shape `x_shape`, when the
    /// input's goes through a [`PooledHandoff`], and the output gradient taken through the
    /// activation at each window's winner (the output's shape), for that handoff.
    fn layer_channelwise_max_pool_parameter_grad(
        x_shape: Shape,
        parameters: FloatTensor<Self>,
        saved: Self::BlockSaved,
        output_grad: FloatTensor<Self>,
        op: Channelwise,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

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

    /// The gradients of [`LayerKernelOps::layer_channelwise_max_pool`] on an input of shape
    /// `x_shape`: the input's (each window's gradient times the activation's derivative at its
    /// winner, zero elsewhere) and the parameters' (`[N·C, K]`: the formula's parameter terms
    /// summed over each plane's winners).
    fn layer_channelwise_max_pool_backward(
        x_shape: Shape,
        parameters: FloatTensor<Self>,
        saved: Self::BlockSaved,
        output_grad: FloatTensor<Self>,
        op: Channelwise,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// [`LayerKernelOps::layer_spatial_max_pool`], keeping what its backward needs: `(pooled,
    /// statistics, conv, saved)`, with the depthwise convolution `conv` and each window's
    /// winner in `saved`.
    fn layer_spatial_max_pool_keeping(
        x: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (
        FloatTensor<Self>,
        FloatTensor<Self>,
        FloatTensor<Self>,
        Self::BlockSaved,
    );

    /// The gradients `(x, parameters)` of [`LayerKernelOps::layer_spatial_max_pool`] from
    /// what [`layer_spatial_max_pool_keeping`](Self::layer_spatial_max_pool_keeping) returned
    /// and the pooled output's gradient; each plane's gradient at the spatial max is rebuilt
    /// in cache from the pooled one and the winners.
    #[allow(clippy::too_many_arguments)]
    fn layer_spatial_max_pool_backward(
        x: FloatTensor<Self>,
        conv: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        saved: Self::BlockSaved,
        output_grad: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients `(x, gamma, beta)` of [`LayerKernelOps::layer_batch_norm`], from its
    /// input, `gamma`, the statistics it returned and the output's gradient; `residual_grad`
    /// (a residual convolution's, [`ResidualHandoff`]) is added into `x`'s.
    fn layer_batch_norm_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f64,
        batch_statistics: bool,
        output_grad: FloatTensor<Self>,
        residual_grad: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 3];

    /// The gradients asked for by `wanted` of [`LayerKernelOps::layer_norm_conv2d`] (the
    /// residual's is the output's), from what its forward kept and the output's gradient;
    /// `residual_grad` (a residual convolution's, [`ResidualHandoff`]) is added into `x`'s.
    fn layer_norm_conv2d_backward(
        parts: NormConvParts<Self>,
        output_grad: FloatTensor<Self>,
        window: Window2d,
        norm: NormActivation,
        wanted: NormConvGrads<bool>,
        residual_grad: Option<FloatTensor<Self>>,
    ) -> NormConvGrads<Option<FloatTensor<Self>>>;
}
