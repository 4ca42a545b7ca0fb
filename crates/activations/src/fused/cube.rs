//! [`FusedActivationOps`] for the Cube backends (wgpu, cuda): one CubeCL kernel, specialised at
//! compile time for each formula, forward and backward, on vectors of up to 4 lanes (the
//! widest the device loads efficiently that divides the length; 1 otherwise), so each unit
//! moves 16 bytes per tensor. The formulas mirror each activation's
//! scalar [`Formula`](super::Formula) with CubeCL's `exp`/`tanh`/`erf`, PyTorch's select order
//! and the same constants (imported from the activations' files); `tests/golden.rs` checks them
//! against the same PyTorch fixture on wgpu, and `tests/fused.rs` against the composite path.

use super::{FusedActivationBackward, FusedActivationOps, Pointwise};
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::CubeBackend;
use burn_cubecl::cubecl;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;

use crate::elu::ExponentialLinearFormula;
use crate::gelu::{FRAC_1_SQRT_2, FRAC_1_SQRT_2PI, SQRT_2_OVER_PI, TANH_CUBIC as GELU_CUBIC};
use crate::hardsigmoid::ONE_SIXTH;
use crate::hardswish::ONE_THIRD;
use crate::softplus::SoftplusFormula;

// PReLU and APReLU, whose kernels read a slope per channel or per sample and channel.
mod channel;

/// Formula codes (comptime): the kernel is compiled once per code.
const SIGMOID: u32 = 0;
const TANH: u32 = 1;
const EXPONENTIAL_LINEAR: u32 = 2;
const GELU: u32 = 3;
const GELU_TANH: u32 = 4;
const SILU: u32 = 5;
const MISH: u32 = 6;
const SOFTPLUS: u32 = 7;
const SOFTSIGN: u32 = 8;
const LOG_SIGMOID: u32 = 9;
const HARD_SWISH: u32 = 10;
const HARD_SIGMOID: u32 = 11;
const LEAKY_RELU: u32 = 12;
const RELU: u32 = 13;

/// The code and up to three parameters of `op`.
fn code_and_params(op: Pointwise) -> (u32, [f32; 3]) {
    match op {
        Pointwise::Relu => (RELU, [0.0; 3]),
        Pointwise::Sigmoid => (SIGMOID, [0.0; 3]),
        Pointwise::Tanh => (TANH, [0.0; 3]),
        Pointwise::ExponentialLinear {
            alpha,
            scale,
            input_scale,
        } => {
            let f = ExponentialLinearFormula::new(alpha, scale, input_scale);
            (
                EXPONENTIAL_LINEAR,
                [f.negative_coef, f.positive_coef, f.input_scale],
            )
        }
        Pointwise::Gelu => (GELU, [0.0; 3]),
        Pointwise::GeluTanh => (GELU_TANH, [0.0; 3]),
        Pointwise::Silu { beta } => (SILU, [beta as f32, 0.0, 0.0]),
        Pointwise::Mish => (MISH, [0.0; 3]),
        Pointwise::Softplus { beta, threshold } => {
            let f = SoftplusFormula::new(beta, threshold);
            (SOFTPLUS, [f.beta, f.inverse_beta, f.threshold])
        }
        Pointwise::Softsign => (SOFTSIGN, [0.0; 3]),
        Pointwise::LogSigmoid => (LOG_SIGMOID, [0.0; 3]),
        Pointwise::HardSwish => (HARD_SWISH, [0.0; 3]),
        Pointwise::HardSigmoid => (HARD_SIGMOID, [0.0; 3]),
        Pointwise::LeakyRelu { negative_slope } => (LEAKY_RELU, [negative_slope as f32, 0.0, 0.0]),
    }
}

/// `value` in every lane.
#[cube]
fn splat<F: Float, N: Size>(value: F) -> Vector<F, N> {
    Vector::<F, N>::new(value)
}

#[cube]
fn sigmoid<F: Float, N: Size>(x: Vector<F, N>) -> Vector<F, N> {
    let zero = splat::<F, N>(F::new(0.0));
    let one = splat::<F, N>(F::new(1.0));
    let e = Vector::exp(zero - Vector::abs(x));
    let reciprocal = one / (one + e);
    select_many(x.greater_equal(&zero), reciprocal, e * reciprocal)
}

#[cube]
fn ramp6<F: Float, N: Size>(v: Vector<F, N>) -> Vector<F, N> {
    let zero = splat::<F, N>(F::new(0.0));
    let six = splat::<F, N>(F::new(6.0));
    let low = select_many(v.less_than(&zero), zero, v);
    select_many(low.greater_than(&six), six, low)
}

#[cube]
fn softplus_unit<F: Float, N: Size>(x: Vector<F, N>) -> Vector<F, N> {
    // tanh(ln(1 + eˣ)) for Mish, with x capped at 20 where it is 1 in f32.
    let cap = splat::<F, N>(F::new(20.0));
    let capped = select_many(x.less_than(&cap), x, cap);
    Vector::tanh(Vector::log1p(Vector::exp(capped)))
}

