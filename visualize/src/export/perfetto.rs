//! Chrome Trace Event JSON (the `{"traceEvents": [...]}` object form), which
//! Perfetto UI and `chrome://tracing` open.
//!
//! - One process track per simulated node (`pid` = node id, named by a
//!   `process_name` metadata event) and one thread per simulated process
//!   (`tid` = process id, named by `thread_name`). Messages from outside
//!   the world and global faults sit on an extra track named `outside`.
//! - Perfetto treats thread ids as unique across processes, so the threads
//!   that are not simulated processes (a node's own events, the outside
//!   world) get ids from [`NODE_THREAD_BASE`] up, never a process's id.
//! - Sends and deliveries are complete events (`X`) one nanosecond long,
//!   because a flow arrow binds to a slice: Perfetto to the slice enclosing
//!   the flow event, Chrome's viewer to the slice with the same category,
//!   thread and timestamp. Each message that was both sent and delivered
//!   in the selection gets a flow start (`s`) on its send and a flow end
//!   (`f`, `bp: "e"`) on its delivery, with the message id as flow id and
//!   the same name and category (Perfetto pairs flows by all three).
//! - Timers, CPU work, domain events, building-block reports, failures and
//!   losses are thread-scoped instants; node crashes, restarts and clock
//!   steps are process-scoped instants on the node; partitions, link
//!   faults and duplications are global instants.
//! - `ts` is in microseconds; nanoseconds survive as the fraction.

use super::Summary;
use super::read::{EXTERNAL_PROCESS, Event, Trace};
use super::select::Selection;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The category shared by message slices and their flow events.
const MESSAGE_CATEGORY: &str = "message";
/// How long a send or delivery slice lasts, in microseconds (1 ns).
const SLICE_US: f64 = 0.001;
/// Thread ids at and above this one are a node's own track (`base + node`)
/// or the outside world's; simulated process ids stay far below it.
pub const NODE_THREAD_BASE: u32 = 1 << 30;

/// Writes the selection as Chrome Trace Event JSON.
pub fn write(selection: &Selection<'_>) -> (String, Summary) {
    let trace = selection.trace;
    let arrows = selection.arrows();
    let delivered = arrows.iter().filter(|a| a.dropped.is_none());
    let flow_starts: BTreeSet<u64> = delivered.clone().map(|a| a.sent_seq).collect();
    let flow_ends: BTreeSet<u64> = delivered.map(|a| a.ended_seq).collect();
    let processes = selection.processes();

    let mut out = Tracks::new(trace);
    for &process in &processes {
        out.thread_of(process);
    }

    let mut written = 0usize;
    for record in &selection.records {
        let ts = micros(record.time_ns);
        let before = out.events.count;
        match &record.event {
            Event::NodeAdded { .. } | Event::Unrecognised => {}
            Event::MessageSent { message_id, from, to, label } => {
                let (pid, tid) = out.thread_of(*from);
                out.events.push(json!({
                    "ph": "X", "cat": MESSAGE_CATEGORY, "name": format!("send {label}"),
                    "ts": ts, "dur": SLICE_US, "pid": pid, "tid": tid,
                    "args": {"message_id": message_id, "to": trace.process_name(*to), "seq": record.seq},
                }));
                if flow_starts.contains(&record.seq) {
                    out.events.push(json!({
                        "ph": "s", "cat": MESSAGE_CATEGORY, "name": label, "id": message_id,
                        "ts": ts, "pid": pid, "tid": tid,
                    }));
                }
            }
            Event::MessageDelivered { message_id, from, to, label } => {
                let (pid, tid) = out.thread_of(*to);
                out.events.push(json!({
                    "ph": "X", "cat": MESSAGE_CATEGORY, "name": label,
                    "ts": ts, "dur": SLICE_US, "pid": pid, "tid": tid,
                    "args": {"message_id": message_id, "from": trace.process_name(*from), "seq": record.seq},
                }));
                if flow_ends.contains(&record.seq) {
                    out.events.push(json!({
                        "ph": "f", "bp": "e", "cat": MESSAGE_CATEGORY, "name": label,
                        "id": message_id, "ts": ts, "pid": pid, "tid": tid,
                    }));
                }
            }
            Event::MessageDropped { message_id, from, to, label, reason } => {
                let (pid, tid) = out.thread_of(*to);
                out.events.push(json!({
                    "ph": "i", "s": "t", "cat": "drop", "name": format!("lost {label} ({reason})"),
                    "ts": ts, "pid": pid, "tid": tid,
                    "args": {"message_id": message_id, "from": trace.process_name(*from), "seq": record.seq},
                }));
            }
            Event::NodeCrashed { node, .. }
            | Event::NodeRestarted { node }
            | Event::ClockStepped { node, .. } => {
                let (pid, tid) = out.node_thread(*node);
                let name = match record.event {
                    Event::NodeCrashed { .. } => "node crashed",
                    Event::NodeRestarted { .. } => "node restarted",
                    _ => "clock stepped",
                };
                out.events.push(json!({
                    "ph": "i", "s": "p", "cat": "fault", "name": name, "ts": ts, "pid": pid, "tid": tid,
                    "args": {"what": super::describe(trace, record), "seq": record.seq},
                }));
            }
            Event::MessageDuplicated { .. }
            | Event::PartitionStarted { .. }
            | Event::PartitionHealed { .. }
            | Event::LinkDegraded { .. }
            | Event::LinkRestored { .. } => {
                let (pid, tid) = out.outside_thread();
                out.events.push(json!({
                    "ph": "i", "s": "g", "cat": "fault", "name": super::describe(trace, record),
                    "ts": ts, "pid": pid, "tid": tid, "args": {"seq": record.seq},
                }));
            }
            local => {
                if let Some(process) = local.actor() {
                    let (pid, tid) = out.thread_of(process);
                    let (category, name, mut args) = describe_local(local);
                    args["seq"] = json!(record.seq);
                    out.events.push(json!({
                        "ph": "i", "s": "t", "cat": category, "name": name,
                        "ts": ts, "pid": pid, "tid": tid, "args": args,
                    }));
                }
            }
        }
        if out.events.count > before {
            written += 1;
        }
    }
    let other_data = json!({
        "source": "rlab trace export",
        "selection": super::describe_filter(&selection.filter),
    });
    let text = format!(
        "{{\"traceEvents\":[\n{}\n],\"displayTimeUnit\":\"ns\",\"otherData\":{other_data}}}\n",
        out.events.text
    );
    let messages = flow_starts.len();
    (text, Summary { events: written, processes: processes.len(), messages })
}

