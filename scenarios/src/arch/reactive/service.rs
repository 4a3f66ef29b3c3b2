//! What every reactive service is made of, whatever its business: a
//! non-blocking process that takes work from bounded intake lanes onto its
//! node's cores, consumes its topics from the broker only as fast as its
//! intake has room (pull-based backpressure), writes its decisions and the
//! facts it will publish to its own durable log, publishes those facts
//! through the kit's [`Producer`], and commits consumed offsets once their
//! effects are durable.
//!
//! The business part of a service is a [`Logic`]; [`Service`] wraps it into
//! a [`Process`] and [`Shell`] is what the logic can use.
//!
//! Non-blocking means only CPU holds a core: a handler that waits (for the
//! gateway, for the broker) keeps nothing but a little state, so thousands
//! of orders can be in flight at once (Reactive Microsystems, ch. 5).

use super::ReactiveMsg;
use super::facts::Fact;
use super::journal::{Book, Entry, Ledgered};
use sim::kit::backpressure::{BoundedBuffer, BufferConfig, BufferStats, Offer, OverflowPolicy};
use sim::kit::broker::{
    BrokerMsg, Consumer, ConsumerConfig, ConsumerEvent, Producer, ProducerConfig, ProducerEvent,
    Record, SessionConfig,
};
use sim::kit::persistence::{EventSourced, PersistenceConfig};
use sim::{Ctx, Dist, Process, ProcessId, SimDuration, TimerId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

/// How often a service commits consumed offsets and records published
/// facts: often enough that a crash redelivers only a fraction of a second
/// of records, rarely enough that commits stay a small part of the traffic.
pub const TICK: SimDuration = SimDuration::from_millis(100);

/// Records asked for per fetch at most (the kit consumer's default).
const FETCH_BATCH_MAX: u32 = 100;

/// Syncs a service may have in flight; with the engine's fsync latency a
/// handful are, so reaching this bound is a modelling bug, not load.
const PENDING_SYNCS_MAX: usize = 1 << 16;

/// What every service is wired to.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The broker process.
    pub broker: ProcessId,
    /// CPU time per message handled.
    pub cpu: Dist,
    /// Cores of the service's node: work items on CPU at once.
    pub cores: u32,
    /// Bound of each intake lane that takes new work; `None`: unbounded.
    pub queue_bound: Option<u32>,
    /// Heartbeats and session of the consumer groups.
    pub session: SessionConfig,
}

/// Where a consumed record came from: which of the service's consumers,
/// which partition, which offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Source {
    /// Index of the consumer (one per subscribed topic).
    pub consumer: usize,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
}

/// The intake lanes, served in this order of priority: replies to the
/// service's own calls first, then records from the broker (work already
/// under way elsewhere), then new requests from the edge. Finishing work
/// in progress before admitting more is what keeps an overloaded service
/// answering the orders it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Replies to the service's own calls (bounded by its calls out).
    Reply = 0,
    /// Records from the broker (bounded by how much is fetched).
    Record = 1,
    /// New requests (bounded by the queue bound; excess is rejected).
    Edge = 2,
}

/// One item of work for the CPU.
#[derive(Clone, Debug)]
pub enum Work<X> {
    /// A consumed record.
    Record {
        /// Where it came from.
        source: Source,
        /// What it says.
        fact: Fact,
    },
    /// Something the service's own logic queued.
    Local(X),
}

/// The business part of a service.
pub trait Logic: Sized + 'static {
    /// Its durable domain state.
    type Book: Book;
    /// Work it queues itself (requests, replies).
    type Local: Clone + Debug + 'static;
    /// What it does once a write is durable.
    type Action: Debug + 'static;
    /// Its name: consumer group, log namespace, metric prefix.
    const NAME: &'static str;
    /// The topics it consumes, one consumer each.
    const TOPICS: &'static [&'static str];

    /// The book before any event (stock on the shelves, say).
    fn initial_book(&self) -> Self::Book;
    /// Whether a fact concerns it; the others are skipped without CPU.
    fn wants(fact: &Fact) -> bool;
    /// Handles a consumed fact, after its CPU time. Must end with
    /// [`Shell::persist`] naming `source`, or with [`Shell::done`].
    fn on_fact(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        fact: Fact,
        source: Source,
    );
    /// Handles its own queued work, after its CPU time.
    fn on_local(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        work: Self::Local,
    ) {
        let _ = (ctx, shell, work);
    }
    /// Handles a message that is not the broker's.
    fn on_other(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        from: ProcessId,
        message: ReactiveMsg,
    ) {
        let _ = (ctx, shell, from, message);
    }
    /// Handles a timer the shell does not own.
    fn on_timer(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        timer: TimerId,
    ) {
        let _ = (ctx, shell, timer);
    }
    /// Acts once a write it asked for is durable.
    fn after_sync(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        action: Self::Action,
    ) {
        let _ = (ctx, shell, action);
    }
    /// Resumes what its recovered book says is unfinished.
    fn on_recovered(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, shell: &mut Shell<Self>) {
        let _ = (ctx, shell);
    }
    /// Work under way outside the lanes (calls in flight), counted against
    /// the queue bound when deciding whether to fetch more.
    fn extra_load(&self) -> usize {
        0
    }
}

