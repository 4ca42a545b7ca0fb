//! What the seeds support: per activation the 95% interval of its mean test accuracy, a paired
//! comparison with the baseline and with the best activation (runs paired by seed: same data
//! order and initialisation stream), Holm's correction over all of a report's tests, which
//! activations are statistically tied with the best, and a plain-words paragraph that says
//! what can and cannot be concluded.
//!
//! "The best" is the highest mean among the activations with at least two seeds: a one-seed
//! mean above it cannot be tested (its seed-to-seed spread is unknown), so it is shown but
//! neither called the best nor tied with it.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::report::aggregate::ActivationResult;
use crate::report::collect::FinishedRun;
use crate::report::stats::{
    MeanInterval, PairedComparison, holm, mean_interval, paired_t_test, seeds_needed,
};

/// The level of every test and interval.
pub const ALPHA: f64 = 0.05;

/// One activation's statistics, in the order of the results (best mean first).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignificanceRow {
    /// The activation's label.
    pub label: String,
    /// How many seeds it ran.
    pub seeds: usize,
    /// 95% interval of its mean test accuracy (`None` with one seed).
    pub interval: Option<MeanInterval>,
    /// It minus the baseline, paired by seed (`None` for the baseline itself, without a
    /// baseline, or with fewer than two shared seeds).
    pub vs_baseline: Option<PairedComparison>,
    /// `vs_baseline`'s p-value after Holm's correction over every test of the report.
    pub vs_baseline_p_holm: Option<f64>,
    /// It minus the best activation, paired by seed (`None` for the best itself, or with fewer
    /// than two seeds shared with it).
    pub vs_best: Option<PairedComparison>,
    /// `vs_best`'s p-value after Holm's correction over every test of the report.
    pub vs_best_p_holm: Option<f64>,
    /// The best, or tied with it: [`TIED_RULE`]. Down the table (best mean first), over the
    /// tested rows, this is a run of `true` followed by `false` only.
    pub tied_with_best: bool,
    /// It is the best, or was tested against it (at least two seeds shared with it). An
    /// untested row is never tied with the best: its rank is unknown.
    pub tested_against_best: bool,
}

/// The statistics of a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Significance {
    /// The baseline's label, when it is among the results.
    pub baseline: Option<String>,
    /// Seeds per activation (the most any has).
    pub seeds: usize,
    /// One row per activation, best mean first.
    pub rows: Vec<SignificanceRow>,
    /// The index in `rows` of the best: the highest mean among the rows with at least two
    /// seeds (the first row when none has two).
    pub best: Option<usize>,
}

/// What "tied with the best" means, as the report states it.
pub const TIED_RULE: &str = "an activation is tied with the best when its difference from the \
     best is not significant after Holm's correction (adjusted p ≥ 0.05) and every tested \
     activation above it in the table is tied too; so the tied activations are the top of the \
     table, down to the first one the data separate from the best. The best is the highest mean \
     among the activations with at least two seeds; one with fewer seeds shared with it is not \
     tested, and so not tied";

/// Final test accuracy by seed, per label.
fn accuracies(runs: &[FinishedRun]) -> BTreeMap<&str, BTreeMap<u64, f64>> {
    let mut by_label: BTreeMap<&str, BTreeMap<u64, f64>> = BTreeMap::new();
    for run in runs {
        by_label
            .entry(&run.label)
            .or_default()
            .insert(run.seed, run.summary.test_accuracy);
    }
    by_label
}

/// `a − b` over the seeds both ran.
fn paired(a: &BTreeMap<u64, f64>, b: &BTreeMap<u64, f64>) -> Option<PairedComparison> {
    let (a, b): (Vec<f64>, Vec<f64>) = a
        .iter()
        .filter_map(|(seed, x)| b.get(seed).map(|y| (*x, *y)))
        .unzip();
    paired_t_test(&a, &b)
}

