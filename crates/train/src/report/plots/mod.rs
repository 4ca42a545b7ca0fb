//! The report's figures, each written as PNG and SVG (`stem.png`, `stem.svg`).
//!
//! Text is drawn with DejaVu Sans embedded in the binary, so plots look the same on every
//! machine and need no system fonts.
use std::path::{Path, PathBuf};
use std::sync::Once;

use activations::ActivationConfig;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::ActivationResult;

const FONT: &str = "sans-serif";
const F_COLOR: RGBColor = RGBColor(31, 119, 180);
const DF_COLOR: RGBColor = RGBColor(255, 127, 14);

fn fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // DejaVu Sans is a valid font: registering it cannot fail.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

fn err<E: std::fmt::Display>(error: E) -> String {
    format!("cannot draw a plot: {error}")
}

/// A distinct, dark-enough colour per series: tab10, then six more, then Plotters' palette.
fn color(index: usize) -> RGBColor {
    const COLORS: [RGBColor; 16] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
        RGBColor(0, 0, 0),
        RGBColor(0, 0, 128),
        RGBColor(128, 0, 0),
        RGBColor(0, 110, 90),
        RGBColor(110, 80, 0),
        RGBColor(90, 0, 140),
    ];
    if index < COLORS.len() {
        COLORS[index]
    } else {
        let c = Palette99::pick(index).to_rgba();
        RGBColor(c.0, c.1, c.2)
    }
}

/// Draws with `draw` into `stem.png` and `stem.svg`, each through a temporary file renamed into
/// place, so an interrupted run never leaves half a picture.
macro_rules! render {
    ($stem:expr, $size:expr, $draw:ident $(, $arg:expr)*) => {{
        fonts();
        let stem: &Path = $stem;
        let png = with_suffix(stem, "png");
        let svg = with_suffix(stem, "svg");
        let png_tmp = with_suffix(stem, "tmp.png");
        let svg_tmp = with_suffix(stem, "tmp.svg");
        {
            let root = BitMapBackend::new(&png_tmp, $size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            $draw(&root $(, $arg)*)?;
            root.present().map_err(err)?;
        }
        {
            let root = SVGBackend::new(&svg_tmp, $size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            $draw(&root $(, $arg)*)?;
            root.present().map_err(err)?;
        }
        for (tmp, path) in [(png_tmp, png), (svg_tmp, svg)] {
            std::fs::rename(&tmp, &path)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }};
}

fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    stem.with_file_name(name)
}

/// `f(x)` and, for element-wise activations, `f'(x)` on `xs` (modules in evaluation mode:
/// RReLU at its mean slope, APReLU with its initial SE network).
pub fn activation_curve(config: &ActivationConfig, xs: &[f32]) -> (Vec<f32>, Option<Vec<f32>>) {
    let device = Device::flex().autodiff();
    let activation = config.init(1, &device).valid();
    let inner = Device::flex();
    let x = Tensor::<2>::from_data(TensorData::new(xs.to_vec(), [xs.len(), 1]), &inner);
    let values = |t: Tensor<2>| -> Vec<f32> {
        t.into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("f32 values")
    };
    let f = values(activation.forward(x.clone()));
    let df = activation.derivative(x).map(values);
    (f, df)
}

/// The activations that are functions of one value (softmax and log-softmax are left out).
pub fn plottable(activations: &[ActivationConfig]) -> Vec<ActivationConfig> {
    activations
        .iter()
        .filter(|a| {
            !matches!(
                a,
                ActivationConfig::Softmax(_) | ActivationConfig::LogSoftmax(_)
            )
        })
        .cloned()
        .collect()
}

/// A grid of small plots: each activation and its derivative on [−6, 6].
pub fn activation_grid(activations: &[ActivationConfig], stem: &Path) -> Result<(), String> {
    let activations = plottable(activations);
    if activations.is_empty() {
        return Err("no element-wise activation to plot".into());
    }
    let cols = activations.len().clamp(1, 5);
    let rows = activations.len().div_ceil(cols);
    let size = (cols as u32 * 280, rows as u32 * 220 + 50);
    render!(stem, size, draw_activation_grid, &activations, cols, rows)
}

fn draw_activation_grid<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    activations: &[ActivationConfig],
    cols: usize,
    rows: usize,
) -> Result<(), String> {
    let (title, body) = root.split_vertically(50);
    title
        .draw(&Text::new(
            "Activations f(x) (blue) and derivatives f′(x) (orange) on [−6, 6]",
            (12, 14),
            (FONT, 20).into_font().style(FontStyle::Bold),
        ))
        .map_err(err)?;
    let xs: Vec<f32> = (0..=240).map(|i| -6.0 + 0.05 * i as f32).collect();
    let panels = body.split_evenly((rows, cols));
    for (config, panel) in activations.iter().zip(panels.iter()) {
        let (f, df) = activation_curve(config, &xs);
        let all = f.iter().chain(df.iter().flatten()).copied();
        let (low, high) = all
            .filter(|v| v.is_finite())
            .fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(v), h.max(v)));
        let (low, high) = (low.max(-6.5) - 0.3, high.min(6.5) + 0.3);
        let mut chart = ChartBuilder::on(panel)
            .caption(crate::compare::label(config), (FONT, 16))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(34)
            .build_cartesian_2d(-6f32..6f32, low..high)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(5)
            .label_style((FONT, 11))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(-6f32, 0f32), (6f32, 0f32)],
                BLACK.mix(0.3),
            ))
            .map_err(err)?;
        if let Some(df) = df {
            chart
                .draw_series(LineSeries::new(
                    xs.iter().copied().zip(df),
                    DF_COLOR.stroke_width(2),
                ))
                .map_err(err)?;
        }
        chart
            .draw_series(LineSeries::new(
                xs.iter().copied().zip(f),
                F_COLOR.stroke_width(2),
            ))
            .map_err(err)?;
    }
    Ok(())
}

