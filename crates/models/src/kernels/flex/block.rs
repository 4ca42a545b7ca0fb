//! A conv block — convolution, element-wise activation, 2×2 stride-2 max-pool — in one pass per
//! sample: the convolution (`conv.rs`'s im2col + gemm) writes the sample's output into a
//! per-thread buffer, the activation and the pooling read it there while it is in cache, and
//! only the pooled output goes to memory. The separate layers write the convolution's output,
//! read and write it again for the activation, and read it a third time for the pooling.
//!
//! The backward needs, per pooled output, only the window's winner and the value the
//! activation's backward reads at it (its input, or its output when
//! [`Pointwise::saves_output`]): the gradient reaches the pre-activation at the winner alone.
//! The forward keeps those two when asked ([`BlockSaved`]); the backward rebuilds one sample's
//! pre-activation gradient at a time from them and hands it to the convolution's backward.
//! PReLU ([`BlockAct::PRelu`]) is leaky ReLU with its channel's slope; it saves the input, and
//! the rebuild also sums the slopes' gradient over the winners.
//!
//! One difference from the three layers run one by one: where a window holds two or more NaNs
//! or infinities, the layers also write `0 · f'(x)` = NaN at the ones that lost (for GELU, say;
//! ReLU's select gives 0), the block writes 0 there. The winner, a NaN itself, carries a NaN
//! gradient into the convolution's gradients either way.

use super::conv::{ConvDims, SampleConv};
use super::pool_rows::{KeepRow, WinnerScratch, keep_row, max_row, unpool_row};
use super::pool_rows_avx512;
use super::{filled_vec, items_per_task};
use activations::fused::{Pointwise, slices};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The activation of a conv block.
#[derive(Clone, Copy, Debug)]
pub(super) enum BlockAct<'a> {
    /// An element-wise kernel.
    Pointwise(Pointwise),
    /// PReLU with these slopes: one per output channel, or one shared by all.
    PRelu(&'a [f32]),
}

impl BlockAct<'_> {
    /// The element-wise op on output channel `channel` (PReLU: leaky ReLU with its slope).
    fn op(self, channel: usize) -> Pointwise {
        match self {
            Self::Pointwise(op) => op,
            Self::PRelu(slopes) => Pointwise::LeakyRelu {
                negative_slope: slopes[self.slope_index(channel)] as f64,
            },
        }
    }

    /// Which slope channel `channel` uses.
    fn slope_index(self, channel: usize) -> usize {
        match self {
            Self::PRelu(slopes) if slopes.len() > 1 => channel,
            _ => 0,
        }
    }

    /// Whether the backward reads the activation's output; PReLU's slope gradient needs the
    /// input.
    fn saves_output(self) -> bool {
        match self {
            Self::Pointwise(op) => op.saves_output(),
            Self::PRelu(_) => false,
        }
    }

    /// The number of slopes that get a gradient.
    pub(super) fn slope_len(self) -> usize {
        match self {
            Self::Pointwise(_) => 0,
            Self::PRelu(slopes) => slopes.len(),
        }
    }

    /// `output = f(input)` for one sample's planes.
    fn forward(self, input: &[f32], output: &mut [f32], plane: usize) {
        match self {
            Self::Pointwise(op) => slices::forward(op, input, output),
            Self::PRelu(_) => {
                for (channel, (input, output)) in input
                    .chunks(plane)
                    .zip(output.chunks_mut(plane))
                    .enumerate()
                {
                    slices::forward(self.op(channel), input, output);
                }
            }
        }
    }
}

/// What a conv block's backward needs from its forward, one entry per pooled output.
#[derive(Debug)]
pub struct BlockSaved {
    /// Which element of the 2×2 window won, in row-major order (0–3).
    winners: Vec<u8>,
    /// The activation's input at the winner, or its output when the op's backward reads that.
    saved: Vec<f32>,
}

/// The pooled planes of a conv block: the convolution's output planes halved, an odd last row
/// or column dropped (PyTorch's floor mode).
#[derive(Clone, Copy, Debug)]
struct Pooling {
    channels: usize,
    /// The convolution's output plane.
    height: usize,
    width: usize,
}

