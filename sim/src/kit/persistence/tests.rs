//! Tests of the event log: unit stories in a one-node world, and the laws
//! of durability as property tests over scripts of appends, syncs,
//! snapshots and crashes.

use super::*;
use crate::dist::Dist;
use crate::trace::{MemorySink, TraceEvent};
use crate::{
    Fault, FaultSchedule, NodeConfig, NodeId, Process, ProcessId, Seed, Sim, SimConfig,
    SimDuration, SimTime,
};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

/// One step of a script, posted to the writer from outside.
#[derive(Clone, Debug)]
enum Op {
    /// Append this many events, no sync.
    Append(u8),
    /// Append this many events and sync them.
    Persist(u8),
    /// Sync what was appended.
    Sync,
    /// Snapshot the state now.
    Snapshot,
}

impl Message for Op {
    fn label(&self) -> &'static str {
        match self {
            Op::Append(_) => "Append",
            Op::Persist(_) => "Persist",
            Op::Sync => "Sync",
            Op::Snapshot => "Snapshot",
        }
    }
}

/// An order-sensitive fold: any lost, extra or reordered event changes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Chain {
    count: u64,
    digest: u64,
}

impl Aggregate for Chain {
    type Event = u64;
    fn apply(&mut self, event: &u64) {
        self.count += 1;
        self.digest = self.digest.wrapping_mul(1_000_003) ^ event;
    }
}

/// The event written at `sequence`: a function of its position, so the
/// expected state of any prefix can be computed outside the world.
fn event_for(sequence: u64) -> u64 {
    sequence.wrapping_mul(2_654_435_761) % 1_000_000
}

fn chain_through(last: u64) -> Chain {
    let mut chain = Chain::default();
    for sequence in 1..=last {
        chain.apply(&event_for(sequence));
    }
    chain
}

/// What one start of the writer found.
#[derive(Clone, Debug)]
struct StartObservation {
    /// Last sequence appended by the previous incarnation.
    appended_before: u64,
    /// Highest sequence any sync had reported durable before this start.
    acknowledged_before: u64,
    /// Snapshot + tail replay.
    recovered: Result<Recovered<Chain>, PersistError>,
    /// Replay of every event, ignoring snapshots.
    full: Result<Recovered<Chain>, PersistError>,
}

/// Observations kept outside the world, so they survive crashes (test
/// instrumentation only; the writer's own state is lost as it should be).
#[derive(Debug, Default)]
struct Journal {
    starts: Vec<StartObservation>,
    appended: u64,
    acknowledged: u64,
}

/// Runs the script it is sent against an [`EventLog`], keeping the folded
/// state and snapshotting when the configuration says so.
struct Writer {
    journal: Rc<RefCell<Journal>>,
    config: PersistenceConfig,
    log: Option<EventLog<u64>>,
    state: Chain,
    next_tag: u64,
}

const AGGREGATE: u64 = 42;

