//! The mixed workload: a bit of everything the engine does, traced.
//!
//! 16 nodes with 4 cores each host 64 peers (4 per node). Every peer is
//! both a client and a server:
//! - as a client, a timer ticks at exponential intervals; each tick sends a
//!   request to a random other peer and arms a timeout, cancelled when the
//!   response comes back (a full table of outstanding requests skips the
//!   tick);
//! - as a server, it takes requests one at a time from a bounded mailbox,
//!   spends log-normal CPU time on each, appends it to its own log in the node's storage,
//!   syncs every fourth append, and responds.
//!
//! Links have log-normal latency, 1% loss and 1% duplication; two nodes'
//! clocks drift. A fault schedule, placed at fixed fractions of the run,
//! crashes and restarts a node (its peers recover their count of handled
//! requests from their logs, which lost the unsynced tail), partitions the nodes into halves for a
//! while, and steps a clock forward and back.

use super::{WorkloadResult, other_than};
use sim::{
    ClockConfig, Ctx, Dist, Fault, FaultSchedule, FiredFault, LinkConfig, Mailbox, Message,
    NodeConfig, NodeId, Process, ProcessId, Seed, Sim, SimConfig, SimDuration, SimTime, TimerId,
    TraceSink,
};

/// Simulated time of the standard run (about a million events).
pub const MIXED_DURATION: SimDuration = SimDuration::from_secs(6);

const NODES: u32 = 16;
const CORES: u32 = 4;
const PEERS_PER_NODE: u32 = 4;
const PEERS: u32 = NODES * PEERS_PER_NODE;
/// Requests a client may have outstanding at once.
const OUTSTANDING_MAX: usize = 8;
/// A server's mailbox bound; arrivals beyond it are dropped.
const MAILBOX_CAPACITY: u32 = 32;
const SYNC_EVERY: u64 = 4;

/// Timer tags: the tick, or a timeout for slot `TIMEOUT + slot`.
const TICK: u64 = 0;
const TIMEOUT: u64 = 1;

/// How the mixed world is set up; [`MixedConfig::standard`] is what
/// `rlab bench` runs.
#[derive(Clone, Debug)]
pub struct MixedConfig {
    /// Simulated time to run.
    pub duration: SimDuration,
    /// Time between a client's requests.
    pub tick: Dist,
    /// How long a client waits for a response.
    pub timeout: SimDuration,
    /// CPU time to handle one request.
    pub work: Dist,
    /// Every link between distinct nodes.
    pub link: LinkConfig,
    /// How long a sync takes.
    pub fsync: Dist,
}

impl MixedConfig {
    /// The standard workload, run for `duration`.
    pub fn standard(duration: SimDuration) -> MixedConfig {
        MixedConfig {
            duration,
            tick: Dist::exponential(SimDuration::from_millis(2)),
            timeout: SimDuration::from_millis(20),
            work: Dist::lognormal(SimDuration::from_micros(800), 0.5),
            link: LinkConfig {
                loss: 0.01,
                duplicate: 0.01,
                ..LinkConfig::with_latency(Dist::lognormal(SimDuration::from_micros(500), 1.0))
            },
            fsync: Dist::exponential(SimDuration::from_millis(1)),
        }
    }
}

/// A request carries its id, whose high half is the client's process id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rpc {
    Request { id: u64 },
    Response { id: u64 },
}

impl Message for Rpc {
    fn label(&self) -> &'static str {
        match self {
            Rpc::Request { .. } => "Request",
            Rpc::Response { .. } => "Response",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Rpc::Request { id } => *id,
            Rpc::Response { id } => !*id,
        }
    }
}

#[derive(Clone, Copy)]
struct Pending {
    id: u64,
    timeout: TimerId,
}

struct Peer {
    tick: Dist,
    timeout: SimDuration,
    work: Dist,
    next_request: u64,
    outstanding: [Option<Pending>; OUTSTANDING_MAX],
    /// This peer's log in its node's storage: one record per request
    /// handled.
    log: String,
    /// Requests handled, as recovered from the log at start.
    handled: u64,
}

impl Peer {
    fn arm_tick(&mut self, ctx: &mut Ctx<'_, Rpc>) {
        let after = self.tick.sample(ctx.rng());
        ctx.set_timer(after, TICK);
    }

    fn send_request(&mut self, ctx: &mut Ctx<'_, Rpc>) {
        let Some(slot) = self.outstanding.iter().position(Option::is_none) else {
            ctx.record("RequestSkipped", self.next_request);
            return;
        };
        let me = ctx.me().0;
        let to = other_than(ctx.rng(), me, PEERS);
        let id = (u64::from(me) << 32) | self.next_request;
        self.next_request += 1;
        ctx.send(ProcessId(to), Rpc::Request { id });
        let timeout = ctx.set_timer(self.timeout, TIMEOUT + slot as u64);
        self.outstanding[slot] = Some(Pending { id, timeout });
    }
}