/// A service: its logic in the shell every service shares.
pub struct Service<L: Logic> {
    /// The business part.
    pub logic: L,
    /// The shared part.
    pub shell: Shell<L>,
}

impl<L: Logic> Service<L> {
    /// A service, fresh: it recovers from its node's storage when started.
    pub fn new(logic: L, config: ServiceConfig) -> Service<L> {
        Service { logic, shell: Shell::new(config) }
    }

    fn pump(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>) {
        let load = self.shell.station.load() + self.logic.extra_load();
        self.shell.feeds.resume(ctx, load);
        self.shell.station.dispatch(ctx);
    }
}

/// What a service's logic works with: its durable state, its intake, its
/// consumers and its publisher.
pub struct Shell<L: Logic> {
    config: ServiceConfig,
    journal: Option<EventSourced<Ledgered<L::Book>>>,
    station: Station<L::Local>,
    feeds: Feeds,
    outbox: Outbox,
    followups: BTreeMap<u64, Followup<L::Action>>,
    next_tag: u64,
    tick: Option<TimerId>,
}

/// What happens once a write is durable.
#[derive(Debug)]
struct Followup<A> {
    done: Option<Source>,
    publish: Vec<u64>,
    actions: Vec<A>,
}

impl<L: Logic> Shell<L> {
    fn new(config: ServiceConfig) -> Shell<L> {
        let topics = L::TOPICS.len().max(1) as u32;
        // Each consumer may have one fetch of `max_batch` records out: keep
        // all of them together within the bound.
        let max_batch = match config.queue_bound {
            Some(bound) => (bound / (2 * topics)).clamp(1, FETCH_BATCH_MAX),
            None => FETCH_BATCH_MAX,
        };
        let consumer_config = ConsumerConfig { session: config.session, max_batch };
        let consumers = L::TOPICS
            .iter()
            .map(|topic| {
                Consumer::new(consumer_config, config.broker, L::NAME, *topic)
                    .expect("a valid consumer configuration")
            })
            .collect();
        let producer = Producer::new(ProducerConfig::default(), config.broker)
            .expect("a valid producer configuration");
        Shell {
            station: Station::new(L::NAME, &config),
            feeds: Feeds {
                consumers,
                progress: BTreeMap::new(),
                waiting: VecDeque::new(),
                max_batch,
                bound: config.queue_bound,
            },
            outbox: Outbox {
                producer,
                requests: BTreeMap::new(),
                in_flight: BTreeSet::new(),
                acked: Vec::new(),
                refused: BTreeSet::new(),
            },
            config,
            journal: None,
            followups: BTreeMap::new(),
            next_tag: 0,
            tick: None,
        }
    }

    /// The service's configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// The durable state (the fold of every entry written, synced or not).
    pub fn state(&self) -> &Ledgered<L::Book> {
        self.journal.as_ref().expect("a started service has its journal").state()
    }

    /// The durable state, if the service has started (a process restarted
    /// this very instant has not recovered yet).
    pub fn started_state(&self) -> Option<&Ledgered<L::Book>> {
        self.journal.as_ref().map(EventSourced::state)
    }

    /// The domain state.
    pub fn book(&self) -> &L::Book {
        &self.state().book
    }

    /// The intake's lanes, for views and tests.
    pub fn lane_stats(&self, lane: Lane) -> BufferStats {
        self.station.lanes[lane as usize].stats()
    }

