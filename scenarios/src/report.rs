//! The outcome report of one run of one architecture: the stable JSON
//! schema of `rlab run --json` and `rlab compare --json` (documented in
//! docs/report-schema.md), and the metrics expectations refer to.

use crate::invariants::{self, Verdict};
use crate::observe::{FaultReport, Observations};
use crate::parts::{Answer, RequestOutcome};
use crate::scenario::{Architecture, Scenario};
use crate::timeline::{self, Timeline};
use serde::Serialize;

/// Latency percentiles of answered requests, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// Counts of orders by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrderCounts {
    /// Requests placed by customers.
    pub requested: u64,
    /// Orders the system of record accepted.
    pub accepted: u64,
    /// Accepted orders that completed.
    pub completed: u64,
    /// Accepted orders that were cancelled (compensated).
    pub cancelled: u64,
    /// Requests that did not get a successful answer: refused, failed, or
    /// timed out at the customer.
    pub failed: u64,
    /// Accepted orders that never ended.
    pub lost: u64,
}

/// An expectation of the scenario, judged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExpectationResult {
    /// `metric op value`, as written.
    pub expectation: String,
    /// The measured value.
    pub actual: f64,
    /// Whether it held.
    pub held: bool,
}

/// The report of one run of one architecture.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Outcome {
    /// The scenario's name.
    pub scenario: String,
    /// Which architecture.
    pub architecture: Architecture,
    /// The seed.
    pub seed: u64,
    /// The trace hash (16 hex digits).
    pub trace_hash: String,
    /// Simulated seconds the run lasted (arrivals plus drain).
    pub simulated_seconds: f64,
    /// Engine events processed.
    pub events: u64,
    /// Completed orders per simulated second of the arrival window.
    pub throughput: f64,
    /// Fraction of requests answered successfully (completed, or cancelled
    /// for a business reason) before the customer's timeout.
    pub availability: f64,
    /// Latency of answered requests.
    pub latency_ms: LatencyMs,
    /// Orders by outcome.
    pub orders: OrderCounts,
    /// Compensating actions run.
    pub compensations: u64,
    /// Circuit-breaker state changes.
    pub breaker_transitions: u64,
    /// Process and node restarts.
    pub restarts: u64,
    /// Failovers to a passive replica.
    pub failovers: u64,
    /// Largest read-model lag, in milliseconds.
    pub read_model_lag_ms: f64,
    /// Faults that fired.
    pub faults_fired: Vec<FaultReport>,
    /// Faults this architecture had no node for.
    pub faults_not_applicable: Vec<String>,
    /// Every invariant's verdict.
    pub invariants: Vec<Verdict>,
    /// Invariants the scenario expected this architecture to break.
    pub expected_violations: Vec<String>,
    /// The scenario's expectations for this architecture, judged.
    pub expectations: Vec<ExpectationResult>,
    /// Whether the outcome matches what the scenario expects: every
    /// expectation held, every unexpected invariant held, every expected
    /// violation happened.
    pub as_expected: bool,
    /// Why not, one line per reason.
    pub mismatches: Vec<String>,
    /// The run over simulated time, for charts. Not part of the JSON
    /// report (whose schema is stable); `rlab run --out` saves it beside
    /// the report.
    #[serde(skip)]
    pub timeline: Timeline,
}

