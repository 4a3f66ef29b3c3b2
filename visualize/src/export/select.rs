//! Choosing what to export: a time window, the causal history of one
//! order, or both, and the messages whose two ends survive the choice.
//! The rules are stated in the [`crate::export`] module documentation.

use super::read::{EXTERNAL_PROCESS, Event, Record, Trace, VectorClock};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What to keep of a trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep events at or after this time (nanoseconds).
    pub from_ns: Option<u64>,
    /// Keep events at or before this time (nanoseconds).
    pub to_ns: Option<u64>,
    /// Keep only the causal history of this order.
    pub order: Option<u64>,
}

/// Why a filter could not be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterError {
    /// No event of the trace is about this order.
    UnknownOrder(u64),
    /// The window ends before it starts.
    EmptyWindow {
        /// Its start, nanoseconds.
        from_ns: u64,
        /// Its end, nanoseconds.
        to_ns: u64,
    },
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterError::UnknownOrder(order) => write!(
                f,
                "--order {order}: no domain event or saga report of the trace is about order {order}"
            ),
            FilterError::EmptyWindow { from_ns, to_ns } => write!(
                f,
                "--to {}: must be after --from {}",
                sim::SimDuration::from_nanos(*to_ns),
                sim::SimDuration::from_nanos(*from_ns)
            ),
        }
    }
}

impl std::error::Error for FilterError {}

/// A message whose send and whose delivery (or loss) were both kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// The message (or duplicate copy) id.
    pub message_id: u64,
    /// The sender ([`EXTERNAL_PROCESS`] if it came from outside).
    pub from: u32,
    /// The addressee.
    pub to: u32,
    /// The message's label.
    pub label: String,
    /// When it was sent (nanoseconds).
    pub sent_ns: u64,
    /// The send's position in the trace.
    pub sent_seq: u64,
    /// When it was delivered or lost (nanoseconds).
    pub ended_ns: u64,
    /// The delivery's or loss's position in the trace.
    pub ended_seq: u64,
    /// `None` if delivered, else the drop reason.
    pub dropped: Option<String>,
}

/// The records kept by a [`Filter`], in trace order.
#[derive(Clone, Debug)]
pub struct Selection<'t> {
    /// The whole trace (for names).
    pub trace: &'t Trace,
    /// The kept records.
    pub records: Vec<&'t Record>,
    /// The filter that chose them.
    pub filter: Filter,
}

impl<'t> Selection<'t> {
    /// The messages both of whose ends were kept, in the order of their
    /// deliveries (or losses). A duplicate copy counts as sent when its
    /// original was.
    pub fn arrows(&self) -> Vec<Arrow> {
        let mut sends: BTreeMap<u64, &Record> = BTreeMap::new();
        let mut arrows = Vec::new();
        for record in &self.records {
            match &record.event {
                Event::MessageSent { message_id, .. } => {
                    sends.insert(*message_id, record);
                }
                Event::MessageDuplicated { message_id, copy_id } => {
                    if let Some(send) = sends.get(message_id).copied() {
                        sends.insert(*copy_id, send);
                    }
                }
                Event::MessageDelivered { message_id, from, to, label } => {
                    if let Some(send) = sends.get(message_id) {
                        arrows.push(arrow(*message_id, *from, *to, label, send, record, None));
                    }
                }
                Event::MessageDropped { message_id, from, to, label, reason } => {
                    if let Some(send) = sends.get(message_id) {
                        arrows.push(arrow(
                            *message_id,
                            *from,
                            *to,
                            label,
                            send,
                            record,
                            Some(reason.clone()),
                        ));
                    }
                }
                _ => {}
            }
        }
        arrows
    }

    /// The processes that act in, or send or receive a kept message of, the
    /// selection, in id order ([`EXTERNAL_PROCESS`] last if present).
    pub fn processes(&self) -> Vec<u32> {
        let mut processes = BTreeSet::new();
        for record in &self.records {
            if let Some(actor) = record.event.actor() {
                processes.insert(actor);
            }
        }
        for arrow in self.arrows() {
            processes.insert(arrow.from);
            processes.insert(arrow.to);
        }
        processes.into_iter().collect()
    }
}

fn arrow(
    message_id: u64,
    from: u32,
    to: u32,
    label: &str,
    send: &Record,
    end: &Record,
    dropped: Option<String>,
) -> Arrow {
    Arrow {
        message_id,
        from,
        to,
        label: label.to_string(),
        sent_ns: send.time_ns,
        sent_seq: send.seq,
        ended_ns: end.time_ns,
        ended_seq: end.seq,
        dropped,
    }
}

