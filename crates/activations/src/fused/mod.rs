//! Fused activation kernels: one pass forward, one pass backward, multi-threaded and SIMD.
//!
//! # Map
//! - [`Pointwise`]: the element-wise activations that have a fused kernel, with their parameters.
//! - [`FusedActivationOps`]: the backend extension (`#[backend_extension]`) with the forward
//!   ops; implemented for Flex (`flex.rs`) and for `Autodiff<B>` with a handwritten backward
//!   (`autodiff.rs`) that calls [`FusedActivationBackward`].
//! - [`Formula`]: an activation's scalar value and backward, declared with `formula!` in the
//!   activation's own file; `kernels.rs`: the SIMD/rayon loops that run them (and maps each
//!   [`Pointwise`] to its formula), `kernels/channel.rs`: PReLU's and APReLU's loops, whose
//!   slopes vary by channel or by sample and channel; `math.rs`: vectorisable `exp`, `tanh`,
//!   `erf`, `log1p`.
//! - `cube.rs`: the same element-wise formulas as one CubeCL kernel for the Cube backends
//!   (wgpu, cuda; softsign stays composite there), `cube/channel.rs`: PReLU and APReLU.
//! - [`pointwise`], [`prelu`], [`aprelu_squeeze`] and [`aprelu_apply`]: what the modules call.
//!   They use the fused path when the tensor is f32 on Flex or a Cube backend (with or without
//!   autodiff) and hand the input back otherwise, so the module falls back to its composite
//!   formulation (ndarray, other dtypes).
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

pub use formula::{Formula, NotElementwise};

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Tensor};
use std::cell::Cell;
use std::sync::OnceLock;

/// An element-wise activation with a fused kernel. The parameters are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Pointwise {
    /// `max(0, x)`, keeping NaN. The [`Relu`](crate::Relu) module itself runs Burn's
    /// `relu`, which is as fast; this kernel serves fused layer epilogues (the CNN's conv blocks).
    Relu,
    /// `1 / (1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// ELU, SELU and CELU: `x > 0 ? scale · x : scale · α (exp(input_scale · x) - 1)`.
    ExponentialLinear {
        alpha: f64,
        scale: f64,
        input_scale: f64,
    },
    /// `x Φ(x)` with the exact normal CDF.
    Gelu,
    /// `½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    GeluTanh,
    /// `x σ(βx)` with a fixed β.
    Silu { beta: f64 },
    /// `x tanh(softplus(x))`.
    Mish,
    /// `βx > threshold ? x : ln(1 + e^{βx}) / β`.
    Softplus { beta: f64, threshold: f64 },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln σ(x)`.
    LogSigmoid,
    /// `x · relu6(x + 3) / 6`.
    HardSwish,
    /// `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `x > 0 ? x : negative_slope · x` (also RReLU in evaluation).
    LeakyRelu { negative_slope: f64 },
}

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

/// The element-wise kernels on slices, on the calling thread (SIMD, no rayon), for fused ops of
/// other crates that already spread their work over threads: the `models` crate's conv blocks
/// apply the activation to one sample's convolution output while it is in cache.
pub mod slices {
    use super::{Pointwise, kernels};

    /// `output[i] = op(input[i])`.
    ///
    /// # Panics
    /// When the slices differ in length.
    pub fn forward(op: Pointwise, input: &[f32], output: &mut [f32]) {
        kernels::forward_on_thread(op, input, output)
    }

    /// `grad[i] = grad[i] · op'(x[i])`, from `saved[i]`: the input `x[i]`, or the output when
    /// [`Pointwise::saves_output`].
    ///
    /// # Panics
    /// When the slices differ in length.
    pub fn backward(op: Pointwise, saved: &[f32], grad: &mut [f32]) {
        kernels::backward_on_thread(op, saved, grad)
    }

    /// APReLU's squeeze of one sample's channel plane: the means of `max(x, 0)` and
    /// `min(x, 0)` (x = 0 and NaN count as negative), as [`super::aprelu_squeeze`] computes
    /// each entry of its `[N, 2C]` summary.
    pub fn aprelu_plane_means(plane: &[f32]) -> (f32, f32) {
        kernels::plane_means(plane)
    }

