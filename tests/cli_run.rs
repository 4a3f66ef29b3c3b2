//! The scenario commands from the outside: exit statuses (0 as expected,
//! 1 not as expected, 2 bad input), the JSON report's documented keys, and
//! a saved run replayed.

use std::path::PathBuf;

use crate::support::rlab;

fn scratch(name: &str) -> PathBuf {
    crate::support::scratch("cli_run", name)
}

/// `compare --json` prints one object per architecture with every key the
/// schema documents, and exits 0 when the outcome is as expected.
#[test]
fn compare_json_has_the_documented_keys() {
    let output = rlab(&["compare", "scenarios/baseline.toml", "--json", "--set", "duration_s=5"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let reports = reports.as_array().unwrap();
    assert_eq!(reports.len(), 3);
    for report in reports {
        for key in [
            "architecture",
            "seed",
            "trace_hash",
            "throughput",
            "availability",
            "latency_ms",
            "orders",
            "compensations",
            "faults_fired",
            "invariants",
        ] {
            assert!(report.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p95", "p99", "max"] {
            assert!(report["latency_ms"][key].is_number());
        }
        for key in ["accepted", "completed", "cancelled", "failed", "lost"] {
            assert!(report["orders"][key].is_u64());
        }
        for verdict in report["invariants"].as_array().unwrap() {
            assert!(verdict["name"].is_string() && verdict["held"].is_boolean());
            assert!(verdict["detail"].is_string());
        }
    }
}

/// An invariant violation the scenario does not expect makes the exit
/// status 1, and the table says which invariant and how to replay it.
#[test]
fn an_unexpected_violation_exits_1() {
    let output = rlab(&[
        "run",
        "scenarios/node-crash.toml",
        "--arch",
        "microlith",
        "--set",
        "expect_violations.microlith=[]",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("no_lost_orders violated"), "{stdout}");
    assert!(stdout.contains("replay: rlab run"), "{stdout}");
}

/// A saved run replays to the same hash; a tampered one is reported as
/// diverged with exit status 1.
#[test]
fn a_saved_run_replays_and_a_tampered_one_diverges() {
    let saved = scratch("saved.json");
    let trace = scratch("trace.jsonl");
    let saved_text = saved.to_str().unwrap();
    let output = rlab(&[
        "run",
        "scenarios/baseline.toml",
        "--arch",
        "reactive",
        "--set",
        "duration_s=3",
        "--out",
        saved_text,
        "--trace",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let first_line = std::fs::read_to_string(&trace).unwrap().lines().next().unwrap().to_string();
    assert!(first_line.contains("\"event\":\"NodeAdded\""), "{first_line}");
    let replay = rlab(&["replay", saved_text]);
    assert_eq!(replay.status.code(), Some(0), "{}", String::from_utf8_lossy(&replay.stdout));
    let mut value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    value["trace_hash"] = "0000000000000000".into();
    value["checkpoints"][10]["trace_hash"] = "0000000000000000".into();
    let tampered = scratch("tampered.json");
    std::fs::write(&tampered, value.to_string()).unwrap();
    let replay = rlab(&["replay", tampered.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert_eq!(replay.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("DIVERGED") && stdout.contains("agree up to"), "{stdout}");
}

/// Bad input gets one line on stderr and exit status 2, and no output file.
#[test]
fn bad_input_exits_2_with_one_line() {
    let out = scratch("never.json");
    let _ = std::fs::remove_file(&out);
    for args in [
        vec!["run", "scenarios/absent.toml"],
        vec!["run", "scenarios/baseline.toml", "--arch", "monolith"],
        vec!["compare", "scenarios/baseline.toml", "--set", "workload.rate_per_s=-1"],
        vec!["run", "scenarios/baseline.toml", "--out", "/no/such/dir/x.json"],
        vec!["replay", "README.md"],
    ] {
        let output = rlab(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|line| line.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
    }
    assert!(!out.exists());
}
