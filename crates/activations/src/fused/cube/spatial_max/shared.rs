//! What the spatial max's forward and backward kernels share: the parameter row layout, the
//! zero-padded taps, the condition and its normalisation, and the launch geometry.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::{calculate_cube_count_elemwise, prelude::*};
use burn_cubecl::tensor::CubeTensor;

use super::super::squeeze::BLOCK;

/// Values per channel in the parameter rows: nine weights, bias, `γ`, `β`.
pub(super) const ROW: usize = 12;

/// `x[i + a − 1][j + b − 1]` of the plane at `base`, 0 outside it. The index wraps instead of
/// going below 0 (both arms of a select are evaluated), and the select discards it.
#[cube]
pub(super) fn tap<F: Float>(
    x: &Tensor<F>,
    base: usize,
    i: usize,
    j: usize,
    a: usize,
    b: usize,
    height: usize,
    width: usize,
) -> F {
    let inside = i + a >= 1 && i + a <= height && j + b >= 1 && j + b <= width;
    let r = (i + a + height - 1) % height;
    let c = (j + b + width - 1) % width;
    select(inside, x[base + r * width + c], F::new(0.0))
}

/// The depthwise convolution at element `pos`: `bias + Σ w[a][b]·x[i + a − 1][j + b − 1]`, the
/// taps in row-major order.
#[cube]
pub(super) fn condition<F: Float>(
    x: &Tensor<F>,
    parameters: &Tensor<F>,
    pos: usize,
    channels: usize,
    height: usize,
    width: usize,
) -> F {
    let plane = height * width;
    let channel = (pos / plane) % channels;
    let i = (pos / width) % height;
    let j = pos % width;
    let base = pos - i * width - j;
    let row = channel * ROW;
    let mut sum = parameters[row + 9];
    #[unroll]
    for a in 0..3usize {
        #[unroll]
        for b in 0..3usize {
            sum += parameters[row + 3 * a + b] * tap::<F>(x, base, i, j, a, b, height, width);
        }
    }
    sum
}

/// `(x̂, γ·x̂ + β)` of channel `channel`'s convolution output `raw`, with
/// `x̂ = (raw − μ)/√(σ² + ε)`: the normalised convolution and the condition the input is
/// compared with.
#[cube]
pub(super) fn normalised<F: Float>(
    raw: F,
    parameters: &Tensor<F>,
    statistics: &Tensor<F>,
    channel: usize,
    epsilon: f32,
) -> (F, F) {
    let variance = statistics[2 * channel + 1] + F::cast_from(epsilon);
    let n = (raw - statistics[2 * channel]) / F::sqrt(variance);
    (
        n,
        n * parameters[channel * ROW + 10] + parameters[channel * ROW + 11],
    )
}

/// `Σ a` over channel `channel`'s elements (its plane in every sample), or with `centred`
/// `Σ (a − centre)²`, or with `product` `Σ a·b`: in blocks of [`BLOCK`] summed apart, the
/// planes in sample order, so every sum of the kernels has one fixed order.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn channel_sum<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    centre: F,
    samples: usize,
    channels: usize,
    channel: usize,
    plane: usize,
    #[comptime] centred: bool,
    #[comptime] product: bool,
) -> F {
    let zero = F::new(0.0);
    let blocks = plane.div_ceil(BLOCK);
    let mut total = zero;
    for n in 0..samples {
        let start = (n * channels + channel) * plane;
        for block in 0..blocks {
            let from = start + block * BLOCK;
            let to = select(from + BLOCK < start + plane, from + BLOCK, start + plane);
            let mut sum = zero;
            for p in from..to {
                if comptime![centred] {
                    let d = a[p] - centre;
                    sum += d * d;
                } else if comptime![product] {
                    sum += a[p] * b[p];
                } else {
                    sum += a[p];
                }
            }
            total += sum;
        }
    }
    total
}

/// `[N, C, H, W]`.
pub(super) fn dims(input: &CubeTensor) -> (usize, usize, usize, usize) {
    let shape = input.meta.shape();
    assert_eq!(shape.num_dims(), 4, "the spatial max takes [N, C, H, W]");
    (shape[0], shape[1], shape[2], shape[3])
}

/// Launch geometry for one unit per each of `units`.
pub(super) fn geometry(input: &CubeTensor, units: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&input.client, units);
    (
        calculate_cube_count_elemwise(&input.client, units, cube_dim),
        cube_dim,
    )
}
