//! [`LayerKernelOps`] for Flex: convolution as per-sample im2col + `gemm`, max-pooling as one
//! pass, over the tensors' f32 storage; samples (or planes) spread over rayon's threads.

use super::{Conv2dGrads, ConvGradients, LayerKernelBackward, LayerKernelOps, Window2d};
use activations::burn::backend::Flex;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::burn::tensor::Shape;
use activations::fused::flex_storage::{contiguous, elements, from_vec};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct ConvDims {
    batch: usize,
    in_channels: usize,
    height: usize,
    width: usize,
    out_channels: usize,
    out_height: usize,
    out_width: usize,
    window: Window2d,
}

impl ConvDims {
    fn new(x: &Shape, weight: &Shape, window: Window2d) -> Self {
        assert_eq!(x.num_dims(), 4, "conv2d input is [N, C, H, W]");
        assert_eq!(
            weight.num_dims(),
            4,
            "conv2d weight is [C_out, C_in, kH, kW]"
        );
        assert_eq!(x[1], weight[1], "conv2d: input and weight channels differ");
        assert_eq!(window.kernel, [weight[2], weight[3]], "conv2d: kernel size");
        Self {
            batch: x[0],
            in_channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: weight[0],
            out_height: window.output_size(0, x[2]).expect("window fits"),
            out_width: window.output_size(1, x[3]).expect("window fits"),
            window,
        }
    }

    /// Rows of the im2col matrix: one per (input channel, kernel row, kernel column).
    fn patch_len(&self) -> usize {
        self.in_channels * self.window.kernel[0] * self.window.kernel[1]
    }

    /// Columns of the im2col matrix: one per output position.
    fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    fn input_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    fn output_len(&self) -> usize {
        self.out_channels * self.positions()
    }

    fn output_shape(&self) -> Shape {
        Shape::new([
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ])
    }

    /// Calls `f(row, out_row, x_start, out_range, x_step)` for each kernel tap and output row:
    /// in row `row` of the im2col matrix, output columns `out_range` of output row `out_row`
    /// read input elements `x_start + i · x_step`; every other column is padding (all of them
    /// when `out_range` is empty).
    fn for_each_tap(&self, mut f: impl FnMut(usize, usize, usize, std::ops::Range<usize>, usize)) {
        let Window2d {
            kernel: [kernel_h, kernel_w],
            stride: [stride_h, stride_w],
            padding: [pad_h, pad_w],
            dilation: [dilation_h, dilation_w],
        } = self.window;
        for channel in 0..self.in_channels {
            for kernel_row in 0..kernel_h {
                for kernel_col in 0..kernel_w {
                    let row = (channel * kernel_h + kernel_row) * kernel_w + kernel_col;
                    let col_offset = (kernel_col * dilation_w) as isize - pad_w as isize;
                    let cols = valid_outputs(col_offset, stride_w, self.width, self.out_width);
                    for out_row in 0..self.out_height {
                        let in_row = (out_row * stride_h + kernel_row * dilation_h) as isize
                            - pad_h as isize;
                        if in_row < 0 || in_row as usize >= self.height || cols.is_empty() {
                            f(row, out_row, 0, 0..0, stride_w);
                            continue;
                        }
                        let x_row = (channel * self.height + in_row as usize) * self.width;
                        let x_start = (x_row as isize
                            + cols.start as isize * stride_w as isize
                            + col_offset) as usize;
                        f(row, out_row, x_start, cols.clone(), stride_w);
                    }
                }
            }
        }
    }
}

/// The outputs `o` whose input index `o · stride + offset` lies in `0..size`.
fn valid_outputs(
    offset: isize,
    stride: usize,
    size: usize,
    outputs: usize,
) -> std::ops::Range<usize> {
    let stride = stride as isize;
    // First o with o·stride + offset ≥ 0, and first o with o·stride + offset ≥ size.
    let first = if offset >= 0 {
        0
    } else {
        (-offset + stride - 1) / stride
    };
    let end = (size as isize - offset + stride - 1)
        .div_euclid(stride)
        .max(0);
    let first = (first as usize).min(outputs);
    first..(end as usize).clamp(first, outputs)
}

