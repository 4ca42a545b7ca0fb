//! Max-pooling in one pass; its backward finds each window's maximum again in the saved input
//! (PyTorch's NaN rule) instead of keeping an index tensor, with an AVX2 path for 2×2 windows.
use super::super::ops::Window2d;
use super::lanes::{mask, select};
use super::parallel::{filled_vec, items_per_task};
use super::pool_rows::{WinnerScratch, max_row};
use activations::burn::tensor::Shape;
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The sizes of one max-pooling.
#[derive(Clone, Copy, Debug)]
pub(super) struct PoolDims {
    planes: usize,
    height: usize,
    width: usize,
    pub(super) out_height: usize,
    pub(super) out_width: usize,
    window: Window2d,
}

impl PoolDims {
    pub(super) fn new(x: &Shape, window: Window2d) -> Self {
        assert_eq!(x.num_dims(), 4, "max_pool2d input is [N, C, H, W]");
        Self {
            planes: x[0] * x[1],
            height: x[2],
            width: x[3],
            out_height: window.output_size(0, x[2]).expect("window fits"),
            out_width: window.output_size(1, x[3]).expect("window fits"),
            window,
        }
    }

    /// Whether the window is 2×2 with stride 2 and nothing else: the common case, with its
    /// own branch-free loop.
    fn is_plain_2x2(&self) -> bool {
        self.window
            == Window2d {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                dilation: [1, 1],
            }
    }

    /// The index in the plane of the maximum of output `(out_row, out_col)`'s window, PyTorch's
    /// rule: a later element replaces the current one when it is greater or NaN; padding is
    /// never chosen (each window holds at least one input element when padding ≤ kernel / 2).
    fn argmax(&self, plane: &[f32], out_row: usize, out_col: usize) -> usize {
        let Window2d {
            kernel,
            stride,
            padding,
            dilation,
        } = self.window;
        let mut best = f32::NEG_INFINITY;
        let mut best_index = usize::MAX;
        for kernel_row in 0..kernel[0] {
            let row =
                (out_row * stride[0] + kernel_row * dilation[0]) as isize - padding[0] as isize;
            if row < 0 || row as usize >= self.height {
                continue;
            }
            for kernel_col in 0..kernel[1] {
                let col =
                    (out_col * stride[1] + kernel_col * dilation[1]) as isize - padding[1] as isize;
                if col < 0 || col as usize >= self.width {
                    continue;
                }
                let index = row as usize * self.width + col as usize;
                let value = plane[index];
                if best_index == usize::MAX || value > best || value.is_nan() {
                    best = value;
                    best_index = index;
                }
            }
        }
        best_index
    }
}

/// `grad` routed to the maximum of `[top_left, top_right, bottom_left, bottom_right]` by
/// [`max_nan`](super::lanes::max_nan)'s rule (scanning in that order), zero elsewhere (even when `grad` is NaN).
#[inline(always)]
fn route_2x2(values: [f32; 4], grad: f32) -> [f32; 4] {
    let [a, b, c, d] = values;
    let takes_b = mask((b > a) | b.is_nan());
    let best = select(takes_b, b, a);
    let takes_c = mask((c > best) | c.is_nan());
    let best = select(takes_c, c, best);
    let takes_d = mask((d > best) | d.is_nan());
    let wins_c = takes_c & !takes_d;
    let wins_b = takes_b & !takes_c & !takes_d;
    let wins_a = !takes_b & !takes_c & !takes_d;
    let routed = |wins: u32| select(wins, grad, 0.0);
    [
        routed(wins_a),
        routed(wins_b),
        routed(wins_c),
        routed(takes_d),
    ]
}

/// Plain 2×2 pooling of whole planes, row by row through the shared row kernels.
fn pool_planes_2x2(dims: &PoolDims, x: &[f32], output: &mut [MaybeUninit<f32>]) {
    let (plane_len, out_len, out_width) = (
        dims.height * dims.width,
        dims.out_height * dims.out_width,
        dims.out_width,
    );
    let mut scratch = WinnerScratch::new(out_width);
    for (out, plane) in output.chunks_mut(out_len).zip(x.chunks(plane_len)) {
        for (out_row, out) in out.chunks_mut(out_width).enumerate() {
            let top = &plane[2 * out_row * dims.width..];
            let bottom = &plane[(2 * out_row + 1) * dims.width..];
            max_row(scratch.as_mut(), top, bottom, out);
        }
    }
}

