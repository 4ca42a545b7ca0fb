//! The report's figures, each written as PNG and SVG (`stem.png`, `stem.svg`), drawn from
//! plain data:
//! - `activations.rs`: activations and their derivatives from their configs;
//! - `results.rs`: accuracy and loss curves, accuracy bars, gradient norms from
//!   [`ActivationResult`](crate::report::ActivationResult)s;
//! - `confusion.rs`: a confusion matrix;
//! - `inspect.rs`: `fmnist inspect`'s distributions, PReLU slopes and APReLU class maps.
//!
//! Text is drawn with DejaVu Sans embedded in the binary, so plots look the same on every
//! machine and need no system fonts.
use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::CoordTranslate;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

mod activations;
mod confusion;
mod inspect;
mod results;

pub use activations::{activation_curve, activation_grid, left_out, plottable};
pub use confusion::confusion;
pub use inspect::{class_channel_map, densities, learned_curves, per_channel, prelu_slopes};
pub use results::{accuracy_bars, curves, diagnostic_curves, grad_norms};

pub(crate) const FONT: &str = "sans-serif";
pub(crate) const F_COLOR: RGBColor = RGBColor(31, 119, 180);
pub(crate) const DF_COLOR: RGBColor = RGBColor(255, 127, 14);

pub(crate) fn fonts() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // DejaVu Sans is a valid font: registering it cannot fail.
        let _ = register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// A figure that could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlotError {
    /// Plotters failed to draw (its error types are generic over the backend, so the text is
    /// kept).
    #[error("cannot draw a plot: {reason}")]
    Draw {
        /// Plotters' message.
        reason: String,
    },
    /// The finished figure could not be moved into place.
    #[error("cannot write {}", path.display())]
    Write {
        /// The figure's file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// None of the activations asked for is a function of one value (softmax and FReLU have
    /// no curve).
    #[error(
        "none of these activations is a function of one value, so there is no curve to plot; \
         name at least one that is (e.g. relu, pau, aprelu)"
    )]
    NothingToPlot,
}

pub(crate) fn err<E: std::fmt::Display>(error: E) -> PlotError {
    PlotError::Draw {
        reason: error.to_string(),
    }
}

/// A distinct, dark-enough colour per series: tab10, then six more, then Plotters' palette.
pub(crate) fn color(index: usize) -> RGBColor {
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

/// Draws with `draw` into `stem.png` and `stem.svg`, each through a uniquely named temporary
/// file renamed into place ([`crate::atomic`]), so an interrupted run never leaves half a
/// picture and two processes drawing the same plot never mix theirs.
macro_rules! render {
    ($stem:expr, $size:expr, $draw:ident $(, $arg:expr)*) => {{
        fonts();
        let stem: &Path = $stem;
        let png = with_suffix(stem, "png");
        let svg = with_suffix(stem, "svg");
        let write = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PlotError::Write { path, source }
        };
        let png_tmp = crate::atomic::temporary_beside(&png, ".png").map_err(write(&png))?;
        let svg_tmp = crate::atomic::temporary_beside(&svg, ".svg").map_err(write(&svg))?;
        {
            let root = BitMapBackend::new(png_tmp.path(), $size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            $draw(&root $(, $arg)*)?;
            root.present().map_err(err)?;
        }
        {
            let root = SVGBackend::new(svg_tmp.path(), $size).into_drawing_area();
            root.fill(&WHITE).map_err(err)?;
            $draw(&root $(, $arg)*)?;
            root.present().map_err(err)?;
        }
        for (tmp, path) in [(png_tmp, png), (svg_tmp, svg)] {
            crate::atomic::persist(tmp, &path).map_err(write(&path))?;
        }
        Ok(())
    }};
}

pub(crate) fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut name = stem.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    stem.with_file_name(name)
}

pub(crate) use render;

/// Series `index` as a line with point markers, named `label` in the legend.
pub(crate) fn labelled_line<'a, DB: DrawingBackend + 'a, CT: CoordTranslate<From = (f64, f64)>>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: Vec<(f64, f64)>,
    index: usize,
    label: &str,
) -> Result<(), PlotError> {
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
pub(crate) fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    corner: SeriesLabelPosition,
) -> Result<(), PlotError> {
    chart
        .configure_series_labels()
        .position(corner)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(err)
}
