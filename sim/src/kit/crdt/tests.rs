use super::*;
use crate::clock::ClockConfig;
use crate::dist::Dist;
use crate::fault::{Fault, FaultSchedule};
use crate::ids::NodeId;
use crate::net::LinkConfig;
use crate::rng::Seed;
use crate::time::SimTime;
use crate::trace::{MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

const A: ReplicaId = ReplicaId(0);
const B: ReplicaId = ReplicaId(1);

fn secs(seconds: f64) -> LocalTime {
    LocalTime((seconds * 1e9).round() as i64)
}

fn merged<C: Crdt>(left: &C, right: &C) -> C {
    let mut result = left.clone();
    result.merge_state(right);
    result
}

// ---------------------------------------------------------------------------
// Unit tests

#[test]
fn gcounter_sums_replicas_and_merge_takes_each_larger_count() {
    // Goal: value is the sum of per-replica counts; merge is a per-replica max, not a sum.
    let mut left = GCounter::new();
    let mut right = GCounter::new();
    left.increment(A, 3);
    right.increment(A, 1);
    right.increment(B, 4);
    left.increment(B, 0);
    assert!(left.merge(&right));
    assert_eq!((left.get(A), left.get(B), left.value()), (3, 4, 7));
    assert!(!left.merge(&right), "a second merge of the same state changes nothing");
}

#[test]
fn pncounter_is_increments_minus_decrements() {
    // Goal: decrements subtract, across replicas, and the value can go negative.
    let mut left = PNCounter::new();
    let mut right = PNCounter::new();
    left.increment(A, 2);
    right.decrement(B, 5);
    left.merge(&right);
    assert_eq!(left.value(), -3);
    left.apply_update(A, LocalTime(0), &4);
    assert_eq!(left.value(), 1);
}

#[test]
fn orset_concurrent_add_wins_over_remove() {
    // Goal: a remove deletes only the adds it has seen; an unseen concurrent add survives.
    let mut left = OrSet::new();
    left.add(A, "apple");
    let mut right = left.clone();
    assert!(left.remove(&"apple"));
    right.add(B, "apple");
    right.add(B, "pear");
    let both = merged(&left, &right);
    assert_eq!(both, merged(&right, &left));
    assert_eq!(both.value(), BTreeSet::from(["apple", "pear"]));
}

#[test]
fn orset_remove_of_a_seen_add_sticks_after_merge() {
    // Goal: an element removed after its add was seen stays removed when the old state comes back.
    let mut left = OrSet::new();
    left.add(A, "apple");
    let stale = left.clone();
    left.remove(&"apple");
    assert!(!merged(&left, &stale).contains(&"apple"));
    assert!(!merged(&stale, &left).contains(&"apple"));
    // And a later re-add is a new tag, so it is present again.
    left.add(A, "apple");
    assert!(merged(&left, &stale).contains(&"apple"));
}

#[test]
fn lww_larger_stamp_wins_and_replica_id_breaks_ties() {
    // Goal: the order of stamps is clock reading first, then replica id.
    let mut left = LwwRegister::new();
    let mut right = LwwRegister::new();
    left.set(A, secs(1.0), "a");
    right.set(B, secs(1.0), "b");
    assert_eq!(merged(&left, &right).value(), Some(&"b"));
    assert_eq!(merged(&right, &left).value(), Some(&"b"));
    left.set(A, secs(1.5), "a2");
    assert_eq!(merged(&right, &left).value(), Some(&"a2"));
}

/// The lesson-12 duel: A writes at t = 1.000 s on a true clock, B writes at
/// t = 1.100 s on a clock `skew_ms` behind; neither saw the other's write.
/// Returns the surviving value and the lost write seen by A's merge.
fn duel(skew_ms: i64) -> (&'static str, Option<LostWrite>) {
    let mut at_a = LwwRegister::new();
    let mut at_b = LwwRegister::new();
    at_a.set(A, LocalTime(1_000_000_000), "A");
    at_b.set(B, LocalTime(1_100_000_000 - skew_ms * 1_000_000), "B");
    let outcome = at_a.merge(&at_b);
    let lost = outcome.write_lost.or(at_b.merge(&at_a).write_lost);
    assert_eq!(at_a, at_b);
    (at_a.value().copied().unwrap(), lost)
}

#[test]
fn lww_the_later_write_survives_only_while_skew_is_below_100ms() {
    // Goal: lesson 12's boundary: with B's clock up to 99 ms behind B's later write wins;
    // at 101 ms (and 300 ms) behind, A's earlier write wins and B's is reported lost.
    let (value, lost) = duel(99);
    assert_eq!(value, "B");
    assert_eq!(lost.unwrap().lost.replica, A, "concurrent: the discarded one is lost");
    for skew_ms in [101, 300] {
        let (value, lost) = duel(skew_ms);
        assert_eq!(value, "A", "skew {skew_ms} ms");
        let lost = lost.unwrap();
        assert_eq!(lost.lost.replica, B);
        assert_eq!(lost.lost.time, LocalTime(1_100_000_000 - skew_ms * 1_000_000));
    }
    // At exactly 100 ms both stamps read 1.000 s and the larger replica id (B) wins.
    assert_eq!(duel(100).0, "B");
}

#[test]
fn lww_a_write_that_saw_the_winner_is_lost_at_once_if_its_clock_is_behind() {
    // Goal: if B has read A's value and then writes with a clock 300 ms behind, B's
    // own write is discarded immediately: causally later, yet lost.
    let mut at_a = LwwRegister::new();
    at_a.set(A, secs(1.0), "A");
    let mut at_b = LwwRegister::new();
    at_b.merge(&at_a);
    let outcome = at_b.set(B, secs(0.8), "B");
    assert_eq!(at_b.value(), Some(&"A"));
    assert_eq!(outcome.write_lost.unwrap().lost.replica, B);
}

#[test]
fn lww_a_write_that_saw_the_old_value_supersedes_it_without_a_loss() {
    // Goal: a causally later write with a larger stamp replaces the old value
    // and nothing is reported lost, on either side of the merge.
    let mut at_a = LwwRegister::new();
    at_a.set(A, secs(1.0), "A");
    let mut at_b = LwwRegister::new();
    at_b.merge(&at_a);
    assert_eq!(at_b.set(B, secs(1.2), "B").write_lost, None);
    let outcome = at_a.merge(&at_b);
    assert_eq!((at_a.value(), outcome.write_lost), (Some(&"B"), None));
    assert_eq!(at_b.merge(&at_a).write_lost, None);
}

#[test]
fn lww_reports_an_incoming_lost_write_once() {
    // Goal: repeated gossip of the same losing state reports its loss only the first time.
    let mut at_a = LwwRegister::new();
    at_a.set(A, secs(1.0), "A");
    let mut at_b = LwwRegister::new();
    at_b.set(B, secs(0.8), "B");
    assert!(at_a.merge(&at_b).write_lost.is_some());
    assert_eq!(at_a.merge(&at_b), Outcome::default());
}

#[test]
fn replica_config_rejects_zero_interval_zero_fanout_and_no_peers() {
    // Goal: each bad field is refused when the replica is built, and named.
    let good = ReplicaConfig {
        replica: A,
        peers: vec![ProcessId(1)],
        gossip_interval: SimDuration::from_millis(100),
        fanout: 1,
    };
    assert!(Replica::new(good.clone(), GCounter::new()).is_ok());
    let cases = [
        (
            ReplicaConfig { gossip_interval: SimDuration::ZERO, ..good.clone() },
            "replica.gossip_interval",
        ),
        (ReplicaConfig { fanout: 0, ..good.clone() }, "replica.fanout"),
        (ReplicaConfig { peers: vec![], ..good.clone() }, "replica.peers"),
    ];
    for (config, field) in cases {
        assert_eq!(Replica::new(config, GCounter::new()).unwrap_err().field, field);
    }
}

#[test]
fn states_round_trip_through_json() {
    // Goal: every type serialises, so a state can be gossiped as bytes or stored.
    let mut counter = PNCounter::new();
    counter.increment(A, 3);
    counter.decrement(B, 1);
    let mut set = OrSet::new();
    set.add(A, "apple".to_string());
    let mut register = LwwRegister::new();
    register.set(B, secs(0.8), 42u32);
    let json = serde_json::to_string(&(&counter, &set, &register)).unwrap();
    let back: (PNCounter, OrSet<String>, LwwRegister<u32>) = serde_json::from_str(&json).unwrap();
    assert_eq!(back, (counter, set, register));
}

// ---------------------------------------------------------------------------
// Laws. States are built by arbitrary updates and merges between three
// replicas, so only reachable states are tested (an OR-Set's tags, say,
// always lie within its version vector).

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Step<U> {
    /// A local update at a replica whose clock reads `now` (ns).
    Update { replica: usize, now: i64, update: U },
    /// A snapshot of `from`'s state is put in flight to `to`.
    Send { from: usize, to: usize },
    /// The in-flight snapshot at this position (modulo the count) is
    /// delivered; it stays in flight, so it can be delivered again.
    Deliver { pick: usize },
}

fn steps<U: fmt::Debug + Clone>(
    update: impl Strategy<Value = U> + Clone,
) -> impl Strategy<Value = Vec<Step<U>>> {
    // A small clock range makes equal clock readings (stamp ties) common.
    let step = prop_oneof![
        3 => (0..REPLICAS, 0i64..5, update)
            .prop_map(|(replica, now, update)| Step::Update { replica, now, update }),
        2 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Step::Send { from, to }),
        2 => any::<usize>().prop_map(|pick| Step::Deliver { pick }),
    ];
    prop::collection::vec(step, 0..40)
}

