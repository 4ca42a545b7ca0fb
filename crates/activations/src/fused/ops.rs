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

    /// The per-channel mean and biased variance `[C, 2]` over the batch of a depthwise 3×3
    /// convolution (zero padding 1) of `[N, C, H, W]`, with parameters `[C, 12]` (nine weights,
    /// bias, `γ`, `β`; `γ`, `β` unused here). A constant: no gradient flows through it.
    fn fused_spatial_statistics(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `max(x, γ·(conv(x) − μ)/√(σ² + ε) + β)` on `[N, C, H, W]`, with `conv` as in
    /// [`fused_spatial_statistics`](Self::fused_spatial_statistics), `[μ, σ²]` per channel in
    /// `statistics` `[C, 2]`. With `batch_statistics` they are the batch's own (training) and
    /// the backward differentiates through them; otherwise they are constants.
    fn fused_spatial_max(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> FloatTensor<Self>;
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

    /// The input gradient and the parameters' gradient `[C, 12]` of
    /// [`FusedActivationOps::fused_spatial_max`], reduced in a fixed order.
    fn fused_spatial_max_backward(
        input: FloatTensor<Self>,
        parameters: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}
