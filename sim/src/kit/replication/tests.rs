//! Tests of replication: the pure parts (configuration, the detector, the
//! fencing audit) directly, and the protocol in small worlds of a store,
//! two or three replicas and a client, under partitions and crashes.

use super::*;
use crate::dist::Dist;
use crate::trace::MemorySink;
use crate::{
    Fault, FaultSchedule, LinkConfig, NodeConfig, NodeId, Process, ProcessId, Seed, Sim, SimConfig,
    SimDuration, SimTime,
};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq)]
struct World(Replication<u64>);

impl Message for World {
    fn label(&self) -> &'static str {
        self.0.label()
    }
}

impl Carry<Replication<u64>> for World {
    fn wrap(inner: Replication<u64>) -> World {
        World(inner)
    }
    fn unwrap(self) -> Result<Replication<u64>, World> {
        Ok(self.0)
    }
}

/// Every event in order: the simplest state that shows a lost, extra or
/// reordered event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct History(Vec<u64>);

impl Aggregate for History {
    type Event = u64;
    fn apply(&mut self, event: &u64) {
        self.0.push(*event);
    }
}

const AGGREGATE: u64 = 9;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// A write the client saw acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Acknowledged {
    replica: ProcessId,
    request: u64,
    epoch: u64,
    sequence: u64,
}

#[derive(Debug, Default)]
struct ClientLog {
    acknowledged: Vec<Acknowledged>,
    rejected: Vec<(ProcessId, u64, WriteRejection)>,
}

/// Sends write `n` (one event, `n`) to every replica every `interval`, so
/// whoever believes it is active takes it; keeps what it hears outside the
/// world.
struct Client {
    replicas: Vec<ProcessId>,
    interval: SimDuration,
    writes_max: u64,
    sent: u64,
    log: Rc<RefCell<ClientLog>>,
}