/// Plays `steps` on three replicas starting from `initial`; returns their
/// states and the updates applied, in order.
fn play<C: Crdt>(initial: &C, steps: &[Step<C::Update>]) -> (Vec<C>, Vec<(usize, C::Update)>) {
    let mut states = vec![initial.clone(); REPLICAS];
    let mut in_flight: Vec<(usize, C)> = Vec::new();
    let mut updates = Vec::new();
    for step in steps {
        match step {
            Step::Update { replica, now, update } => {
                let id = ReplicaId(*replica as u32);
                states[*replica].apply_update(id, LocalTime(*now), update);
                updates.push((*replica, update.clone()));
            }
            Step::Send { from, to } => in_flight.push((*to, states[*from].clone())),
            Step::Deliver { pick } if !in_flight.is_empty() => {
                let (to, state) = &in_flight[*pick % in_flight.len()];
                states[*to].merge_state(state);
            }
            Step::Deliver { .. } => {}
        }
    }
    (states, updates)
}

/// Merge is commutative, associative and idempotent on `states`.
fn check_join<C: Crdt>(states: &[C]) -> Result<(), TestCaseError> {
    let (a, b, c) = (&states[0], &states[1], &states[2]);
    prop_assert_eq!(merged(a, b), merged(b, a), "commutative");
    prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)), "associative");
    prop_assert_eq!(&merged(a, a), a, "idempotent");
    prop_assert_eq!(merged(&merged(a, b), b), merged(a, b), "idempotent after a join");
    Ok(())
}

