//! [`FusedActivationOps`] for the Cube backends (wgpu, cuda): the element-wise kernel of any
//! formula (`cube/pointwise.rs`, whose body is the activation's own [`Formula`] traced by
//! `cube/trace.rs`, so no formula is written here), the channel-wise kernels of any learned
//! formula (`cube/channel.rs`, traced the same way) and APReLU's squeeze (`cube/squeeze.rs`). `tests/golden.rs` checks them against the same PyTorch fixture on
//! wgpu, and `tests/fused.rs` against the composite path.
//!
//! [`Formula`]: super::formula::Formula

use super::op::{Channelwise, Pointwise};
use super::ops::{FusedActivationBackward, FusedActivationOps};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;

// The channel-wise kernels of any learned formula.
pub(super) mod channel;
// The element-wise kernel of any formula.
pub(super) mod pointwise;
// APReLU's squeeze.
mod squeeze;
// The formulas' lowering: `Real` for traced CubeCL vectors.
mod trace;
// The vector width of the kernels' loads.
mod vector;

impl FusedActivationOps for CubeBackend {
    fn fused_pointwise(input: CubeTensor, op: Pointwise) -> CubeTensor {
        (op.lowering().cube)(op.parameters(), input, None)
    }

    fn fused_channelwise(input: CubeTensor, parameters: CubeTensor, op: Channelwise) -> CubeTensor {
        (op.lowering().cube_forward)(input, parameters)
    }

    fn fused_aprelu_squeeze(input: CubeTensor) -> CubeTensor {
        squeeze::aprelu_squeeze(input)
    }

    fn fused_spatial_statistics(_: CubeTensor, _: CubeTensor) -> CubeTensor {
        unreachable!("{FLEX_ONLY}")
    }

    fn fused_spatial_max(
        _: CubeTensor,
        _: CubeTensor,
        _: CubeTensor,
        _: f32,
        _: bool,
    ) -> CubeTensor {
        unreachable!("{FLEX_ONLY}")
    }
}

/// The spatial max (FReLU) has a Flex kernel only: `fused::spatial_max` sends the Cube backends
/// to the composite path, which runs Burn's own kernels there.
const FLEX_ONLY: &str = "the spatial max runs fused on Flex only (fused::spatial_max checks)";

impl FusedActivationBackward for CubeBackend {
    fn fused_pointwise_backward(saved: CubeTensor, grad: CubeTensor, op: Pointwise) -> CubeTensor {
        (op.lowering().cube)(op.parameters(), saved, Some(grad))
    }

    fn fused_channelwise_backward(
        input: CubeTensor,
        parameters: CubeTensor,
        grad: CubeTensor,
        op: Channelwise,
    ) -> (CubeTensor, CubeTensor) {
        (op.lowering().cube_backward)(input, parameters, grad)
    }

    fn fused_aprelu_squeeze_backward(input: CubeTensor, grad: CubeTensor) -> CubeTensor {
        squeeze::aprelu_squeeze_backward(input, grad)
    }

    fn fused_spatial_max_backward(
        _: CubeTensor,
        _: CubeTensor,
        _: CubeTensor,
        _: CubeTensor,
        _: f32,
        _: bool,
    ) -> (CubeTensor, CubeTensor) {
        unreachable!("{FLEX_ONLY}")
    }
}
