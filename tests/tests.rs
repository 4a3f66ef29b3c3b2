//! Workspace-level tests: one binary (ripgrep style), one module per area.
mod determinism;
mod tidy;
