//! The convolution's backward, one task of samples at a time: the weight and bias gradients
//! summed per task, each sample's input gradient written in place — on the direct path where
//! it applies ([`Direct3x3`]), else through im2col, GEMM and col2im.

use super::super::super::ops::ConvGradients;
use super::super::parallel::{Scratch, as_uninit, filled_vec, items_per_task, zeroed};
use super::dims::ConvDims;
use super::direct3x3::Direct3x3;
use super::direct3x3::weight_grad::lane_totals;
use super::im2col::{col2im, im2col};
use super::input_map::InputMap;
use super::matrix::{Matrix, lane_sum, matmul};
use super::patch_grad::PatchGrad;
use super::phase_grad::PhaseGrad;
use super::stack::{images_per_call, stack_until_full, unstack};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Per-task sums of the weight and bias gradients (empty when not wanted).
pub(in super::super) struct ParamGrads {
    pub(in super::super) weight: Vec<f32>,
    pub(in super::super) bias: Vec<f32>,
    /// A conv block's channel-wise activation's parameters (empty otherwise).
    pub(in super::super) parameter: Vec<f32>,
}

impl ParamGrads {
    fn zeros(dims: &ConvDims, wanted: ConvGradients, parameters: usize) -> Self {
        let len = |wanted: bool, len: usize| if wanted { len } else { 0 };
        Self {
            weight: vec![0.0; len(wanted.weight, dims.out_channels * dims.patch_len())],
            bias: vec![0.0; len(wanted.bias, dims.out_channels)],
            parameter: vec![0.0; parameters],
        }
    }

    fn add(mut self, other: Self) -> Self {
        for (sum, value) in self.weight.iter_mut().zip(&other.weight) {
            *sum += value;
        }
        for (sum, value) in self.bias.iter_mut().zip(&other.bias) {
            *sum += value;
        }
        for (sum, value) in self.parameter.iter_mut().zip(&other.parameter) {
            *sum += value;
        }
        self
    }
}

/// Where the backward gets each sample's output gradient: the dense gradient
/// ([`DenseGrad`]), or one rebuilt per sample by a fused layer above the convolution (a conv
/// block's pooling, `block.rs`; APReLU's squeeze, `aprelu_block.rs`).
pub(in super::super) trait OutputGrad: Sync {
    /// The number of activation parameters whose gradient [`sample`](Self::sample) adds to
    /// (0: none).
    fn parameter_len(&self) -> usize;

    /// Sample `sample`'s output gradient `[C_out, H_out, W_out]`: a slice of a dense gradient,
    /// or rebuilt into `buffer`, adding the activation parameters' gradient to
    /// `parameter_grad`.
    fn sample<'s>(
        &'s self,
        sample: usize,
        buffer: &'s mut Vec<f32>,
        parameter_grad: &mut [f32],
    ) -> &'s [f32];
}

/// The convolution's output gradient, `[N, C_out, H_out, W_out]`, with one sample's length.
pub(in super::super) struct DenseGrad<'a> {
    pub grad: &'a [f32],
    pub sample_len: usize,
}

impl OutputGrad for DenseGrad<'_> {
    fn parameter_len(&self) -> usize {
        0
    }

    fn sample<'s>(&'s self, sample: usize, _: &'s mut Vec<f32>, _: &mut [f32]) -> &'s [f32] {
        &self.grad[sample * self.sample_len..][..self.sample_len]
    }
}

pub(in super::super) fn conv2d_backward(
    dims: &ConvDims,
    x: &[f32],
    weight: &[f32],
    output_grad: &impl OutputGrad,
    wanted: ConvGradients,
    input_map: Option<&dyn InputMap>,
) -> (Option<Vec<f32>>, ParamGrads) {
    let samples = items_per_task(dims.batch);
    let plan = BackwardPlan::new(dims, weight, wanted, input_map);
    let parameter_len = plan.parameter_len(output_grad);
    // One task: samples `first..` of its chunk, writing their input gradients into `dx`
    // (uninitialised: each path writes every element of its samples' gradients).
    let task = |first: usize, dx: Option<&mut [MaybeUninit<f32>]>| {
        plan.task(x, output_grad, first, samples.min(dims.batch - first), dx)
    };
    let mut partials = Vec::new();
    let dx = wanted.x.then(|| {
        filled_vec(dims.batch * dims.input_len(), |dx| {
            partials = dx
                .par_chunks_mut(samples * dims.input_len())
                .enumerate()
                .map(|(task_index, dx)| task(task_index * samples, Some(dx)))
                .collect();
        })
    });
    if !wanted.x {
        partials = (0..dims.batch.div_ceil(samples))
            .into_par_iter()
            .map(|task_index| task(task_index * samples, None))
            .collect();
    }
    let total = partials
        .into_iter()
        .reduce(ParamGrads::add)
        .unwrap_or_else(|| ParamGrads::zeros(dims, wanted, parameter_len));
    (dx, total)
}

