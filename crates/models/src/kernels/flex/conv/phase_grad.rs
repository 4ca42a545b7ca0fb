//! The input gradient of a stride-2 convolution by phases of the input (AVX-512), in place
//! of im2col's GEMM and col2im: the ResNet's stage transitions (3×3, padding 1) and their
//! 1×1 projections.
//!
//! With stride 2, input row `y = 2·i + kr − pad` of output row `i` has the parity of
//! `kr − pad`, so each of the input's four phases (even or odd rows × columns) takes the
//! gradient from its own taps only: `dx[ci, 2m + a, 2n + b] = Σ_taps Σ_co w[co, ci, kr, kc] ·
//! dy[co, m + sr, n + sc]`, where the tap's shift `(sr, sc)` is 0 or 1 for a 3×3 kernel. Each
//! phase is then a product over the output gradient's plane read at the tap's shift (masked
//! where the shift leaves the image), written once, and the four phases are interleaved into
//! `dx`: no patch matrix, no scattered additions, no zero fill. Small planes (7×7) are
//! stacked, sixteen samples a call, as the direct path stacks them (`stack.rs`).

// The tile indexes its register arrays in counted loops over const sizes.
#![allow(clippy::needless_range_loop)]

use super::super::lanes::avx512;
use super::super::parallel::{Scratch, zeroed};
use super::dims::ConvDims;
use super::stack::images_per_plane;
use std::mem::MaybeUninit;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

const LANES: usize = 16;
/// Input channels per tile.
const ROWS: usize = 4;
/// Vectors of positions per tile (fewer at a row's end).
const VECTORS: usize = 4;

/// One tap of a phase: where it reads the output gradient and its weights.
struct Tap {
    /// Index into [`PhaseGrad::shifts`].
    shift: usize,
    /// `w[co, ci, kr, kc]` as `[co][ci]`, the input channels padded to whole tiles.
    weights: Vec<f32>,
}

/// A stride-2 convolution's input gradient by phases, planned once per call.
pub(super) struct PhaseGrad {
    in_channels: usize,
    out_channels: usize,
    /// `in_channels` rounded up to whole tiles.
    rows: usize,
    out_height: usize,
    out_width: usize,
    /// Samples per call, their output planes one after the other.
    images: usize,
    /// The taps of phases (0, 0), (0, 1), (1, 0), (1, 1).
    phases: [Vec<Tap>; 4],
    /// The distinct shifts `(sr, sc)` the taps read at.
    shifts: Vec<(isize, isize)>,
}

impl PhaseGrad {
    /// The plan for `dims` where it applies: AVX-512, stride 2 both ways, no dilation, and an
    /// input twice the output (every phase as large as the output).
    pub(super) fn new(dims: &ConvDims, weight: &[f32]) -> Option<Self> {
        let window = dims.window;
        let applies = avx512()
            && window.stride == [2, 2]
            && window.dilation == [1, 1]
            && dims.height == 2 * dims.out_height
            && dims.width == 2 * dims.out_width
            && dims.out_height * dims.out_width > 0;
        if !applies {
            return None;
        }
        let [kernel_h, kernel_w] = window.kernel;
        let [pad_h, pad_w] = window.padding.map(|pad| pad as isize);
        let (in_channels, out_channels) = (dims.in_channels, dims.out_channels);
        let rows = in_channels.div_ceil(ROWS) * ROWS;
        let mut phases: [Vec<Tap>; 4] = Default::default();
        let mut shifts = Vec::new();
        for kr in 0..kernel_h as isize {
            for kc in 0..kernel_w as isize {
                // Input row 2·m + a meets output row i = m + sr where 2·i + kr − pad = 2·m + a.
                let (a, b) = ((kr - pad_h).rem_euclid(2), (kc - pad_w).rem_euclid(2));
                let shift = ((a + pad_h - kr) / 2, (b + pad_w - kc) / 2);
                let index = shifts.iter().position(|&s| s == shift).unwrap_or_else(|| {
                    shifts.push(shift);
                    shifts.len() - 1
                });
                let mut weights = vec![0.0; out_channels * rows];
                for co in 0..out_channels {
                    for ci in 0..in_channels {
                        let tap = (kr as usize) * kernel_w + kc as usize;
                        weights[co * rows + ci] =
                            weight[(co * in_channels + ci) * kernel_h * kernel_w + tap];
                    }
                }
                phases[(2 * a + b) as usize].push(Tap {
                    shift: index,
                    weights,
                });
            }
        }
        Some(Self {
            in_channels,
            out_channels,
            rows,
            out_height: dims.out_height,
            out_width: dims.out_width,
            images: images_per_plane(dims.positions()),
            phases,
            shifts,
        })
    }

