//! The order system at scale: a 16-node microsystem taking 1,000 orders
//! per second, the size the order-system issue sets its speed target for
//! (at least 100 times faster than real time, tracing off).

use super::WorkloadResult;
use crate::harness::Hooks;
use crate::scenario::{Architecture, Arrivals, Scenario};
use sim::{Seed, SimDuration, SimTime, TraceHash};

/// Simulated seconds of arrivals in the standard run.
pub const MICROSYSTEM_DURATION: SimDuration = SimDuration::from_secs(60);

/// The scenario the benchmark runs: 16 stateful nodes, 1,000 orders/s.
pub fn microsystem_scenario(duration: SimDuration) -> Scenario {
    let mut scenario = Scenario::default_named("bench-microsystem-16");
    scenario.architectures = vec![Architecture::Microsystem];
    scenario.duration = duration;
    scenario.drain = SimDuration::from_secs(5);
    scenario.workload.arrivals = Arrivals::Open { rate_per_s: 1_000.0, profile: Vec::new() };
    scenario.microsystem.nodes = 16;
    scenario.microsystem.shards = 16;
    scenario.microsystem.instances = 8;
    scenario
}

/// Runs the 16-node microsystem for `duration` of arrivals.
pub fn microsystem_orders(seed: Seed, duration: SimDuration) -> WorkloadResult {
    let scenario = microsystem_scenario(duration);
    let outcome =
        crate::run::run(&scenario, Architecture::Microsystem, seed.0, &mut Hooks::default());
    WorkloadResult {
        events: outcome.events,
        deliveries: outcome.orders.completed,
        sim_time: SimTime::from_nanos((outcome.simulated_seconds * 1e9) as u64),
        trace_hash: TraceHash::try_from(outcome.trace_hash).ok(),
        trace_events: 0,
    }
}
