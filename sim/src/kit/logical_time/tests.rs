use super::*;
use crate::clock::ClockConfig;
use crate::dist::Dist;
use crate::ids::TimerId;
use crate::net::LinkConfig;
use crate::process::Process;
use crate::rng::Seed;
use crate::time::SimTime;
use crate::trace::{MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

fn clock(counts: &[(u32, u64)]) -> VectorClock {
    counts.iter().map(|&(process, count)| (ProcessId(process), count)).collect()
}

fn hlc(max_drift: SimDuration) -> HybridLogicalClock {
    HybridLogicalClock::new(HlcConfig { max_drift }).unwrap()
}

fn stamp(physical: i64, logical: u64) -> HlcTimestamp {
    HlcTimestamp { physical: LocalTime(physical), logical }
}

// ---------------------------------------------------------------------------
// Unit tests

#[test]
fn lamport_ticks_on_local_events_and_jumps_past_received_times() {
    // Goal: tick adds one; observe takes max(local, received) + 1 either way.
    let mut clock = LamportClock::new();
    assert_eq!(clock.time(), 0);
    assert_eq!(clock.tick(), 1);
    assert_eq!(clock.observe(10), 11);
    assert_eq!(clock.observe(3), 12);
    assert_eq!(clock.time(), 12);
}

#[test]
fn vector_compare_tells_before_after_equal_and_concurrent() {
    // Goal: each outcome of compare on small hand-made clocks, sparse zeros included.
    let a = clock(&[(0, 1)]);
    let b = clock(&[(0, 1), (1, 1)]);
    let c = clock(&[(1, 2)]);
    assert_eq!(a.compare(&b), Causality::Before);
    assert_eq!(b.compare(&a), Causality::After);
    assert_eq!(a.compare(&a.clone()), Causality::Equal);
    assert_eq!(a.compare(&c), Causality::Concurrent);
    assert_eq!(VectorClock::new().compare(&a), Causality::Before);
    // PartialOrd is the causal order.
    assert_eq!(a.partial_cmp(&b), Some(Ordering::Less));
    assert_eq!(b.partial_cmp(&a), Some(Ordering::Greater));
    assert_eq!(a.partial_cmp(&c), None);
    // A zero count is the same as a missing one.
    assert_eq!(clock(&[(0, 1), (5, 0)]), a);
}

#[test]
fn vector_observe_merges_then_counts_the_receive() {
    // Goal: a receive is after both the send and the receiver's previous event.
    let (p, q) = (ProcessId(0), ProcessId(1));
    let mut sender = VectorClock::new();
    sender.increment(p);
    let sent = sender.clone();
    let mut receiver = VectorClock::new();
    let before = receiver.clone();
    assert_eq!(receiver.observe(q, &sent), 1);
    assert_eq!(sent.compare(&receiver), Causality::Before);
    assert_eq!(before.compare(&receiver), Causality::Before);
    assert_eq!(receiver, clock(&[(0, 1), (1, 1)]));
}

#[test]
fn vector_clock_reads_the_engine_clock_without_zero_counts() {
    // Goal: conversion from the trace's clock maps indices to ids and drops zeros.
    let engine: trace::VectorClock = [(0, 2), (3, 0), (7, 1)].into_iter().collect();
    let clock = VectorClock::from(&engine);
    assert_eq!(clock.iter().collect::<Vec<_>>(), vec![(ProcessId(0), 2), (ProcessId(7), 1)]);
}

#[test]
fn hlc_config_rejects_a_zero_max_drift() {
    // Goal: building an HLC with max_drift 0 is refused, naming the field.
    let error = HybridLogicalClock::new(HlcConfig { max_drift: SimDuration::ZERO }).unwrap_err();
    assert_eq!(error.field, "hlc.max_drift");
    assert!(HybridLogicalClock::new(HlcConfig { max_drift: SimDuration::MAX }).is_err());
}

#[test]
fn hlc_counts_on_while_the_physical_clock_stands_still_or_steps_back() {
    // Goal: now() follows the clock when it moves forward and counts otherwise.
    let mut clock = hlc(SimDuration::from_secs(1));
    assert_eq!(clock.now(LocalTime(100)), stamp(100, 0));
    assert_eq!(clock.now(LocalTime(100)), stamp(100, 1));
    // A clock stepped back does not take the timestamp back.
    assert_eq!(clock.now(LocalTime(40)), stamp(100, 2));
    assert_eq!(clock.now(LocalTime(150)), stamp(150, 0));
}

#[test]
fn hlc_receive_takes_the_largest_physical_part_and_the_matching_counter() {
    // Goal: the four cases of the receive rule in Kulkarni et al., Fig. 5.
    let mut clock = hlc(SimDuration::from_secs(1));
    clock.now(LocalTime(100));
    // Local clock ahead of both: fresh reading, counter 0.
    assert_eq!(clock.observe(LocalTime(200), stamp(150, 7)), Ok(stamp(200, 0)));
    // Remote ahead of both: adopt its physical part, one past its counter.
    assert_eq!(clock.observe(LocalTime(210), stamp(300, 4)), Ok(stamp(300, 5)));
    // Previous and remote tie: one past the larger counter.
    assert_eq!(clock.observe(LocalTime(220), stamp(300, 9)), Ok(stamp(300, 10)));
    // Previous ahead of both: one past the previous counter.
    assert_eq!(clock.observe(LocalTime(230), stamp(250, 50)), Ok(stamp(300, 11)));
}

#[test]
fn hlc_rejects_a_timestamp_too_far_ahead_and_stays_where_it_was() {
    // Goal: a remote clock more than max_drift ahead is refused; the local clock does not move.
    let mut clock = hlc(SimDuration::from_millis(100));
    let before = clock.now(LocalTime(1_000_000_000));
    let error = clock.observe(LocalTime(1_000_000_000), stamp(1_100_000_001, 0)).unwrap_err();
    assert_eq!(error.ahead, SimDuration::from_nanos(100_000_001));
    assert_eq!(clock.last(), before);
    // Exactly max_drift ahead is still accepted.
    assert!(clock.observe(LocalTime(1_000_000_000), stamp(1_100_000_000, 0)).is_ok());
}

// ---------------------------------------------------------------------------
// A model of message exchanges, with happens-before computed from the
// graph of events rather than from any clock.

#[derive(Clone, Debug)]
enum Action {
    Local {
        process: usize,
    },
    Send {
        from: usize,
        to: usize,
    },
    /// Deliver the in-flight message at this position (modulo the count);
    /// messages stay in flight, so they can be delivered again (duplicates).
    Receive {
        pick: usize,
    },
}

#[derive(Clone, Debug)]
struct ModelEvent {
    process: usize,
    lamport: u64,
    vector: VectorClock,
    hybrid: HlcTimestamp,
    /// The process's physical clock reading at the event.
    physical: LocalTime,
}

struct ModelRun {
    events: Vec<ModelEvent>,
    /// `ancestors[e]`: every event that happened before `e`.
    ancestors: Vec<BTreeSet<usize>>,
}

impl ModelRun {
    fn happened_before(&self, a: usize, b: usize) -> bool {
        self.ancestors[b].contains(&a)
    }
}

fn action(process_count: usize) -> impl Strategy<Value = Action> {
    let process = 0..process_count;
    prop_oneof![
        1 => process.clone().prop_map(|process| Action::Local { process }),
        // Sends twice as likely as local events, so chains form.
        2 => (process.clone(), process).prop_map(|(from, to)| Action::Send { from, to }),
        2 => any::<usize>().prop_map(|pick| Action::Receive { pick }),
    ]
}

/// Plays `actions` between processes whose physical clocks are offset by
/// `offsets` from a global time that moves on by `advances` (ns) per action.
fn play(actions: &[(Action, u64)], offsets: &[i64]) -> ModelRun {
    let count = offsets.len();
    let mut lamport = vec![LamportClock::new(); count];
    let mut vector = vec![VectorClock::new(); count];
    let mut hybrid = vec![hlc(SimDuration::from_secs(1)); count];
    let mut last_event: Vec<Option<usize>> = vec![None; count];
    // In flight: (to, send event, lamport, vector, hybrid).
    let mut in_flight: Vec<(usize, usize, u64, VectorClock, HlcTimestamp)> = Vec::new();
    let mut run = ModelRun { events: Vec::new(), ancestors: Vec::new() };
    let mut global: i64 = 1_000_000_000;
    for (action, advance) in actions {
        global += *advance as i64;
        let (process, sent_by) = match action {
            Action::Local { process } => (*process % count, None),
            Action::Send { from, .. } => (*from % count, None),
            Action::Receive { pick } => {
                if in_flight.is_empty() {
                    continue;
                }
                let message = in_flight[*pick % in_flight.len()].clone();
                (message.0, Some(message))
            }
        };
        let physical = LocalTime(global + offsets[process]);
        let id = run.events.len();
        let mut ancestors = BTreeSet::new();
        if let Some(previous) = last_event[process] {
            ancestors.extend(run.ancestors[previous].iter().copied());
            ancestors.insert(previous);
        }
        let event = match &sent_by {
            Some((_, send, sent_lamport, sent_vector, sent_hybrid)) => {
                ancestors.extend(run.ancestors[*send].iter().copied());
                ancestors.insert(*send);
                ModelEvent {
                    process,
                    lamport: lamport[process].observe(*sent_lamport),
                    vector: {
                        vector[process].observe(ProcessId(process as u32), sent_vector);
                        vector[process].clone()
                    },
                    hybrid: hybrid[process]
                        .observe(physical, *sent_hybrid)
                        .expect("skews in the model stay within max_drift"),
                    physical,
                }
            }
            None => ModelEvent {
                process,
                lamport: lamport[process].tick(),
                vector: {
                    vector[process].increment(ProcessId(process as u32));
                    vector[process].clone()
                },
                hybrid: hybrid[process].now(physical),
                physical,
            },
        };
        if let Action::Send { to, .. } = action {
            let stamps = (event.lamport, event.vector.clone(), event.hybrid);
            in_flight.push((*to % count, id, stamps.0, stamps.1, stamps.2));
        }
        run.events.push(event);
        run.ancestors.push(ancestors);
        last_event[process] = Some(id);
    }
    run
}

fn exchanges() -> impl Strategy<Value = (Vec<(Action, u64)>, Vec<i64>)> {
    (2usize..=4).prop_flat_map(|count| {
        // Zero advances are common, so several events share a physical
        // reading and the logical counters get exercised.
        let advance = prop_oneof![Just(0u64), 0u64..20_000_000];
        (
            prop::collection::vec((action(count), advance), 1..60),
            prop::collection::vec(-250_000_000i64..=250_000_000, count),
        )
    })
}

fn small_clock() -> impl Strategy<Value = VectorClock> {
    // Few processes and small counts, so equal and comparable clocks are
    // common rather than almost always concurrent.
    prop::collection::vec((0u32..3, 0u64..3), 0..4)
        .prop_map(|counts| counts.into_iter().map(|(p, c)| (ProcessId(p), c)).collect())
}

proptest! {
    /// Law: if a happens before b, then Lamport(a) < Lamport(b); and a
    /// happens before b exactly when VC(a) compares Before VC(b) (vector
    /// clocks characterise causality, concurrency included).
    #[test]
    fn happens_before_implies_lamport_less_and_is_exactly_vector_before(
        (actions, offsets) in exchanges()
    ) {
        let run = play(&actions, &offsets);
        for a in 0..run.events.len() {
            for b in 0..run.events.len() {
                let (left, right) = (&run.events[a], &run.events[b]);
                let before = run.happened_before(a, b);
                if before {
                    prop_assert!(left.lamport < right.lamport, "{a} -> {b}");
                }
                let expected = if a == b {
                    Causality::Equal
                } else if before {
                    Causality::Before
                } else if run.happened_before(b, a) {
                    Causality::After
                } else {
                    Causality::Concurrent
                };
                prop_assert_eq!(left.vector.compare(&right.vector), expected, "{} vs {}", a, b);
            }
        }
    }

    /// Law: a hybrid logical clock is strictly monotone per process, never
    /// behind its process's physical clock, ahead of it by at most the skew
    /// between the clocks, and respects happens-before.
    #[test]
    fn hlc_is_monotone_never_behind_physical_and_within_skew(
        (actions, offsets) in exchanges()
    ) {
        let run = play(&actions, &offsets);
        let skew = offsets.iter().max().unwrap() - offsets.iter().min().unwrap();
        let mut previous: Vec<Option<HlcTimestamp>> = vec![None; offsets.len()];
        for (index, event) in run.events.iter().enumerate() {
            prop_assert!(event.hybrid.physical >= event.physical);
            prop_assert!(event.hybrid.physical.0 - event.physical.0 <= skew);
            if let Some(earlier) = previous[event.process] {
                prop_assert!(earlier < event.hybrid, "not monotone at event {}", index);
            }
            previous[event.process] = Some(event.hybrid);
            for &ancestor in &run.ancestors[index] {
                prop_assert!(run.events[ancestor].hybrid < event.hybrid);
            }
        }
    }

    /// Law: vector-clock comparison is a partial order: reflexive (Equal),
    /// antisymmetric (a <= b and b <= a only if a == b; Before mirrors
    /// After), and transitive.
    #[test]
    fn vector_compare_is_a_partial_order(
        a in small_clock(), b in small_clock(), c in small_clock()
    ) {
        let at_most = |x: &VectorClock, y: &VectorClock| {
            matches!(x.compare(y), Causality::Before | Causality::Equal)
        };
        prop_assert_eq!(a.compare(&a), Causality::Equal);
        if at_most(&a, &b) && at_most(&b, &a) {
            prop_assert_eq!(&a, &b);
        }
        let mirrored = match a.compare(&b) {
            Causality::Before => Causality::After,
            Causality::After => Causality::Before,
            other => other,
        };
        prop_assert_eq!(b.compare(&a), mirrored);
        if at_most(&a, &b) && at_most(&b, &c) {
            prop_assert!(at_most(&a, &c));
        }
    }

    /// Law: merge is commutative, associative and idempotent, and gives an
    /// upper bound of both clocks.
    #[test]
    fn vector_merge_is_commutative_associative_idempotent(
        a in small_clock(), b in small_clock(), c in small_clock()
    ) {
        let merged = |x: &VectorClock, y: &VectorClock| {
            let mut z = x.clone();
            z.merge(y);
            z
        };
        prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        prop_assert_eq!(merged(&a, &a), a.clone());
        let join = merged(&a, &b);
        prop_assert!(matches!(a.compare(&join), Causality::Before | Causality::Equal));
        prop_assert!(matches!(b.compare(&join), Causality::Before | Causality::Equal));
    }
}

// ---------------------------------------------------------------------------
// In a simulation

#[derive(Clone, Debug)]
struct Stamped {
    lamport: u64,
    vector: VectorClock,
    hybrid: HlcTimestamp,
}

impl Message for Stamped {
    fn label(&self) -> &'static str {
        "Stamped"
    }
    fn digest(&self) -> u64 {
        self.lamport
    }
}

