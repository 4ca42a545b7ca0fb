//! The patch matrix of one sample (im2col) and its adjoint (col2im), for the GEMMs in
//! `conv.rs`.

use super::ConvDims;

/// Fills `col` (`patch_len × positions`) with the patches of one sample `x` (`C_in × H × W`).
pub(super) fn im2col(dims: &ConvDims, x: &[f32], col: &mut [f32]) {
    if dims.is_same_size_unit_stride() {
        return im2col_shifted_planes(dims, x, col);
    }
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(|row, out_row, x_start, cols, step| {
        // Each element written once: padding zeros around the copied run.
        let dst = &mut col[row * positions + out_row * out_width..][..out_width];
        zero_run(&mut dst[..cols.start]);
        zero_run(&mut dst[cols.end.max(cols.start)..]);
        let dst = &mut dst[cols.clone()];
        if step == 1 {
            copy_run(dst, &x[x_start..x_start + dst.len()]);
        } else {
            for (i, value) in dst.iter_mut().enumerate() {
                *value = x[x_start + i * step];
            }
        }
    });
}

/// [`im2col`] for a stride-1, dilation-1 convolution whose output is as wide as its input (a
/// 3×3 kernel with padding 1, say): each row of `col` is then the input plane shifted by the
/// tap's offset, so it is one long copy, with the columns that wrapped around into the
/// neighbouring row and the rows beyond the edges set to zero afterwards. The general path
/// copies each output row separately, a few dozen bytes at a time.
fn im2col_shifted_planes(dims: &ConvDims, x: &[f32], col: &mut [f32]) {
    let (height, width) = (dims.height, dims.width);
    let [kernel_h, kernel_w] = dims.window.kernel;
    let [pad_h, pad_w] = dims.window.padding;
    let plane = height * width;
    let out_rows = dims.out_height;
    for channel in 0..dims.in_channels {
        let x = &x[channel * plane..][..plane];
        for kernel_row in 0..kernel_h {
            for kernel_col in 0..kernel_w {
                let tap = (channel * kernel_h + kernel_row) * kernel_w + kernel_col;
                let dst = &mut col[tap * out_rows * width..][..out_rows * width];
                // Output (r, j) reads input (r + dr, j + dc).
                let dr = kernel_row as isize - pad_h as isize;
                let dc = kernel_col as isize - pad_w as isize;
                let first_row = (-dr).max(0) as usize;
                let end_row = ((height as isize - dr).min(out_rows as isize)).max(0) as usize;
                if first_row >= end_row {
                    dst.fill(0.0);
                    continue;
                }
                dst[..first_row * width].fill(0.0);
                dst[end_row * width..].fill(0.0);
                // One copy over the valid rows, less the wrapped ends of the first and last.
                let start = first_row * width + (-dc).max(0) as usize;
                let end = end_row * width - dc.max(0) as usize;
                let offset = dr * width as isize + dc;
                let source = (start as isize + offset) as usize..(end as isize + offset) as usize;
                dst[start..end].copy_from_slice(&x[source]);
                // The columns that read past a row's edge are padding.
                let (zero_from, zero_to) = if dc > 0 {
                    (width - dc as usize, width)
                } else {
                    (0, (-dc) as usize)
                };
                if zero_from < zero_to {
                    for row in dst[first_row * width..end_row * width].chunks_mut(width) {
                        zero_run(&mut row[zero_from..zero_to]);
                    }
                }
            }
        }
    }
}

/// `dst = src` for the short runs of im2col (a row of a small image, 10–30 elements): in
/// fixed-size pieces, which compile to vector moves, where `copy_from_slice` calls `memcpy`
/// once per run — a million calls per training step of the reference CNN.
#[inline(always)]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    const PIECE: usize = 8;
    let len = dst.len();
    assert_eq!(len, src.len(), "copy_run: lengths");
    if len >= PIECE {
        let mut start = 0;
        while start + PIECE <= len {
            dst[start..start + PIECE].copy_from_slice(&src[start..start + PIECE]);
            start += PIECE;
        }
        if start < len {
            // The last piece overlaps the one before; it writes the same values there.
            dst[len - PIECE..].copy_from_slice(&src[len - PIECE..]);
        }
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
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

/// Adds the patches `col` back into one sample's input gradient `dx` (the adjoint of im2col).
pub(super) fn col2im(dims: &ConvDims, col: &[f32], dx: &mut [f32]) {
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(|row, out_row, x_start, cols, step| {
        if cols.is_empty() {
            return;
        }
        let src = &col[row * positions + out_row * out_width..][cols.clone()];
        if step == 1 {
            for (target, value) in dx[x_start..x_start + src.len()].iter_mut().zip(src) {
                *target += value;
            }
        } else {
            for (i, value) in src.iter().enumerate() {
                dx[x_start + i * step] += value;
            }
        }
    });
}