/// Test accuracy and training loss per epoch, one line per activation.
pub fn curves(results: &[ActivationResult], stem: &Path) -> Result<(), String> {
    render!(stem, (1400, 620), draw_curves, results)
}

/// A curve panel: where, title, y-axis name, and the values per epoch of one activation.
type Panel<'a, DB> = (
    &'a DrawingArea<DB, Shift>,
    &'static str,
    &'static str,
    fn(&ActivationResult) -> Vec<f64>,
);

fn draw_curves<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[ActivationResult],
) -> Result<(), String> {
    let (left, right) = root.split_horizontally(700);
    let epochs = results
        .iter()
        .map(|r| r.test_accuracy_per_epoch.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let x_range = 0.8f64..epochs as f64 + 0.2;
    let panels: [Panel<'_, DB>; 2] = [
        (&left, "Test accuracy (%)", "test accuracy %", |r| {
            r.test_accuracy_per_epoch
                .iter()
                .map(|a| 100.0 * a)
                .collect()
        }),
        (&right, "Training loss", "training loss", |r| {
            r.train_loss_per_epoch.clone()
        }),
    ];
    for (area, title, y_desc, series) in panels {
        let values: Vec<f64> = results
            .iter()
            .flat_map(series)
            .filter(|v| v.is_finite())
            .collect();
        let low = values.iter().copied().fold(f64::MAX, f64::min);
        let high = values.iter().copied().fold(f64::MIN, f64::max);
        let pad = ((high - low) * 0.08).max(1e-3);
        // Headroom above the data for the legend (one line per series), so it hides no line.
        let headroom = (high - low).max(1e-3) * (0.07 * results.len() as f64).min(1.2);
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 22))
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), (low - pad)..(high + pad + headroom))
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
        // where no line goes.
        let corner = if title.starts_with("Test") {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        };
        legend(&mut chart, corner)?;
    }
    Ok(())
}

/// Final test accuracy per activation as horizontal bars with ±std error bars, best on top.
pub fn accuracy_bars(results: &[ActivationResult], stem: &Path) -> Result<(), String> {
    let height = 110 + 34 * results.len() as u32;
    render!(stem, (1000, height), draw_accuracy_bars, results)
}

