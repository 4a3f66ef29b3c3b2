//! Trace exports: the JSON-lines trace written by `rlab run --trace`,
//! converted for tools built to explore distributed executions.
//!
//! [`read::read_trace`] parses the trace into typed records,
//! [`select::select`] keeps a time window or one order's causal history,
//! and three writers turn the selection into a file:
//!
//! - [`perfetto`]: Chrome Trace Event JSON for Perfetto UI and
//!   `chrome://tracing`, nodes as process tracks, processes as threads,
//!   messages as flow arrows;
//! - [`shiviz`]: the ShiViz log format (host, vector clock, event);
//! - [`lamport_svg`]: a space-time (Lamport) diagram as SVG.
//!
//! # What a selection keeps
//!
//! **Window** (`--from`, `--to`): the events whose simulated time `t`
//! satisfies `from <= t <= to`; either bound may be left open. Names of
//! nodes and processes always come from the whole trace.
//!
//! **Order** (`--order ID`): the order's *anchors* are its domain events
//! (`DomainEvent` with `key == ID`) and its saga's reports (`Component` of
//! component `saga` with `key == ID`; the order system keys sagas by order
//! id, while other building blocks key their reports by calls, shards or
//! offsets, so their keys are not order ids). Its *reach* `R` is the join
//! (entry-wise maximum) of the anchors' vector clocks. Its *start* `s` is
//! the first anchor, or, when the first anchor's process had just handled
//! a delivery, that message's send (its delivery if it came from outside
//! the world), so the request that started the order is shown; `q` is the
//! process of `s`. An event `e` of process `p` with vector clock `V(e)` is
//! in the order's history when
//!
//! 1. `V(e)[q] >= V(s)[q]`: `e` is `s` or happened after it;
//! 2. `V(e)[p] <= R[p]`: `e` is an anchor or happened before one;
//! 3. `e` is not an anchor of a *different* order (a process serving many
//!    orders handles them in some sequence, so other orders' business facts
//!    can lie between two of this order's; they are noise in its story,
//!    while the messages and work that link them stay).
//!
//! Events with no acting process are kept as follows: a send from outside
//! the world when its delivery is kept, a loss when its send is kept, and
//! faults (crashes, restarts, partitions, link and clock faults) when they
//! fall between the times of `s` and of the last anchor. With both a window and an order,
//! an event must satisfy both. An order id with no anchor is an error.
//!
//! **Messages** are drawn only when both their send and their delivery
//! (or loss) are kept; a duplicate copy counts as sent with its original.

pub mod lamport_svg;
pub mod perfetto;
pub mod read;
pub mod select;
pub mod shiviz;

use read::{Event, Record, Trace};
use select::{Filter, FilterError};

/// The formats a trace can be exported to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Chrome Trace Event JSON for Perfetto UI.
    Perfetto,
    /// The ShiViz log format.
    Shiviz,
    /// A space-time diagram as SVG.
    LamportSvg,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Trace events written.
    pub events: usize,
    /// Processes shown.
    pub processes: usize,
    /// Messages shown as arrows from send to delivery.
    pub messages: usize,
}

/// Exports `trace`, filtered by `filter`, in `format`: the file's text and
/// what it holds.
pub fn export(
    trace: &Trace,
    filter: Filter,
    format: Format,
) -> Result<(String, Summary), FilterError> {
    let selection = select::select(trace, filter)?;
    Ok(match format {
        Format::Perfetto => perfetto::write(&selection),
        Format::Shiviz => shiviz::write(&selection),
        Format::LamportSvg => lamport_svg::write(&selection),
    })
}

/// A one-line description of a record, naming processes and nodes.
pub fn describe(trace: &Trace, record: &Record) -> String {
    let process = |id: u32| trace.process_name(id);
    let node = |id: u32| trace.node_name(id);
    match &record.event {
        Event::NodeAdded { name, .. } => format!("node {name} added"),
        Event::ProcessSpawned { name, node: host, .. } => {
            format!("{name} spawned on {}", node(*host))
        }
        Event::ProcessStarted { incarnation, .. } => format!("started (incarnation {incarnation})"),
        Event::MessageSent { message_id, to, label, .. } => {
            format!("send {label} to {} (message {message_id})", process(*to))
        }
        Event::MessageDelivered { message_id, from, label, .. } => {
            format!("receive {label} from {} (message {message_id})", process(*from))
        }
        Event::MessageDropped { message_id, from, to, label, reason } => format!(
            "lost {label} from {} to {} ({reason}, message {message_id})",
            process(*from),
            process(*to)
        ),
        Event::MessageDuplicated { message_id, copy_id } => {
            format!("message {message_id} duplicated as {copy_id}")
        }
        Event::TimerFired { tag, .. } => format!("timer {tag} fired"),
        Event::WorkCompleted { tag, .. } => format!("work {tag} done"),
        Event::NodeCrashed { node: host, processes_stopped, writes_lost } => format!(
            "node {} crashed ({processes_stopped} processes stopped, {writes_lost} writes lost)",
            node(*host)
        ),
        Event::NodeRestarted { node: host } => format!("node {} restarted", node(*host)),
        Event::PartitionStarted { fault, from, to, symmetric } => {
            let names =
                |nodes: &[u32]| nodes.iter().map(|n| node(*n)).collect::<Vec<_>>().join(", ");
            let arrow = if *symmetric { "<->" } else { "->" };
            format!("partition {fault} started: [{}] {arrow} [{}]", names(from), names(to))
        }
        Event::PartitionHealed { fault } => format!("partition {fault} healed"),
        Event::LinkDegraded { from, to } => {
            format!("link {} -> {} degraded", node(*from), node(*to))
        }
        Event::LinkRestored { from, to } => {
            format!("link {} -> {} restored", node(*from), node(*to))
        }
        Event::ClockStepped { node: host, delta_ns } => {
            format!("clock of {} stepped by {delta_ns} ns", node(*host))
        }
        Event::ResourceRejected { resource, .. } => {
            format!("resource {resource} rejected a request")
        }
        Event::ProcessFailed { reason, .. } => format!("failed: {reason}"),
        Event::ProcessResumed { .. } => "resumed".to_string(),
        Event::ProcessStopped { .. } => "stopped".to_string(),
        Event::Component { component, kind, key, value, .. } => {
            format!("{component} {kind} (key {key}, value {value})")
        }
        Event::DomainEvent { label, key, .. } => format!("{label} (order {key})"),
        Event::Unrecognised => "an event this version of rlab does not know".to_string(),
    }
}

/// The filter in words, e.g. `1.5s to 3s, order 42`.
pub fn describe_filter(filter: &Filter) -> String {
    let time = |ns: u64| sim::SimDuration::from_nanos(ns).to_string();
    let mut parts = Vec::new();
    match (filter.from_ns, filter.to_ns) {
        (None, None) => parts.push("whole run".to_string()),
        (Some(from), None) => parts.push(format!("from {}", time(from))),
        (None, Some(to)) => parts.push(format!("until {}", time(to))),
        (Some(from), Some(to)) => parts.push(format!("{} to {}", time(from), time(to))),
    }
    if let Some(order) = filter.order {
        parts.push(format!("causal history of order {order}"));
    }
    parts.join(", ")
}
