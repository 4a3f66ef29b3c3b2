//! A CQRS read model fed from an event stream: a [`Projection`] process
//! reads a broker topic as a consumer group, applies each event to a
//! [`ReadModel`], and reports how far behind the write side it is.
//!
//! This is the query side of CQRS in Reactive Microsystems (ch. 4 on event
//! sourcing and CQRS, ch. 6 on the read side of a microsystem): the write
//! side records events and moves on, and one or more read models are
//! *derived* from the event stream, each shaped for its queries. The price
//! is eventual consistency: a read model lags the events that change it.
//! The projection makes that lag visible and finite:
//! - Every event costs [`ProjectionConfig::event_cost`] of CPU on the
//!   projection's node ([`Ctx::spend_cpu`]), so its capacity is finite:
//!   at 500 µs per event on one core it applies at most 2,000 events a
//!   second, and a backlog drains at capacity minus the write rate.
//! - After each event it samples `projection.lag_events` (the broker's high
//!   watermark minus the applied offset, summed over partitions) and
//!   `projection.lag_ms` (its clock minus the event's write time at the
//!   broker). Both are clamped at zero, since skewed clocks could otherwise
//!   make the time lag negative.
//!
//! Crash and resume: the model and its offsets are volatile, so every
//! [`ProjectionConfig::snapshot_every`] events (and whenever it catches up)
//! the projection writes a snapshot of the model with its offsets to its
//! node's storage, and only once that is durable commits the offsets to
//! the broker. After a crash it loads the last snapshot and reads on from
//! its offsets; events the broker redelivers below them are skipped, so
//! at-least-once delivery still applies each event exactly once.
//!
//! Rebuild: [`ProjectionMsg::Rebuild`] clears the model, resets every offset
//! to the start and replays the topic (as far as the broker retains it);
//! for a deterministic `apply` the result equals the live model.
//!
//! A projection should be the only member of its consumer group (a model
//! per group); to scale reads, run several projections in groups of their
//! own.
//!
//! Trace events (component [`Component::Projection`]):
//!
//! | kind | key | value |
//! |---|---|---|
//! | `applied` | partition ([`partition_trace_key`]) | applied offset after a batch |
//! | `snapshot_written` | 0 | events applied in total |
//! | `resumed` | 0 | events applied in total, from the snapshot found at start |
//! | `rebuild_started` | 0 | events applied in total before the reset |
//! | `rebuilt` | 0 | events applied in total once caught up again |
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sim::kit::Carry;
//! use sim::kit::broker::{Broker, BrokerConfig, BrokerMsg, SessionConfig, TopicConfig};
//! use sim::kit::projection::{Position, Projection, ProjectionConfig, ProjectionMsg, ReadModel};
//! use sim::{Message, NodeConfig, Seed, Sim, SimConfig, SimTime};
//!
//! /// Orders placed per customer.
//! #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
//! struct OrdersPerCustomer(std::collections::BTreeMap<u64, u64>);
//! impl ReadModel for OrdersPerCustomer {
//!     type Event = u64; // the customer who placed an order
//!     type Query = u64;
//!     type Answer = u64;
//!     fn apply(&mut self, _position: Position, customer: &u64) {
//!         *self.0.entry(*customer).or_default() += 1;
//!     }
//!     fn answer(&self, customer: &u64) -> u64 {
//!         self.0.get(customer).copied().unwrap_or(0)
//!     }
//! }
//!
//! #[derive(Clone, Debug)]
//! enum Msg { Broker(BrokerMsg<u64>), Projection(ProjectionMsg<u64, u64>) }
//! impl Message for Msg {
//!     fn label(&self) -> &'static str {
//!         match self { Msg::Broker(m) => m.label(), Msg::Projection(m) => m.label() }
//!     }
//! }
//! impl Carry<BrokerMsg<u64>> for Msg {
//!     fn wrap(inner: BrokerMsg<u64>) -> Self { Msg::Broker(inner) }
//!     fn unwrap(self) -> Result<BrokerMsg<u64>, Self> {
//!         match self { Msg::Broker(m) => Ok(m), other => Err(other) }
//!     }
//! }
//! impl Carry<ProjectionMsg<u64, u64>> for Msg {
//!     fn wrap(inner: ProjectionMsg<u64, u64>) -> Self { Msg::Projection(inner) }
//!     fn unwrap(self) -> Result<ProjectionMsg<u64, u64>, Self> {
//!         match self { Msg::Projection(m) => Ok(m), other => Err(other) }
//!     }
//! }
//!
//! let mut sim: Sim<Msg> = Sim::new(SimConfig::new(Seed(1)));
//! let kafka = sim.add_node(NodeConfig::new("kafka"));
//! let broker = Broker::<u64>::new(BrokerConfig::new(vec![TopicConfig::new("orders", 2)])).unwrap();
//! let broker_id = sim.spawn(kafka, "broker", move || broker.clone());
//! let config = ProjectionConfig::new("orders-per-customer", "orders", SessionConfig::default());
//! let projection = Projection::<OrdersPerCustomer>::new(config, broker_id).unwrap();
//! let reads = sim.add_node(NodeConfig::new("reads"));
//! let projection_id = sim.spawn(reads, "projection", move || projection.clone());
//! for (request, customer) in [7, 8, 7].into_iter().enumerate() {
//!     let publish = BrokerMsg::Publish {
//!         request: request as u64, topic: "orders".into(), key: customer, payload: customer,
//!     };
//!     sim.post(SimTime::from_nanos(1_000_000), broker_id, Msg::Broker(publish));
//! }
//! sim.run_until(SimTime::from_nanos(500_000_000));
//! let state = sim.process_state::<Projection<OrdersPerCustomer>>(projection_id).unwrap();
//! assert_eq!(state.model().answer(&7), 2);
//! assert_eq!(state.progress().lag_events(), 0);
//! ```

