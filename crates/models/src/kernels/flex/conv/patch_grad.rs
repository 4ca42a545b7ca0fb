//! The im2col path's weight gradient on small planes (7×7 and under), where `gemm` runs at
//! about 75% of the FMA peak: each sample's sum over positions is only 49 long, so `gemm`
//! packs both operands and reads and writes the whole `C_out × patch` gradient for 49
//! multiply-adds per element. This kernel keeps a tile of 6 patch rows × 64 output channels
//! (24 vectors) in registers over a sample's positions and adds it to a task's transposed
//! gradient once: about 98% of the peak alone, on Zen 4.
//!
//! `dwᵀ[r, co] += Σ_p col[r, p] · dy[co, p]`: the patch rows' values are broadcast, the
//! output gradient is read as vectors over the channels, so each sample's `dy` is transposed
//! first (`C_out × positions`, a few thousand values against the patch matrix's tens of
//! thousands). The patch matrix is never built: `col[r, p]` is read from a copy of the sample
//! with the convolution's zero padding around each plane, at `start[r] + offset[p]` (the
//! patch entry's channel and tap, the position's corner), so the copy is the input's size
//! instead of nine times it. The rows and channels are padded to whole tiles (rows that read
//! a zero plane, zero columns in `dyᵀ`), so the tiles need no masks.

// The tile indexes its register arrays in counted loops over const sizes.
#![allow(clippy::needless_range_loop)]

use super::super::lanes::avx512;
use super::super::parallel::{Scratch, zeroed};
use super::dims::ConvDims;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Patch rows per tile.
const ROWS: usize = 6;
/// Vectors of 16 output channels per tile.
const VECTORS: usize = 4;
const LANES: usize = 16;
const CHANNELS: usize = VECTORS * LANES;

/// One task's weight gradient on the small-plane path: its buffers and the transposed sums.
pub(super) struct PatchGrad {
    patch_len: usize,
    positions: usize,
    out_channels: usize,
    /// `patch_len` rounded up to whole tiles.
    rows: usize,
    /// `out_channels` rounded up to whole tiles.
    columns: usize,
    /// The input's planes and padding: `height × width` planes padded by `pad`.
    plane: [usize; 2],
    pad: [usize; 2],
    /// `[C_in + 1, H + 2·pad, W + 2·pad]`: one sample with zeros around each plane, and a
    /// plane of zeros that the padding rows read.
    padded: Scratch,
    /// Per patch row: where its channel and tap start in `padded`.
    starts: Vec<usize>,
    /// Per output position: where its window's corner is in a padded plane.
    offsets: Vec<usize>,
    /// One sample's output gradient transposed, `positions × columns`; columns past
    /// `out_channels` stay zero.
    grad_t: Scratch,
    /// `Σ col · dyᵀ` over the task's samples, `rows × columns`.
    sums_t: Scratch,
}

impl PatchGrad {
    /// The path for `dims` when it applies: AVX-512, and planes of at most 64 positions
    /// (on 14×14 and up `gemm` runs near its best, and the direct path takes most of them).
    pub(super) fn applies(dims: &ConvDims) -> bool {
        avx512() && dims.positions() <= 64
    }

    pub(super) fn new(dims: &ConvDims) -> Self {
        let (patch_len, positions) = (dims.patch_len(), dims.positions());
        let rows = patch_len.div_ceil(ROWS) * ROWS;
        let columns = dims.out_channels.div_ceil(CHANNELS) * CHANNELS;
        let window = dims.window;
        let [pad_h, pad_w] = window.padding;
        let (height, width) = (dims.height + 2 * pad_h, dims.width + 2 * pad_w);
        let padded_plane = height * width;
        let [kernel_h, kernel_w] = window.kernel;
        let [dilation_h, dilation_w] = window.dilation;
        let mut starts = Vec::with_capacity(rows);
        for channel in 0..dims.in_channels {
            for kr in 0..kernel_h {
                for kc in 0..kernel_w {
                    starts.push(channel * padded_plane + kr * dilation_h * width + kc * dilation_w);
                }
            }
        }
        starts.resize(rows, dims.in_channels * padded_plane);
        let [stride_h, stride_w] = window.stride;
        let offsets = (0..dims.out_height)
            .flat_map(|i| (0..dims.out_width).map(move |j| i * stride_h * width + j * stride_w))
            .collect();
        Self {
            patch_len,
            positions,
            out_channels: dims.out_channels,
            rows,
            columns,
            plane: [dims.height, dims.width],
            pad: [pad_h, pad_w],
            padded: zeroed((dims.in_channels + 1) * padded_plane),
            starts,
            offsets,
            grad_t: zeroed(positions * columns),
            sums_t: zeroed(rows * columns),
        }
    }

