//! Tests of routing: the balancer's strategies and the hash ring as pure
//! data with their laws, then both inside small worlds.

use super::Strategy;
use super::balancer::two_choices;
use super::*;
use crate::ids::{NodeId, ProcessId, TimerId};
use crate::kit::ConfigError;
use crate::net::LinkConfig;
use crate::process::{Ctx, Mailbox, Message, Process};
use crate::rng::{Purpose, Seed, Stream};
use crate::time::{SimDuration, SimTime};
use crate::trace::{Component, MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use proptest::strategy::Strategy as Generator;
use std::cell::RefCell;
use std::rc::Rc;

fn stream(seed: u64) -> Stream {
    Stream::new(Seed(seed), Purpose::Model(7))
}

// ---------------------------------------------------------------------
// Strategies and configuration

#[test]
fn strategies_parse_from_their_names_and_unknown_names_are_rejected() {
    // Goal: every strategy round-trips through its name; an unknown name
    // is a ConfigError naming `balancer.strategy` and the known names.
    for strategy in Strategy::ALL {
        assert_eq!(strategy.name().parse::<Strategy>(), Ok(strategy));
        assert_eq!(strategy.to_string(), strategy.name());
    }
    let error = "least-loaded".parse::<Strategy>().unwrap_err();
    assert_eq!(error.field, "balancer.strategy");
    assert_eq!(
        error.to_string(),
        "balancer.strategy = least-loaded: expected one of round-robin, random, least-outstanding, p2c"
    );
}

#[test]
fn a_ring_needs_at_least_one_virtual_node() {
    // Goal: zero (or too many) virtual nodes are refused at construction.
    let field = |virtual_nodes| -> ConfigError {
        HashRing::<u32>::new(HashRingConfig { virtual_nodes }).unwrap_err()
    };
    assert_eq!(field(0).field, "hash_ring.virtual_nodes");
    assert_eq!(field(VIRTUAL_NODES_MAX + 1).field, "hash_ring.virtual_nodes");
    assert!(HashRing::<u32>::new(HashRingConfig { virtual_nodes: 1 }).is_ok());
}

// ---------------------------------------------------------------------
// Balancer

#[test]
fn round_robin_keeps_its_turn_across_membership_changes() {
    // Goal: backends are taken in id order whatever order they were added
    // in; adding or removing one does not make the turn skip or repeat
    // the others.
    let mut rng = stream(1);
    let mut balancer = Balancer::with_backends(Strategy::RoundRobin, [30u32, 10, 20]);
    let mut picks = |balancer: &mut Balancer<u32>, count: usize| -> Vec<u32> {
        (0..count).map(|_| balancer.pick(&mut rng).unwrap()).collect()
    };
    assert_eq!(picks(&mut balancer, 4), vec![10, 20, 30, 10]);
    assert!(balancer.add(5));
    assert!(!balancer.add(5));
    assert_eq!(picks(&mut balancer, 4), vec![20, 30, 5, 10]);
    assert!(balancer.remove(10));
    assert!(!balancer.remove(10));
    assert_eq!(picks(&mut balancer, 3), vec![20, 30, 5]);
    assert_eq!(balancer.picked_count(20), Some(3));
}

#[test]
fn outstanding_requests_are_counted_per_backend() {
    // Goal: begin and end move the count; ending what never began, or at
    // a removed backend, is refused rather than going negative.
    let mut balancer = Balancer::with_backends(Strategy::LeastOutstanding, [1u32, 2]);
    assert!(balancer.begin(1));
    assert!(balancer.begin(1));
    assert_eq!(balancer.outstanding(1), Some(2));
    assert!(balancer.end(1));
    assert!(!balancer.end(2));
    assert!(!balancer.begin(3));
    balancer.remove(1);
    assert!(!balancer.end(1));
    assert_eq!(balancer.outstanding(1), None);
    assert_eq!(Balancer::<u32>::new(Strategy::Random).pick(&mut stream(2)), None);
}

#[derive(Clone, Debug)]
enum Operation {
    /// Pick a backend and begin a request there.
    Dispatch,
    /// End a request at the backend with this index (modulo membership).
    End(usize),
    /// Add the backend with this id.
    Add(u32),
    /// Remove the backend with this index (modulo membership).
    Remove(usize),
}

fn operations() -> impl Generator<Value = Vec<Operation>> {
    // Mostly dispatches and ends, so loads build up and drain; membership
    // changes now and then.
    prop::collection::vec(
        prop_oneof![
            6 => Just(Operation::Dispatch),
            4 => (0usize..16).prop_map(Operation::End),
            1 => (0u32..16).prop_map(Operation::Add),
            1 => (0usize..16).prop_map(Operation::Remove),
        ],
        0..200,
    )
}

/// Runs `operations`, calling `check` before each pick with the loads
/// then, and the pick.
fn run_operations(
    strategy: Strategy,
    seed: u64,
    initial: &[u32],
    operations: &[Operation],
    mut check: impl FnMut(&Balancer<u32>, &Stream, u32) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut rng = stream(seed);
    let mut balancer = Balancer::with_backends(strategy, initial.iter().copied());
    for operation in operations {
        let members: Vec<u32> = balancer.backends().collect();
        match operation {
            Operation::Dispatch => {
                let before = balancer.clone();
                let draws = rng.clone();
                if let Some(backend) = balancer.pick(&mut rng) {
                    check(&before, &draws, backend)?;
                    balancer.begin(backend);
                }
            }
            Operation::End(index) if !members.is_empty() => {
                balancer.end(members[index % members.len()]);
            }
            Operation::Add(id) => {
                balancer.add(*id);
            }
            Operation::Remove(index) if !members.is_empty() => {
                balancer.remove(members[index % members.len()]);
            }
            Operation::End(_) | Operation::Remove(_) => {}
        }
    }
    Ok(())
}

proptest! {
    /// Law: round robin gives each of N backends the same number of picks
    /// within ±1, for any N and any number of picks.
    #[test]
    fn round_robin_gives_each_backend_within_one_of_the_others(
        backends in prop::collection::btree_set(0u32..1000, 1..20),
        picks in 0usize..500,
    ) {
        let mut rng = stream(3);
        let mut balancer = Balancer::with_backends(Strategy::RoundRobin, backends.iter().copied());
        for _ in 0..picks {
            balancer.pick(&mut rng);
        }
        let counts: Vec<u64> = backends.iter().map(|b| balancer.picked_count(*b).unwrap()).collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        prop_assert!(max - min <= 1, "counts {:?}", counts);
        prop_assert_eq!(counts.iter().sum::<u64>(), picks as u64);
    }

    /// Law: least-outstanding always picks a backend with the minimum
    /// outstanding count, through any sequence of requests beginning and
    /// ending and backends joining and leaving.
    #[test]
    fn least_outstanding_always_picks_a_backend_with_the_minimum_outstanding_count(
        seed in any::<u64>(),
        initial in prop::collection::vec(0u32..16, 1..8),
        operations in operations(),
    ) {
        run_operations(Strategy::LeastOutstanding, seed, &initial, &operations, |before, _, picked| {
            let minimum = before.backends().map(|b| before.outstanding(b).unwrap()).min().unwrap();
            prop_assert_eq!(before.outstanding(picked), Some(minimum));
            Ok(())
        })?;
    }

    /// Law: power-of-two-choices never picks the more loaded of its two
    /// random draws (replayed from a copy of the random stream).
    #[test]
    fn p2c_never_picks_the_more_loaded_of_its_two_draws(
        seed in any::<u64>(),
        initial in prop::collection::vec(0u32..16, 1..8),
        operations in operations(),
    ) {
        run_operations(Strategy::PowerOfTwoChoices, seed, &initial, &operations, |before, draws, picked| {
            let members: Vec<u32> = before.backends().collect();
            let (first, second) = two_choices(members.len(), &mut draws.clone());
            let (first, second) = (members[first], members[second]);
            prop_assert!(picked == first || picked == second);
            let load = |backend| before.outstanding(backend).unwrap();
            let other = if picked == first { second } else { first };
            prop_assert!(load(picked) <= load(other), "picked {} ({}) over {} ({})", picked, load(picked), other, load(other));
            Ok(())
        })?;
    }

    /// The two draws of power-of-two-choices are distinct backends.
    #[test]
    fn p2c_draws_two_distinct_backends(seed in any::<u64>(), count in 2usize..50) {
        let (first, second) = two_choices(count, &mut stream(seed));
        prop_assert!(first != second && first < count && second < count);
    }
}

// ---------------------------------------------------------------------
// Hash ring

#[test]
fn key_hash_is_the_specified_fnv1a_then_splitmix64() {
    // Goal: pin the hash, since changing it moves every key of every
    // saved scenario. Expected values computed independently (Python).
    assert_eq!(key_hash(b""), 0xf52a_15e9_a9b5_e89b);
    assert_eq!(key_hash(b"order-17"), 0xa2b1_3ff1_a62e_905e);
}

#[test]
fn first_member_takes_the_whole_ring_and_the_last_gives_it_back() {
    // Goal: joining an empty ring moves everything from nobody; leaving
    // the last member moves everything to nobody; routes follow.
    let mut ring = HashRing::new(HashRingConfig { virtual_nodes: 8 }).unwrap();
    assert_eq!(ring.route(b"a"), None);
    let joined = ring.add(7u32);
    assert_eq!(
        joined.moved,
        vec![MovedRange { first: 0, last: u64::MAX, from: None, to: Some(7) }]
    );
    assert_eq!(joined.moved_share(), 1.0);
    assert_eq!(ring.route(b"a"), Some(7));
    assert!(ring.add(7).is_empty());
    let left = ring.remove(7);
    assert_eq!(left.moved, vec![MovedRange { first: 0, last: u64::MAX, from: Some(7), to: None }]);
    assert!(ring.remove(7).is_empty());
    assert_eq!(ring.route(b"a"), None);
}

#[test]
fn route_takes_the_first_point_at_or_after_the_hash_and_wraps() {
    // Goal: check the ring's rule against a brute-force search over its
    // points, at the points themselves and between them.
    let ring = HashRing::with_members(HashRingConfig { virtual_nodes: 3 }, [1u32, 2, 3]).unwrap();
    let mut points: Vec<(u64, u32)> = Vec::new();
    for member in [1u32, 2, 3] {
        for replica in 0..3u32 {
            let mut bytes = [0u8; 12];
            bytes[..8].copy_from_slice(&u64::from(member).to_le_bytes());
            bytes[8..].copy_from_slice(&replica.to_le_bytes());
            points.push((key_hash(&bytes), member));
        }
    }
    points.sort();
    let brute =
        |hash: u64| points.iter().find(|(position, _)| *position >= hash).unwrap_or(&points[0]).1;
    let mut probes = vec![0, u64::MAX];
    for (position, _) in &points {
        probes.extend([*position, position.wrapping_add(1), position.wrapping_sub(1)]);
    }
    for hash in probes {
        assert_eq!(ring.route_hash(hash), Some(brute(hash)), "hash {hash:#x}");
    }
}

/// Member ids: distinct, drawn widely so their points differ.
fn members(range: std::ops::Range<usize>) -> impl Generator<Value = Vec<u64>> {
    prop::collection::btree_set(any::<u64>(), range).prop_map(|set| set.into_iter().collect())
}

fn sample_keys(count: u64) -> Vec<Vec<u8>> {
    (0..count).map(|key| format!("key-{key}").into_bytes()).collect()
}

proptest! {
    /// Law: when a member joins a ring of N, the share of the key space
    /// that moves is about 1/(N+1), and every moved key moves to the new
    /// member; keys outside the moved ranges keep their owner.
    ///
    /// Tolerance: with V = 160 points per member the new member's share
    /// deviates from 1/(N+1) by about 1/√V ≈ 8 % (relative standard
    /// deviation; 7 % measured over 300 random rings), so ±40 % is five
    /// standard deviations and never fails by chance in practice, yet a
    /// ring that moved, say, everything or half would fail at once.
    #[test]
    fn a_joining_member_takes_about_one_in_n_plus_one_keys_all_moving_to_it(
        ids in members(2..14),
    ) {
        let (newcomer, existing) = ids.split_last().unwrap();
        let mut ring = HashRing::with_members(HashRingConfig::default(), existing.iter().copied()).unwrap();
        let before = ring.clone();
        let rebalance = ring.add(*newcomer);
        let expected = 1.0 / (existing.len() as f64 + 1.0);
        let share = rebalance.moved_share();
        prop_assert!((share - expected).abs() <= 0.4 * expected, "moved {} of the keys, expected about {}", share, expected);
        prop_assert!(rebalance.moved.iter().all(|range| range.to == Some(*newcomer) && range.from != Some(*newcomer)));
        for key in sample_keys(2_000) {
            let (old, new) = (before.route(&key).unwrap(), ring.route(&key).unwrap());
            let moved = rebalance.moves(key_hash(&key));
            prop_assert_eq!(old != new, moved.is_some());
            if let Some(range) = moved {
                prop_assert_eq!((range.from, range.to), (Some(old), Some(new)));
                prop_assert_eq!(new, *newcomer);
            }
        }
    }

    /// Law: when a member leaves, only its keys move: every other key
    /// keeps its owner, and every moved range came from the leaver.
    #[test]
    fn a_leaving_member_moves_only_its_own_keys(ids in members(2..14), leaver_index in any::<prop::sample::Index>()) {
        let mut ring = HashRing::with_members(HashRingConfig::default(), ids.iter().copied()).unwrap();
        let before = ring.clone();
        let leaver = ids[leaver_index.index(ids.len())];
        let rebalance = ring.remove(leaver);
        prop_assert!(rebalance.moved.iter().all(|range| range.from == Some(leaver) && range.to.is_some()));
        for key in sample_keys(2_000) {
            let (old, new) = (before.route(&key).unwrap(), ring.route(&key).unwrap());
            prop_assert_eq!(old == leaver, old != new);
            prop_assert_eq!(rebalance.moves(key_hash(&key)).is_some(), old == leaver);
        }
        // Adding it back restores the ring exactly.
        ring.add(leaver);
        prop_assert_eq!(ring, before);
    }

    /// Law: routes depend only on membership: the same members added in
    /// any order (with joins and leaves on the way) give the same ring.
    #[test]
    fn routes_depend_only_on_membership_not_on_insertion_order(
        ids in members(1..12),
        order in Just(()).prop_perturb(|_, mut rng| rng.next_u64()),
        extra in any::<u64>(),
        virtual_nodes in 1u32..64,
    ) {
        let config = HashRingConfig { virtual_nodes };
        let straight = HashRing::with_members(config, ids.iter().copied()).unwrap();
        let mut shuffled_ids = ids.clone();
        let mut shuffle = stream(order);
        for index in (1..shuffled_ids.len()).rev() {
            shuffled_ids.swap(index, shuffle.below(index as u64 + 1) as usize);
        }
        let mut shuffled = HashRing::new(config).unwrap();
        for id in shuffled_ids {
            shuffled.add(id);
            // A visitor who joins and leaves changes nothing.
            if !ids.contains(&extra) {
                shuffled.add(extra);
                shuffled.remove(extra);
            }
        }
        for key in sample_keys(500) {
            prop_assert_eq!(straight.route(&key), shuffled.route(&key));
        }
        prop_assert_eq!(straight, shuffled);
    }
}

// ---------------------------------------------------------------------
// Worlds

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    /// A request from outside to the gateway or router.
    Request(u64),
    /// The gateway's request to a worker.
    Work(u64),
    /// A worker's reply.
    Done(u64),
    /// Tells the router that a worker joined.
    Join(ProcessId),
    /// Tells the router that a worker left.
    Leave(ProcessId),
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Request(_) => "Request",
            Msg::Work(_) => "Work",
            Msg::Done(_) => "Done",
            Msg::Join(_) => "Join",
            Msg::Leave(_) => "Leave",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::Request(id) | Msg::Work(id) | Msg::Done(id) => *id,
            Msg::Join(process) | Msg::Leave(process) => u64::from(process.0),
        }
    }
}