/// The input gradient of one pair of rows under 2×2 windows: `grad[w]` goes to the maximum of
/// window `w` (`x_top[2w..2w+2]`, `x_bottom[2w..2w+2]`), zero to the others. With AVX2 when
/// `vector` (and the CPU has it), else scalar.
fn unpool_rows_2x2(
    vector: bool,
    x_top: &[f32],
    x_bottom: &[f32],
    grad: &[f32],
    dx_top: &mut [MaybeUninit<f32>],
    dx_bottom: &mut [MaybeUninit<f32>],
) {
    let windows = grad.len();
    assert!(x_top.len() >= 2 * windows && x_bottom.len() >= 2 * windows);
    assert!(dx_top.len() >= 2 * windows && dx_bottom.len() >= 2 * windows);
    #[cfg(target_arch = "x86_64")]
    if vector && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, and the lengths were checked above.
        return unsafe { unpool_rows_2x2_avx2(x_top, x_bottom, grad, dx_top, dx_bottom) };
    }
    let _ = vector;
    for (w, &g) in grad.iter().enumerate() {
        let (left, right) = (2 * w, 2 * w + 1);
        let routed = route_2x2(
            [x_top[left], x_top[right], x_bottom[left], x_bottom[right]],
            g,
        );
        dx_top[left].write(routed[0]);
        dx_top[right].write(routed[1]);
        dx_bottom[left].write(routed[2]);
        dx_bottom[right].write(routed[3]);
    }
}

/// [`unpool_rows_2x2`] eight windows at a time; the last few go through a padded copy (AMD's
/// masked stores are microcoded). LLVM does not vectorise the stride-2 loads and stores with
/// the select chain, and the scalar loop mispredicts on every random window, so this one is
/// written out.
///
/// # Safety
/// The CPU has AVX2; `x_*` and `dx_*` hold at least `2 · grad.len()` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpool_rows_2x2_avx2(
    x_top: &[f32],
    x_bottom: &[f32],
    grad: &[f32],
    dx_top: &mut [MaybeUninit<f32>],
    dx_bottom: &mut [MaybeUninit<f32>],
) {
    let windows = grad.len();
    let full = windows / 8 * 8;
    for w in (0..full).step_by(8) {
        // SAFETY: elements 2w..2w + 16 of each row and w..w + 8 of `grad` are in bounds.
        unsafe {
            unpool_block_2x2_avx2(
                x_top.as_ptr().add(2 * w),
                x_bottom.as_ptr().add(2 * w),
                grad.as_ptr().add(w),
                dx_top.as_mut_ptr().add(2 * w).cast(),
                dx_bottom.as_mut_ptr().add(2 * w).cast(),
            )
        };
    }
    let tail = windows - full;
    if tail > 0 {
        let pad = |source: &[f32]| {
            let mut padded = [0.0f32; 16];
            padded[..source.len()].copy_from_slice(source);
            padded
        };
        let (top, bottom) = (
            pad(&x_top[2 * full..2 * windows]),
            pad(&x_bottom[2 * full..2 * windows]),
        );
        let g = pad(&grad[full..]);
        let (mut out_top, mut out_bottom) = ([0.0f32; 16], [0.0f32; 16]);
        // SAFETY: the padded copies hold 16 row elements and 8 gradients each.
        unsafe {
            unpool_block_2x2_avx2(
                top.as_ptr(),
                bottom.as_ptr(),
                g.as_ptr(),
                out_top.as_mut_ptr(),
                out_bottom.as_mut_ptr(),
            )
        };
        for (dx, out) in [(dx_top, out_top), (dx_bottom, out_bottom)] {
            for (target, &value) in dx[2 * full..2 * windows].iter_mut().zip(&out) {
                target.write(value);
            }
        }
    }
}

