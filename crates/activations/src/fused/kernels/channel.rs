//! The channel-wise kernels of any [`LearnedFormula`]: each channel (PReLU's slopes), or each
//! sample and channel (APReLU's), has its own parameters, and the backward reduces each
//! parameter's gradient over its channel in the same pass that writes the input gradient.
//!
//! The reduction has a fixed order, so two runs give bit-identical gradients: each task (a
//! fixed slice of the tensor, whatever thread runs it) sums its runs in 16 f32 lanes over
//! blocks of 1024 elements and the blocks in f64, and the tasks' sums are added in task order.

use super::super::formula::{Formula, LearnedFormula, MAX_PARAMETERS};
use super::block_sums::lanes_total;
use super::loops::{CHUNK, Isa, Unary, isa, map_into, simd_loop};
use rayon::prelude::*;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

/// A formula's parameters, as it receives them.
type Parameters = [f32; MAX_PARAMETERS];

/// The layout a channel-wise op sees: `[outer, rows, inner]`, row-major, with parameter row `r`
/// for each run of `inner` elements whose index along `rows` is `r`. `rows` is 1 (one set of
/// parameters for the whole tensor, `inner` = every element), `C` (per channel of
/// `[N, C, ...]`) or `N·C` (per sample and channel).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelLayout {
    pub rows: usize,
    pub inner: usize,
}

impl ChannelLayout {
    fn row(&self, flat: usize) -> usize {
        (flat / self.inner) % self.rows
    }

    /// Calls `segment(start, end, row)` for the runs of one parameter row within `start..end`.
    fn segments(&self, start: usize, end: usize, mut segment: impl FnMut(usize, usize, usize)) {
        let mut pos = start;
        while pos < end {
            let stop = end.min((pos / self.inner + 1) * self.inner);
            segment(pos, stop, self.row(pos));
            pos = stop;
        }
    }

    /// Elements per parallel task: whole rows of channels when a channel's run is one element.
    fn task_len(&self) -> usize {
        if self.inner == 1 {
            self.rows * (CHUNK / self.rows).max(1)
        } else {
            CHUNK
        }
    }
}

/// Parameter row `row` of `[rows, F::PARAMETERS]`, padded for the formula.
#[inline(always)]
fn row_parameters<F: Formula>(parameters: &[f32], row: usize) -> Parameters {
    let mut padded = [0.0; MAX_PARAMETERS];
    padded[..F::PARAMETERS].copy_from_slice(&parameters[row * F::PARAMETERS..][..F::PARAMETERS]);
    padded
}

/// `f(x)` with one row's parameters, unpacked once before the loop.
#[derive(Clone, Copy)]
struct Value<F>(Parameters, PhantomData<F>);
impl<F: Formula> Unary for Value<F> {
    #[inline(always)]
    fn call(self, x: f32) -> f32 {
        F::value(self.0, x)
    }
}

/// The forward of `F` with parameters `[rows, F::PARAMETERS]` laid out by `layout`.
pub(crate) fn channel_forward<F: Formula>(
    input: &[f32],
    parameters: &[f32],
    layout: ChannelLayout,
    output: &mut [MaybeUninit<f32>],
) {
    let isa = isa();
    let task = layout.task_len();
    let formula = F::from_parameters([0.0; MAX_PARAMETERS]);
    let run = |(index, (o, x)): (usize, (&mut [MaybeUninit<f32>], &[f32]))| {
        if layout.inner == 1 {
            // Whole rows of all channels, each element with its own parameters.
            for (o_row, x_row) in o.chunks_mut(layout.rows).zip(x.chunks(layout.rows)) {
                row_forward(isa, x_row, parameters, o_row, formula);
            }
        } else {
            let base = index * task;
            layout.segments(base, base + x.len(), |start, end, row| {
                let (s, e) = (start - base, end - base);
                let value = Value(row_parameters::<F>(parameters, row), PhantomData::<F>);
                map_into(isa, &x[s..e], &mut o[s..e], value);
            });
        }
    };
    output
        .par_chunks_mut(task)
        .zip(input.par_chunks(task))
        .enumerate()
        .for_each(run);
}

