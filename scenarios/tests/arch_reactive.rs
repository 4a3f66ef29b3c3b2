//! The reactive microlith (Reactive Microsystems, ch. 5): what it promises
//! and what it teaches, asserted by direction on runs built in code.
//!
//! Every test builds a scenario from `Scenario::default_named`, runs the
//! architecture, and checks the report and the details the run exposes
//! ([`reactive::ReactiveRun`]). Numbers that are checked come from the
//! model's parameters, derived in the comments.

use scenarios::arch::reactive::{self, ReactiveRun};
use scenarios::domain::{OrderId, OrderStatus};
use scenarios::harness::Hooks;
use scenarios::parts::{Answer, RequestOutcome};
use scenarios::report::{self, Outcome};
use scenarios::scenario::{Arrivals, FaultAction, FaultSpec, Scenario};
use sim::kit::breaker::BreakerState;
use sim::{Dist, Seed, SimDuration};

fn secs(seconds: u64) -> SimDuration {
    SimDuration::from_secs(seconds)
}

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn check(scenario: &Scenario, seed: u64) -> (ReactiveRun, Outcome) {
    let run = reactive::run_detailed(scenario, Seed(seed), &mut Hooks::default());
    let outcome = report::outcome(scenario, &run.observations);
    (run, outcome)
}

fn assert_invariants_hold(outcome: &Outcome) {
    for verdict in &outcome.invariants {
        assert!(verdict.held, "{} broke: {}", verdict.name, verdict.detail);
    }
}

fn crash(role: &str, from: u64, until: u64) -> FaultSpec {
    FaultSpec {
        at: secs(from),
        until: Some(secs(until)),
        action: FaultAction::Crash { role: role.to_string() },
    }
}

fn open_rate(rate_per_s: f64) -> Arrivals {
    Arrivals::Open { rate_per_s, profile: Vec::new() }
}

/// Latencies in ms, sorted, of requests placed in `[from, until)` seconds
/// that got an answer.
fn latencies_ms(run: &ReactiveRun, from: f64, until: f64) -> Vec<f64> {
    let mut latencies: Vec<f64> = run
        .observations
        .requests
        .iter()
        .filter(|request| (from..until).contains(&request.placed_at.as_secs_f64()))
        .filter_map(|request| Some((request.ended_at? - request.placed_at).as_millis_f64()))
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "no latencies to take a percentile of");
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Charges Payments sent to the gateway in `[from, until)` seconds.
fn gateway_charges(run: &ReactiveRun, from: usize, until: usize) -> u64 {
    let series = run.metrics.series("payments.gateway_charges").expect("charges were sampled");
    series.buckets.iter().skip(from).take(until - from).map(|bucket| bucket.count).sum()
}

#[test]
fn baseline_latency_is_the_sum_of_the_hops() {
    // Goal: no faults, 50 orders/s for 10 s: every invariant holds, every
    // order completes, and the end-to-end latency is the sum of the hops.
    let scenario = Scenario::default_named("baseline");
    let (_, outcome) = check(&scenario, 1);
    assert_invariants_hold(&outcome);
    assert!(outcome.availability >= 0.99, "availability {}", outcome.availability);
    assert_eq!(outcome.orders.completed, outcome.orders.requested);
    assert_eq!((outcome.compensations, outcome.breaker_transitions), (0, 0));
    // 50 orders/s offered; the last ~70 ms of completions fall past the
    // window, which is noise at this scale.
    assert!((45.0..=55.0).contains(&outcome.throughput), "throughput {}", outcome.throughput);
    // With 1 ms links, 1 ms of CPU per message, instant syncs and a 50 ms
    // gateway, an approved order takes: PlaceOrder in (1) + Orders (1) +
    // publish (1) + fetched by Inventory (1) + Inventory (1) + publish (1) +
    // fetched by Payments (1) + Payments (1) + Charge out (1) + gateway (50)
    // + reply (1) + Payments (1) + publish (1) + fetched by Inventory and
    // Shipping (1) + both at once (1) + publish (1) + fetched by Orders (1)
    // + Orders (1) + answer (1) = 68 ms. Long polling means no fetch waits.
    let expected = 68.0;
    let p50 = outcome.latency_ms.p50;
    assert!((p50 - expected).abs() <= 0.05 * expected, "p50 {p50} ms, expected ≈ {expected}");
    assert!(outcome.latency_ms.p99 <= 1.2 * expected, "p99 {}", outcome.latency_ms.p99);
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    // Goal: a run is a function of its seed, faults and duplicates included.
    let mut scenario = Scenario::default_named("determinism");
    scenario.duration = secs(3);
    scenario.drain = secs(5);
    scenario.network.duplicate = 0.05;
    scenario.workload.decline_rate = 0.2;
    scenario.faults = vec![crash("payments", 1, 2)];
    let hash = |seed: u64| check(&scenario, seed).1.trace_hash;
    let first = hash(7);
    assert_eq!(first, hash(7), "same seed, same trace");
    assert_ne!(first, hash(8), "another seed, another trace");
}