/// Builds the report of a run from what its architecture observed.
pub fn outcome(scenario: &Scenario, observed: &Observations) -> Outcome {
    let mut latencies: Vec<u64> = Vec::new();
    let mut successes = 0u64;
    let mut completed_in_window = 0u64;
    for request in &observed.requests {
        if let (RequestOutcome::Answered(answer), Some(ended)) = (request.outcome, request.ended_at)
        {
            latencies.push((ended - request.placed_at).as_nanos());
            if answer.is_success() {
                successes += 1;
            }
            if answer == Answer::Completed && ended.as_nanos() <= scenario.duration.as_nanos() {
                completed_in_window += 1;
            }
        }
    }
    latencies.sort_unstable();
    let percentile = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        // Nearest rank: the smallest value with at least q of the sample
        // at or below it.
        let rank = (libm::ceil(q * latencies.len() as f64) as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1e6
    };
    let requested = observed.requests.len() as u64;
    let accepted = observed.orders.len() as u64;
    let completed = observed
        .orders
        .values()
        .filter(|status| **status == crate::domain::OrderStatus::Completed)
        .count() as u64;
    let cancelled = observed
        .orders
        .values()
        .filter(|status| matches!(status, crate::domain::OrderStatus::Cancelled(_)))
        .count() as u64;
    let lost = accepted - completed - cancelled;
    let invariants = invariants::check(observed);
    let expected_violations =
        scenario.expected_violations.get(&observed.architecture).cloned().unwrap_or_default();
    let mut report = Outcome {
        scenario: scenario.name.clone(),
        architecture: observed.architecture,
        seed: observed.seed,
        trace_hash: observed.trace_hash.to_string(),
        simulated_seconds: observed.ended_at.as_secs_f64(),
        events: observed.engine.events,
        throughput: completed_in_window as f64 / scenario.duration.as_secs_f64(),
        availability: if requested == 0 { 1.0 } else { successes as f64 / requested as f64 },
        latency_ms: LatencyMs {
            p50: percentile(0.50),
            p95: percentile(0.95),
            p99: percentile(0.99),
            max: percentile(1.0),
        },
        orders: OrderCounts {
            requested,
            accepted,
            completed,
            cancelled,
            failed: requested - successes,
            lost,
        },
        compensations: observed.compensations,
        breaker_transitions: observed.breaker_transitions,
        restarts: observed.restarts,
        failovers: observed.failovers,
        read_model_lag_ms: observed.read_model_lag_ms,
        faults_fired: observed.faults_fired.iter().map(FaultReport::from_fired).collect(),
        faults_not_applicable: observed.faults_not_applicable.clone(),
        invariants,
        expected_violations,
        expectations: Vec::new(),
        as_expected: true,
        mismatches: Vec::new(),
        timeline: timeline::build(scenario, observed),
    };
    judge(scenario, &mut report);
    report
}

/// The value of a named metric in a report (the names expectations use).
pub fn metric(report: &Outcome, name: &str) -> Option<f64> {
    Some(match name {
        "throughput" => report.throughput,
        "availability" => report.availability,
        "latency_p50_ms" => report.latency_ms.p50,
        "latency_p95_ms" => report.latency_ms.p95,
        "latency_p99_ms" => report.latency_ms.p99,
        "latency_max_ms" => report.latency_ms.max,
        "orders_requested" => report.orders.requested as f64,
        "orders_accepted" => report.orders.accepted as f64,
        "orders_completed" => report.orders.completed as f64,
        "orders_cancelled" => report.orders.cancelled as f64,
        "orders_failed" => report.orders.failed as f64,
        "orders_lost" => report.orders.lost as f64,
        "lost_orders" => report.orders.lost as f64,
        "compensations" => report.compensations as f64,
        "breaker_transitions" => report.breaker_transitions as f64,
        "restarts" => report.restarts as f64,
        "failovers" => report.failovers as f64,
        "read_model_lag_ms" => report.read_model_lag_ms,
        "faults_fired" => report.faults_fired.len() as f64,
        _ => return None,
    })
}

/// The metric names [`metric`] knows.
pub const METRICS: [&str; 19] = [
    "throughput",
    "availability",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_max_ms",
    "orders_requested",
    "orders_accepted",
    "orders_completed",
    "orders_cancelled",
    "orders_failed",
    "orders_lost",
    "lost_orders",
    "compensations",
    "breaker_transitions",
    "restarts",
    "failovers",
    "read_model_lag_ms",
    "faults_fired",
];

/// Judges expectations and expected violations, filling `expectations`,
/// `as_expected` and `mismatches`.
fn judge(scenario: &Scenario, report: &mut Outcome) {
    for expectation in &scenario.expectations {
        if expectation.architecture.is_some_and(|arch| arch != report.architecture) {
            continue;
        }
        let written =
            format!("{} {} {}", expectation.metric, expectation.op.symbol(), expectation.value);
        let actual = metric(report, &expectation.metric).unwrap_or(f64::NAN);
        let held = expectation.op.holds(actual, expectation.value);
        if !held {
            report.mismatches.push(format!("expected {written}, measured {actual}"));
        }
        report.expectations.push(ExpectationResult { expectation: written, actual, held });
    }
    for verdict in &report.invariants {
        let expected = report.expected_violations.iter().any(|name| name == verdict.name);
        match (verdict.held, expected) {
            (false, false) => report
                .mismatches
                .push(format!("invariant {} was violated: {}", verdict.name, verdict.detail)),
            (true, true) => report.mismatches.push(format!(
                "invariant {} was expected to be violated but held: {}",
                verdict.name, verdict.detail
            )),
            _ => {}
        }
    }
    report.as_expected = report.mismatches.is_empty();
}
