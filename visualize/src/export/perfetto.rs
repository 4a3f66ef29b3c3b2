//! Chrome Trace Event JSON (the `{"traceEvents": [...]}` object form), which
//! Perfetto UI and `chrome://tracing` open.
//!
//! - One process track per simulated node (`pid` = node id, named by a
//!   `process_name` metadata event) and one thread per simulated process
//!   (`tid` = process id, named by `thread_name`). Messages from outside
//!   the world sit on an extra track named `outside`.
//! - Sends and deliveries are complete events (`X`) one nanosecond long,
//!   because a flow arrow binds to a slice: Perfetto to the slice enclosing
//!   the flow event, Chrome's viewer to the slice with the same category,
//!   thread and timestamp. Each message that was both sent and delivered
//!   in the selection gets a flow start (`s`) on its send and a flow end
//!   (`f`, `bp: "e"`) on its delivery, with the message id as flow id.
//! - Timers, CPU work, domain events, building-block reports, failures and
//!   losses are thread-scoped instants; node crashes, restarts and clock
//!   steps are process-scoped instants; partitions and link faults are
//!   global instants.
//! - `ts` is in microseconds; nanoseconds survive as the fraction.

use super::Summary;
use super::read::{EXTERNAL_PROCESS, Event};
use super::select::Selection;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// The category shared by message slices and their flow events.
const MESSAGE_CATEGORY: &str = "message";
/// How long a send or delivery slice lasts, in microseconds (1 ns).
const SLICE_US: f64 = 0.001;

