//! One run over simulated time: throughput, latency percentiles, queue
//! lengths, breaker state, read-model lag and saga outcomes, with fault
//! windows shaded and labelled.
//!
//! A [`TimelineChart`] draws one [`TimelineKind`] for one or more runs of
//! the same scenario. Several runs (a compare) are drawn as panels stacked
//! one above the other, one per architecture, sharing both axes: the same
//! time range and the same y range, so heights compare at a glance.

use super::canvas::{Chart, ChartError};
use super::style::{
    AXIS_SIZE, BAD, CAPTION_SIZE, CAUTION, FAULT, FONT, GOOD, LABEL_SIZE, NOTE, SERIES, TITLE_SIZE,
};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use scenarios::timeline::{BreakerPhase, Timeline};

/// The charts of a run over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TimelineKind {
    /// Completed orders per second, with failures and timeouts.
    Throughput,
    /// Latency percentiles of answered requests.
    Latency,
    /// Queue lengths.
    Queues,
    /// The circuit breaker's state as a band, with the calls it let
    /// through and failed fast.
    Breaker,
    /// The read model's lag behind the system of record.
    Lag,
    /// Saga outcomes: completed, cancelled, compensations.
    Sagas,
}

impl TimelineKind {
    /// Every kind, in the order `--chart all` writes them.
    pub const ALL: [TimelineKind; 6] = [
        TimelineKind::Throughput,
        TimelineKind::Latency,
        TimelineKind::Queues,
        TimelineKind::Breaker,
        TimelineKind::Lag,
        TimelineKind::Sagas,
    ];

    /// The kind's name, as `--chart` takes it and file names use it.
    pub fn name(self) -> &'static str {
        match self {
            TimelineKind::Throughput => "throughput",
            TimelineKind::Latency => "latency",
            TimelineKind::Queues => "queues",
            TimelineKind::Breaker => "breaker",
            TimelineKind::Lag => "lag",
            TimelineKind::Sagas => "sagas",
        }
    }

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<TimelineKind> {
        TimelineKind::ALL.into_iter().find(|kind| kind.name() == name)
    }

    fn title(self) -> &'static str {
        match self {
            TimelineKind::Throughput => "throughput",
            TimelineKind::Latency => "latency of answered requests",
            TimelineKind::Queues => "queue lengths",
            TimelineKind::Breaker => "circuit breaker",
            TimelineKind::Lag => "read-model lag",
            TimelineKind::Sagas => "saga outcomes",
        }
    }

    fn y_description(self) -> &'static str {
        match self {
            TimelineKind::Throughput => "orders per second",
            TimelineKind::Latency => "latency (ms, log scale)",
            TimelineKind::Queues => "waiting (requests or messages)",
            TimelineKind::Breaker => "calls per second",
            TimelineKind::Lag => "lag (ms)",
            TimelineKind::Sagas => "orders or actions per second",
        }
    }
}

/// The queues drawn at most per panel: the longest ones; the legend says
/// how many more there were.
const QUEUES_SHOWN_MAX: usize = 8;

/// One chart of one or more runs of a scenario over time.
pub struct TimelineChart<'a> {
    kind: TimelineKind,
    timelines: &'a [Timeline],
}