/// Fills `col` (`patch_len × positions`) with the patches of one sample `x` (`C_in × H × W`).
fn im2col(dims: &ConvDims, x: &[f32], col: &mut [f32]) {
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(|row, out_row, x_start, cols, step| {
        // Each element written once: padding zeros around the copied run.
        let dst = &mut col[row * positions + out_row * out_width..][..out_width];
        dst[..cols.start].fill(0.0);
        dst[cols.end.max(cols.start)..].fill(0.0);
        let dst = &mut dst[cols.clone()];
        if step == 1 {
            dst.copy_from_slice(&x[x_start..x_start + dst.len()]);
        } else {
            for (i, value) in dst.iter_mut().enumerate() {
                *value = x[x_start + i * step];
            }
        }
    });
}

/// Adds the patches `col` back into one sample's input gradient `dx` (the adjoint of im2col).
fn col2im(dims: &ConvDims, col: &[f32], dx: &mut [f32]) {
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(|row, out_row, x_start, cols, step| {
        if cols.is_empty() {
            return;
        }
        let src = &col[row * positions + out_row * out_width..][cols.clone()];
        if step == 1 {
            for (target, value) in dx[x_start..x_start + src.len()].iter_mut().zip(src) {
                *target += value;
            }
        } else {
            for (i, value) in src.iter().enumerate() {
                dx[x_start + i * step] += value;
            }
        }
    });
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

/// Contiguous runs of `len` items per task: a few per thread, so a slow thread does not hold
/// the others up, and never empty.
fn items_per_task(items: usize) -> usize {
    items.div_ceil(rayon::current_num_threads() * 2).max(1)
}

fn conv2d_forward(dims: &ConvDims, x: &[f32], weight: &[f32], bias: &[f32]) -> Vec<f32> {
    assert_eq!(
        bias.len(),
        dims.out_channels,
        "conv2d: one bias per output channel"
    );
    let (patch_len, positions) = (dims.patch_len(), dims.positions());
    let samples = items_per_task(dims.batch);
    let kernel = Matrix::rows(weight, dims.out_channels, patch_len);
    filled_vec(dims.batch * dims.output_len(), |output| {
        output
            .par_chunks_mut(samples * dims.output_len())
            .zip(x.par_chunks(samples * dims.input_len()))
            .for_each(|(output, x)| {
                let mut col = vec![0.0f32; patch_len * positions];
                for (out, x) in output
                    .chunks_mut(dims.output_len())
                    .zip(x.chunks(dims.input_len()))
                {
                    im2col(dims, x, &mut col);
                    // The bias is the initial value that the product is added to.
                    for (channel, &b) in out.chunks_mut(positions).zip(bias) {
                        for value in channel {
                            value.write(b);
                        }
                    }
                    // SAFETY: every element of `out` was written just above.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len())
                    };
                    let patches = Matrix::rows(&col, patch_len, positions);
                    matmul(out, true, &kernel, &patches);
                }
            })
    })
}

/// Per-task sums of the weight and bias gradients (empty when not wanted).
struct ParamGrads {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl ParamGrads {
    fn zeros(dims: &ConvDims, wanted: ConvGradients) -> Self {
        let len = |wanted: bool, len: usize| if wanted { len } else { 0 };
        Self {
            weight: vec![0.0; len(wanted.weight, dims.out_channels * dims.patch_len())],
            bias: vec![0.0; len(wanted.bias, dims.out_channels)],
        }
    }

