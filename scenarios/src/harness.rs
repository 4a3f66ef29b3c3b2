//! What every architecture's world has in common: building the engine with
//! the scenario's network, the customers and the payment gateway; turning
//! the scenario's role-based faults into a fault schedule; running to the
//! end with progress reports; gathering the common observations.

use crate::domain::OrderId;
use crate::parts::{Clients, ClientsConfig, Edge, GatewayMsg, PaymentGateway, Request};
use crate::scenario::{Arrivals, FaultAction, Scenario};
use crate::timeline::{GaugeRecord, GaugeSet, Sampler};
use crate::workload::{OrderSource, open_arrivals};
use sim::kit::Carry;
use sim::{
    Fault, FaultSchedule, LinkConfig, NodeConfig, NodeId, ProcessId, Seed, Sim, SimConfig,
    SimDuration, SimTime, TraceSink,
};
use std::collections::BTreeMap;

/// How far a run has got, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Simulated time reached.
    pub now: SimTime,
    /// When the run will end.
    pub end: SimTime,
    /// Engine events so far.
    pub events: u64,
    /// The trace hash so far: a checkpoint that `rlab replay` compares to
    /// find where two runs diverge.
    pub trace_hash: sim::TraceHash,
}

/// What the caller of a run can plug in.
#[derive(Default)]
pub struct Hooks<'a> {
    /// Where trace records go, if anywhere.
    pub trace: Option<Box<dyn TraceSink>>,
    /// Called every so often with how far the run has got.
    pub progress: Option<&'a mut dyn FnMut(Progress)>,
}

/// The nodes that play each role (`gateway`, `orders`, `payments`, ...).
pub type Roles = BTreeMap<String, Vec<NodeId>>;

/// The engine, set up with the scenario's seed and network.
pub fn new_sim<M: sim::Message>(scenario: &Scenario, seed: Seed) -> Sim<M> {
    let mut config = SimConfig::new(seed);
    // Bounded well above what any shipped scenario needs, so a runaway
    // model stops instead of running forever.
    config.events_max = 2_000_000_000;
    config.queue_capacity = 1 << 16;
    let mut sim = Sim::new(config);
    let network = &scenario.network;
    sim.set_default_link(LinkConfig {
        latency: network.latency.clone(),
        loss: network.loss,
        duplicate: network.duplicate,
        reorder: network.reorder,
        reorder_window: network.reorder_window,
    });
    sim
}

/// Adds the payment gateway on a node of its own, playing role `gateway`.
pub fn add_gateway<M: Carry<GatewayMsg>>(
    sim: &mut Sim<M>,
    scenario: &Scenario,
    roles: &mut Roles,
) -> ProcessId {
    let node = sim.add_node(NodeConfig::new("gateway").cores(16));
    roles.entry("gateway".to_string()).or_default().push(node);
    let config = scenario.gateway.clone();
    sim.spawn(node, "payment-gateway", move || PaymentGateway::<M>::new(config.clone()))
}

/// Adds the customers on a node of their own (with a perfect clock),
/// sending to `entry`.
pub fn add_clients<M: Carry<Edge>>(
    sim: &mut Sim<M>,
    scenario: &Scenario,
    seed: Seed,
    entry: ProcessId,
) -> ProcessId {
    let node = sim.add_node(NodeConfig::new("clients").cores(16));
    let end = SimTime::ZERO + scenario.duration;
    let config = match &scenario.workload.arrivals {
        Arrivals::Open { .. } => ClientsConfig::Open {
            arrivals: open_arrivals(&scenario.workload, scenario.duration, seed),
        },
        Arrivals::Closed { users, think_time } => {
            ClientsConfig::Closed { users: *users, think_time: *think_time, until: end }
        }
        Arrivals::Rounds { users, think_time } => {
            ClientsConfig::Rounds { users: *users, think_time: *think_time, until: end }
        }
    };
    let workload = scenario.workload.clone();
    let timeout = workload.client_timeout;
    // The customers never restart (their node has no role), so the factory
    // runs once; it still must be callable again, hence the clones.
    sim.spawn(node, "clients", move || {
        Clients::<M>::new(entry, config.clone(), OrderSource::new(&workload, seed), timeout)
    })
}

