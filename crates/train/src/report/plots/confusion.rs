//! A confusion matrix as a heat map.
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{FONT, PlotError, err, fonts, render, with_suffix};

/// A confusion matrix (`[true][predicted]` counts) as a heat map with class names.
pub fn confusion(
    matrix: &[Vec<u64>],
    class_names: &[&str],
    title: &str,
    stem: &Path,
) -> Result<(), PlotError> {
    render!(stem, (900, 820), draw_confusion, matrix, class_names, title)
}

fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    matrix: &[Vec<u64>],
    class_names: &[&str],
    title: &str,
) -> Result<(), PlotError> {
    let n = matrix.len();
    let max = matrix.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let mut chart = ChartBuilder::on(root)
        .caption(format!("Confusion matrix: {title}"), (FONT, 20))
        .margin(16)
        .x_label_area_size(70)
        .y_label_area_size(110)
        .build_cartesian_2d(0f64..n as f64, 0f64..n as f64)
        .map_err(err)?;
    let names: Vec<String> = class_names.iter().map(|s| s.to_string()).collect();
    let x_names = names.clone();
    let y_names = names;
    let label = move |names: &[String], v: f64, flip: bool| {
        let cell = v - 0.5;
        let i = cell.round();
        if (cell - i).abs() > 1e-6 || i < 0.0 || i as usize >= n {
            return String::new();
        }
        let index = if flip { n - 1 - i as usize } else { i as usize };
        names.get(index).cloned().unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(2 * n + 1)
        .y_labels(2 * n + 1)
        .x_label_formatter(&|v| label(&x_names, *v, false))
        .y_label_formatter(&|v| label(&y_names, *v, true))
        .x_desc("predicted class")
        .y_desc("true class")
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(err)?;
    // True class 0 on top, as printed tables read.
    let cells = matrix
        .iter()
        .enumerate()
        .flat_map(|(t, row)| row.iter().enumerate().map(move |(p, &count)| (t, p, count)));
    chart
        .draw_series(cells.clone().map(|(t, p, count)| {
            let shade = (count as f64 / max).sqrt();
            let level = (255.0 * (1.0 - 0.85 * shade)) as u8;
            let y = (n - 1 - t) as f64;
            Rectangle::new(
                [(p as f64, y), (p as f64 + 1.0, y + 1.0)],
                RGBColor(level, level, 255).filled(),
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(cells.map(|(t, p, count)| {
            let dark = (count as f64 / max).sqrt() > 0.6;
            let y = (n - 1 - t) as f64;
            Text::new(
                count.to_string(),
                (p as f64 + 0.3, y + 0.6),
                (FONT, 14)
                    .into_font()
                    .color(if dark { &WHITE } else { &BLACK }),
            )
        }))
        .map_err(err)?;
    Ok(())
}
