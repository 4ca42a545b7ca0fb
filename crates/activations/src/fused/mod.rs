//! Fused activation kernels: one pass forward, one pass backward, multi-threaded and SIMD.
//!
//! # Map
//! - [`Formula`] (`formula.rs`): an element-wise activation's value and backward, stated once
//!   in the activation's own file over [`Real`] (`real.rs`: `f32` here, traced vectors on the
//!   Cube backends), and lowered by each backend.
//! - [`Pointwise`] (`op.rs`): one formula with its parameters and its table of lowerings, the
//!   value the backends and other crates' fused layers carry.
//! - [`FusedActivationOps`]: the backend extension (`#[backend_extension]`) with the forward
//!   ops; implemented for Flex (`flex.rs`) and for `Autodiff<B>` with a handwritten backward
//!   (`autodiff.rs`) that calls [`FusedActivationBackward`].
//! - `kernels/`: the SIMD/rayon loops that run formulas on `f32`, element-wise
//!   (`pointwise.rs`) and channel-wise (`channel.rs`), and APReLU's squeeze (`squeeze.rs`);
//!   `math.rs`: vectorisable `exp`, `tanh`, `erf`, `log1p`.
//! - `cube.rs`: one CubeCL kernel generic over the formula for the Cube backends (wgpu, cuda),
//!   whose body is the formula traced by `cube/trace.rs`, and its channel-wise kernels
//!   (`cube/channel.rs`); `cube/squeeze.rs`: APReLU's squeeze.
//! - [`Channelwise`] (`op.rs`): a [`LearnedFormula`] whose parameters come per channel (or per
//!   sample and channel) from a tensor, with the parameter gradients reduced in a fixed order.
//! - [`pointwise`], [`channelwise`] and [`aprelu_squeeze`]: what the modules call.
//!   They use the fused path when the tensor is f32 on Flex or a Cube backend (with or without
//!   autodiff) and hand the input back otherwise, so the module falls back to its composite
//!   formulation (ndarray, other dtypes).
//!
//! - [`planes`]: FReLU's spatial max plane by plane, for other crates' fused layers (the
//!   models' FReLU + max-pool); [`slices`]: the element-wise kernels on slices.
//!
//! [`without_fused`] runs a closure with the fused path off on this thread, for comparisons
//! (`fmnist bench activations`); `ACTIVATIONS_FUSED=0` turns it off for the whole process.

mod autodiff;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod cube;
#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
pub mod flex_storage;
pub mod formula;
mod kernels;
pub(crate) mod math;
mod op;
mod ops;
pub mod planes;
pub mod real;
pub mod slices;

pub use formula::{Formula, LearnedFormula};
pub use op::{Channelwise, Pointwise};
pub use ops::{FusedActivationBackward, FusedActivationOps};
pub use real::Real;

use burn::backend::Dispatch;
use burn::tensor::{DType, Tensor};
use std::cell::Cell;
use std::sync::OnceLock;

thread_local! {
    static DISABLED_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Whether the fused path is on for this thread (`ACTIVATIONS_FUSED=0` turns it off everywhere).
pub fn fused_enabled() -> bool {
    static FROM_ENV: OnceLock<bool> = OnceLock::new();
    let from_env = *FROM_ENV.get_or_init(|| {
        std::env::var("ACTIVATIONS_FUSED").map_or(true, |v| v != "0" && v != "false")
    });
    from_env && !DISABLED_HERE.with(Cell::get)
}

/// The instruction set the Flex kernels run: `"avx512"`, `"avx2"` or `"baseline"` (portable
/// code), the best this CPU has unless `ACTIVATIONS_ISA` names a lower one.
pub fn kernel_isa() -> &'static str {
    kernels::loops::isa_name(kernels::loops::isa())
}

/// Runs `f` with the fused kernels off on this thread, so the modules use their composite
/// formulation (Burn's built-in ops), e.g. to compare the two.
pub fn without_fused<R>(f: impl FnOnce() -> R) -> R {
    let before = DISABLED_HERE.with(|d| d.replace(true));
    let result = f();
    DISABLED_HERE.with(|d| d.set(before));
    result
}

/// Which kernels a tensor's backend has.
#[derive(Clone, Copy, PartialEq)]
enum Kernels {
    None,
    /// Flex: every op.
    Flex,
    /// The Cube backends (wgpu, cuda): every op whose formula allows it ([`Formula::CUBE`]).
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    Cube,
}

/// The kernels `tensor` can use: f32 on a backend with an implementation.
fn kernels_for<const D: usize>(tensor: &Tensor<D>) -> Kernels {
    if !fused_enabled() || tensor.dtype() != DType::F32 {
        return Kernels::None;
    }
    #[allow(unused_imports)]
    use burn::backend::DispatchDevice;
    let device = tensor.device().as_dispatch().clone().inner();
    #[cfg(feature = "flex")]
    if matches!(device, DispatchDevice::Flex(_)) {
        return Kernels::Flex;
    }
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    if matches!(device, DispatchDevice::Cube(_)) {
        return Kernels::Cube;
    }
    let _ = device;
    Kernels::None
}

