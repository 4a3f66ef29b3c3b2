//! Where charts are drawn: the file format chosen by extension, written
//! atomically by the caller, and the backend-independent [`Chart`] trait.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::fmt;
use std::path::Path;

/// The default size of a chart, in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1024, 640);

/// A chart that can draw itself on any plotters backend.
pub trait Chart {
    /// Draws the whole chart on `area`.
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ChartError>;
}

/// Why a chart could not be drawn or written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartError(pub String);

impl fmt::Display for ChartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChartError {}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for ChartError {
    fn from(error: DrawingAreaErrorKind<E>) -> ChartError {
        ChartError(error.to_string())
    }
}

/// The image formats a chart can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Scalable vector graphics.
    Svg,
    /// Portable network graphics.
    Png,
}

impl Format {
    /// The format a file's extension asks for.
    pub fn from_path(path: &Path) -> Result<Format, ChartError> {
        match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
            Some(extension) if extension.eq_ignore_ascii_case("png") => Ok(Format::Png),
            _ => Err(ChartError(format!(
                "{}: the chart's file must end in .svg or .png",
                path.display()
            ))),
        }
    }
}

/// Draws `chart` as an SVG document held in memory.
pub fn render_svg_string(chart: &impl Chart, size: (u32, u32)) -> Result<String, ChartError> {
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart.draw(&area)?;
        area.present()?;
    }
    Ok(svg)
}

/// Draws `chart` into `path`, in the format its extension names. The
/// caller writes to a temporary path and renames, so a failed draw leaves
/// no half-written file.
pub fn render_to_file(chart: &impl Chart, path: &Path, size: (u32, u32)) -> Result<(), ChartError> {
    match Format::from_path(path)? {
        Format::Svg => {
            let svg = render_svg_string(chart, size)?;
            std::fs::write(path, svg)
                .map_err(|error| ChartError(format!("{}: {error}", path.display())))
        }
        // PNG output comes with the bitmap backend (charts issue, part 2).
        Format::Png => Err(ChartError(format!(
            "{}: PNG output is not available yet; use .svg",
            path.display()
        ))),
    }
}
