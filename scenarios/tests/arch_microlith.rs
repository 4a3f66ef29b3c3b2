//! The microlith (Reactive Microsystems, ch. 2), told through runs: the
//! baseline, determinism, and the lessons it teaches (lesson 1 of
//! shared/LESSONS.md: latency adds up, threads are held hostage; a crashed
//! service takes the whole flow down; with no saga, money leaks when a
//! payment call times out).
//!
//! Expected values come from the model's parameters, never from the code
//! under test: with constant 1 ms links, 1 ms of CPU per request per
//! service and 2 ms per database query, each hop's time is written out in
//! [`Hops`].

use scenarios::arch::microlith::{self, MicrolithWorld, ServiceKind, THREAD_QUEUE_PER_THREAD};
use scenarios::domain::{CancelReason, OrderStatus};
use scenarios::harness::Hooks;
use scenarios::invariants::{self, Verdict};
use scenarios::observe::Observations;
use scenarios::parts::{Answer, Request, RequestOutcome};
use scenarios::report::{self, Outcome};
use scenarios::scenario::{Arrivals, FaultAction, FaultSpec, Scenario};
use sim::{Dist, Fault, Seed, SimDuration, SimTime};

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn secs(seconds: u64) -> SimDuration {
    SimDuration::from_secs(seconds)
}

fn at_s(seconds: f64) -> SimTime {
    SimTime::from_nanos((seconds * 1e9) as u64)
}

/// A scenario for the microlith alone, at `rate_per_s` for `duration`.
fn scenario(name: &str, rate_per_s: f64, duration: SimDuration) -> Scenario {
    let mut scenario = Scenario::default_named(name);
    scenario.workload.arrivals = Arrivals::Open { rate_per_s, profile: Vec::new() };
    scenario.duration = duration;
    scenario
}

fn fault(at: u64, until: Option<u64>, action: FaultAction) -> FaultSpec {
    FaultSpec { at: secs(at), until: until.map(secs), action }
}

fn slow_gateway_links(latency: SimDuration) -> FaultAction {
    FaultAction::SlowLinks { role: "gateway".to_string(), latency: Dist::constant(latency) }
}

fn crash(role: &str) -> FaultAction {
    FaultAction::Crash { role: role.to_string() }
}

fn run(scenario: &Scenario, seed: u64) -> (Observations, Outcome) {
    let observed = microlith::run(scenario, Seed(seed), &mut Hooks::default());
    let outcome = report::outcome(scenario, &observed);
    (observed, outcome)
}

fn verdict<'a>(outcome: &'a Outcome, name: &str) -> &'a Verdict {
    outcome.invariants.iter().find(|verdict| verdict.name == name).expect("a known invariant")
}

fn assert_all_invariants_hold(outcome: &Outcome) {
    let broken: Vec<&Verdict> = outcome.invariants.iter().filter(|v| !v.held).collect();
    assert!(broken.is_empty(), "broken invariants: {broken:#?}");
}

/// The time each step of the order flow takes in the model, in ms: one
/// way over a link, CPU per request, one query's work at the database,
/// and the gateway's own answer time plus the extra latency of the links
/// into it.
struct Hops {
    link: f64,
    cpu: f64,
    query: f64,
    gateway: f64,
    gateway_links_extra: f64,
}

impl Hops {
    /// The defaults of `Scenario::default_named`.
    fn defaults() -> Hops {
        Hops { link: 1.0, cpu: 1.0, query: 2.0, gateway: 50.0, gateway_links_extra: 0.0 }
    }

    /// A blocking database call: there, the query, back.
    fn database_call(&self) -> f64 {
        2.0 * self.link + self.query
    }

    /// Inventory, called: there, CPU, its query, back.
    fn inventory_call(&self) -> f64 {
        2.0 * self.link + self.cpu + self.database_call()
    }

    /// Payments, called: there, CPU, the gateway round trip, recording
    /// the outcome, back.
    fn payments_call(&self) -> f64 {
        let gateway_round_trip = self.link + self.gateway_links_extra + self.gateway + self.link;
        2.0 * self.link + self.cpu + gateway_round_trip + self.database_call()
    }

