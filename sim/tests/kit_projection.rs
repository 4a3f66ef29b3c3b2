//! The CQRS projection in small worlds: it converges to the fold of the
//! event stream despite crashes, a rebuild gives the same model, its lag
//! is never negative, and lesson 10's outage drains at the predicted rate.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use sim::kit::Carry;
use sim::kit::broker::{
    Broker, BrokerConfig, BrokerMsg, Producer, ProducerConfig, SessionConfig, TopicConfig,
};
use sim::kit::projection::{Position, Projection, ProjectionConfig, ProjectionMsg, ReadModel};
use sim::trace::{TraceEvent, TraceRecord, TraceSink};
use sim::{
    ClockConfig, Component, Ctx, Dist, Fault, FaultSchedule, LinkConfig, Message, NodeConfig,
    NodeId, Process, ProcessId, Seed, Sim, SimConfig, SimDuration, SimTime, TimerId,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

const TOPIC: &str = "orders";

/// Every event applied, per partition, with its offset: equal to the fold
/// of the stream exactly when each event was applied once, in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    partitions: BTreeMap<u32, Vec<(u64, u64)>>,
}

impl ReadModel for Ledger {
    type Event = u64;
    type Query = ();
    type Answer = usize;
    fn apply(&mut self, position: Position, event: &u64) {
        self.partitions.entry(position.partition).or_default().push((position.offset, *event));
    }
    fn answer(&self, _query: &()) -> usize {
        self.partitions.values().map(Vec::len).sum()
    }
}

#[derive(Clone, Debug)]
enum Msg {
    Broker(BrokerMsg<u64>),
    Projection(ProjectionMsg<(), usize>),
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Broker(inner) => inner.label(),
            Msg::Projection(inner) => inner.label(),
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::Broker(inner) => inner.digest(),
            Msg::Projection(inner) => inner.digest(),
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

impl Carry<ProjectionMsg<(), usize>> for Msg {
    fn wrap(inner: ProjectionMsg<(), usize>) -> Self {
        Msg::Projection(inner)
    }
    fn unwrap(self) -> Result<ProjectionMsg<(), usize>, Self> {
        match self {
            Msg::Projection(inner) => Ok(inner),
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

/// Publishes one event every `interval` until `count`, keyed over eight
/// keys; the event is its sequence number.
struct Writer {
    producer: Producer<u64>,
    count: u64,
    interval: SimDuration,
    sent: u64,
    timer: Option<TimerId>,
}

impl Process<Msg> for Writer {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.timer = Some(ctx.set_timer(self.interval, 0));
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        if let Msg::Broker(message) = message {
            self.producer.on_message(ctx, &message);
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, _tag: u64) {
        if self.producer.on_timer(ctx, timer) || Some(timer) != self.timer {
            return;
        }
        self.producer.publish(ctx, TOPIC, self.sent % 8, self.sent).expect("room");
        self.sent += 1;
        if self.sent < self.count {
            self.timer = Some(ctx.set_timer(self.interval, 0));
        }
    }
}

/// Asks the projection once, after `ask_after`, and keeps the answer.
struct Asker {
    projection: ProcessId,
    ask_after: SimDuration,
    answer: Option<(usize, Vec<Position>)>,
}

impl Process<Msg> for Asker {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(self.ask_after, 0);
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        if let Msg::Projection(ProjectionMsg::Answered { answer, applied, .. }) = message {
            self.answer = Some((answer, applied));
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, _tag: u64) {
        let query = ProjectionMsg::Query { request: 1, query: () };
        ctx.send(self.projection, Msg::Projection(query));
    }
}

struct Setup {
    seed: u64,
    partitions: u32,
    events: u64,
    interval: SimDuration,
    event_cost: SimDuration,
    snapshot_every: u64,
    projection_clock: ClockConfig,
    link: LinkConfig,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            seed: 1,
            partitions: 2,
            events: 300,
            interval: ms(2),
            event_cost: SimDuration::from_micros(500),
            snapshot_every: 50,
            projection_clock: ClockConfig::PERFECT,
            link: LinkConfig::constant(ms(1)),
        }
    }
}

struct World {
    sim: Sim<Msg>,
    broker_node: NodeId,
    broker: ProcessId,
    projection_node: NodeId,
    projection: ProcessId,
    partitions: u32,
}

fn world(setup: Setup) -> World {
    let mut sim = Sim::new(SimConfig::new(Seed(setup.seed)));
    sim.set_default_link(setup.link.clone());
    let mut broker_node_config = NodeConfig::new("kafka");
    broker_node_config.fsync = Dist::constant(ms(1));
    let broker_node = sim.add_node(broker_node_config);
    let config = BrokerConfig::new(vec![TopicConfig::new(TOPIC, setup.partitions)]);
    let broker = Broker::<u64>::new(config).expect("valid config");
    let broker_id = sim.spawn(broker_node, "broker", move || broker.clone());
    let writer_node = sim.add_node(NodeConfig::new("writes"));
    let producer = Producer::new(ProducerConfig::default(), broker_id).expect("valid config");
    let (count, interval) = (setup.events, setup.interval);
    sim.spawn(writer_node, "writer", move || Writer {
        producer: producer.clone(),
        count,
        interval,
        sent: 0,
        timer: None,
    });
    let mut projection_node_config = NodeConfig::new("reads").clock(setup.projection_clock);
    projection_node_config.fsync = Dist::constant(ms(1));
    let projection_node = sim.add_node(projection_node_config);
    let mut config = ProjectionConfig::new("ledger", TOPIC, SessionConfig::default());
    config.event_cost = setup.event_cost;
    config.snapshot_every = setup.snapshot_every;
    let projection = Projection::<Ledger>::new(config, broker_id).expect("valid config");
    let projection_id = sim.spawn(projection_node, "projection", move || projection.clone());
    World {
        sim,
        broker_node,
        broker: broker_id,
        projection_node,
        projection: projection_id,
        partitions: setup.partitions,
    }
}

impl World {
    fn projection(&self) -> &Projection<Ledger> {
        self.sim.process_state::<Projection<Ledger>>(self.projection).expect("projection is up")
    }

