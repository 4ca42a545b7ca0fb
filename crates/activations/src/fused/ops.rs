//! [`FusedActivationOps`], the backend extension with the fused forward ops, and
//! [`FusedActivationBackward`], the backward kernels its autodiff implementation calls.
//! Implemented for Flex (`flex.rs`), the Cube backends (`cube.rs`) and `Autodiff<B>`
//! (`autodiff.rs`).

use super::op::Pointwise;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};

/// The backend extension: forward ops that backends implement with their own kernels.
#[backend_extension(Flex: cfg(feature = "flex"), Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait FusedActivationOps: Backend {
    /// Applies `op` element-wise.
    fn fused_pointwise(input: FloatTensor<Self>, op: Pointwise) -> FloatTensor<Self>;

    /// PReLU on `[N, C, ...]` with `weight` of shape `[C]` (or `[1]`, shared).
    fn fused_prelu(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// APReLU's squeeze of `[N, C, ...]`: `[N, 2C]`, the means of `max(x, 0)` and of
    /// `min(x, 0)` over each sample's channel.
    fn fused_aprelu_squeeze(input: FloatTensor<Self>) -> FloatTensor<Self>;

    /// `x > 0 ? x : α x` on `[N, C, ...]` with `slopes` α of shape `[N, C]`.
    fn fused_aprelu_apply(input: FloatTensor<Self>, slopes: FloatTensor<Self>)
    -> FloatTensor<Self>;
}

/// The backward kernels that the autodiff implementation of [`FusedActivationOps`] calls.
pub trait FusedActivationBackward: FusedActivationOps {
    /// `grad · f'(x)`, from the input or the output as [`Pointwise::saves_output`] says.
    fn fused_pointwise_backward(
        saved: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        op: Pointwise,
    ) -> FloatTensor<Self>;

    /// The input gradient and the weight gradient (shaped like `weight`) of PReLU.
    fn fused_prelu_backward(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The input gradient of the squeeze from the gradient of its `[N, 2C]` output.
    fn fused_aprelu_squeeze_backward(
        input: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The input gradient and the slopes' gradient (`[N, C]`) of [`FusedActivationOps::fused_aprelu_apply`].
    fn fused_aprelu_apply_backward(
        input: FloatTensor<Self>,
        slopes: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}
