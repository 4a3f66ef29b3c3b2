//! Scenario files (`scenarios::file`), `rlab validate` and `rlab scenarios`:
//! the library validates, mistakes are all reported with their lines, and
//! `--set` overrides are checked like the file's own values.
//!
//! Files with mistakes are written inline; the only files read are the
//! library's own, and the CLI runs from the repository root.

use scenarios::file::{self, FileError};
use scenarios::scenario::{Arrivals, FaultAction, Scenario};
use serde_json::Value;
use sim::{Dist, SimDuration};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The library, as `rlab scenarios` finds it: `scenarios/*.toml` but the
/// crate's own `Cargo.toml`, sorted, relative to the repository root.
fn library_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("scenarios"))
        .expect("scenarios/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter(|path| path.file_name().is_some_and(|name| name != "Cargo.toml"))
        .map(|path| path.strip_prefix(repo_root()).unwrap().to_path_buf())
        .collect();
    files.sort();
    files
}

fn rlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlab"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("rlab runs")
}

const HEADER: &str = "name = \"t\"\ndescription = \"A test.\"\n";

fn parse(text: &str, overrides: &[&str]) -> Result<Scenario, Vec<FileError>> {
    let overrides: Vec<String> = overrides.iter().map(ToString::to_string).collect();
    file::parse("t.toml", text, &overrides)
}

/// Parses `text` with `overrides` and checks that it fails with exactly
/// the `expected` error lines, in order.
fn check_errors(text: &str, overrides: &[&str], expected: &[&str]) {
    let errors = match parse(text, overrides) {
        Ok(_) => panic!("expected errors, the file validated:\n{text}"),
        Err(errors) => errors,
    };
    let actual: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(actual, expected, "\n{}", actual.join("\n"));
}

#[test]
fn every_library_file_validates() {
    // Goal: each scenario in the library parses and validates, is named
    // after its file, and the scenarios the issue names exist.
    let files = library_files();
    assert!(files.len() >= 10, "the library has {} files", files.len());
    for path in &files {
        let scenario = file::load(&repo_root().join(path), &[]).unwrap_or_else(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{} does not validate:\n{}", path.display(), lines.join("\n"))
        });
        let stem = path.file_stem().unwrap().to_str().unwrap();
        assert_eq!(scenario.name, stem, "{}: name and file differ", path.display());
        assert!(scenario.description.contains("ch. "), "{}: cite the book", path.display());
        // Modest durations so CI can run every scenario for every architecture.
        assert!(scenario.duration <= SimDuration::from_secs(60), "{}", path.display());
    }
    for name in ["baseline", "slow-gateway", "failover", "failover-no-fencing"] {
        assert!(files.contains(&PathBuf::from(format!("scenarios/{name}.toml"))), "{name}");
    }
}

#[test]
fn library_files_say_what_they_claim() {
    // Goal: the few facts other code and lessons rely on are in the files:
    // slow-gateway slows the gateway at 30 s to about 500 ms, and
    // failover-no-fencing switches fencing off and expects the writer
    // violation.
    let load = |name: &str| file::load(&repo_root().join(name), &[]).unwrap();
    let slow = load("scenarios/slow-gateway.toml");
    assert!(matches!(slow.workload.arrivals, Arrivals::Open { rate_per_s: 100.0, .. }));
    assert_eq!(slow.microlith.threads, 20);
    assert_eq!(slow.faults.len(), 1);
    assert_eq!(slow.faults[0].at, SimDuration::from_secs(30));
    assert_eq!(
        slow.faults[0].action,
        FaultAction::SlowLinks {
            role: "gateway".into(),
            latency: Dist::constant(SimDuration::from_millis(450))
        }
    );
    let broken = load("scenarios/failover-no-fencing.toml");
    assert!(!broken.microsystem.fencing);
    let expected: Vec<(String, Vec<String>)> = broken
        .expected_violations
        .iter()
        .map(|(arch, names)| (arch.name().to_string(), names.clone()))
        .collect();
    assert_eq!(expected, [("microsystem".into(), vec!["single_writer_per_epoch".into()])]);
    assert!(load("scenarios/failover.toml").microsystem.fencing);

    // baseline.toml spells out every setting with its default value, so it
    // doubles as the format's reference.
    let baseline = load("scenarios/baseline.toml");
    let defaults = Scenario::default_named("baseline");
    assert_eq!(baseline.workload, defaults.workload);
    assert_eq!(baseline.network, defaults.network);
    assert_eq!(baseline.gateway, defaults.gateway);
    assert_eq!(baseline.microlith, defaults.microlith);
    assert_eq!(baseline.reactive, defaults.reactive);
    assert_eq!(baseline.microsystem, defaults.microsystem);
}