/// Handles one request at a time, each taking `service_time` of CPU.
struct Worker {
    service_time: SimDuration,
    handled: Vec<u64>,
    /// Who asked for each request in progress, by request id.
    waiting: Vec<(u64, ProcessId)>,
}

impl Process<Msg> for Worker {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        if let Msg::Work(id) = message {
            self.waiting.push((id, from));
            ctx.spend_cpu(self.service_time, id);
        }
    }
    fn on_work_done(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let index = self.waiting.iter().position(|(id, _)| *id == tag).expect("work in progress");
        let (id, from) = self.waiting.remove(index);
        self.handled.push(id);
        ctx.send(from, Msg::Done(id));
    }
}

/// Spreads requests over workers with a balancer.
struct Gateway {
    balancer: Balancer<ProcessId>,
    /// Where each request in progress went, by request id.
    in_progress: Vec<(u64, ProcessId)>,
}

impl Process<Msg> for Gateway {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        match message {
            Msg::Request(id) => {
                if let Some(worker) = self.balancer.dispatch(ctx) {
                    self.in_progress.push((id, worker));
                    ctx.send(worker, Msg::Work(id));
                }
            }
            Msg::Done(id) => {
                let index =
                    self.in_progress.iter().position(|(request, _)| *request == id).unwrap();
                let (_, worker) = self.in_progress.remove(index);
                assert!(self.balancer.complete(ctx, worker));
            }
            _ => {}
        }
    }
}

