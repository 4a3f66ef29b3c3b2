//! The benchmark workloads and `rlab bench`: the baseline does the same
//! work as the engine, every workload is deterministic, and the command
//! prints what the issue asks for. Timing targets are not tested here;
//! `rlab bench` in a release build reports them.

use scenarios::bench::{
    self, ByteCounter, MixedConfig, WorkloadResult, mm1_detailed, ping_pong, ping_pong_baseline,
};
use sim::trace::JsonLinesSink;
use sim::{FiredFault, Seed, SimDuration};
use std::process::Command;

fn rlab(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rlab")).args(args).output().expect("rlab runs")
}

/// The baseline is a fair floor only if it does the same work: drawing
/// the same numbers in the same order, it must end at the very same
/// nanosecond after the same number of catches.
#[test]
fn baseline_and_engine_end_at_the_same_time() {
    for seed in [Seed(1), Seed(2)] {
        let engine = ping_pong(seed, 100, 20_000);
        let baseline = ping_pong_baseline(seed, 100, 20_000);
        assert_eq!(engine.deliveries, 20_000);
        assert_eq!(baseline.deliveries, 20_000);
        assert_eq!(engine.sim_time, baseline.sim_time, "seed {seed}");
        // About 20,000 catches over 100 balls of 1 ms each: roughly 200 ms.
        let millis = engine.sim_time.as_secs_f64() * 1e3;
        assert!((150.0..250.0).contains(&millis), "ran {millis} ms");
    }
}

/// Two phases end where one run of the same length does.
#[test]
fn ping_pong_runs_in_phases() {
    let mut sim = bench::ping_pong_world(Seed(3), 50);
    bench::run_deliveries(&mut sim, 1_000);
    bench::run_deliveries(&mut sim, 2_000);
    let whole = ping_pong(Seed(3), 50, 3_000);
    assert_eq!(sim.stats().messages_delivered, 3_000);
    assert_eq!(sim.now(), whole.sim_time);
    assert_eq!(Some(sim.trace_hash()), whole.trace_hash);
}

fn mixed_run(seed: Seed, millis: u64) -> (WorkloadResult, u64, Vec<FiredFault>) {
    let bytes = ByteCounter::new();
    let config = MixedConfig::standard(SimDuration::from_millis(millis));
    let mut mixed = bench::mixed(seed, &config, Box::new(JsonLinesSink::new(bytes.clone())));
    mixed.sink.finish().expect("counting never fails");
    (mixed.run, bytes.bytes(), mixed.faults)
}

#[test]
fn every_workload_is_deterministic() {
    let seed = Seed(11);
    assert_eq!(ping_pong(seed, 20, 2_000), ping_pong(seed, 20, 2_000));
    assert_eq!(ping_pong_baseline(seed, 20, 2_000), ping_pong_baseline(seed, 20, 2_000));
    assert_eq!(mm1_detailed(seed, 2_000), mm1_detailed(seed, 2_000));
    assert_eq!(mixed_run(seed, 50), mixed_run(seed, 50));
    // And the seed matters.
    assert_ne!(ping_pong(seed, 20, 2_000).trace_hash, ping_pong(Seed(12), 20, 2_000).trace_hash);
    assert_ne!(mixed_run(seed, 50).0.trace_hash, mixed_run(Seed(12), 50).0.trace_hash);
}

/// M/M/1 at 90% load: four events per customer (arrival timer, delivery to
/// the station, work done, delivery to the sink) and a mean time in the
/// system near 1 / (μ − λ) = 10 s. At 90% load a short run's mean is
/// noisy, hence the wide band.
#[test]
fn mm1_is_an_mm1_queue() {
    let customers = 20_000;
    let result = mm1_detailed(Seed(5), customers);
    assert_eq!(result.completed, customers);
    assert_eq!(result.run.deliveries, 2 * customers);
    assert_eq!(result.run.events, 4 * customers + 3);
    assert!((5.0..16.0).contains(&result.mean_time_in_system), "{}", result.mean_time_in_system);
    // Customers arrive at 0.9 per second.
    let per_second = customers as f64 / result.run.sim_time.as_secs_f64();
    assert!((0.8..1.0).contains(&per_second), "{per_second} per second");
}