use crate::clock::LocalTime;
use crate::dense::DenseMap;
use crate::ids::{ProcessId, TimerId};
use crate::kit::broker::{
    BrokerMsg, Consumer, ConsumerConfig, ConsumerEvent, Payload, Record, SessionConfig,
    partition_trace_key,
};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Process};
use crate::time::SimDuration;
use crate::trace::Component;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, VecDeque};

/// Where an event sits in the stream.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// The partition.
    pub partition: u32,
    /// The offset within it.
    pub offset: u64,
}

/// A read model: state derived from events by folding them in order. It
/// must be serialisable, because the projection snapshots it to storage so
/// that a restart does not have to replay the whole stream.
pub trait ReadModel: Clone + Default + Serialize + DeserializeOwned + 'static {
    /// The events it is built from.
    type Event: Payload;
    /// What it can be asked.
    type Query: Clone + 'static;
    /// What it answers.
    type Answer: Clone + 'static;
    /// Folds one event in. Called once per event, in offset order within a
    /// partition.
    fn apply(&mut self, position: Position, event: &Self::Event);
    /// Answers a query from the current state.
    fn answer(&self, query: &Self::Query) -> Self::Answer;
}

/// The projection's protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum ProjectionMsg<Q, A> {
    /// Clear the model and replay the stream from the start.
    Rebuild,
    /// Ask the read model.
    Query {
        /// Chosen by the asker, echoed in the answer.
        request: u64,
        /// The question.
        query: Q,
    },
    /// The answer, with how far the model had got (the next offset to
    /// apply per partition), so the asker can tell a stale read.
    Answered {
        /// The asker's request.
        request: u64,
        /// The answer.
        answer: A,
        /// Per partition, the next offset the model will apply.
        applied: Vec<Position>,
    },
}

impl<Q, A> ProjectionMsg<Q, A> {
    /// A short name, for a world's [`crate::Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            ProjectionMsg::Rebuild => "Rebuild",
            ProjectionMsg::Query { .. } => "Query",
            ProjectionMsg::Answered { .. } => "Answered",
        }
    }

    /// A stable digest of the message's numbers, for a world's
    /// [`crate::Message::digest`].
    pub fn digest(&self) -> u64 {
        match self {
            ProjectionMsg::Rebuild => 1,
            ProjectionMsg::Query { request, .. } => 2 ^ request.rotate_left(8),
            ProjectionMsg::Answered { request, applied, .. } => {
                applied.iter().fold(3 ^ request.rotate_left(8), |hash, position| {
                    hash.rotate_left(5) ^ position.offset
                })
            }
        }
    }
}

/// How a projection is set up. Build one with [`ProjectionConfig::new`]
/// and adjust fields; [`Projection::new`] validates it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectionConfig {
    /// Prefix of its snapshot log in node storage.
    pub name: String,
    /// Its consumer group (its own: one projection per group).
    pub group: String,
    /// The topic it reads.
    pub topic: String,
    /// How it reads.
    pub consumer: ConsumerConfig,
    /// CPU time to apply one event; zero makes capacity unlimited.
    pub event_cost: SimDuration,
    /// Events applied between snapshots at most; at least 1.
    pub snapshot_every: u64,
}

