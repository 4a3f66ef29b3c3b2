//! A run over simulated time: what the charts of `rlab plot` draw.
//!
//! A [`Timeline`] cuts a run into equal buckets of simulated time (100 ms
//! or more, wide enough that a run has at most [`BUCKETS_MAX`] of them)
//! and holds, per bucket:
//!
//! - what the customers saw: orders placed, answered completed, cancelled
//!   or failed, timed out, and the latency percentiles of the requests
//!   answered in that bucket (computed after the run from
//!   [`Observations::requests`]);
//! - gauges sampled while the run went on: queue lengths, compensations
//!   run, the breaker's state changes and calls, the read model's lag
//!   (see [`GaugeSet`], which each architecture fills in, and
//!   [`Sampler`], which [`crate::harness::drive_sampled`] calls at every
//!   bucket's end);
//! - the scenario's fault windows and the faults that fired.
//!
//! A bucket covers `(start, end]`: an answer at exactly `end` belongs to
//! it. With integer-second arrival windows (every shipped scenario) the
//! arrival window ends on a bucket boundary, so the buckets up to it count
//! exactly what the report's throughput counts.
//!
//! Sampling reads views only (`Sim::node`, `Sim::resource`,
//! `Sim::process`, `Sim::process_state`, `Sim::metrics`), so a run with a
//! timeline has the trace hash it has without one.

use crate::observe::Observations;
use crate::parts::{Answer, RequestOutcome};
use crate::scenario::{Architecture, FaultAction, Scenario};
use serde::{Deserialize, Serialize};
use sim::kit::breaker::BreakerState;
use sim::{LocalTime, Message, NodeId, ProcessId, ResourceId, Sim, SimDuration, SimTime};

/// The most buckets a timeline has: enough detail for a chart a thousand
/// pixels wide, little enough to save with every run.
pub const BUCKETS_MAX: u64 = 600;

/// Bucket widths to choose from, in milliseconds: round numbers that
/// divide whole seconds (up to 1 s) or minutes, so bucket edges fall on
/// the times scenarios are written in.
const BUCKET_WIDTHS_MS: [u64; 12] =
    [100, 200, 250, 500, 1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 300_000];

/// The bucket width for a run lasting `length`: the narrowest of 100 ms,
/// 200 ms, 250 ms, 500 ms, 1 s, 2 s, 5 s, ... 5 min that needs at most
/// [`BUCKETS_MAX`] buckets (or wider still, in whole minutes, for runs of
/// days).
pub fn bucket_width(length: SimDuration) -> SimDuration {
    let length_ns = length.as_nanos().max(1);
    for width_ms in BUCKET_WIDTHS_MS {
        let width_ns = width_ms * 1_000_000;
        if length_ns.div_ceil(width_ns) <= BUCKETS_MAX {
            return SimDuration::from_nanos(width_ns);
        }
    }
    let minute_ns = 60_000_000_000;
    let minutes = length_ns.div_ceil(BUCKETS_MAX * minute_ns);
    SimDuration::from_nanos(minutes * minute_ns)
}

/// The bucket holding time `at`: buckets cover `(start, end]`, and time
/// zero belongs to the first.
fn bucket_of(at: SimTime, width: SimDuration, buckets: usize) -> usize {
    let index = at.as_nanos().saturating_sub(1) / width.as_nanos();
    (index as usize).min(buckets.saturating_sub(1))
}

/// One run of one architecture over simulated time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The scenario's name.
    pub scenario: String,
    /// Which architecture ran.
    pub architecture: Architecture,
    /// The seed.
    pub seed: u64,
    /// The width of every bucket but perhaps the last, in seconds.
    pub bucket_s: f64,
    /// When arrivals stopped (the scenario's duration), in seconds.
    pub arrivals_end_s: f64,
    /// When the run ended (arrivals plus drain), in seconds.
    pub end_s: f64,
    /// What the customers saw, bucket by bucket.
    pub buckets: Vec<Bucket>,
    /// Queue lengths, one value per bucket each.
    pub queues: Vec<QueueSeries>,
    /// The circuit breaker, if the architecture has one and it is enabled.
    pub breaker: Option<BreakerTimeline>,
    /// The read model's lag, if the architecture has one.
    pub read_model: Option<ReadModelTimeline>,
    /// The scenario's faults, as windows (or instants).
    pub fault_windows: Vec<FaultWindow>,
    /// The faults that fired, as the engine reports them.
    pub faults_fired: Vec<FaultMark>,
}

