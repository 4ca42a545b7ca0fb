//! [`FusedActivationOps`], the backend extension with the fused forward ops, and
//! [`FusedActivationBackward`], the backward kernels its autodiff implementation calls.
//! Implemented for Flex (`flex.rs`), the Cube backends (`cube.rs`) and `Autodiff<B>`
//! (`autodiff.rs`).

use super::op::{Channelwise, Pointwise};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};

/// The backend extension: forward ops that backends implement with their own kernels.
#[backend_extension(Flex: cfg(feature = "flex"), Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait FusedActivationOps: Backend {
    /// Applies `op` element-wise.
    fn fused_pointwise(input: FloatTensor<Self>, op: Pointwise) -> FloatTensor<Self>;

    /// Applies `op` with parameters `[rows, op.parameter_count()]` on `[N, C, ...]`: row `r`
    /// for channel `r` (`rows` = C), for sample and channel `r` (`rows` = N·C, row-major), or
    /// for every element (`rows` = 1).
    fn fused_channelwise(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        op: Channelwise,
    ) -> FloatTensor<Self>;

    /// APReLU's squeeze of `[N, C, ...]`: `[N, 2C]`, the means of `max(x, 0)` and of
    /// `min(x, 0)` over each sample's channel.
    fn fused_aprelu_squeeze(input: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `max(x, γ·(conv(x) − μ)/√(σ² + ε) + β)` on `[N, C, H, W]`, where `conv` is a depthwise
    /// 3×3 convolution (zero padding 1) with parameters `[C, 12]` (nine weights row-major,
    /// bias, `γ`, `β`) and `[μ, σ²]` per channel are `running` `[C, 2]` (constants), or with
    /// `batch_statistics` the batch's own mean and biased variance of `conv(x)` (training: the
    /// backward differentiates through them; `running` is not read). Returns the output and
    /// the statistics used `[C, 2]` (a constant: no gradient flows through it).
    fn fused_spatial_max(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// The backward kernels that the autodiff implementation of [`FusedActivationOps`] calls.
pub trait FusedActivationBackward: FusedActivationOps {
    /// `grad · f'(x)`, from the input or the output as [`Pointwise::saves_output`] says.
    fn fused_pointwise_backward(
        saved: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        op: Pointwise,
    ) -> FloatTensor<Self>;

    /// The input gradient and the parameters' gradient (shaped like `parameters`) of
    /// [`FusedActivationOps::fused_channelwise`], in one pass, reduced in a fixed order.
    fn fused_channelwise_backward(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        op: Channelwise,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The input gradient of the squeeze from the gradient of its `[N, 2C]` output.
    fn fused_aprelu_squeeze_backward(
        input: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// [`FusedActivationOps::fused_spatial_max`] keeping `conv(x)` for the backward: the
    /// output, the statistics used and `conv(x)` `[N, C, H, W]`.
    fn fused_spatial_max_keeping(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        running: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The input gradient and the parameters' gradient `[C, 12]` of
    /// [`FusedActivationOps::fused_spatial_max`], reduced in a fixed order, from what
    /// [`fused_spatial_max_keeping`](Self::fused_spatial_max_keeping) returned.
    /// `batch_statistics`: the statistics were the batch's own.
    #[allow(clippy::too_many_arguments)]
    fn fused_spatial_max_backward(
        input: FloatTensor<Self>,
        conv: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}
