//! `depthwise3x3.rs`'s convolution, its transpose and its weight sums in AVX-512 registers,
//! straight from the caller's planes: masked loads read the zero border (a lane outside the
//! plane loads 0.0, a row outside it is a vector of zeros), so nothing is padded or laid out
//! wide, and the valid columns are stored with masks. The rows are blocked: each loaded input
//! vector serves the three output rows it is a tap of, where the flat loop loads nine (mostly
//! cache-line splitting) vectors per output vector.
//!
//! The convolution and the transpose add the flat loop's products in its order (a multiply,
//! then an add, border zeros included: no fused multiply-add, no skipped term), so they give
//! its bits; the weight sums have an order of their own, fixed (`depthwise3x3.rs`'s tests
//! compare both).

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Rows per block: seven divides the CNN's 28- and 14-row planes and keeps the nine weights,
/// seven sums and three loaded vectors inside the 32 registers.
const ROWS: usize = 7;
const LANES: usize = 16;

/// The convolution: `out[q][j] = first + Σ kernel[3a + b]·x[q + a − 1][j + b − 1]`, `x` zero
/// outside the plane, for each row `q` and column `j` of `out` (`input`'s shape, `width` values
/// per row), the nine products added in ascending `(a, b)` order. Every element is written.
///
/// # Panics
/// Unless `input` and `out` are one plane of rows `width` long.
#[target_feature(enable = "avx512f")]
pub(super) fn correlate(
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    out: &mut [MaybeUninit<f32>],
) {
    check(input, width, out.len());
    rows::<false, false>(input, width, kernel, first, out.as_mut_ptr().cast());
}

/// The transpose's form: as [`correlate`], the products added in descending `(a, b)` order and
/// the result added to `out`.
///
/// # Panics
/// As [`correlate`].
#[target_feature(enable = "avx512f")]
pub(super) fn correlate_descending_add(
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    out: &mut [f32],
) {
    check(input, width, out.len());
    rows::<true, true>(input, width, kernel, first, out.as_mut_ptr());
}

fn check(input: &[f32], width: usize, len: usize) {
    assert!(width > 0 && input.len() == len && len.is_multiple_of(width));
}

/// The lanes `from..to` (clamped to one vector) of a mask.
fn lanes_mask(from: isize, to: isize) -> __mmask16 {
    let (from, to) = (from.clamp(0, 16), to.clamp(0, 16));
    if from >= to {
        return 0;
    }
    let bits = ((1u32 << (to - from)) - 1) << from;
    bits as __mmask16
}

/// The three column shifts' masks of the vector at `column`: lane `l` of shift `b` reads
/// column `column + l + b − 1`, inside `0..width`.
fn shift_masks(column: usize, width: usize) -> [__mmask16; 3] {
    std::array::from_fn(|b| {
        let start = column as isize + b as isize - 1;
        lanes_mask(-start, width as isize - start)
    })
}

/// Row `row` (of `height`, possibly −1 or `height`) of a plane, shifted `b − 1` columns from
/// `column`, zero outside the plane.
///
/// # Safety
/// AVX-512 is available; `plane` points to `height` rows of `width` values; the masks come
/// from [`shift_masks`].
#[inline(always)]
unsafe fn shifted(
    plane: *const f32,
    row: isize,
    height: usize,
    width: usize,
    column: usize,
    masks: &[__mmask16; 3],
) -> [__m512; 3] {
    if row < 0 || row >= height as isize {
        // SAFETY: the callers run with AVX-512 (this function is inlined into them).
        return [unsafe { _mm512_setzero_ps() }; 3];
    }
    let at = row as usize * width + column;
    // SAFETY: the masked lanes are not read; every other lane is inside the row (the masks), and
    // `wrapping_offset` keeps the address of the lane before the row free of a pointer's bounds.
    std::array::from_fn(|b| unsafe {
        _mm512_maskz_loadu_ps(
            masks[b],
            plane.wrapping_add(at).wrapping_offset(b as isize - 1),
        )
    })
}