    /// Adds one sample's `Σ_p col[r, p] · grad[co, p]` to the task's sums, `col` the patches
    /// of `x` (`C_in × H × W`); `grad` is `C_out × positions`.
    pub(super) fn add_sample(&mut self, x: &[f32], grad: &[f32]) {
        assert_eq!(grad.len(), self.out_channels * self.positions, "patch_grad");
        let ([height, width], [pad_h, pad_w]) = (self.plane, self.pad);
        let padded_width = width + 2 * pad_w;
        let padded_plane = (height + 2 * pad_h) * padded_width;
        assert_eq!(x.len() % (height * width).max(1), 0, "patch_grad: x");
        // The interiors only: the padding stays as `zeroed` made it.
        for (channel, plane) in x.chunks_exact(height * width).enumerate() {
            for (row, values) in plane.chunks_exact(width).enumerate() {
                let start = channel * padded_plane + (row + pad_h) * padded_width + pad_w;
                self.padded[start..][..width].copy_from_slice(values);
            }
        }
        // SAFETY: `applies` checked AVX-512; the buffers have the padded sizes `new` gave
        // them, which the loops below stay within.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.transpose(grad);
            self.tiles();
        }
    }

    /// Adds the task's sums to `weight` (`C_out × patch_len`, row-major).
    pub(super) fn add_to(&self, weight: &mut [f32]) {
        assert_eq!(
            weight.len(),
            self.out_channels * self.patch_len,
            "patch_grad"
        );
        for (channel, row) in weight.chunks_exact_mut(self.patch_len).enumerate() {
            for (entry, sum) in row.iter_mut().enumerate() {
                *sum += self.sums_t[entry * self.columns + channel];
            }
        }
    }

    /// `grad_t[p, co] = grad[co, p]`, sixteen channels at a time (a gather per position).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn transpose(&mut self, grad: &[f32]) {
        let positions = self.positions;
        let lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let index = _mm512_mullo_epi32(lane, _mm512_set1_epi32(positions as i32));
        for first in (0..self.out_channels).step_by(LANES) {
            let count = (self.out_channels - first).min(LANES);
            let mask = ((1u32 << count) - 1) as u16;
            // SAFETY: lane `l < count` reads `grad[(first + l) · positions + p]`, inside
            // `grad` (`out_channels × positions`); the store writes `count` values inside
            // row `p` of `grad_t`, whose rows are `columns ≥ out_channels` long.
            unsafe {
                let base = grad.as_ptr().add(first * positions);
                for p in 0..positions {
                    let values = _mm512_mask_i32gather_ps::<4>(
                        _mm512_setzero_ps(),
                        mask,
                        index,
                        base.add(p).cast(),
                    );
                    let target = self.grad_t.as_mut_ptr().add(p * self.columns + first);
                    _mm512_mask_storeu_ps(target, mask, values);
                }
            }
        }
    }

    /// Every tile of the sample: `sums_t[r.., co..] += col[r.., :] · grad_t[:, co..]`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn tiles(&mut self) {
        let columns = self.columns;
        for first_channel in (0..columns).step_by(CHANNELS) {
            for first_row in (0..self.rows).step_by(ROWS) {
                let starts: &[usize; ROWS] = self.starts[first_row..][..ROWS]
                    .try_into()
                    .expect("whole tiles");
                // SAFETY: every `start + offset` is inside `padded` (a window of the padded
                // plane, or the zero plane); the tile reads columns `first_channel..+CHANNELS`
                // of `grad_t` (`positions × columns`) and writes that block of rows
                // `first_row..+ROWS` of `sums_t` (`rows × columns`).
                unsafe {
                    tile(
                        self.padded.as_ptr(),
                        starts,
                        &self.offsets,
                        self.grad_t.as_ptr().add(first_channel),
                        columns,
                        self.sums_t
                            .as_mut_ptr()
                            .add(first_row * columns + first_channel),
                    )
                };
            }
        }
    }
}

/// `sums[r, v] += Σ_p padded[starts[r] + offsets[p]] · grad_t[p, v]` for a tile of
/// [`ROWS`] × [`CHANNELS`], in registers over the positions, added to memory once.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile(
    padded: *const f32,
    starts: &[usize; ROWS],
    offsets: &[usize],
    grad_t: *const f32,
    columns: usize,
    sums: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROWS];
    // SAFETY (all accesses): the caller's tile bounds.
    unsafe {
        for (p, &offset) in offsets.iter().enumerate() {
            let mut grad = [_mm512_setzero_ps(); VECTORS];
            for v in 0..VECTORS {
                grad[v] = _mm512_loadu_ps(grad_t.add(p * columns + v * LANES));
            }
            for r in 0..ROWS {
                let value = _mm512_set1_ps(*padded.add(starts[r] + offset));
                for v in 0..VECTORS {
                    acc[r][v] = _mm512_fmadd_ps(value, grad[v], acc[r][v]);
                }
            }
        }
        for r in 0..ROWS {
            for v in 0..VECTORS {
                let target = sums.add(r * columns + v * LANES);
                _mm512_storeu_ps(target, _mm512_add_ps(_mm512_loadu_ps(target), acc[r][v]));
            }
        }
    }
}