/// How one convolution's backward runs, chosen once per call: each gradient on the direct
/// path ([`Direct3x3`]) where it applies and pays, else through im2col and GEMM.
struct BackwardPlan<'a> {
    dims: &'a ConvDims,
    wanted: ConvGradients,
    /// The kernel transposed, for the GEMM path's input gradient.
    kernel_t: Matrix<'a>,
    direct: Option<Direct3x3>,
    /// The turned-around kernel when the input gradient takes the direct path (stride 1),
    /// else empty.
    transposed: Vec<f32>,
    /// Whether the weight gradient takes the direct path ([`Direct3x3::sums_weight_grad`]).
    direct_weight_grad: bool,
    /// Else whether im2col's product runs on the small-plane kernel ([`PatchGrad`]) instead
    /// of `gemm`.
    patch_weight_grad: bool,
    /// Else, with stride 2, the input gradient by phases ([`PhaseGrad`]) where it applies.
    phase_dx: Option<PhaseGrad>,
    /// Small planes: the direct input gradient over this many samples' output gradients
    /// stacked ([`stack`]), 1 if not.
    images: usize,
    stacked: Option<Direct3x3>,
    /// What the forward applied to each sample's input, applied again for the weight gradient.
    input_map: Option<&'a dyn InputMap>,
}

impl<'a> BackwardPlan<'a> {
    fn new(
        dims: &'a ConvDims,
        weight: &'a [f32],
        wanted: ConvGradients,
        input_map: Option<&'a dyn InputMap>,
    ) -> Self {
        let direct = Direct3x3::new(dims);
        let direct_dx = wanted.x && direct.as_ref().is_some_and(|d| !d.needs_split());
        let direct_weight_grad =
            wanted.weight && direct.is_some() && Direct3x3::sums_weight_grad(dims);
        let images = if direct_dx { images_per_call(dims) } else { 1 };
        Self {
            dims,
            wanted,
            kernel_t: Matrix::transposed(weight, dims.patch_len(), dims.out_channels),
            transposed: if direct_dx {
                Direct3x3::transposed_weights(weight, dims.out_channels)
            } else {
                Vec::new()
            },
            phase_dx: (wanted.x && !direct_dx)
                .then(|| PhaseGrad::new(dims, weight))
                .flatten(),
            direct: direct.filter(|_| direct_dx || direct_weight_grad),
            direct_weight_grad,
            patch_weight_grad: wanted.weight && !direct_weight_grad && PatchGrad::applies(dims),
            stacked: (images > 1)
                .then(|| Direct3x3::stacked(dims, images))
                .flatten(),
            images,
            input_map,
        }
    }

    /// The activation parameters whose gradient the tasks sum: a fused layer's above the
    /// convolution, or the input map's.
    fn parameter_len(&self, output_grad: &impl OutputGrad) -> usize {
        let map = self.input_map.map_or(0, |map| map.parameter_len());
        output_grad.parameter_len().max(map)
    }