    fn add(mut self, other: Self) -> Self {
        for (sum, value) in self.weight.iter_mut().zip(&other.weight) {
            *sum += value;
        }
        for (sum, value) in self.bias.iter_mut().zip(&other.bias) {
            *sum += value;
        }
        self
    }
}

fn conv2d_backward(
    dims: &ConvDims,
    x: &[f32],
    weight: &[f32],
    output_grad: &[f32],
    wanted: ConvGradients,
) -> (Option<Vec<f32>>, ParamGrads) {
    let (patch_len, positions) = (dims.patch_len(), dims.positions());
    let samples = items_per_task(dims.batch);
    let kernel_t = Matrix::transposed(weight, patch_len, dims.out_channels);

    // One task: samples `first..` of its chunk, writing their input gradients into `dx`.
    let task = |first: usize, mut dx: Option<&mut [f32]>| {
        let count = samples.min(dims.batch - first);
        let mut sums = ParamGrads::zeros(dims, wanted);
        let patches_len = |wanted: bool| if wanted { patch_len * positions } else { 0 };
        let mut col = vec![0.0f32; patches_len(wanted.weight)];
        let mut dcol = vec![0.0f32; patches_len(dx.is_some())];
        for index in 0..count {
            let sample = first + index;
            let grad = &output_grad[sample * dims.output_len()..][..dims.output_len()];
            let grad_matrix = Matrix::rows(grad, dims.out_channels, positions);
            if wanted.weight {
                let x = &x[sample * dims.input_len()..][..dims.input_len()];
                im2col(dims, x, &mut col);
                let patches_t = Matrix::transposed(&col, positions, patch_len);
                matmul(&mut sums.weight, true, &grad_matrix, &patches_t);
            }
            if wanted.bias {
                for (sum, channel) in sums.bias.iter_mut().zip(grad.chunks(positions)) {
                    *sum += channel.iter().sum::<f32>();
                }
            }
            if let Some(dx) = dx.as_deref_mut() {
                matmul(&mut dcol, false, &kernel_t, &grad_matrix);
                let dx = &mut dx[index * dims.input_len()..][..dims.input_len()];
                col2im(dims, &dcol, dx);
            }
        }
        sums
    };

    let mut dx = wanted
        .x
        .then(|| vec![0.0f32; dims.batch * dims.input_len()]);
    let partials: Vec<ParamGrads> = match dx.as_deref_mut() {
        Some(dx) => dx
            .par_chunks_mut(samples * dims.input_len())
            .enumerate()
            .map(|(task_index, dx)| task(task_index * samples, Some(dx)))
            .collect(),
        None => (0..dims.batch.div_ceil(samples))
            .into_par_iter()
            .map(|task_index| task(task_index * samples, None))
            .collect(),
    };
    let total = partials
        .into_iter()
        .reduce(ParamGrads::add)
        .unwrap_or_else(|| ParamGrads::zeros(dims, wanted));
    (dx, total)
}

/// The sizes of one max-pooling.
#[derive(Clone, Copy, Debug)]
struct PoolDims {
    planes: usize,
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
    window: Window2d,
}

impl PoolDims {
    fn new(x: &Shape, window: Window2d) -> Self {
        assert_eq!(x.num_dims(), 4, "max_pool2d input is [N, C, H, W]");
        Self {
            planes: x[0] * x[1],
            height: x[2],
            width: x[3],
            out_height: window.output_size(0, x[2]).expect("window fits"),
            out_width: window.output_size(1, x[3]).expect("window fits"),
            window,
        }
    }

    /// Whether the window is 2×2 with stride 2 and nothing else: the common case, with its
    /// own branch-free loop.
    fn is_plain_2x2(&self) -> bool {
        self.window
            == Window2d {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
                dilation: [1, 1],
            }
    }

