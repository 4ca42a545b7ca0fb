//! Each activation and its derivative on [−6, 6], as a grid of small plots.
use std::path::Path;

use activations::ActivationConfig;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DF_COLOR, F_COLOR, FONT, PlotError, err, fonts, render, with_suffix};

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

/// The activations that are functions of one value: softmax and log-softmax (across units)
/// and the kinds for convolutional slots alone (FReLU, whose condition is a neighbourhood) are
/// left out ([`left_out`] says why).
pub fn plottable(activations: &[ActivationConfig]) -> Vec<ActivationConfig> {
    activations
        .iter()
        .filter(|a| why_no_curve(a).is_none())
        .cloned()
        .collect()
}

/// The activations [`plottable`] leaves out, each with the reason, for the user who asked for
/// it by name.
pub fn left_out(activations: &[ActivationConfig]) -> Vec<(ActivationConfig, &'static str)> {
    activations
        .iter()
        .filter_map(|a| why_no_curve(a).map(|why| (a.clone(), why)))
        .collect()
}

fn why_no_curve(activation: &ActivationConfig) -> Option<&'static str> {
    if matches!(
        activation,
        ActivationConfig::Softmax(_) | ActivationConfig::LogSoftmax(_)
    ) {
        Some("it normalises across units, so it is no function of one value")
    } else if activation.check_slot(usize::MAX, false).is_err() {
        Some(
            "it only runs in convolutional slots (its output at a pixel depends on the pixel's \
             neighbourhood); `fmnist inspect` shows it in a trained model",
        )
    } else {
        None
    }
}

/// A grid of small plots: each activation and its derivative on [−6, 6].
pub fn activation_grid(activations: &[ActivationConfig], stem: &Path) -> Result<(), PlotError> {
    let activations = plottable(activations);
    if activations.is_empty() {
        return Err(PlotError::NothingToPlot);
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
) -> Result<(), PlotError> {
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
            .caption(crate::sweep::label(config), (FONT, 16))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::plots::confusion;

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
        let names = |list: Vec<ActivationConfig>| -> Vec<String> {
            list.iter().map(|a| a.name().to_string()).collect()
        };
        let not_plotted: Vec<_> = ActivationConfig::catalog()
            .into_iter()
            .filter(|a| !all.contains(a))
            .collect();
        assert_eq!(
            names(not_plotted.clone()),
            ["softmax", "log_softmax", "frelu"]
        );
        let reasons = left_out(&ActivationConfig::catalog());
        assert_eq!(
            names(reasons.iter().map(|(a, _)| a.clone()).collect()),
            names(not_plotted)
        );
        assert!(
            reasons[2].1.contains("convolutional slots"),
            "{:?}",
            reasons[2]
        );
        let frelu_alone = activation_grid(&["frelu".parse().unwrap()], Path::new("never-written"));
        assert!(
            matches!(frelu_alone, Err(PlotError::NothingToPlot)),
            "{frelu_alone:?}"
        );
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
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().starts_with('.'))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files are renamed: {leftovers:?}"
        );
    }
}