/// One bucket of customer-visible outcomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Where it starts (exclusive), in seconds.
    pub start_s: f64,
    /// Where it ends (inclusive), in seconds.
    pub end_s: f64,
    /// Orders placed in it.
    pub placed: u64,
    /// Orders answered `completed` in it.
    pub completed: u64,
    /// Orders answered `cancelled` in it (a business or a system reason).
    pub cancelled: u64,
    /// Orders answered `failed` in it.
    pub failed: u64,
    /// Orders the customers gave up on in it.
    pub timed_out: u64,
    /// Latency of the requests answered in it, if any were.
    pub latency_ms: Option<Percentiles>,
    /// Compensating actions run in it (as far as sampling saw them).
    pub compensations: u64,
}

impl Bucket {
    /// The bucket's width in seconds.
    pub fn width_s(&self) -> f64 {
        self.end_s - self.start_s
    }

    /// Completed orders per second in it.
    pub fn completed_per_s(&self) -> f64 {
        if self.width_s() > 0.0 { self.completed as f64 / self.width_s() } else { 0.0 }
    }
}

/// Latency percentiles, in milliseconds (nearest rank, as in the report).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// What a queue's values mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Work waiting for a core of a node: exact time average per bucket.
    Cores,
    /// Requests waiting for a pool (threads, connections, sessions): exact
    /// time average per bucket.
    Pool,
    /// Messages or items waiting in a process: sampled at each bucket's
    /// end.
    Mailbox,
}

/// One queue's length over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueSeries {
    /// What is queued where, e.g. `payments cores` or `orders.threads`.
    pub name: String,
    /// How the values were taken.
    pub kind: QueueKind,
    /// One value per bucket.
    pub values: Vec<f64>,
}

/// A circuit breaker's state, for timelines (serialisable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerPhase {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// A few probes go through.
    HalfOpen,
}

impl From<BreakerState> for BreakerPhase {
    fn from(state: BreakerState) -> BreakerPhase {
        match state {
            BreakerState::Closed => BreakerPhase::Closed,
            BreakerState::Open => BreakerPhase::Open,
            BreakerState::HalfOpen => BreakerPhase::HalfOpen,
        }
    }
}

impl BreakerPhase {
    /// The name used in charts and files.
    pub fn name(self) -> &'static str {
        match self {
            BreakerPhase::Closed => "closed",
            BreakerPhase::Open => "open",
            BreakerPhase::HalfOpen => "half-open",
        }
    }
}

/// A change of the breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerTransition {
    /// When, in simulated seconds (converted from the breaker node's
    /// clock; see [`Sampler`]).
    pub at_s: f64,
    /// The state left.
    pub from: BreakerPhase,
    /// The state entered.
    pub to: BreakerPhase,
}

/// The breaker over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BreakerTimeline {
    /// Its changes of state, in order; it starts closed.
    pub transitions: Vec<BreakerTransition>,
    /// Counts per bucket shown with the band (calls made, calls failed
    /// fast), each named.
    pub counts: Vec<CountSeries>,
}

impl BreakerTimeline {
    /// The breaker's state at `at_s`, from its transitions.
    pub fn state_at(&self, at_s: f64) -> BreakerPhase {
        self.transitions
            .iter()
            .take_while(|transition| transition.at_s <= at_s)
            .last()
            .map_or(BreakerPhase::Closed, |transition| transition.to)
    }

