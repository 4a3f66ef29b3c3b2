//! `visualize`: charts (plotters), trace exports and the terminal UI
//! (ratatui + crossterm).
//!
//! Empty until the scaling-lab and TUI issues land; it exists so the
//! workspace has its final shape and dependency direction from the start:
//! `sim ← scenarios ← lessons ← visualize ← rlab`.

/// The lesson count the UI will list, re-exported so the dependency on
/// `lessons` is real.
pub const LESSON_COUNT: usize = lessons::PLANNED_LESSON_COUNT;