    /// The index in the plane of the maximum of output `(out_row, out_col)`'s window, PyTorch's
    /// rule: a later element replaces the current one when it is greater or NaN; padding is
    /// never chosen (each window holds at least one input element when padding ≤ kernel / 2).
    fn argmax(&self, plane: &[f32], out_row: usize, out_col: usize) -> usize {
        let Window2d {
            kernel,
            stride,
            padding,
            dilation,
        } = self.window;
        let mut best = f32::NEG_INFINITY;
        let mut best_index = usize::MAX;
        for kernel_row in 0..kernel[0] {
            let row =
                (out_row * stride[0] + kernel_row * dilation[0]) as isize - padding[0] as isize;
            if row < 0 || row as usize >= self.height {
                continue;
            }
            for kernel_col in 0..kernel[1] {
                let col =
                    (out_col * stride[1] + kernel_col * dilation[1]) as isize - padding[1] as isize;
                if col < 0 || col as usize >= self.width {
                    continue;
                }
                let index = row as usize * self.width + col as usize;
                let value = plane[index];
                if best_index == usize::MAX || value > best || value.is_nan() {
                    best = value;
                    best_index = index;
                }
            }
        }
        best_index
    }
}

/// PyTorch's comparison for max-pooling: `candidate` wins when greater or NaN.
#[inline(always)]
fn max_nan(best: f32, candidate: f32) -> f32 {
    select(
        mask((candidate > best) | candidate.is_nan()),
        candidate,
        best,
    )
}

/// All ones when `condition`, else zero.
#[inline(always)]
fn mask(condition: bool) -> u32 {
    (condition as u32).wrapping_neg()
}

/// `when_set` where `mask` is all ones, else `otherwise`, by bits: no branch, and LLVM turns a
/// loop of these into vector blends.
#[inline(always)]
fn select(mask: u32, when_set: f32, otherwise: f32) -> f32 {
    f32::from_bits((when_set.to_bits() & mask) | (otherwise.to_bits() & !mask))
}

/// `grad` routed to the maximum of `[top_left, top_right, bottom_left, bottom_right]` by
/// [`max_nan`]'s rule (scanning in that order), zero elsewhere (even when `grad` is NaN).
#[inline(always)]
fn route_2x2(values: [f32; 4], grad: f32) -> [f32; 4] {
    let [a, b, c, d] = values;
    let takes_b = mask((b > a) | b.is_nan());
    let best = select(takes_b, b, a);
    let takes_c = mask((c > best) | c.is_nan());
    let best = select(takes_c, c, best);
    let takes_d = mask((d > best) | d.is_nan());
    let wins_c = takes_c & !takes_d;
    let wins_b = takes_b & !takes_c & !takes_d;
    let wins_a = !takes_b & !takes_c & !takes_d;
    let routed = |wins: u32| select(wins, grad, 0.0);
    [
        routed(wins_a),
        routed(wins_b),
        routed(wins_c),
        routed(takes_d),
    ]
}

/// Runs `$body` compiled for AVX2 + FMA when the CPU has them (the crate is built for baseline
/// x86-64, where these loops stay scalar), else as built.
macro_rules! with_avx2 {
    ($name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

with_avx2!(pool_planes_2x2(dims: &PoolDims, x: &[f32], output: &mut [MaybeUninit<f32>]) {
    let (plane_len, out_len, out_width) =
        (dims.height * dims.width, dims.out_height * dims.out_width, dims.out_width);
    for (out, plane) in output.chunks_mut(out_len).zip(x.chunks(plane_len)) {
        for (out_row, out) in out.chunks_mut(out_width).enumerate() {
            let top = &plane[2 * out_row * dims.width..][..2 * out_width];
            let bottom = &plane[(2 * out_row + 1) * dims.width..][..2 * out_width];
            for (col, out) in out.iter_mut().enumerate() {
                let (left, right) = (2 * col, 2 * col + 1);
                out.write(max_nan(
                    max_nan(max_nan(top[left], top[right]), bottom[left]),
                    bottom[right],
                ));
            }
        }
    }
});

/// The input gradient of one pair of rows under 2×2 windows: `grad[w]` goes to the maximum of
/// window `w` (`x_top[2w..2w+2]`, `x_bottom[2w..2w+2]`), zero to the others. With AVX2 when
/// `vector` (and the CPU has it), else scalar.
fn unpool_rows_2x2(
    vector: bool,
    x_top: &[f32],
    x_bottom: &[f32],
    grad: &[f32],
    dx_top: &mut [MaybeUninit<f32>],
    dx_bottom: &mut [MaybeUninit<f32>],
) {
    let windows = grad.len();
    assert!(x_top.len() >= 2 * windows && x_bottom.len() >= 2 * windows);
    assert!(dx_top.len() >= 2 * windows && dx_bottom.len() >= 2 * windows);
    #[cfg(target_arch = "x86_64")]
    if vector && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, and the lengths were checked above.
        return unsafe { unpool_rows_2x2_avx2(x_top, x_bottom, grad, dx_top, dx_bottom) };
    }
    let _ = vector;
    for (w, &g) in grad.iter().enumerate() {
        let (left, right) = (2 * w, 2 * w + 1);
        let routed = route_2x2(
            [x_top[left], x_top[right], x_bottom[left], x_bottom[right]],
            g,
        );
        dx_top[left].write(routed[0]);
        dx_top[right].write(routed[1]);
        dx_bottom[left].write(routed[2]);
        dx_bottom[right].write(routed[3]);
    }
}

/// [`unpool_rows_2x2`] eight windows at a time; the last few go through a padded copy (AMD's
/// masked stores are microcoded). LLVM does not vectorise the stride-2 loads and stores with
/// the select chain, and the scalar loop mispredicts on every random window, so this one is
/// written out.
///
/// # Safety
/// The CPU has AVX2; `x_*` and `dx_*` hold at least `2 · grad.len()` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn unpool_rows_2x2_avx2(
    x_top: &[f32],
    x_bottom: &[f32],
    grad: &[f32],
    dx_top: &mut [MaybeUninit<f32>],
    dx_bottom: &mut [MaybeUninit<f32>],
) {
    let windows = grad.len();
    let full = windows / 8 * 8;
    for w in (0..full).step_by(8) {
        // SAFETY: elements 2w..2w + 16 of each row and w..w + 8 of `grad` are in bounds.
        unsafe {
            unpool_block_2x2_avx2(
                x_top.as_ptr().add(2 * w),
                x_bottom.as_ptr().add(2 * w),
                grad.as_ptr().add(w),
                dx_top.as_mut_ptr().add(2 * w).cast(),
                dx_bottom.as_mut_ptr().add(2 * w).cast(),
            )
        };
    }
    let tail = windows - full;
    if tail > 0 {
        let pad = |source: &[f32]| {
            let mut padded = [0.0f32; 16];
            padded[..source.len()].copy_from_slice(source);
            padded
        };
        let (top, bottom) = (
            pad(&x_top[2 * full..2 * windows]),
            pad(&x_bottom[2 * full..2 * windows]),
        );
        let g = pad(&grad[full..]);
        let (mut out_top, mut out_bottom) = ([0.0f32; 16], [0.0f32; 16]);
        // SAFETY: the padded copies hold 16 row elements and 8 gradients each.
        unsafe {
            unpool_block_2x2_avx2(
                top.as_ptr(),
                bottom.as_ptr(),
                g.as_ptr(),
                out_top.as_mut_ptr(),
                out_bottom.as_mut_ptr(),
            )
        };
        for (dx, out) in [(dx_top, out_top), (dx_bottom, out_bottom)] {
            for (target, &value) in dx[2 * full..2 * windows].iter_mut().zip(&out) {
                target.write(value);
            }
        }
    }
}

/// Eight 2×2 windows: 16 elements of each row and 8 gradients in, 16 gradients of each row
/// out.
///
/// # Safety
/// The CPU has AVX2; the pointers have those many elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn unpool_block_2x2_avx2(
    x_top: *const f32,
    x_bottom: *const f32,
    grad: *const f32,
    dx_top: *mut f32,
    dx_bottom: *mut f32,
) {
    use std::arch::x86_64::*;
    // SAFETY (whole body): the caller's bounds.
    unsafe {
        // Even and odd elements of 16, as windows in the order 0 1 4 5 2 3 6 7 (the in-lane
        // shuffle's order; the gradient is permuted to match, and unpacking restores the row
        // order on the way out).
        let split = |row: *const f32| {
            let (low, high) = (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)));
            (
                _mm256_shuffle_ps::<0b10_00_10_00>(low, high),
                _mm256_shuffle_ps::<0b11_01_11_01>(low, high),
            )
        };
        let (a, b) = split(x_top);
        let (c, d) = split(x_bottom);
        let g = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(
            _mm256_loadu_ps(grad),
        )));
        // PyTorch's rule: a later element wins when greater or NaN.
        let wins = |candidate, best| {
            _mm256_or_ps(
                _mm256_cmp_ps::<_CMP_GT_OQ>(candidate, best),
                _mm256_cmp_ps::<_CMP_UNORD_Q>(candidate, candidate),
            )
        };
        let takes_b = wins(b, a);
        let best = _mm256_blendv_ps(a, b, takes_b);
        let takes_c = wins(c, best);
        let best = _mm256_blendv_ps(best, c, takes_c);
        let takes_d = wins(d, best);
        let later = _mm256_or_ps(takes_c, takes_d);
        let to_a = _mm256_andnot_ps(_mm256_or_ps(takes_b, later), g);
        let to_b = _mm256_and_ps(_mm256_andnot_ps(later, takes_b), g);
        let to_c = _mm256_and_ps(_mm256_andnot_ps(takes_d, takes_c), g);
        let to_d = _mm256_and_ps(takes_d, g);
        _mm256_storeu_ps(dx_top, _mm256_unpacklo_ps(to_a, to_b));
        _mm256_storeu_ps(dx_top.add(8), _mm256_unpackhi_ps(to_a, to_b));
        _mm256_storeu_ps(dx_bottom, _mm256_unpacklo_ps(to_c, to_d));
        _mm256_storeu_ps(dx_bottom.add(8), _mm256_unpackhi_ps(to_c, to_d));
    }
}

