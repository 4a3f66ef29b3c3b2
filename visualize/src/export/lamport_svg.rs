//! A space-time (Lamport) diagram as SVG text: one horizontal line per
//! process, simulated time running left to right, an arrow per message from
//! its send to its delivery labelled with the message's label, lost
//! messages ending in a cross, and faults marked.
//!
//! The SVG is written by hand as a string (no plotting backend): the
//! output is small, stable byte for byte, and easy to review in a
//! snapshot. Every mark carries a `<title>`, so a browser shows the full
//! description on hover.

use super::Summary;
use super::read::{EXTERNAL_PROCESS, Event, Record};
use super::select::{Arrow, Selection};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// At most this many marks (arrows, events, faults) are drawn; a busier
/// selection is cut, and the footer says how much was left out.
pub const MAX_MARKS: usize = 2_000;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 190.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 60.0;
const ROW: f64 = 40.0;
const AXIS: f64 = 50.0;
const FOOTER: f64 = 30.0;

/// Writes the selection as a space-time diagram.
pub fn write(selection: &Selection<'_>) -> (String, Summary) {
    let trace = selection.trace;
    let processes = selection.processes();
    let rows: BTreeMap<u32, f64> = processes
        .iter()
        .enumerate()
        .map(|(index, &p)| (p, TOP + ROW * index as f64 + ROW / 2.0))
        .collect();
    let height = TOP + ROW * processes.len().max(1) as f64 + AXIS + FOOTER;
    let marks = marks(selection);
    let total = marks.len();
    let drawn = &marks[..total.min(MAX_MARKS)];
    let (start_ns, mut end_ns) = time_span(selection);
    if drawn.len() < total {
        // Only the first marks are drawn: show the time they cover.
        end_ns = drawn.iter().map(Mark::end_ns).max().unwrap_or(end_ns).max(start_ns);
    }
    let scale = Scale { start_ns, span_ns: (end_ns - start_ns).max(1) };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    svg.push_str(STYLE);
    let messages =
        drawn.iter().filter(|m| matches!(m, Mark::Message(a) if a.dropped.is_none())).count();
    let _ = writeln!(
        svg,
        r#"<text class="title" x="{LEFT}" y="24">Space-time diagram: {}</text>"#,
        escape(&super::describe_filter(&selection.filter))
    );
    let _ = writeln!(
        svg,
        r#"<text class="subtitle" x="{LEFT}" y="42">{} processes, {messages} messages; time runs left to right</text>"#,
        processes.len()
    );

    // Process lines and their labels.
    for (&process, &y) in &rows {
        let name = trace.process_name(process);
        let node = if process == EXTERNAL_PROCESS {
            "outside the world".to_string()
        } else {
            trace.processes.get(&process).map_or_else(String::new, |p| trace.node_name(p.node))
        };
        let _ = writeln!(
            svg,
            r#"<line class="process" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text class="process-label" x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT - 10.0,
            y - 2.0,
            escape(&name)
        );
        let _ = writeln!(
            svg,
            r#"<text class="node-label" x="{:.1}" y="{:.1}">{}</text>"#,
            LEFT - 10.0,
            y + 11.0,
            escape(&node)
        );
    }

    let plot_bottom = TOP + ROW * processes.len().max(1) as f64;
    let mut events_drawn = 0usize;
    for mark in drawn {
        match mark {
            Mark::Message(arrow) => {
                events_drawn += 2;
                draw_arrow(&mut svg, trace, arrow, &rows, &scale);
            }
            Mark::Local(record) => {
                events_drawn += 1;
                let Some(actor) = record.event.actor() else { continue };
                let Some(&y) = rows.get(&actor) else { continue };
                let x = scale.x(record.time_ns);
                let class = match record.event {
                    Event::DomainEvent { .. } => "domain",
                    Event::ProcessFailed { .. } | Event::ProcessStopped { .. } => "failure",
                    _ => "local",
                };
                let radius = if class == "local" { 2.5 } else { 4.0 };
                let _ = write!(
                    svg,
                    r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="{radius}"><title>{}</title></circle>"#,
                    escape(&title(trace, record))
                );
                if let Event::DomainEvent { label, .. } = &record.event {
                    let _ = write!(
                        svg,
                        r#"<text class="domain-label" x="{x:.1}" y="{:.1}">{}</text>"#,
                        y + 16.0,
                        escape(label)
                    );
                }
                svg.push('\n');
            }
            Mark::Fault(record) => {
                events_drawn += 1;
                draw_fault(&mut svg, trace, record, &rows, &scale, plot_bottom);
            }
        }
    }

    draw_axis(&mut svg, &scale, plot_bottom);
    let footer_y = plot_bottom + AXIS + 18.0;
    let footer = if total > drawn.len() {
        format!(
            "{} of {total} marks drawn (up to {}), {} later ones left out: narrow the picture with --from/--to or --order",
            drawn.len(),
            sim::SimDuration::from_nanos(end_ns),
            total - drawn.len()
        )
    } else {
        format!("{total} marks drawn (messages, events, faults)")
    };
    let _ = writeln!(
        svg,
        r#"<text class="footer" x="{LEFT}" y="{footer_y:.1}">{}</text>"#,
        escape(&footer)
    );
    svg.push_str("</svg>\n");
    (svg, Summary { events: events_drawn, processes: processes.len(), messages })
}

