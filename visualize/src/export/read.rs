//! Reading the JSON-lines trace that `rlab run --trace` writes into typed,
//! owned records.
//!
//! The engine's own [`sim::trace::TraceEvent`] borrows its labels for the
//! life of the program, so it cannot be read back from a file; [`Event`]
//! mirrors it with owned strings. Fields this module does not use (a
//! message's digest, for instance) are skipped, and a kind of event added to
//! the engine later reads as [`Event::Unrecognised`] rather than failing.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::BufRead;

/// The id the engine gives a message posted from outside the world (see
/// `sim::ids::EXTERNAL`).
pub const EXTERNAL_PROCESS: u32 = sim::ids::EXTERNAL.0;

/// A vector clock as the trace stores it: process id to count, absent
/// meaning zero.
pub type VectorClock = BTreeMap<u32, u64>;

/// One line of the trace.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Record {
    /// Position of the event in the whole trace, from zero.
    pub seq: u64,
    /// Simulated time in nanoseconds.
    #[serde(rename = "time")]
    pub time_ns: u64,
    /// The acting process's Lamport clock after the event, if one acted.
    pub lamport: Option<u64>,
    /// The acting process's vector clock after the event, if one acted.
    pub vector_clock: Option<VectorClock>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// What happened: the engine's trace vocabulary with owned strings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "event")]
#[allow(missing_docs)] // the fields mean what they mean in `sim::trace::TraceEvent`
pub enum Event {
    /// A node was added to the world.
    NodeAdded { node: u32, name: String },
    /// A process was created on a node.
    ProcessSpawned { process: u32, node: u32, name: String },
    /// A process (re)started.
    ProcessStarted { process: u32, incarnation: u32 },
    /// A message left its sender.
    MessageSent { message_id: u64, from: u32, to: u32, label: String },
    /// A message reached its addressee's handler.
    MessageDelivered { message_id: u64, from: u32, to: u32, label: String },
    /// A message was lost; `reason` is the engine's drop reason in snake case.
    MessageDropped { message_id: u64, from: u32, to: u32, label: String, reason: String },
    /// The network made a second copy of a message.
    MessageDuplicated { message_id: u64, copy_id: u64 },
    /// A timer fired.
    TimerFired { process: u32, tag: u64 },
    /// A piece of CPU work finished.
    WorkCompleted { process: u32, tag: u64 },
    /// A node crashed.
    NodeCrashed { node: u32, processes_stopped: u32, writes_lost: u32 },
    /// A crashed node came back.
    NodeRestarted { node: u32 },
    /// A partition started.
    PartitionStarted { fault: u32, from: Vec<u32>, to: Vec<u32>, symmetric: bool },
    /// A partition ended.
    PartitionHealed { fault: u32 },
    /// A fault changed a link's behaviour.
    LinkDegraded { from: u32, to: u32 },
    /// A degraded link got its configured behaviour back.
    LinkRestored { from: u32, to: u32 },
    /// A node's clock jumped.
    ClockStepped { node: u32, delta_ns: i64 },
    /// A resource rejected a request.
    ResourceRejected { process: u32, resource: u32 },
    /// A process failed and was suspended.
    ProcessFailed { process: u32, reason: String },
    /// A suspended process was resumed.
    ProcessResumed { process: u32 },
    /// A process was stopped for good.
    ProcessStopped { process: u32 },
    /// A building block reported something.
    Component { process: u32, component: String, kind: String, key: u64, value: i64 },
    /// A process recorded a fact of the modelled business.
    DomainEvent { process: u32, label: String, key: u64 },
    /// A kind of event this version does not know.
    #[serde(other)]
    Unrecognised,
}

