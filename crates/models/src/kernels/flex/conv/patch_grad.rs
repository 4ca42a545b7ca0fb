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
//! thousands). The rows and channels are padded (zero rows in `col`, zero columns in `dyᵀ`)
//! to whole tiles, so the tiles need no masks.

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
    /// The patch matrix, `rows × positions`; rows past `patch_len` stay zero.
    col: Scratch,
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
        Self {
            patch_len,
            positions,
            out_channels: dims.out_channels,
            rows,
            columns,
            col: zeroed(rows * positions),
            grad_t: zeroed(positions * columns),
            sums_t: zeroed(rows * columns),
        }
    }

    /// The patch matrix for [`im2col`](super::im2col::im2col) to fill: `patch_len ×
    /// positions`.
    pub(super) fn col(&mut self) -> &mut [f32] {
        &mut self.col[..self.patch_len * self.positions]
    }

    /// Adds one sample's `Σ_p col[r, p] · grad[co, p]` (the patch matrix [`col`](Self::col)
    /// holds) to the task's sums; `grad` is `C_out × positions`.
    pub(super) fn add_sample(&mut self, grad: &[f32]) {
        assert_eq!(grad.len(), self.out_channels * self.positions, "patch_grad");
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
        let (positions, columns) = (self.positions, self.columns);
        for first_channel in (0..columns).step_by(CHANNELS) {
            for first_row in (0..self.rows).step_by(ROWS) {
                // SAFETY: the tile reads rows `first_row..+ROWS` of `col` (`rows ×
                // positions`), columns `first_channel..+CHANNELS` of `grad_t` (`positions ×
                // columns`) and writes the same block of `sums_t` (`rows × columns`).
                unsafe {
                    tile(
                        self.col.as_ptr().add(first_row * positions),
                        positions,
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

/// `sums[r, v] += Σ_p col[r, p] · grad_t[p, v]` for a tile of [`ROWS`] × [`CHANNELS`], in
/// registers over the positions, added to memory once.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile(
    col: *const f32,
    positions: usize,
    grad_t: *const f32,
    columns: usize,
    sums: *mut f32,
) {
    let mut acc = [[_mm512_setzero_ps(); VECTORS]; ROWS];
    // SAFETY (all accesses): the caller's tile bounds.
    unsafe {
        for p in 0..positions {
            let mut grad = [_mm512_setzero_ps(); VECTORS];
            for v in 0..VECTORS {
                grad[v] = _mm512_loadu_ps(grad_t.add(p * columns + v * LANES));
            }
            for r in 0..ROWS {
                let value = _mm512_set1_ps(*col.add(r * positions + p));
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