#[test]
fn rate_profiles_and_closed_arrivals_parse_to_the_model() {
    // Goal: both spellings of a profile (inline array, [[workload.profile]])
    // give steps, ramps and bursts in the model's units, and closed arrivals
    // take users and think time.
    let text = format!(
        "{HEADER}duration_s = 60\n[workload]\nrate_per_s = 100.5\n\
         [[workload.profile]]\nat_s = 30\nrate_per_s = 200\n\
         [[workload.profile]]\nat_s = 40.5\nrate_per_s = 50\nramp_s = 5\n\
         [[workload.profile]]\nat_s = 50\nrate_per_s = 400\nlasting_s = 2\n"
    );
    let scenario = parse(&text, &[]).unwrap();
    let Arrivals::Open { rate_per_s, profile } = &scenario.workload.arrivals else {
        panic!("open arrivals")
    };
    assert_eq!(*rate_per_s, 100.5);
    let ms = SimDuration::from_millis;
    let summary: Vec<(SimDuration, f64, SimDuration, Option<SimDuration>)> = profile
        .iter()
        .map(|change| (change.at, change.rate_per_s, change.ramp, change.lasting))
        .collect();
    assert_eq!(
        summary,
        [
            (ms(30_000), 200.0, SimDuration::ZERO, None),
            (ms(40_500), 50.0, ms(5_000), None),
            (ms(50_000), 400.0, SimDuration::ZERO, Some(ms(2_000))),
        ]
    );
    let closed =
        format!("{HEADER}[workload]\narrivals = \"closed\"\nusers = 50\nthink_time_ms = 250\n");
    let scenario = parse(&closed, &[]).unwrap();
    assert_eq!(scenario.workload.arrivals, Arrivals::Closed { users: 50, think_time: ms(250) });
}

