//! The comparison report: `results.csv`, `summary.json` and `report.md` with its plots, from
//! finished runs (see [`crate::compare::collect_runs`]).
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::compare::FinishedRun;
use crate::data::CLASS_NAMES;
use crate::plots;
use crate::run_dir::write_atomic;

/// One activation's results over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivationResult {
    /// The label (`relu`, `leaky_relu(negative_slope=0.2)`).
    pub label: String,
    /// Seeds that finished.
    pub seeds: Vec<u64>,
    /// Mean final test accuracy.
    pub test_accuracy_mean: f64,
    /// Sample standard deviation over seeds (0 with one seed).
    pub test_accuracy_std: f64,
    /// The epoch with the best mean test accuracy.
    pub best_epoch: usize,
    /// Mean training loss of the last epoch.
    pub final_train_loss: f64,
    /// Mean training seconds per epoch.
    pub seconds_per_epoch: f64,
    /// Mean training images per second.
    pub train_images_per_second: f64,
    /// Mean fraction of dead units over slots, last epoch (`None` without diagnostics).
    pub dead_fraction: Option<f64>,
    /// Mean output sparsity over slots, last epoch.
    pub sparsity: Option<f64>,
    /// Mean saturation over slots, last epoch (bounded activations only).
    pub saturation: Option<f64>,
    /// First layer's weight-gradient norm over the last layer's, mean over epochs and seeds.
    pub grad_norm_ratio: Option<f64>,
    /// Mean test accuracy per epoch.
    pub test_accuracy_per_epoch: Vec<f64>,
    /// Mean training loss per epoch.
    pub train_loss_per_epoch: Vec<f64>,
    /// Mean weight-gradient norm per layer (mean over epochs and seeds), with layer names.
    pub grad_norm_per_layer: Vec<(String, f64)>,
}

fn mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values
        .into_iter()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 { f64::NAN } else { sum / n as f64 }
}

fn sample_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values.iter().copied());
    (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (values.len() - 1) as f64).sqrt()
}

fn optional_mean(values: Vec<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| mean(values))
}

/// Aggregates runs by label, sorted by mean test accuracy (best first).
pub fn aggregate(runs: &[FinishedRun]) -> Vec<ActivationResult> {
    let mut by_label: BTreeMap<&str, Vec<&FinishedRun>> = BTreeMap::new();
    for run in runs {
        by_label.entry(run.label.as_str()).or_default().push(run);
    }
    let mut results: Vec<ActivationResult> = by_label
        .into_iter()
        .map(|(label, runs)| aggregate_one(label, &runs))
        .collect();
    results.sort_by(|a, b| b.test_accuracy_mean.total_cmp(&a.test_accuracy_mean));
    results
}

fn per_epoch(
    runs: &[&FinishedRun],
    split: &str,
    value: fn(&crate::metrics::EpochRecord) -> f64,
) -> Vec<f64> {
    let epochs = runs.iter().map(|r| r.summary.epochs).min().unwrap_or(0);
    (1..=epochs)
        .map(|epoch| {
            mean(runs.iter().flat_map(|r| {
                r.history
                    .iter()
                    .filter(|h| h.epoch == epoch && h.split == split)
                    .map(value)
            }))
        })
        .collect()
}

