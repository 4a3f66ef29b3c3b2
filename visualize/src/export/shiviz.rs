//! The ShiViz log format: a parsing regular expression on the first line,
//! an empty multiple-executions delimiter on the second, then two lines per
//! event: the event's description, then `HOST {"host": count, ...}`. This
//! is the order of ShiViz's default expression, so a log pasted into its
//! input page parses without touching the expression box.
//!
//! Hosts are processes, named by their process names (made unique with
//! `#id` when two share a name). Only events with an acting process carry
//! a vector clock, so only they are written. ShiViz wants each host's own
//! entry to start at 1 and grow by one per event; a window or an order's
//! history leaves gaps, so clocks are renumbered: a process's count in any
//! clock becomes the number of its kept events at or before that count.
//! The renumbering is monotone, so it keeps exactly the happened-before
//! relation between the kept events.

use super::Summary;
use super::read::VectorClock;
use super::select::Selection;
use std::collections::BTreeMap;

/// The regular expression written on the first line (ShiViz's default):
/// the event, then on the next line a host without spaces and a JSON clock.
pub const PARSING_REGEX: &str = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})";

/// Writes the selection in ShiViz's log format.
pub fn write(selection: &Selection<'_>) -> (String, Summary) {
    let trace = selection.trace;
    let clocked: Vec<_> = selection
        .records
        .iter()
        .filter_map(|record| Some((*record, record.event.actor()?, record.vector_clock.as_ref()?)))
        .collect();

    // Each process's own counts at its kept events, ascending.
    let mut own_counts: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (_, actor, clock) in &clocked {
        own_counts.entry(*actor).or_default().push(clock.get(actor).copied().unwrap_or(0));
    }
    let hosts = host_names(selection, own_counts.keys().copied());

    let mut text = String::new();
    text.push_str(PARSING_REGEX);
    text.push('\n');
    // No delimiter: the log holds one execution.
    text.push('\n');
    for (record, actor, clock) in &clocked {
        let renumbered = renumber(clock, &own_counts, &hosts);
        text.push_str(&one_line(&super::describe(trace, record)));
        text.push('\n');
        text.push_str(&hosts[actor]);
        text.push(' ');
        text.push_str(&serde_json::to_string(&renumbered).expect("a clock serialises"));
        text.push('\n');
    }
    let messages = selection.arrows().iter().filter(|a| a.dropped.is_none()).count();
    (text, Summary { events: clocked.len(), processes: hosts.len(), messages })
}

/// A clock over the kept events only, keyed by host name.
fn renumber(
    clock: &VectorClock,
    own_counts: &BTreeMap<u32, Vec<u64>>,
    hosts: &BTreeMap<u32, String>,
) -> BTreeMap<String, u64> {
    clock
        .iter()
        .filter_map(|(process, &count)| {
            let counts = own_counts.get(process)?;
            let rank = counts.partition_point(|&own| own <= count) as u64;
            (rank > 0).then(|| (hosts[process].clone(), rank))
        })
        .collect()
}

/// Unique host names without spaces, one per process.
fn host_names(
    selection: &Selection<'_>,
    processes: impl Iterator<Item = u32>,
) -> BTreeMap<u32, String> {
    let processes: Vec<u32> = processes.collect();
    let base = |process: u32| -> String {
        selection
            .trace
            .process_name(process)
            .chars()
            .map(|c| if c.is_whitespace() { '_' } else { c })
            .collect()
    };
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for &process in &processes {
        *uses.entry(base(process)).or_default() += 1;
    }
    processes
        .iter()
        .map(|&process| {
            let name = base(process);
            let name = if uses[&name] > 1 { format!("{name}#{process}") } else { name };
            (process, name)
        })
        .collect()
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}