    fn broker(&self) -> &Broker<u64> {
        self.sim.process_state::<Broker<u64>>(self.broker).expect("broker is up")
    }

    /// The fold of every event the broker holds, partition by partition in
    /// offset order.
    fn fold(&self) -> Ledger {
        let mut ledger = Ledger::default();
        for partition in 0..self.partitions {
            for record in self.broker().records(TOPIC, partition) {
                ledger.apply(Position { partition, offset: record.offset }, &record.payload);
            }
        }
        ledger
    }

    /// Events written but not yet applied, by the broker's reckoning.
    fn true_lag(&self) -> u64 {
        (0..self.partitions)
            .map(|partition| {
                let head = self.broker().high_watermark(TOPIC, partition).unwrap();
                head - self.projection().progress().applied(partition)
            })
            .sum()
    }
}

/// Keeps the projection's trace kinds.
#[derive(Default)]
struct KindSink {
    kinds: BTreeSet<&'static str>,
}

impl TraceSink for KindSink {
    fn record(&mut self, record: &TraceRecord<'_>) {
        if let TraceEvent::Component { component: Component::Projection, kind, .. } = record.event {
            self.kinds.insert(kind);
        }
    }
}

fn attach_sink(sim: &mut Sim<Msg>) -> Rc<RefCell<KindSink>> {
    let sink: Rc<RefCell<KindSink>> = Rc::default();
    sim.set_trace_sink(Box::new(sink.clone()));
    sink
}

/// The smallest sample of a series, if it has any.
fn series_min(sim: &Sim<Msg>, name: &str) -> Option<f64> {
    let series = sim.metrics().series(name)?;
    series
        .buckets
        .iter()
        .filter(|bucket| bucket.count > 0)
        .map(|bucket| bucket.min)
        .reduce(f64::min)
}

fn series_max(sim: &Sim<Msg>, name: &str) -> Option<f64> {
    let series = sim.metrics().series(name)?;
    series
        .buckets
        .iter()
        .filter(|bucket| bucket.count > 0)
        .map(|bucket| bucket.max)
        .reduce(f64::max)
}

/// The tests live in `kit::projection`, so `cargo test -p sim kit::` selects
/// them along with the unit tests of `sim::kit`.
mod kit {
    mod projection {
        use super::super::*;

        #[test]
        fn the_projection_follows_the_stream_and_answers_queries_with_its_position() {
            // Goal: the plain path: events are applied, snapshots written, offsets
            // committed, and a query's answer says how far the model had got.
            let mut world = world(Setup::default());
            let sink = attach_sink(&mut world.sim);
            let asker_node = world.sim.add_node(NodeConfig::new("client"));
            let projection = world.projection;
            let asker = world.sim.spawn(asker_node, "asker", move || Asker {
                projection,
                ask_after: ms(2_000),
                answer: None,
            });
            world.sim.run_until(at_ms(2_100));
            assert_eq!(world.projection().model(), &world.fold());
            let mut heads = Vec::new();
            for partition in 0..world.partitions {
                let head = world.broker().high_watermark(TOPIC, partition).unwrap();
                assert_eq!(world.broker().committed_offset("ledger", TOPIC, partition), Some(head));
                heads.push(Position { partition, offset: head });
            }
            let answer = world.sim.process_state::<Asker>(asker).unwrap().answer.clone();
            assert_eq!(
                answer,
                Some((300, heads)),
                "the answer counts every event and says how far it got"
            );
            let kinds = sink.borrow().kinds.clone();
            for kind in ["applied", "snapshot_written"] {
                assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
            }
            assert_eq!(world.sim.metrics().counter("projection.applied"), 300);
        }