fn unpool_planes_2x2(dims: &PoolDims, x: &[f32], grad: &[f32], dx: &mut [MaybeUninit<f32>]) {
    let (width, out_width) = (dims.width, dims.out_width);
    let (plane_len, out_len) = (dims.height * width, dims.out_height * out_width);
    let zero = |values: &mut [MaybeUninit<f32>]| {
        for value in values {
            value.write(0.0);
        }
    };
    for ((dx, plane), grad) in dx
        .chunks_mut(plane_len)
        .zip(x.chunks(plane_len))
        .zip(grad.chunks(out_len))
    {
        let (pooled_rows, rest) = dx.split_at_mut(2 * dims.out_height * width);
        // Rows and columns past the last whole window get no gradient.
        zero(rest);
        for ((dx, x), grad) in pooled_rows
            .chunks_mut(2 * width)
            .zip(plane.chunks(2 * width))
            .zip(grad.chunks(out_width))
        {
            let (dx_top, dx_bottom) = dx.split_at_mut(width);
            let (x_top, x_bottom) = x.split_at(width);
            zero(&mut dx_top[2 * out_width..]);
            zero(&mut dx_bottom[2 * out_width..]);
            unpool_rows_2x2(true, x_top, x_bottom, grad, dx_top, dx_bottom);
        }
    }
}

