//! The patch matrix of one sample (im2col) and its adjoint (col2im), for the GEMMs in
//! `conv.rs`.

use super::super::lanes::avx512;
use super::dims::ConvDims;
use activations::fused::slices::copy_short;

/// Fills `col` (`patch_len × positions`) with the patches of one sample `x` (`C_in × H × W`).
pub(super) fn im2col(dims: &ConvDims, x: &[f32], col: &mut [f32]) {
    if dims.is_same_size_unit_stride() {
        return im2col_shifted_planes(dims, x, col);
    }
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        #[target_feature(enable = "avx512f")]
        fn wide(dims: &ConvDims, x: &[f32], col: &mut [f32]) {
            im2col_runs(dims, x, col, true)
        }
        // SAFETY: the CPU has AVX-512.
        return unsafe { wide(dims, x, col) };
    }
    im2col_runs(dims, x, col, false)
}

/// [`im2col`] run by run (`wide`: stride-2 runs with AVX-512, inlined into a function compiled
/// for it).
#[inline(always)]
fn im2col_runs(dims: &ConvDims, x: &[f32], col: &mut [f32], wide: bool) {
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(
        #[inline(always)]
        |row, out_row, x_start, cols, step| {
            // Each element written once: padding zeros around the copied run.
            let dst = &mut col[row * positions + out_row * out_width..][..out_width];
            zero_run(&mut dst[..cols.start]);
            zero_run(&mut dst[cols.end.max(cols.start)..]);
            let dst = &mut dst[cols.clone()];
            if step == 1 {
                copy_short(dst, &x[x_start..x_start + dst.len()]);
            } else if step == 2 && wide && !dst.is_empty() {
                let source = &x[x_start..x_start + 2 * dst.len() - 1];
                // SAFETY: `wide`: AVX-512 is present.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    even::copy_even(dst, source)
                };
            } else {
                for (i, value) in dst.iter_mut().enumerate() {
                    *value = x[x_start + i * step];
                }
            }
        },
    );
}

/// One tap of a stride-1, dilation-1 convolution whose output is as wide as its input (a 3×3
/// kernel with padding 1, say): its row of the patch matrix is the input plane shifted by the
/// tap's offset. Between `first_row` and `end_row` of the output, element `i` of the row reads
/// input element `i + offset`, except the columns `wrapped` at each row's edge, which reach
/// into the neighbouring row and are padding; so one long copy (or add) over `start..end`
/// moves the whole tap, and the wrapped columns are fixed up afterwards (or zeroed before).
struct ShiftedTap {
    /// The tap's row of the patch matrix.
    row: usize,
    /// Element offset into the input channel's plane.
    channel_start: usize,
    first_row: usize,
    end_row: usize,
    start: usize,
    end: usize,
    offset: isize,
    wrapped: std::ops::Range<usize>,
}

/// Calls `f` for each tap of a [`ConvDims::is_same_size_unit_stride`] convolution.
fn for_each_shifted_tap(dims: &ConvDims, mut f: impl FnMut(&ShiftedTap)) {
    let (height, width) = (dims.height, dims.width);
    let [kernel_h, kernel_w] = dims.window.kernel;
    let [pad_h, pad_w] = dims.window.padding;
    for channel in 0..dims.in_channels {
        for kernel_row in 0..kernel_h {
            for kernel_col in 0..kernel_w {
                // Output (r, j) reads input (r + dr, j + dc).
                let dr = kernel_row as isize - pad_h as isize;
                let dc = kernel_col as isize - pad_w as isize;
                let first_row = (-dr).max(0) as usize;
                let end_row =
                    ((height as isize - dr).min(dims.out_height as isize)).max(0) as usize;
                let first_row = first_row.min(end_row);
                f(&ShiftedTap {
                    row: (channel * kernel_h + kernel_row) * kernel_w + kernel_col,
                    channel_start: channel * height * width,
                    first_row,
                    end_row,
                    // Less the wrapped ends of the first and last rows.
                    start: first_row * width + (-dc).max(0) as usize,
                    end: (end_row * width).saturating_sub(dc.max(0) as usize),
                    offset: dr * width as isize + dc,
                    wrapped: if dc > 0 {
                        width - dc as usize..width
                    } else {
                        0..(-dc) as usize
                    },
                });
            }
        }
    }
}

/// [`im2col`] for a [`ConvDims::is_same_size_unit_stride`] convolution: one long copy per tap
/// ([`ShiftedTap`]) instead of one short copy per output row.
fn im2col_shifted_planes(dims: &ConvDims, x: &[f32], col: &mut [f32]) {
    let (width, positions) = (dims.width, dims.positions());
    let plane = dims.height * width;
    for_each_shifted_tap(dims, |tap| {
        let dst = &mut col[tap.row * positions..][..positions];
        let x = &x[tap.channel_start..][..plane];
        dst[..tap.first_row * width].fill(0.0);
        dst[tap.end_row * width..].fill(0.0);
        if tap.first_row == tap.end_row {
            return;
        }
        let source =
            (tap.start as isize + tap.offset) as usize..(tap.end as isize + tap.offset) as usize;
        dst[tap.start..tap.end].copy_from_slice(&x[source]);
        if !tap.wrapped.is_empty() {
            for row in dst[tap.first_row * width..tap.end_row * width].chunks_mut(width) {
                zero_run(&mut row[tap.wrapped.clone()]);
            }
        }
    });
}

