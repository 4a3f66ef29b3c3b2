//! The world: [`Sim`] owns every node, process, link, resource and pending
//! event, and advances time from one event to the next.
//!
//! The loop is `step`: pop the earliest event, advance global time to it,
//! apply it (which may run one process handler, which may schedule more
//! events). Events made stale by a crash or a reschedule carry an old
//! incarnation or schedule key and are discarded when popped, which is
//! cheaper than finding and removing them. Cancelled timers are the
//! exception: so common (a timeout per request, cancelled by its answer)
//! that they leave the queue at once, keeping the heap shallow.

use crate::clock::{Clock, ClockConfig, LocalTime};
use crate::dist::Dist;
use crate::fault::{Fault, FaultSchedule, FiredFault, Touched};
use crate::ids::{EXTERNAL, NodeId, ProcessId, ResourceId, TimerId};
use crate::metrics::{Metrics, TimeWeighted};
use crate::net::{Fate, LinkConfig, Network};
use crate::process::{Acquire, Ctx, Mailbox, Message, Process};
use crate::queue::EventQueue;
use crate::rng::{Purpose, Seed, Stream};
use crate::storage::{Storage, SyncMark};

/// The label given to message events that no sink records: the trace hash
/// does not fold labels (the digest covers content), so computing one for
/// every message of an unrecorded run would be wasted work.
const UNRECORDED_LABEL: &str = "";
use crate::time::{SimDuration, SimTime};
use crate::trace::{DropReason, TraceEvent, TraceHash, TraceSink, Tracer};
use serde::Serialize;
use std::any::Any;
use std::collections::VecDeque;

/// How a run is set up.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The master seed.
    pub seed: Seed,
    /// A bound on events processed; reaching it stops the run with
    /// [`RunOutcome::EventsMaxReached`] rather than running forever.
    pub events_max: u64,
    /// Width of the buckets of metrics over time.
    pub metrics_interval: SimDuration,
    /// Pending events to preallocate room for.
    pub queue_capacity: usize,
}

impl SimConfig {
    /// Defaults: 1 billion events at most, 1 s metric buckets.
    pub fn new(seed: Seed) -> SimConfig {
        SimConfig {
            seed,
            events_max: 1_000_000_000,
            metrics_interval: SimDuration::from_secs(1),
            queue_capacity: 4096,
        }
    }
}

/// How a node is set up.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// A name for traces and views.
    pub name: String,
    /// CPU cores: how much work runs at once.
    pub cores: u32,
    /// How its clock differs from global time.
    pub clock: ClockConfig,
    /// How long a sync of its storage takes.
    pub fsync: Dist,
}

impl NodeConfig {
    /// One core, a perfect clock, instant syncs.
    pub fn new(name: impl Into<String>) -> NodeConfig {
        NodeConfig {
            name: name.into(),
            cores: 1,
            clock: ClockConfig::PERFECT,
            fsync: Dist::constant(SimDuration::ZERO),
        }
    }

    /// With `cores` cores (builder style).
    pub fn cores(mut self, cores: u32) -> NodeConfig {
        self.cores = cores;
        self
    }

    /// With this clock (builder style).
    pub fn clock(mut self, clock: ClockConfig) -> NodeConfig {
        self.clock = clock;
        self
    }
}

/// How a resource (a pool) is set up.
#[derive(Clone, Debug)]
pub struct ResourceConfig {
    /// A name for views and reports.
    pub name: String,
    /// Units that can be held at once (threads, connections).
    pub capacity: u32,
    /// Longest wait line; requests beyond it are rejected. `None`: unbounded.
    pub queue_max: Option<u32>,
}

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// No events were left.
    Idle,
    /// The requested time was reached.
    TimeReached,
    /// The bound on events was reached.
    EventsMaxReached,
    /// The caller's condition ([`Sim::run_while`]) stopped the run.
    ConditionMet,
}

/// Counters of what the engine did, for reports and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Events popped from the queue, stale ones included (a cancelled
    /// timer is not one: it leaves the queue when cancelled).
    pub events: u64,
    /// Messages sent (duplicates not included).
    pub messages_sent: u64,
    /// Messages handed to a handler.
    pub messages_delivered: u64,
    /// Messages lost for any reason.
    pub messages_dropped: u64,
    /// Extra copies made by the network.
    pub messages_duplicated: u64,
    /// Timers that fired.
    pub timers_fired: u64,
    /// Pieces of CPU work completed.
    pub work_completed: u64,
    /// Trace events emitted (and hashed).
    pub trace_events: u64,
    /// Messages addressed to stopped or unknown processes.
    pub dead_letters: u64,
}

/// The deterministic simulation of one world.
pub struct Sim<M: Message> {
    core: Core<M>,
    slots: Vec<Slot<M>>,
}

struct Slot<M: Message> {
    instance: Option<Box<dyn Process<M>>>,
    factory: Box<dyn FnMut() -> Box<dyn Process<M>>>,
}

/// Everything but the process instances, so a handler can borrow its own
/// instance and the world at once.
pub(crate) struct Core<M: Message> {
    pub(crate) now: SimTime,
    queue: EventQueue<Event<M>>,
    pub(crate) nodes: Vec<NodeState>,
    pub(crate) processes: Vec<ProcessState<M>>,
    /// Each process's node, dense and apart from the large `ProcessState`
    /// so that routing a send touches one small array.
    process_nodes: Vec<NodeId>,
    resources: Vec<ResourceState>,
    timers: Vec<TimerSlot>,
    free_timers: Vec<u32>,
    next_schedule_key: u64,
    net: Network,
    net_stream: Stream,
    tracer: Tracer,
    pub(crate) metrics: Metrics,
    faults: Vec<crate::fault::ScheduledFault>,
    fired: Vec<FiredFault>,
    /// For each scheduled fault, its position in `fired` once it fired.
    fired_index: Vec<Option<usize>>,
    next_message_id: u64,
    stats: EngineStats,
    config: SimConfig,
    pub(crate) controls: Vec<Control>,
    dead_letters: Vec<DeadLetter>,
}

pub(crate) struct NodeState {
    config: NodeConfig,
    up: bool,
    /// Bumped at every crash, so work and syncs started before it are stale.
    epoch: u32,
    clock: Clock,
    busy_cores: u32,
    ready: VecDeque<Work>,
    pub(crate) storage: Storage,
    processes: Vec<ProcessId>,
    fsync_stream: Stream,
    busy: TimeWeighted,
    waiting: TimeWeighted,
    /// The fault that crashed it, for attributing dropped messages.
    crashed_by: Option<u32>,
}

struct Work {
    process: ProcessId,
    incarnation: u32,
    duration: SimDuration,
    tag: u64,
}

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    /// Handling events.
    Running,
    /// Failed ([`Ctx::fail`]) and waiting for its supervisor's decision;
    /// messages that arrive meanwhile wait in its mailbox.
    Suspended,
    /// Stopped for good (by its supervisor, or failed with none); messages
    /// to it become dead letters.
    Stopped,
    /// Its node is down; it starts again when the node restarts.
    Down,
}