/// After each replica receives every replica's final state, in the order
/// `order` gives (indices into the 9 (to, from) pairs, a permutation) plus
/// the `duplicates`, all replicas hold the same state. Returns it.
fn converge<C: Crdt>(
    mut states: Vec<C>,
    order: &[usize],
    duplicates: &[usize],
) -> Result<C, TestCaseError> {
    let finals = states.clone();
    for &pair in order.iter().chain(duplicates) {
        let (to, from) = (pair / REPLICAS, pair % REPLICAS);
        states[to].merge_state(&finals[from]);
    }
    for state in &states[1..] {
        prop_assert_eq!(state, &states[0]);
    }
    Ok(states.swap_remove(0))
}

fn delivery_order() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let pairs = REPLICAS * REPLICAS;
    (Just((0..pairs).collect::<Vec<usize>>()).prop_shuffle(), prop::collection::vec(0..pairs, 0..6))
}

fn set_update() -> impl Strategy<Value = OrSetUpdate<u8>> + Clone {
    // Three elements only, so adds and removes of the same element collide.
    prop_oneof![(0u8..3).prop_map(OrSetUpdate::Add), (0u8..3).prop_map(OrSetUpdate::Remove)]
}

proptest! {
    /// Law: GCounter merge is commutative, associative and idempotent.
    #[test]
    fn gcounter_merge_is_commutative_associative_idempotent(steps in steps(0u64..5)) {
        check_join(&play(&GCounter::new(), &steps).0)?;
    }

    /// Law: PNCounter merge is commutative, associative and idempotent.
    #[test]
    fn pncounter_merge_is_commutative_associative_idempotent(steps in steps(-5i64..5)) {
        check_join(&play(&PNCounter::new(), &steps).0)?;
    }

    /// Law: OrSet merge is commutative, associative and idempotent.
    #[test]
    fn orset_merge_is_commutative_associative_idempotent(steps in steps(set_update())) {
        check_join(&play(&OrSet::new(), &steps).0)?;
    }

    /// Law: LwwRegister merge is commutative, associative and idempotent.
    #[test]
    fn lww_merge_is_commutative_associative_idempotent(steps in steps(0u8..4)) {
        check_join(&play(&LwwRegister::new(), &steps).0)?;
    }

    /// Law: counter replicas converge under any delivery order with
    /// duplicates, to exactly the sum of all updates.
    #[test]
    fn counters_converge_to_the_sum_under_any_delivery_order(
        grow in steps(0u64..5), both in steps(-5i64..5), (order, duplicates) in delivery_order()
    ) {
        let (states, updates) = play(&GCounter::new(), &grow);
        let state = converge(states, &order, &duplicates)?;
        prop_assert_eq!(state.value(), updates.iter().map(|(_, amount)| amount).sum::<u64>());
        let (states, updates) = play(&PNCounter::new(), &both);
        let state = converge(states, &order, &duplicates)?;
        prop_assert_eq!(state.value(), updates.iter().map(|(_, amount)| amount).sum::<i64>());
    }

    /// Law: OrSet replicas converge under any delivery order with
    /// duplicates; an element added and never removed is in, one never
    /// added is out.
    #[test]
    fn orset_converges_under_any_delivery_order(
        steps in steps(set_update()), (order, duplicates) in delivery_order()
    ) {
        let (states, updates) = play(&OrSet::new(), &steps);
        let state = converge(states, &order, &duplicates)?;
        for element in 0u8..3 {
            let added = updates.iter().any(|(_, u)| *u == OrSetUpdate::Add(element));
            let removed = updates.iter().any(|(_, u)| *u == OrSetUpdate::Remove(element));
            if added && !removed {
                prop_assert!(state.contains(&element));
            }
            if !added {
                prop_assert!(!state.contains(&element));
            }
        }
    }

    /// Law: LwwRegister replicas converge under any delivery order with
    /// duplicates, to the write with the largest stamp ever made.
    #[test]
    fn lww_converges_to_the_largest_stamp_under_any_delivery_order(
        steps in steps(0u8..4), (order, duplicates) in delivery_order()
    ) {
        let (states, _) = play(&LwwRegister::new(), &steps);
        let largest = states.iter().filter_map(LwwRegister::stamp).max();
        let state = converge(states, &order, &duplicates)?;
        prop_assert_eq!(state.stamp(), largest);
    }
}

