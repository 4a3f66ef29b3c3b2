use super::*;
use crate::net::LinkConfig;
use crate::rng::Seed;
use crate::time::SimTime;
use crate::trace::{TraceEvent, TraceRecord, TraceSink};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

type World = Flow<u64>;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn micros(micros: u64) -> SimDuration {
    SimDuration::from_micros(micros)
}

fn secs(secs: u64) -> SimTime {
    SimTime::from_nanos(secs * 1_000_000_000)
}

/// One backpressure trace event: (kind, key, value).
type Event = (&'static str, u64, i64);

/// Keeps the backpressure trace events of a run.
#[derive(Clone, Default)]
struct Events(Rc<RefCell<Vec<Event>>>);

impl TraceSink for Events {
    fn record(&mut self, record: &TraceRecord<'_>) {
        if let TraceEvent::Component {
            component: Component::Backpressure, kind, key, value, ..
        } = record.event
        {
            self.0.borrow_mut().push((kind, *key, *value));
        }
    }
}

impl Events {
    fn count(&self, kind: &str) -> usize {
        self.0.borrow().iter().filter(|(k, _, _)| *k == kind).count()
    }
}

/// A producer and a consumer on two one-core nodes joined by a 1 ms link.
struct Line {
    sim: Sim<World>,
    producer: ProcessId,
    consumer: ProcessId,
    events: Events,
}

fn line(
    interval: SimDuration,
    item_count: Option<u64>,
    pace: Pace,
    service_time: SimDuration,
    buffer: BufferConfig,
    intake: Intake,
    link: LinkConfig,
) -> Line {
    let mut sim = Sim::new(SimConfig::new(Seed(4)));
    let events = Events::default();
    sim.set_trace_sink(Box::new(events.clone()));
    sim.set_default_link(link);
    let upstream = sim.add_node(NodeConfig::new("upstream"));
    let downstream = sim.add_node(NodeConfig::new("downstream"));
    let (producer_id, consumer_id) = (ProcessId(0), ProcessId(1));
    let config = ProducerConfig {
        name: "producer".into(),
        downstream: consumer_id,
        interval,
        item_count,
        pace,
    };
    let producer: Producer<World, u64> = Producer::new(config, |sequence| sequence).unwrap();
    let config = ConsumerConfig { upstream: producer_id, buffer, service_time, intake };
    let consumer: Consumer<World, u64> = Consumer::new(config).unwrap();
    assert_eq!(sim.spawn(upstream, "producer", move || producer.clone()), producer_id);
    assert_eq!(sim.spawn(downstream, "consumer", move || consumer.clone()), consumer_id);
    Line { sim, producer: producer_id, consumer: consumer_id, events }
}

impl Line {
    fn producer(&self) -> &Producer<World, u64> {
        self.sim.process_state(self.producer).unwrap()
    }
    fn consumer(&self) -> &Consumer<World, u64> {
        self.sim.process_state(self.consumer).unwrap()
    }
}

// ----- the buffer -----

#[test]
fn drop_newest_keeps_the_first_items_and_discards_arrivals() {
    // Goal: a full DropNewest buffer hands back the arriving item untouched.
    let mut buffer =
        BoundedBuffer::new(BufferConfig::bounded("b", 2, OverflowPolicy::DropNewest)).unwrap();
    assert_eq!(buffer.offer(1), Offer::Accepted);
    assert_eq!(buffer.offer(2), Offer::Accepted);
    assert_eq!(buffer.offer(3), Offer::DroppedNewest(3));
    assert_eq!(buffer.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(buffer.stats().dropped, 1);
}

#[test]
fn drop_oldest_keeps_the_freshest_items() {
    // Goal: a full DropOldest buffer evicts its head to take the arrival.
    let mut buffer =
        BoundedBuffer::new(BufferConfig::bounded("b", 2, OverflowPolicy::DropOldest)).unwrap();
    for item in 1..=4 {
        buffer.offer(item);
    }
    assert_eq!(buffer.iter().copied().collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(buffer.stats().dropped, 2);
    assert_eq!(buffer.take(), Some(3));
}

#[test]
fn reject_refuses_arrivals_and_counts_them_apart_from_drops() {
    // Goal: Reject is counted as rejected, not dropped, and is not accepted.
    let mut buffer =
        BoundedBuffer::new(BufferConfig::bounded("b", 1, OverflowPolicy::Reject)).unwrap();
    assert!(buffer.offer('a').is_accepted());
    let refused = buffer.offer('b');
    assert_eq!(refused, Offer::Rejected('b'));
    assert!(!refused.is_accepted());
    assert_eq!((buffer.stats().rejected, buffer.stats().dropped), (1, 0));
}

#[test]
fn an_unbounded_buffer_never_overflows() {
    // Goal: without a capacity every offer is accepted and the length grows.
    let mut buffer = BoundedBuffer::new(BufferConfig::unbounded("b")).unwrap();
    for item in 0..10_000 {
        assert_eq!(buffer.offer(item), Offer::Accepted);
    }
    assert!(!buffer.is_full());
    assert_eq!((buffer.len(), buffer.stats().high_water), (10_000, 10_000));
}

#[test]
fn policies_and_paces_parse_from_their_names_and_unknown_names_name_the_field() {
    // Goal: FromStr accepts the documented names and rejects others with the field.
    for policy in [OverflowPolicy::DropNewest, OverflowPolicy::DropOldest, OverflowPolicy::Reject] {
        assert_eq!(policy.name().parse::<OverflowPolicy>(), Ok(policy));
    }
    let error = "drop_random".parse::<OverflowPolicy>().unwrap_err();
    assert_eq!(error.field, "backpressure.overflow_policy");
    assert!(error.to_string().contains("drop_random"));
    assert_eq!("on_demand".parse::<Pace>(), Ok(Pace::OnDemand));
    assert_eq!("pull".parse::<Pace>().unwrap_err().field, "backpressure.pace");
}

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    // Goal: each bad value is caught at construction with its field.
    let field = |result: Result<(), ConfigError>| result.unwrap_err().field;
    let buffer = BufferConfig::bounded("inbox", 0, OverflowPolicy::Reject);
    assert_eq!(field(BoundedBuffer::<u8>::new(buffer).map(drop)), "backpressure.capacity");
    let buffer = BufferConfig::unbounded("");
    assert_eq!(field(buffer.validate()), "backpressure.name");

    let consumer = |buffer: BufferConfig, intake: Intake| {
        let config = ConsumerConfig { upstream: ProcessId(0), buffer, service_time: ms(1), intake };
        Consumer::<World, u64>::new(config).map(drop)
    };
    let bounded = BufferConfig::bounded("inbox", 4, OverflowPolicy::Reject);
    let demand = |request_batch| Intake::Demand { request_batch };
    assert_eq!(field(consumer(bounded.clone(), demand(0))), "backpressure.request_batch");
    assert_eq!(field(consumer(bounded.clone(), demand(5))), "backpressure.request_batch");
    assert_eq!(field(consumer(BufferConfig::unbounded("u"), demand(1))), "backpressure.capacity");
    assert!(consumer(bounded, demand(4)).is_ok());

    let producer = |interval, item_count| {
        let config = ProducerConfig {
            name: "p".into(),
            downstream: ProcessId(1),
            interval,
            item_count,
            pace: Pace::Push,
        };
        Producer::<World, u64>::new(config, |sequence| sequence).map(drop)
    };
    assert_eq!(field(producer(SimDuration::ZERO, None)), "backpressure.interval");
    assert_eq!(field(producer(ms(1), Some(0))), "backpressure.item_count");
}

// ----- demand bookkeeping -----

#[test]
fn demand_asks_for_the_bound_then_refills_in_batches() {
    // Goal: the first request fills the bound; later ones wait for a batch.
    let mut demand = Demand::new(5, 3).unwrap();
    assert_eq!(demand.start(), 5);
    for _ in 0..5 {
        assert!(demand.received());
    }
    assert_eq!((demand.held(), demand.outstanding()), (5, 0));
    assert_eq!(demand.released(), None);
    assert_eq!(demand.released(), None);
    assert_eq!(demand.released(), Some(3));
    assert_eq!((demand.held(), demand.outstanding()), (2, 3));
}

#[derive(Clone, Debug)]
enum Step {
    /// The producer sends one item, if it has demand.
    Deliver,
    /// The consumer lets one held item go, if it holds any.
    Release,
}

proptest! {
    /// Law: a drop policy conserves items (offered = taken + dropped +
    /// rejected + held, so delivered + dropped = produced once drained),
    /// never holds more than its capacity, and keeps FIFO order.
    #[test]
    fn a_drop_policy_conserves_items_and_never_exceeds_capacity(
        capacity in 1u32..8,
        policy in prop_oneof![
            Just(OverflowPolicy::DropNewest),
            Just(OverflowPolicy::DropOldest),
            Just(OverflowPolicy::Reject),
        ],
        operations in proptest::collection::vec(any::<bool>(), 0..200),
    ) {
        let mut buffer = BoundedBuffer::new(BufferConfig::bounded("b", capacity, policy)).unwrap();
        let mut next = 0u64;
        let mut delivered = Vec::new();
        for offer in operations {
            if offer {
                buffer.offer(next);
                next += 1;
            } else if let Some(item) = buffer.take() {
                delivered.push(item);
            }
            let stats = buffer.stats();
            prop_assert!(buffer.len() <= capacity as usize);
            prop_assert_eq!(
                stats.offered,
                stats.taken + stats.dropped + stats.rejected + buffer.len() as u64
            );
        }
        while let Some(item) = buffer.take() {
            delivered.push(item);
        }
        let stats = buffer.stats();
        prop_assert_eq!(delivered.len() as u64 + stats.dropped + stats.rejected, next);
        prop_assert!(delivered.windows(2).all(|pair| pair[0] < pair[1]), "FIFO order kept");
    }

    /// Law: whatever the interleaving of arrivals and releases, a consumer
    /// that follows the demand protocol never has more than its bound held
    /// or asked for, and never receives an item it did not ask for.
    #[test]
    fn demand_never_lets_held_plus_outstanding_exceed_the_bound(
        bound in 1u32..20,
        batch_seed in 0u32..20,
        steps in proptest::collection::vec(
            prop_oneof![Just(Step::Deliver), Just(Step::Release)], 0..300),
    ) {
        let request_batch = 1 + batch_seed % bound;
        let mut demand = Demand::new(bound, request_batch).unwrap();
        let mut producer_credit = u64::from(demand.start());
        for step in steps {
            match step {
                Step::Deliver if producer_credit > 0 => {
                    producer_credit -= 1;
                    prop_assert!(demand.received());
                }
                Step::Release if demand.held() > 0 => {
                    producer_credit += u64::from(demand.released().unwrap_or(0));
                }
                _ => {}
            }
            prop_assert!(demand.held() + demand.outstanding() <= bound);
            prop_assert_eq!(u64::from(demand.outstanding()), producer_credit);
        }
    }
}

// ----- in a simulation -----

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Law: with demand signalling the consumer's buffer never exceeds its
    /// bound and nothing is shed, whatever the producer's and consumer's
    /// rates, the bound, the batch and the link latency; every item made is
    /// processed and the stream completes.
    #[test]
    fn with_demand_the_consumer_buffer_never_exceeds_its_bound_whatever_the_rates(
        interval_us in 100u64..5_000,
        service_us in 100u64..5_000,
        bound in 1u32..12,
        batch_seed in 0u32..12,
        latency_us in 10u64..3_000,
        count in 1u64..150,
    ) {
        let request_batch = 1 + batch_seed % bound;
        let mut line = line(
            micros(interval_us),
            Some(count),
            Pace::OnDemand,
            micros(service_us),
            BufferConfig::bounded("inbox", bound, OverflowPolicy::Reject),
            Intake::Demand { request_batch },
            LinkConfig::constant(micros(latency_us)),
        );
        line.sim.run();
        let consumer = line.consumer();
        let stats = consumer.buffer().stats();
        prop_assert!(stats.high_water <= u64::from(bound), "high water {}", stats.high_water);
        prop_assert!(consumer.holding_high_water() <= u64::from(bound));
        prop_assert_eq!((stats.rejected, stats.dropped, consumer.unrequested()), (0, 0, 0));
        prop_assert_eq!(consumer.processed(), count);
        prop_assert!(consumer.is_completed());
        prop_assert_eq!(line.producer().sent(), count);
        let series = line.sim.metrics().series("inbox.length").unwrap();
        prop_assert!(series.buckets.iter().all(|bucket| bucket.max <= f64::from(bound)));
    }
}

/// Lesson 4's numbers: the producer makes 1,000 items/s for 60 s, the
/// consumer handles 800/s.
fn lesson_four(pace: Pace, buffer: BufferConfig, intake: Intake) -> Line {
    line(ms(1), None, pace, micros(1_250), buffer, intake, LinkConfig::constant(ms(1)))
}

#[test]
fn unbounded_push_with_a_faster_producer_grows_the_queue_linearly() {
    // Goal: lesson 4, unbounded variant: the queue grows by 200 items/s, to
    // about 12,000 at 60 s; an item arriving then waits 12,000 / 800 = 15 s,
    // and the item finished at 60 s (made at 48 s) waited about 12 s.
    let mut line = lesson_four(Pace::Push, BufferConfig::unbounded("inbox"), Intake::Push);
    line.sim.run_until(secs(30));
    let at_30 = line.consumer().buffer().len() as f64;
    line.sim.run_until(secs(60));
    let at_60 = line.consumer().buffer().len() as f64;
    assert!((at_60 - 12_000.0).abs() <= 0.02 * 12_000.0, "queue at 60 s: {at_60}");
    assert!((at_30 - 6_000.0).abs() <= 0.02 * 6_000.0, "queue at 30 s: {at_30}");
    assert!((line.producer().sent() as f64 - 60_000.0).abs() <= 0.02 * 60_000.0);
    let wait_for_newcomer = at_60 * micros(1_250).as_secs_f64();
    assert!((wait_for_newcomer - 15.0).abs() <= 0.02 * 15.0, "{wait_for_newcomer} s");
    let latency = line.sim.metrics().latency("inbox.latency").unwrap();
    let worst = latency.max_ns as f64 / 1e9;
    assert!((worst - 12.0).abs() <= 0.02 * 12.0, "worst wait {worst} s");
    assert_eq!(line.consumer().buffer().stats().dropped, 0);
    // No demand, no pauses: the producer never heard of the consumer.
    assert_eq!(line.events.count("requested") + line.events.count("paused"), 0);
}

#[test]
fn bounded_demand_slows_the_producer_to_the_consumer_pace() {
    // Goal: lesson 4, bounded variant: with 100 slots and request(n), the
    // producer sends about 800 items/s, the queue stays at most 100, the
    // worst wait stays near 100/800 s, and nothing is lost.
    let buffer = BufferConfig::bounded("inbox", 100, OverflowPolicy::Reject);
    let mut line = lesson_four(Pace::OnDemand, buffer, Intake::Demand { request_batch: 1 });
    line.sim.run_until(secs(60));
    let sent = line.producer().sent() as f64;
    assert!((sent - 48_000.0).abs() <= 0.02 * 48_000.0, "sent in 60 s: {sent}");
    let consumer = line.consumer();
    let stats = consumer.buffer().stats();
    assert!(stats.high_water <= 100, "high water {}", stats.high_water);
    // The bound is nearly used in full (a few requested items are always
    // on the wire), never exceeded.
    assert!((90..=100).contains(&consumer.holding_high_water()));
    assert_eq!((stats.rejected, stats.dropped), (0, 0));
    let latency = line.sim.metrics().latency("inbox.latency").unwrap();
    // 100 waiting items at 1.25 ms each, plus the item's own service, the
    // source's pause and the link.
    assert!(latency.max_ns <= 130_000_000, "worst wait {} ns", latency.max_ns);
    // The source paused and resumed again and again, and demand flowed.
    assert!(line.events.count("paused") > 1_000);
    assert!(line.events.count("resumed") > 1_000);
    assert!(line.events.count("requested") > 40_000);
    assert_eq!(line.sim.metrics().counter("producer.paused"), line.events.count("paused") as u64);
}

#[test]
fn bounded_push_sheds_load_and_every_item_is_accounted_for() {
    // Goal: a fast pusher into a small bounded buffer: each policy sheds,
    // traces and counts, and delivered + shed = produced.
    for policy in [OverflowPolicy::DropNewest, OverflowPolicy::DropOldest, OverflowPolicy::Reject] {
        let mut line = line(
            ms(1),
            Some(500),
            Pace::Push,
            ms(2),
            BufferConfig::bounded("inbox", 10, policy),
            Intake::Push,
            LinkConfig::constant(ms(1)),
        );
        line.sim.run();
        let consumer = line.consumer();
        let stats = consumer.buffer().stats();
        let shed = stats.dropped + stats.rejected;
        assert!(shed > 200, "{policy}: shed {shed}");
        assert_eq!(consumer.processed() + shed, 500, "{policy}");
        assert!(stats.high_water <= 10);
        assert!(consumer.is_completed());
        let kind = if policy == OverflowPolicy::Reject { "rejected" } else { "dropped" };
        assert_eq!(line.events.count(kind) as u64, shed, "{policy}");
        assert_eq!(line.sim.metrics().counter(&format!("inbox.{kind}")), shed);
        // Only a rejection is reported back to the producer.
        let refused = if policy == OverflowPolicy::Reject { shed } else { 0 };
        assert_eq!(line.producer().refused(), refused, "{policy}");
    }
}

#[test]
fn a_duplicating_network_cannot_overflow_a_demand_driven_buffer() {
    // Goal: items beyond demand (network duplicates) are counted as
    // unrequested and the bound still holds, shedding the excess visibly.
    let mut link = LinkConfig::constant(ms(1));
    link.duplicate = 0.3;
    let mut line = line(
        micros(500),
        Some(400),
        Pace::OnDemand,
        ms(1),
        BufferConfig::bounded("inbox", 5, OverflowPolicy::DropNewest),
        Intake::Demand { request_batch: 1 },
        link,
    );
    line.sim.run();
    let consumer = line.consumer();
    let stats = consumer.buffer().stats();
    assert!(consumer.unrequested() > 0);
    assert!(stats.high_water <= 5);
    assert_eq!(stats.offered, consumer.processed() + stats.dropped + stats.rejected);
    assert_eq!(line.events.count("dropped") as u64, stats.dropped);
}
