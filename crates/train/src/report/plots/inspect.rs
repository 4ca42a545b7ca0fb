//! The figures of `fmnist inspect`: distributions as density lines, PReLU's slopes per
//! channel, and APReLU's mean slope per class and channel as a heat map.
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, PlotError, err, fonts, labelled_line, legend, render, with_suffix};
use crate::inspect::Histogram;

/// Several histograms over the same range as density lines (each normalised by its own total,
/// so slots or classes of different sizes compare).
pub fn densities(
    series: &[(String, &Histogram)],
    title: &str,
    x_desc: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render!(stem, (1100, 640), draw_densities, series, title, x_desc)
}

fn draw_densities<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[(String, &Histogram)],
    title: &str,
    x_desc: &str,
) -> Result<(), PlotError> {
    let Some((_, first)) = series.first() else {
        return Ok(());
    };
    let width = (first.high - first.low) / first.counts.len() as f64;
    let density = |h: &Histogram| -> Vec<(f64, f64)> {
        let total = h.total().max(1) as f64;
        (0..h.counts.len())
            .map(|i| (h.centre(i), h.counts[i] as f64 / (total * width)))
            .collect()
    };
    let top = series
        .iter()
        .flat_map(|(_, h)| density(h))
        .map(|(_, y)| y)
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(first.low..first.high, 0.0..top * 1.08)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc("density")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    for (index, (label, histogram)) in series.iter().enumerate() {
        let outside = histogram.below + histogram.above;
        let share = 100.0 * outside as f64 / histogram.total().max(1) as f64;
        let label = match outside {
            0 => label.clone(),
            _ if share < 0.1 => format!("{label} (< 0.1% outside the range)"),
            _ => format!("{label} ({share:.1}% outside the range)"),
        };
        labelled_line(&mut chart, density(histogram), index, &label)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// PReLU's learned slope per channel, one line per slot.
pub fn prelu_slopes(slots: &[(String, Vec<f32>)], stem: &Path) -> Result<(), PlotError> {
    let title = "PReLU: learned negative slope per channel";
    render!(stem, (1100, 600), draw_per_channel, slots, title, "slope")
}

/// Learned values per channel, one line per series (a slot's slopes, or one parameter of a
/// slot: ACON-C's p1, p2 and switching factor β, PAU's coefficients).
pub fn per_channel(
    series: &[(String, Vec<f32>)],
    title: &str,
    y_desc: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render!(stem, (1100, 600), draw_per_channel, series, title, y_desc)
}

fn draw_per_channel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    slots: &[(String, Vec<f32>)],
    title: &str,
    y_desc: &str,
) -> Result<(), PlotError> {
    let channels = slots.iter().map(|(_, s)| s.len()).max().unwrap_or(1);
    let values = slots.iter().flat_map(|(_, s)| s.iter().map(|&v| v as f64));
    let (low, high) = values.fold((0.0f64, 0.3f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = 0.08 * (high - low);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..channels as f64 - 0.5, low - pad..high + pad)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("channel (one point at 0 when shared by all channels)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    for (index, (slot, slopes)) in slots.iter().enumerate() {
        let points = slopes
            .iter()
            .enumerate()
            .map(|(c, &s)| (c as f64, s as f64))
            .collect();
        labelled_line(&mut chart, points, index, slot)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)
}

/// A `[class][channel]` matrix of values in [0, 1] as a heat map, classes as rows.
pub fn class_channel_map(
    matrix: &[Vec<f64>],
    class_names: &[&str],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render!(
        stem,
        (1100, 520),
        draw_class_channel_map,
        matrix,
        class_names,
        title
    )
}

fn draw_class_channel_map<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    matrix: &[Vec<f64>],
    class_names: &[&str],
    title: &str,
) -> Result<(), PlotError> {
    let classes = matrix.len();
    let channels = matrix.first().map_or(1, Vec::len).max(1);
    let (low, high) = matrix
        .iter()
        .flatten()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let span = (high - low).max(1e-9);
    let (map_area, scale_area) = root.split_horizontally(1000);
    let mut chart = ChartBuilder::on(&map_area)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..channels as f64, 0f64..classes as f64)
        .map_err(err)?;
    let names: Vec<String> = class_names.iter().map(|s| s.to_string()).collect();
    chart
        .configure_mesh()
        .disable_mesh()
        .y_labels(2 * classes + 1)
        .y_label_formatter(&|v| {
            let cell = v - 0.5;
            let i = cell.round();
            if (cell - i).abs() > 1e-6 || i < 0.0 || i as usize >= classes {
                return String::new();
            }
            names
                .get(classes - 1 - i as usize)
                .cloned()
                .unwrap_or_default()
        })
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("channel")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    let shade = |v: f64| {
        let t = (v - low) / span;
        RGBColor(
            (255.0 * (1.0 - 0.8 * t)) as u8,
            (255.0 * (1.0 - 0.55 * t)) as u8,
            255,
        )
    };
    chart
        .draw_series(matrix.iter().enumerate().flat_map(|(class, row)| {
            let y = (classes - 1 - class) as f64;
            row.iter().enumerate().map(move |(c, &v)| {
                Rectangle::new(
                    [(c as f64, y), (c as f64 + 1.0, y + 1.0)],
                    shade(v).filled(),
                )
            })
        }))
        .map_err(err)?;
    // The colour scale: its two ends and the middle.
    for (i, v) in [high, (low + high) / 2.0, low].iter().enumerate() {
        let y = 60 + 150 * i as i32;
        scale_area
            .draw(&Rectangle::new([(10, y), (40, y + 30)], shade(*v).filled()))
            .map_err(err)?;
        scale_area
            .draw(&Text::new(format!("{v:.3}"), (10, y + 36), (FONT, 13)))
            .map_err(err)?;
    }
    Ok(())
}

