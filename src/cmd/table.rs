//! The side-by-side table of `rlab run` and `rlab compare`: one column per
//! architecture, one row per measure, so a scenario's lesson can be read
//! from the table alone.

use scenarios::report::Outcome;
use scenarios::scenario::Scenario;
use std::fmt::Write;

pub fn render(scenario: &Scenario, outcomes: &[Outcome], file: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{} ({file})", scenario.name);
    if let Some(first) = scenario.description.split(". ").next().filter(|s| !s.is_empty()) {
        let sentence = first.trim_end_matches('.');
        let _ = writeln!(out, "{sentence}.");
    }
    let _ = writeln!(
        out,
        "seed {}, {}s of arrivals + {}s drain\n",
        outcomes.first().map_or(scenario.seed, |o| o.seed),
        scenario.duration.as_secs_f64(),
        scenario.drain.as_secs_f64()
    );
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, cell: &dyn Fn(&Outcome) -> String| {
        rows.push((name.to_string(), outcomes.iter().map(cell).collect()));
    };
    row("", &|o| o.architecture.name().to_string());
    row("throughput (orders/s)", &|o| format!("{:.1}", o.throughput));
    row("availability", &|o| format!("{:.2}%", o.availability * 100.0));
    row("latency p50 (ms)", &|o| format!("{:.1}", o.latency_ms.p50));
    row("latency p95 (ms)", &|o| format!("{:.1}", o.latency_ms.p95));
    row("latency p99 (ms)", &|o| format!("{:.1}", o.latency_ms.p99));
    row("latency max (ms)", &|o| format!("{:.1}", o.latency_ms.max));
    row("orders requested", &|o| o.orders.requested.to_string());
    row("orders accepted", &|o| o.orders.accepted.to_string());
    row("orders completed", &|o| o.orders.completed.to_string());
    row("orders cancelled", &|o| o.orders.cancelled.to_string());
    row("orders failed", &|o| o.orders.failed.to_string());
    row("orders lost", &|o| o.orders.lost.to_string());
    row("compensations", &|o| o.compensations.to_string());
    row("breaker transitions", &|o| o.breaker_transitions.to_string());
    row("restarts", &|o| o.restarts.to_string());
    row("failovers", &|o| o.failovers.to_string());
    row("read-model lag (ms)", &|o| format!("{:.0}", o.read_model_lag_ms));
    row("faults fired", &|o| {
        let touching = o.faults_fired.iter().filter(|f| f.touched != "nothing").count();
        format!("{} ({} touched something)", o.faults_fired.len(), touching)
    });
    if let Some(first) = outcomes.first() {
        for (index, verdict) in first.invariants.iter().enumerate() {
            let name = verdict.name;
            row(name, &|o| {
                let verdict = &o.invariants[index];
                let expected = o.expected_violations.iter().any(|v| v == verdict.name);
                match (verdict.held, expected) {
                    (true, false) => "held".to_string(),
                    (true, true) => "held (violation expected!)".to_string(),
                    (false, true) => "VIOLATED (expected)".to_string(),
                    (false, false) => "VIOLATED".to_string(),
                }
            });
        }
    }
    row("trace hash", &|o| o.trace_hash.clone());
    row("as expected", &|o| if o.as_expected { "yes".to_string() } else { "NO".to_string() });
    let name_width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let column_width =
        rows.iter().flat_map(|(_, cells)| cells.iter().map(String::len)).max().unwrap_or(0).max(12);
    for (name, cells) in &rows {
        let _ = write!(out, "{name:<name_width$}");
        for cell in cells {
            let _ = write!(out, "  {cell:>column_width$}");
        }
        out.push('\n');
    }
    let mut notes = Vec::new();
    for outcome in outcomes {
        for mismatch in &outcome.mismatches {
            notes.push(format!("{}: {mismatch}", outcome.architecture));
        }
        for verdict in outcome.invariants.iter().filter(|v| !v.held) {
            notes.push(format!(
                "{}: {} violated: {} (replay: rlab run {file} --arch {} --seed {})",
                outcome.architecture,
                verdict.name,
                verdict.detail,
                outcome.architecture,
                outcome.seed
            ));
        }
        for fault in &outcome.faults_not_applicable {
            notes.push(format!("{}: fault not applicable: {fault}", outcome.architecture));
        }
    }
    if !notes.is_empty() {
        out.push('\n');
        for note in notes {
            let _ = writeln!(out, "{note}");
        }
    }
    out
}