/// The row blocks, the products in descending order with `DESCENDING`, added to `to` with `ADD`
/// (whose values must then be initialised) and stored there otherwise.
#[target_feature(enable = "avx512f")]
fn rows<const DESCENDING: bool, const ADD: bool>(
    input: &[f32],
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    to: *mut f32,
) {
    let height = input.len() / width;
    let weights: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(kernel[t]));
    let start = _mm512_set1_ps(first);
    let mut top = 0;
    while top < height {
        let rows = ROWS.min(height - top);
        for column in (0..width).step_by(LANES) {
            let masks = shift_masks(column, width);
            let mut sums = [start; ROWS];
            for step in 0..ROWS + 2 {
                let r = if DESCENDING { ROWS + 1 - step } else { step };
                if r >= rows + 2 {
                    continue;
                }
                let row = (top + r) as isize - 1;
                // SAFETY: `input` is `height` rows of `width` values.
                let taps = unsafe { shifted(input.as_ptr(), row, height, width, column, &masks) };
                for a_step in 0..3 {
                    let a = if DESCENDING { 2 - a_step } else { a_step };
                    // Input row `r` of the block is tap row `a` of output row `r − a`.
                    if r < a || r - a >= rows {
                        continue;
                    }
                    let sum = &mut sums[r - a];
                    for b_step in 0..3 {
                        let b = if DESCENDING { 2 - b_step } else { b_step };
                        let product = _mm512_mul_ps(weights[3 * a + b], taps[b]);
                        *sum = _mm512_add_ps(*sum, product);
                    }
                }
            }
            // The shift-0 mask: the row's valid lanes from `column`.
            let mask = masks[1];
            for (q, &sum) in sums.iter().enumerate().take(rows) {
                // SAFETY: row `top + q < height`, the lanes of `mask` inside the row: inside the
                // caller's plane; the masked lanes are neither read nor written.
                unsafe {
                    let at = to.add((top + q) * width + column);
                    let value = if ADD {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(mask, at), sum)
                    } else {
                        sum
                    };
                    _mm512_mask_storeu_ps(at, mask, value);
                }
            }
        }
        top += rows;
    }
}

/// The nine weight-gradient sums `Σ grad[i][j]·x[i + a − 1][j + b − 1]` over the plane, `x`
/// zero outside it (those terms included, so an infinite or NaN gradient value makes them NaN,
/// as the flat loop's row-by-row sums do): per tap, 16 f32 lanes over a block of rows, each
/// block's lanes added to 16 f64 lanes, those summed in a fixed tree at the end.
///
/// # Panics
/// Unless `x` and `grad` are one plane of rows `width` long.
#[target_feature(enable = "avx512f")]
pub(super) fn weight_sums(x: &[f32], grad: &[f32], width: usize) -> [f64; 9] {
    check(x, width, grad.len());
    let height = x.len() / width;
    let mut totals = [[_mm512_setzero_pd(); 2]; 9];
    let mut top = 0;
    while top < height {
        let rows = ROWS.min(height - top);
        let mut sums = [_mm512_setzero_ps(); 9];
        for column in (0..width).step_by(LANES) {
            // Only the lanes with a gradient: past the row's end, `x`'s next values would meet
            // its zeros (and an infinite one would make a NaN there).
            let valid = shift_masks(column, width)[1];
            let masks = shift_masks(column, width).map(|mask| mask & valid);
            // SAFETY: rows `top..top + rows` of `grad`, the valid lanes of shift 0.
            let grads: [__m512; ROWS] = std::array::from_fn(|q| unsafe {
                if q < rows {
                    let at = grad.as_ptr().add((top + q) * width + column);
                    _mm512_maskz_loadu_ps(masks[1], at)
                } else {
                    _mm512_setzero_ps()
                }
            });
            for r in 0..rows + 2 {
                let row = (top + r) as isize - 1;
                // SAFETY: `x` is `height` rows of `width` values.
                let taps = unsafe { shifted(x.as_ptr(), row, height, width, column, &masks) };
                for a in 0..3 {
                    // Row `r` of `x` meets gradient row `r − a` at tap row `a`.
                    if r < a || r - a >= rows {
                        continue;
                    }
                    for b in 0..3 {
                        let product = _mm512_mul_ps(grads[r - a], taps[b]);
                        sums[3 * a + b] = _mm512_add_ps(sums[3 * a + b], product);
                    }
                }
            }
        }
        for (total, &sum) in totals.iter_mut().zip(&sums) {
            let low = _mm512_cvtps_pd(_mm512_castps512_ps256(sum));
            let high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(
                _mm512_castps_pd(sum),
                1,
            )));
            total[0] = _mm512_add_pd(total[0], low);
            total[1] = _mm512_add_pd(total[1], high);
        }
        top += rows;
    }
    totals.map(|[low, high]| _mm512_reduce_add_pd(_mm512_add_pd(low, high)))
}