#[test]
fn several_mistakes_are_all_reported_with_their_lines() {
    // Goal: one pass reports every mistake, in file order, each naming its
    // line, field, value and what was expected (rust-analyzer style).
    let text = r#"name = "broken"
description = "Several mistakes at once."
architectures = ["microlith", "reactiv"]
duration_s = 20

[workload]
rate_per_s = -5
lines_min = 4
lines_max = 2
profile = [ { at_s = 10, rate_per_s = 200 }, { at_s = 5, rate_per_s = 100 }, { at_s = 30, rate_per_s = 50 } ]

[network]
loss = 1.5
latency = { kind = "uniform", min_ms = 5, max_ms = 2 }

[microsystem]
balancer = "p2"
threads = 4

[[faults]]
at_s = 10
until_s = 5
action = "crash"
role = "payment"

[[expect]]
metric = "availabilty"
op = "=>"
value = 0.99

[expect_violations]
microsystem = ["single_writer"]
"#;
    check_errors(
        text,
        &[],
        &[
            "t.toml:3: architectures.1 = \"reactiv\": expected one of \"microlith\", \"reactive\", \"microsystem\" (did you mean `reactive`?)",
            "t.toml:7: workload.rate_per_s = -5: expected a rate per second, > 0 and at most 1000000",
            "t.toml:9: workload.lines_max: expected lines_min (4) <= lines_max (2)",
            "t.toml:10: workload.profile.1.at_s = 5: expected a time after the previous change's (10): changes are listed in time order",
            "t.toml:10: workload.profile.2.at_s = 30: expected a time inside the arrival window, < duration_s (20)",
            "t.toml:13: network.loss = 1.5: expected a probability from 0 to 1",
            "t.toml:14: network.latency.min_ms = 5: expected a duration <= max (2ms)",
            "t.toml:17: microsystem.balancer = \"p2\": expected one of \"round-robin\", \"random\", \"least-outstanding\", \"p2c\"",
            "t.toml:18: microsystem.threads: unknown field; expected one of: instances, balancer, shards, nodes, fencing, heartbeat_ms, detection_timeout_ms, step_timeout_ms, cpu, cores",
            "t.toml:22: faults.0.until_s = 5: expected a time after at_s (10)",
            "t.toml:24: faults.0.role = \"payment\": expected one of \"edge\", \"saga\", \"gateway\", \"orders\", \"inventory\", \"payments\", \"shipping\", \"database\", \"broker\", \"orders-active\", \"orders-passive\", \"processing\" (did you mean `payments`?)",
            "t.toml:27: expect.0.metric = \"availabilty\": expected one of \"throughput\", \"availability\", \"latency_p50_ms\", \"latency_p95_ms\", \"latency_p99_ms\", \"latency_max_ms\", \"orders_requested\", \"orders_accepted\", \"orders_completed\", \"orders_cancelled\", \"orders_failed\", \"orders_lost\", \"lost_orders\", \"compensations\", \"breaker_transitions\", \"restarts\", \"failovers\", \"read_model_lag_ms\", \"faults_fired\" (did you mean `availability`?)",
            "t.toml:28: expect.0.op = \"=>\": expected one of \"<\", \"<=\", \">\", \">=\", \"==\"",
            "t.toml:32: expect_violations.microsystem.0 = \"single_writer\": expected one of \"no_lost_orders\", \"stock_conserved\", \"money_conserved\", \"no_shipped_and_refunded\", \"single_writer_per_epoch\", \"read_models_converge\", \"no_double_charge_or_ship\"",
        ],
    );
}

#[test]
fn unknown_fields_are_errors_naming_them() {
    // Goal: a misspelt key is never ignored: it is an error naming the key,
    // with the nearest valid name when one is close.
    check_errors(
        &format!(
            "{HEADER}sed = 4\n[workload]\nrate_pr_s = 10\n[gateway]\nlatency = {{ kind = \"constant\", mss = 5 }}\n"
        ),
        &[],
        &[
            "t.toml:3: sed: unknown field; did you mean `seed`?",
            "t.toml:5: workload.rate_pr_s: unknown field; did you mean `rate_per_s`?",
            "t.toml:7: gateway.latency.ms: missing; a constant distribution needs ms",
            "t.toml:7: gateway.latency.mss: unknown field; did you mean `ms`?",
        ],
    );
    // A whole unknown section, and fields that exist but do not apply.
    check_errors(
        &format!(
            "{HEADER}[workloads]\nusers = 5\n[workload]\narrivals = \"closed\"\nrate_per_s = 5\n\
             [[faults]]\nat_s = 1\naction = \"crash\"\nrole = \"orders\"\ndelta_ms = 5\n"
        ),
        &[],
        &[
            "t.toml:3: workloads: unknown field; did you mean `workload`?",
            "t.toml:7: workload.rate_per_s: not used: only open arrivals have a rate (workload.arrivals = \"closed\")",
            "t.toml:12: faults.0.delta_ms: not used: action = \"crash\" takes only role",
        ],
    );
}

