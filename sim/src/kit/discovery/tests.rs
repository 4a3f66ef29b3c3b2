//! Tests of discovery: the detectors as pure state machines with their
//! laws, then the registry and virtual addresses inside small worlds.

use super::*;
use crate::clock::LocalTime;
use crate::dist::Dist;
use crate::fault::{Fault, FaultSchedule};
use crate::ids::{NodeId, ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::net::LinkConfig;
use crate::process::{Ctx, Message, Process};
use crate::rng::Seed;
use crate::time::{SimDuration, SimTime};
use crate::trace::{Component, MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: u64) -> SimTime {
    SimTime::from_nanos(millis * 1_000_000)
}

fn local_ms(millis: i64) -> LocalTime {
    LocalTime(millis * 1_000_000)
}

// ---------------------------------------------------------------------
// Timeout detector

#[test]
fn timeout_detector_suspects_only_after_the_timeout() {
    // Goal: silence equal to the timeout is tolerated, one nanosecond more
    // is not, and a heartbeat resets the silence.
    let config = TimeoutDetectorConfig { timeout: ms(100) };
    let mut detector = TimeoutDetector::new(config, local_ms(0)).unwrap();
    assert!(!detector.suspects(local_ms(100)));
    assert!(detector.suspects(LocalTime(100_000_001)));
    assert_eq!(detector.suspicion_deadline(), LocalTime(100_000_001));
    detector.heartbeat(local_ms(90));
    assert!(!detector.suspects(local_ms(150)));
    assert!(detector.suspects(local_ms(191)));
}

proptest! {
    /// Law: the timeout detector suspects iff the silence since the last
    /// heartbeat is longer than the timeout, and its suspicion deadline is
    /// the first instant it suspects.
    #[test]
    fn timeout_detector_suspects_iff_silence_exceeds_timeout(
        timeout in 1u64..1_000_000,
        arrivals in prop::collection::vec(-1_000_000i64..10_000_000, 0..20),
        probe in -1_000_000i64..20_000_000,
    ) {
        let config = TimeoutDetectorConfig { timeout: SimDuration::from_nanos(timeout) };
        let mut detector = TimeoutDetector::new(config, LocalTime(0)).unwrap();
        let mut last = 0;
        // Arrival times come unsorted on purpose: a clock stepped back
        // makes a later heartbeat read earlier.
        for arrival in arrivals {
            detector.heartbeat(LocalTime(arrival));
            last = arrival;
        }
        let silence = (probe - last).max(0) as u64;
        prop_assert_eq!(detector.suspects(LocalTime(probe)), silence > timeout);
        let deadline = detector.suspicion_deadline();
        prop_assert!(detector.suspects(deadline));
        prop_assert!(!detector.suspects(LocalTime(deadline.0 - 1)));
    }
}

// ---------------------------------------------------------------------
// Phi accrual detector

fn phi_config(interval_ms: u64) -> PhiAccrualConfig {
    PhiAccrualConfig::for_interval(ms(interval_ms))
}

/// A detector fed heartbeats at the given intervals (nanoseconds), with
/// the window sized to hold exactly them.
fn detector_after(
    intervals: &[u64],
    model: IntervalModel,
    floor: u64,
) -> (PhiAccrualDetector, LocalTime) {
    let config = PhiAccrualConfig {
        window_size: intervals.len().max(1),
        min_std_deviation: SimDuration::from_nanos(floor),
        model,
        ..phi_config(100)
    };
    let mut now = LocalTime(0);
    let mut detector = PhiAccrualDetector::new(config, now).unwrap();
    for interval in intervals {
        now = now.plus(SimDuration::from_nanos(*interval));
        detector.heartbeat(now);
    }
    (detector, now)
}

#[test]
fn phi_is_zero_after_a_heartbeat_and_crosses_the_threshold_after_missed_beats() {
    // Goal: with regular 100 ms heartbeats (σ floored at 10 ms), φ is
    // negligible at the usual arrival time and well above 8 after two
    // missed beats.
    let (detector, last) = detector_after(&[100_000_000; 20], IntervalModel::Normal, 10_000_000);
    assert!(detector.phi(last) < 1e-6);
    assert!(detector.phi(last.plus(ms(100))) < 0.5);
    assert!(detector.phi(last.plus(ms(130))) > 2.0);
    assert!(detector.suspects(last.plus(ms(200))));
    assert!((detector.mean() - 100e6).abs() < 1e-3);
    assert_eq!(detector.std_deviation(), 0.0);
}

#[test]
fn phi_exponential_model_grows_linearly() {
    // Goal: under the exponential model φ = t / (mean · ln 10).
    let (detector, last) = detector_after(&[100_000_000; 10], IntervalModel::Exponential, 1);
    let phi = detector.phi(last.plus(ms(230)));
    assert!((phi - 2.3 / core::f64::consts::LN_10).abs() < 1e-12);
}

#[test]
fn phi_window_forgets_old_intervals_and_keeps_exact_sums() {
    // Goal: the window holds at most window_size intervals (the bootstrap
    // samples go first) and its statistics come from those only.
    let config = PhiAccrualConfig { window_size: 3, ..phi_config(100) };
    let mut detector = PhiAccrualDetector::new(config, local_ms(0)).unwrap();
    assert_eq!(detector.intervals().collect::<Vec<_>>(), vec![75_000_000, 125_000_000]);
    for beat in 1..=5 {
        detector.heartbeat(local_ms(beat * 10));
    }
    assert_eq!(detector.intervals().collect::<Vec<_>>(), vec![10_000_000; 3]);
    assert_eq!(detector.mean(), 10e6);
    assert_eq!(detector.std_deviation(), 0.0);
}

#[test]
fn phi_stays_finite_and_monotone_far_into_the_tail() {
    // Goal: past the switch to the asymptotic series φ keeps rising and
    // stays finite (libm's erfc underflows there).
    let (detector, last) = detector_after(&[100_000_000; 10], IntervalModel::Normal, 1_000_000);
    let mut previous = 0.0;
    for extra_ms in (0..200).map(|step| step * 2) {
        let phi = detector.phi(last.plus(ms(100 + extra_ms)));
        assert!(phi >= previous, "φ fell at +{extra_ms} ms: {previous} → {phi}");
        assert!(phi.is_finite());
        previous = phi;
    }
    assert!(previous > 1000.0);
}

/// Windows of intervals: mostly around 100 ms, with rare extreme values,
/// since jitter and long pauses are where φ's maths is stressed.
fn intervals_strategy() -> impl Strategy<Value = Vec<u64>> {
    prop::collection::vec(
        prop_oneof![
            8 => 50_000_000u64..150_000_000,
            1 => 0u64..1_000,
            1 => 1_000_000_000u64..10_000_000_000,
        ],
        1..40,
    )
}

proptest! {
    /// Law: φ is non-decreasing in the time elapsed since the last
    /// heartbeat, under both models and any history.
    #[test]
    fn phi_is_non_decreasing_in_elapsed_time(
        intervals in intervals_strategy(),
        exponential in any::<bool>(),
        floor in 1u64..50_000_000,
        first in 0u64..2_000_000_000,
        gap in 0u64..2_000_000_000,
    ) {
        let model = if exponential { IntervalModel::Exponential } else { IntervalModel::Normal };
        let (detector, last) = detector_after(&intervals, model, floor);
        let earlier = detector.phi(last.plus(SimDuration::from_nanos(first)));
        let later = detector.phi(last.plus(SimDuration::from_nanos(first + gap)));
        prop_assert!(earlier >= 0.0);
        prop_assert!(earlier <= later, "φ fell from {} to {}", earlier, later);
    }

    /// Law: for the same mean interval, φ grows faster for more regular
    /// heartbeats: past the mean, the regular history's φ is higher and has
    /// risen more over any stretch of silence.
    #[test]
    fn phi_grows_faster_for_more_regular_heartbeats(
        mean_ms in 20u64..500,
        jitter_percent in 10u64..90,
        tighter_percent in 0u64..90,
        start_ms in 0u64..2_000,
        stretch_ms in 0u64..2_000,
    ) {
        // Alternating mean ± d has mean exactly `mean` and deviation d.
        let mean = mean_ms * 1_000_000;
        let wide = mean * jitter_percent / 100;
        let narrow = wide * tighter_percent / 100;
        let history = |deviation: u64| -> Vec<u64> {
            (0..20).map(|i| if i % 2 == 0 { mean - deviation } else { mean + deviation }).collect()
        };
        // The floor on σ sits below both deviations' range of interest.
        let floor = 1;
        let (irregular, last_irregular) = detector_after(&history(wide), IntervalModel::Normal, floor);
        let (regular, last_regular) = detector_after(&history(narrow), IntervalModel::Normal, floor);
        prop_assert!(regular.std_deviation() < irregular.std_deviation());
        let t1 = SimDuration::from_nanos(mean + start_ms * 1_000_000);
        let t2 = SimDuration::from_nanos(mean + (start_ms + stretch_ms) * 1_000_000);
        let phi = |detector: &PhiAccrualDetector, last: LocalTime, t: SimDuration| detector.phi(last.plus(t));
        let regular_rise = phi(&regular, last_regular, t2) - phi(&regular, last_regular, t1);
        let irregular_rise = phi(&irregular, last_irregular, t2) - phi(&irregular, last_irregular, t1);
        prop_assert!(phi(&regular, last_regular, t1) >= phi(&irregular, last_irregular, t1));
        prop_assert!(regular_rise >= irregular_rise, "{} < {}", regular_rise, irregular_rise);
    }

    /// The phi detector's suspicion deadline is the first instant it
    /// suspects (what a process sets its timer for).
    #[test]
    fn phi_suspicion_deadline_is_the_first_suspected_instant(
        intervals in intervals_strategy(),
        threshold in 0.1f64..30.0,
    ) {
        let config = PhiAccrualConfig { threshold, window_size: intervals.len(), ..phi_config(100) };
        let mut detector = PhiAccrualDetector::new(config, LocalTime(0)).unwrap();
        let mut now = LocalTime(0);
        for interval in &intervals {
            now = now.plus(SimDuration::from_nanos(*interval));
            detector.heartbeat(now);
        }
        let deadline = detector.suspicion_deadline();
        prop_assert!(detector.suspects(deadline));
        prop_assert!(deadline == now || !detector.suspects(LocalTime(deadline.0 - 1)));
    }
}

#[test]
fn monitor_reports_each_change_of_mind_once() {
    // Goal: a monitor turns the detector's answers into one `Suspected`
    // and one `Recovered`, and has nothing to check while suspected.
    let detector = Detector::new(
        DetectorConfig::Timeout(TimeoutDetectorConfig { timeout: ms(50) }),
        local_ms(0),
    )
    .unwrap();
    let mut monitor = Monitor::new(detector);
    assert_eq!(monitor.check(local_ms(40)), None);
    assert_eq!(monitor.check(local_ms(60)), Some(Transition::Suspected));
    assert_eq!(monitor.check(local_ms(70)), None);
    assert_eq!(monitor.next_check(), None);
    assert_eq!(monitor.heartbeat(local_ms(80)), Some(Transition::Recovered));
    assert_eq!(monitor.heartbeat(local_ms(90)), None);
    assert_eq!(monitor.next_check(), Some(LocalTime(140_000_001)));
}

// ---------------------------------------------------------------------
// Configuration

#[test]
fn invalid_configurations_are_rejected_naming_the_field() {
    // Goal: each bad value is refused at construction with its field.
    let field = |error: ConfigError| error.field;
    let zero = SimDuration::ZERO;
    let timeout = TimeoutDetectorConfig { timeout: zero };
    assert_eq!(
        field(TimeoutDetector::new(timeout, LocalTime(0)).unwrap_err()),
        "timeout_detector.timeout"
    );
    let phi = |change: fn(&mut PhiAccrualConfig)| {
        let mut config = phi_config(100);
        change(&mut config);
        field(PhiAccrualDetector::new(config, LocalTime(0)).unwrap_err())
    };
    assert_eq!(phi(|config| config.threshold = 0.0), "phi_accrual.threshold");
    assert_eq!(phi(|config| config.threshold = -1.0), "phi_accrual.threshold");
    assert_eq!(phi(|config| config.threshold = f64::NAN), "phi_accrual.threshold");
    assert_eq!(phi(|config| config.window_size = 0), "phi_accrual.window_size");
    assert_eq!(
        phi(|config| config.min_std_deviation = SimDuration::ZERO),
        "phi_accrual.min_std_deviation"
    );
    assert_eq!(
        phi(|config| config.first_interval_estimate = SimDuration::ZERO),
        "phi_accrual.first_interval_estimate"
    );
    let registry = |config: RegistryConfig| field(Registry::<Msg>::new(config).err().unwrap());
    assert_eq!(registry(RegistryConfig::new(zero)), "registry.ttl");
    assert_eq!(
        registry(RegistryConfig { instances_max: 0, ..RegistryConfig::new(ms(1)) }),
        "registry.instances_max"
    );
    assert_eq!(
        registry(RegistryConfig {
            detector: Some(DetectorConfig::PhiAccrual(PhiAccrualConfig {
                threshold: -2.0,
                ..phi_config(10)
            })),
            ..RegistryConfig::new(ms(1))
        }),
        "phi_accrual.threshold"
    );
    let registration = RegistrationConfig { heartbeat_interval: zero };
    let error = Registration::new(ProcessId(0), "s".into(), registration, 0).unwrap_err();
    assert_eq!(error.field, "registration.heartbeat_interval");
    assert_eq!(error.to_string(), "registration.heartbeat_interval = 0ns: expected more than 0");
    let address = |change: fn(&mut VirtualAddressConfig)| {
        let mut config = VirtualAddressConfig::new();
        change(&mut config);
        field(VirtualAddress::<u64>::new("s".into(), ProcessId(0), config, 0).unwrap_err())
    };
    assert_eq!(address(|config| config.buffer_size = 0), "virtual_address.buffer_size");
    assert_eq!(address(|config| config.attempts_max = 0), "virtual_address.attempts_max");
    assert_eq!(
        address(|config| config.ack_timeout = SimDuration::ZERO),
        "virtual_address.ack_timeout"
    );
    assert_eq!(
        address(|config| config.backoff_max = SimDuration::ZERO),
        "virtual_address.backoff_max"
    );
    assert_eq!(field(Recipient::new(0).unwrap_err()), "recipient.remembered_per_sender");
}

#[test]
fn virtual_address_backoff_doubles_up_to_its_cap() {
    // Goal: the retry waits are 50, 100, 200, ... ms, capped at 1 s.
    let config = VirtualAddressConfig::new();
    let waits: Vec<u64> =
        (1..=7).map(|attempt| config.backoff(attempt).as_nanos() / 1_000_000).collect();
    assert_eq!(waits, vec![50, 100, 200, 400, 800, 1000, 1000]);
    assert_eq!(config.backoff(u32::MAX), ms(1000));
}

// ---------------------------------------------------------------------
// Worlds

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    Discovery(Discovery),
    Delivery(Delivery<u64>),
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Discovery(message) => message.label(),
            Msg::Delivery(message) => message.label(),
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::Discovery(message) => message.digest(),
            Msg::Delivery(Delivery::Deliver { sequence, payload }) => {
                sequence ^ payload.rotate_left(17)
            }
            Msg::Delivery(Delivery::Accepted { sequence }) => !sequence,
        }
    }
}