impl<'a> TimelineChart<'a> {
    /// A chart of `kind` over `timelines` (one panel each).
    pub fn new(kind: TimelineKind, timelines: &'a [Timeline]) -> TimelineChart<'a> {
        TimelineChart { kind, timelines }
    }

    /// A size that gives every panel room: 1100 pixels wide, about 330
    /// high per panel.
    pub fn size(&self) -> (u32, u32) {
        let panels = self.timelines.len().max(1) as u32;
        (1100, 70 + 330 * panels)
    }

    fn title(&self) -> String {
        let Some(first) = self.timelines.first() else {
            return self.kind.title().to_string();
        };
        let architectures: Vec<&str> =
            self.timelines.iter().map(|timeline| timeline.architecture.name()).collect();
        format!(
            "{}: {} ({}, seed {})",
            first.scenario,
            self.kind.title(),
            architectures.join(", "),
            first.seed
        )
    }

    /// The y range shared by every panel.
    fn y_range(&self) -> (f64, f64) {
        let mut low = f64::INFINITY;
        let mut high: f64 = 0.0;
        for timeline in self.timelines {
            for value in values(self.kind, timeline) {
                if value.is_finite() {
                    high = high.max(value);
                    if value > 0.0 {
                        low = low.min(value);
                    }
                }
            }
        }
        match self.kind {
            TimelineKind::Latency => {
                let low = if low.is_finite() { (low / 1.5).max(0.1) } else { 1.0 };
                let high = (high * 1.5).max(low * 10.0);
                (low, high)
            }
            // Headroom for the fault labels and the breaker band at the top.
            _ => (0.0, if high > 0.0 { high * 1.25 } else { 1.0 }),
        }
    }
}

impl Chart for TimelineChart<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), ChartError> {
        area.fill(&WHITE)?;
        let (title_area, body) = area.split_vertically(50);
        title_area.draw(&Text::new(
            self.title(),
            (16, 14),
            (FONT, TITLE_SIZE).into_font().color(&BLACK),
        ))?;
        if self.timelines.is_empty() {
            return Ok(());
        }
        let x_end = self.timelines.iter().map(|timeline| timeline.end_s).fold(0.0, f64::max);
        let (y_low, y_high) = self.y_range();
        let panels = body.split_evenly((self.timelines.len(), 1));
        // Every panel reserves as many legend rows as the fullest needs,
        // so the plots have the same height as well as the same ranges.
        let mut rows = 1;
        for (panel, timeline) in panels.iter().zip(self.timelines) {
            let legend = legend_entries(self.kind, timeline);
            rows = rows.max(legend_rows(panel, timeline.architecture.name(), &legend, false)?);
        }
        for (panel, timeline) in panels.iter().zip(self.timelines) {
            let legend = legend_entries(self.kind, timeline);
            legend_rows(panel, timeline.architecture.name(), &legend, true)?;
            let mut builder = ChartBuilder::on(panel);
            builder
                .margin_top(LEGEND_TOP + LEGEND_ROW * rows + 4)
                .margin_left(10)
                .margin_right(24)
                .margin_bottom(6)
                .x_label_area_size(44)
                .y_label_area_size(76);
            if self.kind == TimelineKind::Latency {
                let chart = builder.build_cartesian_2d(0.0..x_end, (y_low..y_high).log_scale())?;
                draw_panel(self.kind, timeline, chart, y_low, y_high)?;
            } else {
                let chart = builder.build_cartesian_2d(0.0..x_end, y_low..y_high)?;
                draw_panel(self.kind, timeline, chart, y_low, y_high)?;
            }
        }
        Ok(())
    }
}

/// Where the legend row starts in a panel, and each row's height, in
/// pixels.
const LEGEND_TOP: u32 = 4;
const LEGEND_ROW: u32 = 20;
/// Where the legend starts from the panel's left edge: over the plot,
/// past the y axis's labels.
const LEGEND_LEFT: i32 = 86;

/// One entry of a panel's legend.
struct LegendEntry {
    label: String,
    mark: Mark,
}

/// How an entry is drawn.
enum Mark {
    /// A filled square (fault windows, breaker states).
    Fill(RGBAColor),
    /// A short thick line (series).
    Line(RGBColor),
    /// A short vertical tick (faults that fired).
    Tick,
    /// Text only.
    None,
}

/// The legend of a panel, in drawing order.
fn legend_entries(kind: TimelineKind, timeline: &Timeline) -> Vec<LegendEntry> {
    let mut entries = Vec::new();
    for window in &timeline.fault_windows {
        let instant = window.end_s.is_none_or(|end| end <= window.start_s);
        let color = if instant { FAULT.mix(0.8) } else { FAULT.mix(0.28) };
        entries.push(LegendEntry {
            label: format!("fault: {}", window.label),
            mark: Mark::Fill(color),
        });
    }
    if timeline.faults_fired.iter().any(|fired| fired.applied) {
        entries.push(LegendEntry { label: "fault fired".to_string(), mark: Mark::Tick });
    }
    if kind == TimelineKind::Breaker && timeline.breaker.is_some() {
        for state in [BreakerPhase::Closed, BreakerPhase::Open, BreakerPhase::HalfOpen] {
            entries.push(LegendEntry {
                label: format!("breaker {}", state.name()),
                mark: Mark::Fill(phase_color(state).to_rgba()),
            });
        }
    }
    for line in lines(kind, timeline) {
        entries.push(LegendEntry { label: line.name, mark: Mark::Line(line.color) });
    }
    if kind == TimelineKind::Queues {
        let hidden = shown_queues(timeline).1;
        if hidden > 0 {
            entries.push(LegendEntry {
                label: format!("({hidden} shorter queues not drawn)"),
                mark: Mark::None,
            });
        }
    }
    entries
}

