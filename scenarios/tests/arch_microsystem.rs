//! The microsystem (Reactive Microsystems, ch. 5–6) on the order world.

use scenarios::harness::Hooks;
use scenarios::report::Outcome;
use scenarios::run::run;
use scenarios::scenario::{Architecture, Scenario};

fn outcome(scenario: &Scenario, seed: u64) -> Outcome {
    run(scenario, Architecture::Microsystem, seed, &mut Hooks::default())
}

#[test]
fn baseline() {
    // Goal: explore.
    let scenario = Scenario::default_named("baseline");
    let report = outcome(&scenario, 1);
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
}

#[test]
fn perf() {
    // Goal: explore.
    #[allow(clippy::disallowed_types)]
    let started = std::time::Instant::now();
    let mut scenario = Scenario::default_named("perf");
    scenario.duration = sim::SimDuration::from_secs(
        std::env::var("PERF_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60),
    );
    scenario.drain = sim::SimDuration::from_secs(5);
    scenario.workload.arrivals =
        scenarios::scenario::Arrivals::Open { rate_per_s: 1000.0, profile: Vec::new() };
    scenario.microsystem.instances = 5;
    let observed =
        scenarios::arch::microsystem::run(&scenario, sim::Seed(1), &mut Hooks::default());
    let wall = started.elapsed().as_secs_f64();
    println!("{:?}", observed.engine);
    let report = scenarios::report::outcome(&scenario, &observed);
    println!(
        "wall {wall:.3}s ratio {:.1} events {} avail {} p50 {} p99 {}",
        65.0 / wall,
        report.events,
        report.availability,
        report.latency_ms.p50,
        report.latency_ms.p99
    );
    for v in &report.invariants {
        if !v.held {
            println!("{} {} {}", v.name, v.held, v.detail);
        }
    }
}

#[test]
fn pingpong() {
    #[allow(clippy::disallowed_types)]
    let started = std::time::Instant::now();
    let r = scenarios::bench::ping_pong(sim::Seed(1), 1000, 2_000_000);
    let wall = started.elapsed().as_secs_f64();
    println!("pingpong wall {wall:.3}s events {} per s {:.0}", r.events, r.events as f64 / wall);
}

#[test]
fn storage_census() {
    let mut scenario = Scenario::default_named("census");
    scenario.workload.arrivals =
        scenarios::scenario::Arrivals::Open { rate_per_s: 100.0, profile: Vec::new() };
    let observed =
        scenarios::arch::microsystem::run(&scenario, sim::Seed(1), &mut Hooks::default());
    println!("orders {}", observed.orders.len());
}

#[test]
fn startup() {
    let scenario = Scenario::default_named("baseline");
    let observed =
        scenarios::arch::microsystem::run(&scenario, sim::Seed(1), &mut Hooks::default());
    for r in observed.requests.iter().take(12) {
        println!(
            "{} placed {} ended {:?} {:?}",
            r.order,
            r.placed_at,
            r.ended_at.map(|e| (e - r.placed_at).as_millis_f64()),
            r.outcome
        );
    }
}

fn explore(scenario: &Scenario) {
    let observed = scenarios::arch::microsystem::run(
        scenario,
        sim::Seed(scenario.seed),
        &mut Hooks::default(),
    );
    let report = scenarios::report::outcome(scenario, &observed);
    println!(
        "avail {:.4} p50 {} p99 {} max {} orders {:?} comp {} restarts {} failovers {} lag {}",
        report.availability,
        report.latency_ms.p50,
        report.latency_ms.p99,
        report.latency_ms.max,
        report.orders,
        report.compensations,
        report.restarts,
        report.failovers,
        report.read_model_lag_ms
    );
    for v in &report.invariants {
        println!("  {} {} {}", v.name, v.held, v.detail);
    }
    for f in &report.faults_fired {
        println!("  fault {:?}", f);
    }
    let writes = observed.writes.unwrap();
    let shard0: Vec<_> = writes.iter().filter(|w| w.aggregate == 0).collect();
    let mut gaps: Vec<(f64, f64, u64)> = shard0
        .windows(2)
        .map(|w| {
            (
                w[0].time.as_secs_f64(),
                (w[1].time.as_nanos() - w[0].time.as_nanos()) as f64 / 1e6,
                w[1].epoch,
            )
        })
        .collect();
    gaps.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap());
    println!("  biggest shard-0 gaps {:?}", &gaps[..3.min(gaps.len())]);
    let epochs: std::collections::BTreeSet<_> =
        shard0.iter().map(|w| (w.epoch, w.writer)).collect();
    println!("  shard-0 (epoch, writer) {:?}", epochs);
}

#[test]
fn failover_explore() {
    use scenarios::scenario::{FaultAction, FaultSpec};
    let mut scenario = Scenario::default_named("failover");
    scenario.duration = sim::SimDuration::from_secs(40);
    scenario.workload.arrivals =
        scenarios::scenario::Arrivals::Open { rate_per_s: 100.0, profile: Vec::new() };
    scenario.faults = vec![FaultSpec {
        at: sim::SimDuration::from_secs(20),
        until: Some(sim::SimDuration::from_secs(30)),
        action: FaultAction::Crash { role: "orders-active".into() },
    }];
    explore(&scenario);
    println!("---- break it: no fencing + partition");
    scenario.microsystem.fencing = false;
    scenario.faults = vec![FaultSpec {
        at: sim::SimDuration::from_secs(20),
        until: Some(sim::SimDuration::from_secs(30)),
        action: FaultAction::Partition {
            side_a: vec!["orders-active".into()],
            side_b: vec!["orders-passive".into()],
        },
    }];
    explore(&scenario);
    println!("---- fencing + partition");
    scenario.microsystem.fencing = true;
    explore(&scenario);
}

#[test]
fn saga_explore() {
    use scenarios::scenario::{FaultAction, FaultSpec};
    let mut scenario = Scenario::default_named("declines");
    scenario.workload.arrivals =
        scenarios::scenario::Arrivals::Open { rate_per_s: 100.0, profile: Vec::new() };
    scenario.workload.decline_rate = 0.1;
    explore(&scenario);
    println!("---- coordinator crash");
    scenario.faults = vec![FaultSpec {
        at: sim::SimDuration::from_secs(5),
        until: Some(sim::SimDuration::from_secs(7)),
        action: FaultAction::Crash { role: "saga".into() },
    }];
    explore(&scenario);
    println!("---- payments crash");
    scenario.faults = vec![FaultSpec {
        at: sim::SimDuration::from_secs(5),
        until: Some(sim::SimDuration::from_secs(7)),
        action: FaultAction::Crash { role: "payments".into() },
    }];
    explore(&scenario);
    println!("---- inventory crash + gateway slow");
    scenario.gateway.latency =
        sim::Dist::uniform(sim::SimDuration::from_millis(10), sim::SimDuration::from_millis(3000));
    scenario.faults = vec![FaultSpec {
        at: sim::SimDuration::from_secs(5),
        until: Some(sim::SimDuration::from_secs(6)),
        action: FaultAction::Crash { role: "inventory".into() },
    }];
    explore(&scenario);
}