impl Event {
    /// The process whose local history this event belongs to: the sender
    /// of a send (unless it came from outside), the receiver of a delivery.
    /// Mirrors `sim::trace::TraceEvent::actor`.
    pub fn actor(&self) -> Option<u32> {
        match self {
            Event::ProcessSpawned { process, .. }
            | Event::ProcessStarted { process, .. }
            | Event::TimerFired { process, .. }
            | Event::WorkCompleted { process, .. }
            | Event::ResourceRejected { process, .. }
            | Event::DomainEvent { process, .. }
            | Event::ProcessFailed { process, .. }
            | Event::ProcessResumed { process }
            | Event::ProcessStopped { process }
            | Event::Component { process, .. } => Some(*process),
            Event::MessageSent { from, .. } => (*from != EXTERNAL_PROCESS).then_some(*from),
            Event::MessageDelivered { to, .. } => Some(*to),
            _ => None,
        }
    }

    /// Whether this is a fault or its undoing: something to mark on a
    /// diagram rather than part of a process's work.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            Event::NodeCrashed { .. }
                | Event::NodeRestarted { .. }
                | Event::PartitionStarted { .. }
                | Event::PartitionHealed { .. }
                | Event::LinkDegraded { .. }
                | Event::LinkRestored { .. }
                | Event::ClockStepped { .. }
        )
    }

    /// The order this event is about, if it is one of an order's own
    /// events: a domain event (its key is the order id), or a saga's
    /// report (the order system's sagas are keyed by order id). Other
    /// building blocks key their reports by calls, shards or offsets, so
    /// their keys say nothing about orders.
    pub fn order_key(&self) -> Option<u64> {
        match self {
            Event::DomainEvent { key, .. } => Some(*key),
            Event::Component { component, key, .. } if component == "saga" => Some(*key),
            _ => None,
        }
    }
}

/// A process as the trace introduced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The node hosting it.
    pub node: u32,
    /// Its name.
    pub name: String,
}

/// A whole trace, with the names of its nodes and processes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Trace {
    /// Every record, in trace order.
    pub records: Vec<Record>,
    /// Node names by id.
    pub nodes: BTreeMap<u32, String>,
    /// Processes by id.
    pub processes: BTreeMap<u32, ProcessInfo>,
}

impl Trace {
    /// Builds a trace from records already in memory (tests, other tools).
    pub fn from_records(records: Vec<Record>) -> Trace {
        let mut trace = Trace::default();
        for record in records {
            trace.push(record);
        }
        trace
    }

    fn push(&mut self, record: Record) {
        match &record.event {
            Event::NodeAdded { node, name } => {
                self.nodes.insert(*node, name.clone());
            }
            Event::ProcessSpawned { process, node, name } => {
                self.processes.insert(*process, ProcessInfo { node: *node, name: name.clone() });
            }
            _ => {}
        }
        self.records.push(record);
    }

    /// A process's name, or `p<id>` if the trace never introduced it.
    pub fn process_name(&self, process: u32) -> String {
        if process == EXTERNAL_PROCESS {
            return "outside".to_string();
        }
        self.processes.get(&process).map_or_else(|| format!("p{process}"), |p| p.name.clone())
    }

    /// A node's name, or `n<id>` if the trace never introduced it.
    pub fn node_name(&self, node: u32) -> String {
        self.nodes.get(&node).cloned().unwrap_or_else(|| format!("n{node}"))
    }
}

/// A line of the trace that could not be read.
#[derive(Debug)]
pub struct ReadError {
    /// The line number, from 1.
    pub line: usize,
    /// What was wrong with it.
    pub message: String,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ReadError {}

/// Reads a JSON-lines trace. Blank lines are skipped; the first line that
/// is not a trace record stops the reading with its line number.
pub fn read_trace(input: impl BufRead) -> Result<Trace, ReadError> {
    let mut trace = Trace::default();
    for (index, line) in input.lines().enumerate() {
        let line_number = index + 1;
        let line = line.map_err(|error| ReadError {
            line: line_number,
            message: format!("cannot read: {error}"),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(&line).map_err(|error| {
            // serde_json ends its message with the position within the
            // line's JSON text; only the column is news here.
            let text = error.to_string();
            let reason = text.rfind(" at line ").map_or(text.as_str(), |at| &text[..at]);
            ReadError {
                line: line_number,
                message: format!(
                    "column {}: not a trace record as `rlab run --trace` writes them: {reason}",
                    error.column()
                ),
            }
        })?;
        trace.push(record);
    }
    Ok(trace)
}
