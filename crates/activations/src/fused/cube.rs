//! [`FusedActivationOps`] for the Cube backends (wgpu, cuda): the element-wise kernel of any
//! formula (`cube/pointwise.rs`, whose body is the activation's own [`Formula`] traced by
//! `cube/trace.rs`, so no formula is written here) and PReLU's and APReLU's kernels
//! (`cube/channel.rs`). `tests/golden.rs` checks them against the same PyTorch fixture on
//! wgpu, and `tests/fused.rs` against the composite path.
//!
//! [`Formula`]: super::formula::Formula

use super::op::Pointwise;
use super::ops::{FusedActivationBackward, FusedActivationOps};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

// PReLU and APReLU, whose kernels read a slope per channel or per sample and channel.
mod channel;
// The element-wise kernel of any formula.
pub(super) mod pointwise;
// The formulas' lowering: `Real` for traced CubeCL vectors.
mod trace;
// The vector width of the kernels' loads.
mod vector;

impl FusedActivationOps for CubeBackend {
    fn fused_pointwise(input: CubeTensor, op: Pointwise) -> CubeTensor {
        (op.lowering().cube)(op.parameters(), input, None)
    }

    fn fused_prelu(input: CubeTensor, weight: CubeTensor) -> CubeTensor {
        channel::prelu(input, weight)
    }

    fn fused_aprelu_squeeze(input: CubeTensor) -> CubeTensor {
        channel::aprelu_squeeze(input)
    }

    fn fused_aprelu_apply(input: CubeTensor, slopes: CubeTensor) -> CubeTensor {
        channel::aprelu_apply(input, slopes)
    }
}

impl FusedActivationBackward for CubeBackend {
    fn fused_pointwise_backward(saved: CubeTensor, grad: CubeTensor, op: Pointwise) -> CubeTensor {
        (op.lowering().cube)(op.parameters(), saved, Some(grad))
    }

    fn fused_prelu_backward(
        input: CubeTensor,
        weight: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor) {
        channel::prelu_backward(input, weight, grad)
    }

    fn fused_aprelu_squeeze_backward(input: CubeTensor, grad: CubeTensor) -> CubeTensor {
        channel::aprelu_squeeze_backward(input, grad)
    }

    fn fused_aprelu_apply_backward(
        input: CubeTensor,
        slopes: CubeTensor,
        grad: CubeTensor,
    ) -> (CubeTensor, CubeTensor) {
        channel::aprelu_apply_backward(input, slopes, grad)
    }
}