impl Process<World> for Client {
    fn on_start(&mut self, ctx: &mut Ctx<'_, World>) {
        ctx.set_timer(self.interval, 0);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, World>, _timer: TimerId, _tag: u64) {
        self.sent += 1;
        for replica in &self.replicas {
            let write = Replication::Write {
                aggregate: AGGREGATE,
                request: self.sent,
                events: vec![self.sent],
            };
            ctx.send(*replica, World(write));
        }
        if self.sent < self.writes_max {
            ctx.set_timer(self.interval, 0);
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, World>, from: ProcessId, message: World) {
        record_reply(&self.log, from, message);
    }
}

/// Notes an answer to a write: one-event writes are recorded as
/// acknowledged, longer ones are not (the tests that send them look only at
/// rejections).
fn record_reply(log: &Rc<RefCell<ClientLog>>, from: ProcessId, message: World) {
    let mut log = log.borrow_mut();
    match message.0 {
        Replication::Written { request, epoch, first_sequence, last_sequence, .. }
            if first_sequence == last_sequence =>
        {
            let sequence = first_sequence;
            log.acknowledged.push(Acknowledged { replica: from, request, epoch, sequence });
        }
        Replication::WriteRejected { request, reason, .. } => {
            log.rejected.push((from, request, reason));
        }
        _ => {}
    }
}

/// A world: replicas on nodes 0 and 1 (and 2 when there are three), the
/// store and the client on node 2.
struct Setup {
    seed: u64,
    replica_count: usize,
    config: ReplicationConfig,
    link: LinkConfig,
    fsync: Dist,
    write_interval: SimDuration,
    writes_max: u64,
}

impl Setup {
    fn new(seed: u64) -> Setup {
        Setup {
            seed,
            replica_count: 2,
            config: ReplicationConfig::new(),
            link: LinkConfig::constant(ms(1)),
            fsync: Dist::constant(ms(2)),
            write_interval: ms(20),
            writes_max: 150,
        }
    }
}

struct Built {
    sim: Sim<World>,
    nodes: Vec<NodeId>,
    store: ProcessId,
    replicas: Vec<ProcessId>,
    client: Rc<RefCell<ClientLog>>,
    sink: Rc<RefCell<MemorySink>>,
}

fn build(setup: &Setup) -> Built {
    let mut sim = Sim::new(SimConfig::new(Seed(setup.seed)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    sim.set_default_link(setup.link.clone());
    let nodes: Vec<NodeId> = (0..3)
        .map(|index| {
            let mut node = NodeConfig::new(format!("n{index}"));
            node.fsync = setup.fsync.clone();
            sim.add_node(node)
        })
        .collect();
    let store_value = LogStore::<u64>::new(&setup.config).unwrap();
    let store = sim.spawn(nodes[2], "store", move || store_value.clone());
    let replicas: Vec<ProcessId> =
        (0..setup.replica_count).map(|index| ProcessId(store.0 + 1 + index as u32)).collect();
    let group = ReplicaGroup { aggregate: AGGREGATE, store, replicas: replicas.clone() };
    for (index, expected) in replicas.iter().enumerate() {
        let replica = Replica::new(&setup.config, &group, History::default()).unwrap();
        let node = nodes[index.min(2)];
        let spawned = sim.spawn(node, format!("replica-{index}"), move || replica.clone());
        assert_eq!(spawned, *expected);
    }
    let client = Rc::new(RefCell::new(ClientLog::default()));
    let client_log = client.clone();
    let (interval, writes_max) = (setup.write_interval, setup.writes_max);
    let targets = replicas.clone();
    sim.spawn(nodes[2], "client", move || Client {
        replicas: targets.clone(),
        interval,
        writes_max,
        sent: 0,
        log: client_log.clone(),
    });
    Built { sim, nodes, store, replicas, client, sink }
}

/// (time, process, key, value) of every replication event of `kind`.
fn events(sink: &Rc<RefCell<MemorySink>>, kind: &str) -> Vec<(SimTime, ProcessId, u64, i64)> {
    sink.borrow()
        .records
        .iter()
        .filter_map(|record| match &record.event {
            TraceEvent::Component {
                process,
                component: Component::Replication,
                kind: k,
                key,
                value,
            } if *k == kind => Some((record.time, *process, *key, *value)),
            _ => None,
        })
        .collect()
}

fn replica(sim: &Sim<World>, id: ProcessId) -> &Replica<History> {
    sim.process_state::<Replica<History>>(id).expect("the replica is up")
}

/// The store's durable log, decoded: (sequence, epoch, writer, event).
fn store_log(sim: &Sim<World>, node: NodeId) -> Vec<(u64, u64, ProcessId, u64)> {
    #[derive(Deserialize)]
    struct Stored {
        sequence: u64,
        event: StoredEntry<u64>,
    }
    sim.storage(node)
        .read(&format!("store/entries/{AGGREGATE}/events"))
        .iter()
        .map(|record| {
            let stored: Stored = postcard::from_bytes(record).unwrap();
            (stored.sequence, stored.event.epoch, stored.event.writer, stored.event.event)
        })
        .collect()
}

// ----- configuration and the pure parts -----

#[test]
fn writes_in_flight_behave_as_a_map_in_id_order() {
    // Goal: the ring of writes in flight answers like the map it replaced,
    // whatever order writes resolve in.
    let write = |request: u64| PendingWrite {
        client: ProcessId(9),
        request,
        epoch: 1,
        events: vec![request],
        count: 1,
        first_sequence: None,
        applied: 0,
        sent_at: LocalTime(0),
    };
    let mut writes = InFlight::new();
    for id in 100..105 {
        writes.insert(id, write(id));
    }
    assert_eq!(writes.remove(102).map(|w| w.request), Some(102));
    assert!(writes.remove(102).is_none() && writes.get_mut(7).is_none());
    assert!(writes.get_mut(u64::MAX).is_none());
    assert_eq!(writes.remove(100).map(|w| w.request), Some(100));
    writes.get_mut(103).unwrap().applied = 1;
    let present: Vec<(u64, usize)> = writes.iter().map(|(id, w)| (id, w.applied)).collect();
    assert_eq!(present, vec![(101, 0), (103, 1), (104, 0)]);
    assert_eq!(writes.len(), 3);
    for id in [104, 101, 103] {
        assert!(writes.remove(id).is_some());
    }
    assert_eq!((writes.len(), writes.iter().count()), (0, 0));
    writes.insert(500, write(500));
    assert_eq!(writes.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![500]);
}

#[test]
fn config_rejects_bad_values_naming_the_field() {
    // Goal: each invalid value is refused with its field named, and a store
    // or replica cannot be built from it.
    let base = ReplicationConfig::new();
    assert_eq!(base.validate(), Ok(()));
    let cases = [
        (
            ReplicationConfig { heartbeat_interval: SimDuration::ZERO, ..base.clone() },
            "replication.heartbeat_interval",
        ),
        (
            ReplicationConfig { detection_timeout: base.heartbeat_interval, ..base.clone() },
            "replication.detection_timeout",
        ),
        (
            ReplicationConfig { detection_timeout: ms(10), ..base.clone() },
            "replication.detection_timeout",
        ),
        (
            ReplicationConfig { write_timeout: SimDuration::ZERO, ..base.clone() },
            "replication.write_timeout",
        ),
        (
            ReplicationConfig { pending_writes_max: 0, ..base.clone() },
            "replication.pending_writes_max",
        ),
        (ReplicationConfig { batch_max: 0, ..base.clone() }, "replication.batch_max"),
        (
            ReplicationConfig { bootstrap_timeout: Some(SimDuration::ZERO), ..base.clone() },
            "replication.bootstrap_timeout",
        ),
    ];
    let group = ReplicaGroup { aggregate: 1, store: ProcessId(0), replicas: vec![ProcessId(1)] };
    for (config, field) in cases {
        assert_eq!(config.validate().unwrap_err().field, field);
        assert_eq!(LogStore::<u64>::new(&config).unwrap_err().field, field);
        assert_eq!(Replica::new(&config, &group, History::default()).unwrap_err().field, field);
    }
    let error =
        ReplicationConfig { detection_timeout: ms(50), ..base.clone() }.validate().unwrap_err();
    assert_eq!(
        error.to_string(),
        "replication.detection_timeout = 50ms: expected more than the heartbeat interval (50ms)"
    );
    for replicas in [vec![], vec![ProcessId(1), ProcessId(1)], vec![ProcessId(0), ProcessId(1)]] {
        let group = ReplicaGroup { aggregate: 1, store: ProcessId(0), replicas };
        assert_eq!(group.validate().unwrap_err().field, "replication.replicas");
    }
}

#[test]
fn the_detector_suspects_exactly_when_the_timeout_has_passed_since_it_last_heard() {
    // Goal: the private heartbeat detector's boundary, and that hearing
    // late news never moves it back.
    let mut detector = HeartbeatDetector::new(ms(200), LocalTime(0));
    assert!(!detector.suspects(LocalTime(199_999_999)));
    assert!(detector.suspects(LocalTime(200_000_000)));
    detector.heard(LocalTime(150_000_000));
    assert!(!detector.suspects(LocalTime(349_999_999)));
    detector.heard(LocalTime(100_000_000));
    assert!(detector.suspects(LocalTime(350_000_000)));
}

#[test]
fn the_audit_flags_two_writers_in_one_epoch_and_a_stale_epoch_after_a_newer_one() {
    // Goal: the checker that the laws rely on finds both kinds of breach and
    // passes a clean history.
    let append = |epoch, writer| AcceptedAppend {
        time: SimTime::ZERO,
        store: ProcessId(0),
        aggregate: 1,
        epoch,
        writer: ProcessId(writer),
    };
    let clean = [append(1, 1), append(1, 1), append(2, 2), append(3, 1)];
    assert!(check_fencing(&clean).is_empty());
    let shared = [append(1, 1), append(2, 2), append(2, 1)];
    assert_eq!(
        check_fencing(&shared),
        vec![FencingViolation::SharedEpoch { append: append(2, 1), first_writer: ProcessId(2) }]
    );
    let stale = [append(1, 1), append(2, 2), append(1, 1)];
    assert_eq!(
        check_fencing(&stale),
        vec![FencingViolation::StaleEpoch { append: append(1, 1), newer_epoch: 2 }]
    );
    // Aggregates are independent.
    let other = AcceptedAppend { aggregate: 2, ..append(1, 3) };
    assert!(check_fencing(&[append(2, 1), other]).is_empty());
}

// ----- worlds -----

#[test]
fn writes_are_acknowledged_after_the_store_syncs_and_the_passive_follows() {
    // Goal: the steady state. The first replica is promoted to epoch 1,
    // every write is acknowledged once durable in the store (so never
    // sooner than the store's fsync), and the passive ends with the same
    // history, in the store's order.
    let mut setup = Setup::new(1);
    setup.fsync = Dist::constant(ms(10));
    setup.writes_max = 40;
    let Built { mut sim, nodes, replicas, client, sink, .. } = build(&setup);
    sim.run_until(at_ms(2_000));
    let (active, passive) = (replica(&sim, replicas[0]), replica(&sim, replicas[1]));
    assert_eq!((active.role(), active.epoch()), (ReplicaRole::Active, 1));
    assert_eq!(passive.role(), ReplicaRole::Passive);
    assert_eq!(passive.active(), Some(replicas[0]));
    let log = store_log(&sim, nodes[2]);
    let events_in_log: Vec<u64> = log.iter().map(|entry| entry.3).collect();
    assert_eq!(active.state().0, events_in_log);
    assert_eq!(passive.state().0, events_in_log);
    assert_eq!(active.peer_through(replicas[1]), log.len() as u64);
    let client = client.borrow();
    // Writes sent before the election are refused; all later ones land.
    assert_eq!(client.acknowledged.len(), log.len());
    assert!(client.acknowledged.len() >= 25, "{}", client.acknowledged.len());
    for acknowledged in &client.acknowledged {
        assert_eq!(log[acknowledged.sequence as usize - 1].3, acknowledged.request);
    }
    assert!(client.rejected.iter().all(|(_, _, reason)| matches!(
        reason,
        WriteRejection::NotActive { .. } | WriteRejection::CatchingUp
    )));
    // Reply after the write: a Written follows the store's sync of it.
    let records = sink.borrow();
    let first_written = records.records.iter().position(|record| {
        matches!(&record.event, TraceEvent::MessageSent { label: "Written", .. })
    });
    let first_append = records.records.iter().position(|record| {
        matches!(&record.event, TraceEvent::MessageSent { label: "Append", .. })
    });
    let (first_written, first_append) = (first_written.unwrap(), first_append.unwrap());
    let gap = records.records[first_written].time.since(records.records[first_append].time);
    assert!(gap >= ms(10), "a write was acknowledged before the store's fsync: {gap}");
    drop(records);
    assert_eq!(events(&sink, "promoted").len(), 1);
    assert!(!events(&sink, "replicated").is_empty());
    assert!(events(&sink, "replicated").iter().all(|event| event.1 == replicas[1]));
    assert!(check_fencing(&accepted_appends(&sink.borrow().records)).is_empty());
}

/// Sends a fixed list of writes when it starts, and keeps the answers.
struct Prober {
    writes: Vec<(ProcessId, u64, Vec<u64>)>,
    log: Rc<RefCell<ClientLog>>,
}

impl Process<World> for Prober {
    fn on_start(&mut self, ctx: &mut Ctx<'_, World>) {
        for (to, request, events) in self.writes.drain(..) {
            let write = Replication::Write { aggregate: AGGREGATE, request, events };
            ctx.send(to, World(write));
        }
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, World>, from: ProcessId, message: World) {
        record_reply(&self.log, from, message);
    }
}

#[test]
fn writes_to_a_passive_or_of_the_wrong_size_are_rejected_with_a_reason() {
    // Goal: a replica that is not active points at the one it believes is,
    // and an active refuses empty and oversized writes; each refusal is
    // traced.
    let mut setup = Setup::new(2);
    setup.writes_max = 1;
    setup.config.batch_max = 2;
    let Built { mut sim, replicas, sink, .. } = build(&setup);
    sim.run_until(at_ms(1_000));
    let log = Rc::new(RefCell::new(ClientLog::default()));
    let answers = log.clone();
    let (active, passive) = (replicas[0], replicas[1]);
    sim.spawn(NodeId(2), "prober", move || Prober {
        writes: vec![
            (passive, 100, vec![1]),
            (active, 101, vec![]),
            (active, 102, vec![1, 2, 3]),
            (active, 103, vec![1, 2]),
        ],
        log: answers.clone(),
    });
    sim.run_until(at_ms(1_100));
    let log = log.borrow();
    assert_eq!(
        log.rejected,
        vec![
            (passive, 100, WriteRejection::NotActive { active: Some(active) }),
            (active, 101, WriteRejection::Empty),
            (active, 102, WriteRejection::TooLarge),
        ]
    );
    assert_eq!(log.acknowledged.len(), 0, "a two-event write is acknowledged as a range");
    let rejected: Vec<i64> = events(&sink, "write_rejected")
        .iter()
        .filter(|event| event.0 >= at_ms(1_000))
        .map(|event| event.3)
        .collect();
    assert_eq!(rejected, vec![100, 101, 102]);
}

/// A partition between the replicas only: the active (node 0) is cut off
/// from the passive (node 1) for a second, while both still reach the store
/// and the client (node 2).
fn partition_between_the_replicas(fencing: bool) -> Built {
    partitioned(fencing, vec![NodeId(0)], vec![NodeId(1)])
}

/// The active's node is cut off from everyone for a second, then heals
/// between two heartbeats of its successor (they go out every 50 ms), so
/// that a client's write (every 20 ms) reaches the old active before news
/// of the new epoch does.
fn partition_isolating_the_active(fencing: bool) -> Built {
    partitioned(fencing, vec![NodeId(0)], vec![NodeId(1), NodeId(2)])
}

fn partitioned(fencing: bool, side_a: Vec<NodeId>, side_b: Vec<NodeId>) -> Built {
    let mut setup = Setup::new(7);
    setup.config = ReplicationConfig::new().fencing(fencing);
    let mut built = build(&setup);
    built.sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(1_000),
        at_ms(2_010),
        Fault::Partition { side_a, side_b },
    ));
    built.sim.run_until(at_ms(3_500));
    built
}

/// The replicas' promotions in order, as (replica, epoch).
fn promotions(sink: &Rc<RefCell<MemorySink>>) -> Vec<(ProcessId, i64)> {
    events(sink, "promoted").iter().map(|event| (event.1, event.3)).collect()
}

#[test]
fn a_bootstrap_timeout_elects_a_fresh_group_at_the_first_tick_and_only_once() {
    // Goal: with a bootstrap timeout, the lowest rank claims at the first
    // tick instead of after a detection timeout; the other replica follows
    // it; and the store's in-memory audit equals the one read from the trace.
    let mut setup = Setup::new(5);
    setup.config = ReplicationConfig::new().bootstrap_after(SimDuration::from_nanos(1));
    let mut built = build(&setup);
    built.sim.run_until(at_ms(1_000));
    let replicas = built.replicas.clone();
    assert_eq!(promotions(&built.sink), vec![(replicas[0], 1)]);
    let promoted_at = events(&built.sink, "promoted")[0].0;
    assert!(promoted_at <= at_ms(60), "promoted at {promoted_at}, the first tick is at 50 ms");
    assert_eq!(replica(&built.sim, replicas[1]).role(), ReplicaRole::Passive);
    let store = built.sim.process_state::<LogStore<u64>>(built.store).unwrap();
    let audited = accepted_appends(&built.sink.borrow().records);
    assert!(!audited.is_empty());
    assert_eq!(store.accepted(), &audited[..]);
    // Without it, the first claim waits for the detection timeout.
    let mut slow = build(&Setup::new(5));
    slow.sim.run_until(at_ms(1_000));
    assert!(events(&slow.sink, "promoted")[0].0 >= at_ms(200));
}

#[test]
fn without_fencing_a_partitioned_active_and_the_promoted_passive_both_write() {
    // Goal: show the protection matters. With fencing off, the passive that
    // cannot hear the active promotes itself while the active still writes,
    // and the store accepts the deposed active's epoch-1 appends after the
    // new active's epoch-2 ones: the audit finds the split brain.
    let Built { replicas, sink, client, .. } = partition_between_the_replicas(false);
    assert_eq!(promotions(&sink)[..2], [(replicas[0], 1), (replicas[1], 2)]);
    assert!(events(&sink, "suspected").iter().any(|event| event.1 == replicas[1]));
    let appends = accepted_appends(&sink.borrow().records);
    let violations = check_fencing(&appends);
    assert!(
        violations.iter().any(|violation| matches!(
            violation,
            FencingViolation::StaleEpoch { append, newer_epoch: 2 }
                if append.epoch == 1 && append.writer == replicas[0]
        )),
        "{violations:?}"
    );
    // Both told the client its write was done while the partition lasted.
    let client = client.borrow();
    let during = |replica: ProcessId, epoch: u64| {
        client.acknowledged.iter().any(|a| a.replica == replica && a.epoch == epoch)
    };
    assert!(during(replicas[0], 1) && during(replicas[1], 2));
    assert!(events(&sink, "fenced").is_empty(), "nothing checks epochs");
}

#[test]
fn with_fencing_a_partition_between_the_replicas_alone_deposes_nobody() {
    // Goal: the same partition with fencing on. The passive suspects the
    // active and claims epoch 2, but the store still hears the active and
    // refuses; the passive keeps up through the store instead of the
    // stream, and nothing is ever written twice.
    let Built { sim, replicas, sink, store, .. } = partition_between_the_replicas(true);
    assert_eq!(promotions(&sink), vec![(replicas[0], 1)]);
    let refused_claims = events(&sink, "fenced")
        .iter()
        .filter(|event| event.1 == store && event.3 == 2 && event.0 > at_ms(1_000))
        .count();
    assert!(refused_claims >= 1);
    assert!(check_fencing(&accepted_appends(&sink.borrow().records)).is_empty());
    assert_eq!(replica(&sim, replicas[1]).state(), replica(&sim, replicas[0]).state());
}

#[test]
fn with_fencing_an_isolated_active_is_deposed_and_refused_when_it_returns() {
    // Goal: the deposed-active story. The active's node is cut off; the
    // passive, and the store, stop hearing it, so the passive is promoted
    // to epoch 2. When the partition heals the old active still believes
    // it leads at epoch 1: its writes and heartbeats are fenced, it is
    // demoted and follows, and no acknowledged write is lost.
    let Built { sim, nodes, replicas, sink, client, .. } = partition_isolating_the_active(true);
    assert_eq!(promotions(&sink), vec![(replicas[0], 1), (replicas[1], 2)]);
    let appends = accepted_appends(&sink.borrow().records);
    assert!(appends.iter().any(|append| append.epoch == 2));
    assert_eq!(check_fencing(&appends), vec![]);
    let refused_epoch_1 = events(&sink, "fenced").iter().filter(|e| e.3 == 1).count();
    assert!(refused_epoch_1 >= 1);
    let demoted: Vec<(ProcessId, i64)> =
        events(&sink, "demoted").iter().map(|event| (event.1, event.3)).collect();
    assert_eq!(demoted, vec![(replicas[0], 1)]);
    // Both replicas end with the store's history, which holds every
    // acknowledged write where the client was told it is.
    let log = store_log(&sim, nodes[2]);
    let history: Vec<u64> = log.iter().map(|entry| entry.3).collect();
    for id in &replicas {
        assert_eq!(replica(&sim, *id).state().0, history);
    }
    for acknowledged in &client.borrow().acknowledged {
        assert_eq!(log[acknowledged.sequence as usize - 1].3, acknowledged.request);
    }
    assert_eq!(replica(&sim, replicas[0]).role(), ReplicaRole::Passive);
    assert_eq!(replica(&sim, replicas[0]).active(), Some(replicas[1]));
}

#[test]
fn without_fencing_an_isolated_active_that_returns_writes_in_its_old_epoch() {
    // Goal: the same deposed active with fencing off: when it returns, its
    // first writes at epoch 1 are accepted after the new active's epoch-2
    // writes.
    let Built { replicas, sink, .. } = partition_isolating_the_active(false);
    assert_eq!(promotions(&sink)[..2], [(replicas[0], 1), (replicas[1], 2)]);
    let violations = check_fencing(&accepted_appends(&sink.borrow().records));
    assert!(
        violations.iter().any(|violation| matches!(
            violation,
            FencingViolation::StaleEpoch { append, .. } if append.writer == replicas[0]
        )),
        "{violations:?}"
    );
}

#[test]
fn a_restarted_passive_replays_its_own_log_then_catches_up_from_the_store() {
    // Goal: a passive whose node crashes comes back with the synced prefix
    // of its local log and reads the rest from the store, ending equal to
    // the active.
    let mut setup = Setup::new(3);
    setup.writes_max = 120;
    let mut built = build(&setup);
    let n1 = built.nodes[1];
    built.sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(1_000),
        at_ms(1_800),
        Fault::CrashNode { node: n1 },
    ));
    built.sim.run_until(at_ms(4_000));
    let Built { sim, replicas, sink, .. } = built;
    let (active, passive) = (replica(&sim, replicas[0]), replica(&sim, replicas[1]));
    assert_eq!(active.role(), ReplicaRole::Active);
    assert_eq!(passive.state(), active.state());
    assert!(passive.applied_sequence() > 80);
    // On restart it replayed what it had synced before the crash.
    let replayed: Vec<i64> = sink
        .borrow()
        .records
        .iter()
        .filter_map(|record| match &record.event {
            TraceEvent::Component {
                process,
                component: Component::Persistence,
                kind: "replayed",
                value,
                ..
            } if *process == replicas[1] => Some(*value),
            _ => None,
        })
        .collect();
    assert_eq!(replayed.len(), 2);
    assert!(replayed[1] > 20, "{replayed:?}");
    assert_eq!(events(&sink, "promoted").len(), 1, "no failover for a passive's crash");
}