        #[test]
        fn lesson_ten_an_outage_backlog_drains_at_capacity_minus_the_write_rate() {
            // Goal: lesson 10's arithmetic emerges: writes at 500 ev/s, capacity
            // 2,000 ev/s, projection down 5 s: 2,500 events behind, drained in
            // 2,500 / (2,000 - 500) ≈ 1.7 s (within 10%), with the time lag peaking near 5 s.
            let mut world = world(Setup {
                partitions: 1,
                events: 7_500,
                interval: ms(2),
                event_cost: SimDuration::from_micros(500),
                snapshot_every: 100,
                ..Setup::default()
            });
            let sink = attach_sink(&mut world.sim);
            let node = world.projection_node;
            world.sim.schedule_faults(&FaultSchedule::new().window(
                at_ms(5_000),
                at_ms(10_000),
                Fault::CrashNode { node },
            ));
            world.sim.run_until(at_ms(4_990));
            assert!(world.true_lag() <= 5, "keeping up before the outage: {}", world.true_lag());
            world.sim.run_until(at_ms(10_000));
            let mut drained_at = None;
            for step in 1..=1_000u64 {
                world.sim.run_until(at_ms(10_000 + step * 10));
                if world.sim.process_state::<Projection<Ledger>>(world.projection).is_some()
                    && world.true_lag() <= 10
                {
                    drained_at = Some(step * 10);
                    break;
                }
            }
            let drained_ms = drained_at.expect("the backlog drains") as f64;
            let predicted_ms = 2_500.0 / (2_000.0 - 500.0) * 1_000.0;
            assert!(
                (drained_ms - predicted_ms).abs() <= 0.1 * predicted_ms,
                "drained in {drained_ms} ms, predicted {predicted_ms:.0} ms"
            );
            let peak_ms = series_max(&world.sim, "projection.lag_ms").unwrap();
            assert!((4_900.0..=5_300.0).contains(&peak_ms), "time lag peaked at {peak_ms} ms");
            let peak_events = series_max(&world.sim, "projection.lag_events").unwrap();
            assert!(
                (2_400.0..=2_700.0).contains(&peak_events),
                "event lag peaked at {peak_events}"
            );
            world.sim.run_until(at_ms(17_000));
            assert_eq!(world.projection().model(), &world.fold());
            assert!(sink.borrow().kinds.contains("resumed"));
        }

        #[test]
        fn a_rebuild_replays_the_stream_into_the_same_model_and_is_traced() {
            // Goal: rebuilding from the log gives back the live model, even with a
            // crash in the middle of the rebuild.
            let mut world = world(Setup { events: 400, event_cost: ms(1), ..Setup::default() });
            let sink = attach_sink(&mut world.sim);
            world.sim.run_until(at_ms(3_000));
            let live = world.projection().model().clone();
            assert_eq!(live, world.fold());
            let projection = world.projection;
            world.sim.post(at_ms(3_000), projection, Msg::Projection(ProjectionMsg::Rebuild));
            world.sim.run_until(at_ms(3_150));
            assert!(world.projection().is_rebuilding());
            assert!(
                world.projection().model().answer(&()) < 400,
                "the rebuild started from nothing"
            );
            let node = world.projection_node;
            world.sim.schedule_faults(&FaultSchedule::new().window(
                at_ms(3_200),
                at_ms(3_700),
                Fault::CrashNode { node },
            ));
            world.sim.run_until(at_ms(6_000));
            assert!(!world.projection().is_rebuilding());
            assert_eq!(world.projection().model(), &live);
            let kinds = sink.borrow().kinds.clone();
            for kind in ["rebuild_started", "rebuilt", "resumed"] {
                assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
            }
        }

