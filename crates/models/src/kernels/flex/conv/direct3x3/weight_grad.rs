//! The direct path's weight gradient: `dw[co, ci, t] = Σ_p dy[co, p] · x[ci, p + offset_t]`,
//! the nine taps of a few output channels in registers over the samples' positions, added
//! into per-task lane partials that [`lane_totals`] sums across the lanes once per task.
//!
//! Each vector of positions reads the input nine times, shifted by the taps' offsets. Where a
//! vector touches no image's first or last row (an *interior* vector, most of a 14×14 or
//! 28×28 plane), the three taps of each column share one mask and the middle column needs
//! none, so it loads two masks instead of nine: on Zen 4 a mask load per tap held the tile
//! to about 80% of the FMA peak, the interior path runs at about 92%. Both paths add the
//! same products in the same order, so the bits do not depend on which one ran.

// The tiles index their register arrays in counted loops over const sizes, as the forward's.
#![allow(clippy::needless_range_loop)]

use super::super::dims::ConvDims;
use super::{Direct3x3, LANES, Shape, TAPS};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

impl Direct3x3 {
    /// Whether [`weight_grad`](Self::weight_grad) should sum `dims`' weight gradient one
    /// sample group at a time (outputs of at least 14×14). On smaller ones a sample's sum is
    /// too short for its lane partials (`C_out · C_in · 9` vectors added to memory per
    /// sample) and its last vector mostly idle; im2col + GEMM does it better (also than the
    /// stacked planes of `stack.rs`: most of their vectors touch an image's edge row).
    pub(in crate::kernels::flex) fn sums_weight_grad(dims: &ConvDims) -> bool {
        dims.out_height >= 14 && dims.out_width >= 14
    }

    /// Lane partials of a few samples' weight gradient: adds `Σ_p dy[co, p] · x[ci, p +
    /// offset_t]` over `samples` (`(x, dy)` pairs; with stride 2, `x` split by
    /// `split_phases`) lane by lane into `partials` (`[C_out, C_in, tap, 16]`);
    /// [`lane_totals`] sums them. Each tile sums all the samples in registers before it adds
    /// to `partials`, so a few samples per call keep that addition rare.
    pub(in crate::kernels::flex) fn weight_grad(
        &self,
        samples: &[(&[f32], &[f32])],
        partials: &mut [f32],
    ) {
        let Some(&(x, dy)) = samples.first() else {
            return;
        };
        let shape = self.shape(x.len(), dy.len());
        for &(x, dy) in &samples[1..] {
            let other = self.shape(x.len(), dy.len());
            assert_eq!(
                (other.in_channels, other.out_channels),
                (shape.in_channels, shape.out_channels),
                "direct3x3: samples of one shape"
            );
        }
        let weights = shape.out_channels * shape.in_channels * TAPS;
        assert_eq!(partials.len(), weights * LANES, "partials");
        // SAFETY: AVX-512 is present (`shape` asserts it); every slice's length was checked
        // against the shape the tiles index with.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            self.weight_grad_tiles(&shape, samples, partials)
        };
        // `avx512()` is false elsewhere, so `shape` has stopped the call.
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (shape, samples, partials);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn weight_grad_tiles(
        &self,
        shape: &Shape,
        samples: &[(&[f32], &[f32])],
        partials: &mut [f32],
    ) {
        // Output channels outermost: a tile's gradient planes (its three channels of every
        // sample) stay in L1 while the input channels stream past them, a third of the traffic
        // the other order has.
        let mut first_channel = 0;
        while first_channel < shape.out_channels {
            // Three channels a tile (27 sums in registers); four left go as two and two, as
            // a one-channel tile does a third of the multiply-adds per load.
            let channels = match shape.out_channels - first_channel {
                4 => 2,
                left => left.min(3),
            };
            for ci in 0..shape.in_channels {
                let tile = WeightTile {
                    ci,
                    first_channel,
                    samples,
                };
                // SAFETY: the channels lie inside the shape; AVX-512 is enabled here.
                unsafe {
                    match channels {
                        3 => weight_grad_tile::<3>(self, shape, &tile, partials),
                        2 => weight_grad_tile::<2>(self, shape, &tile, partials),
                        _ => weight_grad_tile::<1>(self, shape, &tile, partials),
                    }
                }
            }
            first_channel += channels;
        }
    }
}

/// Adds each group of 16 lane partials ([`Direct3x3::weight_grad`]) into one value of `sums`,
/// in a fixed order.
pub(in crate::kernels::flex) fn lane_totals(partials: &[f32], sums: &mut [f32]) {
    assert_eq!(
        partials.len(),
        sums.len() * LANES,
        "one group of lanes per sum"
    );
    for (sum, lanes) in sums.iter_mut().zip(partials.chunks_exact(LANES)) {
        let mut halves = [0.0f32; LANES / 2];
        for (half, pair) in halves.iter_mut().zip(lanes.chunks_exact(2)) {
            *half = pair[0] + pair[1];
        }
        *sum += halves.iter().sum::<f32>();
    }
}

/// One weight-gradient tile: input channel `ci` against the output channels from
/// `first_channel`, over `samples`.
struct WeightTile<'a, 's> {
    ci: usize,
    first_channel: usize,
    samples: &'a [(&'s [f32], &'s [f32])],
}

