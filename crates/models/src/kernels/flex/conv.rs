//! 2-D convolution on one sample at a time: im2col, then `gemm` for the output and, in the
//! backward pass (`backward.rs`), for the weight gradient and (through col2im) the input
//! gradient; the direct 3×3 path where it applies.
use super::parallel::{Scratch, as_uninit, filled_vec, items_per_task, zeroed};

// The sizes of a convolution.
mod dims;
// im2col and col2im, the patch copies around the GEMMs.
mod im2col;
// A direct 3×3 convolution for the narrow layers, without patch copies (AVX-512).
mod direct3x3;
// The four phase planes a stride-2 direct convolution reads.
mod phases;
// Several samples' small planes as one, for the direct path.
mod stack;
// The backward: weight, bias and input gradients.
mod backward;
// The GEMM on matrix views, and lane sums.
mod matrix;
// The weight gradient's product on small planes (7×7 and under), without `gemm`.
mod patch_grad;
// A stride-2 convolution's input gradient by phases of the input, without col2im.
mod phase_grad;
// What the convolution applies to each sample's input first.
mod input_map;

use activations::fused::slices;
pub(super) use backward::{DenseGrad, OutputGrad, conv2d_backward};
pub(super) use dims::ConvDims;
use direct3x3::Direct3x3;
use im2col::im2col;
pub(super) use input_map::InputMap;
use input_map::mapped;
use matrix::{Matrix, matmul};
use rayon::prelude::*;
use stack::{images_per_call, stack, unstack};
use std::mem::MaybeUninit;

/// One sample's convolution: `out` (`C_out × positions`) = `weight · im2col(x) + bias`, with
/// `col` as the patch buffer (`patch_len × positions`).
pub(super) struct SampleConv<'a> {
    dims: &'a ConvDims,
    kernel: Matrix<'a>,
    bias: &'a [f32],
    /// The direct path and the kernel laid out for it, where it applies (no patches then).
    direct: Option<(Direct3x3, Vec<f32>)>,
    /// Small planes: the direct path over this many samples stacked ([`stack`]), 1 if not.
    images: usize,
    stacked: Option<Direct3x3>,
}

impl<'a> SampleConv<'a> {
    pub(super) fn new(dims: &'a ConvDims, weight: &'a [f32], bias: &'a [f32]) -> Self {
        assert_eq!(
            bias.len(),
            dims.out_channels,
            "conv2d: one bias per output channel"
        );
        let direct = Direct3x3::new(dims).map(|direct| {
            let weights = Direct3x3::forward_weights(weight, dims.out_channels);
            (direct, weights)
        });
        let images = if direct.is_some() {
            images_per_call(dims)
        } else {
            1
        };
        Self {
            dims,
            kernel: Matrix::rows(weight, dims.out_channels, dims.patch_len()),
            bias,
            stacked: (images > 1)
                .then(|| Direct3x3::stacked(dims, images))
                .flatten(),
            images,
            direct,
        }
    }

    /// Samples per [`run_group`](Self::run_group) call: more than one where small planes are
    /// stacked.
    pub(super) fn images(&self) -> usize {
        self.images
    }

    /// [`run`](Self::run) for up to [`images`](Self::images) samples one after the other in
    /// `x` and `out`: stacked into `stacks` (two buffers) and run as one plane where they are
    /// stacked, else one by one.
    pub(super) fn run_group(
        &self,
        x: &[f32],
        col: &mut [f32],
        stacks: &mut [Scratch; 2],
        out: &mut [MaybeUninit<f32>],
    ) {
        let count = x.len() / self.dims.input_len();
        // A single sample (batch 1, a task's last group) runs on the sample's own plane.
        let stacked = self.stacked.as_ref().filter(|_| count > 1);
        let (Some(full), Some((_, weights))) = (stacked, &self.direct) else {
            for (x, out) in x
                .chunks(self.dims.input_len())
                .zip(out.chunks_mut(self.dims.output_len()))
            {
                self.run(x, col, out);
            }
            return;
        };
        // A task's last group may be short: its own masks (rare, and cheap next to the tiles).
        let short;
        let direct = if count == self.images {
            full
        } else {
            short = Direct3x3::stacked(self.dims, count).expect("a stride-1 direct path");
            &short
        };
        let [input, output] = stacks;
        let (input, output) = (&mut input[..x.len()], &mut output[..out.len()]);
        stack(x, self.dims.positions(), count, input);
        direct.forward(input, weights, Some(self.bias), as_uninit(output));
        unstack(output, self.dims.positions(), count, out);
    }

    /// The two stack buffers [`run_group`](Self::run_group) needs (empty when nothing is
    /// stacked).
    pub(super) fn stack_buffers(&self) -> [Scratch; 2] {
        let images = if self.stacked.is_some() {
            self.images
        } else {
            0
        };
        [
            zeroed(images * self.dims.input_len()),
            zeroed(images * self.dims.output_len()),
        ]
    }

