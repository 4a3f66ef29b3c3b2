//! M/M/1 through the engine: a source firing timers, a station spending
//! CPU on a one-core node, and a sink.
//!
//! Kept small and self-contained on purpose: `rlab queue`
//! (`crate::queueing`) is the full queueing model; this one exists to time
//! the engine's timer, CPU and message paths together. Links have zero
//! latency, so a customer's time from creation to the sink is exactly its
//! wait plus its service.

use super::WorkloadResult;
use sim::{
    Ctx, Dist, LinkConfig, Message, NodeConfig, Process, ProcessId, Purpose, Seed, Sim, SimConfig,
    SimDuration, Stream, TimerId,
};

/// Customers in the standard run.
pub const MM1_CUSTOMERS: u64 = 1_000_000;
/// Arrival rate λ, per second.
const LAMBDA: f64 = 0.9;
/// Service rate μ, per second.
const MU: f64 = 1.0;

/// A customer, stamped with its creation time on the source's clock
/// (every clock in this world is perfect, so that is global time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job {
    /// Creation time in nanoseconds.
    pub created: u64,
}

impl Message for Job {
    fn label(&self) -> &'static str {
        "Job"
    }
    fn digest(&self) -> u64 {
        self.created
    }
}

/// What [`mm1_detailed`] measured besides the run itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mm1Result {
    /// The run.
    pub run: WorkloadResult,
    /// Customers that reached the sink.
    pub completed: u64,
    /// Their mean time from creation to the sink, in seconds; theory says
    /// `1 / (μ − λ)` = 10 s.
    pub mean_time_in_system: f64,
}

/// Creates `remaining` customers with exponential interarrival times from
/// its own workload stream.
struct Source {
    arrivals: Stream,
    interarrival: Dist,
    station: ProcessId,
    remaining: u64,
}

impl Process<Job> for Source {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Job>) {
        if self.remaining > 0 {
            let after = self.interarrival.sample(&mut self.arrivals);
            ctx.set_timer(after, 0);
        }
    }

    fn on_message(&mut self, _ctx: &mut Ctx<'_, Job>, _from: ProcessId, _job: Job) {}

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Job>, _timer: TimerId, _tag: u64) {
        let created = ctx.now_local().as_nanos() as u64;
        ctx.send(self.station, Job { created });
        self.remaining -= 1;
        self.on_start(ctx);
    }
}

/// Serves each customer for an exponential time on its node's single core
/// (the node's ready queue is the FIFO wait line), then passes it on.
struct Station {
    service: Dist,
    sink: ProcessId,
}

impl Process<Job> for Station {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Job>, _from: ProcessId, job: Job) {
        let service = self.service.sample(ctx.rng());
        // The creation time rides along as the work's tag.
        ctx.spend_cpu(service, job.created);
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Job>, created: u64) {
        ctx.send(self.sink, Job { created });
    }
}

/// Counts customers and sums their times in the system.
#[derive(Default)]
struct Sink {
    completed: u64,
    total_nanos: u128,
}

impl Process<Job> for Sink {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Job>, _from: ProcessId, job: Job) {
        let now = ctx.now_local().as_nanos() as u64;
        self.completed += 1;
        self.total_nanos += u128::from(now - job.created);
    }
}

/// Runs M/M/1 (λ = 0.9, μ = 1) until `customers` customers have left.
pub fn mm1(seed: Seed, customers: u64) -> WorkloadResult {
    mm1_detailed(seed, customers).run
}

/// [`mm1`], with the customers' mean time in the system.
pub fn mm1_detailed(seed: Seed, customers: u64) -> Mm1Result {
    let mut sim = Sim::new(SimConfig::new(seed));
    sim.set_default_link(LinkConfig::constant(SimDuration::ZERO));
    let source_node = sim.add_node(NodeConfig::new("source"));
    let station_node = sim.add_node(NodeConfig::new("station").cores(1));
    let sink_node = sim.add_node(NodeConfig::new("sink"));
    // Spawn order fixes the ids: source p0, station p1, sink p2.
    let (station, sink) = (ProcessId(1), ProcessId(2));
    sim.spawn(source_node, "source", move || Source {
        arrivals: Stream::new(seed, Purpose::Workload),
        interarrival: Dist::exponential(SimDuration::from_secs_f64(1.0 / LAMBDA)),
        station,
        remaining: customers,
    });
    let spawned = sim.spawn(station_node, "station", move || Station {
        service: Dist::exponential(SimDuration::from_secs_f64(1.0 / MU)),
        sink,
    });
    assert_eq!(spawned, station);
    let spawned = sim.spawn(sink_node, "sink", Sink::default);
    assert_eq!(spawned, sink);
    // The source stops creating after `customers`, so the world drains.
    sim.run();
    let stats = sim.stats();
    let state = sim.process_state::<Sink>(sink).expect("the sink never crashes");
    assert_eq!(state.completed, customers, "every customer reaches the sink");
    let mean_time_in_system = if state.completed == 0 {
        0.0
    } else {
        state.total_nanos as f64 / state.completed as f64 / 1e9
    };
    Mm1Result {
        run: WorkloadResult {
            events: stats.events,
            deliveries: stats.messages_delivered,
            sim_time: sim.now(),
            trace_hash: Some(sim.trace_hash()),
            trace_events: stats.trace_events,
        },
        completed: state.completed,
        mean_time_in_system,
    }
}
