//! [`LayerKernelOps`] for Flex: convolution as per-sample im2col + `gemm`, max-pooling as one
//! pass, over the tensors' f32 storage; samples (or planes) spread over rayon's threads.

use super::{Conv2dGrads, ConvGradients, LayerKernelBackward, LayerKernelOps, Window2d};
use activations::burn::backend::Flex;
use activations::burn::backend::TensorMetadata;
use activations::burn::backend::flex::FlexTensor;
use activations::burn::tensor::Shape;
use activations::fused::flex_storage::{contiguous, elements, from_vec};
use rayon::prelude::*;

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

    /// Calls `f(row, x_start, out_range, x_step)` for each kernel tap and output row that
    /// reads the input: row `row` of the im2col matrix, output columns `out_range` of that
    /// output row read input elements `x_start + i · x_step`; every other column is padding.
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
    // Padding and the taps' edges are zero.
    col.fill(0.0);
    let positions = dims.positions();
    let out_width = dims.out_width;
    dims.for_each_tap(|row, out_row, x_start, cols, step| {
        let dst = &mut col[row * positions + out_row * out_width..][cols.clone()];
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
    let mut output = vec![0.0f32; dims.batch * dims.output_len()];
    let samples = items_per_task(dims.batch);
    let kernel = Matrix::rows(weight, dims.out_channels, patch_len);
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
                for (channel, &b) in out.chunks_mut(positions).zip(bias) {
                    channel.fill(b);
                }
                let patches = Matrix::rows(&col, patch_len, positions);
                matmul(out, true, &kernel, &patches);
            }
        });
    output
}

/// Per-task sums of the weight and bias gradients.
struct ParamGrads {
    weight: Vec<f32>,
    bias: Vec<f32>,
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
        let mut sums = ParamGrads {
            weight: vec![
                0.0;
                if wanted.weight {
                    dims.out_channels * patch_len
                } else {
                    0
                }
            ],
            bias: vec![0.0; if wanted.bias { dims.out_channels } else { 0 }],
        };
        let mut col = vec![
            0.0f32;
            if wanted.weight {
                patch_len * positions
            } else {
                0
            }
        ];
        let mut dcol = vec![
            0.0f32;
            if dx.is_some() {
                patch_len * positions
            } else {
                0
            }
        ];
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
    let mut total = ParamGrads {
        weight: vec![
            0.0;
            if wanted.weight {
                dims.out_channels * patch_len
            } else {
                0
            }
        ],
        bias: vec![0.0; if wanted.bias { dims.out_channels } else { 0 }],
    };
    for partial in partials {
        for (sum, value) in total.weight.iter_mut().zip(&partial.weight) {
            *sum += value;
        }
        for (sum, value) in total.bias.iter_mut().zip(&partial.bias) {
            *sum += value;
        }
    }
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
    if (candidate > best) | candidate.is_nan() {
        candidate
    } else {
        best
    }
}

/// `grad` routed to the maximum of `[top_left, top_right, bottom_left, bottom_right]` by
/// [`max_nan`]'s rule (scanning in that order), zero elsewhere. Branch-free, so that the
/// loop around it vectorises and random data costs no mispredictions.
#[inline(always)]
fn route_2x2(values: [f32; 4], grad: f32) -> [f32; 4] {
    let [a, b, c, d] = values;
    // `|` and `&`, not `||` and `&&`: no short-circuit branches.
    let takes_b = (b > a) | b.is_nan();
    let best = if takes_b { b } else { a };
    let takes_c = (c > best) | c.is_nan();
    let best = if takes_c { c } else { best };
    let takes_d = (d > best) | d.is_nan();
    let wins_c = takes_c & !takes_d;
    let wins_b = takes_b & !takes_c & !takes_d;
    let wins_a = !takes_b & !takes_c & !takes_d;
    let pick = |wins: bool| if wins { grad } else { 0.0 };
    [pick(wins_a), pick(wins_b), pick(wins_c), pick(takes_d)]
}

fn max_pool_forward(dims: &PoolDims, x: &[f32]) -> Vec<f32> {
    let (plane_len, out_len) = (dims.height * dims.width, dims.out_height * dims.out_width);
    let mut output = vec![0.0f32; dims.planes * out_len];
    let planes = items_per_task(dims.planes);
    let out_width = dims.out_width;
    output
        .par_chunks_mut(planes * out_len)
        .zip(x.par_chunks(planes * plane_len))
        .for_each(|(output, x)| {
            for (out, plane) in output.chunks_mut(out_len).zip(x.chunks(plane_len)) {
                for (out_row, out) in out.chunks_mut(out_width).enumerate() {
                    if dims.is_plain_2x2() {
                        let top = &plane[2 * out_row * dims.width..][..2 * out_width];
                        let bottom = &plane[(2 * out_row + 1) * dims.width..][..2 * out_width];
                        for ((out, top), bottom) in out
                            .iter_mut()
                            .zip(top.chunks_exact(2))
                            .zip(bottom.chunks_exact(2))
                        {
                            *out = max_nan(max_nan(max_nan(top[0], top[1]), bottom[0]), bottom[1]);
                        }
                    } else {
                        for (out_col, out) in out.iter_mut().enumerate() {
                            *out = plane[dims.argmax(plane, out_row, out_col)];
                        }
                    }
                }
            }
        });
    output
}

fn max_pool_backward(dims: &PoolDims, x: &[f32], output_grad: &[f32]) -> Vec<f32> {
    let (plane_len, out_len) = (dims.height * dims.width, dims.out_height * dims.out_width);
    let mut dx = vec![0.0f32; dims.planes * plane_len];
    let planes = items_per_task(dims.planes);
    let out_width = dims.out_width;
    dx.par_chunks_mut(planes * plane_len)
        .zip(x.par_chunks(planes * plane_len))
        .zip(output_grad.par_chunks(planes * out_len))
        .for_each(|((dx, x), grad)| {
            for ((dx, plane), grad) in dx
                .chunks_mut(plane_len)
                .zip(x.chunks(plane_len))
                .zip(grad.chunks(out_len))
            {
                for (out_row, grad) in grad.chunks(out_width).enumerate() {
                    if dims.is_plain_2x2() {
                        // Windows do not overlap: each input element gets its window's
                        // gradient or zero, written once.
                        let (top, bottom) =
                            (2 * out_row * dims.width, (2 * out_row + 1) * dims.width);
                        let x_top = &plane[top..][..2 * out_width];
                        let x_bottom = &plane[bottom..][..2 * out_width];
                        let (dx_top, dx_bottom) =
                            dx[top..bottom + dims.width].split_at_mut(dims.width);
                        let (dx_top, dx_bottom) = (
                            &mut dx_top[..2 * out_width],
                            &mut dx_bottom[..2 * out_width],
                        );
                        for (col, &g) in grad.iter().enumerate() {
                            let (left, right) = (2 * col, 2 * col + 1);
                            let routed = route_2x2(
                                [x_top[left], x_top[right], x_bottom[left], x_bottom[right]],
                                g,
                            );
                            dx_top[left] = routed[0];
                            dx_top[right] = routed[1];
                            dx_bottom[left] = routed[2];
                            dx_bottom[right] = routed[3];
                        }
                    } else {
                        for (out_col, &g) in grad.iter().enumerate() {
                            dx[dims.argmax(plane, out_row, out_col)] += g;
                        }
                    }
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