impl ProjectionConfig {
    /// A projection named after its group, reading `topic` in batches of
    /// 500, applying an event in 500 µs (2,000 events a second per core:
    /// the projection capacity of lesson 10 in shared/LESSONS.md), and
    /// snapshotting every 500 events.
    pub fn new(group: impl Into<String>, topic: impl Into<String>, session: SessionConfig) -> Self {
        let group = group.into();
        let mut consumer = ConsumerConfig::new(session);
        consumer.max_batch = 500;
        ProjectionConfig {
            name: group.clone(),
            group,
            topic: topic.into(),
            consumer,
            event_cost: SimDuration::from_micros(500),
            snapshot_every: 500,
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("projection.name", "\"\"", "a non-empty name"));
        }
        if self.snapshot_every == 0 {
            return Err(ConfigError::new("projection.snapshot_every", 0, "at least 1"));
        }
        self.consumer.validate_as("projection.consumer")
    }
}

/// How far a projection has got, per partition: the next offset to apply
/// and the head of the stream as last seen at the broker. Pure data, so
/// the lag arithmetic can be tested alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    // Partitions are numbered from 0: tables, not trees (both are read
    // for every event applied).
    applied: DenseMap<u32, u64>,
    head: DenseMap<u32, u64>,
    /// [`Progress::lag_events`], kept up to date as heads and offsets move
    /// rather than summed over the partitions for every event applied.
    lag: u64,
}

impl Progress {
    /// The next offset to apply in `partition`.
    pub fn applied(&self, partition: u32) -> u64 {
        self.applied.get(&partition).copied().unwrap_or(0)
    }

    /// The head of `partition` as last seen (never below what was applied).
    pub fn head(&self, partition: u32) -> u64 {
        self.head.get(&partition).copied().unwrap_or(0).max(self.applied(partition))
    }

    /// The next offset to apply, per partition.
    pub fn positions(&self) -> Vec<Position> {
        self.applied
            .iter()
            .map(|(partition, offset)| Position { partition: *partition, offset: *offset })
            .collect()
    }

    /// Events applied in total (the sum of the next offsets).
    pub fn total_applied(&self) -> u64 {
        self.applied.values().sum()
    }

    /// Notes the broker's high watermark of a partition.
    pub fn observe_head(&mut self, partition: u32, high_watermark: u64) {
        let before = self.lag_of(partition);
        let head = self.head.get_or_insert_with(partition, || 0);
        *head = (*head).max(high_watermark);
        self.lag = self.lag - before + self.lag_of(partition);
    }

    /// Whether the event at `position` has not been applied yet.
    pub fn is_new(&self, position: Position) -> bool {
        position.offset >= self.applied(position.partition)
    }

    /// Notes that the event at `position` was applied.
    pub fn advance(&mut self, position: Position) {
        let before = self.lag_of(position.partition);
        self.applied.insert(position.partition, position.offset + 1);
        self.lag = self.lag - before + self.lag_of(position.partition);
    }

    /// Starts every partition again from offset 0 (heads are kept).
    pub fn reset(&mut self) {
        for applied in self.applied.values_mut() {
            *applied = 0;
        }
        self.lag = self.head.keys().map(|partition| self.lag_of(*partition)).sum();
    }

    /// Events written but not applied yet: head minus applied, summed over
    /// partitions; never negative.
    pub fn lag_events(&self) -> u64 {
        self.lag
    }

    /// One partition's share of the lag: its head (if seen) minus applied.
    fn lag_of(&self, partition: u32) -> u64 {
        self.head.get(&partition).map_or(0, |head| head.saturating_sub(self.applied(partition)))
    }
}

/// How long ago, by the reader's clock `now`, an event written at
/// `write_time` (by the broker's clock) was written; zero if the clocks
/// disagree so much that it looks like the future.
pub fn lag_time(now: LocalTime, write_time: LocalTime) -> SimDuration {
    SimDuration::from_nanos(
        u64::try_from(now.as_nanos().saturating_sub(write_time.as_nanos())).unwrap_or(0),
    )
}