    /// Writes `events` and the `facts` to publish, and syncs. Once durable:
    /// `source` counts as consumed, the facts go to the broker, and each of
    /// `actions` goes to [`Logic::after_sync`].
    pub fn persist(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        events: Vec<<L::Book as Book>::Event>,
        facts: Vec<Fact>,
        source: Option<Source>,
        actions: Vec<L::Action>,
    ) {
        let journal = self.journal.as_mut().expect("a started service has its journal");
        let mut entries: Vec<Entry<<L::Book as Book>::Event>> =
            events.into_iter().map(Entry::Domain).collect();
        let mut publish = Vec::with_capacity(facts.len());
        for (id, fact) in (journal.state().next_out..).zip(facts) {
            ctx.record(fact.label(), fact.order().0);
            entries.push(Entry::Outbound { id, fact });
            publish.push(id);
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        journal.persist(ctx, entries, tag).expect("the journal has room for a sync");
        self.followups.insert(tag, Followup { done: source, publish, actions });
    }

    /// A consumed record needed no write: it counts as consumed now.
    pub fn done(&mut self, source: Source) {
        self.feeds.done(source);
    }

    /// Queues the logic's own work in `lane`; a full lane hands it back.
    pub fn admit(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        lane: Lane,
        key: u64,
        work: L::Local,
    ) -> Result<(), L::Local> {
        match self.station.offer(ctx, lane, key, Work::Local(work)) {
            Ok(()) => Ok(()),
            Err(Work::Local(work)) => Err(work),
            Err(Work::Record { .. }) => unreachable!("a local offer hands back local work"),
        }
    }

    fn start(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, book: L::Book) {
        let config =
            PersistenceConfig { snapshot_interval: None, pending_syncs_max: PENDING_SYNCS_MAX };
        let journal = EventSourced::recover(ctx, L::NAME, 0, config, Ledgered::new(book))
            .expect("a service's log replays");
        // Facts decided before a crash and never acknowledged go out again.
        let unpublished: Vec<(u64, Fact)> =
            journal.state().outbox.iter().map(|(id, fact)| (*id, fact.clone())).collect();
        self.journal = Some(journal);
        for (id, fact) in unpublished {
            self.outbox.publish(ctx, id, &fact);
        }
        for consumer in &mut self.feeds.consumers {
            consumer.start(ctx);
        }
        self.tick = Some(ctx.set_timer(TICK, 0));
    }

    /// Handles the shell's own timers; false if the timer is the logic's.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, timer: TimerId) -> bool {
        if self.tick == Some(timer) {
            self.tick = Some(ctx.set_timer(TICK, 0));
            self.feeds.commit(ctx);
            let refused: Vec<u64> = self.outbox.refused.iter().copied().collect();
            for id in refused {
                match self.state().outbox.get(&id).cloned() {
                    Some(fact) => self.outbox.publish(ctx, id, &fact),
                    None => {
                        self.outbox.refused.remove(&id);
                    }
                }
            }
            if !self.outbox.acked.is_empty() {
                let ids = std::mem::take(&mut self.outbox.acked);
                let tag = self.next_tag;
                self.next_tag += 1;
                let journal = self.journal.as_mut().expect("a started service has its journal");
                journal
                    .persist(ctx, vec![Entry::Published { ids }], tag)
                    .expect("the journal has room for a sync");
            }
            return true;
        }
        if self.outbox.producer.on_timer(ctx, timer) {
            return true;
        }
        self.feeds.consumers.iter_mut().any(|consumer| consumer.on_timer(ctx, timer))
    }

    fn synced(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, tag: u64) -> Vec<L::Action> {
        if let Some(journal) = self.journal.as_mut() {
            journal.on_synced(ctx, tag);
        }
        let Some(followup) = self.followups.remove(&tag) else { return Vec::new() };
        if let Some(source) = followup.done {
            self.feeds.done(source);
        }
        for id in followup.publish {
            if let Some(fact) = self.state().outbox.get(&id).cloned() {
                self.outbox.publish(ctx, id, &fact);
            }
        }
        followup.actions
    }

    fn on_broker(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, message: BrokerMsg<Fact>) {
        if self.outbox.on_message(ctx, &message) {
            return;
        }
        let Some((consumer, partition, records)) = self.feeds.on_message(ctx, message) else {
            return;
        };
        for Record { offset, payload, .. } in records {
            let source = Source { consumer, partition, offset };
            if L::wants(&payload) {
                let key = payload.order().0;
                let work = Work::Record { source, fact: payload };
                if self.station.offer(ctx, Lane::Record, key, work).is_err() {
                    unreachable!("the record lane is bounded by fetching, never by rejection");
                }
            } else {
                self.feeds.done(source);
            }
        }
        self.feeds.waiting.push_back((consumer, partition));
    }
}