/// Lays out the panel's caption (its architecture) and legend in rows
/// along its top, wrapping at its width, and draws them if `draw`;
/// returns the number of rows.
fn legend_rows<DB: DrawingBackend>(
    panel: &DrawingArea<DB, Shift>,
    caption: &str,
    entries: &[LegendEntry],
    draw: bool,
) -> Result<u32, ChartError> {
    let (width, _) = panel.dim_in_pixel();
    let right_edge = width as i32 - 24;
    let caption_font = (FONT, CAPTION_SIZE).into_font().color(&BLACK);
    let font = (FONT, LABEL_SIZE).into_font().color(&BLACK);
    let caption_width = panel.estimate_text_size(caption, &caption_font)?.0 as i32;
    if draw {
        panel.draw(&Text::new(
            caption.to_string(),
            (LEGEND_LEFT, LEGEND_TOP as i32),
            caption_font,
        ))?;
    }
    let mut x = LEGEND_LEFT + caption_width + 24;
    let mut row = 0u32;
    for entry in entries {
        let text_width = panel.estimate_text_size(&entry.label, &font)?.0 as i32;
        let mark_width = if matches!(entry.mark, Mark::None) { 0 } else { 22 };
        if x + mark_width + text_width > right_edge && x > LEGEND_LEFT {
            row += 1;
            x = LEGEND_LEFT;
        }
        let y = (LEGEND_TOP + LEGEND_ROW * row) as i32 + 2;
        x += mark_width + text_width + 18;
        if !draw {
            continue;
        }
        let x = x - (mark_width + text_width + 18);
        match entry.mark {
            Mark::Fill(color) => {
                panel.draw(&Rectangle::new([(x, y), (x + 16, y + 12)], color.filled()))?;
            }
            Mark::Line(color) => {
                panel.draw(&PathElement::new(
                    vec![(x, y + 6), (x + 16, y + 6)],
                    color.stroke_width(3),
                ))?;
            }
            Mark::Tick => {
                panel.draw(&Rectangle::new([(x + 7, y), (x + 9, y + 12)], BLACK.filled()))?;
            }
            Mark::None => {}
        }
        panel.draw(&Text::new(entry.label.clone(), (x + mark_width, y), font.clone()))?;
    }
    Ok(row + 1)
}

/// Every value a kind plots for a timeline (for the shared y range).
fn values(kind: TimelineKind, timeline: &Timeline) -> Vec<f64> {
    lines(kind, timeline)
        .into_iter()
        .flat_map(|line| line.points)
        .flatten()
        .map(|(_, value)| value)
        .collect()
}

/// The queues worth drawing (some value above zero), longest first, at
/// most [`QUEUES_SHOWN_MAX`]; and how many others were never empty.
fn shown_queues(timeline: &Timeline) -> (Vec<&scenarios::timeline::QueueSeries>, usize) {
    let peak = |values: &[f64]| values.iter().copied().fold(0.0, f64::max);
    let mut busy: Vec<_> =
        timeline.queues.iter().filter(|queue| peak(&queue.values) > 0.0).collect();
    busy.sort_by(|a, b| peak(&b.values).total_cmp(&peak(&a.values)).then(a.name.cmp(&b.name)));
    let hidden = busy.len().saturating_sub(QUEUES_SHOWN_MAX);
    busy.truncate(QUEUES_SHOWN_MAX);
    (busy, hidden)
}

/// A named line: its points in order, with gaps where a bucket has no
/// value.
struct Line {
    name: String,
    color: RGBColor,
    points: Vec<Option<(f64, f64)>>,
}