    /// Samples `first..first + count`: their parameter gradients summed, their input
    /// gradients written into `dx`.
    fn task(
        &self,
        x: &[f32],
        output_grad: &impl OutputGrad,
        first: usize,
        count: usize,
        mut dx: Option<&mut [MaybeUninit<f32>]>,
    ) -> ParamGrads {
        // Samples per direct weight-gradient call: its tiles sum them in registers before
        // adding to memory, and a tile's planes (three gradient channels and one input channel
        // per sample, 16 bytes a position) should stay within about 32 KiB of L1: 2 samples of
        // 28×28, 8 of 14×14.
        const MAX_GROUP: usize = 8;
        let dims = self.dims;
        let (patch_len, positions) = (dims.patch_len(), dims.positions());
        let group_size = (2048 / positions).clamp(1, MAX_GROUP);
        let mut sums = ParamGrads::zeros(dims, self.wanted, self.parameter_len(output_grad));
        let gemm_weight_grad =
            self.wanted.weight && !self.direct_weight_grad && !self.patch_weight_grad;
        let mut patch_grad = self.patch_weight_grad.then(|| PatchGrad::new(dims));
        let gemm_dx = dx.is_some() && self.transposed.is_empty() && self.phase_dx.is_none();
        let buffer = |wanted: bool, len: usize| zeroed(if wanted { len } else { 0 });
        let mut col = buffer(gemm_weight_grad, patch_len * positions);
        let mut dcol = buffer(gemm_dx, patch_len * positions);
        let mut partials = buffer(self.direct_weight_grad, sums.weight.len() * 16);
        let stacking = dx.is_some() && self.stacked.is_some();
        let mut phase_buffers = self
            .phase_dx
            .as_ref()
            .filter(|_| dx.is_some())
            .map(|phase| {
                let stack = phase.images() > 1;
                [
                    buffer(stack, phase.images() * dims.output_len()),
                    phase.buffer(),
                ]
            });
        let mut stacks = [
            buffer(stacking, self.images * dims.output_len()),
            buffer(stacking, self.images * dims.input_len()),
        ];
        // Stride 2: each sample's phase planes, which the direct weight gradient reads.
        let split =
            self.direct_weight_grad && self.direct.as_ref().is_some_and(|d| d.needs_split());
        let mut phases: [Scratch; MAX_GROUP] =
            std::array::from_fn(|index| buffer(split && index < group_size, dims.input_len()));
        // Each sample's mapped input, for the weight gradient.
        let map = self.input_map.filter(|_| self.wanted.weight);
        let mut inputs: [Scratch; MAX_GROUP] = std::array::from_fn(|index| {
            buffer(map.is_some() && index < group_size, dims.input_len())
        });
        let mut rebuilt: [Scratch; MAX_GROUP] = std::array::from_fn(|_| zeroed(0));
        for group_start in (0..count).step_by(group_size) {
            let group = group_size.min(count - group_start);
            let mut pairs: Vec<(&[f32], &[f32])> = Vec::with_capacity(group);
            let buffers = rebuilt
                .iter_mut()
                .zip(phases.iter_mut())
                .zip(inputs.iter_mut());
            let samples = (group_start..group_start + group).zip(buffers);
            for (index, ((buffer, phases), input)) in samples {
                let sample = first + index;
                let grad = output_grad.sample(sample, buffer, &mut sums.parameter);
                for (sum, channel) in sums.bias.iter_mut().zip(grad.chunks(positions)) {
                    *sum += lane_sum(channel);
                }
                let raw = &x[sample * dims.input_len()..][..dims.input_len()];
                let mapped = map.map(|map| -> &[f32] {
                    map.map(raw, input);
                    input
                });
                if let Some(dx) = dx.as_deref_mut() {
                    // The samples in this sample's stack (fewer at the task's end); a stack
                    // of one (batch 1, a task's last) runs on its own plane.
                    let stack_len = self.images.min(count - (index - index % self.images));
                    let done = if let Some(buffers) = phase_buffers.as_mut() {
                        self.phase_input_grad(grad, index, count, buffers, dx)
                    } else if stacking && stack_len > 1 {
                        self.stacked_input_grad(grad, index, stack_len, &mut stacks, dx)
                    } else {
                        let dx = &mut dx[index * dims.input_len()..][..dims.input_len()];
                        self.input_grad(grad, &mut dcol, dx);
                        index..index + 1
                    };
                    let this = (index, mapped);
                    self.last_step_grads(x, first, done, this, dx, &mut sums.parameter);
                }
                let x = mapped.unwrap_or(raw);
                if let Some(patch_grad) = patch_grad.as_mut() {
                    patch_grad.add_sample(x, grad);
                }
                if gemm_weight_grad {
                    im2col(dims, x, &mut col);
                    let grad_matrix = Matrix::rows(grad, dims.out_channels, positions);
                    let patches_t = Matrix::transposed(&col, positions, patch_len);
                    matmul(&mut sums.weight, true, &grad_matrix, &patches_t);
                }
                if let Some(direct) = self.direct.as_ref().filter(|_| self.direct_weight_grad) {
                    if split {
                        direct.split_phases(x, phases);
                        pairs.push((&*phases, grad));
                    } else {
                        pairs.push((x, grad));
                    }
                }
            }
            if let Some(direct) = self.direct.as_ref().filter(|_| self.direct_weight_grad) {
                direct.weight_grad(&pairs, &mut partials);
            }
        }
        if self.direct_weight_grad {
            lane_totals(&partials, &mut sums.weight);
        }
        if let Some(patch_grad) = patch_grad {
            patch_grad.add_to(&mut sums.weight);
        }
        sums
    }