#[test]
fn a_lost_stream_message_is_noticed_as_a_gap_and_filled_from_the_store() {
    // Goal: a short one-way partition drops stream messages to the passive
    // but not long enough for suspicion; the next message shows a gap, and
    // a catch-up from the store fills it.
    let mut setup = Setup::new(4);
    setup.writes_max = 80;
    let mut built = build(&setup);
    let (n0, n1) = (built.nodes[0], built.nodes[1]);
    built.sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(1_000),
        at_ms(1_090),
        Fault::PartitionOneway { from: vec![n0], to: vec![n1] },
    ));
    built.sim.run_until(at_ms(1_500));
    let Built { sim, replicas, sink, .. } = built;
    let catch_ups_after_partition = sink
        .borrow()
        .records
        .iter()
        .filter(|record| record.time > at_ms(1_000))
        .filter(|record| {
            matches!(&record.event, TraceEvent::MessageSent { label: "CatchUp", from, .. }
                if *from == replicas[1])
        })
        .count();
    assert!(catch_ups_after_partition >= 1);
    assert!(sim.fired_faults()[0].touched.messages_dropped >= 4);
    assert_eq!(replica(&sim, replicas[1]).state(), replica(&sim, replicas[0]).state());
    assert_eq!(events(&sink, "promoted").len(), 1);
    assert!(events(&sink, "suspected").iter().all(|event| event.0 < at_ms(1_000)));
}