    /// A patch buffer for [`run`](Self::run) (empty on the direct path).
    pub(super) fn patch_buffer(&self) -> Scratch {
        if let Some((direct, _)) = &self.direct {
            // Stride 2: room for the sample's phase planes.
            return zeroed(if direct.needs_split() {
                self.dims.input_len()
            } else {
                0
            });
        }
        zeroed(self.dims.patch_len() * self.dims.positions())
    }

    pub(super) fn run(&self, x: &[f32], col: &mut [f32], out: &mut [MaybeUninit<f32>]) {
        if let Some((direct, weights)) = &self.direct {
            if direct.needs_split() {
                direct.split_phases(x, col);
                return direct.forward(col, weights, Some(self.bias), out);
            }
            return direct.forward(x, weights, Some(self.bias), out);
        }
        let (patch_len, positions) = (self.dims.patch_len(), self.dims.positions());
        im2col(self.dims, x, col);
        // The bias is the initial value that the product is added to.
        for (channel, &b) in out.chunks_mut(positions).zip(self.bias) {
            for value in channel {
                value.write(b);
            }
        }
        // SAFETY: every element of `out` was written just above.
        let out =
            unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len()) };
        let patches = Matrix::rows(col, patch_len, positions);
        matmul(out, true, &self.kernel, &patches);
    }
}

pub(super) fn conv2d_forward(dims: &ConvDims, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    conv2d_forward_then(dims, x, weight, bias, None, Epilogue::None).0
}

/// What [`conv2d_forward_then`] does with each sample's output while it is in cache.
pub(super) enum Epilogue<'a> {
    None,
    /// APReLU's squeeze (`[N, 2C_out]`: the channel means of `max(z, 0)`, then of `min(z, 0)`).
    Squeeze,
    /// Adds a residual of the output's shape.
    Residual(&'a [f32]),
}

/// The convolution and its [`Epilogue`], run while each sample's output is in cache:
/// `(output, squeeze)` (the squeeze empty unless asked for).
pub(super) fn conv2d_forward_then(
    dims: &ConvDims,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    input_map: Option<&dyn InputMap>,
    epilogue: Epilogue,
) -> (Vec<f32>, Vec<f32>) {
    let conv = SampleConv::new(dims, weight, bias);
    let samples = items_per_task(dims.batch);
    let squeeze = matches!(epilogue, Epilogue::Squeeze);
    let residual = match epilogue {
        Epilogue::Residual(residual) => {
            assert_eq!(residual.len(), dims.batch * dims.output_len(), "residual");
            residual
        }
        _ => &[],
    };
    let summary_len = if squeeze { 2 * dims.out_channels } else { 0 };
    let mut summary = vec![0.0f32; dims.batch * summary_len];
    let output = filled_vec(dims.batch * dims.output_len(), |output| {
        let summaries: Vec<&mut [f32]> = if squeeze {
            summary.chunks_mut(samples * summary_len).collect()
        } else {
            (0..dims.batch.div_ceil(samples))
                .map(|_| &mut [][..])
                .collect()
        };
        output
            .par_chunks_mut(samples * dims.output_len())
            .zip(x.par_chunks(samples * dims.input_len()))
            .zip(summaries)
            .enumerate()
            .for_each(|(task, ((output, x), summaries))| {
                let mut col = conv.patch_buffer();
                let mut stacks = conv.stack_buffers();
                let images = conv.images();
                let input_len = images * dims.input_len();
                let mut input = zeroed(if input_map.is_some() { input_len } else { 0 });
                let groups = output
                    .chunks_mut(images * dims.output_len())
                    .zip(x.chunks(images * dims.input_len()));
                for (group, (output, x)) in groups.enumerate() {
                    let x = mapped(input_map, x, dims.input_len(), &mut input);
                    conv.run_group(x, &mut col, &mut stacks, output);
                    for (index, out) in output.chunks_mut(dims.output_len()).enumerate() {
                        let index = group * images + index;
                        if !residual.is_empty() {
                            let sample = task * samples + index;
                            let residual = &residual[sample * dims.output_len()..][..out.len()];
                            for (value, &add) in out.iter_mut().zip(residual) {
                                // SAFETY: `run` wrote every element of `out`.
                                unsafe { *value.assume_init_mut() += add };
                            }
                        }
                        if squeeze {
                            // SAFETY: `run` wrote every element of `out`.
                            let out = unsafe {
                                std::slice::from_raw_parts(out.as_ptr().cast::<f32>(), out.len())
                            };
                            let summary = &mut summaries[index * summary_len..][..summary_len];
                            let (positive, negative) = summary.split_at_mut(dims.out_channels);
                            for (channel, plane) in out.chunks(dims.positions()).enumerate() {
                                (positive[channel], negative[channel]) =
                                    slices::aprelu_plane_means(plane);
                            }
                        }
                    }
                }
            })
    });
    (output, summary)
}