impl Process<Op> for Writer {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Op>) {
        let log = EventLog::<u64>::open(ctx, "test", AGGREGATE, self.config.clone()).unwrap();
        let recovered = log.replay(ctx, Chain::default(), |state: &mut Chain, e| state.apply(e));
        let full = log.replay_all(ctx, Chain::default(), |state: &mut Chain, e| state.apply(e));
        if let Ok(recovered) = &recovered {
            self.state = recovered.state.clone();
        }
        let mut journal = self.journal.borrow_mut();
        let observation = StartObservation {
            appended_before: journal.appended,
            acknowledged_before: journal.acknowledged,
            recovered,
            full,
        };
        journal.starts.push(observation);
        journal.appended = log.last_sequence();
        self.log = Some(log);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Op>, _from: ProcessId, op: Op) {
        let log = self.log.as_mut().unwrap();
        let count = match op {
            Op::Append(count) | Op::Persist(count) => u64::from(count),
            Op::Sync | Op::Snapshot => 0,
        };
        let first = log.last_sequence() + 1;
        let events: Vec<u64> = (first..first + count).map(event_for).collect();
        match op {
            Op::Append(_) => {
                let sequences = log.append(ctx, &events).unwrap();
                assert_eq!(*sequences.start(), first);
            }
            Op::Persist(_) => {
                self.next_tag += 1;
                let sequences = log.persist(ctx, &events, self.next_tag).unwrap();
                assert_eq!(*sequences.start(), first);
            }
            Op::Sync => {
                self.next_tag += 1;
                log.sync(ctx, self.next_tag).unwrap();
            }
            Op::Snapshot => {
                log.snapshot(ctx, &self.state).unwrap();
            }
        }
        for event in &events {
            self.state.apply(event);
        }
        if log.snapshot_due() {
            log.snapshot(ctx, &self.state).unwrap();
        }
        self.journal.borrow_mut().appended = log.last_sequence();
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, Op>, tag: u64) {
        let through = self.log.as_mut().unwrap().on_synced(ctx, tag).expect("our own sync");
        let mut journal = self.journal.borrow_mut();
        journal.acknowledged = journal.acknowledged.max(through);
    }
}

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// A one-node world with a writer; returns the sim, the node, the writer
/// and the journal.
fn world(
    seed: u64,
    fsync: Dist,
    config: PersistenceConfig,
) -> (Sim<Op>, NodeId, ProcessId, Rc<RefCell<Journal>>) {
    let mut sim = Sim::new(SimConfig::new(Seed(seed)));
    let mut node_config = NodeConfig::new("disk");
    node_config.fsync = fsync;
    let node = sim.add_node(node_config);
    let journal = Rc::new(RefCell::new(Journal::default()));
    let shared = journal.clone();
    let writer = sim.spawn(node, "writer", move || Writer {
        journal: shared.clone(),
        config: config.clone(),
        log: None,
        state: Chain::default(),
        next_tag: 0,
    });
    (sim, node, writer, journal)
}

/// Runs to the end, noting how many events of the writer's log were
/// durable just before each crash fired.
fn run_noting_synced_at_crashes(sim: &mut Sim<Op>, node: NodeId) -> Vec<usize> {
    let log = format!("test/{AGGREGATE}/events");
    let mut synced_at_crash = Vec::new();
    loop {
        let next = sim.upcoming_events(1);
        let Some(event) = next.first() else { break };
        if event.kind == "fault" && event.detail.starts_with("crash") {
            synced_at_crash.push(sim.storage(node).synced_len(&log));
        }
        sim.step();
    }
    synced_at_crash
}

fn component_events(sink: &Rc<RefCell<MemorySink>>, kind: &str) -> Vec<(u64, i64)> {
    sink.borrow()
        .records
        .iter()
        .filter_map(|record| match &record.event {
            TraceEvent::Component {
                component: Component::Persistence,
                kind: k,
                key,
                value,
                ..
            } if *k == kind => Some((*key, *value)),
            _ => None,
        })
        .collect()
}

#[test]
fn config_rejects_a_zero_snapshot_interval_naming_the_field() {
    // Goal: a bad configuration is refused with the field named, and an
    // event log cannot be opened with it.
    let error = PersistenceConfig::new().snapshot_every(0).validate().unwrap_err();
    assert_eq!(error.field, "persistence.snapshot_interval");
    assert!(error.to_string().starts_with("persistence.snapshot_interval = 0"));
    let config = PersistenceConfig { pending_syncs_max: 0, ..PersistenceConfig::new() };
    assert_eq!(config.validate().unwrap_err().field, "persistence.pending_syncs_max");
    assert_eq!(PersistenceConfig::new().snapshot_every(1).validate(), Ok(()));

    struct Opener(Option<PersistError>);
    impl Process<Op> for Opener {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Op>) {
            let config = PersistenceConfig::new().snapshot_every(0);
            self.0 = EventLog::<u64>::open(ctx, "x", 1, config).err();
        }
        fn on_message(&mut self, _: &mut Ctx<'_, Op>, _: ProcessId, _: Op) {}
    }
    let mut sim = Sim::new(SimConfig::new(Seed(1)));
    let node = sim.add_node(NodeConfig::new("n"));
    let opener = sim.spawn(node, "opener", || Opener(None));
    sim.run();
    let error = sim.process_state::<Opener>(opener).unwrap().0.clone().unwrap();
    assert!(matches!(error, PersistError::Config(ConfigError { ref field, .. })
        if field == "persistence.snapshot_interval"));
}