/// The nine taps' lane sums of `CHANNELS` output channels against the tile's input channel
/// over the samples' positions, added into `partials`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn weight_grad_tile<const CHANNELS: usize>(
    direct: &Direct3x3,
    shape: &Shape,
    tile: &WeightTile,
    partials: &mut [f32],
) {
    let plane = shape.plane;
    let mut sums = [[_mm512_setzero_ps(); TAPS]; CHANNELS];
    for &(x, dy) in tile.samples {
        // From the sample's start: with stride 2 the taps reach into the other phase planes.
        let input = x.as_ptr().wrapping_add(tile.ci * plane);
        let grads = &dy[tile.first_channel * plane..][..CHANNELS * plane];
        let mut first = 0;
        for &(end, interior) in &direct.runs {
            // `interior` is the same over the run: the branches below stay out of its loop.
            for vector in first..end {
                let position = vector * LANES;
                let masks = &direct.masks[vector];
                let mut grad = [_mm512_setzero_ps(); CHANNELS];
                for (c, grad) in grad.iter_mut().enumerate() {
                    let source = grads.as_ptr().wrapping_add(c * plane + position);
                    // SAFETY: the valid lanes are positions of the plane (an interior
                    // vector's are all of them).
                    *grad = unsafe {
                        if interior {
                            _mm512_loadu_ps(source)
                        } else {
                            _mm512_maskz_loadu_ps(direct.valid[vector], source)
                        }
                    };
                }
                for tap in 0..TAPS {
                    let source = input
                        .wrapping_add(position)
                        .wrapping_offset(shape.offsets[tap]);
                    // SAFETY: every lane in the tap's mask reads inside the plane; in an
                    // interior vector the tap's column's middle-row mask is the tap's mask,
                    // and the middle column's is full.
                    let shifted = unsafe {
                        match (interior, tap % 3) {
                            (false, _) => _mm512_maskz_loadu_ps(masks[tap], source),
                            (true, 1) => _mm512_loadu_ps(source),
                            (true, column) => _mm512_maskz_loadu_ps(masks[3 + column], source),
                        }
                    };
                    for c in 0..CHANNELS {
                        sums[c][tap] = _mm512_fmadd_ps(grad[c], shifted, sums[c][tap]);
                    }
                }
            }
            first = end;
        }
    }
    for c in 0..CHANNELS {
        let co = tile.first_channel + c;
        let row =
            &mut partials[(co * shape.in_channels + tile.ci) * TAPS * LANES..][..TAPS * LANES];
        for tap in 0..TAPS {
            let target = row[tap * LANES..][..LANES].as_mut_ptr();
            // SAFETY: `target` is 16 floats of `partials`.
            unsafe {
                _mm512_storeu_ps(target, _mm512_add_ps(_mm512_loadu_ps(target), sums[c][tap]))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::super::super::ops::Window2d;
    use super::super::is_interior;
    use super::*;

    fn dims(side: usize) -> ConvDims {
        let window = Window2d {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
        };
        ConvDims::new(&[2, 8, side, side].into(), &[8, 8, 3, 3].into(), window)
    }

    #[test]
    fn only_vectors_clear_of_the_first_and_last_rows_are_interior() {
        if !super::super::avx512() {
            return; // The direct path exists on AVX-512 only.
        }
        // 28×28: rows 0 and 27 touch vectors 0–1 and 47–48; the 45 between them are interior.
        let direct = Direct3x3::new(&dims(28)).unwrap();
        assert_eq!(direct.runs, [(2, false), (47, true), (49, false)]);
        // 14×14: vector 0 holds row 0, vectors 11 and 12 row 13 (and the plane's tail).
        let direct = Direct3x3::new(&dims(14)).unwrap();
        assert_eq!(direct.runs, [(1, false), (11, true), (13, false)]);
        // A stack of sixteen 7×7 images: exactly the vectors whose positions all lie in rows
        // 1–5 of their images are interior.
        let direct = Direct3x3::stacked(&dims(7), 16).unwrap();
        let mut first = 0;
        let mut interior = 0;
        for &(end, kind) in &direct.runs {
            for vector in first..end {
                let clear = (vector * LANES..(vector + 1) * LANES)
                    .all(|position| (1..6).contains(&(position % 49 / 7)));
                assert_eq!(kind, clear, "vector {vector}");
                interior += usize::from(kind);
            }
            first = end;
        }
        assert_eq!((first, interior), (49, 20));
    }

    #[test]
    fn an_interior_vector_has_one_mask_per_column() {
        let left = 0xfffe;
        let right = 0x7fff;
        let interior = [
            left,
            u16::MAX,
            right,
            left,
            u16::MAX,
            right,
            left,
            u16::MAX,
            right,
        ];
        assert!(is_interior(&interior, u16::MAX));
        // The plane's tail, a top row (its upper taps masked), a masked middle column.
        assert!(!is_interior(&interior, 0x00ff));
        let mut top = interior;
        top[..3].fill(0);
        assert!(!is_interior(&top, u16::MAX));
        let mut middle = interior;
        middle[4] = 0xfff0;
        middle[1] = 0xfff0;
        middle[7] = 0xfff0;
        assert!(!is_interior(&middle, u16::MAX));
    }
}