    /// Samples per call ([`input_grads`](Self::input_grads)).
    pub(super) fn images(&self) -> usize {
        self.images
    }

    /// A task's work buffer for the four phases of a call's samples.
    pub(super) fn buffer(&self) -> Scratch {
        zeroed(4 * self.rows * self.padded(self.images))
    }

    /// Positions of `images` samples' planes, rounded up to whole vectors.
    fn padded(&self, images: usize) -> usize {
        (images * self.out_height * self.out_width).div_ceil(LANES) * LANES
    }

    /// The input gradients (`dx`, `[images, C_in, 2·H_out, 2·W_out]`, every element written)
    /// of `images` samples whose output gradients are `grad` (`[C_out, images · H_out ·
    /// W_out]`, stacked as `stack.rs` stacks them); `phases` from [`buffer`](Self::buffer).
    pub(super) fn input_grads(
        &self,
        grad: &[f32],
        images: usize,
        phases: &mut [f32],
        dx: &mut [MaybeUninit<f32>],
    ) {
        let plane = self.out_height * self.out_width;
        let positions = images * plane;
        assert!(images <= self.images, "phase_grad: {images} samples");
        assert_eq!(grad.len(), self.out_channels * positions, "phase_grad: dy");
        assert_eq!(
            dx.len(),
            images * self.in_channels * 4 * plane,
            "phase_grad: dx"
        );
        let stride = self.padded(images);
        let phases = &mut phases[..4 * self.rows * stride];
        #[cfg(target_arch = "x86_64")]
        {
            let masks = self.masks(images);
            for (phase, taps) in self.phases.iter().enumerate() {
                let out = &mut phases[phase * self.rows * stride..][..self.rows * stride];
                // SAFETY: `new` checked AVX-512; `out` holds `rows` rows of `stride`, the
                // tiles read `grad` only in the lanes `masks` keep (positions inside the
                // samples' planes).
                unsafe { self.phase(taps, grad, positions, &masks, out, stride) };
            }
            // SAFETY: as above.
            unsafe { self.interleave(phases, stride, dx) };
        }
    }

    /// Per shift, per vector of the stacked positions: the lanes whose shifted position is
    /// inside the same sample's plane.
    fn masks(&self, images: usize) -> Vec<u16> {
        let (height, width) = (self.out_height as isize, self.out_width as isize);
        let plane = (height * width) as usize;
        let positions = images * plane;
        let vectors = positions.div_ceil(LANES);
        let mut masks = vec![0u16; self.shifts.len() * vectors];
        for (index, &(sr, sc)) in self.shifts.iter().enumerate() {
            for position in 0..positions {
                let within = (position % plane) as isize;
                let (row, col) = (within / width + sr, within % width + sc);
                if (0..height).contains(&row) && (0..width).contains(&col) {
                    masks[index * vectors + position / LANES] |= 1 << (position % LANES);
                }
            }
        }
        masks
    }

    /// One phase: `out[ci, p] = Σ_taps Σ_co weights[co, ci] · grad[co, p + shift]`, tile by
    /// tile.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn phase(
        &self,
        taps: &[Tap],
        grad: &[f32],
        positions: usize,
        masks: &[u16],
        out: &mut [f32],
        stride: usize,
    ) {
        if taps.is_empty() {
            out.fill(0.0);
            return;
        }
        let vectors = positions.div_ceil(LANES);
        let width = self.out_width as isize;
        let reads: Vec<Read> = taps
            .iter()
            .map(|tap| {
                let (sr, sc) = self.shifts[tap.shift];
                Read {
                    offset: sr * width + sc,
                    masks: &masks[tap.shift * vectors..][..vectors],
                    weights: &tap.weights,
                }
            })
            .collect();
        let tile = Tile {
            grad: grad.as_ptr(),
            grad_stride: positions,
            out_channels: self.out_channels,
            rows: self.rows,
        };
        for first_row in (0..self.rows).step_by(ROWS) {
            let mut first_vector = 0;
            while first_vector < vectors {
                // SAFETY: rows `first_row..+ROWS` of `out` (`rows × stride`, `stride ≥
                // vectors · 16`) and the tap's lanes of `grad` the masks keep.
                unsafe {
                    let out = out
                        .as_mut_ptr()
                        .add(first_row * stride + first_vector * LANES);
                    match vectors - first_vector {
                        1 => tile.run::<1>(&reads, first_row, first_vector, out, stride),
                        2 => tile.run::<2>(&reads, first_row, first_vector, out, stride),
                        3 => tile.run::<3>(&reads, first_row, first_vector, out, stride),
                        _ => tile.run::<VECTORS>(&reads, first_row, first_vector, out, stride),
                    }
                }
                first_vector += VECTORS;
            }
        }
    }

    /// `dx[image, ci, 2m + a, 2n + b] = phases[2a + b][ci][image · plane + m · W_out + n]`
    /// (compiled for AVX-512 with the rows' permutations inlined).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn interleave(&self, phases: &[f32], stride: usize, dx: &mut [MaybeUninit<f32>]) {
        let (height, width) = (self.out_height, self.out_width);
        let plane = height * width;
        let phase =
            |index: usize, channel: usize| &phases[(index * self.rows + channel) * stride..];
        for (image, sample) in dx
            .chunks_exact_mut(self.in_channels * 4 * plane)
            .enumerate()
        {
            for (channel, dx) in sample.chunks_exact_mut(4 * plane).enumerate() {
                for (y, dx_row) in dx.chunks_exact_mut(2 * width).enumerate() {
                    let (m, a) = (y / 2, y % 2);
                    let start = image * plane + m * width;
                    let even = &phase(2 * a, channel)[start..][..width];
                    let odd = &phase(2 * a + 1, channel)[start..][..width];
                    interleave_row(even, odd, dx_row);
                }
            }
        }
    }
}

