//! Two-phase commit in running worlds: the protocol's outcomes, the
//! blocking it is known for (a participant down aborts everything; a
//! coordinator down locks every prepared participant for as long as it is
//! down), cooperative termination, atomicity over crashes and partitions,
//! and a comparison with a saga over the same participants.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sim::kit::saga::{
    Saga, SagaCoordinator, SagaDefinition, SagaId, SagaParticipant, SagaPhase, SagaProtocol,
};
use sim::kit::two_phase_commit::{
    ParticipantConfig, RoundPhase, TransactionId, TransactionPhase, TwoPhaseCommitConfig,
    TwoPhaseCoordinator, TwoPhaseParticipant, TwoPhaseProtocol,
};
use sim::trace::{MemorySink, TraceEvent};
use sim::{
    Component, Ctx, Dist, Fault, FaultSchedule, LinkConfig, NodeConfig, NodeId, Process, ProcessId,
    Seed, Sim, SimConfig, SimDuration, SimTime, TimerId,
};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

type Coordinator = TwoPhaseCoordinator<TwoPhaseProtocol>;
type Participant = TwoPhaseParticipant<TwoPhaseProtocol>;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// Begins each of its transactions at its time, and asks again every
/// 300 ms until it hears the outcome.
struct Client {
    coordinator: ProcessId,
    /// (transaction, when to begin it, in ms of the client's clock).
    transactions: Vec<(TransactionId, u64)>,
    outcomes: BTreeMap<TransactionId, bool>,
}

impl Process<TwoPhaseProtocol> for Client {
    fn on_start(&mut self, ctx: &mut Ctx<'_, TwoPhaseProtocol>) {
        for (index, (_, begin_ms)) in self.transactions.iter().enumerate() {
            ctx.set_timer(ms(*begin_ms), index as u64);
        }
    }
    fn on_message(
        &mut self,
        _: &mut Ctx<'_, TwoPhaseProtocol>,
        _: ProcessId,
        message: TwoPhaseProtocol,
    ) {
        match message {
            TwoPhaseProtocol::TransactionCommitted { transaction } => {
                self.outcomes.insert(transaction, true);
            }
            TwoPhaseProtocol::TransactionAborted { transaction } => {
                self.outcomes.insert(transaction, false);
            }
            _ => {}
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, TwoPhaseProtocol>, _: TimerId, tag: u64) {
        let (transaction, _) = self.transactions[tag as usize];
        if !self.outcomes.contains_key(&transaction) {
            ctx.send(self.coordinator, TwoPhaseProtocol::BeginTransaction { transaction });
            ctx.set_timer(ms(300), tag);
        }
    }
}

/// How a test world is set up.
#[derive(Clone, Debug)]
struct Setup {
    seed: u64,
    /// (transaction, begin time in ms).
    transactions: Vec<(TransactionId, u64)>,
    /// Per participant, the transactions it votes No on.
    votes_no: [BTreeSet<TransactionId>; 3],
    cooperative: bool,
    faults: FaultSchedule,
    link: LinkConfig,
    coordinator_fsync: Dist,
    prepare_timeout: SimDuration,
    decision_timeout: SimDuration,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            seed: 1,
            transactions: vec![(TransactionId(1), 0)],
            votes_no: Default::default(),
            cooperative: false,
            faults: FaultSchedule::new(),
            link: LinkConfig::constant(ms(1)),
            coordinator_fsync: Dist::constant(SimDuration::ZERO),
            prepare_timeout: SimDuration::from_secs(1),
            decision_timeout: ms(500),
        }
    }
}

/// Coordinator on n0, participants A, B, C on n1..n3, the client on n4.
struct World {
    sim: Sim<TwoPhaseProtocol>,
    coordinator: ProcessId,
    participants: Vec<ProcessId>,
    client: ProcessId,
    sink: Rc<RefCell<MemorySink>>,
}

const COORDINATOR_NODE: NodeId = NodeId(0);

fn participant_node(index: u32) -> NodeId {
    NodeId(1 + index)
}