        #[test]
        fn bad_configurations_are_rejected_naming_the_field() {
            // Goal: a projection cannot be built from a bad configuration.
            let mut config = ProjectionConfig::new("ledger", TOPIC, SessionConfig::default());
            config.consumer.session.heartbeat_interval = SimDuration::ZERO;
            let error = Projection::<Ledger>::new(config, ProcessId(0)).unwrap_err();
            assert_eq!(error.field, "projection.consumer.session.heartbeat_interval");
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

            /// Law: convergence. Whatever the seed, the partitioning, the snapshot
            /// interval and when the projection and the broker crash, once writes
            /// stop and the projection catches up its model equals the fold of all
            /// events in order, and its offsets are committed.
            #[test]
            fn the_read_model_converges_to_the_fold_of_all_events_despite_crashes(
                seed in any::<u64>(),
                partitions in 1u32..4,
                snapshot_every in 1u64..80,
                projection_crash_ms in 50u64..1_200,
                projection_down_ms in 1u64..1_500,
                broker_crash_ms in 50u64..1_200,
                broker_down_ms in 1u64..1_000,
                crash_projection in any::<bool>(),
                crash_broker in any::<bool>(),
            ) {
                let mut link = LinkConfig::with_latency(Dist::constant(ms(1)));
                link.loss = 0.01;
                link.duplicate = 0.02;
                link.reorder = 0.05;
                link.reorder_window = ms(5);
                let mut world = world(Setup {
                    seed,
                    partitions,
                    events: 300,
                    event_cost: SimDuration::from_micros(1_500),
                    snapshot_every,
                    link,
                    ..Setup::default()
                });
                let mut faults = FaultSchedule::new();
                if crash_projection {
                    faults = faults.window(
                        at_ms(projection_crash_ms),
                        at_ms(projection_crash_ms + projection_down_ms),
                        Fault::CrashNode { node: world.projection_node },
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
                world.sim.run_until(at_ms(12_000));
                prop_assert_eq!(world.projection().model(), &world.fold());
                let mut sent: Vec<u64> = (0..partitions)
                    .flat_map(|partition| world.broker().records(TOPIC, partition))
                    .map(|record| record.payload)
                    .collect();
                sent.sort_unstable();
                sent.dedup();
                prop_assert_eq!(sent, (0..300).collect::<Vec<u64>>(), "every event reached the broker");
                for partition in 0..partitions {
                    let head = world.broker().high_watermark(TOPIC, partition);
                    prop_assert_eq!(world.broker().committed_offset("ledger", TOPIC, partition), head);
                }
            }

            /// Law: a rebuild yields the same model as the live one, whatever the
            /// seed and wherever a crash of the projection falls during it.
            #[test]
            fn a_rebuild_yields_the_same_model_as_the_live_one(
                seed in any::<u64>(),
                partitions in 1u32..4,
                crash_after_ms in 1u64..400,
                down_ms in 1u64..800,
            ) {
                let mut world = world(Setup { seed, partitions, events: 200, event_cost: ms(1), ..Setup::default() });
                world.sim.run_until(at_ms(2_000));
                let live = world.projection().model().clone();
                let projection = world.projection;
                world.sim.post(at_ms(2_000), projection, Msg::Projection(ProjectionMsg::Rebuild));
                let crash_at = 2_000 + crash_after_ms;
                world.sim.schedule_faults(&FaultSchedule::new().window(
                    at_ms(crash_at),
                    at_ms(crash_at + down_ms),
                    Fault::CrashNode { node: world.projection_node },
                ));
                world.sim.run_until(at_ms(6_000));
                prop_assert!(!world.projection().is_rebuilding());
                prop_assert_eq!(world.projection().model(), &live);
            }

            /// Law: lag never goes negative, in events or in time, even when the
            /// projection's clock is far behind or ahead of the broker's and it
            /// crashes on the way.
            #[test]
            fn lag_never_goes_negative(
                seed in any::<u64>(),
                clock_offset_ms in -500i64..500,
                crash_ms in 50u64..800,
                down_ms in 1u64..800,
            ) {
                let clock = ClockConfig { offset_ns: clock_offset_ms * 1_000_000, drift_ppm: 0.0 };
                let mut world = world(Setup { seed, projection_clock: clock, events: 200, ..Setup::default() });
                world.sim.schedule_faults(&FaultSchedule::new().window(
                    at_ms(crash_ms),
                    at_ms(crash_ms + down_ms),
                    Fault::CrashNode { node: world.projection_node },
                ));
                world.sim.run_until(at_ms(3_000));
                prop_assert!(series_min(&world.sim, "projection.lag_ms").unwrap() >= 0.0);
                prop_assert!(series_min(&world.sim, "projection.lag_events").unwrap() >= 0.0);
            }
        }
    }
}