    /// With an input map, the input gradients of the task's samples `done` (complete, in
    /// cache) taken back through the map's last step ([`InputMap::last_step_grad`]); `this`
    /// is the current sample and its mapped input when it was made.
    fn last_step_grads(
        &self,
        x: &[f32],
        first: usize,
        done: std::ops::Range<usize>,
        this: (usize, Option<&[f32]>),
        dx: &mut [MaybeUninit<f32>],
        parameter_grad: &mut [f32],
    ) {
        let Some(map) = self.input_map else { return };
        let len = self.dims.input_len();
        for index in done {
            let sample = &x[(first + index) * len..][..len];
            let dx = &mut dx[index * len..][..len];
            // SAFETY: the input gradient wrote every element of the sample's.
            let dx = unsafe { std::slice::from_raw_parts_mut(dx.as_mut_ptr().cast(), dx.len()) };
            let mapped = if index == this.0 { this.1 } else { None };
            map.last_step_grad(sample, mapped, dx, parameter_grad);
        }
    }

    /// Sample `index` (of the task) of a stacked input gradient, in a stack of `images`: its
    /// output gradient goes into the stack (`stacks[0]`); the stack's last sample runs the
    /// direct convolution over all of them and writes their input gradients into the task's
    /// `dx`. The samples (of the task) whose input gradient it completed.
    fn stacked_input_grad(
        &self,
        grad: &[f32],
        index: usize,
        images: usize,
        stacks: &mut [Scratch; 2],
        dx: &mut [MaybeUninit<f32>],
    ) -> std::ops::Range<usize> {
        let dims = self.dims;
        let image = index % self.images;
        let first = index - image;
        let [grads, input_grads] = stacks;
        let Some(grads) = stack_until_full(grad, image, images, dims.positions(), grads) else {
            return 0..0;
        };
        let short;
        let direct = match &self.stacked {
            Some(full) if images == self.images => full,
            _ => {
                short = Direct3x3::stacked(dims, images).expect("a stride-1 direct path");
                &short
            }
        };
        let input_grads = &mut input_grads[..images * dims.input_len()];
        direct.forward(grads, &self.transposed, None, as_uninit(input_grads));
        let dx = &mut dx[first * dims.input_len()..][..images * dims.input_len()];
        unstack(input_grads, dims.positions(), images, dx);
        first..first + images
    }

    /// Sample `index` (of the task's `count`) of the stride-2 input gradient by phases: its
    /// output gradient goes into the stack (`buffers[0]`) when the plan stacks samples; a
    /// stack's last sample runs the phases over all of them. The samples (of the task) whose
    /// input gradient it completed.
    fn phase_input_grad(
        &self,
        grad: &[f32],
        index: usize,
        count: usize,
        buffers: &mut [Scratch; 2],
        dx: &mut [MaybeUninit<f32>],
    ) -> std::ops::Range<usize> {
        let phase = self.phase_dx.as_ref().expect("a phase plan");
        let len = self.dims.input_len();
        let image = index % phase.images();
        let first = index - image;
        let images = phase.images().min(count - first);
        let [stack, phases] = buffers;
        let grads = if images == 1 {
            grad
        } else {
            let positions = self.dims.positions();
            let Some(stack) = stack_until_full(grad, image, images, positions, stack) else {
                return 0..0;
            };
            stack
        };
        let dx = &mut dx[first * len..][..images * len];
        phase.input_grads(grads, images, phases, dx);
        first..first + images
    }

    /// One sample's input gradient: the direct convolution with the turned-around kernel, or
    /// the GEMM into `dcol` and col2im.
    fn input_grad(&self, grad: &[f32], dcol: &mut [f32], dx: &mut [MaybeUninit<f32>]) {
        if let Some(direct) = self.direct.as_ref().filter(|_| !self.transposed.is_empty()) {
            return direct.forward(grad, &self.transposed, None, dx);
        }
        let grad_matrix = Matrix::rows(grad, self.dims.out_channels, self.dims.positions());
        matmul(dcol, false, &self.kernel_t, &grad_matrix);
        // col2im adds into zeros.
        for value in dx.iter_mut() {
            value.write(0.0);
        }
        // SAFETY: every element was written just above.
        let dx = unsafe { std::slice::from_raw_parts_mut(dx.as_mut_ptr().cast::<f32>(), dx.len()) };
        col2im(self.dims, dcol, dx);
    }
}