impl Process<Rpc> for Peer {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Rpc>) {
        // Volatile state is gone after a crash; what was synced is not.
        self.handled = ctx.read_log(&self.log).len() as u64;
        self.arm_tick(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Rpc>, _from: ProcessId, message: Rpc) {
        match message {
            Rpc::Request { id } => {
                let work = self.work.sample(ctx.rng());
                ctx.spend_cpu(work, id);
            }
            Rpc::Response { id } => {
                let slot = self.outstanding.iter().position(|p| p.is_some_and(|p| p.id == id));
                match slot {
                    Some(slot) => {
                        let pending = self.outstanding[slot].take().expect("found above");
                        ctx.cancel_timer(pending.timeout);
                    }
                    // A duplicate, or a response after its timeout.
                    None => ctx.record("LateResponse", id),
                }
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Rpc>, _timer: TimerId, tag: u64) {
        if tag == TICK {
            self.send_request(ctx);
            self.arm_tick(ctx);
        } else {
            let slot = (tag - TIMEOUT) as usize;
            if let Some(pending) = self.outstanding[slot].take() {
                ctx.record("RequestTimedOut", pending.id);
            }
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Rpc>, id: u64) {
        ctx.append(&self.log, id.to_le_bytes());
        self.handled += 1;
        if self.handled.is_multiple_of(SYNC_EVERY) {
            ctx.sync(self.handled);
        }
        let client = ProcessId((id >> 32) as u32);
        ctx.send(client, Rpc::Response { id });
    }
}

fn at(duration: SimDuration, fraction: f64) -> SimTime {
    SimTime::ZERO + SimDuration::from_nanos_f64(duration.as_nanos() as f64 * fraction)
}

/// The fault schedule of a run of `duration`.
fn faults(duration: SimDuration) -> FaultSchedule {
    let (low, high): (Vec<NodeId>, Vec<NodeId>) =
        (0..NODES).map(NodeId).partition(|node| node.0 < NODES / 2);
    FaultSchedule::new()
        .window(at(duration, 0.2), at(duration, 0.3), Fault::CrashNode { node: NodeId(3) })
        .window(
            at(duration, 0.4),
            at(duration, 0.5),
            Fault::Partition { side_a: low, side_b: high },
        )
        .window(
            at(duration, 0.6),
            at(duration, 0.7),
            Fault::StepClock { node: NodeId(5), delta_ns: 15_000_000 },
        )
}

/// What a run of [`mixed`] did.
pub struct MixedResult {
    /// The run.
    pub run: WorkloadResult,
    /// The sink, handed back unflushed: call [`TraceSink::finish`].
    pub sink: Box<dyn TraceSink>,
    /// The faults that fired, with what they touched.
    pub faults: Vec<FiredFault>,
}

/// Runs the mixed workload for `config.duration` with the trace streamed to
/// `sink`.
pub fn mixed(seed: Seed, config: &MixedConfig, sink: Box<dyn TraceSink>) -> MixedResult {
    let mut sim = Sim::new(SimConfig::new(seed));
    sim.set_trace_sink(sink);
    sim.set_default_link(config.link.clone());
    for index in 0..NODES {
        let clock = match index % 4 {
            1 => ClockConfig { offset_ns: 3_000_000, drift_ppm: 40.0 },
            2 => ClockConfig { offset_ns: -2_000_000, drift_ppm: -25.0 },
            _ => ClockConfig::PERFECT,
        };
        let mut node = NodeConfig::new(format!("n{index}")).cores(CORES).clock(clock);
        node.fsync = config.fsync.clone();
        let node = sim.add_node(node);
        for _ in 0..PEERS_PER_NODE {
            let (tick, timeout, work) = (config.tick.clone(), config.timeout, config.work.clone());
            let name = format!("peer{}", sim.process_count());
            let log = name.clone();
            sim.spawn_with(
                node,
                name,
                Mailbox::Sequential { capacity: Some(MAILBOX_CAPACITY) },
                move || {
                    Box::new(Peer {
                        tick: tick.clone(),
                        timeout,
                        work: work.clone(),
                        next_request: 0,
                        outstanding: [None; OUTSTANDING_MAX],
                        log: log.clone(),
                        handled: 0,
                    })
                },
            );
        }
    }
    sim.schedule_faults(&faults(config.duration));
    sim.run_until(SimTime::ZERO + config.duration);
    let stats = sim.stats();
    MixedResult {
        run: WorkloadResult {
            events: stats.events,
            deliveries: stats.messages_delivered,
            sim_time: sim.now(),
            trace_hash: Some(sim.trace_hash()),
            trace_events: stats.trace_events,
        },
        sink: sim.take_trace_sink().expect("the sink stays attached for the run"),
        faults: sim.fired_faults().to_vec(),
    }
}