#[test]
fn set_overrides_change_values_and_are_checked() {
    // Goal: `--set PATH=VALUE` changes any field, including items of
    // arrays and whole tables, creates missing sections, takes bare words
    // as strings, and is validated like the file (errors say `from --set`).
    let slow = std::fs::read_to_string(repo_root().join("scenarios/slow-gateway.toml")).unwrap();
    let scenario = parse(
        &slow,
        &[
            "workload.rate_per_s=500",
            "faults.0.at_s=5",
            "faults.1={ at_s = 7, action = \"crash\", role = \"orders\" }",
            "microsystem.balancer=p2c",
            "network.latency={ kind = \"constant\", ms = 5 }",
            "reactive.breaker.window=40",
            "description=Shorter, and not quoted.",
        ],
    )
    .unwrap();
    assert!(matches!(scenario.workload.arrivals, Arrivals::Open { rate_per_s: 500.0, .. }));
    assert_eq!(scenario.faults[0].at, SimDuration::from_secs(5));
    assert_eq!(scenario.faults[1].action, FaultAction::Crash { role: "orders".into() });
    assert_eq!(scenario.microsystem.balancer, "p2c");
    assert_eq!(scenario.network.latency, Dist::constant(SimDuration::from_millis(5)));
    assert_eq!(scenario.reactive.breaker.window, 40);
    assert_eq!(scenario.reactive.breaker.minimum_calls, 10, "the rest of the table stays");
    assert_eq!(scenario.description, "Shorter, and not quoted.");

    // Closed arrivals from the command line alone.
    let closed = parse(HEADER, &["workload.arrivals=closed", "workload.users=7"]).unwrap();
    assert!(matches!(closed.workload.arrivals, Arrivals::Closed { users: 7, .. }));

    check_errors(
        &slow,
        &[
            "workload.rate_per_sec=5",
            "faults.3.at_s=1",
            "workload.rate_per_s.x=1",
            "seed",
            "workload.rate_per_s=-1",
        ],
        &[
            "t.toml (from --set): faults.3.at_s: index out of range: the array has 1 item, 0; 1 appends one",
            "t.toml (from --set): workload.rate_per_s.x: workload.rate_per_s is an integer, which has no fields",
            "t.toml (from --set): seed: expected PATH=VALUE, e.g. workload.rate_per_s=500",
            "t.toml (from --set): workload.rate_per_s = -1: expected a rate per second, > 0 and at most 1000000",
            "t.toml (from --set): workload.rate_per_sec: unknown field; did you mean `rate_per_s`?",
        ],
    );
}

#[test]
fn validate_command_exits_0_or_2_with_one_line_per_error() {
    // Goal: `rlab validate` prints one ok line and exits 0 for a good file;
    // for a bad one it prints each error on its own stderr line and exits 2.
    let ok = rlab(&["validate", "scenarios/baseline.toml"]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "scenarios/baseline.toml: ok (name: baseline, architectures: microlith, reactive, microsystem)\n"
    );

    let bad = rlab(&[
        "validate",
        "scenarios/baseline.toml",
        "--set",
        "workload.rate_per_s=-5",
        "--set",
        "seed=x",
        "--set",
        "microlith.thread=3",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(bad.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "scenarios/baseline.toml (from --set): seed = \"x\": expected a whole number from 0 to 9223372036854775807, found a string",
            "scenarios/baseline.toml (from --set): workload.rate_per_s = -5: expected a rate per second, > 0 and at most 1000000",
            "scenarios/baseline.toml (from --set): microlith.thread: unknown field; did you mean `threads`?",
        ]
    );

    let missing = rlab(&["validate", "scenarios/no-such-file.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("scenarios/no-such-file.toml: cannot read the file: "), "{stderr}");
}

#[test]
fn scenarios_command_lists_the_library() {
    // Goal: `rlab scenarios --json` lists every library file, sorted, all
    // valid, with a one-sentence summary; the table has one line per file.
    let output = rlab(&["scenarios", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = listed.as_array().unwrap();
    let files: Vec<String> =
        library_files().iter().map(|path| path.display().to_string()).collect();
    let listed_files: Vec<&str> =
        listed.iter().map(|entry| entry["file"].as_str().unwrap()).collect();
    assert_eq!(listed_files, files);
    for entry in listed {
        assert_eq!(entry["valid"], true, "{entry}");
        let summary = entry["summary"].as_str().unwrap();
        assert!(summary.ends_with('.') && !summary.contains(". "), "one sentence: {summary}");
        assert!(entry["errors"].as_array().unwrap().is_empty());
    }

    let table = rlab(&["scenarios"]);
    assert_eq!(table.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&table.stdout);
    assert_eq!(stdout.lines().count(), files.len());
    assert!(stdout.lines().any(|line| line.starts_with("scenarios/baseline.toml ")));
}