    /// The breaker's states as spans `(from_s, to_s, state)` covering
    /// `0..end_s`.
    pub fn spans(&self, end_s: f64) -> Vec<(f64, f64, BreakerPhase)> {
        let mut spans = Vec::new();
        let mut since = 0.0;
        let mut state = BreakerPhase::Closed;
        for transition in &self.transitions {
            if transition.at_s > since {
                spans.push((since, transition.at_s, state));
            }
            since = transition.at_s.max(since);
            state = transition.to;
        }
        if end_s > since {
            spans.push((since, end_s, state));
        }
        spans
    }
}

/// A count per bucket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CountSeries {
    /// What is counted.
    pub name: String,
    /// One value per bucket.
    pub values: Vec<u64>,
}

/// The read model's lag over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadModelTimeline {
    /// Mean lag (the reader's clock minus the event's write time) of the
    /// events applied in each bucket, in milliseconds; `None` where none
    /// was applied.
    pub lag_ms_mean: Vec<Option<f64>>,
    /// The largest lag in the engine's metric interval holding the
    /// bucket's end (1 s), in milliseconds.
    pub lag_ms_max: Vec<Option<f64>>,
    /// Events published but not yet applied, at each bucket's end.
    pub lag_events: Vec<f64>,
}

/// A scenario fault as a span of time (or an instant).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultWindow {
    /// When it starts, in seconds.
    pub start_s: f64,
    /// When it is undone, in seconds, if it is a window.
    pub end_s: Option<f64>,
    /// What it is, in words.
    pub label: String,
}

/// A fault that fired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultMark {
    /// When, in seconds.
    pub at_s: f64,
    /// What, as the engine describes it.
    pub fault: String,
    /// Whether it could act.
    pub applied: bool,
}

/// Describes a scenario fault in a few words, for chart labels.
pub fn fault_label(action: &FaultAction) -> String {
    match action {
        FaultAction::Crash { role } => format!("{role} down"),
        FaultAction::Partition { side_a, side_b } => {
            format!("partition {} | {}", side_a.join(","), side_b.join(","))
        }
        FaultAction::SlowLinks { role, latency } => format!("slow links to {role} ({latency})"),
        FaultAction::ClockStep { role, delta_ns } => {
            let sign = if *delta_ns < 0 { "-" } else { "+" };
            let step = SimDuration::from_nanos(delta_ns.unsigned_abs());
            format!("{role} clock {sign}{step}")
        }
    }
}