impl<L: Logic> Process<ReactiveMsg> for Service<L> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>) {
        let book = self.logic.initial_book();
        self.shell.start(ctx, book);
        self.logic.on_recovered(ctx, &mut self.shell);
        self.pump(ctx);
    }

    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        from: ProcessId,
        message: ReactiveMsg,
    ) {
        match message {
            ReactiveMsg::Broker(message) => self.shell.on_broker(ctx, message),
            other => self.logic.on_other(ctx, &mut self.shell, from, other),
        }
        self.pump(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, timer: TimerId, _tag: u64) {
        if !self.shell.on_timer(ctx, timer) {
            self.logic.on_timer(ctx, &mut self.shell, timer);
        }
        self.pump(ctx);
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, tag: u64) {
        match self.shell.station.finish(tag) {
            Some(Work::Record { source, fact }) => {
                self.logic.on_fact(ctx, &mut self.shell, fact, source);
            }
            Some(Work::Local(work)) => self.logic.on_local(ctx, &mut self.shell, work),
            None => {}
        }
        self.pump(ctx);
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, tag: u64) {
        for action in self.shell.synced(ctx, tag) {
            self.logic.after_sync(ctx, &mut self.shell, action);
        }
        self.pump(ctx);
    }
}

/// The intake lanes and the CPU: at most `cores` work items run at once,
/// the rest wait in their lane.
struct Station<X> {
    lanes: Vec<BoundedBuffer<Work<X>>>,
    cores: u32,
    cpu: Dist,
    running: BTreeMap<u64, Work<X>>,
    next_work: u64,
}

impl<X> Station<X> {
    fn new(name: &str, config: &ServiceConfig) -> Station<X> {
        let edge = match config.queue_bound {
            Some(bound) => {
                BufferConfig::bounded(format!("{name}.edge"), bound, OverflowPolicy::Reject)
            }
            None => BufferConfig::unbounded(format!("{name}.edge")),
        };
        // Replies and records are bounded by flow control (calls out,
        // fetches out), not by refusal: refusing a consumed record would
        // lose it until a restart redelivered it.
        let lanes = [
            BufferConfig::unbounded(format!("{name}.replies")),
            BufferConfig::unbounded(format!("{name}.records")),
            edge,
        ]
        .into_iter()
        .map(|config| BoundedBuffer::new(config).expect("a valid lane"))
        .collect();
        Station {
            lanes,
            cores: config.cores,
            cpu: config.cpu.clone(),
            running: BTreeMap::new(),
            next_work: 0,
        }
    }

    fn offer(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        lane: Lane,
        key: u64,
        work: Work<X>,
    ) -> Result<(), Work<X>> {
        match self.lanes[lane as usize].offer_observed(ctx, key, work) {
            Offer::Accepted => Ok(()),
            Offer::Rejected(work) | Offer::DroppedNewest(work) => Err(work),
            Offer::DroppedOldest(_) => unreachable!("lanes reject, never drop the oldest"),
        }
    }

    /// Work waiting or running, edge requests aside: what fetching more
    /// would add to.
    fn load(&self) -> usize {
        self.lanes[Lane::Reply as usize].len()
            + self.lanes[Lane::Record as usize].len()
            + self.running.len()
    }

    fn dispatch(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>) {
        while self.running.len() < self.cores as usize {
            let Some(work) = self.lanes.iter_mut().find_map(|lane| lane.take_observed(ctx)) else {
                break;
            };
            let tag = self.next_work;
            self.next_work += 1;
            self.running.insert(tag, work);
            let duration = self.cpu.sample(ctx.rng());
            ctx.spend_cpu(duration, tag);
        }
    }

    fn finish(&mut self, tag: u64) -> Option<Work<X>> {
        self.running.remove(&tag)
    }
}

/// The service's consumers, one per topic, with what has been consumed
/// (processed and durable) per partition, and which partitions wait for
/// room in the intake before fetching again.
struct Feeds {
    consumers: Vec<Consumer<Fact>>,
    progress: BTreeMap<(usize, u32), Progress>,
    /// Partitions whose last batch was taken in and that fetch again only
    /// when the intake has room for another, oldest first.
    waiting: VecDeque<(usize, u32)>,
    max_batch: u32,
    bound: Option<u32>,
}

/// Consumption of one partition.
#[derive(Clone, Debug, Default)]
struct Progress {
    /// Every record below it is consumed.
    consumed: u64,
    /// Records consumed above `consumed` (out of order: cores finish in
    /// any order).
    ahead: BTreeSet<u64>,
    /// The offset last sent to the broker as committed.
    committed: u64,
}