/// A message that could not be delivered to anyone: its addressee was
/// stopped or never existed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeadLetter {
    /// When it was given up.
    pub time: SimTime,
    /// The message.
    pub message_id: u64,
    /// The sender.
    pub from: ProcessId,
    /// The addressee.
    pub to: ProcessId,
    /// The message's label.
    pub label: &'static str,
}

/// How many dead letters are kept for inspection; later ones are only
/// counted ([`EngineStats::dead_letters`]), so a storm cannot grow memory
/// without bound.
pub const DEAD_LETTERS_KEPT: usize = 10_000;

/// A supervision action a handler asked for, applied when it returns
/// (process instances live outside the core, so a handler cannot swap
/// them itself).
pub(crate) enum Control {
    Fail { process: ProcessId, reason: &'static str },
    Restart { process: ProcessId },
    Stop { process: ProcessId },
    Resume { process: ProcessId },
}

pub(crate) struct ProcessState<M> {
    name: String,
    node: NodeId,
    status: ProcessStatus,
    supervisor: Option<ProcessId>,
    incarnation: u32,
    pub(crate) stream: Stream,
    mailbox: Mailbox,
    queued: VecDeque<Envelope<M>>,
    /// Sequential mode: a message is being handled (its work not done yet).
    busy: bool,
    work_outstanding: u32,
    /// Timers that came due while the process was suspended.
    deferred_timers: Vec<(TimerId, u64)>,
}

struct Envelope<M> {
    from: ProcessId,
    message_id: u64,
    message: M,
}

struct ResourceState {
    config: ResourceConfig,
    node: NodeId,
    in_use: u32,
    waiters: VecDeque<(ProcessId, u32, u64)>,
    holding: TimeWeighted,
    waiting: TimeWeighted,
    rejected: u64,
}

struct TimerSlot {
    process: ProcessId,
    incarnation: u32,
    deadline: LocalTime,
    tag: u64,
    generation: u32,
    /// The key of the one queue event that is current for this timer.
    schedule_key: u64,
    /// The queue's handle of that event, to take it out when the timer
    /// is cancelled.
    queued: u32,
    active: bool,
}

enum Event<M> {
    Start {
        process: ProcessId,
        incarnation: u32,
    },
    Deliver(Envelope<M>, ProcessId),
    Dispatch {
        process: ProcessId,
        incarnation: u32,
    },
    Timer {
        slot: u32,
        schedule_key: u64,
    },
    WorkDone {
        node: NodeId,
        epoch: u32,
        process: ProcessId,
        incarnation: u32,
        tag: u64,
    },
    Granted {
        resource: ResourceId,
        process: ProcessId,
        incarnation: u32,
        tag: u64,
    },
    Synced {
        node: NodeId,
        epoch: u32,
        process: ProcessId,
        incarnation: u32,
        tag: u64,
        mark: SyncMark,
    },
    Fault {
        index: u32,
    },
    DeferredTimer {
        process: ProcessId,
        incarnation: u32,
        timer: TimerId,
        tag: u64,
    },
    Resumed {
        process: ProcessId,
        incarnation: u32,
    },
    ChildFailed {
        supervisor: ProcessId,
        incarnation: u32,
        child: ProcessId,
        reason: &'static str,
    },
}

/// A node as seen from outside: plain data for views and tests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeView {
    /// The node.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Whether it is running.
    pub up: bool,
    /// Its cores.
    pub cores: u32,
    /// Cores busy now.
    pub busy_cores: u32,
    /// Work waiting for a core.
    pub ready_queue: usize,
    /// Its clock's reading now.
    pub clock: LocalTime,
    /// Fraction of core time busy since the start.
    pub utilisation: f64,
    /// Time-average of work waiting for a core since the start.
    pub mean_ready_queue: f64,
    /// Longest the ready queue has been.
    pub ready_queue_max: u64,
    /// Unsynced storage records.
    pub unsynced_writes: usize,
    /// Processes hosted.
    pub processes: Vec<ProcessId>,
}

/// A node's load over time, one value per interval from time zero.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NodeSeries {
    /// The width of each interval (the metrics interval, doubled as often as
    /// needed to keep the series bounded; see [`crate::metrics::TimeWeighted`]).
    pub interval: SimDuration,
    /// Busy cores, averaged over each interval.
    pub busy_cores: Vec<f64>,
    /// Work waiting for a core, averaged over each interval.
    pub ready_queue: Vec<f64>,
}

/// A process as seen from outside.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessView {
    /// The process.
    pub id: ProcessId,
    /// Its name.
    pub name: String,
    /// Its host.
    pub node: NodeId,
    /// Whether it is running.
    pub alive: bool,
    /// Where it is in its life.
    pub status: ProcessStatus,
    /// How many times it was (re)started, minus one.
    pub incarnation: u32,
    /// Messages waiting in its mailbox.
    pub mailbox_len: usize,
}

/// A pending event as seen from outside, for step-through views.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PendingView {
    /// When it is due.
    pub time: SimTime,
    /// What kind of event: `deliver`, `timer`, `work_done`, `start`,
    /// `dispatch`, `granted`, `synced` or `fault`.
    pub kind: &'static str,
    /// The process it concerns, if any.
    pub process: Option<ProcessId>,
    /// The message label for deliveries, the fault for faults.
    pub detail: String,
}

/// A resource as seen from outside.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResourceView {
    /// The resource.
    pub id: ResourceId,
    /// Its name.
    pub name: String,
    /// Its node.
    pub node: NodeId,
    /// Units held now.
    pub in_use: u32,
    /// Its capacity.
    pub capacity: u32,
    /// Requests waiting now.
    pub waiting: usize,
    /// Requests rejected so far.
    pub rejected: u64,
    /// Time-average of units held.
    pub mean_in_use: f64,
    /// Time-average of requests waiting.
    pub mean_waiting: f64,
}

/// A link as seen from outside.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LinkView {
    /// Sending node.
    pub from: NodeId,
    /// Receiving node.
    pub to: NodeId,
    /// The behaviour in force.
    pub config: LinkConfig,
    /// Whether a partition blocks it now.
    pub blocked: bool,
}

impl<M: Message> Sim<M> {
    /// An empty world with perfect 1 ms links.
    pub fn new(config: SimConfig) -> Sim<M> {
        let seed = config.seed;
        Sim {
            core: Core {
                now: SimTime::ZERO,
                queue: EventQueue::with_capacity(config.queue_capacity),
                nodes: Vec::new(),
                processes: Vec::new(),
                process_nodes: Vec::new(),
                resources: Vec::new(),
                timers: Vec::new(),
                free_timers: Vec::new(),
                next_schedule_key: 0,
                net: Network::new(LinkConfig::constant(SimDuration::from_millis(1))),
                net_stream: Stream::new(seed, Purpose::Network),
                tracer: Tracer::new(),
                metrics: Metrics::new(config.metrics_interval),
                faults: Vec::new(),
                fired: Vec::new(),
                fired_index: Vec::new(),
                next_message_id: 0,
                stats: EngineStats::default(),
                config,
                controls: Vec::new(),
                dead_letters: Vec::new(),
            },
            slots: Vec::new(),
        }
    }

