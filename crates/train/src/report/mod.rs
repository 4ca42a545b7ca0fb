//! The comparison report: `results.csv`, `summary.json` and `report.md` with its plots, from
//! finished runs.
//!
//! - [`collect`]: finished runs read back from sweep directories ([`collect_runs`]);
//! - [`aggregate`](mod@aggregate): one [`ActivationResult`] per label, over its seeds;
//! - [`tables`]: `results.csv` and the markdown;
//! - [`plots`]: the figures, drawn from plain data (results, curves, matrices);
//! - [`inspection`]: `fmnist inspect`'s directory, from an [`Inspection`](crate::inspect::Inspection).
pub mod aggregate;
pub mod collect;
pub mod inspection;
pub mod plots;
pub mod significance;
pub mod stats;
pub mod tables;

use std::path::{Path, PathBuf};

use crate::data::CLASS_NAMES;
use crate::run::dir::write_atomic;

pub use aggregate::{ActivationResult, accuracy_cell, aggregate};
pub use collect::{FinishedRun, collect_runs};
pub use inspection::write_inspection;
pub use tables::results_csv;

use crate::run::RunError;

/// A report that cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A sweep directory to collect from that is not a directory.
    #[error(
        "{} is not a directory: give sweep directories written by `fmnist compare`",
        dir.display()
    )]
    NotADirectory {
        /// The path given.
        dir: PathBuf,
    },
    /// Nothing finished to report on.
    #[error("no finished runs to report on in {}; run `fmnist compare` first", dir.display())]
    NoRuns {
        /// Where the report was to go.
        dir: PathBuf,
    },
    /// A run directory that cannot be read, or a report file that cannot be written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A figure that cannot be drawn.
    #[error(transparent)]
    Plot(#[from] plots::PlotError),
}

