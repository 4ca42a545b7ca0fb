//! The results of a comparison: accuracy and loss per epoch, final accuracy with error bars,
//! gradient norm per layer.
use std::path::Path;

use crate::report::stats::MeanInterval;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, PlotError, color, err, fonts, labelled_line, legend, render, with_suffix};
use crate::report::aggregate::{ActivationResult, accuracy_cell};

/// Test accuracy and training loss per epoch, one line per activation.
pub fn curves(results: &[ActivationResult], stem: &Path) -> Result<(), PlotError> {
    let panels: [PanelSpec; 2] = [
        ("Test accuracy (%)", "test accuracy %", |r| {
            r.test_accuracy_per_epoch
                .iter()
                .map(|a| 100.0 * a)
                .collect()
        }),
        ("Training loss", "training loss", |r| {
            r.train_loss_per_epoch.clone()
        }),
    ];
    render!(stem, (1400, 620), draw_curves, results, &panels)
}

/// Dead units and sparsity per epoch (from the runs' `diagnostics.csv`, mean over slots and
/// seeds), one line per activation.
pub fn diagnostic_curves(results: &[&ActivationResult], stem: &Path) -> Result<(), PlotError> {
    let results: Vec<ActivationResult> = results.iter().map(|r| (*r).clone()).collect();
    let panels: [PanelSpec; 2] = [
        ("Dead units (%, mean over slots)", "dead units %", |r| {
            r.dead_fraction_per_epoch
                .iter()
                .map(|v| 100.0 * v)
                .collect()
        }),
        ("Exact zeros in the outputs (%)", "sparsity %", |r| {
            r.sparsity_per_epoch.iter().map(|v| 100.0 * v).collect()
        }),
    ];
    render!(stem, (1400, 620), draw_curves, &results, &panels)
}