/// Builds the timeline of a finished run from what it observed (its
/// requests, faults and sampled gauges).
pub fn build(scenario: &Scenario, observed: &Observations) -> Timeline {
    let gauges = &observed.gauges;
    // The run is driven to the end of its drain even when it goes quiet
    // before (the engine's clock then stops at the last event).
    let end = observed.ended_at.max(SimTime::ZERO + scenario.duration + scenario.drain);
    let width = if gauges.bucket > SimDuration::ZERO {
        gauges.bucket
    } else {
        bucket_width(end - SimTime::ZERO)
    };
    let count = (end.as_nanos().div_ceil(width.as_nanos()).max(1)) as usize;
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|index| {
            let start = index as u64 * width.as_nanos();
            let stop = (start + width.as_nanos()).min(end.as_nanos().max(start + 1));
            Bucket {
                start_s: start as f64 / 1e9,
                end_s: stop as f64 / 1e9,
                placed: 0,
                completed: 0,
                cancelled: 0,
                failed: 0,
                timed_out: 0,
                latency_ms: None,
                compensations: gauges.compensations.get(index).copied().unwrap_or(0),
            }
        })
        .collect();
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); count];
    for request in &observed.requests {
        buckets[bucket_of(request.placed_at, width, count)].placed += 1;
        let Some(ended) = request.ended_at else { continue };
        let index = bucket_of(ended, width, count);
        match request.outcome {
            RequestOutcome::Answered(answer) => {
                latencies[index].push((ended - request.placed_at).as_nanos());
                match answer {
                    Answer::Completed => buckets[index].completed += 1,
                    Answer::Cancelled(_) => buckets[index].cancelled += 1,
                    Answer::Failed => buckets[index].failed += 1,
                }
            }
            RequestOutcome::TimedOut => buckets[index].timed_out += 1,
            RequestOutcome::Pending => {}
        }
    }
    for (bucket, mut sample) in buckets.iter_mut().zip(latencies) {
        bucket.latency_ms = percentiles(&mut sample);
    }
    let fault_windows = scenario
        .faults
        .iter()
        .map(|spec| FaultWindow {
            start_s: spec.at.as_secs_f64(),
            end_s: spec.until.map(|until| until.as_secs_f64()),
            label: fault_label(&spec.action),
        })
        .collect();
    let faults_fired = observed
        .faults_fired
        .iter()
        .map(|fired| FaultMark {
            at_s: fired.at.as_secs_f64(),
            fault: fired.fault.to_string(),
            applied: fired.applied,
        })
        .collect();
    Timeline {
        scenario: scenario.name.clone(),
        architecture: observed.architecture,
        seed: observed.seed,
        bucket_s: width.as_secs_f64(),
        arrivals_end_s: scenario.duration.as_secs_f64(),
        end_s: end.as_secs_f64(),
        buckets,
        queues: gauges.queues.clone(),
        breaker: gauges.breaker.clone(),
        read_model: gauges.read_model.clone(),
        fault_windows,
        faults_fired,
    }
}

/// Nearest-rank percentiles of latencies in nanoseconds, in milliseconds.
fn percentiles(sample: &mut [u64]) -> Option<Percentiles> {
    if sample.is_empty() {
        return None;
    }
    sample.sort_unstable();
    let at = |q: f64| -> f64 {
        let rank = (libm::ceil(q * sample.len() as f64) as usize).clamp(1, sample.len());
        sample[rank - 1] as f64 / 1e6
    };
    Some(Percentiles { p50: at(0.50), p95: at(0.95), p99: at(0.99) })
}

/// Reads one value from the engine's views during a run (`None` while it
/// cannot be read, e.g. its process is down).
pub type Reader<'a, M, T> = Box<dyn Fn(&Sim<M>) -> Option<T> + 'a>;

/// Where a queue's length is read.
pub enum QueueProbe<'a, M: Message> {
    /// Work waiting for a core of `node`.
    Cores {
        /// The node.
        node: NodeId,
        /// The series' name.
        name: String,
    },
    /// Requests waiting for a pool.
    Pool {
        /// The pool.
        resource: ResourceId,
        /// The series' name.
        name: String,
    },
    /// Messages in a process's mailbox.
    Mailbox {
        /// The process.
        process: ProcessId,
        /// The series' name.
        name: String,
    },
    /// Anything else an architecture can read from a view, sampled.
    Read {
        /// The series' name.
        name: String,
        /// Reads the length now (`None` while it cannot be read, e.g. the
        /// process is down: counted as zero).
        read: Reader<'a, M, f64>,
    },
}

impl<M: Message> QueueProbe<'_, M> {
    fn name(&self) -> &str {
        match self {
            QueueProbe::Cores { name, .. }
            | QueueProbe::Pool { name, .. }
            | QueueProbe::Mailbox { name, .. }
            | QueueProbe::Read { name, .. } => name,
        }
    }

    fn kind(&self) -> QueueKind {
        match self {
            QueueProbe::Cores { .. } => QueueKind::Cores,
            QueueProbe::Pool { .. } => QueueKind::Pool,
            QueueProbe::Mailbox { .. } | QueueProbe::Read { .. } => QueueKind::Mailbox,
        }
    }
}

