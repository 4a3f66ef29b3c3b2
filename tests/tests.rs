//! Workspace-level tests: one binary (ripgrep style), one module per area.
mod bench;
mod determinism;
mod queue;
mod scenario_files;
mod tidy;
