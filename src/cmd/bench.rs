//! `rlab bench`: times the standard workloads of `scenarios::bench` and
//! prints, per workload, the work done, the wall time and the rates.
//!
//! What "events" counts differs by row, so that events per second means
//! what a reader wants from each:
//! - `ping-pong` and `ping-pong-baseline`: balls caught (message
//!   deliveries), so the two rows compare the same unit of work;
//! - `mm1`, `mixed-traced` and `microsystem-16`: events taken from the
//!   engine's queue;
//! - `sweep-architectures`: events of all its runs together, which run in
//!   parallel on every core (its wall time is the figure that matters;
//!   `--scale` shortens every run's arrival window and drain).
//!
//! Each workload runs `--repeat` times (workloads interleaved, so drift of
//! the machine's speed hits all rows alike) and the median wall time is
//! reported. Wall time covers building the world and running it.

use crate::cli::BenchArgs;
use anyhow::bail;
use scenarios::bench::{
    self, ByteCounter, MIXED_DURATION, MM1_CUSTOMERS, MixedConfig, PING_PONG_DELIVERIES,
    PING_PONG_PROCESSES, WorkloadResult,
};
use serde::Serialize;
use sim::trace::JsonLinesSink;
use sim::{Seed, SimDuration};
use std::process::ExitCode;

/// The benchmark's fixed seed: runs are comparable across builds.
const SEED: Seed = Seed(1);

const PING_PONG: &str = "ping-pong";
const BASELINE: &str = "ping-pong-baseline";
const MICROSYSTEM: &str = "microsystem-16";
const SWEEP: &str = "sweep-architectures";
const WORKLOADS: [&str; 6] = [PING_PONG, BASELINE, "mm1", "mixed-traced", MICROSYSTEM, SWEEP];

/// The amount of work in each workload at a given `--scale`.
struct Sizes {
    deliveries: u64,
    customers: u64,
    mixed: SimDuration,
    orders: SimDuration,
    /// The sweep's run lengths relative to the shipped file's.
    sweep: f64,
}

impl Sizes {
    fn scaled(scale: f64) -> Sizes {
        let count = |standard: u64| ((standard as f64 * scale).round() as u64).max(1);
        Sizes {
            deliveries: count(PING_PONG_DELIVERIES),
            customers: count(MM1_CUSTOMERS),
            mixed: SimDuration::from_nanos(count(MIXED_DURATION.as_nanos())),
            orders: SimDuration::from_nanos(count(bench::MICROSYSTEM_DURATION.as_nanos())),
            sweep: scale,
        }
    }
}

/// One timed run.
struct Sample {
    result: WorkloadResult,
    trace_bytes: Option<u64>,
    wall_seconds: f64,
}

/// One line of the report.
#[derive(Debug, Serialize)]
struct Row {
    name: &'static str,
    /// See the module docs for what this counts in each row.
    events: u64,
    deliveries: u64,
    wall_seconds: f64,
    events_per_second: f64,
    sim_to_real: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_bytes: Option<u64>,
    /// On the `ping-pong` row: its wall time over the baseline's.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_baseline: Option<f64>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    if !(args.scale.is_finite() && args.scale > 0.0 && args.scale <= 100.0) {
        bail!("--scale {}: expected a number greater than 0 and at most 100", args.scale);
    }
    if !(1..=100).contains(&args.repeat) {
        bail!("--repeat {}: expected a whole number from 1 to 100", args.repeat);
    }
    let selected: Vec<&'static str> = WORKLOADS
        .into_iter()
        .filter(|name| args.filter.as_deref().is_none_or(|text| name.contains(text)))
        .collect();
    if selected.is_empty() {
        bail!(
            "--filter {}: matches no workload; the workloads are {}",
            args.filter.as_deref().unwrap_or_default(),
            WORKLOADS.join(", ")
        );
    }
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this rlab was built without optimisations; its figures are not meaningful \
             (build with `cargo build --release`)"
        );
    }

    let sizes = Sizes::scaled(args.scale);
    let mut samples: Vec<Vec<Sample>> = selected.iter().map(|_| Vec::new()).collect();
    for _ in 0..args.repeat {
        for (name, runs) in selected.iter().zip(&mut samples) {
            runs.push(run_once(name, &sizes));
        }
    }
    let mut rows: Vec<Row> =
        selected.iter().zip(&samples).map(|(name, runs)| row(name, runs)).collect();
    let baseline = rows.iter().find(|row| row.name == BASELINE).map(|row| row.wall_seconds);
    let ratio = if let (Some(baseline), Some(engine)) =
        (baseline, rows.iter_mut().find(|row| row.name == PING_PONG))
    {
        engine.ratio_to_baseline = Some(engine.wall_seconds / baseline);
        engine.ratio_to_baseline
    } else {
        None
    };

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_table(args, &rows, ratio);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_once(name: &str, sizes: &Sizes) -> Sample {
    let processes = PING_PONG_PROCESSES;
    let (result, trace_bytes, wall_seconds) = match name {
        PING_PONG => {
            let (result, wall) = timed(|| bench::ping_pong(SEED, processes, sizes.deliveries));
            (result, None, wall)
        }
        BASELINE => {
            let (result, wall) =
                timed(|| bench::ping_pong_baseline(SEED, processes, sizes.deliveries));
            (result, None, wall)
        }
        "mm1" => {
            let (result, wall) = timed(|| bench::mm1(SEED, sizes.customers));
            (result, None, wall)
        }
        "mixed-traced" => {
            let bytes = ByteCounter::new();
            let config = MixedConfig::standard(sizes.mixed);
            let (mut mixed, wall) =
                timed(|| bench::mixed(SEED, &config, Box::new(JsonLinesSink::new(bytes.clone()))));
            mixed.sink.finish().expect("counting bytes cannot fail");
            (mixed.run, Some(bytes.bytes()), wall)
        }
        MICROSYSTEM => {
            let (result, wall) = timed(|| bench::microsystem_orders(SEED, sizes.orders));
            (result, None, wall)
        }
        SWEEP => {
            let jobs = std::thread::available_parallelism().map_or(1, usize::from);
            let (result, wall) = timed(|| bench::sweep_architectures(jobs, sizes.sweep));
            (result, None, wall)
        }
        other => unreachable!("unknown workload {other}"),
    };
    Sample { result, trace_bytes, wall_seconds }
}

