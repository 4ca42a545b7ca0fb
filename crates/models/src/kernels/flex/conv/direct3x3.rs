//! A direct 3×3 convolution (stride 1, padding 1, output as large as the input) on AVX-512,
//! for the narrow layers where im2col's nine-fold patch copy costs a large share of the GEMM
//! after it (16–64 input channels: the ResNet's three stages).
//!
//! Positions are in the vector lanes, counted over the flattened plane: sixteen consecutive
//! output positions (they may span rows), and each tap `(dr, dc)` reads the input plane
//! shifted by `dr · W + dc` with one masked load. The mask drops the lanes whose tap falls in
//! the padding (a row above or below the plane, a column past either edge — where the flat
//! shift would wrap into the neighbouring row) and the lanes past the plane; masked lanes are
//! neither read nor written, so no padded copy of the input exists.
//!
//! - forward: `out[co, p] = b[co] + Σ_{ci, t} w[co, ci, t] · x[ci, p + offset_t]`, a tile of
//!   output channels × position vectors in registers over all input channels and taps;
//! - input gradient: the same kernel on the output gradient, with the kernel turned around
//!   (tap `t` ↔ `8 − t`, whose offset is `−offset_t`) and its channel axes swapped;
//! - weight gradient: `dw[co, ci, t] = Σ_p dy[co, p] · x[ci, p + offset_t]`, the nine taps of
//!   a few output channels in registers over a sample's positions, added into per-task lane
//!   partials that are summed across the lanes once per task.
//!
//! Sums run in a fixed order (fused multiply-adds, like the GEMM they replace), so results are
//! bit-identical run to run. `ACTIVATIONS_ISA=avx2` (or `baseline`) turns this path off with
//! the activation kernels', and the convolution runs im2col + GEMM.

// The tiles index their register arrays in counted loops over const sizes, which LLVM unrolls
// into registers; iterator adaptors and closures around intrinsics have compiled out of line.
#![allow(clippy::needless_range_loop)]

use super::super::lanes::avx512;
use super::dims::ConvDims;
use super::phases::split_phases;
use std::mem::MaybeUninit;

// The weight gradient's tiles.
pub(in super::super) mod weight_grad;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

const LANES: usize = 16;
const TAPS: usize = 9;

/// The tap masks and offsets of one plane size.
pub(in super::super) struct Direct3x3 {
    positions: usize,
    /// Per vector of positions, per tap: the lanes whose tap reads inside the plane.
    masks: Vec<[u16; TAPS]>,
    /// Per vector: the lanes that are positions of the plane (all but the last vector's tail).
    valid: Vec<u16>,
    /// The vectors in runs, `(end, interior)`: whether the run's vectors touch no image's
    /// first or last row (`weight_grad.rs`).
    runs: Vec<(usize, bool)>,
    /// Per tap: the flat offset of the input it reads (`dr · W + dc`; with stride 2, into the
    /// tap's phase plane, see [`split_phases`](Self::split_phases)).
    offsets: [isize; TAPS],
    /// Stride 2: the input's width (its rows are split into the four phase planes).
    stride2_width: Option<usize>,
}

impl Direct3x3 {
    /// The direct path for `dims`' forward pass, when it applies and the activation kernels
    /// run on AVX-512: a 3×3, padding-1 convolution with at least two input channels and an
    /// output of at least 7×7 (so that few lanes idle), either stride 1 with the output as
    /// large as the input or stride 2 on an even-sized input (through its phase planes).
    pub(in super::super) fn new(dims: &ConvDims) -> Option<Self> {
        Self::build(dims, 1)
    }

    /// The direct path over `images` samples at once, stride 1 only: each channel's planes of
    /// the samples one after the other (`[C, images, H, W]`, see [`stack`](super::stack)), read
    /// as one tall plane whose taps never cross from one image into the next. A 7×7 plane
    /// fills 49 of the 64 lanes of its four vectors; sixteen of them fill 49 vectors.
    pub(in super::super) fn stacked(dims: &ConvDims, images: usize) -> Option<Self> {
        let same_size = dims.window.stride == [1, 1];
        Self::build(dims, images).filter(|_| same_size || images == 1)
    }

