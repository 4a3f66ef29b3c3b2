//! The pub/sub broker in small worlds: durable publishes, consumer groups,
//! redelivery after crashes, rebalancing and retention, and its laws as
//! property tests over seeds and crash times.

use proptest::prelude::*;
use sim::kit::Carry;
use sim::kit::broker::{
    Broker, BrokerConfig, BrokerMsg, Consumer, ConsumerConfig, ConsumerEvent, Producer,
    ProducerConfig, ProducerEvent, SessionConfig, TopicConfig,
};
use sim::trace::{TraceEvent, TraceRecord, TraceSink};
use sim::{
    Component, Ctx, Dist, Fault, FaultSchedule, LinkConfig, Message, NodeConfig, NodeId, Process,
    ProcessId, Seed, Sim, SimConfig, SimDuration, SimTime, TimerId,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

const TOPIC: &str = "orders";
const GROUP: &str = "billing";

#[derive(Clone, Debug)]
enum Msg {
    Broker(BrokerMsg<u64>),
    /// Tells a reader to leave its group.
    Leave,
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Broker(inner) => inner.label(),
            Msg::Leave => "Leave",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::Broker(inner) => inner.digest(),
            Msg::Leave => 1,
        }
    }
}

impl Carry<BrokerMsg<u64>> for Msg {
    fn wrap(inner: BrokerMsg<u64>) -> Self {
        Msg::Broker(inner)
    }
    fn unwrap(self) -> Result<BrokerMsg<u64>, Self> {
        match self {
            Msg::Broker(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// What readers saw, in order, across all their lives (shared with the
/// test because a crash drops the readers' own state).
#[derive(Default)]
struct Journal {
    /// (partition, offset, id) of every acknowledged publish.
    acked: Vec<(u32, u64, u64)>,
    /// Every event a reader saw: (reader, life, event).
    seen: Vec<(ProcessId, u32, Seen)>,
    /// Lives started per reader.
    lives: BTreeMap<ProcessId, u32>,
}

#[derive(Clone, Debug, PartialEq)]
enum Seen {
    Added { partition: u32, committed: u64 },
    Revoked { partition: u32 },
    Delivered { partition: u32, offsets: Vec<u64>, ids: Vec<u64> },
}

type Shared = Rc<RefCell<Journal>>;

/// Publishes `count` records, one every `interval`, keyed round robin over
/// eight keys, and notes each acknowledgement.
struct Writer {
    producer: Producer<u64>,
    journal: Shared,
    count: u64,
    interval: SimDuration,
    sent: u64,
    pending: BTreeMap<u64, u64>,
    timer: Option<TimerId>,
}

impl Writer {
    fn new(broker: ProcessId, journal: Shared, count: u64, interval: SimDuration) -> Writer {
        let producer = Producer::new(ProducerConfig::default(), broker).expect("valid config");
        Writer {
            producer,
            journal,
            count,
            interval,
            sent: 0,
            pending: BTreeMap::new(),
            timer: None,
        }
    }
}

impl Process<Msg> for Writer {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.timer = Some(ctx.set_timer(self.interval, 0));
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        let Msg::Broker(message) = message else { return };
        if let Some(ProducerEvent::Acked { request, partition, offset, .. }) =
            self.producer.on_message(ctx, &message)
        {
            let id = self.pending.remove(&request).expect("an ack for a request of this life");
            self.journal.borrow_mut().acked.push((partition, offset, id));
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, _tag: u64) {
        if self.producer.on_timer(ctx, timer) || Some(timer) != self.timer {
            return;
        }
        // Ids are unique across the writer's lives: a restarted writer
        // starts from the sim's clock, not from zero.
        let id = (ctx.now_local().as_nanos() as u64) << 8 | (self.sent & 0xff);
        let request = self.producer.publish(ctx, TOPIC, self.sent % 8, id).expect("room");
        self.pending.insert(request, id);
        self.sent += 1;
        if self.sent < self.count {
            self.timer = Some(ctx.set_timer(self.interval, 0));
        }
    }
}

/// A group member that takes `cost_per_record` of CPU per record and
/// commits after each batch.
struct Reader {
    consumer: Consumer<u64>,
    journal: Shared,
    life: u32,
    cost_per_record: SimDuration,
    /// Batches being processed, by work tag: (partition, next offset).
    processing: BTreeMap<u64, (u32, u64)>,
    next_work: u64,
}

impl Reader {
    fn new(broker: ProcessId, journal: Shared, cost_per_record: SimDuration) -> Reader {
        let mut config = ConsumerConfig::new(SessionConfig::default());
        config.max_batch = 20;
        let consumer = Consumer::new(config, broker, GROUP, TOPIC).expect("valid config");
        Reader {
            consumer,
            journal,
            life: 0,
            cost_per_record,
            processing: BTreeMap::new(),
            next_work: 0,
        }
    }

    fn note(&self, me: ProcessId, seen: Seen) {
        self.journal.borrow_mut().seen.push((me, self.life, seen));
    }
}

impl Process<Msg> for Reader {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let mut journal = self.journal.borrow_mut();
        let lives = journal.lives.entry(ctx.me()).or_default();
        *lives += 1;
        self.life = *lives;
        drop(journal);
        self.consumer.start(ctx);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        let message = match message {
            Msg::Broker(message) => message,
            Msg::Leave => {
                self.consumer.leave(ctx);
                return;
            }
        };
        match self.consumer.on_message(ctx, message) {
            Some(ConsumerEvent::Assigned { added, revoked, .. }) => {
                for partition in revoked {
                    self.processing.retain(|_, (owned, _)| *owned != partition);
                    self.note(ctx.me(), Seen::Revoked { partition });
                }
                for assignment in added {
                    let seen = Seen::Added {
                        partition: assignment.partition,
                        committed: assignment.committed_offset,
                    };
                    self.note(ctx.me(), seen);
                }
            }
            Some(ConsumerEvent::Revoked { partition }) => {
                self.processing.retain(|_, (owned, _)| *owned != partition);
                self.note(ctx.me(), Seen::Revoked { partition });
            }
            Some(ConsumerEvent::Delivered { partition, records, .. }) => {
                let next = records.last().expect("a delivery is never empty").offset + 1;
                let offsets = records.iter().map(|record| record.offset).collect();
                let ids = records.iter().map(|record| record.payload).collect();
                self.note(ctx.me(), Seen::Delivered { partition, offsets, ids });
                let tag = self.next_work;
                self.next_work += 1;
                self.processing.insert(tag, (partition, next));
                let cost = self.cost_per_record.as_nanos() * records.len() as u64;
                ctx.spend_cpu(SimDuration::from_nanos(cost), tag);
            }
            _ => {}
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, _tag: u64) {
        self.consumer.on_timer(ctx, timer);
    }
    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        // Work for a batch of a partition lost meanwhile commits nothing.
        if let Some((partition, next)) = self.processing.remove(&tag) {
            self.consumer.commit(ctx, partition, next);
            self.consumer.resume(ctx, partition);
        }
    }
}

/// A world with a broker node (syncs take `fsync`), a writer node and
/// `readers` reader nodes.
struct World {
    sim: Sim<Msg>,
    journal: Shared,
    broker_node: NodeId,
    broker: ProcessId,
    reader_nodes: Vec<NodeId>,
    readers: Vec<ProcessId>,
}

struct Setup {
    seed: u64,
    partitions: u32,
    readers: usize,
    records: u64,
    interval: SimDuration,
    fsync: SimDuration,
    cost_per_record: SimDuration,
    link: LinkConfig,
    broker_config: fn(&mut BrokerConfig),
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            seed: 1,
            partitions: 4,
            readers: 2,
            records: 100,
            interval: ms(10),
            fsync: ms(2),
            cost_per_record: ms(1),
            link: LinkConfig::constant(ms(1)),
            broker_config: |_| {},
        }
    }
}

fn world(setup: Setup) -> World {
    let mut sim = Sim::new(SimConfig::new(Seed(setup.seed)));
    sim.set_default_link(setup.link.clone());
    let journal: Shared = Rc::default();
    let mut broker_node_config = NodeConfig::new("kafka");
    broker_node_config.fsync = Dist::constant(setup.fsync);
    let broker_node = sim.add_node(broker_node_config);
    let mut config = BrokerConfig::new(vec![TopicConfig::new(TOPIC, setup.partitions)]);
    (setup.broker_config)(&mut config);
    let broker = Broker::<u64>::new(config).expect("valid config");
    let broker_id = sim.spawn(broker_node, "broker", move || broker.clone());
    let writer_node = sim.add_node(NodeConfig::new("writer"));
    let (count, interval) = (setup.records, setup.interval);
    let writer_journal = journal.clone();
    sim.spawn(writer_node, "writer", move || {
        Writer::new(broker_id, writer_journal.clone(), count, interval)
    });
    let mut reader_nodes = Vec::new();
    let mut readers = Vec::new();
    for i in 0..setup.readers {
        let node = sim.add_node(NodeConfig::new(format!("reader{i}")));
        let reader_journal = journal.clone();
        let cost = setup.cost_per_record;
        readers.push(sim.spawn(node, format!("reader{i}"), move || {
            Reader::new(broker_id, reader_journal.clone(), cost)
        }));
        reader_nodes.push(node);
    }
    World { sim, journal, broker_node, broker: broker_id, reader_nodes, readers }
}

/// Keeps the broker's component trace events: (time, kind, key, value).
#[derive(Default)]
struct ComponentSink {
    events: Vec<(SimTime, &'static str, u64, i64)>,
}

impl TraceSink for ComponentSink {
    fn record(&mut self, record: &TraceRecord<'_>) {
        if let TraceEvent::Component { component: Component::Broker, kind, key, value, .. } =
            record.event
        {
            self.events.push((record.time, kind, *key, *value));
        }
    }
}

fn attach_sink(sim: &mut Sim<Msg>) -> Rc<RefCell<ComponentSink>> {
    let sink: Rc<RefCell<ComponentSink>> = Rc::default();
    sim.set_trace_sink(Box::new(sink.clone()));
    sink
}

fn kinds(sink: &Rc<RefCell<ComponentSink>>) -> BTreeSet<&'static str> {
    sink.borrow().events.iter().map(|(_, kind, _, _)| *kind).collect()
}

fn count_kind(sink: &Rc<RefCell<ComponentSink>>, wanted: &str) -> usize {
    sink.borrow().events.iter().filter(|(_, kind, _, _)| *kind == wanted).count()
}

/// Checks the broker laws on what readers saw; returns the first broken
/// one as a message.
fn check_laws(world: &World) -> Result<(), String> {
    let journal = world.journal.borrow();
    // At-least-once: every acknowledged record reached some reader.
    let delivered: BTreeSet<(u32, u64, u64)> = journal
        .seen
        .iter()
        .filter_map(|(_, _, seen)| match seen {
            Seen::Delivered { partition, offsets, ids } => Some(
                offsets
                    .iter()
                    .zip(ids)
                    .map(|(offset, id)| (*partition, *offset, *id))
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    for acked in &journal.acked {
        if !delivered.contains(acked) {
            return Err(format!("acknowledged {acked:?} was never delivered"));
        }
    }
    // Order: within one ownership of a partition by one reader's life,
    // deliveries continue exactly where the previous one ended, starting
    // from the committed offset it was assigned with.
    let mut expected: BTreeMap<(ProcessId, u32, u32), u64> = BTreeMap::new();
    for (reader, life, seen) in &journal.seen {
        match seen {
            Seen::Added { partition, committed } => {
                expected.insert((*reader, *life, *partition), *committed);
            }
            Seen::Revoked { partition } => {
                expected.remove(&(*reader, *life, *partition));
            }
            Seen::Delivered { partition, offsets, .. } => {
                let Some(next) = expected.get_mut(&(*reader, *life, *partition)) else {
                    return Err(format!(
                        "{reader} life {life} got partition {partition} it does not own"
                    ));
                };
                for offset in offsets {
                    if offset != next {
                        return Err(format!(
                            "{reader} life {life} partition {partition}: got {offset}, expected {next}"
                        ));
                    }
                    *next += 1;
                }
            }
        }
    }
    // One owner: the live readers' views split the partitions exactly as
    // the broker's table does.
    let broker = world.sim.process_state::<Broker<u64>>(world.broker).ok_or("broker down")?;
    let partitions = broker.config().topics[0].partitions;
    let mut owners: BTreeMap<u32, Vec<ProcessId>> = BTreeMap::new();
    for reader in &world.readers {
        if let Some(state) = world.sim.process_state::<Reader>(*reader) {
            for partition in state.consumer.partitions() {
                owners.entry(partition).or_default().push(*reader);
            }
        }
    }
    for partition in 0..partitions {
        let owner = broker.owner(GROUP, TOPIC, partition);
        let believed = owners.get(&partition).cloned().unwrap_or_default();
        if believed.len() != 1 || Some(believed[0]) != owner {
            return Err(format!(
                "partition {partition}: broker says {owner:?}, readers {believed:?}"
            ));
        }
    }
    Ok(())
}

/// The tests live in `kit::broker`, so `cargo test -p sim kit::` selects
/// them along with the unit tests of `sim::kit`.
mod kit {
    mod broker {
        use super::super::*;

        #[test]
        fn every_record_is_delivered_in_order_and_committed_without_faults() {
            // Goal: the plain path works end to end: publish, deliver, commit, and the trace says so.
            let mut world = world(Setup::default());
            let sink = attach_sink(&mut world.sim);
            world.sim.run_until(at_ms(3_000));
            check_laws(&world).unwrap();
            let journal = world.journal.borrow();
            assert_eq!(journal.acked.len(), 100);
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            for partition in 0..4 {
                let end = broker.high_watermark(TOPIC, partition).unwrap();
                assert_eq!(broker.committed_offset(GROUP, TOPIC, partition), Some(end));
            }
            let kinds = kinds(&sink);
            for kind in
                ["published", "delivered", "committed", "rebalanced", "member_joined", "assigned"]
            {
                assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
            }
            assert_eq!(
                count_kind(&sink, "redelivered"),
                0,
                "nothing is delivered twice without faults"
            );
        }

        #[test]
        fn a_broker_crash_loses_only_unacknowledged_records_and_the_producer_retries_them() {
            // Goal: an ack means durable: a crash between append and sync loses the
            // record, unacked, and the producer's retry brings it back.
            let mut world = world(Setup { records: 1, fsync: ms(10), ..Setup::default() });
            let sink = attach_sink(&mut world.sim);
            let broker_node = world.broker_node;
            // The record is sent at 10 ms, appended at 11 ms, synced at 21 ms: the
            // crash at 15 ms falls in between.
            world.sim.schedule_faults(&FaultSchedule::new().window(
                at_ms(15),
                at_ms(100),
                Fault::CrashNode { node: broker_node },
            ));
            // The producer's retry goes out at 210 ms (its timeout is 200 ms).
            world.sim.run_until(at_ms(205));
            assert!(world.journal.borrow().acked.is_empty(), "not acknowledged before the retry");
            assert_eq!(world.sim.fired_faults()[0].touched.writes_lost, 1);
            world.sim.run_until(at_ms(2_000));
            let journal = world.journal.borrow();
            assert_eq!(journal.acked.len(), 1);
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            let records: usize = (0..4).map(|p| broker.records(TOPIC, p).len()).sum();
            assert_eq!(records, 1, "the lost append is gone; only the retried one is stored");
            assert!(kinds(&sink).contains("publish_retried"));
            assert_eq!(count_kind(&sink, "published"), 1);
            drop(journal);
            check_laws(&world).unwrap();
        }

        #[test]
        fn a_reader_crashing_before_its_commit_gets_the_records_again() {
            // Goal: at-least-once: what a crashed reader had not committed is
            // delivered again after it restarts, and the broker traces the redelivery.
            let mut world = world(Setup {
                readers: 1,
                partitions: 1,
                records: 10,
                interval: ms(1),
                cost_per_record: ms(100),
                ..Setup::default()
            });
            let sink = attach_sink(&mut world.sim);
            let reader_node = world.reader_nodes[0];
            // Processing takes 100 ms per record, so the reader is still busy with
            // its first batch of 10 at 250 ms and has committed nothing.
            world.sim.schedule_faults(&FaultSchedule::new().window(
                at_ms(250),
                at_ms(500),
                Fault::CrashNode { node: reader_node },
            ));
            world.sim.run_until(at_ms(249));
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            let committed = broker.committed_offset(GROUP, TOPIC, 0).unwrap();
            world.sim.run_until(at_ms(5_000));
            check_laws(&world).unwrap();
            let journal = world.journal.borrow();
            let delivered_in_life = |wanted: u32| -> Vec<u64> {
                journal
                    .seen
                    .iter()
                    .filter_map(|(_, life, seen)| match seen {
                        Seen::Delivered { offsets, .. } if *life == wanted => Some(offsets.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect()
            };
            let (first_life, second_life) = (delivered_in_life(1), delivered_in_life(2));
            assert!(
                first_life.last() >= Some(&committed),
                "the first life had uncommitted records"
            );
            assert_eq!(
                second_life.first(),
                Some(&committed),
                "the second life starts at the last commit"
            );
            let again = first_life.iter().filter(|offset| **offset >= committed).count() as u64;
            assert!(count_kind(&sink, "redelivered") >= 1);
            assert_eq!(world.sim.metrics().counter("broker.redelivered"), again);
        }

        #[test]
        fn joins_leaves_and_expiries_rebalance_to_one_owner_per_partition() {
            // Goal: the group follows its membership: a member that leaves or falls
            // silent gives its partitions to the others, and one that comes back gets some again.
            let mut world =
                world(Setup { readers: 3, partitions: 6, records: 300, ..Setup::default() });
            let sink = attach_sink(&mut world.sim);
            let (leaver, silent_node) = (world.readers[0], world.reader_nodes[1]);
            world.sim.post(at_ms(1_000), leaver, Msg::Leave);
            world.sim.schedule_faults(&FaultSchedule::new().window(
                at_ms(1_500),
                at_ms(4_000),
                Fault::CrashNode { node: silent_node },
            ));
            world.sim.run_until(at_ms(3_500));
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            let survivor = world.readers[2];
            assert_eq!(broker.members(GROUP, TOPIC), vec![survivor]);
            for partition in 0..6 {
                assert_eq!(broker.owner(GROUP, TOPIC, partition), Some(survivor));
            }
            world.sim.run_until(at_ms(6_000));
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            assert_eq!(broker.members(GROUP, TOPIC), vec![world.readers[1], survivor]);
            let kinds = kinds(&sink);
            for kind in ["member_left", "member_expired", "member_joined", "rebalanced"] {
                assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
            }
            // The leaver is no member but still thinks nothing of its own.
            assert!(
                world.sim.process_state::<Reader>(leaver).unwrap().consumer.partitions().is_empty()
            );
            world.readers.remove(0);
            check_laws(&world).unwrap();
        }

        #[test]
        fn retention_removes_old_records_and_a_fetch_below_it_starts_at_the_earliest() {
            // Goal: retention by count bounds each partition, and a group that is
            // further behind than retention resumes at the earliest record kept.
            let mut world = world(Setup {
                readers: 0,
                partitions: 1,
                records: 20,
                broker_config: |config| config.retention_records = 5,
                ..Setup::default()
            });
            let sink = attach_sink(&mut world.sim);
            world.sim.run_until(at_ms(1_000));
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            assert_eq!(broker.low_watermark(TOPIC, 0), Some(15));
            assert_eq!(broker.records(TOPIC, 0).len(), 5);
            assert!(kinds(&sink).contains("retained"));
            // A reader joining now asks for offset 0 and gets 15..20.
            let node = world.sim.add_node(NodeConfig::new("late"));
            let (broker_id, journal) = (world.broker, world.journal.clone());
            let late = world
                .sim
                .spawn(node, "late", move || Reader::new(broker_id, journal.clone(), ms(1)));
            world.sim.run_until(at_ms(2_000));
            let journal = world.journal.borrow();
            let offsets: Vec<u64> = journal
                .seen
                .iter()
                .filter_map(|(reader, _, seen)| match seen {
                    Seen::Delivered { offsets, .. } if *reader == late => Some(offsets.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(offsets, (15..20).collect::<Vec<_>>());
            assert!(kinds(&sink).contains("fetch_reset"));
        }

        #[test]
        fn age_retention_removes_records_older_than_the_retention_age() {
            // Goal: records older than the retention age disappear at the broker's next tick.
            let mut world = world(Setup {
                readers: 0,
                partitions: 1,
                records: 10,
                broker_config: |config| config.retention_age = Some(ms(500)),
                ..Setup::default()
            });
            world.sim.run_until(at_ms(300));
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            assert_eq!(broker.records(TOPIC, 0).len(), 10);
            world.sim.run_until(at_ms(1_000));
            let broker = world.sim.process_state::<Broker<u64>>(world.broker).unwrap();
            assert!(broker.records(TOPIC, 0).is_empty());
            assert_eq!(broker.low_watermark(TOPIC, 0), Some(10));
            assert_eq!(world.sim.metrics().counter("broker.retained"), 10);
        }

        #[test]
        fn a_broker_restart_recovers_records_and_commits_and_readers_carry_on() {
            // Goal: the broker can fail: after a restart it serves what was durable,
            // readers rejoin by heartbeat, and nothing acknowledged is missed.
            let mut world = world(Setup { records: 200, ..Setup::default() });
            let sink = attach_sink(&mut world.sim);
            let broker_node = world.broker_node;
            world.sim.schedule_faults(&FaultSchedule::new().window(
                at_ms(1_000),
                at_ms(1_500),
                Fault::CrashNode { node: broker_node },
            ));
            world.sim.run_until(at_ms(6_000));
            check_laws(&world).unwrap();
            assert!(kinds(&sink).contains("recovered"));
            assert_eq!(world.journal.borrow().acked.len(), 200);
        }

        #[test]
        fn the_same_seed_and_faults_give_the_same_trace() {
            // Goal: the broker, its clients and their retries are deterministic.
            let run = || {
                let mut world = world(Setup { records: 50, ..Setup::default() });
                let broker_node = world.broker_node;
                world.sim.schedule_faults(&FaultSchedule::new().window(
                    at_ms(200),
                    at_ms(400),
                    Fault::CrashNode { node: broker_node },
                ));
                world.sim.run_until(at_ms(2_000));
                world.sim.trace_hash()
            };
            assert_eq!(run(), run());
        }

        #[test]
        fn bad_configurations_are_rejected_naming_the_field() {
            // Goal: every listed bad value is refused when the component is built, naming its field.
            fn field_of(change: fn(&mut BrokerConfig)) -> String {
                let mut config = BrokerConfig::new(vec![TopicConfig::new(TOPIC, 2)]);
                change(&mut config);
                Broker::<u64>::new(config).unwrap_err().field
            }
            assert_eq!(field_of(|c| c.topics[0].partitions = 0), "broker.topics[0].partitions");
            assert_eq!(field_of(|c| c.retention_records = 0), "broker.retention_records");
            assert_eq!(
                field_of(|c| c.retention_age = Some(SimDuration::ZERO)),
                "broker.retention_age"
            );
            assert_eq!(field_of(|c| c.max_batch = 0), "broker.max_batch");
            assert_eq!(
                field_of(|c| c.session.heartbeat_interval = SimDuration::ZERO),
                "broker.session.heartbeat_interval"
            );
            assert_eq!(
                field_of(|c| c.session.session_timeout = c.session.heartbeat_interval),
                "broker.session.session_timeout"
            );
            assert_eq!(
                field_of(|c| c.topics.push(TopicConfig::new(TOPIC, 1))),
                "broker.topics[1].name"
            );
            let mut consumer = ConsumerConfig::new(SessionConfig::default());
            consumer.max_batch = 0;
            let error = Consumer::<u64>::new(consumer, ProcessId(0), GROUP, TOPIC).unwrap_err();
            assert_eq!(error.field, "consumer.max_batch");
            assert_eq!(error.to_string(), "consumer.max_batch = 0: expected at least 1");
            let producer =
                ProducerConfig { retry_timeout: SimDuration::ZERO, ..ProducerConfig::default() };
            let error = Producer::<u64>::new(producer, ProcessId(0)).unwrap_err();
            assert_eq!(error.field, "producer.retry_timeout");
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

            /// Law: at-least-once, order and one owner. Whatever the seed and
            /// whenever a reader and the broker crash (over a network that loses,
            /// duplicates and reorders a little), every acknowledged publish is
            /// delivered to the group at least once, each reader sees each partition
            /// in order from where its group left off, and in the end every
            /// partition has exactly one owner, agreed on by broker and readers.
            #[test]
            fn acknowledged_records_are_delivered_at_least_once_in_order_despite_crashes(
                seed in any::<u64>(),
                reader_crash_ms in 100u64..2_500,
                reader_down_ms in 1u64..2_000,
                broker_crash_ms in 100u64..2_500,
                broker_down_ms in 1u64..1_500,
                crash_reader in any::<bool>(),
                crash_broker in any::<bool>(),
            ) {
                let mut link = LinkConfig::with_latency(Dist::constant(ms(1)));
                link.loss = 0.01;
                link.duplicate = 0.02;
                link.reorder = 0.05;
                link.reorder_window = ms(5);
                let mut world = world(Setup {
                    seed,
                    readers: 2,
                    partitions: 3,
                    records: 150,
                    link,
                    ..Setup::default()
                });
                let mut faults = FaultSchedule::new();
                if crash_reader {
                    faults = faults.window(
                        at_ms(reader_crash_ms),
                        at_ms(reader_crash_ms + reader_down_ms),
                        Fault::CrashNode { node: world.reader_nodes[0] },
                    );
                }
                if crash_broker {
                    faults = faults.window(
                        at_ms(broker_crash_ms),
                        at_ms(broker_crash_ms + broker_down_ms),
                        Fault::CrashNode { node: world.broker_node },
                    );
                }
                world.sim.schedule_faults(&faults);
                world.sim.run_until(at_ms(15_000));
                prop_assert_eq!(world.journal.borrow().acked.len(), 150, "every record got acknowledged");
                if let Err(broken) = check_laws(&world) {
                    prop_assert!(false, "{}", broken);
                }
            }

            /// Law: after the rebalances that membership churn causes, each
            /// partition has exactly one owner, and delivery stays
            /// at-least-once and in order, even when every reader and the
            /// broker crash at arbitrary times over a rough network.
            #[test]
            fn partitions_keep_exactly_one_owner_through_membership_churn(
                seed in any::<u64>(),
                crashes in proptest::collection::vec((0usize..4, 50u64..3_000, 1u64..1_500), 1..6),
            ) {
                let mut link = LinkConfig::with_latency(Dist::uniform(ms(1), ms(3)));
                link.loss = 0.03;
                link.duplicate = 0.05;
                link.reorder = 0.2;
                link.reorder_window = ms(20);
                let mut world = world(Setup {
                    seed,
                    readers: 3,
                    partitions: 5,
                    records: 200,
                    link,
                    ..Setup::default()
                });
                // Target 3 is the broker; 0..3 are readers. Windows on one
                // node may overlap: a crash of a down node and a restart of
                // an up one do nothing.
                let mut faults = FaultSchedule::new();
                for (target, at, down) in crashes {
                    let node = if target == 3 { world.broker_node } else { world.reader_nodes[target] };
                    faults = faults.window(at_ms(at), at_ms(at + down), Fault::CrashNode { node });
                }
                world.sim.schedule_faults(&faults);
                world.sim.run_until(at_ms(8_000));
                // Bring every node back up for the end of the run.
                for node in world.reader_nodes.clone().into_iter().chain([world.broker_node]) {
                    world.sim.inject_fault(Fault::RestartNode { node });
                }
                world.sim.run_until(at_ms(20_000));
                prop_assert_eq!(world.journal.borrow().acked.len(), 200, "every record got acknowledged");
                if let Err(broken) = check_laws(&world) {
                    prop_assert!(false, "{}", broken);
                }
            }
        }
    }
}
