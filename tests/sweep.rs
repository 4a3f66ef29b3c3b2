//! `rlab sweep` from the outside: output independent of `--jobs`, the JSON
//! keys docs/report-schema.md documents, a file's own `[sweep]`, the chart,
//! and bad input (one line, exit status 2).

use std::path::PathBuf;
use std::process::Output;

use crate::support::rlab;

fn scratch(name: &str) -> PathBuf {
    crate::support::scratch("sweep", name)
}

/// A small sweep of every architecture: 3 points × 2 seeds, one simulated
/// second of arrivals each.
const SMALL: &[&str] = &[
    "sweep",
    "scenarios/baseline.toml",
    "--vary",
    "microlith.threads=1,2,4",
    "--vary",
    "workload.rate_per_s=40,80,160",
    "--seeds",
    "2",
    "--set",
    "duration_s=1",
    "--set",
    "drain_s=1",
    "--json",
];

fn small(jobs: &str) -> Output {
    let mut args = SMALL.to_vec();
    args.extend(["--jobs", jobs]);
    rlab(&args)
}

#[test]
fn output_is_identical_for_any_jobs_and_has_the_documented_keys() {
    let one = small("1");
    let two = small("2");
    assert_eq!(one.status.code(), Some(0), "{}", String::from_utf8_lossy(&one.stderr));
    assert_eq!(two.status.code(), Some(0), "{}", String::from_utf8_lossy(&two.stderr));
    assert_eq!(one.stdout, two.stdout, "--jobs 1 and --jobs 2 differ");

    let report: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    for key in ["scenario", "vary", "seeds", "seed_base", "architectures", "points", "fit"] {
        assert!(report.get(key).is_some(), "missing {key}");
    }
    let points = report["points"].as_array().unwrap();
    let ns: Vec<f64> = points.iter().map(|point| point["n"].as_f64().unwrap()).collect();
    assert_eq!(ns, [1.0, 2.0, 4.0]);
    assert_eq!(points[2]["set"]["workload.rate_per_s"], 160.0);
    for point in points {
        let rows = point["architectures"].as_array().unwrap();
        assert_eq!(rows.len(), 3);
        // The top-level figures are the first architecture's.
        assert_eq!(point["throughput_mean"], rows[0]["throughput_mean"]);
        assert_eq!(point["throughput_stddev"], rows[0]["throughput_stddev"]);
        for row in rows {
            for key in [
                "architecture",
                "throughput_mean",
                "throughput_stddev",
                "latency_p99_ms_mean",
                "usl_prediction",
                "samples",
            ] {
                assert!(row.get(key).is_some(), "missing {key} in {row}");
            }
            let seeds: Vec<u64> = row["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["seed"].as_u64().unwrap())
                .collect();
            assert_eq!(seeds, [1, 2], "seed index k runs on the scenario's seed + k");
        }
    }
    for architecture in ["microlith", "reactive", "microsystem"] {
        let fit = &report["fit"][architecture];
        for key in ["p", "r2", "lambda", "ceiling"] {
            assert!(fit["amdahl"].get(key).is_some(), "{architecture}: amdahl.{key}");
        }
        for key in ["sigma", "kappa", "lambda", "r2", "n_star", "peak_throughput"] {
            assert!(fit["usl"].get(key).is_some(), "{architecture}: usl.{key}");
        }
    }
    // The microlith's throughput grows with its threads here (one thread
    // at a time through a 50 ms gateway call caps it near 20 orders/s).
    let microlith: Vec<f64> =
        points.iter().map(|p| p["architectures"][0]["throughput_mean"].as_f64().unwrap()).collect();
    assert!(microlith[0] < microlith[1] && microlith[1] < microlith[2], "{microlith:?}");
}

#[test]
fn a_files_own_sweep_runs_without_arguments_and_draws_its_chart() {
    let file = scratch("declared.toml");
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/baseline.toml"),
    )
    .unwrap()
    .replace("name = \"baseline\"", "name = \"declared\"")
    .replace("duration_s = 30", "duration_s = 1")
    .replace("drain_s = 10", "drain_s = 1")
    .replace(
        "architectures = [\"microlith\", \"reactive\", \"microsystem\"]",
        "architectures = [\"microlith\"]",
    ) + "\n[sweep]\nvary = [\"microlith.threads=1,2,3,4\"]\nseeds = 1\n";
    std::fs::write(&file, text).unwrap();
    // A directory that does not exist yet is made.
    let plots = scratch("plots");
    let _ = std::fs::remove_dir_all(&plots);
    let chart = plots.join("declared-scaling.svg");
    let output = rlab(&["sweep", file.to_str().unwrap(), "--plots", plots.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("N = microlith.threads=1,2,3,4"), "{stdout}");
    for text in ["Amdahl  p = ", "USL     σ = ", "R² = "] {
        assert!(stdout.contains(text), "missing {text:?} in {stdout}");
    }
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("declared: throughput vs N (seed 1)"));
    assert!(svg.contains("throughput (orders/s)"));
}

#[test]
fn strict_turns_runs_not_as_expected_into_exit_1() {
    // 2000 orders/s overwhelm one microlith thread: baseline expects 99%
    // availability, so every run misses it.
    let args = [
        "sweep",
        "scenarios/baseline.toml",
        "--arch",
        "microlith",
        "--vary",
        "microlith.threads=1,2",
        "--set",
        "duration_s=1",
        "--set",
        "drain_s=1",
        "--set",
        "workload.rate_per_s=2000",
    ];
    let plain = rlab(&args);
    assert_eq!(plain.status.code(), Some(0), "{}", String::from_utf8_lossy(&plain.stderr));
    assert!(String::from_utf8_lossy(&plain.stdout).contains("2 of 2 runs did not match"));
    let mut strict = args.to_vec();
    strict.push("--strict");
    assert_eq!(rlab(&strict).status.code(), Some(1));
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let base = ["sweep", "scenarios/baseline.toml", "--set", "duration_s=1"];
    for (extra, part) in [
        (
            &["--vary", "microlith.threadz=1,2"][..],
            "--vary microlith.threadz=1,2: microlith.threadz: unknown field; did you mean `threads`?",
        ),
        (
            &["--vary", "microlith.threads=1,two"][..],
            "--vary microlith.threads=1,two: value `two` is not a finite number",
        ),
        (
            &["--vary", "microlith.threads=1,2", "--vary", "workload.rate_per_s=10"][..],
            "--vary: workload.rate_per_s has 1 values but microlith.threads has 2",
        ),
        (
            &["--vary", "microlith.threads="][..],
            "--vary microlith.threads=: expected at least one value after `=`",
        ),
        (
            &["--vary", "microlith.threads=1,0"][..],
            "--vary microlith.threads=1,0: microlith.threads = 0: expected a whole number from 1 to 100000",
        ),
        (&[][..], "no sweep to run: give --vary PATH=V1,V2,..."),
        (&["--vary", "microlith.threads=1", "--seeds", "0"][..], "--seeds 0: expected 1 to 1000"),
        (&["--vary", "microlith.threads=1", "--jobs", "0"][..], "--jobs 0: expected at least 1"),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let output = rlab(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(part), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
}