impl Pooling {
    fn new(dims: &ConvDims) -> Self {
        Self {
            channels: dims.out_channels,
            height: dims.out_height,
            width: dims.out_width,
        }
    }

    fn pooled_height(&self) -> usize {
        self.height / 2
    }

    fn pooled_width(&self) -> usize {
        self.width / 2
    }

    /// Pooled outputs per sample.
    fn sample_len(&self) -> usize {
        self.channels * self.pooled_height() * self.pooled_width()
    }

    /// Calls `f(first output, top row start, bottom row start)` for each pair of rows of one
    /// sample's convolution output that a row of windows covers.
    #[inline(always)]
    fn for_each_row_pair(&self, mut f: impl FnMut(usize, usize, usize)) {
        let mut output = 0;
        for channel in 0..self.channels {
            let plane = channel * self.height * self.width;
            for row in 0..self.pooled_height() {
                let top = plane + 2 * row * self.width;
                f(output, top, top + self.width);
                output += self.pooled_width();
            }
        }
    }
}

/// `values` as the uninitialised slice `SampleConv::run` writes (every element gets written).
fn as_uninit(values: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the callers only write initialised
    // values through the view, so `values` stays initialised.
    unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len()) }
}

/// One task's slices of the saved state.
type SavedChunk<'a> = Option<(&'a mut [MaybeUninit<u8>], &'a mut [MaybeUninit<f32>])>;

/// `max_pool_2x2(op(conv2d(x)))`, `[N, C_out, H_out / 2, W_out / 2]`, and what the backward
/// needs when `save`.
pub(super) fn conv_block_forward(
    dims: &ConvDims,
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    activation: BlockAct,
    save: bool,
) -> (Vec<f32>, Option<BlockSaved>) {
    let conv = SampleConv::new(dims, weight, bias);
    let pooling = Pooling::new(dims);
    let pooled_len = pooling.sample_len();
    let samples = items_per_task(dims.batch);
    let total = dims.batch * pooled_len;
    let saves_output = activation.saves_output();
    let kept = if save { total } else { 0 };
    let simd = pool_rows_avx512::available();
    let mut winners: Vec<u8> = Vec::with_capacity(kept);
    let mut saved: Vec<f32> = Vec::with_capacity(kept);

    let output = filled_vec(total, |output| {
        let task_len = samples * pooled_len;
        let saved_chunks: Vec<SavedChunk> = if save {
            winners.spare_capacity_mut()[..total]
                .chunks_mut(task_len)
                .zip(saved.spare_capacity_mut()[..total].chunks_mut(task_len))
                .map(Some)
                .collect()
        } else {
            (0..dims.batch.div_ceil(samples)).map(|_| None).collect()
        };
        output
            .par_chunks_mut(task_len)
            .zip(x.par_chunks(samples * dims.input_len()))
            .zip(saved_chunks)
            .for_each(|((output, x), mut keep)| {
                let mut col = conv.patch_buffer();
                let mut pre = vec![0.0f32; dims.output_len()];
                let mut post = vec![0.0f32; dims.output_len()];
                let mut scratch = WinnerScratch::new(pooling.pooled_width());
                for (index, (pooled, x)) in output
                    .chunks_mut(pooled_len)
                    .zip(x.chunks(dims.input_len()))
                    .enumerate()
                {
                    conv.run(x, &mut col, as_uninit(&mut pre));
                    activation.forward(&pre, &mut post, dims.positions());
                    let keep = keep.as_mut().map(|(winners, saved)| {
                        let range = index * pooled_len..(index + 1) * pooled_len;
                        (&mut winners[range.clone()], &mut saved[range])
                    });
                    let width = pooling.pooled_width();
                    match keep {
                        Some((winners, saved)) => pooling.for_each_row_pair(|o, top, bottom| {
                            let row = KeepRow {
                                post: [&post[top..], &post[bottom..]],
                                pre: [&pre[top..], &pre[bottom..]],
                                pooled: &mut pooled[o..o + width],
                                winners: &mut winners[o..o + width],
                                saved: &mut saved[o..o + width],
                            };
                            keep_row(simd, row, saves_output)
                        }),
                        None => pooling.for_each_row_pair(|o, top, bottom| {
                            let pooled = &mut pooled[o..o + width];
                            max_row(scratch.as_mut(), &post[top..], &post[bottom..], pooled)
                        }),
                    }
                }
            })
    });
    let saved = save.then(|| {
        // SAFETY: the forward wrote every pooled output's winner and saved value above.
        unsafe {
            winners.set_len(total);
            saved.set_len(total);
        }
        BlockSaved { winners, saved }
    });
    (output, saved)
}