/// Turns the scenario's faults into a schedule on this world's nodes.
/// Returns the schedule and, for each fault whose roles this world lacks,
/// a line saying so.
pub fn fault_schedule(scenario: &Scenario, roles: &Roles) -> (FaultSchedule, Vec<String>) {
    let mut schedule = FaultSchedule::new();
    let mut not_applicable = Vec::new();
    let nodes = |role: &str| roles.get(role).cloned().unwrap_or_default();
    for spec in &scenario.faults {
        let from = SimTime::ZERO + spec.at;
        let until = spec.until.map(|until| SimTime::ZERO + until);
        let mut add = |fault: Fault| match until {
            Some(until) => schedule = std::mem::take(&mut schedule).window(from, until, fault),
            None => {
                schedule.add(from, fault);
            }
        };
        match &spec.action {
            FaultAction::Crash { role } => {
                let targets = nodes(role);
                if targets.is_empty() {
                    not_applicable.push(format!("crash {role}: no such role here"));
                }
                for node in targets {
                    add(Fault::CrashNode { node });
                }
            }
            FaultAction::Partition { side_a, side_b } => {
                let a: Vec<NodeId> = side_a.iter().flat_map(|role| nodes(role)).collect();
                let b: Vec<NodeId> = side_b.iter().flat_map(|role| nodes(role)).collect();
                if a.is_empty() || b.is_empty() {
                    not_applicable.push(format!(
                        "partition {} | {}: a side has no nodes here",
                        side_a.join(","),
                        side_b.join(",")
                    ));
                } else {
                    add(Fault::Partition { side_a: a, side_b: b });
                }
            }
            FaultAction::SlowLinks { role, latency } => {
                let targets = nodes(role);
                if targets.is_empty() {
                    not_applicable.push(format!("slow-links {role}: no such role here"));
                }
                let all: Vec<NodeId> = roles
                    .values()
                    .flatten()
                    .copied()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                for target in &targets {
                    for source in &all {
                        if source != target {
                            let link = LinkConfig {
                                latency: latency.clone(),
                                loss: scenario.network.loss,
                                duplicate: scenario.network.duplicate,
                                reorder: scenario.network.reorder,
                                reorder_window: scenario.network.reorder_window,
                            };
                            add(Fault::DegradeLink { from: *source, to: *target, link });
                        }
                    }
                }
            }
            FaultAction::ClockStep { role, delta_ns } => {
                let targets = nodes(role);
                if targets.is_empty() {
                    not_applicable.push(format!("clock-step {role}: no such role here"));
                }
                for node in targets {
                    add(Fault::StepClock { node, delta_ns: *delta_ns });
                }
            }
        }
    }
    (schedule, not_applicable)
}

/// Runs the world to the end of the scenario (arrivals plus drain),
/// reporting progress about a hundred times along the way.
pub fn drive<M: sim::Message>(sim: &mut Sim<M>, scenario: &Scenario, hooks: &mut Hooks<'_>) {
    drive_sampled(sim, scenario, hooks, &GaugeSet::none());
}

/// Like [`drive`], and samples `gauges` at the end of every timeline
/// bucket (see [`crate::timeline`]). Sampling only reads views, and
/// stopping the engine at more instants changes no event, so the run and
/// its trace hash are the same as with [`drive`].
pub fn drive_sampled<M: sim::Message>(
    sim: &mut Sim<M>,
    scenario: &Scenario,
    hooks: &mut Hooks<'_>,
    gauges: &GaugeSet<'_, M>,
) -> GaugeRecord {
    let end = SimTime::ZERO + scenario.duration + scenario.drain;
    let end_ns = end.as_nanos();
    let slices = 100u64;
    let step = (end_ns / slices).max(1);
    let bucket = crate::timeline::bucket_width(scenario.duration + scenario.drain);
    let mut sampler = Sampler::new(gauges, bucket);
    // The progress slices stay where they always were (the checkpoints of
    // a saved run are compared at those instants); the samples fall in
    // between.
    let mut next_slice = step.min(end_ns);
    let mut next_sample = bucket.as_nanos().min(end_ns);
    let mut reached = 0u64;
    while reached < end_ns {
        reached = next_slice.min(next_sample);
        sim.run_until(SimTime::from_nanos(reached));
        if reached == next_sample {
            sampler.sample(sim, gauges);
            next_sample = if next_sample == end_ns {
                u64::MAX
            } else {
                (next_sample + bucket.as_nanos()).min(end_ns)
            };
        }
        if reached == next_slice {
            if let Some(progress) = hooks.progress.as_mut() {
                let events = sim.stats().events;
                progress(Progress { now: sim.now(), end, events, trace_hash: sim.trace_hash() });
            }
            next_slice = (next_slice + step).min(end_ns);
        }
    }
    // Hand the trace sink back to the caller, who flushes it and reports
    // any write error.
    if let Some(sink) = sim.take_trace_sink() {
        hooks.trace = Some(sink);
    }
    sampler.finish()
}

/// The customers' requests and the values of their orders.
pub fn requests<M: Carry<Edge>>(
    sim: &Sim<M>,
    clients: ProcessId,
) -> (Vec<Request>, BTreeMap<OrderId, u64>) {
    let requests = sim
        .process_state::<Clients<M>>(clients)
        .map(|clients| clients.requests().to_vec())
        .unwrap_or_default();
    let values = requests.iter().map(|request| (request.order, request.value_cents)).collect();
    (requests, values)
}

/// The gateway's ledger at the end.
pub fn ledger<M: Carry<GatewayMsg>>(sim: &Sim<M>, gateway: ProcessId) -> crate::domain::Payments {
    sim.process_state::<PaymentGateway<M>>(gateway)
        .map(|gateway| gateway.ledger().clone())
        .unwrap_or_default()
}

/// How long after `start` a run's quiet period begins: used by checks that
/// need quiescence (read models).
pub fn quiescence(scenario: &Scenario) -> SimDuration {
    scenario.duration + scenario.drain
}