/// Eight 2×2 windows: 16 elements of each row and 8 gradients in, 16 gradients of each row
/// out.
///
/// # Safety
/// The CPU has AVX2; the pointers have those many elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn unpool_block_2x2_avx2(
    x_top: *const f32,
    x_bottom: *const f32,
    grad: *const f32,
    dx_top: *mut f32,
    dx_bottom: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller's bounds.
    unsafe {
        // Even and odd elements of 16, as windows in the order 0 1 4 5 2 3 6 7 (the in-lane
        // shuffle's order; the gradient is permuted to match, and unpacking restores the row
        // order on the way out).
        let split = |row: *const f32| {
            let (low, high) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
            (
                _mm256_shuffle_ps::<0b10_00_10_00>(low, high),
                _mm256_shuffle_ps::<0b11_01_11_01>(low, high),
            )
        };
        let (a, b) = split(x_top);
        let (c, d) = split(x_bottom);
        let g = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            _mm256_loadu_ps(grad),
        )));
        // PyTorch's rule: a later element wins when greater or NaN.
        let wins = |candidate, best| {
            _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(candidate, best),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(candidate, candidate),
            )
        };
        let takes_b = wins(b, a);
        let best = _mm256_blendv_ps(a, b, takes_b);
        let takes_c = wins(c, best);
        let best = _mm256_blendv_ps(best, c, takes_c);
        let takes_d = wins(d, best);
        let later = _mm256_or_ps(takes_c, takes_d);
        let to_a = _mm256_andnot_ps(_mm256_or_ps(takes_b, later), g);
        let to_b = _mm256_and_ps(_mm256_andnot_ps(later, takes_b), g);
        let to_c = _mm256_and_ps(_mm256_andnot_ps(takes_d, takes_c), g);
        let to_d = _mm256_and_ps(takes_d, g);
        _mm256_storeu_ps(dx_top, _mm256_unpacklo_ps(to_a, to_b));
        _mm256_storeu_ps(dx_top.add(8), _mm256_unpackhi_ps(to_a, to_b));
        _mm256_storeu_ps(dx_bottom, _mm256_unpacklo_ps(to_c, to_d));
        _mm256_storeu_ps(dx_bottom.add(8), _mm256_unpackhi_ps(to_c, to_d));
    }
}

fn unpool_planes_2x2(dims: &PoolDims, x: &[f32], grad: &[f32], dx: &mut [MaybeUninit<f32>]) {
    let (width, out_width) = (dims.width, dims.out_width);
    // AVX-512 where the CPU has it (the winners found again in 16-window blocks), else AVX2.
    let mut scratch = WinnerScratch::new(out_width);
    let (plane_len, out_len) = (dims.height * width, dims.out_height * out_width);
    let zero = |values: &mut [MaybeUninit<f32>]| {
        for value in values {
            value.write(0.0);
        }
    };
    for ((dx, plane), grad) in dx
        .chunks_mut(plane_len)
        .zip(x.chunks(plane_len))
        .zip(grad.chunks(out_len))
    {
        let (pooled_rows, rest) = dx.split_at_mut(2 * dims.out_height * width);
        // Rows and columns past the last whole window get no gradient.
        zero(rest);
        for ((dx, x), grad) in pooled_rows
            .chunks_mut(2 * width)
            .zip(plane.chunks(2 * width))
            .zip(grad.chunks(out_width))
        {
            let (dx_top, dx_bottom) = dx.split_at_mut(width);
            let (x_top, x_bottom) = x.split_at(width);
            zero(&mut dx_top[2 * out_width..]);
            zero(&mut dx_bottom[2 * out_width..]);
            match scratch.as_mut() {
                Some(scratch) => scratch.unpool([x_top, x_bottom], grad, dx_top, dx_bottom),
                None => unpool_rows_2x2(true, x_top, x_bottom, grad, dx_top, dx_bottom),
            }
        }
    }
}