impl Feeds {
    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        message: BrokerMsg<Fact>,
    ) -> Option<(usize, u32, Vec<Record<Fact>>)> {
        let index = self.consumers.iter().position(|consumer| consumer.handles(&message))?;
        match self.consumers[index].on_message(ctx, message)? {
            ConsumerEvent::Assigned { added, revoked, .. } => {
                for partition in revoked {
                    self.forget(index, partition);
                }
                for assignment in added {
                    self.forget(index, assignment.partition);
                    let at = assignment.committed_offset;
                    let progress = Progress { consumed: at, ahead: BTreeSet::new(), committed: at };
                    self.progress.insert((index, assignment.partition), progress);
                }
                None
            }
            ConsumerEvent::Delivered { partition, records, .. } => {
                Some((index, partition, records))
            }
            ConsumerEvent::Revoked { partition } => {
                self.forget(index, partition);
                None
            }
            ConsumerEvent::CaughtUp { .. }
            | ConsumerEvent::Committed { .. }
            | ConsumerEvent::JoinRejected { .. } => None,
        }
    }

    fn forget(&mut self, consumer: usize, partition: u32) {
        self.progress.remove(&(consumer, partition));
        self.waiting.retain(|waiting| *waiting != (consumer, partition));
    }

    /// Lets waiting partitions fetch again while every fetch out could be
    /// answered in full without the intake passing its bound.
    fn resume(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, load: usize) {
        let Some(bound) = self.bound else {
            while let Some((consumer, partition)) = self.waiting.pop_front() {
                self.consumers[consumer].resume(ctx, partition);
            }
            return;
        };
        let mut fetching = self.progress.len().saturating_sub(self.waiting.len());
        let batch = self.max_batch as usize;
        while let Some(&(consumer, partition)) = self.waiting.front() {
            if load + (fetching + 1) * batch > bound as usize {
                break;
            }
            self.waiting.pop_front();
            self.consumers[consumer].resume(ctx, partition);
            fetching += 1;
        }
    }

    fn done(&mut self, source: Source) {
        let Some(progress) = self.progress.get_mut(&(source.consumer, source.partition)) else {
            return;
        };
        if source.offset < progress.consumed {
            return;
        }
        progress.ahead.insert(source.offset);
        while progress.ahead.remove(&progress.consumed) {
            progress.consumed += 1;
        }
    }

    fn commit(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>) {
        for ((consumer, partition), progress) in &mut self.progress {
            if progress.consumed > progress.committed {
                progress.committed = progress.consumed;
                self.consumers[*consumer].commit(ctx, *partition, progress.consumed);
            }
        }
    }
}

/// The publishing side: facts out to the broker, retried by the kit's
/// producer until acknowledged, then marked published in the journal.
struct Outbox {
    producer: Producer<Fact>,
    /// Producer request to outbox id.
    requests: BTreeMap<u64, u64>,
    /// Outbox ids sent and not yet acknowledged.
    in_flight: BTreeSet<u64>,
    /// Outbox ids acknowledged since the last tick.
    acked: Vec<u64>,
    /// Outbox ids the producer refused (too many unacknowledged); tried
    /// again at the next tick.
    refused: BTreeSet<u64>,
}

impl Outbox {
    fn publish(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, id: u64, fact: &Fact) {
        if self.in_flight.contains(&id) {
            return;
        }
        match self.producer.publish(ctx, fact.topic(), fact.order().0, fact.clone()) {
            Ok(request) => {
                self.requests.insert(request, id);
                self.in_flight.insert(id);
                self.refused.remove(&id);
            }
            Err(_) => {
                self.refused.insert(id);
            }
        }
    }

    /// Handles a publish answer; false if the message is not one.
    fn on_message(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, message: &BrokerMsg<Fact>) -> bool {
        if !matches!(message, BrokerMsg::Published { .. } | BrokerMsg::PublishRejected { .. }) {
            return false;
        }
        match self.producer.on_message(ctx, message) {
            Some(ProducerEvent::Acked { request, .. }) => {
                if let Some(id) = self.requests.remove(&request) {
                    self.in_flight.remove(&id);
                    self.acked.push(id);
                }
            }
            Some(ProducerEvent::Rejected { reason, .. }) => {
                panic!("the broker refused a fact for good ({reason:?}): the topics are miswired")
            }
            None => {}
        }
        true
    }
}