// The `if comptime!` chain assigns exactly one branch; the initial value only gives the type.
// Every formula works on a vector of `N` lanes (`N` = 1 where the tensor's length allows no
// wider one); the comparisons are lane-wise and `select_many` picks per lane.
#[allow(unused_assignments)]
#[cube]
fn forward_formula<F: Float, N: Size>(
    x: Vector<F, N>,
    p0: F,
    p1: F,
    p2: F,
    #[comptime] code: u32,
) -> Vector<F, N> {
    let zero = splat::<F, N>(F::new(0.0));
    let one = splat::<F, N>(F::new(1.0));
    let half = splat::<F, N>(F::new(0.5));
    let (p0, p1, p2) = (splat::<F, N>(p0), splat::<F, N>(p1), splat::<F, N>(p2));
    let mut y = zero;
    if comptime![code == SIGMOID] {
        y = sigmoid::<F, N>(x);
    } else if comptime![code == TANH] {
        y = Vector::tanh(x);
    } else if comptime![code == EXPONENTIAL_LINEAR] {
        let negative_input = select_many(x.greater_than(&zero), zero, x);
        let negative = (Vector::exp(negative_input * p2) - one) * p0;
        y = select_many(x.less_equal(&zero), negative, x * p1);
    } else if comptime![code == GELU] {
        y = x * half * (one + Vector::erf(x * splat::<F, N>(F::new(FRAC_1_SQRT_2))));
    } else if comptime![code == GELU_TANH] {
        let cubic = splat::<F, N>(F::new(GELU_CUBIC));
        let inner = splat::<F, N>(F::new(SQRT_2_OVER_PI)) * (x + cubic * x * x * x);
        y = half * x * (one + Vector::tanh(inner));
    } else if comptime![code == SILU] {
        y = x * sigmoid::<F, N>(x * p0);
    } else if comptime![code == MISH] {
        y = x * softplus_unit::<F, N>(x);
    } else if comptime![code == SOFTPLUS] {
        let scaled = x * p0;
        let positive_part = select_many(scaled.greater_than(&zero), scaled, zero);
        let smooth = (positive_part + Vector::log1p(Vector::exp(zero - Vector::abs(scaled)))) * p1;
        y = select_many(scaled.greater_than(&p2), x, smooth);
    } else if comptime![code == SOFTSIGN] {
        y = x / (one + Vector::abs(x));
    } else if comptime![code == LOG_SIGMOID] {
        let negative_part = select_many(x.greater_than(&zero), zero, x);
        y = negative_part - Vector::log1p(Vector::exp(zero - Vector::abs(x)));
    } else if comptime![code == HARD_SWISH] {
        let shifted = x + splat::<F, N>(F::new(3.0));
        y = x * ramp6::<F, N>(shifted) * splat::<F, N>(F::new(ONE_SIXTH));
    } else if comptime![code == HARD_SIGMOID] {
        let shifted = x + splat::<F, N>(F::new(3.0));
        y = ramp6::<F, N>(shifted) * splat::<F, N>(F::new(ONE_SIXTH));
    } else if comptime![code == RELU] {
        // NaN fails the test and passes through, as in `ReluFormula`.
        y = select_many(x.less_equal(&zero), zero, x);
    } else {
        y = select_many(x.greater_than(&zero), x, x * p0);
    }
    y
}

