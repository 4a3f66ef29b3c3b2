//! The saga coordinator in running worlds: stories of failures,
//! timeouts, the pivot and coordinator crashes, and the saga laws checked
//! over seeds, injected step failures and crash times.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sim::kit::saga::{
    ParticipantScript, Saga, SagaCoordinator, SagaDefinition, SagaId, SagaParticipant, SagaPhase,
    SagaProtocol, StepOutcome,
};
use sim::trace::{MemorySink, TraceEvent};
use sim::{
    Component, Ctx, Dist, Fault, FaultSchedule, LinkConfig, NodeConfig, NodeId, Process, ProcessId,
    Seed, Sim, SimConfig, SimDuration, SimTime, TimerId,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

type Coordinator = SagaCoordinator<SagaProtocol>;
type Participant = SagaParticipant<SagaProtocol>;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

/// Asks the coordinator to run its sagas, and asks again every 200 ms
/// until it has heard each outcome (a start is idempotent).
struct Client {
    coordinator: ProcessId,
    sagas: Vec<SagaId>,
    outcomes: BTreeMap<SagaId, SagaPhase>,
}

impl Client {
    fn ask(&mut self, ctx: &mut Ctx<'_, SagaProtocol>) {
        let waiting: Vec<SagaId> =
            self.sagas.iter().copied().filter(|saga| !self.outcomes.contains_key(saga)).collect();
        for saga in &waiting {
            ctx.send(self.coordinator, SagaProtocol::StartSaga { saga: *saga });
        }
        if !waiting.is_empty() {
            ctx.set_timer(ms(200), 0);
        }
    }
}

impl Process<SagaProtocol> for Client {
    fn on_start(&mut self, ctx: &mut Ctx<'_, SagaProtocol>) {
        self.ask(ctx);
    }
    fn on_message(&mut self, _: &mut Ctx<'_, SagaProtocol>, _: ProcessId, message: SagaProtocol) {
        match message {
            SagaProtocol::SagaCompleted { saga } => {
                self.outcomes.insert(saga, SagaPhase::Completed);
            }
            SagaProtocol::SagaAborted { saga } => {
                self.outcomes.insert(saga, SagaPhase::Aborted);
            }
            _ => {}
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, SagaProtocol>, _: TimerId, _: u64) {
        self.ask(ctx);
    }
}

/// How a test world is set up.
#[derive(Clone, Debug)]
struct Setup {
    seed: u64,
    pivot: Option<u32>,
    sagas: u64,
    script: ParticipantScript,
    faults: FaultSchedule,
    link: LinkConfig,
    coordinator_fsync: Dist,
}

impl Setup {
    fn new(sagas: u64) -> Setup {
        Setup {
            seed: 1,
            pivot: None,
            sagas,
            script: ParticipantScript::default(),
            faults: FaultSchedule::new(),
            link: LinkConfig::constant(ms(1)),
            coordinator_fsync: Dist::constant(SimDuration::ZERO),
        }
    }
}

/// Coordinator on n0, participants on n1..n3, the client on n4. The order
/// saga has four steps on participants 0, 1, 2, 0.
struct World {
    sim: Sim<SagaProtocol>,
    coordinator: ProcessId,
    participants: Vec<ProcessId>,
    client: ProcessId,
    saga: Saga,
    sink: Rc<RefCell<MemorySink>>,
}

const COORDINATOR_NODE: NodeId = NodeId(0);
const STEPS: [(&str, usize); 4] =
    [("reserve_products", 0), ("submit_payment", 1), ("ship_products", 2), ("notify_customer", 0)];

fn world(setup: &Setup) -> World {
    let mut sim = Sim::new(SimConfig::new(Seed(setup.seed)));
    let sink = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(sink.clone()));
    sim.set_default_link(setup.link.clone());
    let mut coordinator_node = NodeConfig::new("orders");
    coordinator_node.fsync = setup.coordinator_fsync.clone();
    let n0 = sim.add_node(coordinator_node);
    assert_eq!(n0, COORDINATOR_NODE);
    let participants: Vec<ProcessId> = ["inventory", "payments", "shipping"]
        .iter()
        .map(|name| {
            let node = sim.add_node(NodeConfig::new(*name));
            let script = setup.script.clone();
            sim.spawn(node, *name, move || Participant::with_script(name, script.clone()))
        })
        .collect();
    let mut definition = SagaDefinition::new("order");
    for (index, &(name, participant)) in STEPS.iter().enumerate() {
        let step = if setup.pivot == Some(index as u32) {
            SagaDefinition::pivot_step
        } else {
            SagaDefinition::step
        };
        definition = step(definition, name, participants[participant], ms(50));
    }
    definition.retry_interval = ms(30);
    let saga = Saga::new(definition).unwrap();
    let for_coordinator = saga.clone();
    let coordinator =
        sim.spawn(n0, "order_saga", move || Coordinator::new(for_coordinator.clone()));
    let client_node = sim.add_node(NodeConfig::new("client"));
    let sagas: Vec<SagaId> = (1..=setup.sagas).map(SagaId).collect();
    let client = sim.spawn(client_node, "client", move || Client {
        coordinator,
        sagas: sagas.clone(),
        outcomes: BTreeMap::new(),
    });
    sim.schedule_faults(&setup.faults);
    World { sim, coordinator, participants, client, saga, sink }
}

/// The saga trace events: (time, process, kind, saga, value).
fn saga_events(world: &World) -> Vec<(SimTime, ProcessId, &'static str, u64, i64)> {
    world
        .sink
        .borrow()
        .records
        .iter()
        .filter_map(|record| match record.event {
            TraceEvent::Component { process, component: Component::Saga, kind, key, value } => {
                Some((record.time, process, kind, key, value))
            }
            _ => None,
        })
        .collect()
}

fn kinds_for(world: &World, saga: u64, process: ProcessId) -> Vec<(&'static str, i64)> {
    saga_events(world)
        .into_iter()
        .filter(|(_, by, _, key, _)| *key == saga && *by == process)
        .map(|(_, _, kind, _, value)| (kind, value))
        .collect()
}

fn participant_of(world: &World, step: u32) -> ProcessId {
    world.saga.step(step).participant
}

/// The saga laws, checked on a finished world:
/// 1. every saga the coordinator knows ends Completed or Aborted, and the
///    client heard the same outcome;
/// 2. Completed: every step executed at its participant and none undone;
///    Aborted: no step left executed (each never ran, was refused, undone
///    or voided): never a mix;
/// 3. undos and voids of a saga happen in strictly decreasing step order,
///    each undo after its step's effect;
/// 4. no step takes effect twice, and none is undone twice;
/// 5. a saga whose pivot took effect completes.
fn check_laws(world: &World) -> Result<(), TestCaseError> {
    let coordinator = world
        .sim
        .process_state::<Coordinator>(world.coordinator)
        .ok_or_else(|| TestCaseError::fail("the coordinator is not running at the end"))?;
    let client = world.sim.process_state::<Client>(world.client).unwrap();
    let events = saga_events(world);
    let step_count = world.saga.step_count();
    for state in coordinator.sagas() {
        let saga = state.saga();
        let phase = state.phase();
        prop_assert!(state.is_finished(), "{saga} unfinished: {phase:?}");
        prop_assert_eq!(client.outcomes.get(&saga), Some(&phase), "{} outcome", saga);
        for step in 0..step_count {
            let ledger = world
                .sim
                .process_state::<Participant>(participant_of(world, step))
                .unwrap()
                .ledger();
            let outcome = ledger.outcome(saga, step);
            match phase {
                SagaPhase::Completed => {
                    prop_assert_eq!(outcome, Some(StepOutcome::Executed), "{} step {}", saga, step)
                }
                _ => prop_assert!(
                    outcome != Some(StepOutcome::Executed),
                    "{saga} aborted but step {step} stays executed"
                ),
            }
        }
        let mut applied_at: BTreeMap<i64, SimTime> = BTreeMap::new();
        let mut undone: Vec<i64> = Vec::new();
        for (time, _, kind, key, step) in &events {
            if *key != saga.0 {
                continue;
            }
            match *kind {
                "step_applied" => {
                    prop_assert!(
                        applied_at.insert(*step, *time).is_none(),
                        "{saga} step {step} took effect twice"
                    );
                    if world.saga.pivot() == Some(*step as u32) {
                        prop_assert_eq!(phase, SagaPhase::Completed, "{} passed its pivot", saga);
                    }
                }
                "step_undone" | "step_voided" => {
                    prop_assert!(
                        undone.last().is_none_or(|last| last > step),
                        "{saga}: undo of step {step} after {undone:?}"
                    );
                    if *kind == "step_undone" {
                        prop_assert!(applied_at.contains_key(step), "{saga} undid {step} unrun");
                    }
                    undone.push(*step);
                }
                _ => {}
            }
        }
    }
    // Sagas the coordinator never durably started left no trace anywhere.
    for saga in 1..=client.sagas.len() as u64 {
        if coordinator.phase(SagaId(saga)).is_none() {
            for participant in &world.participants {
                prop_assert!(kinds_for(world, saga, *participant).is_empty());
            }
        }
    }
    Ok(())
}

fn run(setup: &Setup) -> World {
    let mut world = world(setup);
    world.sim.run_until(at_ms(60_000));
    world
}

#[test]
fn an_order_without_trouble_completes_step_by_step() {
    // Goal: the happy path in a world: each step traced, then completed.
    let world = run(&Setup::new(1));
    check_laws(&world).unwrap();
    let kinds: Vec<&str> =
        kinds_for(&world, 1, world.coordinator).into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        kinds,
        [
            "started",
            "step_executed",
            "step_executed",
            "step_executed",
            "step_executed",
            "completed"
        ]
    );
    assert_eq!(world.sim.metrics().counter("saga.completed"), 1);
}