/// `row[2n] = even[n]`, `row[2n + 1] = odd[n]`, sixteen pairs at a time (two permutations
/// of the two rows' vectors, every element of `row` written).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn interleave_row(even: &[f32], odd: &[f32], row: &mut [MaybeUninit<f32>]) {
    assert!(
        even.len() == odd.len() && row.len() == 2 * even.len(),
        "interleave_row"
    );
    let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    let lanes = |count: usize| (((1u32 << count.min(LANES)) - 1) & 0xffff) as u16;
    for (chunk, (even, odd)) in even.chunks(LANES).zip(odd.chunks(LANES)).enumerate() {
        let count = even.len();
        let target = row[2 * chunk * LANES..].as_mut_ptr().cast::<f32>();
        // SAFETY: the masks keep the loads inside `even` and `odd` (`count` values each) and
        // the stores inside `row` (`2 · count` values from `target`).
        unsafe {
            let even = _mm512_maskz_loadu_ps(lanes(count), even.as_ptr());
            let odd = _mm512_maskz_loadu_ps(lanes(count), odd.as_ptr());
            let pairs = _mm512_permutex2var_ps(even, low, odd);
            _mm512_mask_storeu_ps(target, lanes(2 * count), pairs);
            let pairs = _mm512_permutex2var_ps(even, high, odd);
            let rest = (2 * count).saturating_sub(LANES);
            _mm512_mask_storeu_ps(target.wrapping_add(LANES), lanes(rest), pairs);
        }
    }
}

/// One tap's reads for a phase: the shift as an offset in the stacked positions, its lane
/// masks per vector, its weights (`[co][ci]`).
struct Read<'a> {
    offset: isize,
    masks: &'a [u16],
    weights: &'a [f32],
}

/// The operands every tile of a phase shares.
struct Tile {
    grad: *const f32,
    grad_stride: usize,
    out_channels: usize,
    rows: usize,
}

impl Tile {
    /// [`ROWS`] input channels × `V` vectors of positions, summed over the taps and the
    /// output channels in registers, stored once.
    #[cfg(target_arch = "x86_64")]
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn run<const V: usize>(
        &self,
        reads: &[Read],
        first_row: usize,
        first_vector: usize,
        out: *mut f32,
        stride: usize,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; ROWS];
        for read in reads {
            let masks: [u16; V] = std::array::from_fn(|v| read.masks[first_vector + v]);
            let start = (first_vector * LANES) as isize + read.offset;
            let weights = read.weights[first_row..].as_ptr();
            for co in 0..self.out_channels {
                let row = self
                    .grad
                    .wrapping_offset(start + (co * self.grad_stride) as isize);
                // SAFETY: the masks keep the lanes whose positions are inside the plane (the
                // others are neither read nor faulted on); the weights' row has `rows ≥
                // first_row + ROWS` values.
                unsafe {
                    let mut values = [_mm512_setzero_ps(); V];
                    for v in 0..V {
                        values[v] = _mm512_maskz_loadu_ps(masks[v], row.wrapping_add(v * LANES));
                    }
                    for r in 0..ROWS {
                        let weight = _mm512_set1_ps(*weights.add(co * self.rows + r));
                        for v in 0..V {
                            acc[r][v] = _mm512_fmadd_ps(weight, values[v], acc[r][v]);
                        }
                    }
                }
            }
        }
        for r in 0..ROWS {
            for v in 0..V {
                // SAFETY: the caller's tile bounds.
                unsafe { _mm512_storeu_ps(out.add(r * stride + v * LANES), acc[r][v]) };
            }
        }
    }
}