    /// The master seed.
    pub fn seed(&self) -> Seed {
        self.core.config.seed
    }

    /// Sends trace records to `sink` from now on. Attach it before adding
    /// nodes to see the whole run; the hash covers everything regardless.
    pub fn set_trace_sink(&mut self, sink: Box<dyn TraceSink>) {
        self.core.tracer.set_sink(sink);
    }

    /// Detaches the trace sink and hands it back (to flush it).
    pub fn take_trace_sink(&mut self) -> Option<Box<dyn TraceSink>> {
        self.core.tracer.take_sink()
    }

    /// Sets the link every pair of distinct nodes uses unless overridden.
    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.core.net.set_default(link);
    }

    /// Sets the link between processes on the same node.
    pub fn set_loopback_link(&mut self, link: LinkConfig) {
        self.core.net.set_loopback(link);
    }

    /// Overrides one direction of one link.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: LinkConfig) {
        self.core.net.set_link(from, to, link);
    }

    /// Adds a node; ids are given out in order from `n0`.
    pub fn add_node(&mut self, config: NodeConfig) -> NodeId {
        assert!(config.cores > 0, "node {} needs at least one core", config.name);
        let id = NodeId(u32::try_from(self.core.nodes.len()).expect("fewer than 2^32 nodes"));
        let interval = self.core.config.metrics_interval;
        self.core
            .tracer
            .emit(self.core.now, TraceEvent::NodeAdded { node: id, name: config.name.clone() });
        self.core.nodes.push(NodeState {
            clock: Clock::new(config.clock),
            fsync_stream: Stream::new(self.core.config.seed, Purpose::Model(0x4000_0000 | id.0)),
            config,
            up: true,
            epoch: 0,
            busy_cores: 0,
            ready: VecDeque::new(),
            storage: Storage::default(),
            processes: Vec::new(),
            busy: TimeWeighted::new(interval),
            waiting: TimeWeighted::new(interval),
            crashed_by: None,
        });
        id
    }

    /// Adds a pool on `node`.
    pub fn add_resource(&mut self, node: NodeId, config: ResourceConfig) -> ResourceId {
        assert!(config.capacity > 0, "resource {} needs a capacity", config.name);
        assert!(node.index() < self.core.nodes.len(), "resource on unknown node {node}");
        let id = ResourceId(self.core.resources.len() as u32);
        let interval = self.core.config.metrics_interval;
        self.core.resources.push(ResourceState {
            config,
            node,
            in_use: 0,
            waiters: VecDeque::new(),
            holding: TimeWeighted::new(interval),
            waiting: TimeWeighted::new(interval),
            rejected: 0,
        });
        id
    }

    /// Spawns a process on `node` that handles messages as they arrive.
    /// `factory` builds its initial state now and again after every restart.
    pub fn spawn<P: Process<M>>(
        &mut self,
        node: NodeId,
        name: impl Into<String>,
        mut factory: impl FnMut() -> P + 'static,
    ) -> ProcessId {
        self.spawn_with(node, name, Mailbox::Immediate, move || Box::new(factory()))
    }

    /// Spawns a process with a given mailbox discipline.
    pub fn spawn_with(
        &mut self,
        node: NodeId,
        name: impl Into<String>,
        mailbox: Mailbox,
        mut factory: impl FnMut() -> Box<dyn Process<M>> + 'static,
    ) -> ProcessId {
        assert!(node.index() < self.core.nodes.len(), "process on unknown node {node}");
        let id =
            ProcessId(u32::try_from(self.core.processes.len()).expect("fewer than 2^32 processes"));
        assert!(id != EXTERNAL, "too many processes");
        let name = name.into();
        let core = &mut self.core;
        core.tracer
            .emit(core.now, TraceEvent::ProcessSpawned { process: id, node, name: name.clone() });
        let up = core.nodes[node.index()].up;
        core.nodes[node.index()].processes.push(id);
        core.process_nodes.push(node);
        core.processes.push(ProcessState {
            name,
            node,
            status: if up { ProcessStatus::Running } else { ProcessStatus::Down },
            supervisor: None,
            incarnation: 0,
            stream: Stream::new(core.config.seed, Purpose::Process(id.0)),
            mailbox,
            queued: VecDeque::new(),
            busy: false,
            work_outstanding: 0,
            deferred_timers: Vec::new(),
        });
        let instance = if up { Some(factory()) } else { None };
        self.slots.push(Slot { instance, factory: Box::new(factory) });
        if up {
            core.queue.push(core.now, Event::Start { process: id, incarnation: 0 });
        }
        id
    }

    /// Delivers `message` to `to` at `at`, from outside the world (no
    /// network, no partition): how tests and drivers inject work.
    pub fn post(&mut self, at: SimTime, to: ProcessId, message: M) {
        assert!(at >= self.core.now, "cannot post into the past");
        let core = &mut self.core;
        let message_id = core.next_message_id;
        core.next_message_id += 1;
        core.stats.messages_sent += 1;
        core.tracer.emit(
            core.now,
            TraceEvent::MessageSent {
                message_id,
                from: EXTERNAL,
                to,
                label: if core.tracer.recording() { message.label() } else { UNRECORDED_LABEL },
                digest: message.digest(),
            },
        );
        core.queue.push(at, Event::Deliver(Envelope { from: EXTERNAL, message_id, message }, to));
    }

    /// Schedules every fault of `schedule` (replacing none already added).
    /// Indices in `Heal` refer to positions within `schedule`.
    pub fn schedule_faults(&mut self, schedule: &FaultSchedule) {
        let base = self.core.faults.len() as u32;
        for scheduled in &schedule.faults {
            let mut scheduled = scheduled.clone();
            if let Fault::Heal { partition } = &mut scheduled.fault {
                *partition += base;
            }
            let index = self.core.faults.len() as u32;
            assert!(scheduled.at >= self.core.now, "fault #{index} is in the past");
            self.core.queue.push(scheduled.at, Event::Fault { index });
            self.core.faults.push(scheduled);
            self.core.fired_index.push(None);
        }
    }

    /// Applies one fault now, outside any schedule (from a UI or a test).
    pub fn inject_fault(&mut self, fault: Fault) {
        let index = self.core.faults.len() as u32;
        self.core.faults.push(crate::fault::ScheduledFault { at: self.core.now, fault });
        self.core.fired_index.push(None);
        self.apply_fault(index);
    }

    /// Processes the next event, whatever it is (stale events included).
    /// Returns its time, or `None` if nothing is pending.
    #[inline]
    pub fn step(&mut self) -> Option<SimTime> {
        let (time, event) = self.core.queue.pop()?;
        assert!(time >= self.core.now, "event queue went back in time");
        self.core.now = time;
        self.core.stats.events += 1;
        self.apply(event);
        Some(time)
    }

    /// Runs until nothing is pending or the event bound is reached.
    pub fn run(&mut self) -> RunOutcome {
        self.run_until(SimTime::MAX)
    }

    /// Runs every event up to and including `until`, then moves time to
    /// `until` (if events remain beyond it).
    pub fn run_until(&mut self, until: SimTime) -> RunOutcome {
        loop {
            if self.core.stats.events >= self.core.config.events_max {
                return RunOutcome::EventsMaxReached;
            }
            match self.core.queue.peek_time() {
                Some(time) if time <= until => {
                    self.step();
                }
                Some(_) => {
                    self.core.now = self.core.now.max(until);
                    return RunOutcome::TimeReached;
                }
                None => return RunOutcome::Idle,
            }
        }
    }

    /// Runs while `keep_going` says so (asked before each event), until
    /// nothing is pending, or until the event bound is reached.
    pub fn run_while(&mut self, mut keep_going: impl FnMut(&Sim<M>) -> bool) -> RunOutcome {
        while keep_going(self) {
            if self.core.stats.events >= self.core.config.events_max {
                return RunOutcome::EventsMaxReached;
            }
            if self.step().is_none() {
                return RunOutcome::Idle;
            }
        }
        RunOutcome::ConditionMet
    }

    fn apply(&mut self, event: Event<M>) {
        match event {
            Event::Start { process, incarnation } => {
                if !self.core.is_current(process, incarnation) {
                    return;
                }
                self.core
                    .tracer
                    .emit(self.core.now, TraceEvent::ProcessStarted { process, incarnation });
                self.with_process(process, |instance, ctx| instance.on_start(ctx));
                self.core.schedule_drain(process);
            }
            Event::Deliver(envelope, to) => self.deliver(envelope, to),
            Event::Dispatch { process, incarnation } => {
                if !self.core.is_current(process, incarnation) {
                    return;
                }
                let state = &mut self.core.processes[process.index()];
                if state.busy {
                    return;
                }
                if let Some(envelope) = state.queued.pop_front() {
                    if !state.queued.is_empty() && state.mailbox == Mailbox::Immediate {
                        // An immediate process drains its backlog one
                        // event at a time, so other events can interleave.
                        self.core
                            .queue
                            .push(self.core.now, Event::Dispatch { process, incarnation });
                    }
                    self.dispatch(envelope, process);
                }
            }
            Event::Timer { slot, schedule_key } => {
                let timer = &self.core.timers[slot as usize];
                if !timer.active || timer.schedule_key != schedule_key {
                    return;
                }
                let (process, incarnation, tag, generation) =
                    (timer.process, timer.incarnation, timer.tag, timer.generation);
                self.core.free_timer(slot);
                let id = TimerId { slot, generation };
                let state = &mut self.core.processes[process.index()];
                if state.status == ProcessStatus::Suspended && state.incarnation == incarnation {
                    // Kept until the supervisor decides: a resumed process
                    // gets it then, a restarted or stopped one never does.
                    state.deferred_timers.push((id, tag));
                    return;
                }
                self.fire_timer(process, incarnation, id, tag);
            }
            Event::DeferredTimer { process, incarnation, timer, tag } => {
                self.fire_timer(process, incarnation, timer, tag);
            }
            Event::Resumed { process, incarnation } => {
                if !self.core.is_current(process, incarnation) {
                    return;
                }
                self.with_process(process, |instance, ctx| instance.on_resumed(ctx));
                let state = &mut self.core.processes[process.index()];
                for (timer, tag) in std::mem::take(&mut state.deferred_timers) {
                    let event = Event::DeferredTimer { process, incarnation, timer, tag };
                    self.core.queue.push(self.core.now, event);
                }
                self.core.schedule_drain(process);
            }
            Event::WorkDone { node, epoch, process, incarnation, tag } => {
                if self.core.nodes[node.index()].epoch != epoch {
                    return;
                }
                self.core.finish_work(node);
                if !self.core.is_current(process, incarnation) {
                    return;
                }
                self.core.stats.work_completed += 1;
                self.core.processes[process.index()].work_outstanding -= 1;
                self.core.tracer.emit(self.core.now, TraceEvent::WorkCompleted { process, tag });
                self.with_process(process, |instance, ctx| instance.on_work_done(ctx, tag));
            }
            Event::Granted { resource, process, incarnation, tag } => {
                if !self.core.is_current(process, incarnation) {
                    // The waiter died holding the grant: pass the unit on.
                    let node = self.core.resources[resource.index()].node;
                    self.core.release(node, resource);
                    return;
                }
                self.with_process(process, |instance, ctx| instance.on_granted(ctx, resource, tag));
            }
            Event::Synced { node, epoch, process, incarnation, tag, mark } => {
                let state = &mut self.core.nodes[node.index()];
                if state.epoch != epoch {
                    return;
                }
                state.storage.complete(mark);
                if !self.core.is_current(process, incarnation) {
                    return;
                }
                self.with_process(process, |instance, ctx| instance.on_synced(ctx, tag));
            }
            Event::Fault { index } => self.apply_fault(index),
            Event::ChildFailed { supervisor, incarnation, child, reason } => {
                if !self.core.is_current(supervisor, incarnation) {
                    // Nobody left to decide: the child stays down.
                    self.stop_process(child);
                    return;
                }
                self.with_process(supervisor, |instance, ctx| {
                    instance.on_child_failed(ctx, child, reason)
                });
            }
        }
    }

    fn fire_timer(&mut self, process: ProcessId, incarnation: u32, timer: TimerId, tag: u64) {
        if !self.core.is_current(process, incarnation) {
            return;
        }
        self.core.stats.timers_fired += 1;
        self.core.tracer.emit(self.core.now, TraceEvent::TimerFired { process, tag });
        self.with_process(process, |instance, ctx| instance.on_timer(ctx, timer, tag));
    }

    fn deliver(&mut self, envelope: Envelope<M>, to: ProcessId) {
        let core = &mut self.core;
        let Some(state) = core.processes.get(to.index()) else {
            core.drop_message(&envelope, to, DropReason::UnknownProcess, None);
            return;
        };
        let to_node = state.node;
        match state.status {
            ProcessStatus::Running | ProcessStatus::Suspended => {}
            ProcessStatus::Down => {
                let crashed_by = core.nodes[to_node.index()].crashed_by;
                core.drop_message(&envelope, to, DropReason::NodeDown, crashed_by);
                return;
            }
            ProcessStatus::Stopped => {
                core.drop_message(&envelope, to, DropReason::Stopped, None);
                return;
            }
        }
        if envelope.from != EXTERNAL && core.net.partition_count() > 0 {
            let from_node = core.processes[envelope.from.index()].node;
            // A partition that started while the message was in flight
            // stops it too.
            if let Some(fault) = core.net.blocked_by(from_node, to_node) {
                core.drop_message(&envelope, to, DropReason::Partition, Some(fault));
                return;
            }
        }
        let state = &mut core.processes[to.index()];
        let ready = state.status == ProcessStatus::Running && state.queued.is_empty();
        match state.mailbox {
            Mailbox::Immediate if ready => self.dispatch(envelope, to),
            // Suspended, or still draining what queued while suspended:
            // wait in line so that order is kept.
            Mailbox::Immediate => state.queued.push_back(envelope),
            Mailbox::Sequential { capacity } => {
                if ready && !state.busy {
                    self.dispatch(envelope, to);
                } else if capacity.is_some_and(|max| state.queued.len() >= max as usize) {
                    core.drop_message(&envelope, to, DropReason::MailboxFull, None);
                } else {
                    state.queued.push_back(envelope);
                }
            }
        }
    }

    #[inline]
    fn dispatch(&mut self, envelope: Envelope<M>, to: ProcessId) {
        let core = &mut self.core;
        core.stats.messages_delivered += 1;
        core.tracer.emit(
            core.now,
            TraceEvent::MessageDelivered {
                message_id: envelope.message_id,
                from: envelope.from,
                to,
                label: if core.tracer.recording() {
                    envelope.message.label()
                } else {
                    UNRECORDED_LABEL
                },
            },
        );
        if let Mailbox::Sequential { .. } = core.processes[to.index()].mailbox {
            core.processes[to.index()].busy = true;
        }
        let Envelope { from, message, .. } = envelope;
        self.with_process(to, |instance, ctx| instance.on_message(ctx, from, message));
    }

    /// Runs one handler of `process` with a context, then lets a sequential
    /// process take its next message if it has become idle.
    #[inline]
    fn with_process(
        &mut self,
        process: ProcessId,
        handler: impl FnOnce(&mut dyn Process<M>, &mut Ctx<'_, M>),
    ) {
        let slot = &mut self.slots[process.index()];
        let instance = slot.instance.as_deref_mut().expect("a live process has an instance");
        let node = self.core.processes[process.index()].node;
        let mut ctx = Ctx { core: &mut self.core, me: process, node };
        handler(instance, &mut ctx);
        let state = &mut self.core.processes[process.index()];
        if state.busy && state.work_outstanding == 0 {
            state.busy = false;
            if !state.queued.is_empty() {
                let incarnation = state.incarnation;
                self.core.queue.push(self.core.now, Event::Dispatch { process, incarnation });
            }
        }
        if !self.core.controls.is_empty() {
            self.apply_controls();
        }
    }

    fn apply_controls(&mut self) {
        let controls = std::mem::take(&mut self.core.controls);
        for control in controls {
            match control {
                Control::Fail { process, reason } => self.fail_process(process, reason),
                Control::Restart { process } => self.restart_process(process),
                Control::Stop { process } => self.stop_process(process),
                Control::Resume { process } => {
                    let state = &mut self.core.processes[process.index()];
                    if state.status == ProcessStatus::Suspended {
                        state.status = ProcessStatus::Running;
                        let incarnation = state.incarnation;
                        let now = self.core.now;
                        self.core.tracer.emit(now, TraceEvent::ProcessResumed { process });
                        self.core.queue.push(now, Event::Resumed { process, incarnation });
                    }
                }
            }
        }
    }

    fn fail_process(&mut self, process: ProcessId, reason: &'static str) {
        let now = self.core.now;
        let state = &mut self.core.processes[process.index()];
        if state.status != ProcessStatus::Running {
            return;
        }
        state.status = ProcessStatus::Suspended;
        let supervisor = state.supervisor;
        self.core.tracer.emit(now, TraceEvent::ProcessFailed { process, reason });
        match supervisor {
            Some(supervisor) => {
                let incarnation = self.core.processes[supervisor.index()].incarnation;
                let event = Event::ChildFailed { supervisor, incarnation, child: process, reason };
                self.core.queue.push(now, event);
            }
            // Let it crash, with nobody to restart it.
            None => self.stop_process(process),
        }
    }

    fn restart_process(&mut self, process: ProcessId) {
        let state = &mut self.core.processes[process.index()];
        if state.status == ProcessStatus::Down {
            return;
        }
        state.status = ProcessStatus::Running;
        state.incarnation += 1;
        state.busy = false;
        state.work_outstanding = 0;
        state.deferred_timers.clear();
        let incarnation = state.incarnation;
        // The old state is dropped here; the mailbox survives the restart.
        let slot = &mut self.slots[process.index()];
        slot.instance = Some((slot.factory)());
        self.core.queue.push(self.core.now, Event::Start { process, incarnation });
    }

    fn stop_process(&mut self, process: ProcessId) {
        let state = &mut self.core.processes[process.index()];
        if matches!(state.status, ProcessStatus::Stopped | ProcessStatus::Down) {
            return;
        }
        state.status = ProcessStatus::Stopped;
        state.incarnation += 1;
        state.busy = false;
        state.work_outstanding = 0;
        state.deferred_timers.clear();
        let backlog: Vec<Envelope<M>> = state.queued.drain(..).collect();
        self.slots[process.index()].instance = None;
        self.core.tracer.emit(self.core.now, TraceEvent::ProcessStopped { process });
        for envelope in backlog {
            self.core.drop_message(&envelope, process, DropReason::Stopped, None);
        }
    }

    /// Makes `parent` the supervisor of `child`: when `child` calls
    /// [`Ctx::fail`], `parent`'s [`Process::on_child_failed`] decides.
    pub fn supervise(&mut self, child: ProcessId, parent: ProcessId) {
        assert!(child != parent, "{child} cannot supervise itself");
        self.core.processes[child.index()].supervisor = Some(parent);
    }

    /// Messages given up because their addressee was stopped or unknown
    /// (the first [`DEAD_LETTERS_KEPT`]; all are counted in the stats).
    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.core.dead_letters
    }

    fn apply_fault(&mut self, index: u32) {
        let fault = self.core.faults[index as usize].fault.clone();
        let now = self.core.now;
        let mut touched = Touched::default();
        let applied = match &fault {
            Fault::CrashNode { node } => self.crash(*node, index, &mut touched),
            Fault::RestartNode { node } => self.restart(*node, &mut touched),
            Fault::Partition { side_a, side_b } => {
                self.core.net.start_partition(index, side_a.clone(), side_b.clone(), true);
                self.core.tracer.emit(
                    now,
                    TraceEvent::PartitionStarted {
                        fault: index,
                        from: side_a.clone(),
                        to: side_b.clone(),
                        symmetric: true,
                    },
                );
                true
            }
            Fault::PartitionOneway { from, to } => {
                self.core.net.start_partition(index, from.clone(), to.clone(), false);
                self.core.tracer.emit(
                    now,
                    TraceEvent::PartitionStarted {
                        fault: index,
                        from: from.clone(),
                        to: to.clone(),
                        symmetric: false,
                    },
                );
                true
            }
            Fault::Heal { partition } => {
                let healed = self.core.net.heal(*partition);
                if healed {
                    self.core.tracer.emit(now, TraceEvent::PartitionHealed { fault: *partition });
                }
                healed
            }
            Fault::HealAll => {
                let healed = self.core.net.heal_all();
                for fault in &healed {
                    self.core.tracer.emit(now, TraceEvent::PartitionHealed { fault: *fault });
                }
                !healed.is_empty()
            }
            Fault::DegradeLink { from, to, link } => {
                self.core.net.degrade(*from, *to, link.clone(), index);
                self.core.tracer.emit(now, TraceEvent::LinkDegraded { from: *from, to: *to });
                true
            }
            Fault::RestoreLink { from, to } => {
                let restored = self.core.net.restore(*from, *to);
                if restored {
                    self.core.tracer.emit(now, TraceEvent::LinkRestored { from: *from, to: *to });
                }
                restored
            }
            Fault::StepClock { node, delta_ns } => {
                touched.timers_moved = self.core.step_clock(*node, *delta_ns);
                true
            }
        };
        self.core.fired_index[index as usize] = Some(self.core.fired.len());
        self.core.fired.push(FiredFault { index, at: now, fault, applied, touched });
    }

    fn crash(&mut self, node: NodeId, fault: u32, touched: &mut Touched) -> bool {
        let core = &mut self.core;
        let now = core.now;
        let state = &mut core.nodes[node.index()];
        if !state.up {
            return false;
        }
        state.up = false;
        state.epoch += 1;
        state.crashed_by = Some(fault);
        state.busy.set(now, 0);
        state.waiting.set(now, 0);
        state.busy_cores = 0;
        state.ready.clear();
        let writes_lost = state.storage.crash() as u32;
        let hosted = state.processes.clone();
        for process in &hosted {
            let process_state = &mut core.processes[process.index()];
            process_state.status = ProcessStatus::Down;
            process_state.incarnation += 1;
            process_state.queued.clear();
            process_state.deferred_timers.clear();
            process_state.busy = false;
            process_state.work_outstanding = 0;
            // Dropping the instance is what loses the volatile state.
            self.slots[process.index()].instance = None;
        }
        for resource in core.resources.iter_mut().filter(|r| r.node == node) {
            resource.in_use = 0;
            resource.waiters.clear();
            resource.holding.set(now, 0);
            resource.waiting.set(now, 0);
        }
        touched.processes_stopped = hosted.len() as u32;
        touched.writes_lost = writes_lost;
        core.tracer.emit(
            now,
            TraceEvent::NodeCrashed { node, processes_stopped: hosted.len() as u32, writes_lost },
        );
        true
    }

    fn restart(&mut self, node: NodeId, touched: &mut Touched) -> bool {
        let core = &mut self.core;
        let state = &mut core.nodes[node.index()];
        if state.up {
            return false;
        }
        state.up = true;
        state.crashed_by = None;
        core.tracer.emit(core.now, TraceEvent::NodeRestarted { node });
        let hosted = state.processes.clone();
        for process in &hosted {
            let process_state = &mut core.processes[process.index()];
            // A machine that boots starts every service it hosts, including
            // ones a supervisor had stopped.
            process_state.status = ProcessStatus::Running;
            let incarnation = process_state.incarnation;
            let slot = &mut self.slots[process.index()];
            slot.instance = Some((slot.factory)());
            core.queue.push(core.now, Event::Start { process: *process, incarnation });
        }
        touched.processes_restarted = hosted.len() as u32;
        true
    }

    // ----- inspection: plain data out, nothing in -----

    /// Global time now.
    pub fn now(&self) -> SimTime {
        self.core.now
    }

    /// The digest of the trace so far.
    pub fn trace_hash(&self) -> TraceHash {
        self.core.tracer.hash()
    }

    /// What the engine has done so far.
    pub fn stats(&self) -> EngineStats {
        let mut stats = self.core.stats;
        stats.trace_events = self.core.tracer.count();
        stats
    }

    /// Events waiting in the queue (stale ones included).
    pub fn pending_events(&self) -> usize {
        self.core.queue.len()
    }

    /// The next `limit` pending events in firing order (stale ones
    /// included, since they are still in the queue).
    pub fn upcoming_events(&self, limit: usize) -> Vec<PendingView> {
        let mut pending: Vec<_> = self.core.queue.pending().collect();
        pending.sort_by_key(|(time, seq, _)| (*time, *seq));
        pending
            .into_iter()
            .take(limit)
            .map(|(time, _, event)| {
                let (kind, process, detail) = match event {
                    Event::Start { process, .. } => ("start", Some(*process), String::new()),
                    Event::Deliver(envelope, to) => {
                        ("deliver", Some(*to), envelope.message.label().to_string())
                    }
                    Event::Dispatch { process, .. } => ("dispatch", Some(*process), String::new()),
                    Event::Timer { slot, .. } => {
                        let timer = &self.core.timers[*slot as usize];
                        ("timer", Some(timer.process), format!("tag {}", timer.tag))
                    }
                    Event::WorkDone { process, tag, .. } => {
                        ("work_done", Some(*process), format!("tag {tag}"))
                    }
                    Event::Granted { process, resource, .. } => {
                        ("granted", Some(*process), resource.to_string())
                    }
                    Event::Synced { process, tag, .. } => {
                        ("synced", Some(*process), format!("tag {tag}"))
                    }
                    Event::Fault { index } => {
                        ("fault", None, self.core.faults[*index as usize].fault.to_string())
                    }
                    Event::DeferredTimer { process, tag, .. } => {
                        ("timer", Some(*process), format!("tag {tag} (deferred)"))
                    }
                    Event::Resumed { process, .. } => ("resumed", Some(*process), String::new()),
                    Event::ChildFailed { supervisor, child, reason, .. } => {
                        ("child_failed", Some(*supervisor), format!("{child}: {reason}"))
                    }
                };
                PendingView { time, kind, process, detail }
            })
            .collect()
    }

    /// When the next event is due.
    pub fn next_event_time(&self) -> Option<SimTime> {
        self.core.queue.peek_time()
    }

    /// Faults that fired so far, in firing order, with what they touched.
    pub fn fired_faults(&self) -> &[FiredFault] {
        &self.core.fired
    }

    /// The run's named metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.core.nodes.len()
    }

    /// Number of processes.
    pub fn process_count(&self) -> usize {
        self.core.processes.len()
    }

    /// A node's state now.
    pub fn node(&self, id: NodeId) -> NodeView {
        let now = self.core.now;
        let state = &self.core.nodes[id.index()];
        NodeView {
            id,
            name: state.config.name.clone(),
            up: state.up,
            cores: state.config.cores,
            busy_cores: state.busy_cores,
            ready_queue: state.ready.len(),
            clock: state.clock.read(now),
            utilisation: state.busy.mean_at(now) / f64::from(state.config.cores),
            mean_ready_queue: state.waiting.mean_at(now),
            ready_queue_max: state.waiting.max(),
            unsynced_writes: state.storage.unsynced_count(),
            processes: state.processes.clone(),
        }
    }

    /// A node's busy cores and ready queue over time, averaged per interval
    /// (for charts; computed on demand, so a view of the node stays cheap).
    pub fn node_series(&self, id: NodeId) -> NodeSeries {
        let now = self.core.now;
        let state = &self.core.nodes[id.index()];
        let mut busy = state.busy.clone();
        busy.advance(now);
        let mut waiting = state.waiting.clone();
        waiting.advance(now);
        NodeSeries {
            interval: busy.interval(),
            busy_cores: busy.interval_means(),
            ready_queue: waiting.interval_means(),
        }
    }

    /// A node's durable storage (as it would be found after a crash, plus
    /// the unsynced tail).
    pub fn storage(&self, node: NodeId) -> &Storage {
        &self.core.nodes[node.index()].storage
    }

    /// A process's state now.
    pub fn process(&self, id: ProcessId) -> ProcessView {
        let state = &self.core.processes[id.index()];
        ProcessView {
            id,
            name: state.name.clone(),
            node: state.node,
            alive: state.status == ProcessStatus::Running,
            status: state.status,
            incarnation: state.incarnation,
            mailbox_len: state.queued.len(),
        }
    }

    /// A process's own state, if it is alive and of type `P` (for tests and
    /// views; never for behaviour).
    pub fn process_state<P: Process<M>>(&self, id: ProcessId) -> Option<&P> {
        let instance: &dyn Any = self.slots.get(id.index())?.instance.as_deref()?;
        instance.downcast_ref::<P>()
    }

    /// A resource's state now.
    pub fn resource(&self, id: ResourceId) -> ResourceView {
        let now = self.core.now;
        let state = &self.core.resources[id.index()];
        ResourceView {
            id,
            name: state.config.name.clone(),
            node: state.node,
            in_use: state.in_use,
            capacity: state.config.capacity,
            waiting: state.waiters.len(),
            rejected: state.rejected,
            mean_in_use: state.holding.mean_at(now),
            mean_waiting: state.waiting.mean_at(now),
        }
    }

    /// A link's state now.
    pub fn link(&self, from: NodeId, to: NodeId) -> LinkView {
        LinkView {
            from,
            to,
            config: self.core.net.link(from, to).clone(),
            blocked: self.core.net.is_blocked(from, to),
        }
    }
}