/// The lines a kind draws for a timeline, each point at its bucket's
/// middle.
fn lines(kind: TimelineKind, timeline: &Timeline) -> Vec<Line> {
    let buckets = &timeline.buckets;
    let middle = |index: usize| {
        let bucket = &buckets[index];
        (bucket.start_s + bucket.end_s) / 2.0
    };
    // Counts become rates over groups of buckets, about
    // [`RATE_POINTS`] to a chart: a 100 ms bucket holds a handful of
    // orders, and its rate would be mostly noise.
    let group = rate_group(timeline);
    let rate = |name: &str, color: RGBColor, count: &dyn Fn(usize) -> u64| Line {
        name: name.to_string(),
        color,
        points: (0..buckets.len())
            .step_by(group)
            .map(|first| {
                let last = (first + group).min(buckets.len()) - 1;
                let (start, end) = (buckets[first].start_s, buckets[last].end_s);
                let total: u64 = (first..=last).map(count).sum();
                let value = if end > start { total as f64 / (end - start) } else { 0.0 };
                Some(((start + end) / 2.0, value))
            })
            .collect(),
    };
    match kind {
        TimelineKind::Throughput => vec![
            rate("placed/s", SERIES[6], &|index| buckets[index].placed),
            rate("completed/s", GOOD, &|index| buckets[index].completed),
            rate("cancelled/s", CAUTION, &|index| buckets[index].cancelled),
            rate("failed or timed out/s", BAD, &|index| {
                buckets[index].failed + buckets[index].timed_out
            }),
        ],
        TimelineKind::Latency => {
            let percentile =
                |name: &str,
                 color: RGBColor,
                 pick: fn(&scenarios::timeline::Percentiles) -> f64| Line {
                    name: name.to_string(),
                    color,
                    points: (0..buckets.len())
                        .map(|index| {
                            buckets[index].latency_ms.map(|latency| (middle(index), pick(&latency)))
                        })
                        .collect(),
                };
            vec![
                percentile("p50", SERIES[0], |latency| latency.p50),
                percentile("p95", SERIES[4], |latency| latency.p95),
                percentile("p99", SERIES[1], |latency| latency.p99),
            ]
        }
        TimelineKind::Queues => shown_queues(timeline)
            .0
            .into_iter()
            .enumerate()
            .map(|(rank, queue)| Line {
                name: queue.name.clone(),
                color: SERIES[rank % SERIES.len()],
                points: queue
                    .values
                    .iter()
                    .enumerate()
                    .take(buckets.len())
                    .map(|(index, value)| Some((middle(index), *value)))
                    .collect(),
            })
            .collect(),
        TimelineKind::Breaker => timeline
            .breaker
            .iter()
            .flat_map(|breaker| &breaker.counts)
            .enumerate()
            .map(|(rank, series)| {
                let color = [SERIES[0], SERIES[3]][rank % 2];
                let values = &series.values;
                rate(&format!("{}/s", series.name), color, &|index| {
                    values.get(index).copied().unwrap_or(0)
                })
            })
            .collect(),
        TimelineKind::Lag => timeline
            .read_model
            .iter()
            .flat_map(|model| {
                let at = |values: &[Option<f64>]| -> Vec<Option<(f64, f64)>> {
                    values
                        .iter()
                        .enumerate()
                        .take(buckets.len())
                        .map(|(index, value)| value.map(|value| (middle(index), value)))
                        .collect()
                };
                [
                    Line {
                        name: "largest lag in each second".to_string(),
                        color: SERIES[1],
                        points: at(&model.lag_ms_max),
                    },
                    Line {
                        name: "mean lag of events applied".to_string(),
                        color: SERIES[0],
                        points: at(&model.lag_ms_mean),
                    },
                ]
            })
            .collect(),
        TimelineKind::Sagas => vec![
            rate("completed/s", GOOD, &|index| buckets[index].completed),
            rate("cancelled/s", CAUTION, &|index| buckets[index].cancelled),
            rate("compensations/s", SERIES[3], &|index| buckets[index].compensations),
        ],
    }
}

/// About how many points a rate line has.
const RATE_POINTS: f64 = 120.0;

/// How many buckets each point of a rate line covers.
fn rate_group(timeline: &Timeline) -> usize {
    if timeline.bucket_s <= 0.0 {
        return 1;
    }
    ((timeline.end_s / RATE_POINTS / timeline.bucket_s).round() as usize).max(1)
}

/// Why a chart does not apply to a run, if it does not.
fn not_applicable(kind: TimelineKind, timeline: &Timeline) -> Option<String> {
    use scenarios::scenario::Architecture;
    match kind {
        TimelineKind::Breaker if timeline.breaker.is_none() => {
            Some(if timeline.architecture == Architecture::Reactive {
                "the circuit breaker is off in this scenario (reactive.breaker_enabled = false)"
                    .to_string()
            } else {
                "no circuit breaker in this architecture".to_string()
            })
        }
        TimelineKind::Lag if timeline.read_model.is_none() => {
            Some("no read model in this architecture".to_string())
        }
        TimelineKind::Queues if shown_queues(timeline).0.is_empty() => {
            Some("no queue ever formed".to_string())
        }
        _ => None,
    }
}