/// A vector of `len` elements, each written once by `fill` (which must write them all).
fn filled_vec(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut values: Vec<f32> = Vec::with_capacity(len);
    fill(&mut values.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised the first `len` elements (every caller writes each one).
    unsafe { values.set_len(len) };
    values
}

fn max_pool_forward(dims: &PoolDims, x: &[f32]) -> Vec<f32> {
    let (plane_len, out_len) = (dims.height * dims.width, dims.out_height * dims.out_width);
    let planes = items_per_task(dims.planes);
    filled_vec(dims.planes * out_len, |output| {
        output
            .par_chunks_mut(planes * out_len)
            .zip(x.par_chunks(planes * plane_len))
            .for_each(|(output, x)| {
                if dims.is_plain_2x2() {
                    return pool_planes_2x2(dims, x, output);
                }
                for (out, plane) in output.chunks_mut(out_len).zip(x.chunks(plane_len)) {
                    for (index, out) in out.iter_mut().enumerate() {
                        let (row, col) = (index / dims.out_width, index % dims.out_width);
                        out.write(plane[dims.argmax(plane, row, col)]);
                    }
                }
            })
    })
}

fn max_pool_backward(dims: &PoolDims, x: &[f32], output_grad: &[f32]) -> Vec<f32> {
    let (plane_len, out_len) = (dims.height * dims.width, dims.out_height * dims.out_width);
    let planes = items_per_task(dims.planes);
    if dims.is_plain_2x2() {
        // Windows do not overlap: each input element is written once, with its window's
        // gradient or zero.
        return filled_vec(dims.planes * plane_len, |dx| {
            dx.par_chunks_mut(planes * plane_len)
                .zip(x.par_chunks(planes * plane_len))
                .zip(output_grad.par_chunks(planes * out_len))
                .for_each(|((dx, x), grad)| unpool_planes_2x2(dims, x, grad, dx))
        });
    }
    // Windows may overlap: accumulate.
    let mut dx = vec![0.0f32; dims.planes * plane_len];
    dx.par_chunks_mut(planes * plane_len)
        .zip(x.par_chunks(planes * plane_len))
        .zip(output_grad.par_chunks(planes * out_len))
        .for_each(|((dx, x), grad)| {
            for ((dx, plane), grad) in dx
                .chunks_mut(plane_len)
                .zip(x.chunks(plane_len))
                .zip(grad.chunks(out_len))
            {
                for (index, &g) in grad.iter().enumerate() {
                    let (row, col) = (index / dims.out_width, index % dims.out_width);
                    dx[dims.argmax(plane, row, col)] += g;
                }
            }
        });
    dx
}

impl LayerKernelOps for Flex {
    fn layer_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        window: Window2d,
    ) -> FlexTensor {
        let (x, weight, bias) = (contiguous(x), contiguous(weight), contiguous(bias));
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        let output = conv2d_forward(&dims, elements(&x), elements(&weight), elements(&bias));
        from_vec(output, dims.output_shape())
    }

    fn layer_max_pool2d(x: FlexTensor, window: Window2d) -> FlexTensor {
        let x = contiguous(x);
        let shape = x.shape();
        let dims = PoolDims::new(&shape, window);
        let output = max_pool_forward(&dims, elements(&x));
        from_vec(
            output,
            Shape::new([shape[0], shape[1], dims.out_height, dims.out_width]),
        )
    }
}