fn aggregate_one(label: &str, runs: &[&FinishedRun]) -> ActivationResult {
    let accuracies: Vec<f64> = runs.iter().map(|r| r.summary.test_accuracy).collect();
    let test_curve = per_epoch(runs, "test", |h| h.accuracy);
    let best_epoch = test_curve
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i + 1);
    let last_epoch_diagnostics =
        |value: fn(&crate::diagnostics::DiagnosticRecord) -> Option<f64>| {
            optional_mean(
                runs.iter()
                    .flat_map(|r| {
                        let last = r.diagnostics.iter().map(|d| d.epoch).max().unwrap_or(0);
                        r.diagnostics
                            .iter()
                            .filter(move |d| d.epoch == last)
                            .filter_map(value)
                    })
                    .collect(),
            )
        };
    let mut layers: Vec<String> = Vec::new();
    for run in runs {
        for record in &run.diagnostics {
            if !layers.contains(&record.layer) {
                layers.push(record.layer.clone());
            }
        }
    }
    let grad_norm_per_layer: Vec<(String, f64)> = layers
        .iter()
        .map(|layer| {
            let norm = mean(runs.iter().flat_map(|r| {
                r.diagnostics
                    .iter()
                    .filter(|d| &d.layer == layer)
                    .map(|d| d.grad_norm)
            }));
            (layer.clone(), norm)
        })
        .collect();
    let grad_norm_ratio = match (grad_norm_per_layer.first(), grad_norm_per_layer.last()) {
        (Some(first), Some(last)) if grad_norm_per_layer.len() > 1 && last.1 > 0.0 => {
            Some(first.1 / last.1)
        }
        _ => None,
    };
    ActivationResult {
        label: label.into(),
        seeds: runs.iter().map(|r| r.seed).collect(),
        test_accuracy_mean: mean(accuracies.iter().copied()),
        test_accuracy_std: sample_std(&accuracies),
        best_epoch,
        final_train_loss: mean(runs.iter().map(|r| r.summary.final_train_loss)),
        seconds_per_epoch: mean(
            runs.iter()
                .map(|r| r.summary.seconds / r.summary.epochs.max(1) as f64),
        ),
        train_images_per_second: mean(runs.iter().map(|r| r.summary.train_images_per_second)),
        dead_fraction: last_epoch_diagnostics(|d| d.dead_fraction),
        sparsity: last_epoch_diagnostics(|d| d.sparsity),
        saturation: last_epoch_diagnostics(|d| d.saturation),
        grad_norm_ratio,
        test_accuracy_per_epoch: test_curve,
        train_loss_per_epoch: per_epoch(runs, "train", |h| h.loss),
        grad_norm_per_layer,
    }
}

/// `results.csv`: one row per run and epoch, with the epoch's diagnostics averaged over slots.
pub fn results_csv(runs: &[FinishedRun]) -> String {
    let mut csv = String::from(
        "run,label,activation,seed,epoch,train_loss,train_accuracy,test_loss,test_accuracy,\
         seconds,train_images_per_second,dead_fraction,sparsity,saturation,grad_norm_first,grad_norm_last\n",
    );
    for run in runs {
        let name = run
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for train in run.history.iter().filter(|h| h.split == "train") {
            let test = run
                .history
                .iter()
                .find(|h| h.epoch == train.epoch && h.split == "test");
            let diagnostics: Vec<_> = run
                .diagnostics
                .iter()
                .filter(|d| d.epoch == train.epoch)
                .collect();
            let slot_mean = |value: fn(&crate::diagnostics::DiagnosticRecord) -> Option<f64>| {
                optional_mean(diagnostics.iter().filter_map(|d| value(d)).collect())
                    .map(|v| format!("{v:.6}"))
                    .unwrap_or_default()
            };
            let grad = |d: Option<&&crate::diagnostics::DiagnosticRecord>| {
                d.map(|d| format!("{:.6e}", d.grad_norm))
                    .unwrap_or_default()
            };
            let _ = writeln!(
                csv,
                "{name},\"{}\",{},{},{},{:.6},{:.6},{},{},{:.3},{:.1},{},{},{},{},{}",
                run.label,
                run.config.model.activation().name(),
                run.seed,
                train.epoch,
                train.loss,
                train.accuracy,
                test.map(|t| format!("{:.6}", t.loss)).unwrap_or_default(),
                test.map(|t| format!("{:.6}", t.accuracy))
                    .unwrap_or_default(),
                train.seconds,
                train.images_per_second,
                slot_mean(|d| d.dead_fraction),
                slot_mean(|d| d.sparsity),
                slot_mean(|d| d.saturation),
                grad(diagnostics.first()),
                grad(diagnostics.last()),
            );
        }
    }
    csv
}

/// `87.53 ± 0.39`, or just `87.53` from a single seed (its spread is unknown, not zero).
pub fn accuracy_cell(result: &ActivationResult) -> String {
    if result.seeds.len() < 2 {
        format!("{:.2}", 100.0 * result.test_accuracy_mean)
    } else {
        format!(
            "{:.2} ± {:.2}",
            100.0 * result.test_accuracy_mean,
            100.0 * result.test_accuracy_std
        )
    }
}

