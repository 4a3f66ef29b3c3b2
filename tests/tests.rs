//! Workspace-level tests: one binary (ripgrep style), one module per area.
mod bench;
mod charts;
mod cli_run;
mod determinism;
mod library;
mod queue;
mod scaling_models;
mod scenario_files;
mod support;
mod sweep;
mod tidy;
mod trace_export;
