//! APReLU's conv block on Flex. APReLU's slopes come from the squeeze of the whole
//! convolution output, through a small network run by Burn, so the block cannot pool while a
//! sample is in cache as `block.rs` does; it runs in two passes per sample instead:
//! - the convolution, with the squeeze of each sample's output computed while it is in cache
//!   (`conv.rs`'s `conv2d_forward_then`); the output goes to memory;
//! - the apply and the pooling ([`channelwise_pool_forward`]): APReLU's apply is a
//!   channel-wise formula with one slope per sample and channel, so `block.rs`'s channel-wise
//!   pooling runs with each sample's rows of parameters, keeping each window's winner and
//!   input.
//!
//! The backward takes the parameters' gradient from the pooled gradient first
//! ([`channelwise_pool_parameter_grad`], a pass over the pooled outputs only, which also takes
//! the pooled gradient through the activation); autodiff then runs the excitation's backward,
//! and the convolution's backward rebuilds each sample's output gradient in cache — the
//! pooling's part at the winners, and the squeeze's ([`SqueezeGrad`]) everywhere — instead of
//! reading the sum of two dense gradients.
//! [`channelwise_pool_backward`] is the pooling's whole backward, for the pooling on its own.

use super::block::{BlockAct, BlockSaved, PooledGrad, Pooling, activate_and_pool};
use super::conv::OutputGrad;
use super::parallel::items_per_task;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::burn::tensor::Shape;
use activations::fused::flex_storage::{contiguous, elements, from_vec};
use activations::fused::{Channelwise, slices};
use rayon::prelude::*;

/// A channel-wise activation with per-sample parameters and 2×2 max-pooling on the tensors'
/// storage; `save` keeps what the backward needs.
pub(super) fn channelwise_max_pool(
    x: FlexTensor,
    parameters: FlexTensor,
    op: Channelwise,
    save: bool,
) -> (FlexTensor, Option<BlockSaved>) {
    let (x, parameters) = (contiguous(x), contiguous(parameters));
    let shape = x.shape();
    let pooling = planes(&shape);
    let (z, parameters) = (elements(&x), elements(&parameters));
    let (output, saved) = channelwise_pool_forward(pooling, shape[0], z, op, parameters, save);
    let pooled = Shape::new([shape[0], shape[1], shape[2] / 2, shape[3] / 2]);
    (from_vec(output, pooled), saved)
}

/// The pooling of `[N, C, H, W]`'s planes.
pub(super) fn planes(shape: &Shape) -> Pooling {
    assert_eq!(
        shape.num_dims(),
        4,
        "channel-wise max-pool: [N, C, H, W] input"
    );
    Pooling::of_planes(shape[1], shape[2], shape[3])
}

/// `max_pool_2x2(op(z))` with one row of parameters per sample and channel (APReLU's apply,
/// `parameters` `[N·C, K]`) on `z` `[N, C, H, W]` in memory, and what the backward needs when
/// `save`.
pub(super) fn channelwise_pool_forward(
    pooling: Pooling,
    batch: usize,
    z: &[f32],
    op: Channelwise,
    parameters: &[f32],
    save: bool,
) -> (Vec<f32>, Option<BlockSaved>) {
    let channels = pooling.channels;
    assert_eq!(
        z.len(),
        batch * pooling.input_len(),
        "channel-wise pool: input"
    );
    assert_eq!(
        parameters.len(),
        batch * channels * op.parameter_count(),
        "channel-wise pool: one row of parameters per sample and channel"
    );
    let activation = BlockAct::PerSample {
        op,
        parameters,
        channels,
    };
    let len = pooling.input_len();
    let read =
        |_: &mut (), sample: usize, pool: &mut dyn FnMut(&[f32])| pool(&z[sample * len..][..len]);
    activate_and_pool(pooling, batch, activation, save, || (), read)
}

/// The backward of [`channelwise_pool_forward`]: the input gradient `[N, C, H, W]` and the
/// parameters' gradient `[N·C, K]` (the formula's terms over each plane's winners).
pub(super) fn channelwise_pool_backward(pooled: &PooledGrad, batch: usize) -> (Vec<f32>, Vec<f32>) {
    let input_len = pooled.pooling.input_len();
    let row_len = pooled.activation.parameter_len();
    let mut input_grad = vec![0.0f32; batch * input_len];
    let mut parameter_grad = vec![0.0f32; batch * row_len];
    let samples = items_per_task(batch);
    input_grad
        .par_chunks_mut(samples * input_len)
        .zip(parameter_grad.par_chunks_mut(samples * row_len.max(1)))
        .enumerate()
        .for_each(|(task, (input_grad, parameter_grad))| {
            let mut scratch = vec![0.0f32; pooled.pooling.sample_len()];
            for (index, (conv_grad, parameter_grad)) in input_grad
                .chunks_mut(input_len)
                .zip(parameter_grad.chunks_mut(row_len.max(1)))
                .enumerate()
            {
                let sample = task * samples + index;
                pooled.rebuild_into(sample, conv_grad, &mut scratch, parameter_grad);
            }
        });
    (input_grad, parameter_grad)
}