// ---------------------------------------------------------------------------
// In a simulation

#[derive(Clone, Debug, PartialEq)]
enum World {
    Counter(CrdtProtocol<GCounter>),
    Register(CrdtProtocol<LwwRegister<&'static str>>),
    Cart(CrdtProtocol<OrSet<&'static str>>),
}

impl Message for World {
    fn label(&self) -> &'static str {
        match self {
            World::Counter(inner) => inner.label(),
            World::Register(inner) => inner.label(),
            World::Cart(inner) => inner.label(),
        }
    }
}

macro_rules! carry {
    ($variant:ident, $crdt:ty) => {
        impl Carry<CrdtProtocol<$crdt>> for World {
            fn wrap(inner: CrdtProtocol<$crdt>) -> World {
                World::$variant(inner)
            }
            fn unwrap(self) -> Result<CrdtProtocol<$crdt>, World> {
                match self {
                    World::$variant(inner) => Ok(inner),
                    other => Err(other),
                }
            }
        }
    };
}

carry!(Counter, GCounter);
carry!(Register, LwwRegister<&'static str>);
carry!(Cart, OrSet<&'static str>);

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// A world of one replica of `initial` per clock, each gossiping to all
/// the others every `gossip_interval`; returns the replicas' processes.
fn replicas<C: Crdt>(
    sim: &mut Sim<World>,
    clocks: &[ClockConfig],
    gossip_interval: SimDuration,
    initial: C,
) -> (Vec<NodeId>, Vec<ProcessId>)
where
    World: Carry<CrdtProtocol<C>>,
{
    let first = sim.process_count() as u32;
    let ids: Vec<ProcessId> = (0..clocks.len() as u32).map(|i| ProcessId(first + i)).collect();
    let mut nodes = Vec::new();
    for (index, clock) in clocks.iter().enumerate() {
        let node = sim.add_node(NodeConfig::new(format!("n{index}")).clock(*clock));
        let config = ReplicaConfig {
            replica: ReplicaId(index as u32),
            peers: ids.iter().copied().filter(|id| *id != ids[index]).collect(),
            gossip_interval,
            fanout: 2,
        };
        let replica = Replica::new(config, initial.clone()).unwrap();
        let id = sim.spawn(node, format!("replica{index}"), move || replica.clone());
        assert_eq!(id, ids[index]);
        nodes.push(node);
    }
    (nodes, ids)
}

fn state<C: Crdt>(sim: &Sim<World>, id: ProcessId) -> &C
where
    World: Carry<CrdtProtocol<C>>,
{
    sim.process_state::<Replica<C>>(id).unwrap().state()
}

fn component_events(sink: &Rc<RefCell<MemorySink>>, kind: &str) -> Vec<(u64, i64)> {
    sink.borrow()
        .records
        .iter()
        .filter_map(|record| match &record.event {
            TraceEvent::Component { component: Component::Crdt, kind: k, key, value, .. }
                if *k == kind =>
            {
                Some((*key, *value))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn three_replicas_converge_to_3000_over_bad_links_and_a_healed_partition() {
    // Goal: lesson 12: 3 replicas x 1,000 increments each, gossiped over links
    // that lose, duplicate and reorder, with replica 0 cut off from 2 s to 6 s,
    // end at exactly 3,000 everywhere; during the partition they disagree.
    let mut sim: Sim<World> = Sim::new(SimConfig::new(Seed(2017)));
    let mut link = LinkConfig::with_latency(Dist::uniform(
        SimDuration::from_millis(1),
        SimDuration::from_millis(20),
    ));
    link.loss = 0.2;
    link.duplicate = 0.2;
    link.reorder = 0.3;
    link.reorder_window = SimDuration::from_millis(30);
    sim.set_default_link(link);
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let clocks = [ClockConfig::PERFECT; 3];
    let (nodes, ids) = replicas(&mut sim, &clocks, SimDuration::from_millis(100), GCounter::new());
    for round in 0..1_000u64 {
        for (index, &id) in ids.iter().enumerate() {
            let at = at_ms(round * 10 + index as u64 * 3);
            sim.post(at, id, World::Counter(CrdtProtocol::ApplyUpdate(1)));
        }
    }
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(2_000),
        at_ms(6_000),
        Fault::Partition { side_a: vec![nodes[0]], side_b: vec![nodes[1], nodes[2]] },
    ));

    sim.run_until(at_ms(5_900));
    let isolated = state::<GCounter>(&sim, ids[0]);
    let connected = state::<GCounter>(&sim, ids[1]);
    assert!(isolated.value() < connected.value(), "{isolated:?} vs {connected:?}");
    assert!(isolated.get(ReplicaId(1)) < connected.get(ReplicaId(1)));

    sim.run_until(at_ms(12_000));
    for &id in &ids {
        assert_eq!(state::<GCounter>(&sim, id).value(), 3_000);
    }
    assert_eq!(state::<GCounter>(&sim, ids[0]), state::<GCounter>(&sim, ids[2]));
    let stats = sim.stats();
    assert!(stats.messages_dropped > 0 && stats.messages_duplicated > 0);
    assert!(sim.fired_faults()[0].touched.messages_dropped > 0, "the partition mattered");
    assert_eq!(sim.metrics().counter("crdt.updates_applied"), 3_000);
    assert_eq!(component_events(&sink, "update_applied").len(), 3_000);
    assert!(component_events(&sink, "merged").iter().any(|&(_, changed)| changed == 1));
    assert!(!component_events(&sink, "gossiped").is_empty());
    assert!(component_events(&sink, "write_lost").is_empty(), "counters lose nothing");
}

/// Lesson 12's register duel in a world: A (true clock) writes at
/// t = 1.000 s, B (clock `skew_ms` behind) at t = 1.100 s; gossip every
/// 450 ms does not carry A's write to B before B writes, so the writes are
/// concurrent. Returns both replicas' values and the `write_lost` events.
fn register_duel(skew_ms: i64) -> (Vec<&'static str>, Vec<(u64, i64)>) {
    let mut sim: Sim<World> = Sim::new(SimConfig::new(Seed(12)));
    sim.set_default_link(LinkConfig::constant(SimDuration::from_millis(5)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let clocks =
        [ClockConfig::PERFECT, ClockConfig { offset_ns: -skew_ms * 1_000_000, drift_ppm: 0.0 }];
    let interval = SimDuration::from_millis(450);
    let (_, ids) = replicas(&mut sim, &clocks, interval, LwwRegister::<&'static str>::new());
    sim.post(at_ms(1_000), ids[0], World::Register(CrdtProtocol::ApplyUpdate("A")));
    sim.post(at_ms(1_100), ids[1], World::Register(CrdtProtocol::ApplyUpdate("B")));
    sim.run_until(at_ms(3_000));
    let values = ids
        .iter()
        .map(|&id| *state::<LwwRegister<&'static str>>(&sim, id).value().unwrap())
        .collect();
    (values, component_events(&sink, "write_lost"))
}

#[test]
fn lww_loses_the_later_write_when_its_writer_clock_is_300ms_behind() {
    // Goal: lesson 12: B writes 100 ms after A, stamped 0.800 s by its slow
    // clock; after gossip both replicas hold A's earlier value and B's write is
    // traced as lost, on both replicas.
    let (values, lost) = register_duel(300);
    assert_eq!(values, vec!["A", "A"]);
    assert!(!lost.is_empty());
    assert!(lost.iter().all(|&(replica, stamp)| replica == 1 && stamp == 800_000_000), "{lost:?}");
}

#[test]
fn lww_keeps_the_later_write_when_skew_is_below_100ms() {
    // Goal: with B's clock only 50 ms behind, B's later write (stamped 1.050 s)
    // wins everywhere; A's concurrent write is the one discarded.
    let (values, lost) = register_duel(50);
    assert_eq!(values, vec!["B", "B"]);
    assert!(
        lost.iter().all(|&(replica, stamp)| replica == 0 && stamp == 1_000_000_000),
        "{lost:?}"
    );
}

#[test]
fn cart_add_wins_over_a_concurrent_remove_across_a_partition() {
    // Goal: both replicas start with an apple in the cart; while partitioned, A
    // removes it and B adds it again (and a pear); after the heal both carts
    // hold apple and pear: the add A had not seen wins.
    let mut sim: Sim<World> = Sim::new(SimConfig::new(Seed(6)));
    sim.set_default_link(LinkConfig::constant(SimDuration::from_millis(5)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let clocks = [ClockConfig::PERFECT; 2];
    let interval = SimDuration::from_millis(100);
    let (nodes, ids) = replicas(&mut sim, &clocks, interval, OrSet::<&'static str>::new());
    let cart = |update| World::Cart(CrdtProtocol::ApplyUpdate(update));
    sim.post(at_ms(50), ids[0], cart(OrSetUpdate::Add("apple")));
    sim.post(at_ms(1_500), ids[0], cart(OrSetUpdate::Remove("apple")));
    sim.post(at_ms(1_600), ids[1], cart(OrSetUpdate::Add("apple")));
    sim.post(at_ms(1_700), ids[1], cart(OrSetUpdate::Add("pear")));
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(1_000),
        at_ms(3_000),
        Fault::Partition { side_a: vec![nodes[0]], side_b: vec![nodes[1]] },
    ));
    sim.run_until(at_ms(2_500));
    assert!(!state::<OrSet<&'static str>>(&sim, ids[0]).contains(&"apple"));
    sim.run_until(at_ms(4_000));
    for &id in &ids {
        let cart = state::<OrSet<&'static str>>(&sim, id).value();
        assert_eq!(cart, BTreeSet::from(["apple", "pear"]));
    }
    assert!(sim.fired_faults()[0].touched.messages_dropped > 0);
    assert!(component_events(&sink, "merged").iter().any(|&(_, changed)| changed == 1));
}
