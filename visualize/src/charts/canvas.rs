//! Where charts are drawn: the file format chosen by extension, written
//! atomically by the caller, and the backend-independent [`Chart`] trait.

use image::ImageEncoder;
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
    super::style::register_fonts();
    let mut svg = String::new();
    {
        let area = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart.draw(&area)?;
        area.present()?;
    }
    Ok(svg)
}

/// Draws `chart` as a PNG image held in memory.
pub fn render_png_bytes(chart: &impl Chart, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    super::style::register_fonts();
    let (width, height) = size;
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    {
        let area = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        chart.draw(&area)?;
        area.present()?;
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, image::ColorType::Rgb8)
        .map_err(|error| ChartError(format!("cannot encode the PNG image: {error}")))?;
    Ok(png)
}

/// Draws `chart` in `format`, as the bytes of the file.
pub fn render(chart: &impl Chart, format: Format, size: (u32, u32)) -> Result<Vec<u8>, ChartError> {
    match format {
        Format::Svg => render_svg_string(chart, size).map(String::into_bytes),
        Format::Png => render_png_bytes(chart, size),
    }
}

/// Draws `chart` into `path`, in the format its extension names. The
/// drawing is done in memory first, so a failed draw leaves no file;
/// callers that must never leave half a file behind write the bytes of
/// [`render`] to a temporary file and rename it.
pub fn render_to_file(chart: &impl Chart, path: &Path, size: (u32, u32)) -> Result<(), ChartError> {
    let bytes = render(chart, Format::from_path(path)?, size)?;
    std::fs::write(path, bytes).map_err(|error| ChartError(format!("{}: {error}", path.display())))
}