/// The statistics of `results` (as [`aggregate`](crate::report::aggregate()) sorted them),
/// with `baseline` (a label, e.g. `relu`) as the reference.
pub fn significance(
    runs: &[FinishedRun],
    results: &[ActivationResult],
    baseline: &str,
) -> Significance {
    let by_label = accuracies(runs);
    let seeds_of = |label: &str| &by_label[label];
    // A mean from one seed has no spread to test it with: the best is the highest testable one.
    let best_index = results
        .iter()
        .position(|r| seeds_of(&r.label).len() >= 2)
        .or((!results.is_empty()).then_some(0));
    let best = best_index.map(|i| results[i].label.as_str());
    let has_baseline = by_label.contains_key(baseline);
    let mut rows: Vec<SignificanceRow> = results
        .iter()
        .map(|r| {
            let own = seeds_of(&r.label);
            let values: Vec<f64> = own.values().copied().collect();
            SignificanceRow {
                label: r.label.clone(),
                seeds: own.len(),
                interval: mean_interval(&values),
                vs_baseline: (has_baseline && r.label != baseline)
                    .then(|| paired(own, seeds_of(baseline)))
                    .flatten(),
                vs_baseline_p_holm: None,
                vs_best: best
                    .filter(|best| *best != r.label)
                    .and_then(|best| paired(own, seeds_of(best))),
                vs_best_p_holm: None,
                tied_with_best: false,
                tested_against_best: false,
            }
        })
        .collect();
    // One family: every test the report shows, against the baseline and against the best.
    // When the best is the baseline the two are one test, counted once.
    let best_is_baseline = best == Some(baseline);
    let distinct_vs_best = |r: &SignificanceRow| r.vs_best.filter(|_| !best_is_baseline);
    let raw: Vec<f64> = rows
        .iter()
        .flat_map(|r| [r.vs_baseline, distinct_vs_best(r)])
        .flatten()
        .map(|c| c.p_value)
        .collect();
    let mut adjusted = holm(&raw).into_iter();
    for row in &mut rows {
        // In the order `raw` was collected; a missing test takes no adjusted value.
        row.vs_baseline_p_holm = row.vs_baseline.and_then(|_| adjusted.next());
        row.vs_best_p_holm = if best_is_baseline {
            row.vs_best.and(row.vs_baseline_p_holm)
        } else {
            row.vs_best.and_then(|_| adjusted.next())
        };
    }
    let mut tied = true;
    for (index, row) in rows.iter_mut().enumerate() {
        let is_best = Some(index) == best_index;
        row.tested_against_best = is_best || row.vs_best.is_some();
        if !row.tested_against_best {
            continue;
        }
        tied &= row.vs_best_p_holm.is_none_or(|p| p >= ALPHA);
        row.tied_with_best = tied;
    }
    Significance {
        baseline: has_baseline.then(|| baseline.to_string()),
        seeds: by_label.values().map(BTreeMap::len).max().unwrap_or(0),
        rows,
        best: best_index,
    }
}