impl LayerKernelBackward for Flex {
    fn layer_conv2d_backward(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        window: Window2d,
        wanted: ConvGradients,
    ) -> Conv2dGrads<FlexTensor> {
        let (x, weight, output_grad) = (contiguous(x), contiguous(weight), contiguous(output_grad));
        let dims = ConvDims::new(&x.shape(), &weight.shape(), window);
        assert_eq!(
            output_grad.shape(),
            dims.output_shape(),
            "conv2d output gradient"
        );
        let (dx, sums) = conv2d_backward(
            &dims,
            elements(&x),
            elements(&weight),
            elements(&output_grad),
            wanted,
        );
        Conv2dGrads {
            x: dx.map(|dx| from_vec(dx, x.shape())),
            weight: wanted.weight.then(|| from_vec(sums.weight, weight.shape())),
            bias: wanted
                .bias
                .then(|| from_vec(sums.bias, Shape::new([dims.out_channels]))),
        }
    }

    fn layer_max_pool2d_backward(
        x: FlexTensor,
        output_grad: FlexTensor,
        window: Window2d,
    ) -> FlexTensor {
        let (x, output_grad) = (contiguous(x), contiguous(output_grad));
        let dims = PoolDims::new(&x.shape(), window);
        let dx = max_pool_backward(&dims, elements(&x), elements(&output_grad));
        from_vec(dx, x.shape())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 path (full blocks and masked tails) against the scalar one, with ties, NaNs
    /// and infinities among random values, and a NaN and an infinite gradient.
    #[test]
    fn vector_and_scalar_unpooling_agree() {
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, 1.0, 1.0];
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u32
        };
        for windows in [1, 3, 7, 8, 9, 14, 16, 21] {
            for _ in 0..20 {
                let mut row = |len: usize| -> Vec<f32> {
                    (0..len)
                        .map(|_| match next() % 4 {
                            0 => specials[next() as usize % specials.len()],
                            _ => (next() % 7) as f32 - 3.0,
                        })
                        .collect()
                };
                let (x_top, x_bottom, grad) = (row(2 * windows), row(2 * windows), row(windows));
                let run = |vector: bool| {
                    let mut top = vec![MaybeUninit::new(-7.0f32); 2 * windows];
                    let mut bottom = vec![MaybeUninit::new(-7.0f32); 2 * windows];
                    unpool_rows_2x2(vector, &x_top, &x_bottom, &grad, &mut top, &mut bottom);
                    let read = |v: Vec<MaybeUninit<f32>>| -> Vec<u32> {
                        v.into_iter()
                            .map(|e| unsafe { e.assume_init() }.to_bits())
                            .collect()
                    };
                    (read(top), read(bottom))
                };
                let scalar = run(false);
                assert_eq!(
                    run(true),
                    scalar,
                    "{windows} windows: {x_top:?} {x_bottom:?} {grad:?}"
                );
                // Each window routes its gradient to exactly one of its four elements.
                for (w, &g) in grad.iter().enumerate() {
                    let routed = [
                        scalar.0[2 * w],
                        scalar.0[2 * w + 1],
                        scalar.1[2 * w],
                        scalar.1[2 * w + 1],
                    ];
                    let to_grad = routed.iter().filter(|&&bits| bits == g.to_bits()).count();
                    let zeros = routed.iter().filter(|&&bits| bits == 0).count();
                    assert!(
                        to_grad >= 1 && zeros >= 3,
                        "window {w}: {routed:?} for {}",
                        grad[w]
                    );
                }
            }
        }
    }
}
