//! The GEMM the convolution's im2col path calls (`gemm`, one sample per thread) and the lane
//! sums its bias gradient uses.

/// `Σ values` in sixteen interleaved partial sums, which vectorise (a single running sum is a
/// chain of dependent additions, four cycles each).
pub(super) fn lane_sum(values: &[f32]) -> f32 {
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
pub(super) struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// A row-major matrix.
    pub(super) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `cols × rows` matrix.
    pub(super) fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
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
pub(super) fn matmul(dst: &mut [f32], accumulate: bool, lhs: &Matrix, rhs: &Matrix) {
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
