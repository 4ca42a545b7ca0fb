//! 2-D convolution on one sample at a time: im2col, then `gemm` for the output and, in the
//! backward pass, for the weight gradient and (through col2im) the input gradient.
use super::super::ops::ConvGradients;
use super::parallel::{filled_vec, items_per_task};

// The sizes of a convolution.
mod dims;
// im2col and col2im, the patch copies around the GEMMs.
mod im2col;
// A direct 3×3 convolution for the narrow layers, without patch copies (AVX-512).
mod direct3x3;
// The four phase planes a stride-2 direct convolution reads.
mod phases;

use activations::fused::slices;
pub(super) use dims::ConvDims;
use direct3x3::{Direct3x3, lane_totals};
use im2col::{col2im, im2col};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `Σ values` in sixteen interleaved partial sums, which vectorise (a single running sum is a
/// chain of dependent additions, four cycles each).
fn lane_sum(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut partial = [0.0f32; LANES];
    let mut pieces = values.chunks_exact(LANES);
    for piece in &mut pieces {
        for (sum, value) in partial.iter_mut().zip(piece) {
            *sum += value;
        }
    }
    let tail: f32 = pieces.remainder().iter().sum();
    partial.iter().sum::<f32>() + tail
}

/// A matrix view: `rows × cols` elements of `data` at `row · row_stride + col · col_stride`.
struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// A row-major matrix.
    fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `cols × rows` matrix.
    fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: 1,
            col_stride: rows,
        }
    }

    fn check(&self) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs` when `accumulate`), `dst` row-major, single-threaded:
/// the callers already run one sample per thread.
fn matmul(dst: &mut [f32], accumulate: bool, lhs: &Matrix, rhs: &Matrix) {
    assert_eq!(lhs.cols, rhs.rows, "matmul: inner dimensions");
    assert_eq!(dst.len(), lhs.rows * rhs.cols, "matmul: output size");
    lhs.check();
    rhs.check();
    if dst.is_empty() {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    // SAFETY: every view was bounds-checked above, `dst` is exclusively borrowed and
    // row-major `lhs.rows × rhs.cols`, and the inputs do not alias it.
    unsafe {
        gemm::gemm(
            lhs.rows,
            rhs.cols,
            lhs.cols,
            dst.as_mut_ptr(),
            1,
            rhs.cols as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// One sample's convolution: `out` (`C_out × positions`) = `weight · im2col(x) + bias`, with
/// `col` as the patch buffer (`patch_len × positions`).
pub(super) struct SampleConv<'a> {
    dims: &'a ConvDims,
    kernel: Matrix<'a>,
    bias: &'a [f32],
    /// The direct path and the kernel laid out for it, where it applies (no patches then).
    direct: Option<(Direct3x3, Vec<f32>)>,
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
        Self {
            dims,
            kernel: Matrix::rows(weight, dims.out_channels, dims.patch_len()),
            bias,
            direct,
        }
    }

    /// A patch buffer for [`run`](Self::run) (empty on the direct path).
    pub(super) fn patch_buffer(&self) -> Vec<f32> {
        if let Some((direct, _)) = &self.direct {
            // Stride 2: room for the sample's phase planes.
            return vec![
                0.0f32;
                if direct.needs_split() {
                    self.dims.input_len()
                } else {
                    0
                }
            ];
        }
        vec![0.0f32; self.dims.patch_len() * self.dims.positions()]
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
    conv2d_forward_then(dims, x, weight, bias, Epilogue::None).0
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
                for (index, (out, x)) in output
                    .chunks_mut(dims.output_len())
                    .zip(x.chunks(dims.input_len()))
                    .enumerate()
                {
                    conv.run(x, &mut col, out);
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
            })
    });
    (output, summary)
}

/// Per-task sums of the weight and bias gradients (empty when not wanted).
pub(super) struct ParamGrads {
    pub(super) weight: Vec<f32>,
    pub(super) bias: Vec<f32>,
    /// A conv block's channel-wise activation's parameters (empty otherwise).
    pub(super) parameter: Vec<f32>,
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
pub(super) trait OutputGrad: Sync {
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
pub(super) struct DenseGrad<'a> {
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

pub(super) fn conv2d_backward(
    dims: &ConvDims,
    x: &[f32],
    weight: &[f32],
    output_grad: &impl OutputGrad,
    wanted: ConvGradients,
) -> (Option<Vec<f32>>, ParamGrads) {
    let samples = items_per_task(dims.batch);
    let plan = BackwardPlan::new(dims, weight, wanted);
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
        .unwrap_or_else(|| ParamGrads::zeros(dims, wanted, output_grad.parameter_len()));
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
}

impl<'a> BackwardPlan<'a> {
    fn new(dims: &'a ConvDims, weight: &'a [f32], wanted: ConvGradients) -> Self {
        let direct = Direct3x3::new(dims);
        let direct_dx = wanted.x && direct.as_ref().is_some_and(|d| !d.needs_split());
        let direct_weight_grad =
            wanted.weight && direct.is_some() && Direct3x3::sums_weight_grad(dims);
        Self {
            dims,
            wanted,
            kernel_t: Matrix::transposed(weight, dims.patch_len(), dims.out_channels),
            transposed: if direct_dx {
                Direct3x3::transposed_weights(weight, dims.out_channels)
            } else {
                Vec::new()
            },
            direct: direct.filter(|_| direct_dx || direct_weight_grad),
            direct_weight_grad,
        }
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
        let mut sums = ParamGrads::zeros(dims, self.wanted, output_grad.parameter_len());
        let gemm_weight_grad = self.wanted.weight && !self.direct_weight_grad;
        let gemm_dx = dx.is_some() && self.transposed.is_empty();
        let buffer = |wanted: bool, len: usize| vec![0.0f32; if wanted { len } else { 0 }];
        let mut col = buffer(gemm_weight_grad, patch_len * positions);
        let mut dcol = buffer(gemm_dx, patch_len * positions);
        let mut partials = buffer(self.direct_weight_grad, sums.weight.len() * 16);
        // Stride 2: each sample's phase planes, which the direct weight gradient reads.
        let split =
            self.direct_weight_grad && self.direct.as_ref().is_some_and(|d| d.needs_split());
        let mut phases: [Vec<f32>; MAX_GROUP] =
            std::array::from_fn(|index| buffer(split && index < group_size, dims.input_len()));
        let mut rebuilt: [Vec<f32>; MAX_GROUP] = Default::default();
        for group_start in (0..count).step_by(group_size) {
            let group = group_size.min(count - group_start);
            let mut pairs: Vec<(&[f32], &[f32])> = Vec::with_capacity(group);
            let buffers = rebuilt.iter_mut().zip(phases.iter_mut());
            for (index, (buffer, phases)) in (group_start..group_start + group).zip(buffers) {
                let sample = first + index;
                let grad = output_grad.sample(sample, buffer, &mut sums.parameter);
                for (sum, channel) in sums.bias.iter_mut().zip(grad.chunks(positions)) {
                    *sum += lane_sum(channel);
                }
                if let Some(dx) = dx.as_deref_mut() {
                    let dx = &mut dx[index * dims.input_len()..][..dims.input_len()];
                    self.input_grad(grad, &mut dcol, dx);
                }
                let x = &x[sample * dims.input_len()..][..dims.input_len()];
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
        sums
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