impl<M: Message> Core<M> {
    #[inline]
    fn is_current(&self, process: ProcessId, incarnation: u32) -> bool {
        let state = &self.processes[process.index()];
        state.status == ProcessStatus::Running && state.incarnation == incarnation
    }

    /// Lets a running process with a backlog (left while it was suspended
    /// or restarting) take it, through an event so handlers never nest.
    fn schedule_drain(&mut self, process: ProcessId) {
        let state = &self.processes[process.index()];
        if state.status == ProcessStatus::Running && !state.busy && !state.queued.is_empty() {
            let incarnation = state.incarnation;
            self.queue.push(self.now, Event::Dispatch { process, incarnation });
        }
    }

    pub(crate) fn local_time(&self, node: NodeId) -> LocalTime {
        self.nodes[node.index()].clock.read(self.now)
    }

    #[inline]
    pub(crate) fn send(&mut self, from: ProcessId, from_node: NodeId, to: ProcessId, message: M) {
        let message_id = self.next_message_id;
        self.next_message_id += 1;
        self.stats.messages_sent += 1;
        self.tracer.emit(
            self.now,
            TraceEvent::MessageSent {
                message_id,
                from,
                to,
                label: if self.tracer.recording() { message.label() } else { UNRECORDED_LABEL },
                digest: message.digest(),
            },
        );
        let Some(&to_node) = self.process_nodes.get(to.index()) else {
            let envelope = Envelope { from, message_id, message };
            self.drop_message(&envelope, to, DropReason::UnknownProcess, None);
            return;
        };
        match self.net.route(from_node, to_node, &mut self.net_stream) {
            Fate::Delivered { delay, copy_delay, degraded_by } => {
                if let Some(fault) = degraded_by
                    && let Some(position) = self.fired_index[fault as usize]
                {
                    self.fired[position].touched.messages_delayed += 1;
                }
                if let Some(copy_delay) = copy_delay {
                    let copy_id = self.next_message_id;
                    self.next_message_id += 1;
                    self.stats.messages_duplicated += 1;
                    self.tracer
                        .emit(self.now, TraceEvent::MessageDuplicated { message_id, copy_id });
                    self.tracer.copy_message(message_id, copy_id);
                    let copy = Envelope { from, message_id: copy_id, message: message.clone() };
                    self.queue.push(self.now + copy_delay, Event::Deliver(copy, to));
                }
                self.queue.push(
                    self.now + delay,
                    Event::Deliver(Envelope { from, message_id, message }, to),
                );
            }
            Fate::Lost { degraded_by } => {
                let envelope = Envelope { from, message_id, message };
                // A loss on a link a fault made lossy counts as that
                // fault's doing.
                self.drop_message(&envelope, to, DropReason::Loss, degraded_by);
            }
            Fate::Partitioned { fault } => {
                let envelope = Envelope { from, message_id, message };
                self.drop_message(&envelope, to, DropReason::Partition, Some(fault));
            }
        }
    }

