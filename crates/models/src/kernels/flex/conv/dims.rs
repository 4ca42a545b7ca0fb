//! The sizes of one convolution and the output positions each input index reaches.

use super::super::super::ops::Window2d;
use activations::burn::tensor::Shape;

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug)]
pub(in super::super) struct ConvDims {
    pub(in super::super) batch: usize,
    pub(in super::super) in_channels: usize,
    pub(in super::super) height: usize,
    pub(in super::super) width: usize,
    pub(in super::super) out_channels: usize,
    pub(in super::super) out_height: usize,
    pub(in super::super) out_width: usize,
    pub(in super::super) window: Window2d,
}

impl ConvDims {
    pub(in super::super) fn new(x: &Shape, weight: &Shape, window: Window2d) -> Self {
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
    pub(in super::super) fn patch_len(&self) -> usize {
        self.in_channels * self.window.kernel[0] * self.window.kernel[1]
    }

    /// Columns of the im2col matrix: one per output position.
    pub(in super::super) fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    pub(in super::super) fn input_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    pub(in super::super) fn output_len(&self) -> usize {
        self.out_channels * self.positions()
    }

    pub(in super::super) fn output_shape(&self) -> Shape {
        Shape::new([
            self.batch,
            self.out_channels,
            self.out_height,
            self.out_width,
        ])
    }

    /// Stride 1, dilation 1 and an output as wide as the input, where [`im2col`] copies whole
    /// shifted planes; the padding must be narrower than the input, so that a tap's shift
    /// leaves part of each row.
    pub(in super::super) fn is_same_size_unit_stride(&self) -> bool {
        self.window.stride == [1, 1]
            && self.window.dilation == [1, 1]
            && self.out_width == self.width
            && self.window.padding[1] < self.width
    }

    /// Calls `f(row, out_row, x_start, out_range, x_step)` for each kernel tap and output row:
    /// in row `row` of the im2col matrix, output columns `out_range` of output row `out_row`
    /// read input elements `x_start + i · x_step`; every other column is padding (all of them
    /// when `out_range` is empty).
    // Inlined into the callers' AVX-512 copies, so that their runs' vector code inlines too.
    #[inline(always)]
    pub(in super::super) fn for_each_tap(
        &self,
        mut f: impl FnMut(usize, usize, usize, std::ops::Range<usize>, usize),
    ) {
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
pub(in super::super) fn valid_outputs(
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