#[test]
fn an_unsynced_append_is_lost_in_a_crash_and_a_synced_one_is_kept() {
    // Goal: the fsync story end to end. Three events are persisted (synced),
    // two more only appended; the node crashes before any further sync, and
    // the restarted writer replays exactly the three. Each step is traced.
    let (mut sim, node, writer, journal) =
        world(1, Dist::constant(ms(2)), PersistenceConfig::new());
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    sim.post(at_ms(1), writer, Op::Persist(3));
    sim.post(at_ms(5), writer, Op::Append(2));
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(10),
        at_ms(20),
        Fault::CrashNode { node },
    ));
    let synced_at_crash = run_noting_synced_at_crashes(&mut sim, node);
    assert_eq!(synced_at_crash, vec![3]);
    let journal = journal.borrow();
    assert_eq!(journal.starts.len(), 2);
    let after = &journal.starts[1];
    assert_eq!(after.appended_before, 5, "five were appended before the crash");
    assert_eq!(after.acknowledged_before, 3, "three were reported durable");
    let recovered = after.recovered.as_ref().unwrap();
    assert_eq!(recovered.last_sequence, 3);
    assert_eq!(recovered.state, chain_through(3));
    assert_eq!(recovered.events_replayed, 3);
    assert_eq!(sim.fired_faults()[0].touched.writes_lost, 2);
    assert_eq!(component_events(&sink, "appended"), vec![(AGGREGATE, 3), (AGGREGATE, 5)]);
    assert_eq!(component_events(&sink, "synced"), vec![(AGGREGATE, 3)]);
    assert_eq!(
        component_events(&sink, "replayed"),
        vec![(AGGREGATE, 0), (AGGREGATE, 0), (AGGREGATE, 3), (AGGREGATE, 3)]
    );
    assert_eq!(sim.metrics().counter("persistence.appended"), 5);
}

#[test]
fn sequence_numbers_start_at_one_and_continue_after_a_restart() {
    // Goal: numbering is contiguous from 1 and resumes where the durable log
    // ends, so a restarted writer never reuses or skips a number.
    let (mut sim, node, writer, journal) =
        world(2, Dist::constant(ms(1)), PersistenceConfig::new());
    sim.post(at_ms(1), writer, Op::Persist(4));
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(10),
        at_ms(20),
        Fault::CrashNode { node },
    ));
    sim.post(at_ms(30), writer, Op::Persist(2));
    sim.run();
    let state = sim.process_state::<Writer>(writer).unwrap();
    let log = state.log.as_ref().unwrap();
    assert_eq!(log.last_sequence(), 6);
    assert_eq!(log.synced_sequence(), 6);
    assert_eq!(state.state, chain_through(6));
    assert_eq!(journal.borrow().starts[1].recovered.as_ref().unwrap().last_sequence, 4);
    let records = sim.storage(node).read(log.events_log_name());
    for (index, record) in records.iter().enumerate() {
        let stored: LoadedEvent<u64> = postcard::from_bytes(record).unwrap();
        assert_eq!(stored.sequence, index as u64 + 1);
        assert_eq!(stored.event, event_for(stored.sequence));
    }
}

#[test]
fn a_snapshot_every_n_events_bounds_what_replay_folds() {
    // Goal: with a snapshot every 3 events, a restart after 10 events loads
    // the snapshot at 9 and replays one event, and gets the same state.
    let config = PersistenceConfig::new().snapshot_every(3);
    let (mut sim, node, writer, journal) = world(3, Dist::constant(ms(1)), config);
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    for i in 0..10 {
        sim.post(at_ms(1 + i), writer, Op::Persist(1));
    }
    sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(50),
        at_ms(60),
        Fault::CrashNode { node },
    ));
    sim.run();
    let journal = journal.borrow();
    let recovered = journal.starts[1].recovered.as_ref().unwrap();
    assert_eq!(recovered.snapshot_sequence, Some(9));
    assert_eq!(recovered.events_replayed, 1);
    assert_eq!(recovered.state, chain_through(10));
    let snapshots: Vec<i64> =
        component_events(&sink, "snapshotted").into_iter().map(|(_, v)| v).collect();
    assert_eq!(snapshots, vec![3, 6, 9]);
}

