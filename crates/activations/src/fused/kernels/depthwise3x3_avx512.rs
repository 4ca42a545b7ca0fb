//! The 3×3 correlation at the heart of `depthwise3x3.rs`'s convolution and its transpose, in
//! AVX-512 registers blocked over rows: each loaded input vector serves the three output rows
//! it is a tap of, where the flat loop of `depthwise3x3.rs` loads nine (mostly cache-line
//! splitting) vectors per output vector. Every output adds the same products in the same order
//! as the flat loop (a multiply, then an add: no fused multiply-add), so both give the same
//! bits; `depthwise3x3.rs`'s tests compare them. Valid columns only, with masked loads and
//! stores, straight into the caller's plane: no wide plane to copy out of.

use std::arch::x86_64::*;
use std::mem::MaybeUninit;

/// Output rows per block: seven divides the CNN's 28- and 14-row planes and keeps the nine
/// weights, seven sums and three loaded vectors inside the 32 registers.
const ROWS: usize = 7;
const LANES: usize = 16;

/// The convolution: `out[q][j] = first + Σ kernel[3a + b]·input[(q + a)·stride + j + b]` for
/// each row `q` of `out` (`width` values per row) and column `j < width`, the nine products
/// added in ascending `(a, b)` order. Every element of `out` is written.
///
/// # Panics
/// Unless `input` holds `(height + 2)·stride + 2` values, `stride ≥ width + 2` and `out` is
/// `height × width`.
#[target_feature(enable = "avx512f")]
pub(super) fn correlate(
    input: &[f32],
    stride: usize,
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    out: &mut [MaybeUninit<f32>],
) {
    check(input, stride, width, out.len());
    rows::<false, false>(
        input,
        stride,
        width,
        kernel,
        first,
        out.as_mut_ptr().cast(),
        out.len(),
    );
}

/// The transpose's form: as [`correlate`], the products added in descending `(a, b)` order,
/// the result added to `out`.
///
/// # Panics
/// As [`correlate`].
#[target_feature(enable = "avx512f")]
pub(super) fn correlate_descending_add(
    input: &[f32],
    stride: usize,
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    out: &mut [f32],
) {
    check(input, stride, width, out.len());
    rows::<true, true>(
        input,
        stride,
        width,
        kernel,
        first,
        out.as_mut_ptr(),
        out.len(),
    );
}

fn check(input: &[f32], stride: usize, width: usize, len: usize) {
    assert!(width > 0 && stride >= width + 2 && len.is_multiple_of(width));
    assert!(input.len() >= (len / width + 2) * stride + 2);
}

/// The row blocks, the products in descending order with `DESCENDING`, added to `to` with `ADD`
/// (whose `len` values must then be initialised) and stored there otherwise.
#[target_feature(enable = "avx512f")]
fn rows<const DESCENDING: bool, const ADD: bool>(
    input: &[f32],
    stride: usize,
    width: usize,
    kernel: &[f32; 9],
    first: f32,
    to: *mut f32,
    len: usize,
) {
    let height = len / width;
    let weights: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(kernel[t]));
    let start = _mm512_set1_ps(first);
    let from = input.as_ptr();
    let mut top = 0;
    while top < height {
        let rows = ROWS.min(height - top);
        for column in (0..width).step_by(LANES) {
            let valid = (width - column).min(LANES);
            let mask: __mmask16 = if valid == LANES { !0 } else { (1 << valid) - 1 };
            let mut sums = [start; ROWS];
            for step in 0..ROWS + 2 {
                let r = if DESCENDING { ROWS + 1 - step } else { step };
                if r >= rows + 2 {
                    continue;
                }
                // SAFETY: row `top + r ≤ height + 1`, columns up to `column + 17 < stride + 16`,
                // so the last lane read is below `(height + 2)·stride + 2 ≤ input.len()`.
                let taps = unsafe {
                    let at = from.add((top + r) * stride + column);
                    [
                        _mm512_loadu_ps(at),
                        _mm512_loadu_ps(at.add(1)),
                        _mm512_loadu_ps(at.add(2)),
                    ]
                };
                for a_step in 0..3 {
                    let a = if DESCENDING { 2 - a_step } else { a_step };
                    // Input row `r` is tap row `a` of output row `r − a`.
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
            for (q, &sum) in sums.iter().enumerate().take(rows) {
                // SAFETY: row `top + q < height`, lanes `column..column + valid ≤ width`: inside
                // the caller's `len` values; the masked lanes are neither read nor written.
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