    /// Adds the squeeze's input gradient for one channel plane to `grad`: `(x > 0 ?
    /// grad_positive : grad_negative) / plane.len()`, from the gradients of the plane's two
    /// means.
    ///
    /// # Panics
    /// When the slices differ in length.
    pub fn aprelu_plane_squeeze_backward_add(
        plane: &[f32],
        grad_positive: f32,
        grad_negative: f32,
        grad: &mut [f32],
    ) {
        kernels::plane_squeeze_backward_add(plane, grad_positive, grad_negative, grad)
    }
}

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
    /// The Cube backends (wgpu, cuda): every op but softsign.
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
pub fn pointwise<const D: usize>(input: Tensor<D>, op: Pointwise) -> Result<Tensor<D>, Tensor<D>> {
    match kernels_for(&input) {
        Kernels::None => return Err(input),
        // Softsign's gradient must be NaN at ±inf, which needs an inf test inside the kernel;
        // shader compilers assume finite math and fold it away (see cube.rs). It is the
        // cheapest of the composites, so the Cube backends keep it.
        Kernels::Cube if op == Pointwise::Softsign => return Err(input),
        _ => {}
    }
    let output = <Dispatch as FusedActivationOps>::fused_pointwise(input.into_dispatch(), op);
    Ok(Tensor::from_dispatch(output))
}

/// PReLU `x > 0 ? x : w[c] x` on `[N, C, ...]` (channel axis 1) with `weight` of shape `[C]` or
/// `[1]`, fused; returns the input when there is no kernel for it.
// The error hands the input back by value for the fallback; boxing it would cost an
// allocation per call on every backend.
#[allow(clippy::result_large_err)]
pub fn prelu<const D: usize>(input: Tensor<D>, weight: Tensor<1>) -> Result<Tensor<D>, Tensor<D>> {
    let channels = weight.dims()[0];
    let fits = channels == 1 || (D >= 2 && input.dims()[1] == channels);
    if !fits || kernels_for(&input) == Kernels::None || weight.dtype() != DType::F32 {
        return Err(input);
    }
    let output = <Dispatch as FusedActivationOps>::fused_prelu(
        input.into_dispatch(),
        weight.into_dispatch(),
    );
    Ok(Tensor::from_dispatch(output))
}

/// APReLU's squeeze of `[N, C, ...]` (channel axis 1): `[N, 2C]`, the means of `max(x, 0)`
/// (first `C` columns) and of `min(x, 0)` over each sample's channel, in one pass; `None` when
/// there is no kernel for the tensor (then neither is there one for [`aprelu_apply`]).
pub fn aprelu_squeeze<const D: usize>(input: &Tensor<D>) -> Option<Tensor<2>> {
    if D < 2 || kernels_for(input) == Kernels::None {
        return None;
    }
    let summary =
        <Dispatch as FusedActivationOps>::fused_aprelu_squeeze(input.clone().into_dispatch());
    Some(Tensor::from_dispatch(summary))
}

/// `x > 0 ? x : α x` on `[N, C, ...]` with one slope per sample and channel (`slopes` of shape
/// `[N, C]`), fused; returns the input when there is no kernel for it.
// The error hands the input back by value for the fallback; boxing it would cost an
// allocation per call on every backend.
#[allow(clippy::result_large_err)]
pub fn aprelu_apply<const D: usize>(
    input: Tensor<D>,
    slopes: Tensor<2>,
) -> Result<Tensor<D>, Tensor<D>> {
    let dims = input.dims();
    let fits = D >= 2 && slopes.dims() == [dims[0], dims[1]];
    if !fits || kernels_for(&input) == Kernels::None || slopes.dtype() != DType::F32 {
        return Err(input);
    }
    let output = <Dispatch as FusedActivationOps>::fused_aprelu_apply(
        input.into_dispatch(),
        slopes.into_dispatch(),
    );
    Ok(Tensor::from_dispatch(output))
}