/// A learned activation's curve per row of parameters (one per channel, thin, or one shared),
/// over the function it started as (dashed, where known).
pub fn learned_curves(
    curves: &crate::inspect::LearnedCurves,
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render!(stem, (900, 620), draw_learned_curves, curves, title)
}

fn draw_learned_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    curves: &crate::inspect::LearnedCurves,
    title: &str,
) -> Result<(), PlotError> {
    let all = curves
        .rows
        .iter()
        .chain(&curves.initial)
        .flatten()
        .filter(|v| v.is_finite());
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(lo, hi), &v| {
        (lo.min(v as f64), hi.max(v as f64))
    });
    let (low, high) = if low <= high {
        (low, high)
    } else {
        (-1.0, 1.0)
    };
    let pad = 0.06 * (high - low).max(1e-6);
    let (x0, x1) = match (curves.x.first(), curves.x.last()) {
        (Some(&a), Some(&b)) => (a as f64, b as f64),
        _ => (-1.0, 1.0),
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, low - pad..high + pad)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("f(x)")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    let points = |values: &[f32]| -> Vec<(f64, f64)> {
        curves
            .x
            .iter()
            .zip(values)
            .filter(|(_, y)| y.is_finite())
            .map(|(&x, &y)| (x as f64, y as f64))
            .collect()
    };
    let shared = curves.rows.len() == 1;
    let row_style = super::color(0)
        .mix(if shared { 1.0 } else { 0.45 })
        .stroke_width(2);
    let label = if shared {
        "learned".to_string()
    } else {
        format!("learned, one line per channel ({})", curves.rows.len())
    };
    for (index, row) in curves.rows.iter().enumerate() {
        let series = chart
            .draw_series(LineSeries::new(points(row), row_style))
            .map_err(err)?;
        if index == 0 {
            series
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], row_style));
        }
    }
    if let Some(initial) = &curves.initial {
        let style = BLACK.stroke_width(2);
        chart
            .draw_series(DashedLineSeries::new(points(initial), 8, 5, style))
            .map_err(err)?
            .label("initial")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}
