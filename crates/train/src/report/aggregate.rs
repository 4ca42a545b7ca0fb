//! One result per activation label, aggregated over its seeds.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::collect::FinishedRun;
use crate::run::{EpochRecord, SplitName};

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
    /// Mean fraction of dead units over slots and seeds, per epoch (empty without
    /// diagnostics).
    pub dead_fraction_per_epoch: Vec<f64>,
    /// Mean output sparsity over slots and seeds, per epoch (empty without diagnostics).
    pub sparsity_per_epoch: Vec<f64>,
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

pub(crate) fn optional_mean(values: Vec<f64>) -> Option<f64> {
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

fn per_epoch(runs: &[&FinishedRun], split: SplitName, value: fn(&EpochRecord) -> f64) -> Vec<f64> {
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
    let test_curve = per_epoch(runs, SplitName::Test, |h| h.accuracy);
    let best_epoch = test_curve
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i + 1);
    let last_epoch_diagnostics = |value: fn(&crate::run::DiagnosticRecord) -> Option<f64>| {
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
    let diagnostics_per_epoch = |value: fn(&crate::run::DiagnosticRecord) -> Option<f64>| {
        let epochs = runs
            .iter()
            .flat_map(|r| r.diagnostics.iter().map(|d| d.epoch))
            .max()
            .unwrap_or(0);
        // Epochs without a value (no slot recorded one) leave the curve empty, not NaN.
        (1..=epochs)
            .map(|epoch| {
                optional_mean(
                    runs.iter()
                        .flat_map(|r| {
                            r.diagnostics
                                .iter()
                                .filter(move |d| d.epoch == epoch)
                                .filter_map(value)
                        })
                        .collect(),
                )
            })
            .collect::<Option<Vec<f64>>>()
            .unwrap_or_default()
    };
    // Layers with a gradient norm, in order (slot-only rows have none).
    let mut layers: Vec<String> = Vec::new();
    for run in runs {
        for record in run.diagnostics.iter().filter(|d| d.grad_norm.is_some()) {
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
                    .filter_map(|d| d.grad_norm)
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
        train_loss_per_epoch: per_epoch(runs, SplitName::Train, |h| h.loss),
        grad_norm_per_layer,
        dead_fraction_per_epoch: diagnostics_per_epoch(|d| d.dead_fraction),
        sparsity_per_epoch: diagnostics_per_epoch(|d| d.sparsity),
    }
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