    fn build(dims: &ConvDims, images: usize) -> Option<Self> {
        assert!(images >= 1, "direct3x3: at least one image");
        let window = &dims.window;
        let common = window.kernel == [3, 3]
            && window.padding == [1, 1]
            && window.dilation == [1, 1]
            && dims.out_height >= 7
            && dims.out_width >= 7
            && dims.in_channels >= 2
            && avx512();
        let same_size = window.stride == [1, 1]
            && dims.out_height == dims.height
            && dims.out_width == dims.width;
        let halving = window.stride == [2, 2]
            && dims.height == 2 * dims.out_height
            && dims.width == 2 * dims.out_width;
        if !common || !(same_size || halving) {
            return None;
        }
        let (height, width, image) = (dims.out_height, dims.out_width, dims.positions());
        let plane = images * image;
        let phase_len = (dims.in_channels * plane) as isize;
        // Per tap, the phase plane it reads and its shift on the output grid: with stride 2,
        // input row `2r + dr` is row `r` of the even phase (dr = 0) or row `r` (dr = 1) or
        // `r − 1` (dr = −1) of the odd one; columns likewise.
        let taps: [(isize, isize, isize); TAPS] = std::array::from_fn(|tap| {
            let (dr, dc) = (tap as isize / 3 - 1, tap as isize % 3 - 1);
            if same_size {
                return (0, dr, dc);
            }
            let (phase_row, phase_col) = (dr.abs(), dc.abs());
            (2 * phase_row + phase_col, dr.min(0), dc.min(0))
        });
        let offsets = taps.map(|(phase, dr, dc)| phase * phase_len + dr * width as isize + dc);
        let vectors = plane.div_ceil(LANES);
        let lane_mask = |vector: usize, keep: &dyn Fn(usize, usize) -> bool| {
            (0..LANES).fold(0u16, |mask, lane| {
                let position = vector * LANES + lane;
                let in_image = position % image;
                let inside = position < plane && keep(in_image / width, in_image % width);
                mask | (u16::from(inside) << lane)
            })
        };
        let masks: Vec<[u16; TAPS]> = (0..vectors)
            .map(|vector| {
                taps.map(|(_, dr, dc)| {
                    lane_mask(vector, &|row, col| {
                        let (row, col) = (row as isize + dr, col as isize + dc);
                        (0..height as isize).contains(&row) && (0..width as isize).contains(&col)
                    })
                })
            })
            .collect();
        let valid: Vec<u16> = (0..vectors)
            .map(|vector| lane_mask(vector, &|_, _| true))
            .collect();
        let mut runs: Vec<(usize, bool)> = Vec::new();
        for (vector, (masks, &valid)) in masks.iter().zip(&valid).enumerate() {
            let interior = is_interior(masks, valid);
            match runs.last_mut() {
                Some((end, kind)) if *kind == interior => *end = vector + 1,
                _ => runs.push((vector + 1, interior)),
            }
        }
        Some(Self {
            runs,
            positions: plane,
            masks,
            valid,
            offsets,
            stride2_width: halving.then_some(dims.width),
        })
    }

    /// Whether [`forward`](Self::forward) reads a sample's phase planes
    /// ([`split_phases`](Self::split_phases), stride 2) instead of the sample itself.
    pub(in super::super) fn needs_split(&self) -> bool {
        self.stride2_width.is_some()
    }

    /// Stride 2: splits one sample `x` (`C_in × 2H × 2W`) into its four phase planes `[phase,
    /// C_in, H, W]` in `phases` (phase `2 · (row % 2) + column % 2`), which the taps read.
    pub(in super::super) fn split_phases(&self, x: &[f32], phases: &mut [f32]) {
        let width = self
            .stride2_width
            .expect("split_phases: a stride-2 convolution");
        split_phases(x, width, phases);
    }