// One row of channels, element `c` with parameter row `c`.
simd_loop!(row_forward, (x: &[f32], parameters: &[f32], output: &mut [MaybeUninit<f32>]),
    formula: Formula, {
    let _ = formula;
    let rows = parameters.chunks_exact(F::PARAMETERS);
    for ((o, &v), p) in output.iter_mut().zip(x).zip(rows) {
        let mut padded = [0.0; MAX_PARAMETERS];
        padded[..F::PARAMETERS].copy_from_slice(p);
        o.write(F::value(padded, v));
    }
});

/// The backward of [`channel_forward`]: the input gradient in place of `grad`, and returns the
/// parameters' gradient `[rows, F::PARAMETERS]`, each entry the sum over its row's elements of
/// [`LearnedFormula::parameter_backward`], in a fixed order.
pub(crate) fn channel_backward<F: LearnedFormula>(
    input: &[f32],
    parameters: &[f32],
    layout: ChannelLayout,
    grad: &mut [f32],
) -> Vec<f32> {
    let isa = isa();
    let task = layout.task_len();
    let formula = F::from_parameters([0.0; MAX_PARAMETERS]);
    let count = F::PARAMETERS;
    // Each task's sums: of every row ([N, C] rows of all channels), or per run of one row.
    let run = |(index, (g, x)): (usize, (&mut [f32], &[f32]))| {
        if layout.inner == 1 {
            let mut rows = vec![0.0f64; layout.rows * count];
            for (g_row, x_row) in g.chunks_mut(layout.rows).zip(x.chunks(layout.rows)) {
                row_backward(isa, x_row, parameters, g_row, &mut rows, formula);
            }
            return TaskSums::Rows(rows);
        }
        let mut runs = Vec::new();
        let base = index * task;
        layout.segments(base, base + x.len(), |start, end, row| {
            let (s, e) = (start - base, end - base);
            let mut total = [0.0f64; MAX_PARAMETERS];
            let row_parameters = row_parameters::<F>(parameters, row);
            run_backward(
                isa,
                &x[s..e],
                &mut g[s..e],
                &row_parameters,
                &mut total,
                formula,
            );
            runs.push((row, total));
        });
        TaskSums::Runs(runs)
    };
    let per_task: Vec<TaskSums> = grad
        .par_chunks_mut(task)
        .zip(input.par_chunks(task))
        .enumerate()
        .map(run)
        .collect();
    let mut totals = vec![0.0f64; layout.rows * count];
    for sums in per_task {
        match sums {
            TaskSums::Rows(rows) => totals.iter_mut().zip(rows).for_each(|(t, s)| *t += s),
            TaskSums::Runs(runs) => {
                for (row, sums) in runs {
                    let row = &mut totals[row * count..][..count];
                    row.iter_mut().zip(sums).for_each(|(t, s)| *t += s);
                }
            }
        }
    }
    totals.into_iter().map(|total| total as f32).collect()
}

/// One task's parameter sums, added to the totals in task order.
enum TaskSums {
    /// Every row's sums, `[rows, K]` (rows of all channels: each task sees every channel).
    Rows(Vec<f64>),
    /// `(row, sums)` per run of one row, in order.
    Runs(Vec<(usize, [f64; MAX_PARAMETERS])>),
}

/// One row's input gradient in place of `grads` and the sums of its parameter terms, in one
/// pass ([`run_backward`]'s fixed order), on the calling thread: the conv block's backward
/// over a plane's pooling winners. One loop for both, because a formula's backward and its
/// parameter terms share their subexpressions (ACON-C's sigmoid), and because a separate loop
/// of the terms in 8 lanes compiled to scalar code (LLVM unrolled the lanes fully and then
/// could not vectorise them): ACON-C's parameter sums were 9% of a Meta-ACON step.
pub(crate) fn backward_with_parameter_sums<F: LearnedFormula>(
    parameters: Parameters,
    inputs: &[f32],
    grads: &mut [f32],
) -> Parameters {
    assert_eq!(inputs.len(), grads.len(), "one gradient per input");
    let mut total = [0.0f64; MAX_PARAMETERS];
    let formula = F::from_parameters(parameters);
    run_backward(isa(), inputs, grads, &parameters, &mut total, formula);
    total.map(|total| total as f32)
}