    fn drop_message(
        &mut self,
        envelope: &Envelope<M>,
        to: ProcessId,
        reason: DropReason,
        fault: Option<u32>,
    ) {
        self.stats.messages_dropped += 1;
        self.tracer.emit(
            self.now,
            TraceEvent::MessageDropped {
                message_id: envelope.message_id,
                from: envelope.from,
                to,
                label: envelope.message.label(),
                reason,
            },
        );
        self.tracer.forget_message(envelope.message_id);
        if matches!(reason, DropReason::Stopped | DropReason::UnknownProcess) {
            self.stats.dead_letters += 1;
            if self.dead_letters.len() < DEAD_LETTERS_KEPT {
                self.dead_letters.push(DeadLetter {
                    time: self.now,
                    message_id: envelope.message_id,
                    from: envelope.from,
                    to,
                    label: envelope.message.label(),
                });
            }
        }
        if let Some(fault) = fault
            && let Some(position) = self.fired_index[fault as usize]
        {
            self.fired[position].touched.messages_dropped += 1;
        }
    }

    pub(crate) fn trace(&mut self, event: TraceEvent) {
        self.tracer.emit(self.now, event);
    }

    pub(crate) fn record(&mut self, process: ProcessId, label: &'static str, key: u64) {
        self.tracer.emit(self.now, TraceEvent::DomainEvent { process, label, key });
    }

