//! `visualize`: charts (plotters), trace exports and, later, the terminal
//! UI (ratatui + crossterm).
//!
//! Dependencies point one way: `sim ← scenarios ← lessons ← visualize ←
//! rlab`. Nothing here runs a simulation; it draws and converts what runs
//! produced (reports, sweeps, traces).

pub mod charts;
pub mod export;

/// The lesson count the UI will list, re-exported so the dependency on
/// `lessons` is real.
pub const LESSON_COUNT: usize = lessons::PLANNED_LESSON_COUNT;