fn trace_kinds(
    sink: &Rc<RefCell<MemorySink>>,
    component: Component,
) -> Vec<(&'static str, u64, i64)> {
    sink.borrow()
        .records
        .iter()
        .filter_map(|record| match record.event {
            TraceEvent::Component { component: c, kind, key, value, .. } if c == component => {
                Some((kind, key, value))
            }
            _ => None,
        })
        .collect()
}

/// Runs a gateway over four workers, the first ten times slower than the
/// others, for 800 requests arriving every 2.5 ms; returns how many
/// requests each worker got (the slow one first) and the routing events.
fn run_gateway(strategy: Strategy) -> (Vec<usize>, Vec<(&'static str, u64, i64)>) {
    let mut sim = Sim::<Msg>::new(SimConfig::new(Seed(11)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    sim.set_default_link(LinkConfig::constant(SimDuration::from_micros(200)));
    let gateway_node = sim.add_node(NodeConfig::new("gateway"));
    let mut workers = Vec::new();
    for index in 0..4u64 {
        let node: NodeId = sim.add_node(NodeConfig::new(format!("worker{index}")));
        // Fast workers take 5 ms a request (200/s); the slow one 50 ms (20/s).
        let service_time = SimDuration::from_millis(if index == 0 { 50 } else { 5 });
        let worker = sim.spawn_with(node, "worker", Mailbox::Immediate, move || {
            Box::new(Worker { service_time, handled: Vec::new(), waiting: Vec::new() })
        });
        workers.push(worker);
    }
    let backends = workers.clone();
    let gateway = sim.spawn(gateway_node, "gateway", move || Gateway {
        balancer: Balancer::with_backends(strategy, backends.iter().copied()),
        in_progress: Vec::new(),
    });
    // 400 requests a second: within the fast workers' 600/s, far beyond
    // what the slow one can take if it gets a quarter of them.
    for id in 0..800u64 {
        sim.post(SimTime::from_nanos(id * 2_500_000), gateway, Msg::Request(id));
    }
    sim.run();
    let counts = workers
        .iter()
        .map(|worker| sim.process_state::<Worker>(*worker).unwrap().handled.len())
        .collect();
    (counts, trace_kinds(&sink, Component::Routing))
}

#[test]
fn load_aware_strategies_send_a_slow_worker_fewer_requests_than_round_robin() {
    // Goal: a gateway over four workers, one ten times slower: round robin
    // gives it a quarter of the requests regardless, while least-outstanding
    // and power-of-two-choices see its requests pile up and send it fewer.
    // Method: the same arrivals under each strategy; count what each worker
    // handled.
    let (round_robin, events) = run_gateway(Strategy::RoundRobin);
    let (least_outstanding, _) = run_gateway(Strategy::LeastOutstanding);
    let (power_of_two, _) = run_gateway(Strategy::PowerOfTwoChoices);
    let (random, _) = run_gateway(Strategy::Random);
    for counts in [&round_robin, &least_outstanding, &power_of_two, &random] {
        assert_eq!(counts.iter().sum::<usize>(), 800);
    }
    assert_eq!(round_robin[0], 200);
    assert!(least_outstanding[0] * 4 < round_robin[0], "{least_outstanding:?} vs {round_robin:?}");
    assert!(power_of_two[0] * 2 < round_robin[0], "{power_of_two:?} vs {round_robin:?}");
    assert!(random[0] > 150, "random ignores load: {random:?}");
    assert_eq!(events.iter().filter(|event| event.0 == "picked").count(), 800);
}

/// Request ids above this carry a test phase; the key is the rest.
const PHASE: u64 = 1_000_000;

/// Routes each request by key to its owner on a hash ring of workers,
/// and updates the ring as workers join and leave.
struct Router {
    ring: HashRing<ProcessId>,
    /// Every rebalance, for the test to compare with the trace.
    rebalances: Vec<Rebalance<ProcessId>>,
}

impl Process<Msg> for Router {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        match message {
            Msg::Request(id) => {
                let key = id % PHASE;
                let owner = self.ring.route(&key.to_le_bytes()).expect("a worker");
                ctx.send(owner, Msg::Work(id));
            }
            Msg::Join(worker) => {
                let rebalance = self.ring.add_traced(ctx, worker);
                self.rebalances.push(rebalance);
            }
            Msg::Leave(worker) => {
                let rebalance = self.ring.remove_traced(ctx, worker);
                self.rebalances.push(rebalance);
            }
            _ => {}
        }
    }
}

/// Records the keys it is sent.
#[derive(Default)]
struct Shard {
    keys: Vec<u64>,
}

impl Process<Msg> for Shard {
    fn on_message(&mut self, _ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        if let Msg::Work(key) = message {
            self.keys.push(key);
        }
    }
    fn on_timer(&mut self, _ctx: &mut Ctx<'_, Msg>, _timer: TimerId, _tag: u64) {}
}

#[test]
fn sticky_routing_keeps_keys_in_place_and_moves_only_the_rebalanced_ones() {
    // Goal: a router over three shards sends each key to one shard; when a
    // fourth joins, the keys it takes over are exactly those of the moved
    // ranges and the rest stay put; when the first leaves, only its keys
    // move. Each change is traced as `rebalanced` with the number of moved
    // ranges. Method: the same 300 keys in three phases (the phase is
    // encoded above the key), compared shard by shard.
    let mut sim = Sim::<Msg>::new(SimConfig::new(Seed(12)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let node = sim.add_node(NodeConfig::new("n0"));
    let shards: Vec<ProcessId> = (0..4).map(|_| sim.spawn(node, "shard", Shard::default)).collect();
    let router = sim.spawn(node, "router", || Router {
        ring: HashRing::new(HashRingConfig { virtual_nodes: 64 }).unwrap(),
        rebalances: Vec::new(),
    });
    for (index, shard) in shards[..3].iter().enumerate() {
        sim.post(SimTime::from_nanos(index as u64), router, Msg::Join(*shard));
    }
    let keys = 0..300u64;
    for phase in 0..3 {
        for key in keys.clone() {
            let at = SimTime::from_nanos((1 + 2 * phase) * 1_000_000 + key);
            sim.post(at, router, Msg::Request(phase * PHASE + key));
        }
    }
    sim.post(SimTime::from_nanos(2_000_000), router, Msg::Join(shards[3]));
    sim.post(SimTime::from_nanos(4_000_000), router, Msg::Leave(shards[0]));
    sim.run();
    // Which shard got `key` in `phase`.
    let owner = |phase: u64, key: u64| -> usize {
        let holders: Vec<usize> = (0..4)
            .filter(|index| {
                sim.process_state::<Shard>(shards[*index])
                    .unwrap()
                    .keys
                    .contains(&(phase * PHASE + key))
            })
            .collect();
        assert_eq!(holders.len(), 1, "key {key} in phase {phase} went to {holders:?}");
        holders[0]
    };
    let rebalances = sim.process_state::<Router>(router).unwrap().rebalances.clone();
    let (joined, left) = (&rebalances[3], &rebalances[4]);
    let mut moved_in = 0;
    for key in keys {
        let hash = key_hash(&key.to_le_bytes());
        let (first, second, third) = (owner(0, key), owner(1, key), owner(2, key));
        match joined.moves(hash) {
            Some(range) => {
                assert_eq!((range.to, second), (Some(shards[3]), 3));
                moved_in += 1;
            }
            None => assert_eq!(first, second, "key {key} moved without its range moving"),
        }
        assert_eq!(left.moves(hash).is_some(), second == 0);
        if second != 0 {
            assert_eq!(second, third, "key {key} moved though its shard stayed");
        }
    }
    assert!(moved_in > 30 && moved_in < 120, "{moved_in} of 300 keys moved to the newcomer");
    let rebalanced: Vec<(&str, u64, i64)> = trace_kinds(&sink, Component::Routing)
        .into_iter()
        .filter(|event| event.0 == "rebalanced")
        .collect();
    assert_eq!(rebalanced.len(), 5);
    assert_eq!(rebalanced[3], ("rebalanced", u64::from(shards[3].0), joined.moved.len() as i64));
    assert_eq!(rebalanced[4], ("rebalanced", u64::from(shards[0].0), left.moved.len() as i64));
    assert_eq!(sim.metrics().counter("routing.rebalanced"), 5);
}