/// Sends a fixed list of protocol messages to the store at given times and
/// keeps what comes back.
struct Scripted {
    store: ProcessId,
    script: Vec<(u64, Replication<u64>)>,
    replies: Rc<RefCell<Vec<Replication<u64>>>>,
}

impl Process<World> for Scripted {
    fn on_start(&mut self, ctx: &mut Ctx<'_, World>) {
        for (index, (after_ms, _)) in self.script.iter().enumerate() {
            ctx.set_timer(ms(*after_ms), index as u64);
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, World>, _timer: TimerId, tag: u64) {
        let message = self.script[tag as usize].1.clone();
        ctx.send(self.store, World(message));
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, World>, _from: ProcessId, message: World) {
        self.replies.borrow_mut().push(message.0);
    }
}

#[test]
fn the_store_grants_each_epoch_once_and_takes_appends_only_from_its_owner() {
    // Goal: the fencing rules at the store, message by message. Claimant
    // `a` gets epoch 1; `b`'s claim of the same epoch is refused, and so is
    // its claim of epoch 2 while `a` keeps appending (the store still hears
    // it); once `a` has been silent for the detection timeout, `b` gets
    // epoch 2, and `a`'s next append, in epoch 1, is refused.
    let config = ReplicationConfig::new();
    let mut sim: Sim<World> = Sim::new(SimConfig::new(Seed(11)));
    let nodes: Vec<NodeId> =
        (0..3).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
    let store_value = LogStore::<u64>::new(&config).unwrap();
    let store = sim.spawn(nodes[0], "store", move || store_value.clone());
    let claim = |epoch| Replication::Claim { aggregate: AGGREGATE, epoch, from_sequence: 1 };
    let append = |epoch, write| Replication::Append {
        aggregate: AGGREGATE,
        epoch,
        write,
        events: vec![write],
    };
    let spawn = |sim: &mut Sim<World>, node, name: &str, script: Vec<(u64, Replication<u64>)>| {
        let replies = Rc::new(RefCell::new(Vec::new()));
        let kept = replies.clone();
        let id = sim.spawn(node, name.to_string(), move || Scripted {
            store,
            script: script.clone(),
            replies: kept.clone(),
        });
        (id, replies)
    };
    let (a, to_a) = spawn(
        &mut sim,
        nodes[1],
        "a",
        vec![(1, claim(1)), (10, append(1, 1)), (100, append(1, 2)), (600, append(1, 3))],
    );
    let (b, to_b) =
        spawn(&mut sim, nodes[2], "b", vec![(5, claim(1)), (150, claim(2)), (400, claim(2))]);
    sim.run();
    let fenced = |epoch, current_epoch, active, write| Replication::Fenced {
        aggregate: AGGREGATE,
        epoch,
        current_epoch,
        active: Some(active),
        write,
    };
    let to_b = to_b.borrow();
    assert_eq!(to_b[0], fenced(1, 1, a, None), "epoch 1 is taken");
    assert_eq!(to_b[1], fenced(2, 1, a, None), "the store still hears a");
    assert!(matches!(to_b[2], Replication::Claimed { epoch: 2, ref entries, last_sequence: 2, .. }
        if entries.len() == 2));
    let to_a = to_a.borrow();
    assert!(matches!(to_a[0], Replication::Claimed { epoch: 1, .. }));
    assert!(matches!(to_a[1], Replication::Appended { first_sequence: 1, .. }));
    assert!(matches!(to_a[2], Replication::Appended { first_sequence: 2, .. }));
    assert_eq!(to_a[3], fenced(1, 2, b, Some(3)), "a was deposed while silent");
    let stored = sim.process_state::<LogStore<u64>>(store).unwrap();
    assert_eq!(stored.epoch(AGGREGATE), Some((2, Some(b))));
    assert_eq!(stored.last_sequence(AGGREGATE), Some(2));
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    // Goal: replication is deterministic: two runs of one jittery, lossy
    // world with a partition hash the same, and another seed differs.
    let run = |seed| {
        let mut setup = Setup::new(seed);
        setup.replica_count = 3;
        setup.link = LinkConfig::with_latency(Dist::uniform(ms(1), ms(4)));
        setup.link.loss = 0.05;
        let mut built = build(&setup);
        built.sim.schedule_faults(&FaultSchedule::new().window(
            at_ms(800),
            at_ms(1_600),
            Fault::Partition { side_a: vec![NodeId(0)], side_b: vec![NodeId(1), NodeId(2)] },
        ));
        built.sim.run_until(at_ms(2_500));
        built.sim.trace_hash()
    };
    assert_eq!(run(21), run(21));
    assert_ne!(run(21), run(22));
}

#[test]
fn a_store_crash_loses_no_durable_entry_and_keeps_the_epoch() {
    // Goal: the store's node (with the client) crashes and restarts. The
    // store rebuilds the epoch and its owner from its claims log, serves
    // the same durable history, and the active goes on in its epoch.
    let mut setup = Setup::new(5);
    setup.writes_max = 200;
    let mut built = build(&setup);
    let n2 = built.nodes[2];
    built.sim.schedule_faults(&FaultSchedule::new().window(
        at_ms(1_000),
        at_ms(1_100),
        Fault::CrashNode { node: n2 },
    ));
    built.sim.run_until(at_ms(4_000));
    let Built { sim, nodes, store, replicas, sink, client } = built;
    let log = store_log(&sim, nodes[2]);
    let stored = sim.process_state::<LogStore<u64>>(store).unwrap();
    assert_eq!(stored.epoch(AGGREGATE), Some((1, Some(replicas[0]))));
    assert_eq!(events(&sink, "promoted").len(), 1);
    let history: Vec<u64> = log.iter().map(|entry| entry.3).collect();
    for id in &replicas {
        assert_eq!(replica(&sim, *id).state().0, history);
    }
    // The client restarted too and reused request numbers: match each
    // acknowledgement by position and value.
    for acknowledged in &client.borrow().acknowledged {
        assert_eq!(log[acknowledged.sequence as usize - 1].3, acknowledged.request);
    }
    let sequences: Vec<u64> = log.iter().map(|entry| entry.0).collect();
    assert_eq!(sequences, (1..=log.len() as u64).collect::<Vec<_>>());
}

// ----- laws -----

/// A fault for the swarm: partitions of any shape, crashes with restarts.
fn fault(nodes: u32) -> impl Strategy<Value = (u64, Fault, u64)> {
    let node = (0..nodes).prop_map(NodeId);
    let split = (0..nodes).prop_map(move |alone| {
        let others = (0..nodes).filter(|n| *n != alone).map(NodeId).collect::<Vec<_>>();
        (vec![NodeId(alone)], others)
    });
    // Partitions that isolate one node are the shape that deposes an
    // active; one-way ones make the most confusing suspicions.
    let shape = prop_oneof![
        3 => split.clone().prop_map(|(side_a, side_b)| Fault::Partition { side_a, side_b }),
        2 => split.prop_map(|(from, to)| Fault::PartitionOneway { from, to }),
        2 => node.prop_map(|node| Fault::CrashNode { node }),
    ];
    (500..3_000_u64, shape, 50..1_200_u64)
}

fn swarm_schedule(faults: &[(u64, Fault, u64)]) -> FaultSchedule {
    let mut schedule = FaultSchedule::new();
    for (start, fault, length) in faults {
        schedule = schedule.window(at_ms(*start), at_ms(start + length), fault.clone());
    }
    schedule
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Law: with fencing on, under any schedule of partitions and crashes,
    /// no two writers append in the same epoch and no append from an older
    /// epoch is accepted after one from a newer epoch.
    #[test]
    fn law_with_fencing_no_two_writers_share_an_epoch_and_no_stale_epoch_follows_a_newer_one(
        seed in any::<u64>(),
        replica_count in 2..=3_usize,
        jitter_ms in 0..4_u64,
        // Lossy links and short detection timeouts make false suspicions,
        // and so racing claims, common: the cases fencing exists for.
        loss in prop_oneof![Just(0.0), Just(0.05), Just(0.2)],
        detection_heartbeats in 2..5_u64,
        faults in prop::collection::vec(fault(3), 1..6),
    ) {
        let mut setup = Setup::new(seed);
        setup.replica_count = replica_count;
        setup.config.detection_timeout = ms(50 * detection_heartbeats);
        setup.link = LinkConfig::with_latency(Dist::uniform(ms(1), ms(1 + jitter_ms)));
        setup.link.loss = loss;
        setup.fsync = Dist::uniform(ms(0), ms(3));
        let mut built = build(&setup);
        built.sim.schedule_faults(&swarm_schedule(&faults));
        built.sim.run_until(at_ms(4_500));
        let appends = accepted_appends(&built.sink.borrow().records);
        prop_assert!(!appends.is_empty(), "the audit must have something to check");
        let violations = check_fencing(&appends);
        prop_assert!(violations.is_empty(), "{:?}", violations);
    }

    /// Law: after the active's node crashes, the passive is promoted within
    /// the detection timeout plus a bound (its rank's stagger, one tick, a
    /// claim round trip and fsync), and no write the client saw
    /// acknowledged is missing from the store's durable log or from the new
    /// active's state.
    #[test]
    fn law_after_the_active_crashes_the_passive_takes_over_in_time_and_loses_no_acknowledged_write(
        seed in any::<u64>(),
        crash_ms in 600..2_000_u64,
        fsync_ms in 0..5_u64,
    ) {
        let mut setup = Setup::new(seed);
        setup.link = LinkConfig::with_latency(Dist::uniform(ms(1), ms(3)));
        setup.fsync = Dist::uniform(ms(0), ms(fsync_ms));
        let mut built = build(&setup);
        let n0 = built.nodes[0];
        built.sim.schedule_faults(
            &FaultSchedule::new().at(at_ms(crash_ms), Fault::CrashNode { node: n0 }),
        );
        built.sim.run_until(at_ms(crash_ms + 1_500));
        let Built { sim, nodes, replicas, sink, client, .. } = built;
        let promotions = events(&sink, "promoted");
        prop_assert_eq!(promotions.len(), 2);
        let (promoted_at, promoted, _, epoch) = promotions[1];
        prop_assert_eq!((promoted, epoch), (replicas[1], 2));
        let config = &setup.config;
        let bound = config.detection_timeout.as_nanos()
            + config.heartbeat_interval.as_nanos() * 2
            + ms(20).as_nanos();
        let takeover = promoted_at.since(at_ms(crash_ms));
        prop_assert!(takeover.as_nanos() <= bound, "took over after {}", takeover);
        let survivor = replica(&sim, replicas[1]);
        prop_assert_eq!(survivor.role(), ReplicaRole::Active);
        let client = client.borrow();
        prop_assert!(client.acknowledged.iter().any(|a| a.replica == replicas[0]));
        // In the system of record (durable in the store) and in the new
        // active's memory, at the position the client was told.
        let log = store_log(&sim, nodes[2]);
        for acknowledged in &client.acknowledged {
            let position = acknowledged.sequence as usize - 1;
            prop_assert_eq!(log.get(position).map(|entry| entry.3), Some(acknowledged.request));
            prop_assert_eq!(survivor.state().0.get(position), Some(&acknowledged.request));
        }
    }
}