/// Draws one panel: mesh, fault windows, the breaker band, the lines, the
/// legend and any note.
fn draw_panel<'a, DB, Y>(
    kind: TimelineKind,
    timeline: &Timeline,
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    y_low: f64,
    y_high: f64,
) -> Result<(), ChartError>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let label_font = (FONT, LABEL_SIZE).into_font();
    chart
        .configure_mesh()
        .x_desc("simulated time (s)")
        .y_desc(kind.y_description())
        .axis_desc_style((FONT, AXIS_SIZE))
        .label_style(label_font.clone())
        .x_label_formatter(&|x| short_number(*x))
        .y_label_formatter(&|y| short_number(*y))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()?;

    // Fault windows: shaded spans (a narrow dark bar for an instant fault).
    let x_end = timeline.end_s;
    for window in &timeline.fault_windows {
        let end = window.end_s.unwrap_or(window.start_s).min(x_end);
        let start = window.start_s.min(x_end);
        let (right, style) = if end > start {
            (end, FAULT.mix(0.28).filled())
        } else {
            // An instant (a clock step, a crash never undone): a narrow
            // bar a few pixels wide.
            ((start + x_end / 400.0).min(x_end), FAULT.mix(0.8).filled())
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(start, y_low), (right, y_high)],
            style,
        )))?;
    }

    // The breaker's state as a band along the top of the plot.
    let band_px = 16;
    if kind == TimelineKind::Breaker
        && let Some(breaker) = &timeline.breaker
    {
        let plot = chart.plotting_area();
        let base = plot.get_base_pixel();
        let pixels = plot.strip_coord_spec();
        for (from, to, state) in breaker.spans(x_end) {
            let left = plot.map_coordinate(&(from, y_high)).0 - base.0;
            let right = plot.map_coordinate(&(to, y_high)).0 - base.0;
            pixels.draw(&Rectangle::new(
                [(left, 0), (right, band_px)],
                phase_color(state).filled(),
            ))?;
            if right - left > 40 && state != BreakerPhase::Closed {
                pixels.draw(&Text::new(
                    state.name(),
                    (left + 3, 2),
                    (FONT, LABEL_SIZE).into_font().color(&WHITE),
                ))?;
            }
        }
    }

    // Fault labels just inside the top of the plot, staggered so
    // neighbouring windows do not overwrite each other.
    {
        let plot = chart.plotting_area();
        let base = plot.get_base_pixel();
        let pixels = plot.strip_coord_spec();
        let top = if kind == TimelineKind::Breaker { band_px + 4 } else { 4 };
        for (index, window) in timeline.fault_windows.iter().enumerate() {
            let x = plot.map_coordinate(&(window.start_s.min(x_end), y_high)).0 - base.0;
            pixels.draw(&Text::new(
                window.label.clone(),
                (x + 4, top + 15 * (index as i32 % 3)),
                (FONT, LABEL_SIZE).into_font().color(&NOTE),
            ))?;
        }
    }

    // Faults as the engine fired them (a crash, its restart, each link
    // degraded): short ticks on the time axis.
    {
        let plot = chart.plotting_area();
        let base = plot.get_base_pixel();
        let (_, height) = plot.dim_in_pixel();
        let pixels = plot.strip_coord_spec();
        for fired in timeline.faults_fired.iter().filter(|fired| fired.applied) {
            let x = plot.map_coordinate(&(fired.at_s.min(x_end), y_high)).0 - base.0;
            let bottom = height as i32;
            pixels.draw(&Rectangle::new([(x - 1, bottom - 9), (x + 1, bottom)], BLACK.filled()))?;
        }
    }

    if let Some(note) = not_applicable(kind, timeline) {
        let plot = chart.plotting_area();
        let (width, height) = plot.dim_in_pixel();
        let pixels = plot.strip_coord_spec();
        pixels.draw(&Text::new(
            note,
            (width as i32 / 2, height as i32 / 2),
            (FONT, CAPTION_SIZE).into_font().color(&NOTE).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Center,
                ),
            ),
        ))?;
    }

    for line in lines(kind, timeline) {
        let style = line.color.stroke_width(2);
        for segment in segments(&line.points, y_low) {
            chart.draw_series(LineSeries::new(segment, style))?;
        }
    }
    Ok(())
}

/// A line's points split at its gaps; values at or below the axis's low
/// end (a log axis cannot show zero) count as gaps too.
fn segments(points: &[Option<(f64, f64)>], y_low: f64) -> Vec<Vec<(f64, f64)>> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    for point in points {
        match point {
            Some((x, y)) if y.is_finite() && (y_low <= 0.0 || *y >= y_low) => {
                current.push((*x, *y))
            }
            _ => {
                if !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
            }
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

fn phase_color(state: BreakerPhase) -> RGBColor {
    match state {
        BreakerPhase::Closed => GOOD,
        BreakerPhase::Open => BAD,
        BreakerPhase::HalfOpen => CAUTION,
    }
}

/// A tick label: at most two decimals and no trailing zeros, thousands
/// with a `k` from ten thousand on.
fn short_number(value: f64) -> String {
    if value.abs() >= 10_000.0 {
        return format!("{:.0}k", value / 1000.0);
    }
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_string() } else { text.to_string() }
}