/// A breaker as read from its process at one instant.
#[derive(Clone, Debug)]
pub struct BreakerReading {
    /// The incarnation of the process holding it (a restart starts a fresh,
    /// closed breaker and a fresh list of changes).
    pub incarnation: u32,
    /// Its state now.
    pub state: BreakerState,
    /// Its changes since the process started, stamped with the holding
    /// node's clock.
    pub changes: Vec<(LocalTime, BreakerState, BreakerState)>,
    /// The holding node's clock now.
    pub clock_now: LocalTime,
}

/// What an architecture lets the sampler read during a run. Every reader
/// takes the engine by shared reference: sampling cannot change the run.
pub struct GaugeSet<'a, M: Message> {
    /// Queues to chart.
    pub queues: Vec<QueueProbe<'a, M>>,
    /// Compensating actions run so far (`None` while they cannot be read).
    pub compensations: Option<Reader<'a, M, u64>>,
    /// The circuit breaker, if there is one.
    pub breaker: Option<Reader<'a, M, BreakerReading>>,
    /// Engine counters drawn with the breaker band, as (name shown,
    /// counter).
    pub breaker_counters: Vec<(String, String)>,
    /// The read model: the engine series of its lag in milliseconds, and a
    /// reader of the events not yet applied.
    pub read_model: Option<ReadModelProbe<'a, M>>,
}

/// Where a read model's lag is read.
pub struct ReadModelProbe<'a, M: Message> {
    /// The engine series of lag samples, in milliseconds.
    pub lag_ms_series: String,
    /// Events published but not applied now (`None` while unreadable).
    pub lag_events: Reader<'a, M, f64>,
}

impl<M: Message> GaugeSet<'_, M> {
    /// Nothing to sample.
    pub fn none() -> Self {
        GaugeSet {
            queues: Vec::new(),
            compensations: None,
            breaker: None,
            breaker_counters: Vec::new(),
            read_model: None,
        }
    }
}

/// What sampling gathered, per bucket, ready for [`build`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GaugeRecord {
    /// The bucket width (zero if nothing was sampled).
    pub bucket: SimDuration,
    /// Queue lengths.
    pub queues: Vec<QueueSeries>,
    /// Compensations per bucket (empty if not sampled).
    pub compensations: Vec<u64>,
    /// The breaker.
    pub breaker: Option<BreakerTimeline>,
    /// The read model.
    pub read_model: Option<ReadModelTimeline>,
}

/// Takes the gauges of a [`GaugeSet`] at every bucket's end and turns them
/// into a [`GaugeRecord`].
pub struct Sampler {
    record: GaugeRecord,
    /// When the previous sample was taken.
    previous: SimTime,
    /// Time integrals (value × ns) of the time-averaged queues at the
    /// previous sample.
    integrals: Vec<f64>,
    compensations_seen: u64,
    counters_seen: Vec<u64>,
    breaker_incarnation: Option<u32>,
    breaker_changes_seen: usize,
    breaker_state: BreakerPhase,
    lag_seen: (u64, f64),
}

impl Sampler {
    /// A sampler for `gauges` with buckets of `bucket`.
    pub fn new<M: Message>(gauges: &GaugeSet<'_, M>, bucket: SimDuration) -> Sampler {
        Sampler {
            record: GaugeRecord {
                bucket,
                queues: gauges
                    .queues
                    .iter()
                    .map(|probe| QueueSeries {
                        name: probe.name().to_string(),
                        kind: probe.kind(),
                        values: Vec::new(),
                    })
                    .collect(),
                compensations: Vec::new(),
                breaker: gauges.breaker.as_ref().map(|_| BreakerTimeline {
                    transitions: Vec::new(),
                    counts: gauges
                        .breaker_counters
                        .iter()
                        .map(|(name, _)| CountSeries { name: name.clone(), values: Vec::new() })
                        .collect(),
                }),
                read_model: gauges.read_model.as_ref().map(|_| ReadModelTimeline {
                    lag_ms_mean: Vec::new(),
                    lag_ms_max: Vec::new(),
                    lag_events: Vec::new(),
                }),
            },
            previous: SimTime::ZERO,
            integrals: vec![0.0; gauges.queues.len()],
            compensations_seen: 0,
            counters_seen: vec![0; gauges.breaker_counters.len()],
            breaker_incarnation: None,
            breaker_changes_seen: 0,
            breaker_state: BreakerPhase::Closed,
            lag_seen: (0, 0.0),
        }
    }

