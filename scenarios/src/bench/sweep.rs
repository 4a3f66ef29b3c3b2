//! The scaling lab's speed target: the shipped three-architecture sweep
//! (`scenarios/sweep-architectures.toml`: 7 points × 3 architectures, 60
//! simulated seconds each, one seed), spread over the machine's cores as
//! `rlab sweep` spreads it.

use super::WorkloadResult;
use sim::{SimDuration, SimTime};

/// Where the scenario lives, for messages.
pub const SWEEP_ARCHITECTURES_PATH: &str = "scenarios/sweep-architectures.toml";

/// The scenario file itself, built into the binary so the benchmark runs
/// from any directory.
pub const SWEEP_ARCHITECTURES_TOML: &str = include_str!("../../sweep-architectures.toml");

/// Runs the file's own sweep on `jobs` threads, every run's arrival window
/// and drain multiplied by `scale` (1: the file as shipped). `events` sums
/// the runs' engine events, `deliveries` their completed orders, and
/// `sim_time` their simulated time.
pub fn sweep_architectures(jobs: usize, scale: f64) -> WorkloadResult {
    let (path, text) = (SWEEP_ARCHITECTURES_PATH, SWEEP_ARCHITECTURES_TOML);
    let shipped = crate::file::parse(path, text, &[]).expect("the shipped sweep file is valid");
    let scaled = |duration: SimDuration| (duration.as_secs_f64() * scale).max(0.1);
    let overrides = vec![
        format!("duration_s={}", scaled(shipped.duration)),
        format!("drain_s={}", scaled(shipped.drain)),
    ];
    let scenario =
        crate::file::parse(path, text, &overrides).expect("a scaled sweep file is valid");
    let spec = scenario.sweep.clone().expect("the shipped sweep file declares its sweep");
    let points = crate::file::parse_points(path, text, &overrides, &spec)
        .expect("every point of the shipped sweep is valid");
    let runs = crate::sweep::run_all(&points, &scenario.architectures, spec.seeds, jobs, &|_| {});
    let run_length = (scenario.duration + scenario.drain).as_nanos();
    let completed: f64 =
        runs.iter().map(|run| run.throughput * scenario.duration.as_secs_f64()).sum();
    WorkloadResult {
        events: runs.iter().map(|run| run.events).sum(),
        deliveries: completed.round() as u64,
        sim_time: SimTime::ZERO + SimDuration::from_nanos(run_length * runs.len() as u64),
        trace_hash: None,
        trace_events: 0,
    }
}