impl Carry<Discovery> for Msg {
    fn wrap(inner: Discovery) -> Msg {
        Msg::Discovery(inner)
    }
    fn unwrap(self) -> Result<Discovery, Msg> {
        match self {
            Msg::Discovery(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

impl Carry<Delivery<u64>> for Msg {
    fn wrap(inner: Delivery<u64>) -> Msg {
        Msg::Delivery(inner)
    }
    fn unwrap(self) -> Result<Delivery<u64>, Msg> {
        match self {
            Msg::Delivery(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

const HEARTBEAT: u64 = 1;
const JOIN: u64 = 2;
const SEND: u64 = 3;
const ADDRESS: u64 = 4;

/// What instances received, shared with the test so it survives crashes.
type Journal = Rc<RefCell<Vec<(ProcessId, u64)>>>;

/// A service instance: registers (at once or after `join_after`),
/// heartbeats, and journals every delivery it accepts.
struct Instance {
    registration: Registration,
    recipient: Recipient,
    join_after: Option<SimDuration>,
    journal: Journal,
}

impl Process<Msg> for Instance {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self.join_after {
            Some(delay) => {
                ctx.set_timer(delay, JOIN);
            }
            None => self.registration.start(ctx),
        }
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        if let Msg::Delivery(delivery) = message
            && let Some(payload) = self.recipient.accept(ctx, from, delivery)
        {
            self.journal.borrow_mut().push((ctx.me(), payload));
        }
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        if tag == JOIN {
            self.registration.start(ctx);
        } else {
            self.registration.on_timer(ctx, tag);
        }
    }
}

/// Watches a service and records every list of instances it is told.
struct Watcher {
    registry: ProcessId,
    service: ServiceName,
    seen: Vec<Vec<ProcessId>>,
}

impl Process<Msg> for Watcher {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.send(self.registry, Msg::Discovery(Discovery::Watch { service: self.service.clone() }));
    }
    fn on_message(&mut self, _ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        if let Msg::Discovery(Discovery::Changed { instances, .. }) = message {
            self.seen.push(instances);
        }
    }
}

/// Sends `count` messages (payload = sequence number) through a virtual
/// address, one every `gap`.
struct Sender {
    address: VirtualAddress<u64>,
    count: u64,
    gap: SimDuration,
}

impl Process<Msg> for Sender {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.address.start(ctx);
        ctx.set_timer(self.gap, SEND);
    }
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        let unexpected = self.address.handle(ctx, message);
        assert!(unexpected.is_ok(), "the sender only gets discovery news and acknowledgements");
    }
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        if self.address.on_timer(ctx, tag) {
            return;
        }
        let payload = self.address.sent_count();
        self.address.send(ctx, payload);
        if self.address.sent_count() < self.count {
            ctx.set_timer(self.gap, SEND);
        }
    }
}

/// A world with `nodes` nodes and a trace kept in memory.
struct World {
    sim: Sim<Msg>,
    nodes: Vec<NodeId>,
    sink: Rc<RefCell<MemorySink>>,
}

impl World {
    fn new(seed: u64, nodes: usize, link: LinkConfig) -> World {
        let mut sim = Sim::new(SimConfig::new(Seed(seed)));
        let sink = Rc::new(RefCell::new(MemorySink::default()));
        sim.set_trace_sink(Box::new(sink.clone()));
        sim.set_default_link(link);
        let nodes = (0..nodes).map(|i| sim.add_node(NodeConfig::new(format!("n{i}")))).collect();
        World { sim, nodes, sink }
    }

    fn registry(&mut self, node: usize, config: RegistryConfig) -> ProcessId {
        let registry = Registry::<Msg>::new(config).unwrap();
        self.sim.spawn(self.nodes[node], "registry", move || registry.clone())
    }

    fn instance(
        &mut self,
        node: usize,
        registry: ProcessId,
        interval: SimDuration,
        join_after: Option<SimDuration>,
        journal: &Journal,
    ) -> ProcessId {
        let config = RegistrationConfig { heartbeat_interval: interval };
        let registration = Registration::new(registry, "orders".into(), config, HEARTBEAT).unwrap();
        let journal = journal.clone();
        self.sim.spawn(self.nodes[node], "orders", move || Instance {
            registration: registration.clone(),
            recipient: Recipient::new(1024).unwrap(),
            join_after,
            journal: journal.clone(),
        })
    }

    /// The discovery events: (time, process, kind, key, value).
    fn events(&self) -> Vec<(SimTime, ProcessId, &'static str, u64, i64)> {
        self.sink
            .borrow()
            .records
            .iter()
            .filter_map(|record| match record.event {
                TraceEvent::Component {
                    process,
                    component: Component::Discovery,
                    kind,
                    key,
                    value,
                } => Some((record.time, process, kind, key, value)),
                _ => None,
            })
            .collect()
    }

    fn events_of(&self, kind: &str) -> Vec<(SimTime, u64, i64)> {
        self.events()
            .into_iter()
            .filter(|event| event.2 == kind)
            .map(|(time, _, _, key, value)| (time, key, value))
            .collect()
    }
}

// ---------------------------------------------------------------------
// Registry

#[test]
fn registry_tracks_registrations_and_evicts_an_instance_that_falls_silent() {
    // Goal: two instances register and are listed; the node of one
    // crashes, its lease runs out and it is evicted, and the watcher hears
    // each change. Method: trace events and the watcher's log.
    let mut world = World::new(1, 4, LinkConfig::constant(ms(1)));
    let registry = world.registry(0, RegistryConfig::new(ms(350)));
    let journal = Journal::default();
    let first = world.instance(1, registry, ms(100), None, &journal);
    let second = world.instance(2, registry, ms(100), Some(ms(50)), &journal);
    let service = ServiceName::new("orders");
    let watcher = world.sim.spawn(world.nodes[3], "watcher", {
        let service = service.clone();
        move || Watcher { registry, service: service.clone(), seen: Vec::new() }
    });
    world.sim.schedule_faults(
        &FaultSchedule::new().at(at_ms(1000), Fault::CrashNode { node: world.nodes[1] }),
    );
    world.sim.run_until(at_ms(900));
    let state = world.sim.process_state::<Registry<Msg>>(registry).unwrap();
    assert_eq!(state.live_instances(&service), vec![first, second]);
    world.sim.run_until(at_ms(3000));
    let state = world.sim.process_state::<Registry<Msg>>(registry).unwrap();
    assert_eq!(state.live_instances(&service), vec![second]);
    let seen = &world.sim.process_state::<Watcher>(watcher).unwrap().seen;
    assert_eq!(seen, &vec![vec![first], vec![first, second], vec![second]]);
    let registered: Vec<u64> = world.events_of("registered").iter().map(|event| event.1).collect();
    assert_eq!(registered, vec![u64::from(first.0), u64::from(second.0)]);
    let evicted = world.events_of("evicted");
    assert_eq!(evicted.len(), 1);
    let (time, key, live) = evicted[0];
    assert_eq!((key, live), (u64::from(first.0), 1));
    // The last heartbeat left at 1000 ms (at most), arrived 1 ms later.
    assert!(time > at_ms(1000) && time <= at_ms(1000 + 350 + 1) + SimDuration::from_nanos(1));
    assert_eq!(world.sim.metrics().counter("discovery.evicted"), 1);
}

#[test]
fn registry_forgets_a_deregistered_instance_at_once_and_answers_lookups() {
    // Goal: a clean deregistration removes the instance without waiting
    // for its lease, and a lookup answers with the live instances.
    struct Leaver {
        registration: Registration,
    }
    impl Process<Msg> for Leaver {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
            self.registration.start(ctx);
            ctx.set_timer(ms(300), 99);
        }
        fn on_message(&mut self, _ctx: &mut Ctx<'_, Msg>, _from: ProcessId, _message: Msg) {}
        fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
            if tag == 99 {
                self.registration.stop(ctx);
            } else {
                self.registration.on_timer(ctx, tag);
            }
        }
    }
    let mut world = World::new(2, 3, LinkConfig::constant(ms(1)));
    let registry = world.registry(0, RegistryConfig::new(ms(10_000)));
    let config = RegistrationConfig { heartbeat_interval: ms(100) };
    let registration = Registration::new(registry, "orders".into(), config, HEARTBEAT).unwrap();
    world
        .sim
        .spawn(world.nodes[1], "leaver", move || Leaver { registration: registration.clone() });
    world.sim.post(
        at_ms(200),
        registry,
        Msg::Discovery(Discovery::Lookup { service: "orders".into() }),
    );
    world.sim.run_until(at_ms(1000));
    let service = ServiceName::new("orders");
    assert!(
        world
            .sim
            .process_state::<Registry<Msg>>(registry)
            .unwrap()
            .live_instances(&service)
            .is_empty()
    );
    let deregistered = world.events_of("deregistered");
    assert_eq!(deregistered.len(), 1);
    assert_eq!(deregistered[0].0, at_ms(301));
    assert!(world.events_of("evicted").is_empty());
}

#[test]
fn registry_rejects_registrations_beyond_its_bound() {
    // Goal: with room for one instance, a second registration is refused,
    // traced and answered, and the first instance stays listed.
    let mut world = World::new(3, 3, LinkConfig::constant(ms(1)));
    let config = RegistryConfig { instances_max: 1, ..RegistryConfig::new(ms(500)) };
    let registry = world.registry(0, config);
    let journal = Journal::default();
    let first = world.instance(1, registry, ms(100), None, &journal);
    world.instance(2, registry, ms(100), Some(ms(10)), &journal);
    world.sim.run_until(at_ms(1000));
    let service = ServiceName::new("orders");
    let state = world.sim.process_state::<Registry<Msg>>(registry).unwrap();
    assert_eq!(state.registered_instances(&service), vec![first]);
    // Every heartbeat of the second retries its registration, and is refused.
    assert!(world.events_of("registration_rejected").len() >= 9);
    assert!(world.sim.metrics().counter("discovery.registration_rejected") >= 9);
}

#[test]
fn registry_with_a_phi_detector_hides_a_partitioned_instance_before_evicting_it() {
    // Goal: a phi-accrual detector suspects an instance cut off by a
    // partition long before its lease runs out, hiding it from lookups;
    // when the partition heals, its heartbeats make it recover.
    let mut world = World::new(4, 3, LinkConfig::constant(ms(1)));
    let config = RegistryConfig {
        detector: Some(DetectorConfig::PhiAccrual(PhiAccrualConfig::for_interval(ms(100)))),
        ..RegistryConfig::new(ms(2_000))
    };
    let registry = world.registry(0, config);
    let journal = Journal::default();
    let instance = world.instance(1, registry, ms(100), None, &journal);
    let partition = Fault::Partition { side_a: vec![world.nodes[0]], side_b: vec![world.nodes[1]] };
    world.sim.schedule_faults(&FaultSchedule::new().window(at_ms(2_000), at_ms(2_900), partition));
    world.sim.run_until(at_ms(2_500));
    let service = ServiceName::new("orders");
    let state = world.sim.process_state::<Registry<Msg>>(registry).unwrap();
    assert!(state.live_instances(&service).is_empty());
    assert_eq!(state.registered_instances(&service), vec![instance]);
    world.sim.run_until(at_ms(4_000));
    let state = world.sim.process_state::<Registry<Msg>>(registry).unwrap();
    assert_eq!(state.live_instances(&service), vec![instance]);
    let suspected = world.events_of("suspected");
    assert_eq!(suspected.len(), 1);
    // The last heartbeat before the partition arrived at 1901 ms; with
    // σ at its 10 ms floor, φ reaches 8 about 6σ after the 100 ms mean.
    assert!(suspected[0].0 > at_ms(1_901 + 100) && suspected[0].0 < at_ms(1_901 + 200));
    assert_eq!(world.events_of("recovered").len(), 1);
    assert!(world.events_of("evicted").is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Law: the registry evicts a crashed instance within TTL + one
    /// heartbeat interval of the crash, and not before the crash.
    #[test]
    fn registry_evicts_a_crashed_instance_within_ttl_plus_one_heartbeat_interval(
        seed in any::<u64>(),
        interval_ms in 20u64..200,
        ttl_intervals in 2u64..6,
        crash_ms in 100u64..3_000,
        latency_ms in 1u64..10,
    ) {
        // The latency stays below the interval, as the law presumes: a
        // heartbeat slower than a whole interval would be as good as lost.
        let latency = Dist::uniform(ms(1), ms(latency_ms.min(interval_ms - 1)));
        let mut world = World::new(seed, 2, LinkConfig::with_latency(latency));
        let interval = ms(interval_ms);
        let ttl = ms(interval_ms * ttl_intervals);
        let registry = world.registry(0, RegistryConfig::new(ttl));
        let journal = Journal::default();
        let instance = world.instance(1, registry, interval, None, &journal);
        let crash = at_ms(crash_ms);
        world.sim.schedule_faults(&FaultSchedule::new().at(crash, Fault::CrashNode { node: world.nodes[1] }));
        world.sim.run_until(crash + ttl + interval + interval);
        let evicted = world.events_of("evicted");
        prop_assert_eq!(evicted.len(), 1);
        let (time, key, _) = evicted[0];
        prop_assert_eq!(key, u64::from(instance.0));
        prop_assert!(time >= crash, "evicted at {} before the crash at {}", time, crash);
        prop_assert!(time <= crash + ttl + interval, "evicted at {}, crash at {}", time, crash);
    }
}

// ---------------------------------------------------------------------
// Virtual addresses

fn sender(
    world: &mut World,
    node: usize,
    registry: ProcessId,
    config: VirtualAddressConfig,
    count: u64,
) -> ProcessId {
    let address = VirtualAddress::new("orders".into(), registry, config, ADDRESS).unwrap();
    world.sim.spawn(world.nodes[node], "sender", move || Sender {
        address: address.clone(),
        count,
        gap: ms(50),
    })
}

#[test]
fn virtual_address_buffers_until_an_instance_registers_then_delivers_in_order() {
    // Goal: messages sent before any instance exists wait in the buffer
    // and are forwarded when the registry names one.
    let mut world = World::new(5, 3, LinkConfig::constant(ms(1)));
    let registry = world.registry(0, RegistryConfig::new(ms(350)));
    let journal = Journal::default();
    let instance = world.instance(1, registry, ms(100), Some(ms(120)), &journal);
    let config = VirtualAddressConfig { backoff_initial: ms(500), ..VirtualAddressConfig::new() };
    let sender = sender(&mut world, 2, registry, config, 5);
    world.sim.run_until(at_ms(2_000));
    let address = &world.sim.process_state::<Sender>(sender).unwrap().address;
    assert_eq!(
        (address.sent_count(), address.delivered_count(), address.dead_letter_count()),
        (5, 5, 0)
    );
    assert_eq!(address.target(), Some(instance));
    let received: Vec<u64> = journal.borrow().iter().map(|(_, payload)| *payload).collect();
    assert_eq!(received, vec![0, 1, 2, 3, 4]);
    // Sent at 50 and 100 ms, before the registration (sent at 120 ms,
    // registered at 121 ms, announced to the sender at 122 ms).
    assert_eq!(world.events_of("buffered").len(), 2);
    assert_eq!(world.events_of("retargeted"), vec![(at_ms(122), u64::from(instance.0), -1)]);
    assert_eq!(world.events_of("delivered").len(), 5);
}

#[test]
fn virtual_address_dead_letters_on_overflow_and_after_its_attempts() {
    // Goal: with no instance ever, a full buffer dead-letters at once and
    // the buffered messages are dead-lettered after their attempts; all of
    // them can be inspected.
    let mut world = World::new(6, 2, LinkConfig::constant(ms(1)));
    let registry = world.registry(0, RegistryConfig::new(ms(350)));
    let config = VirtualAddressConfig {
        buffer_size: 3,
        attempts_max: 3,
        backoff_initial: ms(100),
        backoff_max: ms(200),
        ..VirtualAddressConfig::new()
    };
    let sender = sender(&mut world, 1, registry, config, 5);
    world.sim.run_until(at_ms(2_000));
    let address = &world.sim.process_state::<Sender>(sender).unwrap().address;
    assert_eq!(
        (address.sent_count(), address.delivered_count(), address.pending_count()),
        (5, 0, 0)
    );
    let letters: Vec<(u64, UndeliveredReason, u32)> = address
        .dead_letters()
        .iter()
        .map(|letter| (letter.payload, letter.reason, letter.attempts))
        .collect();
    use UndeliveredReason::{AttemptsExhausted, BufferFull};
    assert_eq!(
        letters,
        vec![
            (3, BufferFull, 0),
            (4, BufferFull, 0),
            (0, AttemptsExhausted, 3),
            (1, AttemptsExhausted, 3),
            (2, AttemptsExhausted, 3)
        ]
    );
    assert_eq!(world.events_of("dead_lettered").len(), 5);
    assert_eq!(world.sim.metrics().counter("discovery.dead_lettered"), 5);
}

#[test]
fn recipient_acknowledges_duplicates_but_hands_each_message_on_once() {
    // Goal: on a link that duplicates every message, each payload reaches
    // the instance's journal exactly once.
    let mut link = LinkConfig::constant(ms(1));
    link.duplicate = 1.0;
    let mut world = World::new(7, 3, link);
    let registry = world.registry(0, RegistryConfig::new(ms(350)));
    let journal = Journal::default();
    let instance = world.instance(1, registry, ms(100), None, &journal);
    let sender = sender(&mut world, 2, registry, VirtualAddressConfig::new(), 10);
    world.sim.run_until(at_ms(2_000));
    let received: Vec<u64> = journal.borrow().iter().map(|(_, payload)| *payload).collect();
    assert_eq!(received, (0..10).collect::<Vec<_>>());
    assert!(
        world.sim.process_state::<Instance>(instance).unwrap().recipient.duplicate_count() >= 10
    );
    assert!(!world.events_of("duplicate_dropped").is_empty());
    assert_eq!(world.sim.process_state::<Sender>(sender).unwrap().address.delivered_count(), 10);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Law: across a move (the instance's node crashes, a new instance on
    /// another node registers), a virtual address delivers or dead-letters
    /// every message, never silently dropping one: sent = delivered +
    /// dead-lettered, each delivered message is in an instance's journal,
    /// and each dead letter is kept. Also: the address never returns to the
    /// crashed instance after the registry evicted it.
    #[test]
    fn virtual_address_delivers_or_dead_letters_every_message_across_a_move(
        seed in any::<u64>(),
        move_ms in 50u64..2_500,
        join_after_ms in 0u64..3_000,
        loss in prop_oneof![2 => Just(0.0), 3 => 0.0f64..0.3],
        buffer_size in 1usize..40,
    ) {
        let mut link = LinkConfig::with_latency(Dist::uniform(ms(1), ms(8)));
        link.loss = loss;
        let mut world = World::new(seed, 4, link);
        let registry = world.registry(0, RegistryConfig::new(ms(300)));
        let journal = Journal::default();
        let first = world.instance(1, registry, ms(100), None, &journal);
        world.instance(2, registry, ms(100), Some(ms(move_ms + join_after_ms)), &journal);
        let config = VirtualAddressConfig {
            buffer_size,
            attempts_max: 6,
            ack_timeout: ms(40),
            backoff_initial: ms(20),
            backoff_max: ms(400),
            dead_letters_kept: 100,
        };
        let count = 60;
        let sender = sender(&mut world, 3, registry, config, count);
        world.sim.schedule_faults(&FaultSchedule::new().at(at_ms(move_ms), Fault::CrashNode { node: world.nodes[1] }));
        // Sends end at 3 s; a message's attempts take at most
        // 6 · (40 + 400) ms after that.
        world.sim.run_until(at_ms(3_000 + 6 * 440 + 100));
        let address = &world.sim.process_state::<Sender>(sender).unwrap().address;
        prop_assert_eq!(address.sent_count(), count);
        prop_assert_eq!(address.pending_count(), 0);
        prop_assert_eq!(address.delivered_count() + address.dead_letter_count(), count);
        let delivered: Vec<u64> = world.events_of("delivered").iter().map(|event| event.1).collect();
        let dead: Vec<u64> = address.dead_letters().iter().map(|letter| letter.payload).collect();
        prop_assert_eq!(delivered.len() as u64, address.delivered_count());
        prop_assert_eq!(dead.len() as u64, address.dead_letter_count());
        // Lists that overtook each other on the network never send the
        // address back to the crashed instance once it was evicted for good
        // (lost heartbeats can evict it spuriously before the crash, and
        // its next heartbeat registers it again).
        let evicted = world
            .events_of("evicted")
            .iter()
            .find(|event| event.1 == u64::from(first.0) && event.0 >= at_ms(move_ms))
            .map(|event| event.0);
        if let Some(evicted) = evicted {
            let back = world.events_of("retargeted").iter().any(|event| event.0 > evicted && event.1 == u64::from(first.0));
            prop_assert!(!back, "retargeted to {} after its eviction", first);
        }
        let received: Vec<u64> = journal.borrow().iter().map(|(_, payload)| *payload).collect();
        for sequence in 0..count {
            let was_delivered = delivered.contains(&sequence);
            prop_assert!(was_delivered != dead.contains(&sequence), "message {} delivered and dead", sequence);
            prop_assert!(!was_delivered || received.contains(&sequence), "message {} acknowledged, never received", sequence);
        }
    }
}
