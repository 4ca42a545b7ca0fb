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
//! A learned channel-wise activation ([`BlockAct::Channelwise`], PReLU) runs its formula with
//! each channel's parameters; it saves the input, and the rebuild also sums the parameters'
//! gradient over the winners.
//!
//! One difference from the three layers run one by one: where a window holds two or more NaNs
//! or infinities, the layers also write `0 · f'(x)` = NaN at the ones that lost (for GELU, say;
//! ReLU's select gives 0), the block writes 0 there. The winner, a NaN itself, carries a NaN
//! gradient into the convolution's gradients either way.

use super::conv::{ConvDims, OutputGrad, SampleConv};
use super::parallel::{Scratch, as_uninit, filled_vec, items_per_task, zeroed};
use super::pool_rows::{KeepRow, WinnerScratch, keep_row, max_row, unpool_row};
use super::pool_rows_avx512;
use activations::fused::{Channelwise, Pointwise, slices};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The activation of a conv block.
#[derive(Clone, Copy, Debug)]
pub(super) enum BlockAct<'a> {
    /// An element-wise kernel.
    Pointwise(Pointwise),
    /// A learned channel-wise formula with its parameters `[rows, K]`: one row shared by all
    /// channels, or one per output channel.
    Channelwise {
        op: Channelwise,
        parameters: &'a [f32],
    },
    /// One row of parameters per sample and channel (`[N·C, K]`, row-major; APReLU's apply):
    /// each sample's rows are that sample's [`Channelwise`](Self::Channelwise), see
    /// [`for_sample`](Self::for_sample).
    PerSample {
        op: Channelwise,
        parameters: &'a [f32],
        channels: usize,
    },
    /// The activation's backward already ran: the gradient a [`PooledGrad`] holds is at the
    /// activation's input (APReLU's pooling, whose parameter step takes it through).
    Applied,
}

impl<'a> BlockAct<'a> {
    /// The activation of sample `sample`: its rows of per-sample parameters, else `self`.
    pub(super) fn for_sample(self, sample: usize) -> Self {
        match self {
            Self::PerSample {
                op,
                parameters,
                channels,
            } => {
                let len = channels * op.parameter_count();
                Self::Channelwise {
                    op,
                    parameters: parameters
                        .get(sample * len..(sample + 1) * len)
                        .unwrap_or(&[]),
                }
            }
            other => other,
        }
    }

    /// Which row of parameters output channel `channel` uses, and its parameters.
    fn row(self, channel: usize) -> (usize, &'a [f32]) {
        match self {
            Self::Channelwise { op, parameters } => {
                let count = op.parameter_count();
                let rows = parameter_row(parameters.len(), count, channel);
                (rows.start / count, &parameters[rows])
            }
            _ => unreachable!("the rows of a channel-wise activation of one sample"),
        }
    }

    /// The element-wise op on output channel `channel` (channel-wise: with its parameters).
    fn op(self, channel: usize) -> Pointwise {
        match self {
            Self::Pointwise(op) => op,
            Self::Channelwise { op, .. } => op.at(self.row(channel).1),
            Self::PerSample { .. } | Self::Applied => {
                unreachable!("per-sample parameters: resolve with for_sample")
            }
        }
    }

    /// Whether the backward reads the activation's output; a parameter gradient needs the
    /// input.
    fn saves_output(self) -> bool {
        match self {
            Self::Pointwise(op) => op.saves_output(),
            Self::Channelwise { .. } | Self::PerSample { .. } | Self::Applied => false,
        }
    }

    /// The length of the parameter gradient that one sample's [`PooledGrad::rebuild`] adds to
    /// (per-sample parameters: that sample's rows).
    pub(super) fn parameter_len(self) -> usize {
        match self {
            Self::Pointwise(_) | Self::Applied => 0,
            Self::Channelwise { parameters, .. } => parameters.len(),
            Self::PerSample { op, channels, .. } => channels * op.parameter_count(),
        }
    }