/// [`col2im`] for a [`ConvDims::is_same_size_unit_stride`] convolution: the wrapped columns of
/// `col` (padding) are zeroed, then each tap is one long add.
fn col2im_shifted_planes(dims: &ConvDims, col: &mut [f32], dx: &mut [f32]) {
    let (width, positions) = (dims.width, dims.positions());
    let plane = dims.height * width;
    for_each_shifted_tap(dims, |tap| {
        if tap.first_row == tap.end_row {
            return;
        }
        let src = &mut col[tap.row * positions..][..positions];
        if !tap.wrapped.is_empty() {
            for row in src[tap.first_row * width..tap.end_row * width].chunks_mut(width) {
                zero_run(&mut row[tap.wrapped.clone()]);
            }
        }
        let dx = &mut dx[tap.channel_start..][..plane];
        let target =
            (tap.start as isize + tap.offset) as usize..(tap.end as isize + tap.offset) as usize;
        for (target, value) in dx[target].iter_mut().zip(&src[tap.start..tap.end]) {
            *target += value;
        }
    });
}

/// `dst.fill(0.0)` for the padding at a run's ends (usually none or one element), without a
/// `memset` call.
#[inline(always)]
fn zero_run(dst: &mut [f32]) {
    match dst.len() {
        0 => {}
        1 => dst[0] = 0.0,
        _ => dst.fill(0.0),
    }
}

/// Adds the patches `col` back into one sample's input gradient `dx` (the adjoint of im2col);
/// `col` is scratch afterwards.
pub(super) fn col2im(dims: &ConvDims, col: &mut [f32], dx: &mut [f32]) {
    if dims.is_same_size_unit_stride() {
        return col2im_shifted_planes(dims, col, dx);
    }
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        #[target_feature(enable = "avx512f")]
        fn wide(dims: &ConvDims, col: &[f32], dx: &mut [f32]) {
            col2im_runs(dims, col, dx, true)
        }
        // SAFETY: the CPU has AVX-512.
        return unsafe { wide(dims, col, dx) };
    }
    col2im_runs(dims, col, dx, false)
}

/// [`col2im`] run by run (`wide` as in [`im2col_runs`]).
#[inline(always)]
fn col2im_runs(dims: &ConvDims, col: &[f32], dx: &mut [f32], wide: bool) {
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(
        #[inline(always)]
        |row, out_row, x_start, cols, step| {
            if cols.is_empty() {
                return;
            }
            let src = &col[row * positions + out_row * out_width..][cols.clone()];
            if step == 1 {
                for (target, value) in dx[x_start..x_start + src.len()].iter_mut().zip(src) {
                    *target += value;
                }
            } else if step == 2 && wide {
                let target = &mut dx[x_start..x_start + 2 * src.len() - 1];
                // SAFETY: `wide`: AVX-512 is present.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    even::add_even(target, src)
                };
            } else {
                for (i, value) in src.iter().enumerate() {
                    dx[x_start + i * step] += value;
                }
            }
        },
    );
}

/// Stride-2 runs (the ResNet's stride-2 convolutions) sixteen at a time: the even elements of
/// two vectors picked by one permutation, instead of one scalar load per element.
#[cfg(target_arch = "x86_64")]
mod even {
    use std::arch::x86_64::*;

    /// The lowest `count` lanes (at most 16).
    #[inline(always)]
    fn lanes(count: usize) -> u16 {
        (((1u32 << count.min(16)) - 1) & 0xffff) as u16
    }

    /// `dst[i] = src[2 · i]`; `src` is `2 · dst.len() − 1` long.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn copy_even(dst: &mut [f32], src: &[f32]) {
        assert_eq!(src.len() + 1, 2 * dst.len(), "copy_even: lengths");
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (chunk, dst) in dst.chunks_mut(16).enumerate() {
            let src = &src[32 * chunk..];
            let (low, high) = (lanes(src.len()), lanes(src.len().saturating_sub(16)));
            // SAFETY: the masks keep the loads inside `src` and the store inside `dst`.
            unsafe {
                let low = _mm512_maskz_loadu_ps(low, src.as_ptr());
                let high = _mm512_maskz_loadu_ps(high, src.as_ptr().wrapping_add(16));
                let picked = _mm512_permutex2var_ps(low, even, high);
                _mm512_mask_storeu_ps(dst.as_mut_ptr(), lanes(dst.len()), picked);
            }
        }
    }

    /// `dst[2 · i] += src[i]`; `dst` is `2 · src.len() − 1` long.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn add_even(dst: &mut [f32], src: &[f32]) {
        assert_eq!(dst.len() + 1, 2 * src.len(), "add_even: lengths");
        let spread_low = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        let spread_high =
            _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
        for (chunk, src) in src.chunks(16).enumerate() {
            let dst = &mut dst[32 * chunk..];
            // The even lanes of the targets `dst[..2 · src.len() − 1]` of this chunk.
            let reach = 2 * src.len() - 1;
            let (low, high) = (
                0x5555 & lanes(reach),
                0x5555 & lanes(reach.saturating_sub(16)),
            );
            // SAFETY: the masks keep every access inside `src` and `dst`.
            unsafe {
                let values = _mm512_maskz_loadu_ps(lanes(src.len()), src.as_ptr());
                let target = dst.as_mut_ptr();
                let sum = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(low, target),
                    _mm512_permutexvar_ps(spread_low, values),
                );
                _mm512_mask_storeu_ps(target, low, sum);
                let target = target.wrapping_add(16);
                let sum = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(high, target),
                    _mm512_permutexvar_ps(spread_high, values),
                );
                _mm512_mask_storeu_ps(target, high, sum);
            }
        }
    }
}