fn world(setup: &Setup) -> World {
    let mut sim = Sim::new(SimConfig::new(Seed(setup.seed)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    sim.set_default_link(setup.link.clone());
    let mut coordinator_node = NodeConfig::new("coordinator");
    coordinator_node.fsync = setup.coordinator_fsync.clone();
    assert_eq!(sim.add_node(coordinator_node), COORDINATOR_NODE);
    // Processes get ids in spawn order: participants are p0, p1, p2.
    let participants: Vec<ProcessId> = (0..3).map(ProcessId).collect();
    for (index, name) in ["a", "b", "c"].iter().enumerate() {
        let node = sim.add_node(NodeConfig::new(*name));
        let mut config = ParticipantConfig::new(*name);
        config.votes_no = setup.votes_no[index].clone();
        config.decision_timeout = setup.decision_timeout;
        if setup.cooperative {
            config.peers = participants.clone();
        }
        let participant = Participant::new(config).unwrap();
        let id = sim.spawn(node, *name, move || participant.clone());
        assert_eq!(id, participants[index]);
    }
    let mut config = TwoPhaseCommitConfig::new("orders", participants.clone());
    config.prepare_timeout = setup.prepare_timeout;
    let coordinator = Coordinator::new(config).unwrap();
    let coordinator = sim.spawn(COORDINATOR_NODE, "coordinator", move || coordinator.clone());
    let client_node = sim.add_node(NodeConfig::new("client"));
    let transactions = setup.transactions.clone();
    let client = sim.spawn(client_node, "client", move || Client {
        coordinator,
        transactions: transactions.clone(),
        outcomes: BTreeMap::new(),
    });
    sim.schedule_faults(&setup.faults);
    World { sim, coordinator, participants, client, sink }
}

/// The two-phase-commit trace events: (time, process, kind, transaction, value).
fn events(sink: &Rc<RefCell<MemorySink>>) -> Vec<(SimTime, ProcessId, &'static str, u64, i64)> {
    sink.borrow()
        .records
        .iter()
        .filter_map(|record| match record.event {
            TraceEvent::Component {
                process,
                component: Component::TwoPhaseCommit,
                kind,
                key,
                value,
            } => Some((record.time, process, kind, key, value)),
            _ => None,
        })
        .collect()
}

fn kinds_of(world: &World, process: ProcessId) -> Vec<(&'static str, i64)> {
    events(&world.sink)
        .into_iter()
        .filter(|(_, by, ..)| *by == process)
        .map(|(_, _, kind, _, value)| (kind, value))
        .collect()
}

/// When `process` first traced `kind` about transaction 1.
fn first_time(world: &World, process: ProcessId, kind: &str) -> SimTime {
    events(&world.sink)
        .into_iter()
        .find(|(_, by, found, key, _)| *by == process && *found == kind && *key == 1)
        .unwrap_or_else(|| panic!("{process} never traced {kind}"))
        .0
}

fn phase(world: &World, participant: ProcessId, transaction: u64) -> Option<TransactionPhase> {
    world
        .sim
        .process_state::<Participant>(participant)
        .unwrap()
        .ledger()
        .phase(TransactionId(transaction))
}

fn run(setup: &Setup) -> World {
    let mut world = world(setup);
    world.sim.run_until(at_ms(60_000));
    world
}

#[test]
fn every_yes_vote_commits_at_every_participant() {
    // Goal: the happy path: prepared, voted yes, committed everywhere.
    let world = run(&Setup::new());
    assert_eq!(kinds_of(&world, world.coordinator), [("committed", 3)]);
    for participant in &world.participants {
        let kinds: Vec<&str> = kinds_of(&world, *participant).iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["prepared", "voted", "committed"]);
        assert_eq!(phase(&world, *participant, 1), Some(TransactionPhase::Committed));
    }
    let client = world.sim.process_state::<Client>(world.client).unwrap();
    assert_eq!(client.outcomes.get(&TransactionId(1)), Some(&true));
}

#[test]
fn one_no_vote_aborts_at_every_participant() {
    // Goal: a single No aborts the transaction for all.
    let mut setup = Setup::new();
    setup.votes_no[1].insert(TransactionId(1));
    let world = run(&setup);
    assert_eq!(kinds_of(&world, world.coordinator).last().unwrap().0, "aborted");
    assert_eq!(kinds_of(&world, world.participants[1]), [("voted", 0), ("aborted", 0)]);
    for participant in &world.participants {
        assert_eq!(phase(&world, *participant, 1), Some(TransactionPhase::Aborted));
    }
}

#[test]
fn a_participant_down_during_prepare_aborts_the_transaction_and_locks_the_others_meanwhile() {
    // Goal: unavailability: C is down, so nothing commits; A and B stay
    // locked, prepared, until the prepare timeout makes the coordinator abort.
    let mut setup = Setup::new();
    setup.faults = FaultSchedule::new()
        .at(SimTime::ZERO, Fault::CrashNode { node: participant_node(2) })
        .at(at_ms(3_000), Fault::RestartNode { node: participant_node(2) });
    let world = run(&setup);
    let coordinator = kinds_of(&world, world.coordinator);
    assert_eq!(coordinator, [("aborted", 2)]);
    let timeout = setup.prepare_timeout.as_nanos() as i64;
    for participant in &world.participants[..2] {
        let (kind, held) = *kinds_of(&world, *participant).last().unwrap();
        assert_eq!(kind, "aborted");
        assert!(held >= timeout - 3_000_000 && held <= timeout + 10_000_000, "held {held} ns");
    }
    // C learns the outcome when it is back, from the coordinator's re-sends.
    assert_eq!(phase(&world, world.participants[2], 1), Some(TransactionPhase::Aborted));
}

/// Runs one transaction whose coordinator crashes after collecting the
/// Yes votes but before its decision is durable, and stays down for
/// `down`; returns, for each participant, how long it held its lock
/// (from its `prepared` to its `aborted` in the trace), with the world.
fn lock_durations_with_coordinator_down(
    down: SimDuration,
    cooperative: bool,
) -> (Vec<SimDuration>, World) {
    let mut setup = Setup::new();
    setup.cooperative = cooperative;
    // Timeline: the begin arrives at 1 ms, `Begun` is durable at 6 ms,
    // the participants prepare at 7 ms, their votes arrive at 8 ms, and
    // the decision would be durable at 13 ms: crash at 10 ms.
    setup.coordinator_fsync = Dist::constant(ms(5));
    let crash = at_ms(10);
    setup.faults = FaultSchedule::new()
        .at(crash, Fault::CrashNode { node: COORDINATOR_NODE })
        .at(crash + down, Fault::RestartNode { node: COORDINATOR_NODE });
    let world = run(&setup);
    let durations = world
        .participants
        .iter()
        .map(|participant| {
            first_time(&world, *participant, "aborted").since(first_time(
                &world,
                *participant,
                "prepared",
            ))
        })
        .collect();
    (durations, world)
}

#[test]
fn prepared_participants_stay_locked_for_as_long_as_the_coordinator_is_down() {
    // Goal: blocking is real: with the coordinator down for D after the
    // votes, every prepared participant holds its lock for about D (plus
    // a few ms of recovery and messages), reports itself blocked meanwhile,
    // and cooperative termination does not help since all are prepared.
    for cooperative in [false, true] {
        for down_ms in [1_000, 4_000, 12_000] {
            let down = ms(down_ms);
            let (durations, world) = lock_durations_with_coordinator_down(down, cooperative);
            for (participant, held) in world.participants.iter().zip(&durations) {
                assert!(
                    *held >= down && *held <= down + ms(20),
                    "{participant} held its lock {held} for a coordinator down {down}"
                );
                let blocked: Vec<i64> = kinds_of(&world, *participant)
                    .into_iter()
                    .filter(|(kind, _)| *kind == "blocked")
                    .map(|(_, waited)| waited)
                    .collect();
                // One report per 500 ms decision timeout while waiting.
                assert_eq!(blocked.len() as u64, down_ms / 500, "cooperative: {cooperative}");
                assert!(blocked.windows(2).all(|pair| pair[0] < pair[1]));
            }
            assert!(kinds_of(&world, world.coordinator).contains(&("recovered", 0)));
        }
    }
}

#[test]
fn a_cut_off_participant_learns_a_commit_from_its_peers_with_cooperative_termination() {
    // Goal: C voted yes, then a partition cut it off from the coordinator
    // before the Commit arrived. Alone it stays blocked until the partition
    // heals (5 s); asking its peers, it commits after one decision timeout.
    let lock_held = |cooperative: bool| {
        let mut setup = Setup::new();
        setup.cooperative = cooperative;
        // Votes arrive at 3 ms, the Commit would reach C at 4 ms.
        setup.faults = FaultSchedule::new().window(
            SimTime::from_nanos(3_500_000),
            at_ms(5_000),
            Fault::Partition { side_a: vec![COORDINATOR_NODE], side_b: vec![participant_node(2)] },
        );
        let world = run(&setup);
        let c = world.participants[2];
        assert_eq!(phase(&world, c, 1), Some(TransactionPhase::Committed));
        first_time(&world, c, "committed").since(first_time(&world, c, "prepared"))
    };
    let alone = lock_held(false);
    let cooperative = lock_held(true);
    assert!(alone >= ms(4_990), "alone: {alone}");
    assert!(cooperative >= ms(500) && cooperative <= ms(510), "cooperative: {cooperative}");
}

#[test]
fn a_recovered_coordinator_resends_its_decision_to_participants_that_missed_it() {
    // Goal: recovery re-sends a logged decision. C is cut off when the
    // Commit goes out (3 ms); the coordinator crashes at 100 ms, before its
    // first re-send, and comes back at 300 ms, after the partition healed:
    // it replays its log and sends Commit again, and C commits.
    let mut setup = Setup::new();
    setup.faults = FaultSchedule::new()
        .window(
            SimTime::from_nanos(3_500_000),
            at_ms(150),
            Fault::Partition { side_a: vec![COORDINATOR_NODE], side_b: vec![participant_node(2)] },
        )
        .window(at_ms(100), at_ms(300), Fault::CrashNode { node: COORDINATOR_NODE });
    let world = run(&setup);
    assert_eq!(kinds_of(&world, world.coordinator), [("committed", 3), ("recovered", 1)]);
    let c = world.participants[2];
    assert_eq!(first_time(&world, c, "committed"), at_ms(301));
    let coordinator = world.sim.process_state::<Coordinator>(world.coordinator).unwrap();
    let (_, round) = coordinator.rounds().next().unwrap();
    assert_eq!(round.phase(), &RoundPhase::Ended { commit: true });
}

#[test]
fn the_same_setup_gives_the_same_trace() {
    // Goal: a two-phase-commit world is deterministic (same seed, same hash).
    let mut setup = Setup::new();
    setup.transactions = vec![(TransactionId(1), 0), (TransactionId(2), 5)];
    setup.cooperative = true;
    setup.link = LinkConfig { duplicate: 0.2, reorder: 0.2, reorder_window: ms(5), ..setup.link };
    setup.faults = FaultSchedule::new().window(
        at_ms(2),
        at_ms(700),
        Fault::CrashNode { node: COORDINATOR_NODE },
    );
    assert_eq!(run(&setup).sim.trace_hash(), run(&setup).sim.trace_hash());
}

/// Up to `count` crash-and-restart windows of `node`, at microsecond
/// resolution (a crash must be able to fall between a decision and its
/// sync), each starting within 350 ms of the previous one's end and
/// lasting up to 300 ms, so that they hit the transactions (which begin
/// at 0, 150 and 300 ms) and are over by 2 s.
fn crash_windows(node: NodeId, count: usize) -> impl Strategy<Value = Vec<(SimTime, Fault)>> {
    prop::collection::vec((0u64..350_000, 1u64..300_000), 0..=count).prop_map(move |windows| {
        let mut faults = Vec::new();
        let mut earliest = 0;
        for (start_us, down_us) in windows {
            let start = earliest + start_us;
            let end = start + down_us;
            faults.push((SimTime::from_nanos(start * 1_000), Fault::CrashNode { node }));
            faults.push((SimTime::from_nanos(end * 1_000), Fault::RestartNode { node }));
            earliest = end + 1;
        }
        faults
    })
}

/// Crashes of the coordinator, A and C; partitions between any two
/// nodes; and slow links from the coordinator to a participant (50 to
/// 400 ms), so that a `Prepare` can arrive after a blocked peer asked
/// about the transaction. Everything is over by 2.5 s.
fn faults_strategy() -> impl Strategy<Value = FaultSchedule> {
    let partition = (0u32..4, 0u32..4, 0u64..1_500, 1u64..1_000).prop_filter_map(
        "two different nodes",
        |(left, right, start_ms, length_ms)| {
            (left != right).then_some((NodeId(left), NodeId(right), start_ms, length_ms))
        },
    );
    let slow_link = (0u32..3, 50u64..400, 0u64..400, 100u64..800);
    (
        crash_windows(COORDINATOR_NODE, 3),
        crash_windows(participant_node(0), 1),
        crash_windows(participant_node(2), 1),
        prop::collection::vec(partition, 0..=2),
        prop::option::of(slow_link),
    )
        .prop_map(|(coordinator, a, c, partitions, slow_link)| {
            let mut schedule = FaultSchedule::new();
            for (at, fault) in coordinator.into_iter().chain(a).chain(c) {
                schedule = schedule.at(at, fault);
            }
            for (left, right, start_ms, length_ms) in partitions {
                schedule = schedule.window(
                    at_ms(start_ms),
                    at_ms(start_ms + length_ms),
                    Fault::Partition { side_a: vec![left], side_b: vec![right] },
                );
            }
            if let Some((participant, latency_ms, start_ms, length_ms)) = slow_link {
                schedule = schedule.window(
                    at_ms(start_ms),
                    at_ms(start_ms + length_ms),
                    Fault::DegradeLink {
                        from: COORDINATOR_NODE,
                        to: participant_node(participant),
                        link: LinkConfig::constant(ms(latency_ms)),
                    },
                );
            }
            schedule
        })
}

/// Atomicity and, once every fault is over, termination: for each
/// transaction, participants all commit or none does; it commits exactly
/// where the coordinator decided commit; nobody is left prepared; no
/// participant was ever told a decision contradicting what it did; and
/// the client heard what the coordinator decided.
fn check_atomicity(world: &World) -> Result<(), TestCaseError> {
    let coordinator = world
        .sim
        .process_state::<Coordinator>(world.coordinator)
        .ok_or_else(|| TestCaseError::fail("the coordinator is not running at the end"))?;
    let client = world.sim.process_state::<Client>(world.client).unwrap();
    let conflicts = events(&world.sink).iter().filter(|e| e.2 == "conflicting_decision").count();
    prop_assert_eq!(conflicts, 0);
    for (transaction, _) in &client.transactions {
        let decision = coordinator.decision(*transaction);
        prop_assert!(decision.is_some(), "{transaction} undecided");
        prop_assert_eq!(client.outcomes.get(transaction), decision.as_ref());
        for participant in &world.participants {
            let phase = phase(world, *participant, transaction.0);
            match decision {
                Some(true) => prop_assert_eq!(phase, Some(TransactionPhase::Committed)),
                _ => prop_assert!(
                    matches!(phase, None | Some(TransactionPhase::Aborted)),
                    "{transaction} aborted but {participant} is {phase:?}"
                ),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Law: atomicity. Whatever the seed, the No votes, lossy, duplicating
    /// and reordering links, slow links, crashes of the coordinator and
    /// of participants and partitions between any nodes, no participant
    /// commits a transaction another aborts, and once the faults are over
    /// every participant ends with the coordinator's decision.
    #[test]
    fn no_participant_commits_while_another_aborts_whatever_crashes_and_partitions(
        seed in any::<u64>(),
        votes_no in prop::collection::vec(prop::collection::btree_set((1u64..=3).prop_map(TransactionId), 0..=1), 3),
        cooperative in any::<bool>(),
        faults in faults_strategy(),
        fsync_us in 0u64..20_000,
        lossy in any::<bool>(),
    ) {
        let mut setup = Setup::new();
        setup.seed = seed;
        setup.transactions = vec![(TransactionId(1), 0), (TransactionId(2), 150), (TransactionId(3), 300)];
        setup.votes_no = [votes_no[0].clone(), votes_no[1].clone(), votes_no[2].clone()];
        setup.cooperative = cooperative;
        setup.faults = faults;
        setup.link = LinkConfig {
            latency: Dist::uniform(ms(1), ms(10)),
            loss: if lossy { 0.05 } else { 0.0 },
            duplicate: 0.1,
            reorder: 0.1,
            reorder_window: ms(20),
        };
        setup.coordinator_fsync = Dist::uniform(SimDuration::ZERO, SimDuration::from_micros(fsync_us));
        setup.prepare_timeout = ms(300);
        // Short, so that blocked participants ask (and cooperate) often.
        setup.decision_timeout = ms(100);
        let world = run(&setup);
        check_atomicity(&world)?;
    }
}

// ----- the same situation as a saga -----

/// Starts one saga at a given time (a saga start is idempotent, so one
/// message over a perfect link is enough here).
struct SagaClient {
    coordinator: ProcessId,
    saga: SagaId,
    begin: SimDuration,
    outcome: Option<SagaPhase>,
}

impl Process<SagaProtocol> for SagaClient {
    fn on_start(&mut self, ctx: &mut Ctx<'_, SagaProtocol>) {
        ctx.set_timer(self.begin, 0);
    }
    fn on_message(&mut self, _: &mut Ctx<'_, SagaProtocol>, _: ProcessId, message: SagaProtocol) {
        let phase = match message {
            SagaProtocol::SagaCompleted { .. } => SagaPhase::Completed,
            SagaProtocol::SagaAborted { .. } => SagaPhase::Aborted,
            _ => return,
        };
        self.outcome = Some(phase);
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, SagaProtocol>, _: TimerId, _: u64) {
        ctx.send(self.coordinator, SagaProtocol::StartSaga { saga: self.saga });
    }
}

#[test]
fn with_a_participant_down_two_phase_commit_blocks_the_others_while_sagas_keep_them_available() {
    // Goal: the comparison of ch. 6. C is down for the first 3 s. Under
    // two-phase commit, transaction 1 over A, B, C holds A and B locked
    // until the 1 s prepare timeout, so transaction 2 over A and B alone,
    // begun at 100 ms, is refused (lock conflict) and aborts. Under sagas,
    // A and B commit their steps at once: saga 2 over A and B completes
    // while C is still down; saga 1 times out on C and ends compensated
    // (its last compensation waits for C to acknowledge, but holds nothing).
    let c_down = FaultSchedule::new()
        .at(SimTime::ZERO, Fault::CrashNode { node: participant_node(2) })
        .at(at_ms(3_000), Fault::RestartNode { node: participant_node(2) });

    // Two-phase commit: a second coordinator runs transaction 2 over A, B.
    let mut world = world(&Setup { faults: c_down.clone(), ..Setup::new() });
    let second_node = world.sim.add_node(NodeConfig::new("coordinator2"));
    let second =
        Coordinator::new(TwoPhaseCommitConfig::new("orders2", world.participants[..2].to_vec()))
            .unwrap();
    let second = world.sim.spawn(second_node, "coordinator2", move || second.clone());
    world.sim.post(
        at_ms(100),
        second,
        TwoPhaseProtocol::BeginTransaction { transaction: TransactionId(2) },
    );
    world.sim.run_until(at_ms(10_000));
    let second_state = world.sim.process_state::<Coordinator>(second).unwrap();
    assert_eq!(second_state.decision(TransactionId(2)), Some(false));
    assert_eq!(world.sim.metrics().counter("two_phase_commit.lock_conflicts"), 2);
    let a_locked = first_time(&world, world.participants[0], "aborted").since(first_time(
        &world,
        world.participants[0],
        "prepared",
    ));
    assert!(a_locked >= ms(999), "A locked {a_locked}");

    // The same as sagas: participants A, B, C; saga 1 over A, B, C; saga 2
    // over A, B, from 100 ms.
    let mut sim: Sim<SagaProtocol> = Sim::new(SimConfig::new(Seed(1)));
    sim.set_default_link(LinkConfig::constant(ms(1)));
    let nodes: Vec<NodeId> =
        (0..6).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
    let participants: Vec<ProcessId> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(index, name)| {
            sim.spawn(nodes[1 + index], *name, move || SagaParticipant::<SagaProtocol>::new(name))
        })
        .collect();
    let timeout = ms(50);
    let mut saga_over = |name: &str, over: &[ProcessId], node: NodeId, saga: SagaId, begin_ms| {
        let mut definition = SagaDefinition::new(name);
        for (index, participant) in over.iter().enumerate() {
            definition = definition.step(format!("step{index}"), *participant, timeout);
        }
        let saga_type = Saga::new(definition).unwrap();
        let coordinator =
            sim.spawn(node, name, move || SagaCoordinator::<SagaProtocol>::new(saga_type.clone()));
        sim.spawn(node, format!("{name}_client"), move || SagaClient {
            coordinator,
            saga,
            begin: ms(begin_ms),
            outcome: None,
        })
    };
    let client1 = saga_over("saga1", &participants, nodes[0], SagaId(1), 0);
    let client2 = saga_over("saga2", &participants[..2], nodes[4], SagaId(2), 100);
    sim.schedule_faults(&c_down);
    sim.run_until(at_ms(2_000));
    // C is still down: saga 2 has completed, saga 1 is compensating.
    let outcome =
        |sim: &Sim<SagaProtocol>, client| sim.process_state::<SagaClient>(client).unwrap().outcome;
    assert_eq!(outcome(&sim, client2), Some(SagaPhase::Completed));
    assert_eq!(outcome(&sim, client1), None);
    sim.run_until(at_ms(10_000));
    assert_eq!(outcome(&sim, client1), Some(SagaPhase::Aborted));
}