/// The parameters' gradient of [`channelwise_pool_forward`], `[N·C, K]`, and the pooled
/// gradient taken through the activation at each window's winner (`[N, C, H/2, W/2]`, for a
/// [`PooledGrad`] of [`BlockAct::Applied`]), in one pass over the pooled outputs: the formula
/// is evaluated once per winner, not once here and again when the convolution's backward
/// rebuilds its output gradient.
pub(super) fn channelwise_pool_parameter_grad(
    pooled: &PooledGrad,
    batch: usize,
) -> (Vec<f32>, Vec<f32>) {
    let BlockAct::PerSample { op, channels, .. } = pooled.activation else {
        panic!("channel-wise pool backward: per-sample parameters expected");
    };
    let count = op.parameter_count();
    let sample_len = pooled.pooling.sample_len();
    let plane = sample_len / channels.max(1);
    let mut parameter_grad = vec![0.0f32; batch * channels * count];
    let mut winner_grad = pooled.grad.to_vec();
    parameter_grad
        .par_chunks_mut((channels * count).max(1))
        .zip(pooled.saved.saved.par_chunks(sample_len.max(1)))
        .zip(winner_grad.par_chunks_mut(sample_len.max(1)))
        .enumerate()
        .for_each(|(sample, ((sums, saved), grad))| {
            let BlockAct::Channelwise { parameters, .. } = pooled.activation.for_sample(sample)
            else {
                unreachable!("a sample of per-sample parameters is channel-wise");
            };
            let planes = saved.chunks(plane).zip(grad.chunks_mut(plane));
            for (channel, (saved, grad)) in planes.enumerate() {
                let row = channel * count..(channel + 1) * count;
                let parameters = &parameters[row.clone()];
                op.backward_adding_parameter_grad(parameters, saved, grad, &mut sums[row]);
            }
        });
    (parameter_grad, winner_grad)
}

/// The squeeze's share of the convolution output's gradient, added one sample at a time:
/// `(z > 0 ? grad_positive : grad_negative) / plane` on each channel plane, from the gradient of
/// the squeeze's `[N, 2C]` output.
pub(super) struct SqueezeGrad<'a> {
    /// The convolution's output, `[N, C, H, W]`.
    output: &'a [f32],
    /// `[N, 2C]`.
    grad: &'a [f32],
    channels: usize,
}

impl<'a> SqueezeGrad<'a> {
    pub(super) fn new(output: &'a [f32], grad: &'a [f32], batch: usize, channels: usize) -> Self {
        assert_eq!(
            grad.len(),
            batch * 2 * channels,
            "squeeze gradient: [N, 2C]"
        );
        assert_eq!(
            output.len() % (batch * channels).max(1),
            0,
            "squeeze: [N, C, H, W] output"
        );
        Self {
            output,
            grad,
            channels,
        }
    }

    /// Adds sample `sample`'s share to its output gradient `conv_grad` (`C × H × W`).
    pub(super) fn add(&self, sample: usize, conv_grad: &mut [f32]) {
        let len = conv_grad.len();
        let plane = len / self.channels.max(1);
        let output = &self.output[sample * len..][..len];
        let grad = &self.grad[sample * 2 * self.channels..][..2 * self.channels];
        let (positive, negative) = grad.split_at(self.channels);
        for (channel, (output, conv_grad)) in output
            .chunks(plane)
            .zip(conv_grad.chunks_mut(plane))
            .enumerate()
        {
            slices::aprelu_plane_squeeze_backward_add(
                output,
                positive[channel],
                negative[channel],
                conv_grad,
            );
        }
    }
}

/// APReLU's conv block output gradient: the squeeze's share plus, when there is one, the
/// pooling's (its parameter gradient already taken), built one sample at a time.
pub(super) struct SqueezedGrad<'a> {
    pub squeeze: SqueezeGrad<'a>,
    pub pooled: Option<PooledGrad<'a>>,
    /// One sample's convolution output length, `C × H × W`.
    pub sample_len: usize,
}

impl OutputGrad for SqueezedGrad<'_> {
    fn parameter_len(&self) -> usize {
        0
    }

    fn sample<'s>(&'s self, sample: usize, buffer: &'s mut Vec<f32>, _: &mut [f32]) -> &'s [f32] {
        match &self.pooled {
            Some(pooled) => pooled.rebuild(sample, buffer, &mut []),
            None => {
                buffer.clear();
                buffer.resize(self.sample_len, 0.0);
            }
        }
        self.squeeze.add(sample, &mut buffer[..self.sample_len]);
        &buffer[..self.sample_len]
    }
}