    /// Shipping, called: there, CPU, Inventory's ShipProducts, recording
    /// the parcel, back.
    fn shipping_call(&self) -> f64 {
        2.0 * self.link + self.cpu + self.inventory_call() + self.database_call()
    }

    /// How long Orders holds a thread for one completed order: CPU,
    /// CreateOrder, ReserveProducts, SubmitPayment, ShipOrder,
    /// CompleteOrder.
    fn orders_thread_holding(&self) -> f64 {
        self.cpu
            + self.database_call()
            + self.inventory_call()
            + self.payments_call()
            + self.shipping_call()
            + self.database_call()
    }

    /// What the customer sees: to Orders, the holding time, back.
    fn end_to_end(&self) -> f64 {
        2.0 * self.link + self.orders_thread_holding()
    }
}

fn is_success(request: &Request) -> bool {
    matches!(request.outcome, RequestOutcome::Answered(answer) if answer.is_success())
}

/// Availability of the requests placed in `[from, until)`.
fn availability_between(requests: &[Request], from: SimTime, until: SimTime) -> f64 {
    let placed: Vec<&Request> =
        requests.iter().filter(|r| r.placed_at >= from && r.placed_at < until).collect();
    assert!(!placed.is_empty(), "no request placed in the window");
    placed.iter().filter(|r| is_success(r)).count() as f64 / placed.len() as f64
}