/// The projection process. Build it with [`Projection::new`] and spawn
/// clones: `sim.spawn(node, "projection", move || projection.clone())`.
#[derive(Clone, Debug)]
pub struct Projection<R: ReadModel> {
    config: ProjectionConfig,
    snapshots_log: String,
    consumer: Consumer<R::Event>,
    model: R,
    progress: Progress,
    /// Delivered events waiting for CPU, in delivery order.
    backlog: VecDeque<(u32, Record<R::Event>)>,
    /// How many of the backlog's events belong to each partition; a
    /// partition fetches again once its count is back to zero, so the
    /// backlog never holds more than one batch per partition (plus, after
    /// a seek, the rest of an older one).
    queued: DenseMap<u32, usize>,
    /// The tag of the CPU work in progress; a rebuild orphans it.
    working: Option<u64>,
    next_work: u64,
    applied_since_snapshot: u64,
    /// The snapshot being synced: its tag and the offsets it holds.
    snapshot_in_flight: Option<(u64, Vec<Position>)>,
    snapshot_wanted: bool,
    next_snapshot: u64,
    rebuilding: bool,
    /// Partitions read to their head since the last rebuild started.
    caught_up: BTreeSet<u32>,
}

impl<R: ReadModel> Projection<R> {
    /// A projection reading from `broker`, or the first thing wrong with
    /// `config`.
    pub fn new(config: ProjectionConfig, broker: ProcessId) -> Result<Projection<R>, ConfigError> {
        config.validate()?;
        let consumer = Consumer::build(
            config.consumer,
            broker,
            config.group.clone(),
            config.topic.clone(),
            "projection",
        )?;
        Ok(Projection {
            snapshots_log: format!("{}/snapshots", config.name),
            config,
            consumer,
            model: R::default(),
            progress: Progress::default(),
            backlog: VecDeque::new(),
            queued: DenseMap::new(),
            working: None,
            next_work: 0,
            applied_since_snapshot: 0,
            snapshot_in_flight: None,
            snapshot_wanted: false,
            next_snapshot: 0,
            rebuilding: false,
            caught_up: BTreeSet::new(),
        })
    }

    /// The read model as it is now.
    pub fn model(&self) -> &R {
        &self.model
    }

    /// How far it has got.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Whether a rebuild is under way.
    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding
    }

    /// Events delivered and waiting for CPU.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Its consumer (partitions owned, positions).
    pub fn consumer(&self) -> &Consumer<R::Event> {
        &self.consumer
    }

    fn total_applied(&self) -> i64 {
        self.progress.total_applied() as i64
    }
}

