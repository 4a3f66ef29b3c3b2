//! `lessons`: the lab's lesson content and the headless lesson engine
//! (steps, predictions and checks as pure functions over run reports).
//!
//! Empty until the lessons issue lands; it exists so the workspace has its
//! final shape and dependency direction from the start:
//! `sim ← scenarios ← lessons ← visualize ← rlab`.

/// The syllabus size planned in shared/LESSONS.md, so dependents can link
/// against this crate before lessons exist.
pub const PLANNED_LESSON_COUNT: usize = 12;