/// The mixed workload does what its docs say: it traces to the sink, and
/// each of its faults fires and changes something.
#[test]
fn mixed_exercises_faults_and_tracing() {
    let (result, bytes, faults) = mixed_run(Seed(7), 200);
    assert_eq!(result.sim_time.as_nanos(), 200_000_000);
    assert!(result.events > 10_000, "{} events", result.events);
    assert!(bytes > 100 * result.trace_events, "{bytes} bytes for {} records", result.trace_events);
    assert_eq!(faults.len(), 6, "{faults:?}");
    for fired in &faults {
        assert!(fired.applied, "{fired:?}");
    }
    let [crash, restart, partition, _heal, step, step_back] = &faults[..] else { unreachable!() };
    assert_eq!(crash.touched.processes_stopped, 4, "{crash:?}");
    assert_eq!(restart.touched.processes_restarted, 4, "{restart:?}");
    assert!(partition.touched.messages_dropped > 0, "{partition:?}");
    assert!(step.touched.timers_moved > 0, "{step:?}");
    assert!(step_back.touched.timers_moved > 0, "{step_back:?}");
}

#[test]
fn bench_json_has_every_row_and_key() {
    let output = rlab(&["bench", "--scale", "0.01", "--json"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    let rows = rows.as_array().expect("a JSON array");
    let names: Vec<&str> = rows.iter().map(|row| row["name"].as_str().expect("a name")).collect();
    assert_eq!(
        names,
        [
            "ping-pong",
            "ping-pong-baseline",
            "mm1",
            "mixed-traced",
            "microsystem-16",
            "sweep-architectures"
        ]
    );
    for row in rows {
        for key in ["events", "wall_seconds", "events_per_second", "sim_to_real"] {
            assert!(row[key].is_number(), "{key} in {row}");
        }
    }
    // 1% of the standard million catches, for both ping-pong rows.
    assert_eq!(rows[0]["events"], 10_000);
    assert_eq!(rows[1]["events"], 10_000);
    assert!(rows[0]["ratio_to_baseline"].is_number());
    assert!(rows[3]["trace_bytes"].as_u64().is_some_and(|bytes| bytes > 0));
}

#[test]
fn bench_filter_selects_rows() {
    let output = rlab(&["bench", "--scale", "0.01", "--json", "--filter", "mm1"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    assert_eq!(rows[0]["name"], "mm1");
}

#[test]
fn bench_table_ends_with_the_ratio() {
    let output = rlab(&["bench", "--scale", "0.001", "--filter", "ping-pong"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    let last = stdout.lines().last().expect("some output");
    assert!(last.starts_with("ping-pong / baseline = "), "{stdout}");
    assert!(last.ends_with('x'), "{stdout}");
}

/// Bad flags exit 2 with one line naming the flag.
#[test]
fn bench_rejects_bad_flags() {
    for (args, flag) in [
        (&["bench", "--scale", "0"][..], "--scale"),
        (&["bench", "--scale", "NaN"][..], "--scale"),
        (&["bench", "--scale", "-1"][..], "--scale"),
        (&["bench", "--scale", "inf"][..], "--scale"),
        (&["bench", "--scale", "101"][..], "--scale"),
        (&["bench", "--repeat", "0"][..], "--repeat"),
        (&["bench", "--repeat", "101"][..], "--repeat"),
        (&["bench", "--filter", "nothing-matches"][..], "--filter"),
    ] {
        let output = rlab(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty(), "{args:?}");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Heap allocations of `rlab bench --filter ping-pong --scale <scale>`
/// (both ping-pong rows), counted by valgrind; `None` if valgrind is not
/// installed.
fn ping_pong_allocations(scale: &str) -> Option<u64> {
    let output = Command::new("valgrind")
        .args(["--undef-value-errors=no", "--leak-check=no", env!("CARGO_BIN_EXE_rlab")])
        .args(["bench", "--filter", "ping-pong", "--scale", scale])
        .output()
        .ok()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    let line = stderr.lines().find(|line| line.contains("total heap usage:")).expect("a summary");
    let count =
        line.split("total heap usage:").nth(1).and_then(|rest| rest.split_whitespace().next());
    Some(count.expect("a count").replace(',', "").parse().expect("a number"))
}

/// No heap allocation per event on the ping-pong path, engine or baseline:
/// ten times the catches, the same allocations (give or take a few for
/// printing). The workspace forbids `unsafe`, so a counting global
/// allocator is not an option; valgrind counts from outside instead.
#[test]
fn ping_pong_allocates_nothing_per_event() {
    let Some(short) = ping_pong_allocations("0.0005") else {
        eprintln!("skipped: valgrind is not installed");
        return;
    };
    let long = ping_pong_allocations("0.0055").expect("valgrind ran once already");
    // 10,000 more catches over the two rows.
    assert!(long.abs_diff(short) < 100, "{short} allocations for 1,000 catches, {long} for 11,000");
}