    fn schedule_key(&mut self) -> u64 {
        let key = self.next_schedule_key;
        self.next_schedule_key += 1;
        key
    }

    pub(crate) fn set_timer(
        &mut self,
        process: ProcessId,
        node: NodeId,
        after: SimDuration,
        tag: u64,
    ) -> TimerId {
        let clock = &self.nodes[node.index()].clock;
        let deadline = clock.read(self.now).plus(after);
        let fire_at = clock.when_reads(deadline, self.now);
        let schedule_key = self.schedule_key();
        let incarnation = self.processes[process.index()].incarnation;
        let slot = match self.free_timers.pop() {
            Some(slot) => {
                let timer = &mut self.timers[slot as usize];
                timer.generation = timer.generation.wrapping_add(1);
                timer.process = process;
                timer.incarnation = incarnation;
                timer.deadline = deadline;
                timer.tag = tag;
                timer.schedule_key = schedule_key;
                timer.active = true;
                slot
            }
            None => {
                self.timers.push(TimerSlot {
                    process,
                    incarnation,
                    deadline,
                    tag,
                    generation: 0,
                    schedule_key,
                    queued: 0,
                    active: true,
                });
                (self.timers.len() - 1) as u32
            }
        };
        self.timers[slot as usize].queued =
            self.queue.push_timer(fire_at, Event::Timer { slot, schedule_key });
        TimerId { slot, generation: self.timers[slot as usize].generation }
    }