#[allow(unused_assignments)]
#[cube]
fn backward_formula<F: Float, N: Size>(
    s: Vector<F, N>,
    g: Vector<F, N>,
    p0: F,
    p1: F,
    p2: F,
    #[comptime] code: u32,
) -> Vector<F, N> {
    let zero = splat::<F, N>(F::new(0.0));
    let one = splat::<F, N>(F::new(1.0));
    let half = splat::<F, N>(F::new(0.5));
    let (p0, p1, p2) = (splat::<F, N>(p0), splat::<F, N>(p1), splat::<F, N>(p2));
    let mut d = zero;
    if comptime![code == SIGMOID] {
        d = g * (one - s) * s;
    } else if comptime![code == TANH] {
        d = g * (one - s * s);
    } else if comptime![code == EXPONENTIAL_LINEAR] {
        let negative = g * p2 * (s + p0);
        d = select_many(s.greater_than(&zero), g * p1, negative);
    } else if comptime![code == GELU] {
        let cdf = half * (one + Vector::erf(s * splat::<F, N>(F::new(FRAC_1_SQRT_2))));
        let pdf = splat::<F, N>(F::new(FRAC_1_SQRT_2PI))
            * Vector::exp(splat::<F, N>(F::new(-0.5)) * s * s);
        d = g * (cdf + s * pdf);
    } else if comptime![code == GELU_TANH] {
        let root = splat::<F, N>(F::new(SQRT_2_OVER_PI));
        let x_sq = s * s;
        let t = Vector::tanh(root * (s + splat::<F, N>(F::new(GELU_CUBIC)) * x_sq * s));
        let left = half * (one + t);
        let right = half
            * s
            * (one - t * t)
            * root
            * (one + splat::<F, N>(F::new(3.0 * GELU_CUBIC)) * x_sq);
        d = g * (left + right);
    } else if comptime![code == SILU] {
        let scaled = s * p0;
        let sig = sigmoid::<F, N>(scaled);
        d = g * sig * (one + scaled * (one - sig));
    } else if comptime![code == MISH] {
        let t = softplus_unit::<F, N>(s);
        d = g * (t + s * sigmoid::<F, N>(s) * (one - t * t));
    } else if comptime![code == SOFTPLUS] {
        let scaled = s * p0;
        d = select_many(scaled.greater_than(&p2), g, g * sigmoid::<F, N>(scaled));
    } else if comptime![code == SOFTSIGN] {
        let denominator = one + Vector::abs(s);
        // Exact for finite inputs. At ±inf PyTorch gives NaN, which needs an inf test that
        // shader compilers fold away under their finite-math assumption, so `fused::pointwise`
        // keeps softsign on the composite path for Cube devices.
        d = g / (denominator * denominator);
    } else if comptime![code == LOG_SIGMOID] {
        let e = Vector::exp(zero - Vector::abs(s));
        let ratio = e / (one + e);
        d = select_many(s.less_than(&zero), g * (one - ratio), g * ratio);
    } else if comptime![code == HARD_SWISH] {
        let three = splat::<F, N>(F::new(3.0));
        let middle = g * (s * splat::<F, N>(F::new(ONE_THIRD)) + half);
        let upper = select_many(s.greater_equal(&three), g, middle);
        d = select_many(s.less_equal(&(zero - three)), zero, upper);
    } else if comptime![code == HARD_SIGMOID] {
        let three = splat::<F, N>(F::new(3.0));
        let inside = s.greater_than(&(zero - three)).vec_and(s.less_than(&three));
        d = select_many(inside, g * splat::<F, N>(F::new(ONE_SIXTH)), zero);
    } else if comptime![code == RELU] {
        d = select_many(s.less_equal(&zero), zero, g);
    } else {
        d = select_many(s.greater_than(&zero), g, g * p0);
    }
    d
}

#[cube(launch)]
fn pointwise_kernel<F: Float, N: Size>(
    saved: &Tensor<Vector<F, N>>,
    grad: &Tensor<Vector<F, N>>,
    output: &mut Tensor<Vector<F, N>>,
    p0: f32,
    p1: f32,
    p2: f32,
    #[comptime] code: u32,
    #[comptime] backward: bool,
    #[define(F)] _dtype: ElemType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let p0 = F::cast_from(p0);
    let p1 = F::cast_from(p1);
    let p2 = F::cast_from(p2);
    if comptime![backward] {
        output[ABSOLUTE_POS] =
            backward_formula::<F, N>(saved[ABSOLUTE_POS], grad[ABSOLUTE_POS], p0, p1, p2, code);
    } else {
        output[ABSOLUTE_POS] = forward_formula::<F, N>(saved[ABSOLUTE_POS], p0, p1, p2, code);
    }
}

/// The widest vector the device loads efficiently that divides `run`, the length of the
/// contiguous runs a kernel must not split across vectors (the whole tensor for the
/// element-wise kernels, a row for the per-row ones); 1 when none does.
fn vector_size(tensor: &CubeTensor, run: usize) -> usize {
    tensor
        .client
        .io_optimized_vector_sizes(tensor.dtype.size())
        .filter(|&size| run.is_multiple_of(size))
        .max()
        .unwrap_or(1)
}

/// Runs the kernel over contiguous `saved` (and `grad` for the backward) into a new tensor.
fn launch(op: Pointwise, saved: CubeTensor, grad: Option<CubeTensor>) -> CubeTensor {
    let (code, [p0, p1, p2]) = code_and_params(op);
    let saved = into_contiguous(saved);
    let grad = grad.map(into_contiguous);
    let shape = saved.meta.shape().clone();
    let output = empty_device_contiguous_dtype(
        saved.client.clone(),
        saved.device.clone(),
        shape.clone(),
        saved.dtype,
    );
    let elements = shape.num_elements();
    let vector_size = vector_size(&saved, elements);
    let units = elements / vector_size;
    let cube_dim = CubeDim::new(&saved.client, units);
    let cube_count = calculate_cube_count_elemwise(&saved.client, units, cube_dim);
    let dtype = saved.dtype;
    let backward = grad.is_some();
    let grad = grad.unwrap_or_else(|| saved.clone());
    pointwise_kernel::launch(
        &output.client,
        cube_count,
        cube_dim,
        vector_size,
        saved.into_tensor_arg(),
        grad.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        p0,
        p1,
        p2,
        code,
        backward,
        dtype_to_storage_type(dtype),
    );
    output
}

impl FusedActivationOps for CubeBackend {
    fn fused_pointwise(input: CubeTensor, op: Pointwise) -> CubeTensor {
        launch(op, input, None)
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
        launch(op, saved, Some(grad))
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