/// Writes the selection as Chrome Trace Event JSON.
pub fn write(selection: &Selection<'_>) -> (String, Summary) {
    let trace = selection.trace;
    let arrows = selection.arrows();
    let flow_starts: BTreeSet<u64> =
        arrows.iter().filter(|a| a.dropped.is_none()).map(|a| a.sent_seq).collect();
    let flow_ends: BTreeSet<u64> =
        arrows.iter().filter(|a| a.dropped.is_none()).map(|a| a.ended_seq).collect();
    let outside_pid = trace.nodes.keys().next_back().map_or(0, |last| last + 1);
    let track = |process: u32| -> (u32, u32) {
        if process == EXTERNAL_PROCESS {
            (outside_pid, 0)
        } else {
            (trace.processes.get(&process).map_or(outside_pid, |p| p.node), process)
        }
    };

    let processes = selection.processes();
    let mut events = EventList::default();
    // Name every node that has a kept process, and every kept process.
    let mut named_pids = BTreeSet::new();
    for &process in &processes {
        let (pid, tid) = track(process);
        if named_pids.insert(pid) {
            let name =
                if pid == outside_pid { "outside".to_string() } else { trace.node_name(pid) };
            events.push(
                json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}),
            );
            events.push(json!({"ph": "M", "name": "process_sort_index", "pid": pid, "args": {"sort_index": pid}}));
        }
        events.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": trace.process_name(process)}}));
    }

    let mut written = 0usize;
    for record in &selection.records {
        let ts = micros(record.time_ns);
        let before = events.len();
        match &record.event {
            Event::NodeAdded { .. } => {}
            Event::MessageSent { message_id, from, to, label } => {
                let (pid, tid) = track(*from);
                events.push(json!({"ph": "X", "cat": MESSAGE_CATEGORY, "name": format!("send {label}"), "ts": ts, "dur": SLICE_US, "pid": pid, "tid": tid,
                    "args": {"message_id": message_id, "to": trace.process_name(*to), "seq": record.seq}}));
                if flow_starts.contains(&record.seq) {
                    events.push(json!({"ph": "s", "cat": MESSAGE_CATEGORY, "name": label, "id": message_id, "ts": ts, "pid": pid, "tid": tid}));
                }
            }
            Event::MessageDelivered { message_id, from, to, label } => {
                let (pid, tid) = track(*to);
                events.push(json!({"ph": "X", "cat": MESSAGE_CATEGORY, "name": label, "ts": ts, "dur": SLICE_US, "pid": pid, "tid": tid,
                    "args": {"message_id": message_id, "from": trace.process_name(*from), "seq": record.seq}}));
                if flow_ends.contains(&record.seq) {
                    events.push(json!({"ph": "f", "bp": "e", "cat": MESSAGE_CATEGORY, "name": label, "id": message_id, "ts": ts, "pid": pid, "tid": tid}));
                }
            }
            Event::MessageDropped { message_id, from, to, label, reason } => {
                let (pid, tid) = track(*to);
                events.push(instant_on_thread(pid, tid, ts, "drop", format!("lost {label} ({reason})"),
                    json!({"message_id": message_id, "from": trace.process_name(*from), "seq": record.seq})));
            }
            Event::MessageDuplicated { message_id, copy_id } => {
                events.push(global_instant(
                    outside_pid,
                    ts,
                    "fault",
                    format!("message {message_id} duplicated as {copy_id}"),
                ));
            }
            Event::NodeCrashed { node, processes_stopped, writes_lost } => {
                events.push(json!({"ph": "i", "s": "p", "cat": "fault", "name": "node crashed", "ts": ts, "pid": node, "tid": 0,
                    "args": {"processes_stopped": processes_stopped, "writes_lost": writes_lost}}));
            }
            Event::NodeRestarted { node } => {
                events.push(json!({"ph": "i", "s": "p", "cat": "fault", "name": "node restarted", "ts": ts, "pid": node, "tid": 0}));
            }
            Event::ClockStepped { node, delta_ns } => {
                events.push(json!({"ph": "i", "s": "p", "cat": "fault", "name": format!("clock stepped {delta_ns} ns"), "ts": ts, "pid": node, "tid": 0}));
            }
            Event::PartitionStarted { fault, from, to, symmetric } => {
                let names = |nodes: &[u32]| {
                    nodes.iter().map(|n| trace.node_name(*n)).collect::<Vec<_>>().join(", ")
                };
                let arrow = if *symmetric { "<->" } else { "->" };
                events.push(global_instant(
                    outside_pid,
                    ts,
                    "fault",
                    format!("partition {fault} started: [{}] {arrow} [{}]", names(from), names(to)),
                ));
            }
            Event::PartitionHealed { fault } => {
                events.push(global_instant(
                    outside_pid,
                    ts,
                    "fault",
                    format!("partition {fault} healed"),
                ));
            }
            Event::LinkDegraded { from, to } => {
                events.push(global_instant(
                    outside_pid,
                    ts,
                    "fault",
                    format!("link {} -> {} degraded", trace.node_name(*from), trace.node_name(*to)),
                ));
            }
            Event::LinkRestored { from, to } => {
                events.push(global_instant(
                    outside_pid,
                    ts,
                    "fault",
                    format!("link {} -> {} restored", trace.node_name(*from), trace.node_name(*to)),
                ));
            }
            other => {
                if let Some(process) = other.actor() {
                    let (pid, tid) = track(process);
                    let (category, name, args) = describe_local(other);
                    events.push(instant_on_thread(pid, tid, ts, category, name, args));
                }
            }
        }
        if events.len() > before {
            written += 1;
        }
    }
    let other_data = json!({"source": "rlab trace export", "selection": super::describe_filter(&selection.filter)});
    let text = format!(
        "{{\"traceEvents\":[{}],\"displayTimeUnit\":\"ns\",\"otherData\":{other_data}}}\n",
        events.text
    );
    let messages = arrows.iter().filter(|a| a.dropped.is_none()).count();
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

    fn len(&self) -> usize {
        self.count
    }
}

fn micros(time_ns: u64) -> f64 {
    time_ns as f64 / 1000.0
}

fn instant_on_thread(
    pid: u32,
    tid: u32,
    ts: f64,
    category: &str,
    name: String,
    args: Value,
) -> Value {
    json!({"ph": "i", "s": "t", "cat": category, "name": name, "ts": ts, "pid": pid, "tid": tid, "args": args})
}

fn global_instant(pid: u32, ts: f64, category: &str, name: String) -> Value {
    json!({"ph": "i", "s": "g", "cat": category, "name": name, "ts": ts, "pid": pid, "tid": 0})
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
