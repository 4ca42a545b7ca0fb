//! The report's tables: `results.csv` (one row per run and epoch) and `report.md`.
use std::fmt::Write as _;

use serde::Serialize;

use crate::report::aggregate::{ActivationResult, accuracy_cell, optional_mean};
use crate::report::collect::FinishedRun;
use crate::report::significance::{
    Significance, comparison_cell, conclusions, interval_cell, tied_cell,
};
use crate::run::{DiagnosticRecord, SplitName};

/// One row of `results.csv`: a run's epoch, with its diagnostics averaged over slots.
#[derive(Serialize)]
struct ResultRow<'a> {
    run: String,
    label: &'a str,
    activation: &'a str,
    seed: u64,
    epoch: usize,
    train_loss: f64,
    train_accuracy: f64,
    test_loss: Option<f64>,
    test_accuracy: Option<f64>,
    seconds: f64,
    train_images_per_second: f64,
    dead_fraction: Option<f64>,
    sparsity: Option<f64>,
    saturation: Option<f64>,
    grad_norm_first: Option<f64>,
    grad_norm_last: Option<f64>,
}

/// `results.csv`: one row per run and epoch, with the epoch's diagnostics averaged over slots.
pub fn results_csv(runs: &[FinishedRun]) -> String {
    let mut rows = Vec::new();
    for run in runs {
        let name = run
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for train in run.history.iter().filter(|h| h.split == SplitName::Train) {
            let test = run
                .history
                .iter()
                .find(|h| h.epoch == train.epoch && h.split == SplitName::Test);
            let diagnostics: Vec<&DiagnosticRecord> = run
                .diagnostics
                .iter()
                .filter(|d| d.epoch == train.epoch)
                .collect();
            let slot_mean = |value: fn(&DiagnosticRecord) -> Option<f64>| {
                optional_mean(diagnostics.iter().filter_map(|d| value(d)).collect())
            };
            rows.push(ResultRow {
                run: name.clone(),
                label: &run.label,
                activation: run.config.model.activation().name(),
                seed: run.seed,
                epoch: train.epoch,
                train_loss: train.loss,
                train_accuracy: train.accuracy,
                test_loss: test.map(|t| t.loss),
                test_accuracy: test.map(|t| t.accuracy),
                seconds: train.seconds,
                train_images_per_second: train.images_per_second,
                dead_fraction: slot_mean(|d| d.dead_fraction),
                sparsity: slot_mean(|d| d.sparsity),
                saturation: slot_mean(|d| d.saturation),
                grad_norm_first: diagnostics.iter().find_map(|d| d.grad_norm),
                grad_norm_last: diagnostics.iter().rev().find_map(|d| d.grad_norm),
            });
        }
    }
    String::from_utf8(crate::records::to_csv(&rows)).expect("CSV of UTF-8 fields is UTF-8")
}

/// Small ratios in scientific notation: a vanished gradient is 3e-5, not 0.000.
fn ratio_cell(ratio: f64) -> String {
    if ratio != 0.0 && ratio.abs() < 0.01 {
        format!("{ratio:.1e}")
    } else {
        format!("{ratio:.3}")
    }
}

/// `3 seed(s)`, or `1–3 seeds (uneven: ...)` when the
/// activations have different numbers of finished runs.
fn seeds_phrase(results: &[ActivationResult]) -> String {
    let counts = results.iter().map(|r| r.seeds.len());
    let (low, high) = (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0));
    if low == high {
        format!("{high} seed(s)")
    } else {
        format!("{low}–{high} seeds (uneven: some runs have not finished)")
    }
}

fn percent(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{:.1}", 100.0 * v))
}

pub(crate) fn report_markdown(
    runs: &[FinishedRun],
    results: &[ActivationResult],
    significance: &Significance,
    best_run: &FinishedRun,
    has_gradients: bool,
    has_diagnostics: bool,
    backend_note: &str,
) -> String {
    let base = &runs[0].config;
    let mut md = String::new();
    let train_images = runs[0].summary.train_images;
    let _ = writeln!(md, "# Activation functions on Fashion-MNIST\n");
    let _ = writeln!(
        md,
        "{} runs: {} activations × {}. Each trains the same network ({}) for {} epoch(s) on \
         {} training images with {:?} (lr {}, batch {}), and is tested on {} test images. {}\n",
        runs.len(),
        results.len(),
        seeds_phrase(results),
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
    let baseline = significance.baseline.as_deref().unwrap_or("baseline");
    let _ = writeln!(
        md,
        "| # | activation | test accuracy % (mean ± std) | 95% interval | vs `{baseline}`, points [95% interval], raw and Holm-adjusted p | tied with best | seeds | best epoch | final train loss | s/epoch | img/s | dead units % | sparsity % | saturation % | grad ratio first/last |"
    );
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (rank, (r, s)) in results.iter().zip(&significance.rows).enumerate() {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {:.4} | {:.1} | {:.0} | {} | {} | {} | {} |",
            rank + 1,
            r.label,
            accuracy_cell(r),
            interval_cell(s.interval),
            if significance.baseline.as_deref() == Some(r.label.as_str()) {
                "baseline".to_string()
            } else {
                comparison_cell(s.vs_baseline, s.vs_baseline_p_holm)
            },
            tied_cell(s),
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
    let _ = writeln!(md, "\n{}", conclusions(significance));
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
        "Final test accuracy, mean and 95% interval over seeds:\n\n![accuracy](accuracy.png)\n"
    );
    if has_gradients {
        let _ = writeln!(
            md,
            "Weight-gradient norm per layer (log scale), the vanishing-gradient picture:\n\n![gradients](gradients.png)\n"
        );
    }
    learned_section(&mut md, runs);
    if has_diagnostics {
        let _ = writeln!(
            md,
            "Dead units and exact zeros per epoch (on a fixed probe batch, mean over slots and \
             seeds): how the ReLU family's sparsity and dead units evolve as it trains:\n\n\
             ![diagnostics](diagnostics.png)\n"
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
    config.model.to_string()
}

/// "What the learnable activations learned": each learned slot's parameters (PReLU's slopes,
/// ACON-C's p1, p2, β, ...) and per-sample coefficients (APReLU's α, Meta-ACON's β, DyReLU's
/// slopes), from the runs that were inspected (`fmnist compare` inspects every run with a
/// trainable activation).
fn learned_section(md: &mut String, runs: &[FinishedRun]) {
    let rows: Vec<(&FinishedRun, &crate::inspect::SlotInspection)> = runs
        .iter()
        .filter_map(|run| Some((run, run.inspection.as_ref()?)))
        .flat_map(|(run, inspection)| {
            inspection
                .slots
                .iter()
                .filter(|s| !crate::report::inspection::learned_cell(s).is_empty())
                .map(move |slot| (run, slot))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## What the learnable activations learned\n\nOn the test set, per slot (`fmnist \
         inspect --model RUN` draws it; each run's `inspect/report.md`). For the coefficients \
         computed per sample (APReLU's α, Meta-ACON's β, DyReLU's a¹, a²), their spread between \
         samples of one class against that between classes says whether each sample gets its own \
         transformation.\n\n| run | slot | learned |\n|---|---|---|"
    );
    for (run, slot) in rows {
        let _ = writeln!(
            md,
            "| {} seed {} | {} | {} |",
            run.label,
            run.seed,
            slot.slot,
            crate::report::inspection::learned_cell(slot)
        );
    }
    let _ = writeln!(md);
}