fn labels(rows: &[&SignificanceRow]) -> String {
    if rows.is_empty() {
        return "none".into();
    }
    rows.iter()
        .map(|r| format!("`{}`", r.label))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the data support, in plain words, for under the results table.
pub fn conclusions(significance: &Significance) -> String {
    let mut text = String::new();
    let rows = &significance.rows;
    let Some(best) = significance.best.map(|i| &rows[i]) else {
        return text;
    };
    if significance.seeds < 2 {
        let _ = write!(
            text,
            "**What the data support.** With one seed per activation nothing here separates one \
             activation from another: how much a result moves from seed to seed is unknown, so \
             the order of the table may be chance. Run the comparison with more seeds \
             (`--set 'compare.seeds=[1, 2, 3, 4, 5]'`, split over machines with `--shard`) \
             before reading it as a ranking."
        );
        return text;
    }
    let mut half_widths: Vec<f64> = rows
        .iter()
        .filter_map(|r| r.interval.map(|i| 50.0 * (i.high - i.low)))
        .collect();
    half_widths.sort_by(f64::total_cmp);
    let typical = half_widths
        .get(half_widths.len() / 2)
        .copied()
        .unwrap_or(f64::NAN);
    let others = || {
        rows.iter()
            .filter(|r| r.label != best.label && r.tested_against_best)
    };
    let tied: Vec<&SignificanceRow> = others().filter(|r| r.tied_with_best).collect();
    let below: Vec<&SignificanceRow> = others().filter(|r| !r.tied_with_best).collect();
    let untested: Vec<&SignificanceRow> = rows.iter().filter(|r| !r.tested_against_best).collect();
    let _ = write!(
        text,
        "**What the data support.** With {} seeds per activation, the 95% interval of a mean \
         accuracy is typically ±{typical:.2} points wide. `{}` has the highest mean{}; ",
        significance.seeds,
        best.label,
        if untested.is_empty() {
            ""
        } else {
            " of the activations with at least two seeds"
        }
    );
    if tied.is_empty() {
        let _ = write!(
            text,
            "every other activation is below it (paired t-test over seeds, Holm-adjusted \
             p < {ALPHA}). "
        );
    } else {
        let _ = write!(
            text,
            "{} other activation(s) — {} — are statistically tied with it (paired t-test over \
             seeds, Holm-adjusted p ≥ {ALPHA}), so the data do not rank these {} apart; below \
             it: {}. ",
            tied.len(),
            labels(&tied),
            tied.len() + 1,
            labels(&below)
        );
    }
    if !untested.is_empty() {
        let _ = write!(
            text,
            "{} ran on too few seeds to be tested against it (fewer than two shared seeds): \
             their means are shown, not ranked — run their remaining seeds before reading them. ",
            untested
                .iter()
                .map(|r| {
                    let seeds = r.seeds;
                    format!(
                        "`{}` ({seeds} seed{})",
                        r.label,
                        if seeds == 1 { "" } else { "s" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(baseline) = &significance.baseline {
        let better: Vec<&SignificanceRow> = rows
            .iter()
            .filter(|r| significant(r).is_some_and(|c| c.mean_difference > 0.0))
            .collect();
        let worse: Vec<&SignificanceRow> = rows
            .iter()
            .filter(|r| significant(r).is_some_and(|c| c.mean_difference < 0.0))
            .collect();
        let _ = write!(
            text,
            "Against the baseline `{baseline}` (Holm-adjusted p < {ALPHA}): better: {}; worse: \
             {}; the others cannot be told apart from it. ",
            labels(&better),
            labels(&worse)
        );
    }
    let best_is_baseline = significance.baseline.as_deref() == Some(best.label.as_str());
    let tests = rows.iter().filter(|r| r.vs_baseline.is_some()).count()
        + rows
            .iter()
            .filter(|r| r.vs_best.is_some() && !best_is_baseline)
            .count();
    let _ = write!(
        text,
        "These are {tests} paired t-tests, corrected together with Holm's method: a difference \
         is called significant only when its Holm-adjusted p is below {ALPHA}, which keeps the \
         chance that even one of them does not exist at or below {}%. The table shows the raw p \
         beside the adjusted one; a raw p below {ALPHA} whose adjusted p is not is suggestive, \
         not established. Tied with the best: {TIED_RULE}. ",
        100.0 * ALPHA
    );
    // The closest unresolved difference: what it would take to settle it.
    if let Some(row) = tied.first()
        && let Some(comparison) = row.vs_best
    {
        match seeds_needed(comparison.mean_difference, comparison.sd_difference) {
            Some(n) => {
                let _ = write!(
                    text,
                    "Telling `{}` from `{}` apart — {:.2} points, with a seed-to-seed spread of \
                     the difference of {:.2} points — would take about {n} seeds (80% power, \
                     α = {ALPHA}), if the difference is real.",
                    row.label,
                    best.label,
                    100.0 * comparison.mean_difference.abs(),
                    100.0 * comparison.sd_difference
                );
            }
            None => {
                let _ = write!(
                    text,
                    "`{}` and `{}` reached the same mean accuracy; no number of seeds would \
                     separate what these runs show.",
                    row.label, best.label
                );
            }
        }
    }
    text
}

/// The comparison with the baseline, when it survives Holm's correction.
fn significant(row: &SignificanceRow) -> Option<PairedComparison> {
    row.vs_baseline
        .filter(|_| row.vs_baseline_p_holm.is_some_and(|p| p < ALPHA))
}

/// The "tied with best" cell: `best`, `yes`, `no`, or `untested` (too few seeds).
pub fn tied_cell(row: &SignificanceRow) -> &'static str {
    match (
        row.tested_against_best,
        row.vs_best.is_none(),
        row.tied_with_best,
    ) {
        (false, _, _) => "untested",
        (true, true, _) => "best",
        (true, false, true) => "yes",
        (true, false, false) => "no",
    }
}

/// `[90.85, 91.31]` in percent, or `–` with one seed.
pub fn interval_cell(interval: Option<MeanInterval>) -> String {
    interval.map_or("–".into(), |i| {
        format!("[{:.2}, {:.2}]", 100.0 * i.low, 100.0 * i.high)
    })
}

/// `+0.21 [+0.04, +0.38], p = 0.025, Holm p = 0.210` in points (`p < 0.001` when smaller),
/// or `–`.
pub fn comparison_cell(comparison: Option<PairedComparison>, p_holm: Option<f64>) -> String {
    comparison.map_or("–".into(), |c| {
        format!(
            "{:+.2} [{:+.2}, {:+.2}], p {}, Holm p {}",
            100.0 * c.mean_difference,
            100.0 * c.low,
            100.0 * c.high,
            p_value(c.p_value),
            p_value(p_holm.unwrap_or(c.p_value))
        )
    })
}

/// `= 0.025`, or `< 0.001`.
fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("= {p:.3}")
    }
}