/// Small ratios in scientific notation: a vanished gradient is 3e-5, not 0.000.
fn ratio_cell(ratio: f64) -> String {
    if ratio != 0.0 && ratio.abs() < 0.01 {
        format!("{ratio:.1e}")
    } else {
        format!("{ratio:.3}")
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

/// Writes `results.csv`, `summary.json`, `report.md` and the plots into `out`.
pub fn write_report(runs: &[FinishedRun], out: &Path, backend_note: &str) -> Result<(), String> {
    if runs.is_empty() {
        return Err(format!(
            "no finished runs to report on in {}; run `fmnist compare` first",
            out.display()
        ));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let results = aggregate(runs);
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
    plots::accuracy_bars(&results, &out.join("accuracy"))?;
    let with_gradients: Vec<&ActivationResult> = results
        .iter()
        .filter(|r| !r.grad_norm_per_layer.is_empty())
        .collect();
    if !with_gradients.is_empty() {
        plots::grad_norms(&with_gradients, &out.join("gradients"))?;
    }
    plots::confusion(
        &best_run.summary.confusion,
        &CLASS_NAMES,
        &format!("{} (seed {})", best_run.label, best_run.seed),
        &out.join("confusion"),
    )?;

    let markdown = report_markdown(
        runs,
        &results,
        best_run,
        !with_gradients.is_empty(),
        backend_note,
    );
    write_atomic(&out.join("report.md"), markdown.as_bytes())
}

fn report_markdown(
    runs: &[FinishedRun],
    results: &[ActivationResult],
    best_run: &FinishedRun,
    has_gradients: bool,
    backend_note: &str,
) -> String {
    let base = &runs[0].config;
    let mut md = String::new();
    let train_images = runs[0].summary.train_images;
    let _ = writeln!(md, "# Activation functions on Fashion-MNIST\n");
    let _ = writeln!(
        md,
        "{} runs: {} activations × {} seed(s). Each trains the same network ({}) for {} epoch(s) on \
         {} training images with {:?} (lr {}, batch {}), and is tested on {} test images. {}\n",
        runs.len(),
        results.len(),
        results.iter().map(|r| r.seeds.len()).max().unwrap_or(0),
        describe_model(base),
        base.train.epochs,
        train_images,
        base.train.optimizer,
        base.train.lr,
        base.train.batch_size,
        best_run.summary.confusion.iter().flatten().sum::<u64>(),
        backend_note,
    );
    if matches!(base.model, models::ModelConfig::Mlp(_)) {
        let _ = writeln!(
            md,
            "**Why an MLP.** In a fully connected network the activation is the only \
             nonlinearity, so identity is a linear model and the differences between activations \
             show within a short budget. In the reference CNN, max-pooling is a nonlinearity too, \
             and the ReLU family pulls ahead of identity only with full training \
             (`configs/compare_cnn.toml`).\n"
        );
    }
    if train_images < 60_000 || base.train.epochs < 5 {
        let _ = writeln!(
            md,
            "**Budget note.** This is a short study (a subset and/or few epochs) so that the whole \
             sweep fits a small time budget: absolute accuracies are below what full training \
             reaches (≈91–92% for the reference CNN after 5 full epochs), and differences smaller \
             than about two standard deviations are not meaningful. The ranking of clearly \
             separated groups (e.g. identity and saturating activations behind the ReLU family) \
             is what this budget can show.\n"
        );
    }
    let _ = writeln!(md, "## Results (sorted by mean test accuracy)\n");
    let _ = writeln!(
        md,
        "| # | activation | test accuracy % (mean ± std) | seeds | best epoch | final train loss | s/epoch | img/s | dead units % | sparsity % | saturation % | grad ratio first/last |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (rank, r) in results.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} | {:.4} | {:.1} | {:.0} | {} | {} | {} | {} |",
            rank + 1,
            r.label,
            accuracy_cell(r),
            r.seeds.len(),
            r.best_epoch,
            r.final_train_loss,
            r.seconds_per_epoch,
            r.train_images_per_second,
            percent(r.dead_fraction),
            percent(r.sparsity),
            percent(r.saturation),
            r.grad_norm_ratio.map_or("–".into(), ratio_cell),
        );
    }
    let _ = writeln!(
        md,
        "\nDead units: channels (conv) or neurons (dense) never positive over a fixed probe batch of \
         512 training images, last epoch, mean over slots. Sparsity: outputs exactly zero. \
         Saturation: inputs where |f′(x)| < 1e-3, for bounded activations only. Grad ratio: norm of \
         the first layer's weight gradient over the last layer's, averaged over sampled steps; \
         far below 1 means vanishing gradients.\n"
    );
    let _ = writeln!(md, "## Plots\n");
    let _ = writeln!(
        md,
        "Each activation (blue) and its derivative (orange) on [−6, 6]:\n\n![activations](activations.png)\n"
    );
    let _ = writeln!(
        md,
        "Test accuracy and training loss per epoch (mean over seeds):\n\n![curves](curves.png)\n"
    );
    let _ = writeln!(
        md,
        "Final test accuracy, mean ± std over seeds:\n\n![accuracy](accuracy.png)\n"
    );
    if has_gradients {
        let _ = writeln!(
            md,
            "Weight-gradient norm per layer (log scale), the vanishing-gradient picture:\n\n![gradients](gradients.png)\n"
        );
    }
    let _ = writeln!(
        md,
        "Confusion matrix of the best run, `{}` seed {} ({:.2}%):\n\n![confusion](confusion.png)\n",
        best_run.label,
        best_run.seed,
        100.0 * best_run.summary.test_accuracy
    );
    let _ = writeln!(
        md,
        "Every plot is also written as SVG. Per-run data: `results.csv`; aggregates: `summary.json`."
    );
    md
}

fn describe_model(config: &crate::RunConfig) -> String {
    match &config.model {
        models::ModelConfig::Cnn(c) => format!(
            "CNN, conv {:?}, dense {:?}{}{}",
            c.channels,
            c.hidden,
            if c.batch_norm { ", BatchNorm" } else { "" },
            if c.dropout > 0.0 {
                format!(", dropout {}", c.dropout)
            } else {
                String::new()
            }
        ),
        models::ModelConfig::Mlp(m) => format!("MLP, dense {:?}", m.hidden),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostics::DiagnosticRecord;
    use crate::metrics::EpochRecord;
    use crate::run_dir::Summary;

    pub(crate) fn fake_run(label: &str, seed: u64, accuracy: f64) -> FinishedRun {
        let mut config = crate::RunConfig::default();
        config
            .model
            .set_activation(label.parse().expect("a registry name"));
        config.train.seed = seed;
        config.train.epochs = 2;
        let history: Vec<EpochRecord> = (1..=2)
            .flat_map(|epoch| {
                ["train", "test"].map(|split| EpochRecord {
                    epoch,
                    split: split.into(),
                    loss: 1.0 / epoch as f64,
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
                    grad_norm,
                })
            })
            .collect();
        FinishedRun {
            dir: format!("/sweep/{label}-seed{seed}").into(),
            label: label.into(),
            seed,
            summary: Summary {
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
            },
            config,
            history,
            diagnostics,
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
                .starts_with("identity-seed1,\"identity\",identity,1,1,")
        );
    }

    #[test]
    fn report_writes_markdown_csv_json_and_plots() {
        let out = tempfile::tempdir().unwrap();
        let runs = vec![fake_run("relu", 1, 0.8), fake_run("sigmoid", 1, 0.7)];
        write_report(&runs, out.path(), "Backend flex.").unwrap();
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
        let relu_row = report.find("| 1 | `relu`").expect("relu ranks first");
        assert!(report[relu_row..].contains("`sigmoid`"), "{report}");
        assert!(report.contains("![confusion](confusion.png)"));
        assert!(
            write_report(&[], out.path(), "")
                .unwrap_err()
                .contains("no finished runs")
        );
    }
}
