//! What every chart shares: the embedded font, the palette and the text
//! sizes.
//!
//! Text is laid out (and, for PNG, drawn) with DejaVu Sans, embedded in
//! the binary, so a chart looks the same on a machine without any system
//! font. Its licence is in `visualize/fonts/LICENSE-DejaVu.txt`.

use plotters::style::{FontStyle, RGBColor, register_font};
use std::sync::Once;

/// The font family every chart names.
pub const FONT: &str = "sans-serif";

/// DejaVu Sans, version 2.37 (Debian's fonts-dejavu-core).
static DEJAVU_SANS: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// Registers the embedded font under the family names plotters asks for.
/// Called by the renderers before drawing; registering twice is harmless
/// but done once.
pub fn register_fonts() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for family in [FONT, "serif", "monospace"] {
            // The bytes are a valid TrueType font, checked by the tests
            // that draw charts; a failure here would only lose text.
            let _ = register_font(family, FontStyle::Normal, DEJAVU_SANS);
        }
    });
}

/// Text size of a chart's title, in pixels.
pub const TITLE_SIZE: u32 = 22;
/// Text size of a panel's caption.
pub const CAPTION_SIZE: u32 = 17;
/// Text size of axis descriptions.
pub const AXIS_SIZE: u32 = 15;
/// Text size of tick labels, legends and notes.
pub const LABEL_SIZE: u32 = 13;

/// Series colours, distinguishable in colour and, mostly, in grey
/// (after the Okabe-Ito palette for colour-blind readers).
pub const SERIES: [RGBColor; 8] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermilion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(120, 120, 120), // grey
    RGBColor(0, 0, 0),       // black
];

/// The colour of good news (completed orders, a closed breaker).
pub const GOOD: RGBColor = RGBColor(0, 158, 115);
/// The colour of bad news (failures, an open breaker).
pub const BAD: RGBColor = RGBColor(213, 94, 0);
/// The colour of caution (cancellations, a half-open breaker).
pub const CAUTION: RGBColor = RGBColor(230, 159, 0);
/// Fault windows are shaded in this colour.
pub const FAULT: RGBColor = RGBColor(150, 150, 150);
/// Notes and secondary text.
pub const NOTE: RGBColor = RGBColor(90, 90, 90);