    pub(crate) fn cancel_timer(&mut self, timer: TimerId) -> bool {
        match self.timers.get(timer.slot as usize) {
            Some(slot) if slot.active && slot.generation == timer.generation => {
                // A cancelled timer leaves the queue at once: a customer's
                // timeout is cancelled by almost every answer, and thousands
                // of dead timers would otherwise deepen the heap every
                // other event goes through.
                let removed = self.queue.remove(slot.queued);
                debug_assert!(
                    matches!(removed, Some(Event::Timer { slot: s, .. }) if s == timer.slot),
                    "an active timer's queue slot holds its event"
                );
                self.free_timer(timer.slot);
                true
            }
            _ => false,
        }
    }

    fn free_timer(&mut self, slot: u32) {
        let timer = &mut self.timers[slot as usize];
        timer.active = false;
        self.free_timers.push(slot);
    }

    /// Steps a node's clock and moves its pending timers; returns how many
    /// timers moved.
    fn step_clock(&mut self, node: NodeId, delta_ns: i64) -> u32 {
        let now = self.now;
        self.nodes[node.index()].clock.step(now, delta_ns);
        self.tracer.emit(now, TraceEvent::ClockStepped { node, delta_ns });
        let mut moved = 0;
        for slot in 0..self.timers.len() {
            let timer = &self.timers[slot];
            if !timer.active || self.processes[timer.process.index()].node != node {
                continue;
            }
            let fire_at = self.nodes[node.index()].clock.when_reads(timer.deadline, now);
            let schedule_key = self.schedule_key();
            self.timers[slot].schedule_key = schedule_key;
            // The old event stays queued and is skipped when it pops (its
            // key is no longer current); cancelling takes out the new one.
            self.timers[slot].queued =
                self.queue.push_timer(fire_at, Event::Timer { slot: slot as u32, schedule_key });
            moved += 1;
        }
        moved
    }