fn draw_accuracy_bars<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[ActivationResult],
) -> Result<(), String> {
    let n = results.len();
    let lows = results
        .iter()
        .map(|r| 100.0 * (r.test_accuracy_mean - r.test_accuracy_std));
    let highs = results
        .iter()
        .map(|r| 100.0 * (r.test_accuracy_mean + r.test_accuracy_std));
    let low = lows.fold(f64::MAX, f64::min);
    let high = highs.fold(f64::MIN, f64::max);
    let span = (high - low).max(1.0);
    // Bars start left of the worst result, so differences stay visible.
    let x_start = (low - 0.6 * span).max(0.0);
    let x_end = (high + 0.08 * span).min(100.0);
    let mut chart = ChartBuilder::on(root)
        .caption("Final test accuracy (mean ± std over seeds)", (FONT, 22))
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
        .draw_series(results.iter().enumerate().map(|(rank, r)| {
            ErrorBar::new_horizontal(
                y(rank),
                100.0 * (r.test_accuracy_mean - r.test_accuracy_std),
                100.0 * r.test_accuracy_mean,
                100.0 * (r.test_accuracy_mean + r.test_accuracy_std),
                BLACK.stroke_width(2),
                10,
            )
        }))
        .map_err(err)?;
    chart
        .draw_series(results.iter().enumerate().map(|(rank, r)| {
            Text::new(
                format!("{}  {}", r.label, crate::report::accuracy_cell(r)),
                (x_start + 0.01 * (x_end - x_start), y(rank) + 0.18),
                (FONT, 15).into_font().color(&BLACK),
            )
        }))
        .map_err(err)?;
    Ok(())
}

/// Weight-gradient norm per layer (log scale), one line per activation.
pub fn grad_norms(results: &[&ActivationResult], stem: &Path) -> Result<(), String> {
    render!(stem, (1100, 640), draw_grad_norms, results)
}

fn draw_grad_norms<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    results: &[&ActivationResult],
) -> Result<(), String> {
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
    let mut chart = ChartBuilder::on(root)
        .caption(
            "Weight-gradient L2 norm per layer (input → output)",
            (FONT, 22),
        )
        .margin(16)
        .x_label_area_size(44)
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

/// Series `index` as a line with point markers, named `label` in the legend.
fn labelled_line<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: Vec<(f64, f64)>,
    index: usize,
    label: &str,
) -> Result<(), String> {
    let style = color(index).stroke_width(2);
    chart
        .draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, color(index).filled())),
        )
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(points, style))
        .map_err(err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
    Ok(())
}

/// The legend of the labelled series, in `corner`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    corner: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(corner)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}

/// A confusion matrix (`[true][predicted]` counts) as a heat map with class names.
pub fn confusion(
    matrix: &[Vec<u64>],
    class_names: &[&str],
    title: &str,
    stem: &Path,
) -> Result<(), String> {
    render!(stem, (900, 820), draw_confusion, matrix, class_names, title)
}

fn draw_confusion<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    matrix: &[Vec<u64>],
    class_names: &[&str],
    title: &str,
) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curves_of_activations_are_the_modules_values() {
        let xs = [-2.0f32, 0.0, 3.0];
        let (f, df) = activation_curve(&ActivationConfig::Relu, &xs);
        assert_eq!(f, vec![0.0, 0.0, 3.0]);
        assert_eq!(df, Some(vec![0.0, 0.0, 1.0]));
        let (f, df) = activation_curve(&"aprelu".parse().unwrap(), &xs);
        assert_eq!(f.len(), 3);
        assert_eq!(f[2], 3.0, "positive inputs pass unchanged");
        assert!(df.is_none(), "APReLU is not element-wise");
        let all = plottable(&ActivationConfig::catalog());
        assert_eq!(all.len(), ActivationConfig::catalog().len() - 2);
    }

    #[test]
    fn every_plot_is_written_as_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        activation_grid(&ActivationConfig::catalog(), &dir.path().join("all")).unwrap();
        confusion(
            &vec![vec![3; 10]; 10],
            &crate::data::CLASS_NAMES,
            "test",
            &dir.path().join("confusion"),
        )
        .unwrap();
        for name in ["all.png", "all.svg", "confusion.png", "confusion.svg"] {
            let size = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(size > 1000, "{name}: {size} bytes");
        }
        let svg = std::fs::read_to_string(dir.path().join("all.svg")).unwrap();
        assert!(
            svg.contains("gelu") && svg.contains("hardswish"),
            "labels are drawn"
        );
        assert!(
            !dir.path().join("all.tmp.png").exists(),
            "temporary files are renamed"
        );
    }
}