    /// Takes one sample: the bucket ending now.
    pub fn sample<M: Message>(&mut self, sim: &Sim<M>, gauges: &GaugeSet<'_, M>) {
        let now = sim.now();
        let elapsed_ns = (now.as_nanos() - self.previous.as_nanos()) as f64;
        let now_ns = now.as_nanos() as f64;
        for (index, probe) in gauges.queues.iter().enumerate() {
            let value = match probe {
                QueueProbe::Cores { node, .. } => {
                    let integral = sim.node(*node).mean_ready_queue * now_ns;
                    self.time_average(index, integral, elapsed_ns)
                }
                QueueProbe::Pool { resource, .. } => {
                    let integral = sim.resource(*resource).mean_waiting * now_ns;
                    self.time_average(index, integral, elapsed_ns)
                }
                QueueProbe::Mailbox { process, .. } => sim.process(*process).mailbox_len as f64,
                QueueProbe::Read { read, .. } => read(sim).unwrap_or(0.0),
            };
            self.record.queues[index].values.push(value);
        }
        if let Some(compensations) = &gauges.compensations {
            let total = compensations(sim).unwrap_or(self.compensations_seen);
            let total = total.max(self.compensations_seen);
            self.record.compensations.push(total - self.compensations_seen);
            self.compensations_seen = total;
        }
        if let (Some(read), Some(breaker)) = (&gauges.breaker, self.record.breaker.as_mut()) {
            for (index, (_, counter)) in gauges.breaker_counters.iter().enumerate() {
                let total = sim.metrics().counter(counter).max(self.counters_seen[index]);
                breaker.counts[index].values.push(total - self.counters_seen[index]);
                self.counters_seen[index] = total;
            }
            if let Some(reading) = read(sim) {
                if self.breaker_incarnation != Some(reading.incarnation) {
                    self.breaker_incarnation = Some(reading.incarnation);
                    self.breaker_changes_seen = 0;
                }
                for (at, from, to) in reading.changes.iter().skip(self.breaker_changes_seen) {
                    // The change is stamped with the node's clock; its
                    // global time is as far before now as its stamp is
                    // before the clock's reading now (exact unless the
                    // clock drifted or stepped in between), and within
                    // this bucket in any case.
                    let before_ns = reading.clock_now.0.saturating_sub(at.0).max(0) as u64;
                    let at_ns =
                        now.as_nanos().saturating_sub(before_ns).max(self.previous.as_nanos());
                    breaker.transitions.push(BreakerTransition {
                        at_s: at_ns as f64 / 1e9,
                        from: (*from).into(),
                        to: (*to).into(),
                    });
                    self.breaker_state = (*to).into();
                }
                self.breaker_changes_seen = reading.changes.len();
                // A restart brings a fresh breaker: show the jump.
                let state: BreakerPhase = reading.state.into();
                if state != self.breaker_state {
                    breaker.transitions.push(BreakerTransition {
                        at_s: now.as_secs_f64(),
                        from: self.breaker_state,
                        to: state,
                    });
                    self.breaker_state = state;
                }
            }
        }
        if let (Some(probe), Some(model)) = (&gauges.read_model, self.record.read_model.as_mut()) {
            let series = sim.metrics().series(&probe.lag_ms_series);
            let (count, sum) = series.map_or((0, 0.0), |series| {
                series
                    .buckets
                    .iter()
                    .fold((0, 0.0), |(count, sum), bucket| (count + bucket.count, sum + bucket.sum))
            });
            let (count_seen, sum_seen) = self.lag_seen;
            model
                .lag_ms_mean
                .push((count > count_seen).then(|| (sum - sum_seen) / (count - count_seen) as f64));
            self.lag_seen = (count, sum);
            let interval_ns = sim.metrics().interval().as_nanos();
            let metric_bucket = (now.as_nanos().saturating_sub(1) / interval_ns) as usize;
            model.lag_ms_max.push(
                series
                    .and_then(|series| series.buckets.get(metric_bucket))
                    .filter(|bucket| bucket.count > 0)
                    .map(|bucket| bucket.max),
            );
            model.lag_events.push((probe.lag_events)(sim).unwrap_or(0.0));
        }
        self.previous = now;
    }