/// What one chatter saw at one of its events.
#[derive(Clone, Debug)]
struct Seen {
    key: u64,
    lamport: u64,
    vector: VectorClock,
    hybrid: HlcTimestamp,
    local: LocalTime,
}

/// Sends stamped messages to random peers on a timer and stamps every send
/// and receive with all three clocks.
struct Chatter {
    peers: Vec<ProcessId>,
    sends_left: u32,
    lamport: LamportClock,
    vector: VectorClock,
    hybrid: HybridLogicalClock,
    seen: Vec<Seen>,
}

impl Chatter {
    fn new(peers: Vec<ProcessId>) -> Chatter {
        Chatter {
            peers,
            sends_left: 40,
            lamport: LamportClock::new(),
            vector: VectorClock::new(),
            hybrid: hlc(SimDuration::from_secs(1)),
            seen: Vec::new(),
        }
    }

    fn next_key(&self, ctx: &Ctx<'_, Stamped>) -> u64 {
        (u64::from(ctx.me().0) << 32) | self.seen.len() as u64
    }

    fn keep(&mut self, key: u64, local: LocalTime) {
        let (lamport, vector) = (self.lamport.time(), self.vector.clone());
        self.seen.push(Seen { key, lamport, vector, hybrid: self.hybrid.last(), local });
    }