/// Runs `work` and returns its wall time in seconds.
#[allow(clippy::disallowed_types)] // the bench measures wall time; it is outside any run
fn timed<T>(work: impl FnOnce() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let output = work();
    (output, start.elapsed().as_secs_f64())
}

/// The row of a workload's runs: their common result and median wall time.
fn row(name: &'static str, runs: &[Sample]) -> Row {
    let first = &runs[0];
    for other in &runs[1..] {
        // Same seed, same work: anything else is an engine bug.
        assert_eq!(other.result, first.result, "{name} is not deterministic (seed {SEED})");
        assert_eq!(other.trace_bytes, first.trace_bytes, "{name} traced differently (seed {SEED})");
    }
    let mut walls: Vec<f64> = runs.iter().map(|sample| sample.wall_seconds).collect();
    walls.sort_by(f64::total_cmp);
    let middle = walls.len() / 2;
    let wall_seconds = if walls.len() % 2 == 1 {
        walls[middle]
    } else {
        (walls[middle - 1] + walls[middle]) / 2.0
    };
    // A run too short for the timer would divide by zero.
    let wall = wall_seconds.max(1e-9);
    let events = first.result.events;
    Row {
        name,
        events,
        deliveries: first.result.deliveries,
        wall_seconds,
        events_per_second: events as f64 / wall,
        sim_to_real: first.result.sim_time.as_secs_f64() / wall,
        trace_bytes: first.trace_bytes,
        ratio_to_baseline: None,
    }
}

fn print_table(args: &BenchArgs, rows: &[Row], ratio: Option<f64>) {
    println!(
        "seed={SEED} scale={} repeat={} (median wall time of {} run{})",
        args.scale,
        args.repeat,
        args.repeat,
        if args.repeat == 1 { "" } else { "s" }
    );
    println!(
        "{:<20} {:>12} {:>10} {:>14} {:>14} {:>14}",
        "name", "events", "wall_s", "events/s", "sim/real", "trace_bytes"
    );
    for row in rows {
        let trace_bytes =
            row.trace_bytes.map_or_else(|| "-".to_string(), |bytes| bytes.to_string());
        println!(
            "{:<20} {:>12} {:>10.4} {:>14.0} {:>14.2} {:>14}",
            row.name,
            row.events,
            row.wall_seconds,
            row.events_per_second,
            row.sim_to_real,
            trace_bytes
        );
    }
    println!("events: balls caught for the ping-pong rows, queue events for the others");
    println!(
        "microsystem-16: 16 stateful nodes, 1,000 orders/s, 60 s of arrivals + 5 s drain; sim/real is its speed-up over real time"
    );
    if rows.iter().any(|row| row.name == SWEEP) {
        println!(
            "sweep-architectures: every run of the sweep in {}, on every core; wall_s is the whole sweep's time",
            bench::SWEEP_ARCHITECTURES_PATH
        );
    }
    if let Some(ratio) = ratio {
        println!("ping-pong / baseline = {ratio:.2}x");
    }
}