/// Latencies in ms of requests placed in `[from, until)` and answered,
/// sorted.
fn latencies_between(requests: &[Request], from: SimTime, until: SimTime) -> Vec<f64> {
    let mut latencies: Vec<f64> = requests
        .iter()
        .filter(|r| r.placed_at >= from && r.placed_at < until)
        .filter(|r| matches!(r.outcome, RequestOutcome::Answered(_)))
        .map(|r| (r.ended_at.unwrap() - r.placed_at).as_millis_f64())
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn baseline_holds_every_invariant_and_latency_is_the_sum_of_hops() {
    // Goal: at moderate load with no faults every order is answered, every
    // invariant holds, and a completed order takes the sum of its hops.
    // 10% of cards are declined, so the refusal path (release, cancel) runs
    // too.
    let mut scenario = scenario("baseline", 50.0, secs(10));
    scenario.workload.decline_rate = 0.1;
    let (observed, outcome) = run(&scenario, 1);
    assert_all_invariants_hold(&outcome);
    assert!(outcome.availability >= 0.99, "availability {}", outcome.availability);
    let expected = Hops::defaults().end_to_end();
    assert_eq!(expected, 91.0, "the model's hops add up to 91 ms");
    let completed: Vec<f64> = {
        let mut latencies: Vec<f64> = observed
            .requests
            .iter()
            .filter(|r| r.outcome == RequestOutcome::Answered(Answer::Completed))
            .map(|r| (r.ended_at.unwrap() - r.placed_at).as_millis_f64())
            .collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    };
    let p50 = percentile(&completed, 0.5);
    let p99 = percentile(&completed, 0.99);
    assert!((p50 - expected).abs() <= 0.05 * expected, "p50 {p50} ms, expected ≈ {expected} ms");
    assert!(p99 <= 1.1 * expected, "p99 {p99} ms: CPU queueing adds little at this load");
    let declined = observed
        .orders
        .values()
        .filter(|status| **status == OrderStatus::Cancelled(CancelReason::PaymentDeclined))
        .count() as u64;
    assert!(declined > 0, "some cards were declined");
    // A declined card: release the reservation, cancel the order.
    assert_eq!(outcome.compensations, 2 * declined);
    assert_eq!(observed.stock_final.reserved, 0, "every declined order's stock went back");
}

#[test]
fn a_shared_database_serves_all_four_services() {
    // Goal: with `shared_database` one database node holds every table and
    // the flow is unchanged at moderate load (its 10 sessions are not yet
    // the bottleneck).
    let mut scenario = scenario("shared-database", 50.0, secs(5));
    scenario.microlith.shared_database = true;
    let world = MicrolithWorld::build(&scenario, Seed(1), &mut Hooks::default());
    assert_eq!(world.databases().len(), 1);
    let (_, outcome) = run(&scenario, 1);
    assert_all_invariants_hold(&outcome);
    assert!(outcome.availability >= 0.99);
    let expected = Hops::defaults().end_to_end();
    assert!((outcome.latency_ms.p50 - expected).abs() <= 0.05 * expected);
}

#[test]
fn the_same_seed_gives_the_same_trace_and_another_seed_another() {
    // Goal: a run is a function of its seed, faults included.
    let mut scenario = scenario("determinism", 50.0, secs(5));
    scenario.faults.push(fault(2, Some(3), crash("payments")));
    let (_, first) = run(&scenario, 7);
    let (_, again) = run(&scenario, 7);
    let (_, other) = run(&scenario, 8);
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first, again);
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn lesson_1_a_slow_gateway_holds_every_orders_thread_hostage() {
    // Goal (lesson 1): at 100 orders/s with 20 Orders threads, latency is
    // the sum of the hops while the gateway answers in 50 ms; once the
    // links into it add 450 ms (t = 30 s), Orders' threads all wait on
    // Payments, throughput caps at pool ÷ holding time, the wait line fills
    // and new orders are turned away, while Inventory and Shipping idle.
    // Method: step the world, looking at the pools mid-run.
    let mut scenario = scenario("slow-gateway", 100.0, secs(60));
    scenario.faults.push(fault(30, None, slow_gateway_links(ms(450))));
    let threads = scenario.microlith.threads;
    assert_eq!(threads, 20);
    let mut world = MicrolithWorld::build(&scenario, Seed(1), &mut Hooks::default());
    let pool = |world: &MicrolithWorld, kind| world.sim().resource(world.service(kind).threads);

    world.sim_mut().run_until(at_s(30.0));
    let before: Vec<f64> =
        [ServiceKind::Orders, ServiceKind::Inventory, ServiceKind::Shipping, ServiceKind::Payments]
            .map(|kind| pool(&world, kind).mean_in_use)
            .to_vec();
    assert_eq!(pool(&world, ServiceKind::Orders).rejected, 0);

    world.sim_mut().run_until(at_s(45.0));
    let blocked = world.threads_blocked_on(ServiceKind::Orders);
    let orders_pool = pool(&world, ServiceKind::Orders);
    assert_eq!(orders_pool.in_use, threads, "every Orders thread is taken");
    assert!(blocked.get("payments").copied().unwrap_or(0) >= 18, "blocked on: {blocked:?}");
    let line = THREAD_QUEUE_PER_THREAD * threads;
    assert!(orders_pool.waiting as u32 >= line * 9 / 10, "the wait line is full: {orders_pool:?}");
    assert!(orders_pool.rejected > 0, "orders are turned away");

    world.sim_mut().run_until(at_s(60.0));
    // Mean threads in use over [30 s, 60 s), from the means since zero.
    let slow_window_mean =
        |kind, before: f64| (pool(&world, kind).mean_in_use * 60.0 - before * 30.0) / 30.0;
    let orders_busy = slow_window_mean(ServiceKind::Orders, before[0]);
    let inventory_busy = slow_window_mean(ServiceKind::Inventory, before[1]);
    let shipping_busy = slow_window_mean(ServiceKind::Shipping, before[2]);
    assert!(orders_busy >= 0.95 * f64::from(threads), "Orders busy {orders_busy:.1}");
    assert!(inventory_busy < 1.0 && shipping_busy < 1.5, "{inventory_busy:.2} {shipping_busy:.2}");
    world.sim_mut().run_until(SimTime::ZERO + scenario.duration + scenario.drain);
    let observed = world.observe();
    let requests = &observed.requests;

    // Before: the sum of the hops.
    let fast = Hops::defaults();
    let latencies = latencies_between(requests, at_s(5.0), at_s(29.0));
    let p50 = percentile(&latencies, 0.5);
    assert!((p50 - fast.end_to_end()).abs() <= 0.05 * fast.end_to_end(), "p50 before {p50}");
    assert!(availability_between(requests, at_s(5.0), at_s(29.0)) >= 0.99);

    // After: pool ÷ holding time. Completions per second over 35..60 s,
    // counted when the customer heard of them.
    let slow = Hops { gateway_links_extra: 450.0, ..Hops::defaults() };
    let holding_s = slow.orders_thread_holding() / 1000.0;
    let predicted = f64::from(threads) / holding_s;
    let completed = requests
        .iter()
        .filter(|r| r.outcome == RequestOutcome::Answered(Answer::Completed))
        .filter(|r| (at_s(35.0)..at_s(60.0)).contains(&r.ended_at.unwrap()))
        .count();
    let measured = completed as f64 / 25.0;
    assert!(
        (measured - predicted).abs() <= 0.1 * predicted,
        "measured {measured:.1}/s, predicted {threads} / {holding_s:.3} s = {predicted:.1}/s"
    );
    assert!((measured - 39.0).abs() <= 0.1 * 39.0, "lesson 1 answer key: ≈ 39/s ± 10%");
    let availability_after = availability_between(requests, at_s(35.0), at_s(60.0));
    assert!(availability_after < 0.5, "availability after {availability_after:.2}");
    let latencies = latencies_between(requests, at_s(35.0), at_s(60.0));
    let p99_after = percentile(&latencies, 0.99);
    assert!(p99_after > 10.0 * fast.end_to_end(), "queued orders wait: p99 {p99_after} ms");
    // The fault reports what it touched.
    let slowed = observed.faults_fired.iter().map(|f| f.touched.messages_delayed).sum::<u64>();
    assert!(slowed > 0);
}

#[test]
fn a_crashed_payments_node_makes_the_whole_flow_unavailable_while_it_is_down() {
    // Goal: a single instance per service means a crashed Payments takes
    // the order flow down with it: from the crash until shortly before the
    // restart no order succeeds, although Orders, Inventory and Shipping
    // run. Afterwards it recovers, with an empty Payments.
    let mut scenario = scenario("payments-crash", 50.0, secs(20));
    scenario.faults.push(fault(5, Some(10), crash("payments")));
    let (observed, outcome) = run(&scenario, 1);
    let requests = &observed.requests;
    assert!(availability_between(requests, at_s(0.0), at_s(4.5)) >= 0.99);
    // While Payments is down (after the orders already past it at the
    // crash have finished) no customer hears a successful answer.
    let successes_while_down = requests
        .iter()
        .filter(|r| is_success(r))
        .filter(|r| (at_s(5.1)..at_s(10.0)).contains(&r.ended_at.unwrap()))
        .count();
    assert_eq!(successes_while_down, 0);
    assert_eq!(availability_between(requests, at_s(5.0), at_s(6.0)), 0.0);
    assert!(availability_between(requests, at_s(12.0), at_s(20.0)) >= 0.99);
    assert_eq!(outcome.restarts, 1);
    let cancelled_payment_failed = observed
        .orders
        .values()
        .filter(|status| **status == OrderStatus::Cancelled(CancelReason::PaymentFailed))
        .count();
    assert!(cancelled_payment_failed > 0, "orders whose payment call timed out are cancelled");
    // Orders' threads waited out the call timeout for each of them, so the
    // wait line overflowed too.
    assert!(
        observed.requests.iter().any(|r| r.outcome == RequestOutcome::Answered(Answer::Failed))
    );
    assert!(verdict(&outcome, "no_lost_orders").held);
    assert!(verdict(&outcome, "stock_conserved").held);
}

#[test]
fn a_gateway_slower_than_the_call_timeout_charges_cards_nobody_refunds() {
    // Goal: the microlith has no saga. When the gateway answers after the
    // 1 s call timeout, Payments and Orders give up, Orders cancels the
    // order (PaymentFailed) and answers Failed, but the gateway still
    // charges the card, and nobody refunds it: money is not conserved.
    let mut scenario = scenario("gateway-beyond-timeout", 20.0, secs(10));
    scenario.faults.push(fault(3, Some(6), slow_gateway_links(ms(1_500))));
    assert!(scenario.microlith.call_timeout < ms(1_500));
    let (observed, outcome) = run(&scenario, 1);
    let money = verdict(&outcome, "money_conserved");
    assert!(!money.held, "{money:?}");
    assert!(money.detail.contains("owed 0"), "charged for a cancelled order: {}", money.detail);
    let charged_but_cancelled = observed
        .payments
        .charged()
        .keys()
        .filter(|order| {
            observed.orders.get(order) == Some(&OrderStatus::Cancelled(CancelReason::PaymentFailed))
        })
        .count();
    assert!(charged_but_cancelled >= 40, "≈ 20/s for 3 s: {charged_but_cancelled}");
    assert!(observed.payments.refunded().is_empty(), "a microlith never refunds");
    // Everything else holds: stock stays accounted for (the reservations
    // of these orders are simply never released).
    assert!(verdict(&outcome, "stock_conserved").held);
    assert!(verdict(&outcome, "no_lost_orders").held);
    assert!(observed.stock_final.reserved > 0, "reservations nobody released");
    assert!(invariants::check(&observed).iter().filter(|v| !v.held).count() == 1);
}

#[test]
fn every_fault_fires_and_touches_something() {
    // Goal: each kind of scenario fault finds its nodes in the microlith
    // and changes something there; databases keep what they confirmed
    // across a crash.
    let mut scenario = scenario("faults", 30.0, secs(16));
    scenario.faults = vec![
        fault(2, Some(3), crash("payments")),
        fault(5, Some(6), crash("database")),
        fault(
            8,
            Some(9),
            FaultAction::Partition {
                side_a: vec!["orders".to_string()],
                side_b: vec!["inventory".to_string()],
            },
        ),
        fault(10, Some(11), slow_gateway_links(ms(200))),
        fault(
            12,
            Some(13),
            FaultAction::ClockStep { role: "orders".to_string(), delta_ns: 50_000_000 },
        ),
    ];
    let (observed, outcome) = run(&scenario, 3);
    assert!(observed.faults_not_applicable.is_empty(), "{:?}", observed.faults_not_applicable);
    assert!(
        observed.faults_fired.iter().all(|fired| fired.applied),
        "{:#?}",
        observed.faults_fired
    );
    // Crashes stop processes, restarts start them, the partition drops
    // messages, the clock step moves timers. Undoing a partition or a
    // slow link changes nothing by itself.
    for fired in &observed.faults_fired {
        let counted_below = matches!(
            fired.fault,
            Fault::DegradeLink { .. } | Fault::Heal { .. } | Fault::RestoreLink { .. }
        );
        assert!(counted_below || !fired.touched.is_nothing(), "{fired:?} touched nothing");
    }
    // The slow-links fault degrades every link into the gateway; the one
    // from Payments carried the charges.
    let delayed: u64 = observed.faults_fired.iter().map(|f| f.touched.messages_delayed).sum();
    assert!(delayed > 0);
    // One payments node and four database nodes came back.
    assert_eq!(outcome.restarts, 5);
    // Every order a customer saw completed is completed in the system of
    // record, crash of its database or not.
    for request in &observed.requests {
        if request.outcome == RequestOutcome::Answered(Answer::Completed) {
            assert_eq!(observed.orders.get(&request.order), Some(&OrderStatus::Completed));
        }
    }
}

#[test]
fn a_database_down_at_the_end_is_read_from_its_durable_log() {
    // Goal: the Orders database crashes for good at t = 3 s; the run
    // reports what its write-ahead log holds: every order completed before
    // the crash, and the orders caught mid-flight left `Created` (lost).
    let mut scenario = scenario("database-down", 30.0, secs(5));
    scenario.faults.push(fault(3, None, crash("database")));
    let (observed, outcome) = run(&scenario, 1);
    let completed_before = observed
        .requests
        .iter()
        .filter(|r| r.outcome == RequestOutcome::Answered(Answer::Completed))
        .count();
    assert!(completed_before > 50, "about 3 s × 30/s completed: {completed_before}");
    for request in &observed.requests {
        if request.outcome == RequestOutcome::Answered(Answer::Completed) {
            assert_eq!(observed.orders.get(&request.order), Some(&OrderStatus::Completed));
        }
    }
    assert!(!verdict(&outcome, "no_lost_orders").held, "orders in flight at the crash");
}