#[test]
fn the_breaker_opens_fails_fast_and_spares_a_gateway_that_is_down() {
    // Goal (lesson 5): gateway down t = 20–40 s at 50 orders/s. The breaker
    // (last 20 calls, at least 10, 50 %, open 5 s, 3 probes) opens ≈ 1 s
    // into the outage, fails fast while open, closes a few seconds after
    // recovery, and far fewer calls reach the gateway than without it.
    let mut scenario = Scenario::default_named("gateway-outage");
    scenario.duration = secs(60);
    scenario.faults = vec![crash("gateway", 20, 40)];
    let (with, with_outcome) = check(&scenario, 1);
    scenario.reactive.breaker_enabled = false;
    let (without, without_outcome) = check(&scenario, 1);
    assert_invariants_hold(&with_outcome);
    assert_invariants_hold(&without_outcome);

    // The first timeouts come 1 s (the call timeout) after the crash; ten
    // of them out of the last twenty calls trip it.
    let opened = with.breaker_changes.first().expect("the breaker changed state");
    assert_eq!((opened.from, opened.to), (BreakerState::Closed, BreakerState::Open));
    let opened_s = opened.at.as_nanos() as f64 / 1e9;
    assert!((20.9..=22.0).contains(&opened_s), "opened at {opened_s} s");
    // Probes every open duration + call timeout ≈ 6 s fail until the
    // gateway is back; the first half-open after that closes it.
    let closed = with.breaker_changes.last().expect("the breaker changed state");
    assert_eq!(closed.to, BreakerState::Closed);
    let closed_s = closed.at.as_nanos() as f64 / 1e9;
    assert!((40.0..=47.0).contains(&closed_s), "closed at {closed_s} s");
    assert!(with_outcome.breaker_transitions >= 3);
    assert_eq!(without_outcome.breaker_transitions, 0);

    // Calls reaching for the gateway while it is down: ≈ one second's worth
    // (≈ 50) before the breaker trips, then a few probes per cycle, against
    // three attempts per order (≈ 3,000) without a breaker.
    let spared = gateway_charges(&with, 20, 40);
    let hammered = gateway_charges(&without, 20, 40);
    assert!(spared <= 100, "{spared} charges during the outage with the breaker");
    assert!(hammered >= 10 * spared, "{hammered} without against {spared} with");

    // Orders placed while the breaker is open fail fast (a few hops, no
    // wait on the gateway); without it, each waits out three timeouts.
    let fast = latencies_ms(&with, 22.0, 39.0);
    let slow = latencies_ms(&without, 22.0, 39.0);
    assert!(percentile(&fast, 0.99) < 100.0, "p99 {} ms with the breaker", percentile(&fast, 0.99));
    assert!(percentile(&slow, 0.50) >= 1_000.0, "p50 {} ms without", percentile(&slow, 0.50));
    // A failed payment cancels the order and releases its reservation.
    assert!(with_outcome.orders.cancelled > 0 && with_outcome.compensations > 0);
}

#[test]
fn a_slow_gateway_holds_no_thread_so_throughput_keeps_up() {
    // Goal (the reactive side of lesson 1): the gateway's link goes from 1
    // to 500 ms at t = 30 s under 100 orders/s. Waiting holds no thread, so
    // completions keep up with arrivals; only latency grows, by the 499 ms
    // the slower link adds to the one gateway call (68 → ≈ 567 ms).
    let mut scenario = Scenario::default_named("slow-gateway");
    scenario.duration = secs(40);
    scenario.workload.arrivals = open_rate(100.0);
    scenario.faults = vec![FaultSpec {
        at: secs(30),
        until: None,
        action: FaultAction::SlowLinks {
            role: "gateway".to_string(),
            latency: Dist::constant(ms(500)),
        },
    }];
    let (run, outcome) = check(&scenario, 1);
    assert_invariants_hold(&outcome);
    assert!(outcome.availability >= 0.99, "availability {}", outcome.availability);
    assert_eq!(outcome.orders.completed, outcome.orders.requested);
    let in_window = |at: Option<f64>| at.is_some_and(|at| (33.0..40.0).contains(&at));
    let placed = run
        .observations
        .requests
        .iter()
        .filter(|request| in_window(Some(request.placed_at.as_secs_f64())))
        .count() as f64;
    let completed = run
        .observations
        .requests
        .iter()
        .filter(|request| request.outcome == RequestOutcome::Answered(Answer::Completed))
        .filter(|request| in_window(request.ended_at.map(|at| at.as_secs_f64())))
        .count() as f64;
    assert!(completed >= 0.95 * placed, "{completed} completed for {placed} placed in 33–40 s");
    let slowed = latencies_ms(&run, 31.0, 40.0);
    let p50 = percentile(&slowed, 0.5);
    assert!((p50 - 567.0).abs() <= 0.05 * 567.0, "p50 {p50} ms after the slowdown");
}

