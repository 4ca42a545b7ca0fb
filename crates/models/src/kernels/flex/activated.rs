//! A BatchNorm's output taken through an activation, made per sample where it is needed
//! instead of written out: by a convolution that reads it in cache (`norm_conv.rs`), and by
//! the backward for the gradient through the activation.

use activations::fused::{Channelwise, Pointwise, slices};
use std::cell::RefCell;

use super::batch_norm::normalise;
use super::block::parameter_row;
use super::parallel::as_uninit;

/// A BatchNorm's output taken through an activation, `op_c((x − mean)·scale + shift)` per
/// channel `c`, rebuilt plane by plane from the input where it is needed instead of kept: by a
/// convolution that reads it in cache (`norm_conv.rs`), and by the backward for the gradient
/// through the activation. The planes are the ones the separate passes would produce, to the
/// bit (the same normalisation, the activation's own kernels).
pub(super) struct Activated {
    pub(super) mean: Vec<f32>,
    pub(super) scale: Vec<f32>,
    pub(super) shift: Vec<f32>,
    /// Each channel's element-wise op (a channel-wise activation's at that channel's
    /// parameters).
    pub(super) ops: Vec<Pointwise>,
    /// A channel-wise activation and its parameters (`[C, K]` or `[1, K]`), whose gradient
    /// the backward sums.
    pub(super) learned: Option<(Channelwise, Vec<f32>)>,
    pub(super) plane: usize,
}

impl Activated {
    /// Channel `c`'s `[mean, scale, shift]`.
    fn affine(&self, channel: usize) -> [f32; 3] {
        [self.mean[channel], self.scale[channel], self.shift[channel]]
    }

    /// How many activation parameters get a gradient (0: an element-wise activation).
    pub(super) fn parameter_len(&self) -> usize {
        self.learned
            .as_ref()
            .map_or(0, |(_, parameters)| parameters.len())
    }

    /// `out = op((x − mean)·scale + shift)` for one sample `[C, plane]`, one pass per plane.
    pub(super) fn apply(&self, sample: &[f32], out: &mut [f32]) {
        let planes = sample.chunks(self.plane).zip(out.chunks_mut(self.plane));
        for (channel, (x, out)) in planes.enumerate() {
            slices::forward_normalised(self.ops[channel], x, out, self.affine(channel));
        }
    }

    /// `grad = grad · op'(pre)` for one sample: the activation's output gradient taken back
    /// to BatchNorm's output, whose backward then runs as without the activation; a
    /// channel-wise activation's parameter gradient is added to `parameter_grad`. `applied`
    /// is [`apply`](Self::apply)'s output for the sample, when the caller kept it.
    pub(super) fn activation_grad(
        &self,
        sample: &[f32],
        applied: Option<&[f32]>,
        grad: &mut [f32],
        parameter_grad: &mut [f32],
    ) {
        let saves_output = self.learned.is_none() && self.ops.iter().all(|op| op.saves_output());
        if let Some(output) = applied.filter(|_| saves_output) {
            let planes = output.chunks(self.plane).zip(grad.chunks_mut(self.plane));
            for (channel, (output, grad)) in planes.enumerate() {
                slices::backward(self.ops[channel], output, grad);
            }
            return;
        }
        with_buffer(sample.len(), |saved| {
            if saves_output {
                self.apply(sample, saved);
            } else {
                let planes = sample.chunks(self.plane).zip(saved.chunks_mut(self.plane));
                for (channel, (x, pre)) in planes.enumerate() {
                    normalise(x, as_uninit(pre), self.affine(channel));
                }
            }
            let planes = saved.chunks(self.plane).zip(grad.chunks_mut(self.plane));
            for (channel, (saved, grad)) in planes.enumerate() {
                match &self.learned {
                    Some((op, parameters)) => {
                        let row = parameter_row(parameters.len(), op.parameter_count(), channel);
                        let sums = &mut parameter_grad[row.clone()];
                        op.backward_adding_parameter_grad(&parameters[row], saved, grad, sums);
                    }
                    None => slices::backward(self.ops[channel], saved, grad),
                }
            }
        })
    }
}

thread_local! {
    /// A sample's room per thread for [`Activated::activation_grad`].
    static BUFFER: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` with a buffer of `len` values (this thread's, reused).
fn with_buffer<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        if buffer.len() < len {
            buffer.resize(len, 0.0);
        }
        f(&mut buffer[..len])
    })
}