impl<R, M> Process<M> for Projection<R>
where
    R: ReadModel,
    M: Carry<BrokerMsg<R::Event>> + Carry<ProjectionMsg<R::Query, R::Answer>>,
{
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        self.restore(ctx);
        self.consumer.start(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let message = match <M as Carry<BrokerMsg<R::Event>>>::unwrap(message) {
            Ok(message) => return self.on_broker(ctx, message),
            Err(message) => message,
        };
        match <M as Carry<ProjectionMsg<R::Query, R::Answer>>>::unwrap(message) {
            Ok(ProjectionMsg::Rebuild) => self.rebuild(ctx),
            Ok(ProjectionMsg::Query { request, query }) => {
                let answered = ProjectionMsg::Answered {
                    request,
                    answer: self.model.answer(&query),
                    applied: self.progress.positions(),
                };
                ctx.send(from, M::wrap(answered));
            }
            Ok(ProjectionMsg::Answered { .. }) | Err(_) => {
                ctx.count("projection.foreign_messages", 1)
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, _tag: u64) {
        self.consumer.on_timer(ctx, timer);
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        if self.working == Some(tag) {
            self.working = None;
            self.apply_next(ctx);
            self.start_work(ctx);
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let Some((in_flight, positions)) = self.snapshot_in_flight.take() else { return };
        if in_flight != tag {
            self.snapshot_in_flight = Some((in_flight, positions));
            return;
        }
        // Only now is it safe for the group to move on: a crash from here
        // restores a snapshot at least this far.
        for position in positions {
            self.consumer.commit(ctx, position.partition, position.offset);
        }
        if self.snapshot_wanted {
            self.snapshot(ctx);
        }
    }
}

impl<R: ReadModel> Projection<R> {
    fn restore<M: Carry<BrokerMsg<R::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some(bytes) = ctx.read_log(&self.snapshots_log).last() else { return };
        let (positions, rebuilding, model): (Vec<Position>, bool, R) =
            serde_json::from_slice(bytes)
                .expect("a snapshot decodes as the model it was written as");
        self.model = model;
        self.rebuilding = rebuilding;
        for position in positions {
            if position.offset > 0 {
                self.progress.advance(Position { offset: position.offset - 1, ..position });
            }
        }
        ctx.trace(Component::Projection, "resumed", 0, self.total_applied());
        ctx.count("projection.resumed", 1);
    }

    fn on_broker<M: Carry<BrokerMsg<R::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        message: BrokerMsg<R::Event>,
    ) {
        match self.consumer.on_message(ctx, message) {
            Some(ConsumerEvent::Assigned { added, .. }) => {
                for assignment in added {
                    // The snapshot, not the broker, says where this model is.
                    let own = self.progress.applied(assignment.partition);
                    if own != assignment.committed_offset {
                        self.consumer.seek(ctx, assignment.partition, own);
                    }
                }
            }
            Some(ConsumerEvent::Delivered { partition, records, high_watermark }) => {
                self.progress.observe_head(partition, high_watermark);
                let mut fresh = 0;
                for record in records {
                    if self.progress.is_new(Position { partition, offset: record.offset }) {
                        self.backlog.push_back((partition, record));
                        fresh += 1;
                    } else {
                        ctx.count("projection.duplicates_skipped", 1);
                    }
                }
                *self.queued.get_or_insert_with(partition, || 0) += fresh;
                ctx.sample("projection.lag_events", self.progress.lag_events() as f64);
                if self.queued[&partition] == 0 {
                    self.consumer.resume(ctx, partition);
                }
                self.start_work(ctx);
            }
            Some(ConsumerEvent::CaughtUp { partition, high_watermark }) => {
                self.progress.observe_head(partition, high_watermark);
                let idle = self.queued.get(&partition).is_none_or(|queued| *queued == 0);
                if idle && self.progress.applied(partition) >= self.progress.head(partition) {
                    self.caught_up.insert(partition);
                    ctx.sample("projection.lag_events", self.progress.lag_events() as f64);
                    ctx.sample("projection.lag_ms", 0.0);
                    if self.applied_since_snapshot > 0 {
                        self.snapshot(ctx);
                    }
                    self.check_rebuilt(ctx);
                }
            }
            _ => {}
        }
    }

    fn start_work<M: Carry<BrokerMsg<R::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        if self.working.is_none() && !self.backlog.is_empty() {
            let tag = self.next_work;
            self.next_work += 1;
            self.working = Some(tag);
            ctx.spend_cpu(self.config.event_cost, tag);
        }
    }

    fn apply_next<M: Carry<BrokerMsg<R::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some((partition, record)) = self.backlog.pop_front() else { return };
        let queued = self.queued.get_mut(&partition).expect("a queued event is counted");
        *queued -= 1;
        let batch_done = *queued == 0;
        let position = Position { partition, offset: record.offset };
        // A seek can queue an event twice; the second copy is skipped.
        if self.progress.is_new(position) {
            self.model.apply(position, &record.payload);
            self.progress.advance(position);
            self.applied_since_snapshot += 1;
            ctx.count("projection.applied", 1);
            let lag = lag_time(ctx.now_local(), record.write_time);
            ctx.sample("projection.lag_ms", lag.as_millis_f64());
            ctx.sample("projection.lag_events", self.progress.lag_events() as f64);
        } else {
            ctx.count("projection.duplicates_skipped", 1);
        }
        if batch_done {
            let key = partition_trace_key(&self.config.topic, partition);
            ctx.trace(
                Component::Projection,
                "applied",
                key,
                self.progress.applied(partition) as i64,
            );
            if self.progress.applied(partition) >= self.progress.head(partition) {
                self.caught_up.insert(partition);
            }
            self.consumer.resume(ctx, partition);
        }
        if self.applied_since_snapshot >= self.config.snapshot_every {
            self.snapshot(ctx);
        }
        self.check_rebuilt(ctx);
    }

    /// Writes the model and its offsets to storage; the offsets are
    /// committed to the broker once the write is durable.
    fn snapshot<M: Carry<BrokerMsg<R::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        if self.snapshot_in_flight.is_some() {
            self.snapshot_wanted = true;
            return;
        }
        self.snapshot_wanted = false;
        let positions = self.progress.positions();
        let bytes = serde_json::to_vec(&(&positions, self.rebuilding, &self.model))
            .expect("a read model must be encodable as JSON (see `ReadModel`)");
        ctx.append(&self.snapshots_log, bytes);
        let tag = self.next_snapshot;
        self.next_snapshot += 1;
        ctx.sync(tag);
        self.snapshot_in_flight = Some((tag, positions));
        self.applied_since_snapshot = 0;
        ctx.trace(Component::Projection, "snapshot_written", 0, self.total_applied());
        ctx.count("projection.snapshots", 1);
    }

    fn rebuild<M: Carry<BrokerMsg<R::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        ctx.trace(Component::Projection, "rebuild_started", 0, self.total_applied());
        ctx.count("projection.rebuilds", 1);
        self.model = R::default();
        self.progress.reset();
        self.backlog.clear();
        self.queued.clear();
        self.working = None;
        self.rebuilding = true;
        self.caught_up.clear();
        // A crash during the rebuild resumes the rebuild.
        self.snapshot(ctx);
        for partition in self.consumer.partitions() {
            self.consumer.seek(ctx, partition, 0);
        }
    }

    fn check_rebuilt<M: Carry<BrokerMsg<R::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        // Runs per event applied: ask for the owned partitions (a fresh
        // list) only while rebuilding.
        if !self.rebuilding {
            return;
        }
        let owned = self.consumer.partitions();
        if !owned.is_empty() && owned.iter().all(|partition| self.caught_up.contains(partition)) {
            self.rebuilding = false;
            ctx.trace(Component::Projection, "rebuilt", 0, self.total_applied());
            ctx.count("projection.rebuilt", 1);
            self.snapshot(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(partition: u32, offset: u64) -> Position {
        Position { partition, offset }
    }

    #[test]
    fn progress_counts_events_behind_the_head() {
        // Goal: lag in events is head minus applied, summed over partitions.
        let mut progress = Progress::default();
        progress.observe_head(0, 10);
        progress.observe_head(1, 4);
        progress.advance(at(0, 5));
        assert_eq!(progress.lag_events(), 4 + 4);
        assert!(!progress.is_new(at(0, 5)));
        assert!(progress.is_new(at(0, 6)));
        progress.observe_head(0, 3);
        assert_eq!(progress.head(0), 10, "the head never moves back");
        progress.reset();
        assert_eq!(progress.applied(0), 0);
        assert_eq!(progress.lag_events(), 14);
    }

    #[test]
    fn lag_time_is_clamped_at_zero_when_clocks_disagree() {
        // Goal: an event stamped in the reader's future counts as no lag, not negative lag.
        assert_eq!(
            lag_time(LocalTime(5_000_000), LocalTime(2_000_000)),
            SimDuration::from_millis(3)
        );
        assert_eq!(lag_time(LocalTime(1_000), LocalTime(9_000)), SimDuration::ZERO);
        assert_eq!(
            lag_time(LocalTime(i64::MAX), LocalTime(i64::MIN)),
            SimDuration::from_nanos(i64::MAX as u64)
        );
    }

    #[test]
    fn bad_configurations_are_rejected_naming_the_field() {
        // Goal: a projection cannot be built from a bad configuration.
        let good = ProjectionConfig::new("reads", "orders", SessionConfig::default());
        let mut config = good.clone();
        config.snapshot_every = 0;
        assert_eq!(config.validate().unwrap_err().field, "projection.snapshot_every");
        let mut config = good.clone();
        config.consumer.max_batch = 0;
        assert_eq!(config.validate().unwrap_err().field, "projection.consumer.max_batch");
        let mut config = good.clone();
        config.consumer.session.session_timeout = config.consumer.session.heartbeat_interval;
        assert_eq!(
            config.validate().unwrap_err().field,
            "projection.consumer.session.session_timeout"
        );
        let mut config = good;
        config.group = String::new();
        let error = Projection::<Tally>::new(config, ProcessId(0)).unwrap_err();
        assert_eq!(error.field, "projection.group");
    }

    /// Counts events; enough of a model for configuration tests.
    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    struct Tally(u64);

    impl ReadModel for Tally {
        type Event = u64;
        type Query = ();
        type Answer = u64;
        fn apply(&mut self, _position: Position, _event: &u64) {
            self.0 += 1;
        }
        fn answer(&self, _query: &()) -> u64 {
            self.0
        }
    }

    proptest! {
        /// Law: lag never goes negative, whatever order heads and applied
        /// events arrive in.
        #[test]
        fn lag_is_never_negative(steps in proptest::collection::vec((0u32..3, 0u64..50, any::<bool>()), 0..60)) {
            let mut progress = Progress::default();
            for (partition, offset, is_head) in steps {
                if is_head {
                    progress.observe_head(partition, offset);
                } else {
                    progress.advance(at(partition, offset));
                }
                let lag = progress.lag_events();
                let by_partition: u64 = (0..3).map(|p| progress.head(p) - progress.applied(p)).sum();
                prop_assert_eq!(lag, by_partition);
            }
        }
    }
}