#[test]
fn a_declined_payment_releases_the_reservation() {
    // Goal: a refusal at step 1 compensates step 0 only, and the saga aborts.
    let mut setup = Setup::new(1);
    setup.script.refusals.insert((SagaId(1), 1), 1);
    let world = run(&setup);
    check_laws(&world).unwrap();
    assert_eq!(
        kinds_for(&world, 1, world.coordinator),
        [
            ("started", 0),
            ("step_executed", 0),
            ("step_failed", 1),
            ("compensating", 0),
            ("compensated", 0),
            ("aborted", 6_000_000),
        ]
    );
    let inventory = world.participants[0];
    assert_eq!(kinds_for(&world, 1, inventory), [("step_applied", 0), ("step_undone", 0)]);
}

#[test]
fn a_payment_that_never_answers_is_refunded_before_the_reservation_is_released() {
    // Goal: a timed-out step is compensated too, first; its participant
    // voids it, so the late command is refused (no refund of a charge that
    // never happened, and no charge after the refund).
    let mut setup = Setup::new(1);
    setup.script.silences.insert((SagaId(1), 1), 1);
    let world = run(&setup);
    check_laws(&world).unwrap();
    let coordinator: Vec<&str> =
        kinds_for(&world, 1, world.coordinator).into_iter().map(|(kind, _)| kind).collect();
    assert_eq!(
        coordinator,
        [
            "started",
            "step_executed",
            "step_timed_out",
            "compensating",
            "compensated",
            "compensating",
            "compensated",
            "aborted"
        ]
    );
    assert_eq!(kinds_for(&world, 1, world.participants[1]), [("step_voided", 1)]);
}