/// The trace events, serialised one by one as they are made: a whole
/// run's events held as JSON values would take many times the file's size.
#[derive(Default)]
struct EventList {
    text: String,
    count: usize,
}

impl EventList {
    fn push(&mut self, event: Value) {
        if self.count > 0 {
            self.text.push_str(",\n");
        }
        self.text.push_str(&event.to_string());
        self.count += 1;
    }
}

/// Assigns tracks and names each the first time it is used.
struct Tracks<'t> {
    trace: &'t Trace,
    events: EventList,
    named_pids: BTreeSet<u32>,
    named_tids: BTreeSet<u32>,
    outside_pid: u32,
}

impl<'t> Tracks<'t> {
    fn new(trace: &'t Trace) -> Tracks<'t> {
        Tracks {
            trace,
            events: EventList::default(),
            named_pids: BTreeSet::new(),
            named_tids: BTreeSet::new(),
            outside_pid: trace.nodes.keys().next_back().map_or(0, |last| last + 1),
        }
    }

    /// The (pid, tid) of a simulated process, or of the outside world.
    fn thread_of(&mut self, process: u32) -> (u32, u32) {
        let node = self.trace.processes.get(&process).map(|p| p.node);
        match node {
            Some(node) if process != EXTERNAL_PROCESS => {
                self.name_pid(node);
                self.name_tid(node, process, self.trace.process_name(process));
                (node, process)
            }
            _ => self.outside_thread(),
        }
    }

    /// The (pid, tid) of a node's own events.
    fn node_thread(&mut self, node: u32) -> (u32, u32) {
        self.name_pid(node);
        let tid = NODE_THREAD_BASE + node;
        self.name_tid(node, tid, format!("{} (node)", self.trace.node_name(node)));
        (node, tid)
    }

    /// The (pid, tid) of the outside world and of global events.
    fn outside_thread(&mut self) -> (u32, u32) {
        let pid = self.outside_pid;
        self.name_pid(pid);
        let tid = NODE_THREAD_BASE + pid;
        self.name_tid(pid, tid, "outside".to_string());
        (pid, tid)
    }

    fn name_pid(&mut self, pid: u32) {
        if self.named_pids.insert(pid) {
            let name = if pid == self.outside_pid {
                "outside".to_string()
            } else {
                self.trace.node_name(pid)
            };
            self.events.push(
                json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}),
            );
            self.events.push(
                json!({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}}),
            );
        }
    }

    fn name_tid(&mut self, pid: u32, tid: u32, name: String) {
        if self.named_tids.insert(tid) {
            self.events.push(
                json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}),
            );
        }
    }
}

fn micros(time_ns: u64) -> f64 {
    time_ns as f64 / 1000.0
}

/// Category, name and arguments of an event that happens on one process.
fn describe_local(event: &Event) -> (&'static str, String, Value) {
    match event {
        Event::ProcessSpawned { name, .. } => ("lifecycle", format!("spawned {name}"), json!({})),
        Event::ProcessStarted { incarnation, .. } => {
            ("lifecycle", "started".to_string(), json!({"incarnation": incarnation}))
        }
        Event::TimerFired { tag, .. } => ("timer", "timer".to_string(), json!({"tag": tag})),
        Event::WorkCompleted { tag, .. } => ("work", "work done".to_string(), json!({"tag": tag})),
        Event::ResourceRejected { resource, .. } => {
            ("resource", "resource rejected".to_string(), json!({"resource": resource}))
        }
        Event::ProcessFailed { reason, .. } => ("fault", format!("failed: {reason}"), json!({})),
        Event::ProcessResumed { .. } => ("lifecycle", "resumed".to_string(), json!({})),
        Event::ProcessStopped { .. } => ("fault", "stopped".to_string(), json!({})),
        Event::Component { component, kind, key, value, .. } => {
            ("component", format!("{component} {kind}"), json!({"key": key, "value": value}))
        }
        Event::DomainEvent { label, key, .. } => ("domain", label.clone(), json!({"key": key})),
        _ => ("other", "event".to_string(), json!({})),
    }
}