/// Applies `op` with the fused kernel, or returns the input untouched when the tensor's
/// backend or dtype has none (the caller then uses its composite formulation).
// The error hands the input back by value for the fallback; boxing it would cost an
// allocation per call on every backend.
#[allow(clippy::result_large_err)]
pub fn pointwise<const D: usize>(
    input: Tensor<D>,
    op: impl Into<Pointwise>,
) -> Result<Tensor<D>, Tensor<D>> {
    let op = op.into();
    match kernels_for(&input) {
        Kernels::None => return Err(input),
        // A formula that needs IEEE special values the shader compilers fold away
        // (`Formula::CUBE`) keeps its composite path there.
        Kernels::Cube if !op.runs_on_cube() => return Err(input),
        _ => {}
    }
    let output = <Dispatch as FusedActivationOps>::fused_pointwise(input.into_dispatch(), op);
    Ok(Tensor::from_dispatch(output))
}

/// `op` on `[N, C, ...]` with `parameters` of shape `[rows, op.parameter_count()]`: one row
/// per channel (axis 1, `rows` = C), per sample and channel (`rows` = N·C, row-major) or one
/// for every element (`rows` = 1), fused; returns the input when there is no kernel for it.
// The error hands the input back by value for the fallback; boxing it would cost an
// allocation per call on every backend.
#[allow(clippy::result_large_err)]
pub fn channelwise<const D: usize>(
    input: Tensor<D>,
    parameters: Tensor<2>,
    op: Channelwise,
) -> Result<Tensor<D>, Tensor<D>> {
    let dims = input.dims();
    let [rows, count] = parameters.dims();
    let rows_fit = rows == 1 || (D >= 2 && (rows == dims[1] || rows == dims[0] * dims[1]));
    let fits = rows_fit && count == op.parameter_count() && parameters.dtype() == DType::F32;
    match kernels_for(&input) {
        _ if !fits => return Err(input),
        Kernels::None => return Err(input),
        Kernels::Cube if !op.runs_on_cube() => return Err(input),
        _ => {}
    }
    let output = <Dispatch as FusedActivationOps>::fused_channelwise(
        input.into_dispatch(),
        parameters.into_dispatch(),
        op,
    );
    Ok(Tensor::from_dispatch(output))
}

/// FReLU's funnel condition compared with its input, fused on Flex:
/// `max(x, γ·(conv(x) − μ)/√(σ² + ε) + β)` on `[N, C, H, W]`, with `conv` a depthwise 3×3
/// convolution (zero padding 1) and `parameters` `[C, 12]` (the nine weights row-major, the
/// bias, `γ`, `β`). With `batch` the statistics are the batch's own, returned as `[C, 2]` (the
/// mean and the biased variance, for the running estimates) and differentiated through, as a
/// training-mode BatchNorm; otherwise `running` `[C, 2]` (mean, variance) are used as
/// constants. `None` when there is no kernel for the tensor (Flex and the Cube backends have
/// one; the others keep the composite path).
pub fn spatial_max(
    input: &Tensor<4>,
    parameters: &Tensor<2>,
    running: &Tensor<2>,
    epsilon: f32,
    batch: bool,
) -> Option<(Tensor<4>, Option<Tensor<2>>)> {
    let [_, channels, _, _] = input.dims();
    let fits = parameters.dims() == [channels, kernels::spatial_max::ROW]
        && parameters.dtype() == DType::F32;
    if !fits || kernels_for(input) == Kernels::None {
        return None;
    }
    let (output, statistics) = <Dispatch as FusedActivationOps>::fused_spatial_max(
        input.clone().into_dispatch(),
        parameters.clone().into_dispatch(),
        running.clone().into_dispatch(),
        epsilon,
        batch,
    );
    let statistics = Tensor::from_dispatch(statistics);
    Some((Tensor::from_dispatch(output), batch.then_some(statistics)))
}

/// APReLU's squeeze of `[N, C, ...]` (channel axis 1): `[N, 2C]`, the means of `max(x, 0)`
/// (first `C` columns) and of `min(x, 0)` over each sample's channel, in one pass; `None` when
/// there is no kernel for the tensor (then neither is there one for [`channelwise`]).
pub fn aprelu_squeeze<const D: usize>(input: &Tensor<D>) -> Option<Tensor<2>> {
    if D < 2 || kernels_for(input) == Kernels::None {
        return None;
    }
    let summary =
        <Dispatch as FusedActivationOps>::fused_aprelu_squeeze(input.clone().into_dispatch());
    Some(Tensor::from_dispatch(summary))
}