const STYLE: &str = r##"<style>
  .title { font-size: 16px; font-weight: bold; }
  .subtitle, .footer { font-size: 12px; fill: #555; }
  .process { stroke: #333; stroke-width: 1.5; }
  .process-label { font-size: 12px; text-anchor: end; }
  .node-label { font-size: 10px; fill: #777; text-anchor: end; }
  .message { stroke: #1f5fa8; stroke-width: 1; }
  .dropped { stroke: #c0392b; stroke-dasharray: 4 3; }
  .cross { stroke: #c0392b; stroke-width: 2; }
  .message-label { font-size: 9px; fill: #1f5fa8; text-anchor: middle; }
  .local { fill: #888; }
  .domain { fill: #2e8b57; }
  .domain-label { font-size: 9px; fill: #2e8b57; text-anchor: middle; }
  .failure { fill: #c0392b; }
  .fault { stroke: #c0392b; stroke-width: 2; }
  .fault-line { stroke: #c0392b; stroke-width: 1; stroke-dasharray: 6 4; }
  .fault-label { font-size: 10px; fill: #c0392b; }
  .restart { stroke: #2e8b57; stroke-width: 2; }
  .restart-label { font-size: 10px; fill: #2e8b57; }
  .axis { stroke: #333; stroke-width: 1; }
  .tick-label { font-size: 10px; text-anchor: middle; }
  .axis-title { font-size: 11px; text-anchor: middle; }
</style>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#1f5fa8"/></marker></defs>
"##;

/// One thing to draw.
enum Mark<'t> {
    Message(Arrow),
    Local(&'t Record),
    Fault(&'t Record),
}

impl Mark<'_> {
    /// When the mark ends: a message at its delivery or loss.
    fn end_ns(&self) -> u64 {
        match self {
            Mark::Message(arrow) => arrow.ended_ns,
            Mark::Local(record) | Mark::Fault(record) => record.time_ns,
        }
    }
}

/// What to draw, in trace order (a message at its send): message arrows,
/// events on one process other than sends and deliveries, and faults.
fn marks<'t>(selection: &Selection<'t>) -> Vec<Mark<'t>> {
    let mut arrows: BTreeMap<u64, Vec<Arrow>> = BTreeMap::new();
    for arrow in selection.arrows() {
        arrows.entry(arrow.sent_seq).or_default().push(arrow);
    }
    let mut marks = Vec::new();
    for record in &selection.records {
        if let Some(from_here) = arrows.remove(&record.seq) {
            marks.extend(from_here.into_iter().map(Mark::Message));
        }
        match &record.event {
            Event::MessageSent { .. }
            | Event::MessageDelivered { .. }
            | Event::MessageDropped { .. }
            | Event::MessageDuplicated { .. }
            | Event::NodeAdded { .. }
            | Event::ProcessSpawned { .. }
            | Event::Unrecognised => {}
            event if event.is_fault() => marks.push(Mark::Fault(record)),
            event if event.actor().is_some() => marks.push(Mark::Local(record)),
            _ => {}
        }
    }
    marks
}

/// The time span drawn: the window's bounds where given, else the kept
/// events' first and last times.
fn time_span(selection: &Selection<'_>) -> (u64, u64) {
    let first = selection.records.first().map_or(0, |r| r.time_ns);
    let last = selection.records.last().map_or(first, |r| r.time_ns);
    let start =
        selection.filter.from_ns.filter(|_| selection.filter.order.is_none()).unwrap_or(first);
    let end = selection.filter.to_ns.filter(|_| selection.filter.order.is_none()).unwrap_or(last);
    (start, end.max(start))
}

struct Scale {
    start_ns: u64,
    span_ns: u64,
}

impl Scale {
    fn x(&self, time_ns: u64) -> f64 {
        let fraction = time_ns.saturating_sub(self.start_ns) as f64 / self.span_ns as f64;
        LEFT + fraction.min(1.0) * (WIDTH - LEFT - RIGHT)
    }
}

fn draw_arrow(
    svg: &mut String,
    trace: &super::read::Trace,
    arrow: &Arrow,
    rows: &BTreeMap<u32, f64>,
    scale: &Scale,
) {
    let (Some(&y1), Some(&y2)) = (rows.get(&arrow.from), rows.get(&arrow.to)) else { return };
    let (x1, x2) = (scale.x(arrow.sent_ns), scale.x(arrow.ended_ns));
    let what = match &arrow.dropped {
        None => format!(
            "{} from {} to {} (message {})",
            arrow.label,
            trace.process_name(arrow.from),
            trace.process_name(arrow.to),
            arrow.message_id
        ),
        Some(reason) => format!(
            "{} from {} to {} lost: {reason} (message {})",
            arrow.label,
            trace.process_name(arrow.from),
            trace.process_name(arrow.to),
            arrow.message_id
        ),
    };
    let title = format!("<title>{}</title>", escape(&what));
    match &arrow.dropped {
        None => {
            let _ = write!(
                svg,
                r#"<line class="message" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" marker-end="url(#arrow)">{title}</line>"#
            );
        }
        Some(_) => {
            let _ = write!(
                svg,
                r#"<line class="message dropped" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}">{title}</line>"#
            );
            let _ = write!(
                svg,
                r#"<path class="cross" d="M {:.1} {:.1} L {:.1} {:.1} M {:.1} {:.1} L {:.1} {:.1}"/>"#,
                x2 - 4.0,
                y2 - 4.0,
                x2 + 4.0,
                y2 + 4.0,
                x2 - 4.0,
                y2 + 4.0,
                x2 + 4.0,
                y2 - 4.0
            );
        }
    }
    // The label sits a third of the way from the sender, nudged above the
    // arrow: messages crossing at their middles keep their labels apart.
    let _ = writeln!(
        svg,
        r#"<text class="message-label" x="{:.1}" y="{:.1}">{}</text>"#,
        x1 + (x2 - x1) / 3.0,
        y1 + (y2 - y1) / 3.0 - 3.0,
        escape(&arrow.label)
    );
}

fn draw_fault(
    svg: &mut String,
    trace: &super::read::Trace,
    record: &Record,
    rows: &BTreeMap<u32, f64>,
    scale: &Scale,
    plot_bottom: f64,
) {
    let x = scale.x(record.time_ns);
    let description = escape(&super::describe(trace, record));
    let on_node = |node: u32| {
        rows.iter()
            .filter(move |(process, _)| {
                trace.processes.get(process).is_some_and(|p| p.node == node)
            })
            .map(|(_, &y)| y)
    };
    match &record.event {
        Event::NodeCrashed { node, .. } => {
            for y in on_node(*node) {
                let _ = write!(
                    svg,
                    r#"<path class="fault" d="M {:.1} {:.1} L {:.1} {:.1} M {:.1} {:.1} L {:.1} {:.1}"><title>{description}</title></path>"#,
                    x - 6.0,
                    y - 6.0,
                    x + 6.0,
                    y + 6.0,
                    x - 6.0,
                    y + 6.0,
                    x + 6.0,
                    y - 6.0
                );
                let _ = write!(
                    svg,
                    r#"<text class="fault-label" x="{:.1}" y="{:.1}">crash</text>"#,
                    x + 7.0,
                    y - 7.0
                );
            }
            svg.push('\n');
        }
        Event::NodeRestarted { node } => {
            for y in on_node(*node) {
                let _ = write!(
                    svg,
                    r#"<line class="restart" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}"><title>{description}</title></line>"#,
                    y - 8.0,
                    y + 8.0
                );
                let _ = write!(
                    svg,
                    r#"<text class="restart-label" x="{:.1}" y="{:.1}">restart</text>"#,
                    x + 4.0,
                    y - 9.0
                );
            }
            svg.push('\n');
        }
        _ => {
            // Partitions, link and clock faults touch the whole picture: a
            // dashed line across every process, labelled at the top.
            let _ = writeln!(
                svg,
                r#"<line class="fault-line" x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{plot_bottom:.1}"><title>{description}</title></line><text class="fault-label" x="{:.1}" y="{:.1}">{description}</text>"#,
                TOP - 4.0,
                x + 3.0,
                TOP - 6.0
            );
        }
    }
}

fn draw_axis(svg: &mut String, scale: &Scale, plot_bottom: f64) {
    let y = plot_bottom + 8.0;
    let _ = writeln!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}"/>"#,
        WIDTH - RIGHT
    );
    let end_ns = scale.start_ns + scale.span_ns;
    let (unit, unit_ns) = unit_for(end_ns.max(scale.span_ns));
    let step = nice_step(scale.span_ns);
    let mut tick = scale.start_ns.div_ceil(step) * step;
    while tick <= end_ns {
        let x = scale.x(tick);
        let _ = writeln!(
            svg,
            r#"<line class="axis" x1="{x:.1}" y1="{y:.1}" x2="{x:.1}" y2="{:.1}"/><text class="tick-label" x="{x:.1}" y="{:.1}">{}</text>"#,
            y + 5.0,
            y + 17.0,
            trim_number(tick as f64 / unit_ns)
        );
        tick += step;
    }
    let _ = writeln!(
        svg,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}">simulated time ({unit})</text>"#,
        (LEFT + WIDTH - RIGHT) / 2.0,
        y + 33.0
    );
}

/// The unit the axis is labelled in, chosen by the largest time shown.
fn unit_for(largest_ns: u64) -> (&'static str, f64) {
    if largest_ns >= 1_000_000_000 {
        ("s", 1e9)
    } else if largest_ns >= 1_000_000 {
        ("ms", 1e6)
    } else if largest_ns >= 1_000 {
        ("us", 1e3)
    } else {
        ("ns", 1.0)
    }
}

/// A tick step of 1, 2 or 5 times a power of ten giving 4 to 10 ticks.
fn nice_step(span_ns: u64) -> u64 {
    let mut power = 1u64;
    loop {
        for factor in [1, 2, 5] {
            let step = factor * power;
            if span_ns / step <= 10 {
                return step.max(1);
            }
        }
        power = power.saturating_mul(10);
    }
}

fn trim_number(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn title(trace: &super::read::Trace, record: &Record) -> String {
    format!(
        "{} at {} on {}",
        super::describe(trace, record),
        sim::SimDuration::from_nanos(record.time_ns),
        record.event.actor().map_or_else(String::new, |p| trace.process_name(p))
    )
}

/// Escapes text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}