/// A curve panel's title, y-axis name, and the values per epoch of one activation.
type PanelSpec = (
    &'static str,
    &'static str,
    fn(&ActivationResult) -> Vec<f64>,
);

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[ActivationResult],
    panels: &[PanelSpec; 2],
) -> Result<(), PlotError> {
    let (left, right) = root.split_horizontally(700);
    let epochs = results
        .iter()
        .flat_map(|r| panels.iter().map(move |p| (p.2)(r).len()))
        .max()
        .unwrap_or(1)
        .max(1);
    let x_range = 0.8f64..epochs as f64 + 0.2;
    for (area, &(title, y_desc, series)) in [&left, &right].into_iter().zip(panels) {
        let values: Vec<f64> = results
            .iter()
            .flat_map(series)
            .filter(|v| v.is_finite())
            .collect();
        if values.is_empty() {
            // Nothing finite to draw: an empty panel, not a range from f64::MAX to f64::MIN
            // (on which plotters never finishes its mesh).
            continue;
        }
        let low = values.iter().copied().fold(f64::MAX, f64::min);
        let high = values.iter().copied().fold(f64::MIN, f64::max);
        // Constant lines (no dead units in any epoch) get a unit-sized span, not one of 1e-3
        // with ticks at ±0.0002 around them.
        let span = if high - low > 1e-9 {
            high - low
        } else {
            (high.abs() * 0.1).max(1.0)
        };
        let pad = (span * 0.08).max(1e-3);
        // Headroom above the data for the legend (one line per series), so it hides no line.
        let headroom = span * (0.07 * results.len() as f64).min(1.2);
        // Every panel plots a non-negative quantity: no axis below zero.
        let bottom = if low >= 0.0 {
            (low - pad).max(0.0)
        } else {
            low - pad
        };
        let top = low.max(high) + pad + headroom + if high - low > 1e-9 { 0.0 } else { span };
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), bottom..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .x_labels(epochs.min(12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        for (i, result) in results.iter().enumerate() {
            let points: Vec<(f64, f64)> = series(result)
                .into_iter()
                .enumerate()
                .map(|(e, v)| (e as f64 + 1.0, v))
                .collect();
            labelled_line(&mut chart, points, i, &result.label)?;
        }
        // Accuracy rises to the right and loss falls: the upper left and upper right are
        // where no line goes (the headroom above keeps the others' legends clear too).
        let corner = if title.starts_with("Test") {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        };
        legend(&mut chart, corner)?;
    }
    Ok(())
}

/// Final test accuracy per activation as horizontal bars with the 95% interval of the mean as
/// error bars (`intervals`, in the order of `results`; none with one seed), best on top.
pub fn accuracy_bars(
    results: &[ActivationResult],
    intervals: &[Option<MeanInterval>],
    stem: &Path,
) -> Result<(), PlotError> {
    let height = 110 + 34 * results.len() as u32;
    render!(stem, (1000, height), draw_accuracy_bars, results, intervals)
}

fn draw_accuracy_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[ActivationResult],
    intervals: &[Option<MeanInterval>],
) -> Result<(), PlotError> {
    let n = results.len();
    let bounds = |r: &ActivationResult, i: &Option<MeanInterval>| {
        i.map_or((r.test_accuracy_mean, r.test_accuracy_mean), |i| {
            (i.low, i.high)
        })
    };
    let lows = results
        .iter()
        .zip(intervals)
        .map(|(r, i)| 100.0 * bounds(r, i).0);
    let highs = results
        .iter()
        .zip(intervals)
        .map(|(r, i)| 100.0 * bounds(r, i).1);
    let low = lows.fold(f64::MAX, f64::min);
    let high = highs.fold(f64::MIN, f64::max);
    let span = (high - low).max(1.0);
    // Bars start left of the worst result, so differences stay visible.
    let x_start = (low - 0.6 * span).max(0.0);
    let x_end = (high + 0.08 * span).min(100.0);
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Final test accuracy (mean and 95% interval over seeds)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(10)
        .build_cartesian_2d(x_start..x_end, -0.5f64..n as f64 - 0.5)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("test accuracy %")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    // Best on top: rank 0 at the highest y.
    let y = |rank: usize| (n - 1 - rank) as f64;
    chart
        .draw_series(results.iter().enumerate().map(|(rank, r)| {
            Rectangle::new(
                [
                    (x_start, y(rank) - 0.35),
                    (100.0 * r.test_accuracy_mean, y(rank) + 0.35),
                ],
                color(rank).mix(0.35).filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(
            results
                .iter()
                .zip(intervals)
                .enumerate()
                .filter_map(|(rank, (r, i))| {
                    let i = (*i)?;
                    Some(ErrorBar::new_horizontal(
                        y(rank),
                        100.0 * i.low,
                        100.0 * r.test_accuracy_mean,
                        100.0 * i.high,
                        BLACK.stroke_width(2),
                        10,
                    ))
                }),
        )
        .map_err(err)?;
    chart
        .draw_series(
            results
                .iter()
                .zip(intervals)
                .enumerate()
                .map(|(rank, (r, i))| {
                    let value = match i {
                        Some(i) => format!(
                            "{:.2}  [{:.2}, {:.2}]",
                            100.0 * r.test_accuracy_mean,
                            100.0 * i.low,
                            100.0 * i.high
                        ),
                        None => accuracy_cell(r),
                    };
                    Text::new(
                        format!("{}  {value}", r.label),
                        (x_start + 0.01 * (x_end - x_start), y(rank) + 0.18),
                        (FONT, 15).into_font().color(&BLACK),
                    )
                }),
        )
        .map_err(err)?;
    Ok(())
}

/// Weight-gradient norm per layer (log scale), one line per activation.
pub fn grad_norms(results: &[&ActivationResult], stem: &Path) -> Result<(), PlotError> {
    render!(stem, (1100, 640), draw_grad_norms, results)
}

fn draw_grad_norms<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[&ActivationResult],
) -> Result<(), PlotError> {
    let layers: Vec<String> = results
        .iter()
        .max_by_key(|r| r.grad_norm_per_layer.len())
        .map(|r| {
            r.grad_norm_per_layer
                .iter()
                .map(|(l, _)| l.clone())
                .collect()
        })
        .unwrap_or_default();
    let values: Vec<f64> = results
        .iter()
        .flat_map(|r| r.grad_norm_per_layer.iter().map(|(_, v)| *v))
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let low = values.iter().copied().fold(f64::MAX, f64::min).max(1e-12);
    let high = values
        .iter()
        .copied()
        .fold(f64::MIN, f64::max)
        .max(low * 10.0);
    // Many layers (a ResNet's convolutions): names turned upright so they do not overlap.
    let upright = layers.len() > 10;
    let layer_font: TextStyle = if upright {
        (FONT, 12)
            .into_font()
            .transform(FontTransform::Rotate90)
            .into()
    } else {
        (FONT, 14).into_font().into()
    };
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Weight-gradient L2 norm per layer (input → output)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(if upright { 120 } else { 44 })
        .y_label_area_size(80)
        .build_cartesian_2d(
            -0.3f64..layers.len() as f64 - 0.7,
            (low / 2.0..high * 2.0).log_scale(),
        )
        .map_err(err)?;
    let names = layers.clone();
    chart
        .configure_mesh()
        .x_labels(layers.len().max(2))
        .x_label_formatter(&move |x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .x_desc("layer")
        .y_desc("‖∂loss/∂W‖ (log)")
        .label_style((FONT, 14))
        .x_label_style(layer_font)
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    for (i, result) in results.iter().enumerate() {
        let points: Vec<(f64, f64)> = result
            .grad_norm_per_layer
            .iter()
            .enumerate()
            .filter(|(_, (_, v))| *v > 0.0)
            .map(|(x, (_, v))| (x as f64, *v))
            .collect();
        labelled_line(&mut chart, points, i, &result.label)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}