#[test]
fn orders_placed_while_inventory_is_down_wait_in_the_broker_and_complete() {
    // Goal: Inventory's node is down t = 10–20 s. The others keep running,
    // the facts for Inventory wait in the broker, and once it is back every
    // order placed meanwhile completes: none lost.
    let mut scenario = Scenario::default_named("inventory-crash");
    scenario.duration = secs(30);
    scenario.faults = vec![crash("inventory", 10, 20)];
    let (run, outcome) = check(&scenario, 1);
    assert_invariants_hold(&outcome);
    assert_eq!(outcome.orders.lost, 0);
    assert_eq!(outcome.orders.completed, outcome.orders.accepted);
    assert_eq!(outcome.orders.accepted, outcome.orders.requested);
    assert_eq!(outcome.restarts, 1);
    let fired = &run.observations.faults_fired;
    assert_eq!(fired.len(), 2);
    assert!(fired.iter().all(|fault| fault.applied));
    assert_eq!(fired[0].touched.processes_stopped, 1);
    assert_eq!(fired[1].touched.processes_restarted, 1);
    // Every order placed during the outage completed, and no customer heard
    // back before Inventory returned (those placed early gave up first).
    let during: Vec<_> = run
        .observations
        .requests
        .iter()
        .filter(|request| (10.5..19.5).contains(&request.placed_at.as_secs_f64()))
        .collect();
    assert!(during.len() > 400);
    for request in &during {
        let status = run.observations.orders.get(&request.order).copied();
        assert_eq!(status, Some(OrderStatus::Completed), "{}", request.order);
        if let Some(ended) = request.ended_at
            && request.outcome == RequestOutcome::Answered(Answer::Completed)
        {
            assert!(ended.as_secs_f64() >= 20.0, "{} answered at {ended}", request.order);
        }
    }
    assert!(during.iter().any(|request| request.outcome == RequestOutcome::TimedOut));
}

#[test]
fn overload_is_shed_by_a_bounded_queue_and_grows_an_unbounded_one() {
    // Goal: offered 60 orders/s, Orders can take ≈ 33/s (1 core, 10 ms per
    // message, three messages per order: PlaceOrder, ProductsShipped,
    // ParcelSent). Bounded at 20, the excess is refused at once and latency
    // stays near bound ÷ admitted rate ≈ 20 ÷ 33 ≈ 0.6 s; unbounded, the
    // queue grows ≈ 27 a second and so does every order's wait.
    let mut scenario = Scenario::default_named("overload");
    scenario.duration = secs(20);
    scenario.drain = secs(30);
    scenario.workload.arrivals = open_rate(60.0);
    scenario.workload.client_timeout = secs(60);
    scenario.reactive.cores = 1;
    scenario.reactive.cpu = Dist::constant(ms(10));
    scenario.reactive.queue_bound = Some(20);
    let (bounded, bounded_outcome) = check(&scenario, 1);
    scenario.reactive.queue_bound = None;
    let (unbounded, unbounded_outcome) = check(&scenario, 1);
    assert_invariants_hold(&bounded_outcome);
    assert_invariants_hold(&unbounded_outcome);

    assert!(bounded.orders_edge.high_water <= 20);
    assert!(bounded.orders_edge.rejected > 300, "{:?}", bounded.orders_edge);
    assert!(bounded_outcome.latency_ms.p99 < 1_500.0, "p99 {}", bounded_outcome.latency_ms.p99);
    let capacity = 1.0 / (3.0 * 0.010);
    let throughput = bounded_outcome.throughput;
    assert!((throughput - capacity).abs() <= 0.1 * capacity, "throughput {throughput}");

    assert_eq!(unbounded.orders_edge.rejected, 0);
    assert!(unbounded.orders_edge.high_water > 300, "{:?}", unbounded.orders_edge);
    assert!(unbounded_outcome.latency_ms.p99 > 5_000.0, "p99 {}", unbounded_outcome.latency_ms.p99);
    // The wait grows with the backlog: late orders wait far longer.
    let early = percentile(&latencies_ms(&unbounded, 2.0, 4.0), 0.5);
    let late = percentile(&latencies_ms(&unbounded, 17.0, 19.0), 0.5);
    assert!(late > 5.0 * early, "{early} ms early, {late} ms late");
}