    /// The shape of a call reading `input_len` values (a sample's planes; with stride 2 split
    /// by [`split_phases`](Self::split_phases)) against `planes_len` values of output (or
    /// output-gradient) planes; checks both lengths and the instruction set.
    fn shape(&self, input_len: usize, planes_len: usize) -> Shape {
        let phases = if self.needs_split() { 4 } else { 1 };
        let in_channels = input_len / (phases * self.positions);
        let out_channels = planes_len / self.positions;
        assert_eq!(
            input_len,
            phases * in_channels * self.positions,
            "direct3x3: input planes (with stride 2, split by split_phases)"
        );
        assert_eq!(
            planes_len,
            out_channels * self.positions,
            "direct3x3: output planes"
        );
        assert!(avx512(), "direct3x3 needs AVX-512");
        Shape {
            plane: self.positions,
            in_channels,
            out_channels,
            offsets: self.offsets,
        }
    }

    /// The kernel `weight` (`[C_out, C_in, 3, 3]`) laid out for [`forward`](Self::forward):
    /// `[tap, C_in, C_out]`.
    pub(in super::super) fn forward_weights(weight: &[f32], out_channels: usize) -> Vec<f32> {
        let in_channels = weight.len() / (out_channels * TAPS);
        lay_out(weight, out_channels, |co, ci, tap| {
            (tap * in_channels + ci) * out_channels + co
        })
    }

    /// The kernel laid out for the input gradient as a forward pass over the output gradient:
    /// the channel axes swapped and the taps turned around, `[tap, C_out, C_in]` with
    /// `[t, co, ci] = weight[co, ci, 8 − t]`.
    pub(in super::super) fn transposed_weights(weight: &[f32], out_channels: usize) -> Vec<f32> {
        let in_channels = weight.len() / (out_channels * TAPS);
        lay_out(weight, out_channels, |co, ci, tap| {
            ((TAPS - 1 - tap) * out_channels + co) * in_channels + ci
        })
    }