    fn time_average(&mut self, index: usize, integral: f64, elapsed_ns: f64) -> f64 {
        let previous = std::mem::replace(&mut self.integrals[index], integral);
        if elapsed_ns > 0.0 { ((integral - previous) / elapsed_ns).max(0.0) } else { 0.0 }
    }

    /// What was gathered.
    pub fn finish(self) -> GaugeRecord {
        self.record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_keep_runs_under_the_bucket_bound() {
        // Goal: any run length gets a listed width (or whole minutes) and at
        // most BUCKETS_MAX buckets, the narrowest such width.
        for seconds in [1, 10, 60, 61, 70, 120, 600, 3_600, 86_400, 10 * 86_400] {
            let length = SimDuration::from_secs(seconds);
            let width = bucket_width(length);
            assert!(length.as_nanos().div_ceil(width.as_nanos()) <= BUCKETS_MAX, "{seconds} s");
            let narrower = BUCKET_WIDTHS_MS
                .iter()
                .map(|ms| ms * 1_000_000)
                .filter(|ns| *ns < width.as_nanos())
                .all(|ns| length.as_nanos().div_ceil(ns) > BUCKETS_MAX);
            assert!(narrower, "{seconds} s: a narrower width would do");
        }
        assert_eq!(bucket_width(SimDuration::from_secs(60)), SimDuration::from_millis(100));
        assert_eq!(bucket_width(SimDuration::from_secs(70)), SimDuration::from_millis(200));
    }

    #[test]
    fn a_bucket_holds_its_end_and_not_its_start() {
        // Goal: buckets are (start, end]; time zero is in the first and
        // times past the end are in the last.
        let width = SimDuration::from_millis(100);
        let at = |ms: u64| bucket_of(SimTime::ZERO + SimDuration::from_millis(ms), width, 10);
        assert_eq!(at(0), 0);
        assert_eq!(at(100), 0);
        assert_eq!(bucket_of(SimTime::from_nanos(100_000_001), width, 10), 1);
        assert_eq!(at(1_000), 9);
        assert_eq!(at(5_000), 9);
    }

    #[test]
    fn breaker_spans_cover_the_run_in_order() {
        // Goal: spans start closed, follow the transitions, and tile 0..end.
        let change =
            |at_s: f64, from: BreakerPhase, to: BreakerPhase| BreakerTransition { at_s, from, to };
        let breaker = BreakerTimeline {
            transitions: vec![
                change(2.0, BreakerPhase::Closed, BreakerPhase::Open),
                change(5.0, BreakerPhase::Open, BreakerPhase::HalfOpen),
                change(5.5, BreakerPhase::HalfOpen, BreakerPhase::Closed),
            ],
            counts: Vec::new(),
        };
        let spans = breaker.spans(10.0);
        assert_eq!(
            spans,
            vec![
                (0.0, 2.0, BreakerPhase::Closed),
                (2.0, 5.0, BreakerPhase::Open),
                (5.0, 5.5, BreakerPhase::HalfOpen),
                (5.5, 10.0, BreakerPhase::Closed),
            ]
        );
        assert_eq!(breaker.state_at(1.9), BreakerPhase::Closed);
        assert_eq!(breaker.state_at(2.0), BreakerPhase::Open);
        assert_eq!(breaker.state_at(5.2), BreakerPhase::HalfOpen);
    }
}