#[test]
fn past_the_pivot_a_refused_step_is_retried_until_it_succeeds() {
    // Goal: after shipping (the pivot) nothing is compensated; the
    // notification is retried after each refusal until it goes through.
    let mut setup = Setup::new(1);
    setup.pivot = Some(2);
    setup.script.refusals.insert((SagaId(1), 3), 3);
    let world = run(&setup);
    check_laws(&world).unwrap();
    let events = kinds_for(&world, 1, world.coordinator);
    assert_eq!(events.iter().filter(|(kind, _)| *kind == "step_failed").count(), 3);
    assert_eq!(events.last().unwrap().0, "completed");
    assert!(events.iter().all(|(kind, _)| *kind != "compensating"));
}

#[test]
fn a_coordinator_crash_mid_saga_resumes_from_its_log() {
    // Goal: the coordinator crashes after payment, comes back 500 ms later,
    // replays its log, re-sends the command in flight and completes.
    let mut setup = Setup::new(1);
    // The start arrives at 1 ms and steps take 2 ms each (1 ms each way):
    // crash while the third step is in flight.
    setup.faults = FaultSchedule::new()
        .at(SimTime::from_nanos(6_500_000), Fault::CrashNode { node: COORDINATOR_NODE })
        .at(at_ms(500), Fault::RestartNode { node: COORDINATOR_NODE });
    let world = run(&setup);
    check_laws(&world).unwrap();
    let events = kinds_for(&world, 1, world.coordinator);
    assert!(events.contains(&("resumed", 2)), "{events:?}");
    assert_eq!(events.last().unwrap().0, "completed");
    let shipping = world.participants[2];
    // The step answered while the coordinator was down, and was asked
    // again after the restart: one effect all the same.
    assert_eq!(kinds_for(&world, 1, shipping), [("step_applied", 2)]);
}