#[test]
fn the_bound_on_pending_syncs_rejects_a_persist_and_appends_nothing() {
    // Goal: a writer persisting faster than its disk syncs hits the bound,
    // which is traced and counted, and the refused events are not written.
    struct Eager {
        log: Option<EventLog<u64>>,
        outcomes: Vec<Result<u64, PersistError>>,
    }
    impl Process<Op> for Eager {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Op>) {
            let config = PersistenceConfig { pending_syncs_max: 2, ..PersistenceConfig::new() };
            let mut log = EventLog::open(ctx, "eager", 7, config).unwrap();
            for tag in 0..3 {
                let outcome = log.persist(ctx, &[tag], tag).map(|range| *range.end());
                self.outcomes.push(outcome);
            }
            self.log = Some(log);
        }
        fn on_message(&mut self, _: &mut Ctx<'_, Op>, _: ProcessId, _: Op) {}
    }
    let mut sim = Sim::new(SimConfig::new(Seed(4)));
    let mut node_config = NodeConfig::new("slow-disk");
    node_config.fsync = Dist::constant(ms(10));
    let node = sim.add_node(node_config);
    let eager = sim.spawn(node, "eager", || Eager { log: None, outcomes: Vec::new() });
    sim.run_until(at_ms(1));
    let state = sim.process_state::<Eager>(eager).unwrap();
    assert_eq!(
        state.outcomes,
        vec![Ok(1), Ok(2), Err(PersistError::TooManyPendingSyncs { max: 2 })]
    );
    assert_eq!(state.log.as_ref().unwrap().last_sequence(), 2);
    assert_eq!(sim.storage(node).read("eager/7/events").len(), 2);
    assert_eq!(sim.metrics().counter("persistence.rejected"), 1);
}

#[test]
fn a_garbled_record_is_reported_not_replayed() {
    // Goal: replay refuses a log it cannot decode instead of folding a
    // partial history.
    struct Garbler(Option<PersistError>);
    impl Process<Op> for Garbler {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Op>) {
            let mut log = EventLog::<u64>::open(ctx, "g", 1, PersistenceConfig::new()).unwrap();
            log.append(ctx, &[1]).unwrap();
            // Varint bytes that never end: no record decodes from them.
            ctx.append("g/1/events", [0xff_u8; 16]);
            self.0 = EventLog::<u64>::open(ctx, "g", 1, PersistenceConfig::new()).err();
            let replayed = log.replay_all(ctx, 0_u64, |sum, event| *sum += event);
            assert!(matches!(replayed, Err(PersistError::Decode { index: 1, .. })));
        }
        fn on_message(&mut self, _: &mut Ctx<'_, Op>, _: ProcessId, _: Op) {}
    }
    let mut sim = Sim::new(SimConfig::new(Seed(5)));
    let node = sim.add_node(NodeConfig::new("n"));
    let garbler = sim.spawn(node, "garbler", || Garbler(None));
    sim.run();
    let error = sim.process_state::<Garbler>(garbler).unwrap().0.clone();
    assert!(matches!(error, Some(PersistError::Decode { index: 1, .. })), "{error:?}");
}

/// A script: operations at increasing times, crash windows in between, the
/// disk's sync latency, and the snapshot interval.
#[derive(Clone, Debug)]
struct Script {
    seed: u64,
    fsync_ms_max: u64,
    snapshot_interval: Option<u64>,
    ops: Vec<(u64, Op)>,
    crashes: Vec<(u64, u64)>,
}

fn op() -> impl Strategy<Value = Op> {
    // Appends without sync are as likely as persists, so unsynced tails are
    // common at crash time, which is the case the law is about.
    prop_oneof![
        3 => (1..4_u8).prop_map(Op::Append),
        3 => (1..4_u8).prop_map(Op::Persist),
        2 => Just(Op::Sync),
        1 => Just(Op::Snapshot),
    ]
}