/// The gradient of a conv block's pooled output, turned back into the gradient of its
/// convolution's output one sample at a time (for `conv2d_backward`).
pub(super) struct PooledGrad<'a> {
    pooling: Pooling,
    grad: &'a [f32],
    saved: &'a BlockSaved,
    activation: BlockAct<'a>,
}

impl<'a> PooledGrad<'a> {
    pub(super) fn new(
        dims: &ConvDims,
        grad: &'a [f32],
        saved: &'a BlockSaved,
        activation: BlockAct<'a>,
    ) -> Self {
        let pooling = Pooling::new(dims);
        let total = dims.batch * pooling.sample_len();
        assert_eq!(grad.len(), total, "conv block: pooled output gradient");
        assert_eq!(saved.saved.len(), total, "conv block: saved values");
        Self {
            pooling,
            grad,
            saved,
            activation,
        }
    }

    /// The number of slopes whose gradient [`rebuild`](Self::rebuild) sums.
    pub(super) fn slope_len(&self) -> usize {
        self.activation.slope_len()
    }

    /// Writes sample `sample`'s convolution-output gradient into the start of `buffer`
    /// (`C_out × H_out × W_out`; the rest of `buffer` is scratch), and adds the sample's slope
    /// gradient (PReLU: `Σ x ≤ 0 ? x · grad : 0` over the winners) to `slope_grad`.
    pub(super) fn rebuild(&self, sample: usize, buffer: &mut Vec<f32>, slope_grad: &mut [f32]) {
        let len = self.pooling.sample_len();
        let conv_len = self.pooling.channels * self.pooling.height * self.pooling.width;
        buffer.resize(conv_len + len, 0.0);
        let (conv_grad, pooled_grad) = buffer.split_at_mut(conv_len);
        if self.pooling.height % 2 == 1 || self.pooling.width % 2 == 1 {
            // The dropped last row or column gets no gradient; the windows write the rest.
            conv_grad.fill(0.0);
        }
        let range = sample * len..(sample + 1) * len;
        pooled_grad.copy_from_slice(&self.grad[range.clone()]);
        let saved = &self.saved.saved[range.clone()];
        match self.activation {
            BlockAct::Pointwise(op) => slices::backward(op, saved, pooled_grad),
            BlockAct::PRelu(_) => {
                let plane = len / self.pooling.channels.max(1);
                for (channel, (saved, grad)) in saved
                    .chunks(plane)
                    .zip(pooled_grad.chunks_mut(plane))
                    .enumerate()
                {
                    // PReLU's weight gradient, as PyTorch: x > 0 ? 0 : x · grad.
                    let sum: f32 = saved
                        .iter()
                        .zip(grad.iter())
                        .map(|(&x, &g)| if x > 0.0 { 0.0 } else { x * g })
                        .sum();
                    slope_grad[self.activation.slope_index(channel)] += sum;
                    slices::backward(self.activation.op(channel), saved, grad);
                }
            }
        }
        let winners = &self.saved.winners[range];
        let width = self.pooling.pooled_width();
        let simd = pool_rows_avx512::available();
        self.pooling.for_each_row_pair(|o, top, bottom| {
            let (upper, lower) = conv_grad.split_at_mut(bottom);
            unpool_row(
                simd,
                &pooled_grad[o..o + width],
                &winners[o..o + width],
                &mut upper[top..],
                lower,
            )
        });
    }
}