    pub(crate) fn spend_cpu(
        &mut self,
        process: ProcessId,
        node: NodeId,
        duration: SimDuration,
        tag: u64,
    ) {
        let now = self.now;
        let state = &mut self.processes[process.index()];
        state.work_outstanding += 1;
        let incarnation = state.incarnation;
        let node_state = &mut self.nodes[node.index()];
        if node_state.busy_cores < node_state.config.cores {
            node_state.busy_cores += 1;
            node_state.busy.set(now, u64::from(node_state.busy_cores));
            let epoch = node_state.epoch;
            self.queue
                .push(now + duration, Event::WorkDone { node, epoch, process, incarnation, tag });
        } else {
            node_state.ready.push_back(Work { process, incarnation, duration, tag });
            node_state.waiting.set(now, node_state.ready.len() as u64);
        }
    }

    /// Frees the core that finished, and gives it to the next waiting work.
    fn finish_work(&mut self, node: NodeId) {
        let now = self.now;
        let state = &mut self.nodes[node.index()];
        match state.ready.pop_front() {
            Some(work) => {
                state.waiting.set(now, state.ready.len() as u64);
                let epoch = state.epoch;
                self.queue.push(
                    now + work.duration,
                    Event::WorkDone {
                        node,
                        epoch,
                        process: work.process,
                        incarnation: work.incarnation,
                        tag: work.tag,
                    },
                );
            }
            None => {
                state.busy_cores -= 1;
                state.busy.set(now, u64::from(state.busy_cores));
            }
        }
    }

    pub(crate) fn acquire(
        &mut self,
        process: ProcessId,
        node: NodeId,
        resource: ResourceId,
        tag: u64,
    ) -> Acquire {
        let now = self.now;
        let incarnation = self.processes[process.index()].incarnation;
        let state = &mut self.resources[resource.index()];
        assert_eq!(
            state.node, node,
            "{process} on {node} asked for {resource}, which lives on {}",
            state.node
        );
        if state.in_use < state.config.capacity {
            state.in_use += 1;
            state.holding.set(now, u64::from(state.in_use));
            return Acquire::Granted;
        }
        if state.config.queue_max.is_some_and(|max| state.waiters.len() >= max as usize) {
            state.rejected += 1;
            self.tracer.emit(now, TraceEvent::ResourceRejected { process, resource: resource.0 });
            return Acquire::Rejected;
        }
        state.waiters.push_back((process, incarnation, tag));
        state.waiting.set(now, state.waiters.len() as u64);
        Acquire::Queued
    }

    pub(crate) fn release(&mut self, node: NodeId, resource: ResourceId) {
        let now = self.now;
        let state = &mut self.resources[resource.index()];
        assert_eq!(state.node, node, "{resource} released from the wrong node");
        assert!(state.in_use > 0, "{resource} released more often than acquired");
        match state.waiters.pop_front() {
            // The unit passes straight to the next waiter, which learns of
            // it through an event so that handlers never nest.
            Some((process, incarnation, tag)) => {
                state.waiting.set(now, state.waiters.len() as u64);
                self.queue.push(now, Event::Granted { resource, process, incarnation, tag });
            }
            None => {
                state.in_use -= 1;
                state.holding.set(now, u64::from(state.in_use));
            }
        }
    }

    pub(crate) fn sync(&mut self, process: ProcessId, node: NodeId, tag: u64) {
        let incarnation = self.processes[process.index()].incarnation;
        let state = &mut self.nodes[node.index()];
        let mark = state.storage.mark();
        let delay = state.config.fsync.sample(&mut state.fsync_stream);
        let epoch = state.epoch;
        self.queue
            .push(self.now + delay, Event::Synced { node, epoch, process, incarnation, tag, mark });
    }
}