pub(super) fn max_pool_forward(dims: &PoolDims, x: &[f32]) -> Vec<f32> {
    let (plane_len, out_len) = (dims.height * dims.width, dims.out_height * dims.out_width);
    let planes = items_per_task(dims.planes);
    filled_vec(dims.planes * out_len, |output| {
        output
            .par_chunks_mut(planes * out_len)
            .zip(x.par_chunks(planes * plane_len))
            .for_each(|(output, x)| {
                if dims.is_plain_2x2() {
                    return pool_planes_2x2(dims, x, output);
                }
                for (out, plane) in output.chunks_mut(out_len).zip(x.chunks(plane_len)) {
                    for (index, out) in out.iter_mut().enumerate() {
                        let (row, col) = (index / dims.out_width, index % dims.out_width);
                        out.write(plane[dims.argmax(plane, row, col)]);
                    }
                }
            })
    })
}

pub(super) fn max_pool_backward(dims: &PoolDims, x: &[f32], output_grad: &[f32]) -> Vec<f32> {
    let (plane_len, out_len) = (dims.height * dims.width, dims.out_height * dims.out_width);
    let planes = items_per_task(dims.planes);
    if dims.is_plain_2x2() {
        // Windows do not overlap: each input element is written once, with its window's
        // gradient or zero.
        return filled_vec(dims.planes * plane_len, |dx| {
            dx.par_chunks_mut(planes * plane_len)
                .zip(x.par_chunks(planes * plane_len))
                .zip(output_grad.par_chunks(planes * out_len))
                .for_each(|((dx, x), grad)| unpool_planes_2x2(dims, x, grad, dx))
        });
    }
    // Windows may overlap: accumulate.
    let mut dx = vec![0.0f32; dims.planes * plane_len];
    dx.par_chunks_mut(planes * plane_len)
        .zip(x.par_chunks(planes * plane_len))
        .zip(output_grad.par_chunks(planes * out_len))
        .for_each(|((dx, x), grad)| {
            for ((dx, plane), grad) in dx
                .chunks_mut(plane_len)
                .zip(x.chunks(plane_len))
                .zip(grad.chunks(out_len))
            {
                for (index, &g) in grad.iter().enumerate() {
                    let (row, col) = (index / dims.out_width, index % dims.out_width);
                    dx[dims.argmax(plane, row, col)] += g;
                }
            }
        });
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 path (full blocks and masked tails) against the scalar one, with ties, NaNs
    /// and infinities among random values, and a NaN and an infinite gradient.
    #[test]
    fn vector_and_scalar_unpooling_agree() {
        let mut row = super::super::pool_rows::special_rows(12345);
        for windows in [1, 3, 7, 8, 9, 14, 16, 21] {
            for _ in 0..20 {
                let (x_top, x_bottom, grad) = (row(2 * windows), row(2 * windows), row(windows));
                let run = |vector: bool| {
                    let mut top = vec![MaybeUninit::new(-7.0f32); 2 * windows];
                    let mut bottom = vec![MaybeUninit::new(-7.0f32); 2 * windows];
                    unpool_rows_2x2(vector, &x_top, &x_bottom, &grad, &mut top, &mut bottom);
                    let read = |v: Vec<MaybeUninit<f32>>| -> Vec<u32> {
                        v.into_iter()
                            .map(|e| unsafe { e.assume_init() }.to_bits())
                            .collect()
                    };
                    (read(top), read(bottom))
                };
                let scalar = run(false);
                assert_eq!(
                    run(true),
                    scalar,
                    "{windows} windows: {x_top:?} {x_bottom:?} {grad:?}"
                );
                // Each window routes its gradient to exactly one of its four elements.
                for (w, &g) in grad.iter().enumerate() {
                    let routed = [
                        scalar.0[2 * w],
                        scalar.0[2 * w + 1],
                        scalar.1[2 * w],
                        scalar.1[2 * w + 1],
                    ];
                    let to_grad = routed.iter().filter(|&&bits| bits == g.to_bits()).count();
                    let zeros = routed.iter().filter(|&&bits| bits == 0).count();
                    assert!(
                        to_grad >= 1 && zeros >= 3,
                        "window {w}: {routed:?} for {}",
                        grad[w]
                    );
                }
            }
        }
    }
}