#[test]
fn the_coordinator_rejects_sagas_beyond_its_bound() {
    // Goal: with room for one running saga, a second concurrent one is
    // rejected (traced and counted) and gets in once the first is done.
    let mut world = world(&Setup::new(0));
    let coordinator = world.coordinator;
    let mut definition = world.saga.definition().clone();
    definition.active_max = 1;
    let bounded = Saga::new(definition).unwrap();
    let node = world.sim.add_node(NodeConfig::new("bounded"));
    let bounded_coordinator =
        world.sim.spawn(node, "bounded", move || Coordinator::new(bounded.clone()));
    let client_node = world.sim.add_node(NodeConfig::new("bounded_client"));
    let client = world.sim.spawn(client_node, "bounded_client", move || Client {
        coordinator: bounded_coordinator,
        sagas: vec![SagaId(1), SagaId(2)],
        outcomes: BTreeMap::new(),
    });
    world.sim.run_until(at_ms(5_000));
    let events = saga_events(&world);
    assert!(events.iter().any(|(_, by, kind, key, _)| *by == bounded_coordinator
        && *kind == "rejected"
        && *key == 2));
    assert_eq!(world.sim.process_state::<Client>(client).unwrap().outcomes.len(), 2);
    assert!(world.sim.process_state::<Coordinator>(coordinator).unwrap().sagas().next().is_none());
}

#[test]
fn the_same_setup_gives_the_same_trace() {
    // Goal: a saga world is deterministic (same seed, same hash).
    let mut setup = Setup::new(3);
    setup.link = LinkConfig { duplicate: 0.2, reorder: 0.2, reorder_window: ms(5), ..setup.link };
    setup.faults = FaultSchedule::new()
        .at(at_ms(3), Fault::CrashNode { node: COORDINATOR_NODE })
        .at(at_ms(90), Fault::RestartNode { node: COORDINATOR_NODE });
    assert_eq!(run(&setup).sim.trace_hash(), run(&setup).sim.trace_hash());
}

/// Step faults for three sagas of four steps: mostly none, so that many
/// sagas get past the pivot, sometimes one or two refusals or silences.
fn script_strategy() -> impl Strategy<Value = ParticipantScript> {
    let count = prop_oneof![6 => Just(0u32), 2 => Just(1u32), 1 => Just(2u32)];
    let key = (1u64..=3, 0u32..4).prop_map(|(saga, step)| (SagaId(saga), step));
    (
        prop::collection::btree_map(key.clone(), count.clone(), 0..4),
        prop::collection::btree_map(key, count, 0..3),
    )
        .prop_map(|(refusals, silences)| ParticipantScript { refusals, silences })
}

/// Up to two crash-and-restart windows of the coordinator, starting in
/// the first 60 ms after the previous one (the sagas' busiest time: they
/// start at 1 ms and take 10 to 100 ms), down for up to 150 ms.
fn crashes_strategy() -> impl Strategy<Value = FaultSchedule> {
    prop::collection::vec((0u64..60_000, 1u64..150_000), 0..=2).prop_map(|windows| {
        let mut schedule = FaultSchedule::new();
        let mut earliest = 0;
        for (start_us, down_us) in windows {
            let start = earliest + start_us;
            let end = start + down_us;
            schedule = schedule
                .at(SimTime::from_nanos(start * 1_000), Fault::CrashNode { node: COORDINATOR_NODE })
                .at(
                    SimTime::from_nanos(end * 1_000),
                    Fault::RestartNode { node: COORDINATOR_NODE },
                );
            earliest = end + 1;
        }
        schedule
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Law: whatever the seed, step refusals and silences, lossy,
    /// duplicating and reordering links (commands overtaken by their own
    /// compensation included) and coordinator crash/restart
    /// times, every saga ends all done or with every step that took
    /// effect undone in reverse order (never a mix); a saga past its pivot
    /// completes; no step takes effect twice.
    #[test]
    fn sagas_end_all_done_or_all_compensated_whatever_crashes_happen(
        seed in any::<u64>(),
        pivot in prop::option::of(0u32..4),
        script in script_strategy(),
        faults in crashes_strategy(),
        fsync_us in 0u64..3_000,
        lossy in any::<bool>(),
        reorder_window_ms in 1u64..120,
    ) {
        let link = LinkConfig {
            latency: Dist::uniform(ms(1), ms(4)),
            loss: if lossy { 0.05 } else { 0.0 },
            duplicate: 0.1,
            reorder: 0.1,
            // Beyond the 50 ms step timeout, a held-back command can arrive
            // after its own compensation.
            reorder_window: ms(reorder_window_ms),
        };
        let setup = Setup {
            seed,
            pivot,
            sagas: 3,
            script,
            faults,
            link,
            coordinator_fsync: Dist::uniform(SimDuration::ZERO, SimDuration::from_micros(fsync_us)),
        };
        let world = run(&setup);
        check_laws(&world)?;
    }
}