// One run of one parameter row in a single pass over `x` and `grad`: `grad` becomes
// `F::backward` in place (`x > 0` is false for NaN: a formula's selects decide, as in
// PyTorch), and `total` gains the sums of `F::parameter_backward`, in 16 f32 lanes per
// parameter over blocks of 1024 and the blocks in f64. Reading both tensors once, with the sums
// vectorised, is what keeps PReLU near leaky_relu's cost. The loops over parameters stop at
// `F::PARAMETERS`, a constant per formula, so that they unroll and the loop over lanes stays
// the innermost one and vectorises (at MAX_PARAMETERS = 17 they did not unroll: ACON-C's conv
// block lost 13%).
simd_loop!(run_backward, (x: &[f32], grad: &mut [f32], parameters: &Parameters,
    total: &mut [f64; MAX_PARAMETERS]), formula: LearnedFormula, {
    const LANES: usize = 16;
    let _ = formula;
    let parameters = *parameters;
    for (xb, gb) in x.chunks(1024).zip(grad.chunks_mut(1024)) {
        let mut lanes = [[0.0f32; LANES]; MAX_PARAMETERS];
        let mut xs = xb.chunks_exact(LANES);
        let mut gs = gb.chunks_exact_mut(LANES);
        for (xl, gl) in (&mut xs).zip(&mut gs) {
            // Fixed-size arrays: no bounds checks, so the lane loop vectorises.
            let xl: &[f32; LANES] = xl.try_into().expect("exact chunk");
            let gl: &mut [f32; LANES] = gl.try_into().expect("exact chunk");
            for j in 0..LANES {
                let (v, gv) = (xl[j], gl[j]);
                let terms = F::parameter_backward(parameters, v, gv);
                for k in 0..F::PARAMETERS {
                    lanes[k][j] += terms[k];
                }
                gl[j] = F::backward(parameters, v, gv);
            }
        }
        // The tail in lanes of its own (indexing `lanes` by its position would keep them in
        // memory through the loop above), joined lane by lane.
        let mut tail = [[0.0f32; LANES]; MAX_PARAMETERS];
        for (j, (&v, gv)) in xs.remainder().iter().zip(gs.into_remainder()).enumerate() {
            let terms = F::parameter_backward(parameters, v, *gv);
            for k in 0..F::PARAMETERS {
                tail[k][j] = terms[k];
            }
            *gv = F::backward(parameters, v, *gv);
        }
        for k in 0..F::PARAMETERS {
            for j in 0..LANES {
                lanes[k][j] += tail[k][j];
            }
            total[k] += lanes_total(lanes[k]);
        }
    }
});

// One row of channels ([N, C] with parameters per channel): both gradients element by
// element, `sums[c·K..]` gaining element `c`'s terms.
simd_loop!(row_backward, (x: &[f32], parameters: &[f32], grad: &mut [f32],
    sums: &mut [f64]), formula: LearnedFormula, {
    let _ = formula;
    let rows = parameters.chunks_exact(F::PARAMETERS);
    let sums = sums.chunks_exact_mut(F::PARAMETERS);
    for (((g, &v), p), sum) in grad.iter_mut().zip(x).zip(rows).zip(sums) {
        let mut padded = [0.0; MAX_PARAMETERS];
        padded[..F::PARAMETERS].copy_from_slice(p);
        let terms = F::parameter_backward(padded, v, *g);
        for k in 0..F::PARAMETERS {
            sum[k] += terms[k] as f64;
        }
        *g = F::backward(padded, v, *g);
    }
});