    fn wait(&mut self, ctx: &mut Ctx<'_, Stamped>) {
        let pause = 1 + ctx.rng().below(30);
        ctx.set_timer(SimDuration::from_millis(pause), 0);
    }
}

impl Process<Stamped> for Chatter {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Stamped>) {
        self.wait(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Stamped>, _timer: TimerId, _tag: u64) {
        // Stamp (and trace) before sending, so the engine sees the stamp
        // as part of the send's causal past, as the clocks do.
        let key = self.next_key(ctx);
        let lamport = self.lamport.tick_traced(ctx, key);
        self.vector.increment_traced(ctx, key);
        let hybrid = self.hybrid.now_traced(ctx, key);
        self.keep(key, ctx.now_local());
        let peer = self.peers[ctx.rng().below(self.peers.len() as u64) as usize];
        ctx.send(peer, Stamped { lamport, vector: self.vector.clone(), hybrid });
        self.sends_left -= 1;
        if self.sends_left > 0 {
            self.wait(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Stamped>, _from: ProcessId, message: Stamped) {
        let key = self.next_key(ctx);
        self.lamport.observe_traced(ctx, key, message.lamport);
        self.vector.observe_traced(ctx, key, &message.vector);
        self.hybrid.observe_traced(ctx, key, message.hybrid).expect("skews are below max_drift");
        self.keep(key, ctx.now_local());
    }
}

#[test]
fn clocks_agree_with_the_engine_causal_clocks_on_skewed_nodes() {
    // Goal: three processes on nodes whose clocks are 300 ms behind and
    // 150 ms ahead (with drift) exchange messages over a link that
    // duplicates and reorders; their vector clocks give exactly the
    // happens-before relation of the engine's own trace clocks, Lamport and
    // hybrid clocks respect it, and the hybrid clock stays within the skew.
    let mut sim: Sim<Stamped> = Sim::new(SimConfig::new(Seed(12)));
    let mut link = LinkConfig::with_latency(Dist::uniform(
        SimDuration::from_millis(1),
        SimDuration::from_millis(40),
    ));
    link.duplicate = 0.2;
    link.reorder = 0.3;
    link.reorder_window = SimDuration::from_millis(50);
    sim.set_default_link(link);
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let clocks = [
        ClockConfig::PERFECT,
        ClockConfig { offset_ns: -300_000_000, drift_ppm: -50.0 },
        ClockConfig { offset_ns: 150_000_000, drift_ppm: 80.0 },
    ];
    let ids: Vec<ProcessId> = (0..3).map(ProcessId).collect();
    for (index, clock) in clocks.iter().enumerate() {
        let node = sim.add_node(NodeConfig::new(format!("n{index}")).clock(*clock));
        let peers: Vec<ProcessId> = ids.iter().copied().filter(|&p| p.index() != index).collect();
        let id = sim.spawn(node, format!("chatter{index}"), move || Chatter::new(peers.clone()));
        assert_eq!(id, ids[index]);
    }
    sim.run_until(SimTime::from_nanos(10_000_000_000));
    assert!(sim.stats().messages_duplicated > 0, "the link should have duplicated something");

    // The engine's vector clock at each of our events, found by its trace key.
    let mut engine: BTreeMap<u64, VectorClock> = BTreeMap::new();
    for record in &sink.borrow().records {
        if let TraceEvent::Component { kind: "lamport_ticked" | "lamport_received", key, .. } =
            record.event
        {
            engine.insert(key, VectorClock::from(record.vector_clock.as_ref().unwrap()));
        }
    }
    let mut seen: Vec<Seen> = Vec::new();
    for &id in &ids {
        seen.extend(sim.process_state::<Chatter>(id).unwrap().seen.iter().cloned());
    }
    assert_eq!(engine.len(), seen.len());
    let mut before_pairs = 0;
    let mut concurrent_pairs = 0;
    for a in &seen {
        for b in &seen {
            let ours = a.vector.compare(&b.vector);
            assert_eq!(ours, engine[&a.key].compare(&engine[&b.key]), "{:x} vs {:x}", a.key, b.key);
            match ours {
                Causality::Before => {
                    before_pairs += 1;
                    assert!(a.lamport < b.lamport);
                    assert!(a.hybrid < b.hybrid);
                }
                Causality::Concurrent => concurrent_pairs += 1,
                _ => {}
            }
        }
        assert!(a.hybrid.physical >= a.local);
        // Clocks are 450 ms apart at most, plus under 1 ms of drift in 10 s.
        assert!(a.hybrid.physical.0 - a.local.0 <= 451_000_000);
    }
    assert!(before_pairs > 1_000 && concurrent_pairs > 1_000, "{before_pairs} {concurrent_pairs}");
    // The node 300 ms behind got timestamps from the future: its HLC ran ahead of its clock.
    assert!(seen.iter().any(|s| s.key >> 32 == 1 && s.hybrid.physical.0 - s.local.0 > 100_000_000));
    let traced = |kind: &str| {
        sink.borrow().records.iter().any(|record| {
            matches!(&record.event, TraceEvent::Component { component: Component::Crdt, kind: k, .. } if *k == kind)
        })
    };
    for kind in ["lamport_ticked", "lamport_received", "vector_ticked", "vector_received"] {
        assert!(traced(kind), "{kind}");
    }
    assert!(traced("hlc_ticked") && traced("hlc_received"));
}

#[test]
fn hlc_rejection_is_traced_and_counted() {
    // Goal: in a sim, a timestamp from a clock 2 s ahead is refused by an
    // HLC allowing 1 s of drift, as an `hlc_rejected` event and a metric.
    struct Receiver {
        hybrid: HybridLogicalClock,
        rejected: u32,
    }
    impl Process<Stamped> for Receiver {
        fn on_message(&mut self, ctx: &mut Ctx<'_, Stamped>, _from: ProcessId, message: Stamped) {
            if self.hybrid.observe_traced(ctx, 1, message.hybrid).is_err() {
                self.rejected += 1;
            }
        }
    }
    let mut sim: Sim<Stamped> = Sim::new(SimConfig::new(Seed(3)));
    let node = sim.add_node(NodeConfig::new("n0"));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    let receiver = sim.spawn(node, "receiver", || Receiver {
        hybrid: hlc(SimDuration::from_secs(1)),
        rejected: 0,
    });
    let future =
        Stamped { lamport: 1, vector: VectorClock::new(), hybrid: stamp(2_000_000_001, 0) };
    sim.post(SimTime::ZERO, receiver, future);
    sim.run();
    assert_eq!(sim.process_state::<Receiver>(receiver).unwrap().rejected, 1);
    assert_eq!(sim.metrics().counter("hlc.rejected"), 1);
    let rejected = sink.borrow().records.iter().any(|record| {
        matches!(
            record.event,
            TraceEvent::Component { kind: "hlc_rejected", value: 2_000_000_001, .. }
        )
    });
    assert!(rejected);
}
