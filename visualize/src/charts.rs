//! Charts drawn with plotters, to SVG or PNG (the output file's extension
//! picks the format).
//!
//! Every chart implements [`Chart`]: it draws itself on any plotters
//! backend, and [`canvas`] picks the backend for a file.

pub mod canvas;
pub mod scaling;
pub mod timeline;

pub use canvas::{Chart, ChartError, Format, render_svg_string, render_to_file};