fn script() -> impl Strategy<Value = Script> {
    (
        any::<u64>(),
        0..6_u64,
        prop_oneof![Just(None), (1..6_u64).prop_map(Some)],
        prop::collection::vec((0..4_u64, op()), 1..40),
        prop::collection::vec((1..30_u64, 1..10_u64), 0..4),
    )
        .prop_map(|(seed, fsync_ms_max, snapshot_interval, steps, gaps)| {
            // Operations every 0..3 ms; crashes start after a gap and last a
            // few ms, never overlapping.
            let mut time = 1;
            let ops = steps
                .into_iter()
                .map(|(gap, op)| {
                    time += gap;
                    (time, op)
                })
                .collect();
            let mut crash_time = 0;
            let crashes = gaps
                .into_iter()
                .map(|(gap, length)| {
                    crash_time += gap;
                    let window = (crash_time, crash_time + length);
                    crash_time += length + 1;
                    window
                })
                .collect();
            Script { seed, fsync_ms_max, snapshot_interval, ops, crashes }
        })
}

/// Runs a script; returns the journal, the synced counts at each crash and
/// the final writer's log position and state.
fn run_script(script: &Script) -> (Rc<RefCell<Journal>>, Vec<usize>, u64, Chain) {
    let config = PersistenceConfig {
        snapshot_interval: script.snapshot_interval,
        ..PersistenceConfig::new()
    };
    let fsync = Dist::uniform(SimDuration::ZERO, ms(script.fsync_ms_max));
    let (mut sim, node, writer, journal) = world(script.seed, fsync, config);
    for (time, op) in &script.ops {
        sim.post(at_ms(*time), writer, op.clone());
    }
    let mut faults = FaultSchedule::new();
    for (from, until) in &script.crashes {
        faults = faults.window(at_ms(*from), at_ms(*until), Fault::CrashNode { node });
    }
    sim.schedule_faults(&faults);
    let synced_at_crash = run_noting_synced_at_crashes(&mut sim, node);
    let last = sim
        .process_state::<Writer>(writer)
        .map(|writer| (writer.log.as_ref().unwrap().last_sequence(), writer.state.clone()));
    let (last_sequence, state) = last.expect("the writer is up at the end");
    (journal, synced_at_crash, last_sequence, state)
}

proptest! {
    /// Law: after a crash, replay rebuilds exactly the state folded from the
    /// synced prefix of events: never an unsynced event, never losing one a
    /// sync reported durable, for any interleaving of appends, syncs,
    /// snapshots and crash points.
    #[test]
    fn law_replay_after_a_crash_rebuilds_exactly_the_synced_prefix(script in script()) {
        let (journal, synced_at_crash, _, _) = run_script(&script);
        let journal = journal.borrow();
        prop_assert_eq!(journal.starts.len(), synced_at_crash.len() + 1);
        for (start, synced) in journal.starts.iter().skip(1).zip(&synced_at_crash) {
            let synced = *synced as u64;
            let recovered = start.recovered.as_ref().unwrap();
            prop_assert_eq!(recovered.last_sequence, synced, "replay reaches the synced prefix, no further");
            prop_assert_eq!(&recovered.state, &chain_through(synced));
            prop_assert!(start.acknowledged_before <= synced, "a write reported durable was lost");
            prop_assert!(synced <= start.appended_before);
        }
    }

    /// Law: a replay from the newest snapshot plus the events after it gives
    /// the same state as a replay of every event; and sequence numbers stay
    /// contiguous from 1 across restarts (replay checks every record's
    /// number against its position).
    #[test]
    fn law_snapshot_plus_tail_replay_equals_full_replay(script in script()) {
        let (journal, _, last_sequence, state) = run_script(&script);
        for start in &journal.borrow().starts {
            let recovered = start.recovered.as_ref().unwrap();
            let full = start.full.as_ref().unwrap();
            prop_assert_eq!(&recovered.state, &full.state);
            prop_assert_eq!(full.events_replayed, full.last_sequence);
            if let Some(snapshot) = recovered.snapshot_sequence {
                prop_assert_eq!(recovered.events_replayed, recovered.last_sequence - snapshot);
            }
        }
        prop_assert_eq!(state, chain_through(last_sequence));
    }
}