    /// `output = f(input)` for one sample's planes (per-sample parameters: resolved first with
    /// [`for_sample`](Self::for_sample)).
    fn forward(self, input: &[f32], output: &mut [f32], plane: usize) {
        match self {
            Self::Pointwise(op) => slices::forward(op, input, output),
            _ => {
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

    /// The backward of one sample's planes of pooling winners: `grad` becomes the input
    /// gradient, and `parameter_grad` (empty: not wanted) gains each row's parameter terms
    /// over its channel's winners.
    fn backward(self, saved: &[f32], grad: &mut [f32], plane: usize, parameter_grad: &mut [f32]) {
        let Self::Channelwise { op, .. } = self else {
            if let Self::Pointwise(op) = self {
                slices::backward(op, saved, grad);
            }
            return;
        };
        let count = op.parameter_count();
        for (channel, (saved, grad)) in saved.chunks(plane).zip(grad.chunks_mut(plane)).enumerate()
        {
            let (row, parameters) = self.row(channel);
            if parameter_grad.is_empty() {
                slices::backward(op.at(parameters), saved, grad);
            } else {
                let sums = &mut parameter_grad[row * count..][..count];
                op.backward_adding_parameter_grad(parameters, saved, grad, sums);
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
    pub(super) saved: Vec<f32>,
}

impl BlockSaved {
    /// The winners and, for each, a value the backward reads there (empty when it reads none):
    /// the spatial max + pooling's (`spatial_max_pool.rs`).
    pub(super) fn winners_and(winners: Vec<u8>, saved: Vec<f32>) -> Self {
        Self { winners, saved }
    }

    /// Each pooled output's winner (0–3, row-major in its window).
    pub(super) fn winners(&self) -> &[u8] {
        &self.winners
    }
}

/// The pooled planes of a conv block: the convolution's output planes halved, an odd last row
/// or column dropped (PyTorch's floor mode).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pooling {
    pub(super) channels: usize,
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

    /// The pooling of planes `[C, H, W]` already in memory.
    pub(super) fn of_planes(channels: usize, height: usize, width: usize) -> Self {
        Self {
            channels,
            height,
            width,
        }
    }

    /// Elements per sample before pooling.
    pub(super) fn input_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    fn pooled_height(&self) -> usize {
        self.height / 2
    }

    fn pooled_width(&self) -> usize {
        self.width / 2
    }

    /// Pooled outputs per sample.
    pub(super) fn sample_len(&self) -> usize {
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
    let buffers = || (conv.patch_buffer(), zeroed(dims.output_len()));
    let convolve =
        |(col, pre): &mut (Scratch, Scratch), sample: usize, pool: &mut dyn FnMut(&[f32])| {
            let x = &x[sample * dims.input_len()..][..dims.input_len()];
            conv.run(x, col, as_uninit(pre));
            pool(pre)
        };
    let pooling = Pooling::new(dims);
    activate_and_pool(pooling, dims.batch, activation, save, buffers, convolve)
}

/// The activation and the 2×2 pooling of `batch` samples, each sample's pre-activation planes
/// handed to the pooling by `pre_activation(task state, sample, pool)` (computed into the
/// task's state from `task_state()`, or read from memory).
pub(super) fn activate_and_pool<S>(
    pooling: Pooling,
    batch: usize,
    activation: BlockAct,
    save: bool,
    task_state: impl Fn() -> S + Sync,
    pre_activation: impl Fn(&mut S, usize, &mut dyn FnMut(&[f32])) + Sync,
) -> (Vec<f32>, Option<BlockSaved>) {
    let pooled_len = pooling.sample_len();
    let samples = items_per_task(batch);
    let total = batch * pooled_len;
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
            (0..batch.div_ceil(samples)).map(|_| None).collect()
        };
        output
            .par_chunks_mut(task_len)
            .zip(saved_chunks)
            .enumerate()
            .for_each(|(task, (output, mut keep))| {
                let mut state = task_state();
                let mut post = zeroed(pooling.input_len());
                let mut scratch = WinnerScratch::new(pooling.pooled_width());
                for (index, pooled) in output.chunks_mut(pooled_len).enumerate() {
                    let sample = task * samples + index;
                    let activation = activation.for_sample(sample);
                    let mut keep = keep.as_mut().map(|(winners, saved)| {
                        let range = index * pooled_len..(index + 1) * pooled_len;
                        (&mut winners[range.clone()], &mut saved[range])
                    });
                    pre_activation(&mut state, sample, &mut |pre: &[f32]| {
                        activation.forward(pre, &mut post, pooling.height * pooling.width);
                        let keep = keep.take();
                        pool_sample(
                            pooling,
                            pre,
                            &post,
                            pooled,
                            keep,
                            &mut scratch,
                            simd,
                            saves_output,
                        )
                    });
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

/// Pools one sample's activation output `post` (input `pre`) into `pooled`, keeping each
/// window's winner and saved value when `keep` is given.
#[allow(clippy::too_many_arguments)]
fn pool_sample(
    pooling: Pooling,
    pre: &[f32],
    post: &[f32],
    pooled: &mut [MaybeUninit<f32>],
    keep: SavedChunk,
    scratch: &mut Option<WinnerScratch>,
    simd: bool,
    saves_output: bool,
) {
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

impl OutputGrad for PooledGrad<'_> {
    fn parameter_len(&self) -> usize {
        self.activation.parameter_len()
    }

    fn sample<'s>(
        &'s self,
        sample: usize,
        buffer: &'s mut Vec<f32>,
        parameter_grad: &mut [f32],
    ) -> &'s [f32] {
        self.rebuild(sample, buffer, parameter_grad);
        &buffer[..self.conv_len()]
    }
}

/// The gradient of a conv block's pooled output, turned back into the gradient of its
/// convolution's output one sample at a time (for `conv2d_backward`).
pub(super) struct PooledGrad<'a> {
    pub(super) pooling: Pooling,
    pub(super) grad: &'a [f32],
    pub(super) saved: &'a BlockSaved,
    pub(super) activation: BlockAct<'a>,
}

impl<'a> PooledGrad<'a> {
    pub(super) fn new(
        dims: &ConvDims,
        grad: &'a [f32],
        saved: &'a BlockSaved,
        activation: BlockAct<'a>,
    ) -> Self {
        Self::of_pooling(Pooling::new(dims), dims.batch, grad, saved, activation)
    }

    /// The gradient of `batch` samples pooled by `pooling`.
    pub(super) fn of_pooling(
        pooling: Pooling,
        batch: usize,
        grad: &'a [f32],
        saved: &'a BlockSaved,
        activation: BlockAct<'a>,
    ) -> Self {
        let total = batch * pooling.sample_len();
        assert_eq!(grad.len(), total, "conv block: pooled output gradient");
        assert_eq!(saved.saved.len(), total, "conv block: saved values");
        Self {
            pooling,
            grad,
            saved,
            activation,
        }
    }

    /// Writes sample `sample`'s convolution-output gradient into the start of `buffer`
    /// (`C_out × H_out × W_out`; the rest of `buffer` is scratch), and adds the sample's
    /// parameter gradient (the formula's terms over the winners) to `parameter_grad`.
    pub(super) fn rebuild(&self, sample: usize, buffer: &mut Vec<f32>, parameter_grad: &mut [f32]) {
        let conv_len = self.pooling.input_len();
        buffer.resize(conv_len + self.pooling.sample_len(), 0.0);
        let (conv_grad, pooled_grad) = buffer.split_at_mut(conv_len);
        self.rebuild_into(sample, conv_grad, pooled_grad, parameter_grad);
    }

    /// The input length of one sample's pooling (`C_out × H_out × W_out`).
    pub(super) fn conv_len(&self) -> usize {
        self.pooling.input_len()
    }

    /// [`rebuild`](Self::rebuild) into `conv_grad` (`C_out × H_out × W_out`), with
    /// `pooled_grad` (one sample's pooled outputs) as scratch.
    pub(super) fn rebuild_into(
        &self,
        sample: usize,
        conv_grad: &mut [f32],
        pooled_grad: &mut [f32],
        parameter_grad: &mut [f32],
    ) {
        let len = self.pooling.sample_len();
        if self.pooling.height % 2 == 1 || self.pooling.width % 2 == 1 {
            // The dropped last row or column gets no gradient; the windows write the rest.
            conv_grad.fill(0.0);
        }
        let range = sample * len..(sample + 1) * len;
        pooled_grad.copy_from_slice(&self.grad[range.clone()]);
        let saved = &self.saved.saved[range.clone()];
        let plane = len / self.pooling.channels.max(1);
        let activation = self.activation.for_sample(sample);
        activation.backward(saved, pooled_grad, plane, parameter_grad);
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

/// Channel `channel`'s parameters in a channel-wise activation's `len` parameters of `count`
/// per row: its own row (`[C, count]`) or the one row all share (`[1, count]`).
pub(super) fn parameter_row(len: usize, count: usize, channel: usize) -> std::ops::Range<usize> {
    let row = if len > count { channel } else { 0 };
    row * count..(row + 1) * count
}