/// Applies `filter` to `trace`.
pub fn select<'t>(trace: &'t Trace, filter: Filter) -> Result<Selection<'t>, FilterError> {
    if let (Some(from_ns), Some(to_ns)) = (filter.from_ns, filter.to_ns)
        && to_ns <= from_ns
    {
        return Err(FilterError::EmptyWindow { from_ns, to_ns });
    }
    let in_window = |record: &Record| {
        filter.from_ns.is_none_or(|from| record.time_ns >= from)
            && filter.to_ns.is_none_or(|to| record.time_ns <= to)
    };
    let mut records: Vec<&Record> = trace.records.iter().filter(|r| in_window(r)).collect();
    if let Some(order) = filter.order {
        let history = causal_history(trace, order)?;
        records.retain(|record| history.contains(&record.seq));
    }
    Ok(Selection { trace, records, filter })
}

/// The sequence numbers of the records in the causal history of `order`.
fn causal_history(trace: &Trace, order: u64) -> Result<BTreeSet<u64>, FilterError> {
    let anchors: Vec<&Record> =
        trace.records.iter().filter(|record| record.event.order_key() == Some(order)).collect();
    let (Some(first), Some(last)) = (anchors.first(), anchors.last()) else {
        return Err(FilterError::UnknownOrder(order));
    };

    // Everything that happened before any of the order's events: the join
    // of their vector clocks.
    let mut reach = VectorClock::new();
    for anchor in &anchors {
        for (&process, &count) in anchor.vector_clock.iter().flatten() {
            let entry = reach.entry(process).or_insert(0);
            *entry = (*entry).max(count);
        }
    }

    // The order's history starts at its first anchor, or, when that
    // anchor's process had just handled a delivery, at that message's
    // send (its delivery if it came from outside), so the request that
    // started the order is part of its story.
    let mut start: &Record = first;
    let previous_of_actor =
        trace.records[..position(trace, first.seq)].iter().rev().find(|record| {
            record.event.actor().is_some() && record.event.actor() == first.event.actor()
        });
    if let Some(delivery @ Record { event: Event::MessageDelivered { message_id, .. }, .. }) =
        previous_of_actor
    {
        start = delivery;
        let sent = trace.records[..position(trace, delivery.seq)].iter().rev().find(|record| {
            matches!(record.event, Event::MessageSent { message_id: id, .. } if id == *message_id)
        });
        if let Some(sent) = sent.filter(|sent| sent.vector_clock.is_some()) {
            start = sent;
        }
    }
    // An event happened after the start when it has seen the start's own
    // clock entry.
    let origin = start.event.actor().map(|actor| (actor, own_count(start, actor)));
    let (start_seq, end_seq) = (start.seq, last.seq);
    let (start_ns, end_ns) = (start.time_ns, last.time_ns);

    let mut kept = BTreeSet::new();
    let mut kept_sends = BTreeSet::new();
    for record in trace.records.iter().filter(|r| r.seq >= start_seq && r.seq <= end_seq) {
        let keep = match (record.event.actor(), &record.vector_clock) {
            (Some(actor), Some(clock)) => {
                let own = clock.get(&actor).copied().unwrap_or(0);
                let before_an_anchor = own <= reach.get(&actor).copied().unwrap_or(0);
                let after_the_start = origin.is_none_or(|(process, count)| {
                    clock.get(&process).copied().unwrap_or(0) >= count
                });
                let about_another_order = record.event.order_key().is_some_and(|key| key != order);
                before_an_anchor && after_the_start && !about_another_order
            }
            // A message from outside: kept if its delivery is (see below).
            _ => false,
        };
        if keep {
            kept.insert(record.seq);
            if let Event::MessageSent { message_id, .. } = record.event {
                kept_sends.insert(message_id);
            }
        }
    }
    // Second pass for what has no acting process: sends from outside whose
    // delivery was kept, losses of kept sends, and faults in the lifetime.
    let delivered: BTreeSet<u64> = trace
        .records
        .iter()
        .filter(|record| kept.contains(&record.seq))
        .filter_map(|record| match record.event {
            Event::MessageDelivered { message_id, .. } => Some(message_id),
            _ => None,
        })
        .collect();
    for record in &trace.records {
        let keep = match &record.event {
            Event::MessageSent { message_id, from, .. } if *from == EXTERNAL_PROCESS => {
                delivered.contains(message_id)
            }
            Event::MessageDropped { message_id, .. } => kept_sends.contains(message_id),
            event if event.is_fault() => record.time_ns >= start_ns && record.time_ns <= end_ns,
            _ => false,
        };
        if keep {
            kept.insert(record.seq);
        }
    }
    Ok(kept)
}

/// The index of the record with sequence number `seq` (records are in
/// sequence order, but a hand-made trace may not start at zero).
fn position(trace: &Trace, seq: u64) -> usize {
    trace.records.partition_point(|record| record.seq < seq)
}

/// A record's own entry in its vector clock (zero if it has none).
fn own_count(record: &Record, actor: u32) -> u64 {
    record.vector_clock.as_ref().and_then(|clock| clock.get(&actor).copied()).unwrap_or(0)
}