    /// One sample: `out` (`C_out` planes) = the convolution of `x` (`C_in` planes) with
    /// `weights` ([`forward_weights`](Self::forward_weights)) plus `bias` (one per output
    /// channel; none: zero). With [`transposed_weights`](Self::transposed_weights), `x` the
    /// output gradient and `out` the input gradient's planes, it is the input gradient.
    pub(in super::super) fn forward(
        &self,
        x: &[f32],
        weights: &[f32],
        bias: Option<&[f32]>,
        out: &mut [MaybeUninit<f32>],
    ) {
        let shape = self.shape(x.len(), out.len());
        let (in_channels, out_channels) = (shape.in_channels, shape.out_channels);
        assert_eq!(weights.len(), TAPS * in_channels * out_channels, "weights");
        assert!(bias.is_none_or(|bias| bias.len() == out_channels), "bias");
        // SAFETY: AVX-512 is present (asserted); every slice's length was checked against the
        // shape the tiles index with.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.forward_tiles(&shape, x, weights, bias, out)
        };
        // `avx512()` is false elsewhere, so the assertion above has stopped the call.
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (shape, x, weights, bias, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_tiles(
        &self,
        shape: &Shape,
        x: &[f32],
        weights: &[f32],
        bias: Option<&[f32]>,
        out: &mut [MaybeUninit<f32>],
    ) {
        let vectors = self.valid.len();
        let mut first_channel = 0;
        while first_channel < shape.out_channels {
            let left = shape.out_channels - first_channel;
            let channels = [8, 4, 2, 1].into_iter().find(|&c| c <= left).unwrap_or(1);
            let mut first_vector = 0;
            while first_vector < vectors {
                let count = (vectors - first_vector).min(3);
                let tile = Tile {
                    first_channel,
                    first_vector,
                };
                // SAFETY: the tile lies inside the shape; AVX-512 is enabled here.
                unsafe {
                    macro_rules! run {
                        ($($c:literal, $v:literal);*) => {
                            match (channels, count) {
                                $(($c, $v) => forward_tile::<$c, $v>(self, shape, &tile, x, weights, bias, out),)*
                                _ => unreachable!("tile sizes"),
                            }
                        };
                    }
                    run!(8, 3; 8, 2; 8, 1; 4, 3; 4, 2; 4, 1; 2, 3; 2, 2; 2, 1; 1, 3; 1, 2; 1, 1);
                }
                first_vector += count;
            }
            first_channel += channels;
        }
    }
}

/// Whether every tap of `masks` (one vector's) has its column's middle-row mask, that one
/// full, and the vector is all positions: the vector touches no image's first or last row, and
/// the weight gradient's tiles load two masks for it instead of nine (`weight_grad.rs`).
fn is_interior(masks: &[u16; TAPS], valid: u16) -> bool {
    valid == u16::MAX && masks[4] == u16::MAX && (0..TAPS).all(|t| masks[t] == masks[3 + t % 3])
}

/// `weight` (`[C_out, C_in, 3, 3]`) with value `[co, ci, tap]` moved to `index(co, ci, tap)`.
fn lay_out(
    weight: &[f32],
    out_channels: usize,
    index: impl Fn(usize, usize, usize) -> usize,
) -> Vec<f32> {
    let in_channels = weight.len() / (out_channels * TAPS);
    let mut laid_out = vec![0.0f32; weight.len()];
    for (co, filters) in weight.chunks_exact(in_channels * TAPS).enumerate() {
        for (ci, taps) in filters.chunks_exact(TAPS).enumerate() {
            for (tap, &value) in taps.iter().enumerate() {
                laid_out[index(co, ci, tap)] = value;
            }
        }
    }
    laid_out
}

/// The sizes a call's tiles index with.
struct Shape {
    plane: usize,
    in_channels: usize,
    out_channels: usize,
    offsets: [isize; TAPS],
}

/// A tile's first output channel and first vector of positions.
struct Tile {
    first_channel: usize,
    first_vector: usize,
}

/// `CHANNELS` output channels × `VECTORS` vectors of positions, all input channels and taps
/// summed in registers, then stored with the bias.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_tile<const CHANNELS: usize, const VECTORS: usize>(
    direct: &Direct3x3,
    shape: &Shape,
    tile: &Tile,
    x: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    out: &mut [MaybeUninit<f32>],
) {
    let (plane, first_position) = (shape.plane, tile.first_vector * LANES);
    let mut sums = [[_mm512_setzero_ps(); VECTORS]; CHANNELS];
    for tap in 0..TAPS {
        let mut masks = [0u16; VECTORS];
        for (v, mask) in masks.iter_mut().enumerate() {
            *mask = direct.masks[tile.first_vector + v][tap];
        }
        // Masked lanes are not read, so the shifted start may lie outside the plane (or `x`).
        let start = x
            .as_ptr()
            .wrapping_add(first_position)
            .wrapping_offset(shape.offsets[tap]);
        let tap_weights = &weights[tap * shape.in_channels * shape.out_channels..];
        for ci in 0..shape.in_channels {
            let source = start.wrapping_add(ci * plane);
            let mut inputs = [_mm512_setzero_ps(); VECTORS];
            for v in 0..VECTORS {
                // SAFETY: every lane in the mask reads inside channel `ci`'s plane.
                inputs[v] =
                    unsafe { _mm512_maskz_loadu_ps(masks[v], source.wrapping_add(v * LANES)) };
            }
            let channel_weights =
                &tap_weights[ci * shape.out_channels + tile.first_channel..][..CHANNELS];
            for c in 0..CHANNELS {
                let weight = _mm512_set1_ps(channel_weights[c]);
                for v in 0..VECTORS {
                    sums[c][v] = _mm512_fmadd_ps(weight, inputs[v], sums[c][v]);
                }
            }
        }
    }
    for c in 0..CHANNELS {
        let channel = tile.first_channel + c;
        let offset = _mm512_set1_ps(bias.map_or(0.0, |bias| bias[channel]));
        let row = &mut out[channel * plane..][..plane];
        for v in 0..VECTORS {
            let vector = tile.first_vector + v;
            // SAFETY: the valid lanes are positions of the plane (`row`).
            unsafe {
                _mm512_mask_storeu_ps(
                    row.as_mut_ptr().cast::<f32>().add(vector * LANES),
                    direct.valid[vector],
                    _mm512_add_ps(sums[c][v], offset),
                );
            }
        }
    }
}
