//! The scenario library as a regression suite: every scenario's compare
//! report is pinned (insta), so CI notices when any outcome drifts, and
//! each scenario's outcome must be what the file expects. A few tests also
//! state each scenario's lesson as a direction between architectures, so
//! a snapshot update cannot quietly turn a lesson upside down.

use scenarios::report::Outcome;
use scenarios::scenario::{Architecture, Scenario};
use serde::Serialize;
use std::path::{Path, PathBuf};

fn library() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .filter(|path| path.file_name().is_some_and(|name| name != "Cargo.toml"))
        // Sweep scenarios are meant to be swept (minutes of runs), not
        // compared once; `scaling_models` tests them on short sweeps.
        .filter(|path| {
            !path.file_name().is_some_and(|name| name.to_string_lossy().starts_with("sweep-"))
        })
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"));
    scenarios::file::load(&path, &[]).unwrap_or_else(|errors| panic!("{name}: {errors:?}"))
}

fn compare(name: &str) -> Vec<Outcome> {
    let scenario = load(name);
    scenarios::run::compare(&scenario, scenario.seed)
}

fn of(outcomes: &[Outcome], architecture: Architecture) -> &Outcome {
    outcomes.iter().find(|outcome| outcome.architecture == architecture).unwrap()
}

/// What the snapshot keeps of a report: everything a reader of the compare
/// table sees, with floats rounded so the file reads well.
#[derive(Serialize)]
struct Pinned {
    architecture: Architecture,
    trace_hash: String,
    events: u64,
    throughput: String,
    availability: String,
    latency_ms: String,
    orders: scenarios::report::OrderCounts,
    compensations: u64,
    breaker_transitions: u64,
    restarts: u64,
    failovers: u64,
    read_model_lag_ms: String,
    faults_fired: Vec<String>,
    faults_not_applicable: Vec<String>,
    invariants: Vec<String>,
    as_expected: bool,
    mismatches: Vec<String>,
}

fn pinned(outcome: &Outcome) -> Pinned {
    Pinned {
        architecture: outcome.architecture,
        trace_hash: outcome.trace_hash.clone(),
        events: outcome.events,
        throughput: format!("{:.2}", outcome.throughput),
        availability: format!("{:.4}", outcome.availability),
        latency_ms: format!(
            "p50 {:.1}, p95 {:.1}, p99 {:.1}, max {:.1}",
            outcome.latency_ms.p50,
            outcome.latency_ms.p95,
            outcome.latency_ms.p99,
            outcome.latency_ms.max
        ),
        orders: outcome.orders,
        compensations: outcome.compensations,
        breaker_transitions: outcome.breaker_transitions,
        restarts: outcome.restarts,
        failovers: outcome.failovers,
        read_model_lag_ms: format!("{:.0}", outcome.read_model_lag_ms),
        faults_fired: outcome
            .faults_fired
            .iter()
            .map(|fault| format!("{:.3}s {}: {}", fault.at_s, fault.fault, fault.touched))
            .collect(),
        faults_not_applicable: outcome.faults_not_applicable.clone(),
        invariants: outcome
            .invariants
            .iter()
            .map(|verdict| {
                format!("{}: {}", verdict.name, if verdict.held { "held" } else { "VIOLATED" })
            })
            .collect(),
        as_expected: outcome.as_expected,
        mismatches: outcome.mismatches.clone(),
    }
}

/// Every library scenario's compare report is pinned, and matches what
/// the scenario itself expects (its exit status would be 0).
#[test]
fn every_scenario_matches_its_snapshot_and_its_expectations() {
    let files = library();
    assert!(files.len() >= 10, "the library has {} scenarios", files.len());
    for file in files {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let outcomes = compare(&name);
        let pins: Vec<Pinned> = outcomes.iter().map(pinned).collect();
        insta::assert_yaml_snapshot!(format!("compare-{name}"), pins);
        for outcome in &outcomes {
            assert!(
                outcome.as_expected,
                "{name} on {}: {}",
                outcome.architecture,
                outcome.mismatches.join("; ")
            );
        }
        // A fault that cannot touch anything proves nothing: in every fault
        // scenario some fault must have changed something. (Per
        // architecture it may not: a clock step on a node that sets no
        // timers touches nothing, and the report says so.)
        let touched = outcomes
            .iter()
            .flat_map(|outcome| &outcome.faults_fired)
            .any(|fault| fault.touched != "nothing");
        assert!(load(&name).faults.is_empty() || touched, "{name}: no fault touched anything");
        lesson(&name, &outcomes);
    }
}

fn held(outcome: &Outcome, invariant: &str) -> bool {
    outcome.invariants.iter().find(|verdict| verdict.name == invariant).unwrap().held
}

/// The direction of each scenario's lesson, stated so that a snapshot
/// update cannot turn it upside down unnoticed.
fn lesson(name: &str, outcomes: &[Outcome]) {
    use Architecture::{Microlith, Microsystem, Reactive};
    match name {
        "baseline" => {
            for outcome in outcomes {
                assert!(outcome.availability >= 0.99, "{name}: {:?}", outcome.architecture);
                assert!(outcome.invariants.iter().all(|verdict| verdict.held));
            }
        }
        "slow-gateway" => {
            // Blocking calls hold the microlith's threads hostage; waiting
            // costs the other two nothing.
            let microlith = of(outcomes, Microlith).availability;
            assert!(microlith < of(outcomes, Reactive).availability - 0.2, "{microlith}");
            assert!(microlith < of(outcomes, Microsystem).availability - 0.2, "{microlith}");
        }
        "gateway-outage" => {
            // The breaker opens and closes again.
            assert!(of(outcomes, Reactive).breaker_transitions >= 2);
        }
        "node-crash" => {
            // Accepted orders die with the microlith's Orders process; the
            // others keep every accepted order.
            assert!(!held(of(outcomes, Microlith), "no_lost_orders"));
            assert!(held(of(outcomes, Reactive), "no_lost_orders"));
            assert!(held(of(outcomes, Microsystem), "no_lost_orders"));
        }
        "partition" => {
            assert!(!held(of(outcomes, Microlith), "money_conserved"));
            assert!(held(of(outcomes, Reactive), "money_conserved"));
            assert!(held(of(outcomes, Microsystem), "money_conserved"));
        }
        "failover" => {
            let microsystem = of(outcomes, Microsystem);
            assert!(microsystem.failovers >= 1 && held(microsystem, "single_writer_per_epoch"));
        }
        "failover-no-fencing" => {
            // The protection switched off: the invariant it guards breaks.
            assert!(!held(of(outcomes, Microsystem), "single_writer_per_epoch"));
        }
        "compensation-storm" => {
            for outcome in outcomes {
                assert!(outcome.compensations > 0, "{:?}", outcome.architecture);
                assert!(held(outcome, "money_conserved") && held(outcome, "stock_conserved"));
            }
        }
        _ => {}
    }
}
