//! Several samples' planes as one tall plane, for the direct 3×3 path on small planes.
//!
//! A 7×7 plane is 49 positions: four vectors of sixteen with 15 lanes idle, a quarter of the
//! arithmetic thrown away, and a short loop per tile. Sixteen samples' 7×7 planes of one
//! channel, one after the other, are 784 positions — 49 full vectors — and the direct kernel
//! reads them as one plane whose tap masks stop at each image's edge
//! ([`Direct3x3::stacked`](super::direct3x3::Direct3x3::stacked)). The samples are copied
//! into that layout (`[C, images, H, W]`) and the result back, a pass over a few hundred KiB
//! against hundreds of multiply-adds per value copied.

use super::dims::ConvDims;
use std::mem::MaybeUninit;

const LANES: usize = 16;
/// The largest stack, in positions: a 28×28 plane's worth, so a stack of 64 channels stays
/// within L2.
const MAX_POSITIONS: usize = 1024;

/// How many samples one direct call stacks for `dims` (1: one at a time): where a plane
/// leaves more than a tenth of its vectors' lanes idle (7×7: 15 of 64; not 14×14: 12 of 208,
/// whose stack measured no faster and whose copies cost more than that), the fewest samples
/// whose positions fill whole vectors (16 / gcd(plane, 16): 16 of 7×7), if they fit in
/// [`MAX_POSITIONS`]. Stride 1 only (stride 2 reads phase planes).
pub(in super::super) fn images_per_call(dims: &ConvDims) -> usize {
    if dims.window.stride != [1, 1] {
        return 1;
    }
    images_per_plane(dims.positions())
}

/// [`images_per_call`]'s rule for planes of `plane` positions, whatever reads them (also the
/// stride-2 input gradient's phases, `phase_grad.rs`).
pub(super) fn images_per_plane(plane: usize) -> usize {
    let lanes = plane.div_ceil(LANES) * LANES;
    if plane == 0 || 10 * (lanes - plane) <= lanes {
        return 1;
    }
    let images = LANES / gcd(plane, LANES);
    if images * plane <= MAX_POSITIONS {
        images
    } else {
        1
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Copies sample `image` (`[C, P]`, `P` = `plane`) into its place in `stacked` (`[C, images,
/// P]`).
pub(in super::super) fn stack_one(sample: &[f32], image: usize, plane: usize, stacked: &mut [f32]) {
    let images = stacked.len() / sample.len();
    assert!(
        image < images && stacked.len() == images * sample.len(),
        "stack: sample {image} of a stack of {images}"
    );
    for (channel, values) in sample.chunks_exact(plane).enumerate() {
        stacked[(channel * images + image) * plane..][..plane].copy_from_slice(values);
    }
}

/// [`stack_one`] into the first `images` samples' room of `stack`; the stack once this was
/// its last sample (`image + 1 == images`), else `None` (the stack waits for the others).
pub(in super::super) fn stack_until_full<'a>(
    sample: &[f32],
    image: usize,
    images: usize,
    plane: usize,
    stack: &'a mut [f32],
) -> Option<&'a [f32]> {
    let stack = &mut stack[..images * sample.len()];
    stack_one(sample, image, plane, stack);
    (image + 1 == images).then_some(&*stack)
}

/// `samples` (`[images, C, P]`, one sample after the other) into `stacked` (`[C, images, P]`).
pub(in super::super) fn stack(samples: &[f32], plane: usize, images: usize, stacked: &mut [f32]) {
    for (image, sample) in samples.chunks_exact(samples.len() / images).enumerate() {
        stack_one(sample, image, plane, stacked);
    }
}

/// The inverse of [`stack`]: `stacked` (`[C, images, P]`) into `samples` (`[images, C, P]`),
/// every element written.
pub(in super::super) fn unstack(
    stacked: &[f32],
    plane: usize,
    images: usize,
    samples: &mut [MaybeUninit<f32>],
) {
    assert_eq!(stacked.len(), samples.len(), "unstack: one value per value");
    let sample_len = samples.len() / images;
    for (image, sample) in samples.chunks_exact_mut(sample_len).enumerate() {
        for (channel, values) in sample.chunks_exact_mut(plane).enumerate() {
            let source = &stacked[(channel * images + image) * plane..][..plane];
            for (value, &stacked) in values.iter_mut().zip(source) {
                value.write(stacked);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_planes_stack_until_their_vectors_are_full() {
        use super::super::super::super::ops::Window2d;
        let dims = |side: usize, stride: usize| {
            let window = Window2d {
                kernel: [3, 3],
                stride: [stride, stride],
                padding: [1, 1],
                dilation: [1, 1],
            };
            let x = [2, 8, side * stride, side * stride].into();
            ConvDims::new(&x, &[8, 8, 3, 3].into(), window)
        };
        // 49 and 25 positions (15 of 64 and 7 of 32 lanes idle): 16 planes fill whole vectors.
        assert_eq!(images_per_call(&dims(7, 1)), 16);
        assert_eq!(images_per_call(&dims(5, 1)), 16);
        // Full or nearly full vectors (28×28, 14×14), a stride, or a stack past 1,024
        // positions (16 of 9×9): one at a time.
        assert_eq!(images_per_call(&dims(28, 1)), 1);
        assert_eq!(images_per_call(&dims(14, 1)), 1);
        assert_eq!(images_per_call(&dims(7, 2)), 1);
        assert_eq!(images_per_call(&dims(9, 1)), 1);
    }

    #[test]
    fn stack_and_unstack_are_inverse_transposes() {
        // 3 samples × 2 channels × 5 positions.
        let samples: Vec<f32> = (0..30).map(|v| v as f32).collect();
        let mut stacked = vec![0.0; 30];
        stack(&samples, 5, 3, &mut stacked);
        // Channel 0 of samples 0, 1, 2, then channel 1 of each.
        assert_eq!(&stacked[..5], &samples[..5]);
        assert_eq!(&stacked[5..10], &samples[10..15]);
        assert_eq!(&stacked[15..20], &samples[5..10]);
        let mut back = vec![MaybeUninit::uninit(); 30];
        unstack(&stacked, 5, 3, &mut back);
        let back: Vec<f32> = back
            .into_iter()
            .map(|v| unsafe { v.assume_init() })
            .collect();
        assert_eq!(back, samples);
    }
}