#[test]
fn every_service_crashes_once_on_a_lossy_network_and_the_invariants_hold() {
    // Goal: each service, the broker and the gateway crash in turn while the
    // network loses, duplicates and reorders messages, cards are declined,
    // stock runs out and the gateway errs. Each fault fires and stops its
    // node; idempotent handlers, the outbox and compensations keep every
    // invariant, and no accepted order is lost.
    let mut scenario = Scenario::default_named("crash-everything");
    scenario.duration = secs(24);
    scenario.drain = secs(20);
    scenario.network.loss = 0.01;
    scenario.network.duplicate = 0.05;
    scenario.network.reorder = 0.05;
    scenario.network.reorder_window = ms(20);
    scenario.workload.decline_rate = 0.1;
    scenario.workload.stock_per_product = 10;
    scenario.gateway.failure_rate = 0.05;
    scenario.gateway.latency = Dist::uniform(ms(20), ms(200));
    scenario.faults = vec![
        crash("payments", 4, 6),
        crash("broker", 7, 9),
        crash("orders", 10, 12),
        crash("shipping", 13, 15),
        crash("gateway", 16, 17),
        crash("inventory", 18, 20),
    ];
    let (run, outcome) = check(&scenario, 3);
    assert_invariants_hold(&outcome);
    assert_eq!(outcome.orders.lost, 0);
    let fired = &run.observations.faults_fired;
    assert_eq!(fired.len(), 12);
    assert!(fired.iter().all(|fault| fault.applied));
    for pair in fired.chunks(2) {
        assert_eq!(pair[0].touched.processes_stopped, 1, "{}", pair[0].fault);
        assert_eq!(pair[1].touched.processes_restarted, 1, "{}", pair[1].fault);
    }
    // Five of our nodes restarted (the gateway is someone else's).
    assert_eq!(outcome.restarts, 5);
    assert!(outcome.orders.cancelled > 0 && outcome.compensations > outcome.orders.cancelled);
    assert!(run.metrics.counter("broker.redelivered") > 0, "a crash redelivered something");
}

#[test]
fn retries_are_safe_only_with_idempotency_keys() {
    // Goal: one gateway call in ten takes 1.5 s, past the 1 s call timeout,
    // so Payments retries while the first call is still charging. With
    // idempotency keys the gateway answers the retry from its ledger; without
    // them the same order is charged twice, and the invariant check says so.
    let mut scenario = Scenario::default_named("retries");
    scenario.duration = secs(5);
    scenario.gateway.latency =
        Dist::bimodal(Dist::constant(ms(50)), Dist::constant(ms(1_500)), 0.1);
    let (_, keyed) = check(&scenario, 1);
    assert_invariants_hold(&keyed);
    scenario.gateway.idempotent = false;
    let (_, unkeyed) = check(&scenario, 1);
    let double = unkeyed.invariants.iter().find(|v| v.name == "no_double_charge_or_ship").unwrap();
    assert!(!double.held, "expected double charges: {}", double.detail);
    let money = unkeyed.invariants.iter().find(|v| v.name == "money_conserved").unwrap();
    assert!(!money.held, "a double charge keeps money owed to nobody");
}

#[test]
fn a_node_down_at_the_end_is_reported_from_its_durable_log() {
    // Goal: Shipping crashes at t = 3 s and never comes back. Its parcels
    // are read from what its log made durable, and orders paid after the
    // crash are reported as not ended (lost) rather than hidden.
    let mut scenario = Scenario::default_named("shipping-gone");
    scenario.duration = secs(6);
    scenario.drain = secs(4);
    scenario.faults = vec![FaultSpec {
        at: secs(3),
        until: None,
        action: FaultAction::Crash { role: "shipping".to_string() },
    }];
    let (run, outcome) = check(&scenario, 1);
    let parcels = &run.observations.parcels;
    assert!(parcels.len() > 100, "parcels sent before the crash: {}", parcels.len());
    let placed_before_crash = run
        .observations
        .requests
        .iter()
        .filter(|request| request.placed_at.as_secs_f64() < 3.0)
        .map(|request| request.order)
        .collect::<Vec<OrderId>>();
    assert!(parcels.keys().all(|order| placed_before_crash.contains(order)));
    assert!(outcome.orders.lost > 0);
    let lost = outcome.invariants.iter().find(|v| v.name == "no_lost_orders").unwrap();
    assert!(!lost.held);
}