/// Writes `results.csv`, `summary.json`, `report.md` and the plots into `out`; `baseline` (a
/// label such as `relu`) is the reference of the paired comparisons.
pub fn write_report(
    runs: &[FinishedRun],
    out: &Path,
    backend_note: &str,
    baseline: &str,
) -> Result<(), ReportError> {
    if runs.is_empty() {
        return Err(ReportError::NoRuns { dir: out.into() });
    }
    std::fs::create_dir_all(out).map_err(RunError::io("create", out))?;
    let results = aggregate(runs);
    let significance = significance::significance(runs, &results, baseline);
    write_atomic(&out.join("results.csv"), results_csv(runs).as_bytes())?;

    let best_run = runs
        .iter()
        .max_by(|a, b| a.summary.test_accuracy.total_cmp(&b.summary.test_accuracy))
        .expect("runs is not empty");
    let summary = serde_json::json!({
        "activations": results,
        "best_run": {
            "dir": best_run.dir,
            "label": best_run.label,
            "seed": best_run.seed,
            "test_accuracy": best_run.summary.test_accuracy,
        },
        "runs": runs.len(),
        "significance": significance,
    });
    write_atomic(
        &out.join("summary.json"),
        serde_json::to_string_pretty(&summary)
            .expect("json")
            .as_bytes(),
    )?;

    let activations: Vec<activations::ActivationConfig> = {
        let mut seen = Vec::new();
        for run in runs {
            let a = run.config.model.activation().clone();
            if !seen.contains(&a) {
                seen.push(a);
            }
        }
        seen
    };
    plots::activation_grid(&activations, &out.join("activations"))?;
    plots::curves(&results, &out.join("curves"))?;
    let intervals: Vec<_> = significance.rows.iter().map(|r| r.interval).collect();
    plots::accuracy_bars(&results, &intervals, &out.join("accuracy"))?;
    let with_gradients: Vec<&ActivationResult> = results
        .iter()
        .filter(|r| !r.grad_norm_per_layer.is_empty())
        .collect();
    if !with_gradients.is_empty() {
        plots::grad_norms(&with_gradients, &out.join("gradients"))?;
    }
    let with_diagnostics: Vec<&ActivationResult> = results
        .iter()
        .filter(|r| !r.dead_fraction_per_epoch.is_empty())
        .collect();
    if !with_diagnostics.is_empty() {
        plots::diagnostic_curves(&with_diagnostics, &out.join("diagnostics"))?;
    }
    plots::confusion(
        &best_run.summary.confusion,
        &CLASS_NAMES,
        &format!("{} (seed {})", best_run.label, best_run.seed),
        &out.join("confusion"),
    )?;

    let markdown = tables::report_markdown(
        runs,
        &results,
        &significance,
        best_run,
        !with_gradients.is_empty(),
        !with_diagnostics.is_empty(),
        backend_note,
    );
    Ok(write_atomic(&out.join("report.md"), markdown.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{DiagnosticRecord, EpochRecord, SplitName, Summary};

    pub(crate) fn fake_run(label: &str, seed: u64, accuracy: f64) -> FinishedRun {
        let mut config = crate::RunConfig::default();
        config
            .model
            .set_activation(label.parse().expect("a registry name"));
        config.train.seed = seed;
        config.train.epochs = 2;
        let history: Vec<EpochRecord> = (1..=2)
            .flat_map(|epoch| {
                [SplitName::Train, SplitName::Test].map(|split| EpochRecord {
                    epoch,
                    split,
                    loss: 1.0 / (epoch as f64 + 2.0),
                    accuracy: accuracy - 0.01 * (2 - epoch) as f64,
                    seconds: 10.0,
                    images_per_second: 100.0,
                })
            })
            .collect();
        let diagnostics = (1..=2)
            .flat_map(|epoch| {
                [("conv1", 0.5), ("output", 2.0)].map(|(layer, grad_norm)| DiagnosticRecord {
                    epoch,
                    layer: layer.into(),
                    dead_fraction: (layer != "output").then_some(0.25),
                    sparsity: (layer != "output").then_some(0.5),
                    saturation: None,
                    grad_norm: Some(grad_norm),
                })
            })
            .collect();
        FinishedRun {
            dir: format!("/sweep/{label}-seed{seed}").into(),
            label: label.into(),
            seed,
            summary: Summary {
                run_format: crate::run::dir::RUN_FORMAT,
                activation: label.into(),
                activation_config: config.model.activation().clone(),
                backend: "flex".into(),
                epochs: 2,
                complete: true,
                test_accuracy: accuracy,
                test_loss: 0.5,
                best_epoch: 2,
                best_test_accuracy: accuracy,
                final_train_loss: 0.5,
                train_images_per_second: 100.0,
                seconds: 20.0,
                params: 1,
                train_images: 1000,
                per_class_accuracy: vec![accuracy; 10],
                confusion: vec![vec![10; 10]; 10],
                model_sha256: None,
                config_sha256: None,
                metrics_sha256: None,
            },
            config,
            history,
            diagnostics,
            inspection: None,
        }
    }

    #[test]
    fn aggregates_over_seeds_and_sorts_by_accuracy() {
        let runs = vec![
            fake_run("identity", 1, 0.70),
            fake_run("relu", 1, 0.80),
            fake_run("relu", 2, 0.90),
        ];
        let results = aggregate(&runs);
        assert_eq!(results[0].label, "relu");
        assert!((results[0].test_accuracy_mean - 0.85).abs() < 1e-12);
        assert!((results[0].test_accuracy_std - 0.0707106781).abs() < 1e-9);
        assert_eq!(results[1].test_accuracy_std, 0.0);
        assert_eq!(results[0].best_epoch, 2);
        assert_eq!(results[0].seconds_per_epoch, 10.0);
        assert_eq!(results[0].dead_fraction, Some(0.25));
        assert_eq!(results[0].grad_norm_ratio, Some(0.25));
        assert_eq!(results[0].test_accuracy_per_epoch.len(), 2);
        let csv = results_csv(&runs);
        assert_eq!(csv.lines().count(), 1 + 3 * 2);
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("identity-seed1,identity,identity,1,1,")
        );
    }

    #[test]
    /// Five seeds: gelu and relu are tied (their paired difference is noise), sigmoid is
    /// clearly below; the numbers are the paired t-test's on exactly these accuracies.
    fn significance_pairs_by_seed_and_groups_ties_with_the_best() {
        let relu = [0.9112, 0.9098, 0.9131, 0.9085, 0.9120];
        let gelu = [0.9120, 0.9090, 0.9128, 0.9101, 0.9115];
        let sigmoid = [0.8802, 0.8790, 0.8831, 0.8785, 0.8820];
        let mut runs = Vec::new();
        for (seed, ((r, g), s)) in relu.iter().zip(&gelu).zip(&sigmoid).enumerate() {
            // Seeds in another order per label: the pairing is by seed, not by position.
            runs.push(fake_run("sigmoid", seed as u64, *s));
            runs.push(fake_run("relu", seed as u64, *r));
            runs.push(fake_run("gelu", seed as u64, *g));
        }
        let results = aggregate(&runs);
        let significance = significance::significance(&runs, &results, "relu");
        let labels: Vec<&str> = significance.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["gelu", "relu", "sigmoid"]);
        let tied: Vec<bool> = significance.rows.iter().map(|r| r.tied_with_best).collect();
        assert_eq!(tied, [true, true, false]);
        let expected = stats::paired_t_test(&sigmoid, &relu).unwrap();
        assert_eq!(significance.rows[2].vs_baseline, Some(expected));
        assert!(expected.p_value < 0.001 && expected.mean_difference < 0.0);
        assert_eq!(
            significance.rows[1].vs_baseline, None,
            "the baseline itself"
        );

        let text = significance::conclusions(&significance);
        assert!(text.contains("With 5 seeds"), "{text}");
        assert!(text.contains("— `relu` — are statistically tied"), "{text}");
        assert!(text.contains("worse: `sigmoid`"), "{text}");
        assert!(text.contains("would take about"), "{text}");

        // One seed: no interval, and the text says the order may be chance.
        let single = vec![fake_run("relu", 1, 0.9), fake_run("gelu", 1, 0.91)];
        let results = aggregate(&single);
        let significance = significance::significance(&single, &results, "relu");
        assert!(significance.rows.iter().all(|r| r.interval.is_none()));
        assert!(significance::conclusions(&significance).contains("may be chance"));
    }

    /// A one-seed mean above every five-seed mean is shown, not crowned: the best is the
    /// highest mean that can be tested, and the one-seed row is neither best nor tied with it
    /// (the ResNet study's first report called a one-seed `gelu` the best, and every five-seed
    /// activation "tied" with it because nothing could be tested against one seed).
    #[test]
    fn the_best_is_chosen_among_activations_with_two_seeds() {
        let relu = [0.9170, 0.9120, 0.9210, 0.9150, 0.9190];
        let aprelu = [0.8990, 0.8950, 0.9030, 0.8970, 0.9010];
        let mut runs = vec![fake_run("gelu", 0, 0.9233)];
        for (seed, (r, a)) in relu.iter().zip(&aprelu).enumerate() {
            runs.push(fake_run("relu", seed as u64, *r));
            runs.push(fake_run("aprelu", seed as u64, *a));
        }
        let results = aggregate(&runs);
        let significance = significance::significance(&runs, &results, "relu");
        let labels: Vec<&str> = significance.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["gelu", "relu", "aprelu"]);
        assert_eq!(significance.best, Some(1));
        let cells: Vec<&str> = significance
            .rows
            .iter()
            .map(significance::tied_cell)
            .collect();
        assert_eq!(cells, ["untested", "best", "no"]);
        assert_eq!(significance.rows[0].vs_best, None);
        let expected = stats::paired_t_test(&aprelu, &relu).unwrap();
        assert_eq!(significance.rows[2].vs_best, Some(expected));

        let text = significance::conclusions(&significance);
        assert!(
            text.contains("`relu` has the highest mean of the activations with at least two"),
            "{text}"
        );
        assert!(
            text.contains("`gelu` (1 seed) ran on too few seeds"),
            "{text}"
        );
        assert!(
            text.contains("every other activation is below it"),
            "{text}"
        );
    }

    /// When the baseline has the best mean, "against the baseline" and "against the best" are
    /// one test: Holm's correction counts it once (counted twice, every adjusted p doubled).
    #[test]
    fn the_baseline_as_the_best_is_one_test_not_two() {
        let relu = [0.9170, 0.9120, 0.9210, 0.9150, 0.9190];
        let prelu = [0.9160, 0.9130, 0.9190, 0.9140, 0.9170];
        let aprelu = [0.8990, 0.8950, 0.9030, 0.8970, 0.9010];
        let mut runs = Vec::new();
        for (seed, ((r, p), a)) in relu.iter().zip(&prelu).zip(&aprelu).enumerate() {
            runs.push(fake_run("relu", seed as u64, *r));
            runs.push(fake_run("prelu", seed as u64, *p));
            runs.push(fake_run("aprelu", seed as u64, *a));
        }
        let results = aggregate(&runs);
        let significance = significance::significance(&runs, &results, "relu");
        assert_eq!(significance.best, Some(0), "relu has the highest mean");
        let raw = [
            stats::paired_t_test(&prelu, &relu).unwrap().p_value,
            stats::paired_t_test(&aprelu, &relu).unwrap().p_value,
        ];
        let expected = stats::holm(&raw);
        for (row, p) in significance.rows[1..].iter().zip(&expected) {
            assert_eq!(row.vs_baseline_p_holm, Some(*p), "{}", row.label);
            assert_eq!(row.vs_best_p_holm, Some(*p), "{}", row.label);
        }
        let text = significance::conclusions(&significance);
        assert!(text.contains("These are 2 paired t-tests"), "{text}");
    }

    /// "Tied with the best" runs down the table: `relu`, steadily 0.3 points below `gelu`, is
    /// separated from it, so `tanh` below it is not tied either, although its own noisy
    /// difference from `gelu` has a large p (per-row p-values made the old column
    /// non-monotone). Every p-value is also shown after Holm's correction over all four tests.
    #[test]
    fn tied_with_best_is_monotone_and_p_values_are_holm_adjusted() {
        let gelu = [0.9100, 0.9120, 0.9080, 0.9110, 0.9090];
        let relu = [0.9071, 0.9089, 0.9051, 0.9080, 0.9061];
        let tanh = [0.9150, 0.9000, 0.9160, 0.8980, 0.9010];
        let mut runs = Vec::new();
        for (seed, ((g, r), t)) in gelu.iter().zip(&relu).zip(&tanh).enumerate() {
            runs.push(fake_run("gelu", seed as u64, *g));
            runs.push(fake_run("relu", seed as u64, *r));
            runs.push(fake_run("tanh", seed as u64, *t));
        }
        let results = aggregate(&runs);
        let significance = significance::significance(&runs, &results, "relu");
        let labels: Vec<&str> = significance.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["gelu", "relu", "tanh"]);
        let tanh_vs_best = significance.rows[2].vs_best.unwrap();
        assert!(tanh_vs_best.p_value > 0.05, "{tanh_vs_best:?}");
        let tied: Vec<bool> = significance.rows.iter().map(|r| r.tied_with_best).collect();
        assert_eq!(tied, [true, false, false]);

        // The four tests (gelu and tanh against the baseline, relu and tanh against the best)
        // adjusted together, in the order the rows show them.
        let raw: Vec<f64> = significance
            .rows
            .iter()
            .flat_map(|r| [r.vs_baseline, r.vs_best])
            .flatten()
            .map(|c| c.p_value)
            .collect();
        assert_eq!(raw.len(), 4);
        let shown: Vec<f64> = significance
            .rows
            .iter()
            .flat_map(|r| [r.vs_baseline_p_holm, r.vs_best_p_holm])
            .flatten()
            .collect();
        assert_eq!(shown, stats::holm(&raw));
        assert!(shown.iter().zip(&raw).all(|(holm, raw)| holm >= raw));

        let text = significance::conclusions(&significance);
        assert!(text.contains(significance::TIED_RULE), "{text}");
        assert!(text.contains("better: `gelu`"), "{text}");
        let out = tempfile::tempdir().unwrap();
        write_report(&runs, out.path(), "Backend flex.", "relu").unwrap();
        let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        assert!(report.contains("raw and Holm-adjusted p"), "{report}");
        assert!(report.contains(", Holm p "), "{report}");
    }

    /// Gradient norms without slot statistics (a ResNet's layers are its convolutions, not its
    /// slots): no dead-unit curve, and no plot over an empty range (which never finished).
    #[test]
    fn runs_with_gradient_norms_only_get_no_diagnostics_plot() {
        let out = tempfile::tempdir().unwrap();
        let mut runs = vec![fake_run("relu", 1, 0.8), fake_run("gelu", 1, 0.7)];
        for run in &mut runs {
            for record in &mut run.diagnostics {
                record.dead_fraction = None;
                record.sparsity = None;
            }
        }
        assert!(aggregate(&runs)[0].dead_fraction_per_epoch.is_empty());
        write_report(&runs, out.path(), "Backend flex.", "relu").unwrap();
        assert!(out.path().join("gradients.png").is_file());
        assert!(!out.path().join("diagnostics.png").exists());
        // The plot itself draws an empty panel for values that are all NaN.
        let mut results = aggregate(&runs);
        results[0].dead_fraction_per_epoch = vec![f64::NAN, f64::NAN];
        plots::diagnostic_curves(&[&results[0]], &out.path().join("nan")).unwrap();
    }

    #[test]
    fn report_writes_markdown_csv_json_and_plots() {
        let out = tempfile::tempdir().unwrap();
        let runs = vec![fake_run("relu", 1, 0.8), fake_run("sigmoid", 1, 0.7)];
        write_report(&runs, out.path(), "Backend flex.", "relu").unwrap();
        for file in [
            "report.md",
            "results.csv",
            "summary.json",
            "activations.png",
            "activations.svg",
            "curves.png",
            "curves.svg",
            "accuracy.png",
            "accuracy.svg",
            "gradients.png",
            "gradients.svg",
            "confusion.png",
            "confusion.svg",
        ] {
            let size = std::fs::metadata(out.path().join(file))
                .map(|m| m.len())
                .unwrap_or(0);
            assert!(size > 500, "{file}: {size} bytes");
        }
        let png = std::fs::read(out.path().join("curves.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        assert!(
            report.contains("2 runs: 2 activations × 1 seed(s)."),
            "{report}"
        );
        let relu_row = report.find("| 1 | `relu`").expect("relu ranks first");
        assert!(report[relu_row..].contains("`sigmoid`"), "{report}");
        assert!(report.contains("![confusion](confusion.png)"));
        // A sweep still running: the header says the seeds are uneven, not "2 seed(s)".
        let uneven = vec![
            fake_run("relu", 1, 0.8),
            fake_run("relu", 2, 0.82),
            fake_run("sigmoid", 1, 0.7),
        ];
        write_report(&uneven, out.path(), "Backend flex.", "relu").unwrap();
        let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        assert!(
            report.contains("3 runs: 2 activations × 1–2 seeds (uneven"),
            "{report}"
        );
        assert!(
            write_report(&[], out.path(), "", "relu")
                .unwrap_err()
                .to_string()
                .contains("no finished runs")
        );
    }
}
