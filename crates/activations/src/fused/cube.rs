//! [`FusedActivationOps`] for the Cube backends (wgpu, cuda): the element-wise kernel of any
//! formula (`cube/pointwise.rs`, whose body is the activation's own [`Formula`] traced by
//! `cube/trace.rs`, so no formula is written here), the channel-wise kernels of any learned
//! formula (`cube/channel.rs`, traced the same way), APReLU's squeeze (`cube/squeeze.rs`) and
//! FReLU's spatial max (`cube/spatial_max/`). `tests/golden.rs` checks them against the same
//! PyTorch fixture on wgpu, and `tests/fused.rs` and `tests/frelu.rs` against the composite.
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
// FReLU's spatial max.
mod spatial_max;
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

    fn fused_spatial_max(
        input: CubeTensor,
        parameters: CubeTensor,
        running: CubeTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (CubeTensor, CubeTensor) {
        let running = (!batch_statistics).then_some(running);
        let (output, statistics, _) =
            spatial_max::forward(input, parameters, running, epsilon, false);
        (output, statistics)
    }
}

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

    fn fused_spatial_max_keeping(
        input: CubeTensor,
        parameters: CubeTensor,
        running: CubeTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (CubeTensor, CubeTensor, CubeTensor) {
        let running = (!batch_statistics).then_some(running);
        let (output, statistics, conv) =
            spatial_max::forward(input, parameters, running, epsilon, true);
        (output, statistics, conv.expect("kept"))
    }

    fn fused_spatial_max_backward(
        input: CubeTensor,
        conv: CubeTensor,
        parameters: CubeTensor,
        statistics: CubeTensor,
        grad: CubeTensor,
        epsilon: f32,
        batch_statistics: bool,
    ) -> (CubeTensor, CubeTensor) {
        spatial_max::backward(
            input,
            conv,
            parameters,
            statistics,
            grad,
            epsilon,
            batch_statistics,
        )
    }
}
