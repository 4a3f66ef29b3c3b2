use super::*;
use crate::dist::Dist;
use crate::ids::ProcessId;
use crate::net::LinkConfig;
use crate::process::Process;
use crate::rng::{Purpose, Seed};
use crate::time::SimTime;
use crate::trace::{MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn policy(max_attempts: u32, base: SimDuration, max: SimDuration, multiplier: f64) -> RetryPolicy {
    RetryPolicy::new(RetryConfig { max_attempts, base_delay: base, max_delay: max, multiplier })
        .unwrap()
}

fn budget(window: SimDuration, bucket_count: u32, ratio_percent: u32, min: u32) -> RetryBudget {
    RetryBudget::new(RetryBudgetConfig { window, bucket_count, ratio_percent, min_retries: min })
        .unwrap()
}

// ---------------------------------------------------------------------------
// Configuration

#[test]
fn bad_retry_configs_are_rejected_naming_the_field() {
    // Goal: each invalid retry setting fails validation with its field named.
    let good =
        RetryConfig { max_attempts: 3, base_delay: ms(10), max_delay: ms(100), multiplier: 2.0 };
    assert!(RetryPolicy::new(good.clone()).is_ok());
    let field = |config: RetryConfig| RetryPolicy::new(config).unwrap_err().field;
    assert_eq!(field(RetryConfig { max_attempts: 0, ..good.clone() }), "retry.max_attempts");
    assert_eq!(field(RetryConfig { multiplier: 0.5, ..good.clone() }), "retry.multiplier");
    assert_eq!(field(RetryConfig { multiplier: f64::NAN, ..good.clone() }), "retry.multiplier");
    assert_eq!(field(RetryConfig { base_delay: ms(200), ..good.clone() }), "retry.base_delay");
    assert_eq!(
        field(RetryConfig { base_delay: SimDuration::ZERO, ..good.clone() }),
        "retry.base_delay"
    );
    let error = RetryPolicy::new(RetryConfig { base_delay: ms(200), ..good }).unwrap_err();
    assert_eq!(
        error.to_string(),
        "retry.base_delay = 200ms: expected at most retry.max_delay (100ms)"
    );
}

#[test]
fn bad_budget_deadline_and_deduplicator_configs_are_rejected_naming_the_field() {
    // Goal: the other retry building blocks validate their settings too.
    let good = RetryBudgetConfig {
        window: SimDuration::from_secs(10),
        bucket_count: 10,
        ratio_percent: 20,
        min_retries: 1,
    };
    let field = |config: RetryBudgetConfig| RetryBudget::new(config).unwrap_err().field;
    assert_eq!(
        field(RetryBudgetConfig { window: SimDuration::ZERO, ..good.clone() }),
        "retry_budget.window"
    );
    assert_eq!(
        field(RetryBudgetConfig { bucket_count: 0, ..good.clone() }),
        "retry_budget.bucket_count"
    );
    assert_eq!(
        field(RetryBudgetConfig { ratio_percent: 150, ..good.clone() }),
        "retry_budget.ratio_percent"
    );
    let deadline = |timeout, max_outstanding| {
        Deadlines::new(DeadlineConfig { timeout, max_outstanding }).unwrap_err().field
    };
    assert_eq!(deadline(SimDuration::ZERO, 10), "deadlines.timeout");
    assert_eq!(deadline(ms(5), 0), "deadlines.max_outstanding");
    assert_eq!(Deduplicator::<u64>::new(0).unwrap_err().field, "deduplicator.capacity");
}

// ---------------------------------------------------------------------------
// Backoff

#[test]
fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
    // Goal: the ceiling sequence of a doubling policy, by hand.
    let policy = policy(10, ms(100), ms(1_000), 2.0);
    let ceilings: Vec<u64> =
        (0..6).map(|k| policy.backoff_ceiling(k).as_nanos() / 1_000_000).collect();
    assert_eq!(ceilings, vec![100, 200, 400, 800, 1_000, 1_000]);
    // A huge retry number saturates at the cap instead of overflowing.
    assert_eq!(policy.backoff_ceiling(u32::MAX), ms(1_000));
}

#[test]
fn full_jitter_spreads_delays_over_the_whole_interval() {
    // Goal: delays are uniform over 0..=ceiling: both halves are hit, and
    // the mean is near half the ceiling.
    let policy = policy(10, ms(100), ms(1_000), 2.0);
    let mut stream = Stream::new(Seed(3), Purpose::Process(0));
    let delays: Vec<u64> = (0..2_000).map(|_| policy.backoff(2, &mut stream).as_nanos()).collect();
    let ceiling = ms(400).as_nanos();
    assert!(delays.iter().all(|&delay| delay <= ceiling));
    assert!(delays.iter().any(|&delay| delay < ceiling / 10));
    assert!(delays.iter().any(|&delay| delay > ceiling * 9 / 10));
    let mean = delays.iter().sum::<u64>() / delays.len() as u64;
    assert!((ceiling * 45 / 100..ceiling * 55 / 100).contains(&mean), "mean {mean}");
}

#[test]
fn next_delay_stops_after_max_attempts() {
    // Goal: max_attempts counts the first attempt: 3 attempts mean 2 retries.
    let policy = policy(3, ms(10), ms(100), 2.0);
    let mut stream = Stream::new(Seed(1), Purpose::Process(0));
    assert!(policy.next_delay(1, &mut stream).is_some());
    assert!(policy.next_delay(2, &mut stream).is_some());
    assert_eq!(policy.next_delay(3, &mut stream), None);
}

proptest! {
    /// Law: backoff never exceeds its cap, and its upper bound starts at
    /// the base and grows geometrically (by the multiplier, to within
    /// rounding) until it reaches the cap, where it stays.
    #[test]
    fn backoff_never_exceeds_its_cap_and_its_bound_grows_geometrically_until_the_cap(
        // Tiny bases and caps are where off-by-one errors in the jitter
        // or the cap show; large ones are where rounding and overflow do.
        base in prop_oneof![1u64..4, 1u64..1_000_000_000],
        cap_factor in prop_oneof![1u64..4, 1u64..10_000],
        multiplier in prop_oneof![Just(1.0), Just(2.0), 1.0f64..10.0],
        seed in any::<u64>(),
    ) {
        let base = SimDuration::from_nanos(base);
        let cap = SimDuration::from_nanos(base.as_nanos() * cap_factor);
        let policy = policy(u32::MAX, base, cap, multiplier);
        let mut stream = Stream::new(Seed(seed), Purpose::Process(0));
        prop_assert_eq!(policy.backoff_ceiling(0), base);
        for retry in 0..200u32 {
            let ceiling = policy.backoff_ceiling(retry);
            let next = policy.backoff_ceiling(retry + 1);
            prop_assert!(ceiling <= cap);
            prop_assert!(policy.backoff(retry, &mut stream) <= ceiling);
            prop_assert!(next >= ceiling, "the bound shrank at retry {}", retry);
            if ceiling == cap {
                prop_assert_eq!(next, cap);
            } else if next < cap {
                let expected = ceiling.as_nanos() as f64 * multiplier;
                let tolerance = 1.0 + expected * 1e-9 + multiplier;
                prop_assert!(
                    (next.as_nanos() as f64 - expected).abs() <= tolerance,
                    "retry {}: {} after {}, expected about {}", retry, next, ceiling, expected
                );
            } else {
                // It reached the cap because growing would have passed it.
                prop_assert!(ceiling.as_nanos() as f64 * multiplier >= cap.as_nanos() as f64 - 1.0 - multiplier);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Retry budget

#[test]
fn budget_allows_a_ratio_of_requests_plus_a_floor_and_forgets_old_buckets() {
    // Goal: 20% of 10 requests is 2 retries, plus the floor of 1; a window
    // later the requests are forgotten and only the floor remains.
    let mut budget = budget(SimDuration::from_secs(10), 10, 20, 1);
    for _ in 0..10 {
        budget.record_request(LocalTime(0));
    }
    let granted = (0..10).filter(|_| budget.try_retry(LocalTime(0))).count();
    assert_eq!(granted, 3);
    assert_eq!(budget.counts(LocalTime(0)), BudgetCounts { requests: 10, retries: 3 });
    // 9.999 s later the first bucket is still in the window.
    assert!(!budget.try_retry(LocalTime(9_999_000_000)));
    // At 10 s it has slid out: only the floor allows a retry.
    assert!(budget.try_retry(LocalTime(10_000_000_000)));
    assert!(!budget.try_retry(LocalTime(10_000_000_000)));
    assert_eq!(budget.counts(LocalTime(10_000_000_000)), BudgetCounts { requests: 0, retries: 1 });
}

#[test]
fn budget_keeps_counting_in_its_newest_bucket_when_the_clock_steps_back() {
    // Goal: a backward clock step does not reopen old buckets (which would
    // double-count) nor lose the current ones.
    let mut budget = budget(SimDuration::from_secs(10), 10, 100, 0);
    budget.record_request(LocalTime(5_000_000_000));
    assert!(budget.try_retry(LocalTime(-3_000_000_000)));
    assert_eq!(budget.counts(LocalTime(-3_000_000_000)), BudgetCounts { requests: 1, retries: 1 });
    assert!(!budget.try_retry(LocalTime(5_500_000_000)));
}

#[derive(Clone, Debug)]
enum BudgetOp {
    Advance(u64),
    Request,
    Retry,
}

fn budget_ops() -> impl Strategy<Value = Vec<BudgetOp>> {
    // Mostly requests and retries, with advances of up to half a window so
    // that buckets slide out while others are still counted.
    prop::collection::vec(
        prop_oneof![
            1 => (0u64..5_000).prop_map(BudgetOp::Advance),
            3 => Just(BudgetOp::Request),
            4 => Just(BudgetOp::Retry),
        ],
        1..400,
    )
}

proptest! {
    /// Law: at every retry it grants, the budget's window (the current
    /// bucket and the ones before it, `window` long) holds no more retries
    /// than ratio × requests + minimum, counted from the full history by a
    /// reference model; and it denies a retry only when granting it would
    /// break that bound.
    #[test]
    fn budget_never_allows_more_retries_than_ratio_times_requests_plus_minimum_in_its_window(
        bucket_count in 1u32..12,
        ratio_percent in 0u32..=100,
        min_retries in 0u32..5,
        ops in budget_ops(),
    ) {
        // Time in ms; the window is 10 s.
        let window_ms = 10_000u64;
        let mut budget = budget(ms(window_ms), bucket_count, ratio_percent, min_retries);
        let width = budget.bucket_width().as_nanos() as i64;
        let mut now = 0i64;
        // (bucket index, is_retry) of every request and granted retry.
        let mut history: Vec<(i64, bool)> = Vec::new();
        for op in ops {
            match op {
                BudgetOp::Advance(step_ms) => now += step_ms as i64 * 1_000_000,
                BudgetOp::Request => {
                    budget.record_request(LocalTime(now));
                    history.push((now.div_euclid(width), false));
                }
                BudgetOp::Retry => {
                    let bucket = now.div_euclid(width);
                    let oldest = bucket - i64::from(bucket_count) + 1;
                    let in_window = |retry: bool| {
                        history.iter().filter(|(index, is_retry)| *index >= oldest && *is_retry == retry).count() as u64
                    };
                    let (requests, retries) = (in_window(false), in_window(true));
                    let bound = u64::from(ratio_percent) * requests + u64::from(min_retries) * 100;
                    if budget.try_retry(LocalTime(now)) {
                        history.push((bucket, true));
                        prop_assert!(
                            (retries + 1) * 100 <= bound,
                            "granted retry {} with {} requests in the window", retries + 1, requests
                        );
                    } else {
                        prop_assert!((retries + 1) * 100 > bound, "denied a retry the bound allows");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Deduplicator

#[test]
fn deduplicator_replays_completed_drops_in_progress_and_evicts_the_oldest() {
    // Goal: the three answers, and eviction in arrival order.
    let mut dedup = Deduplicator::<&str>::new(2).unwrap();
    assert_eq!(dedup.begin(1), Seen::New { evicted: None });
    assert_eq!(dedup.begin(1), Seen::InProgress);
    assert!(dedup.complete(1, "one"));
    assert_eq!(dedup.begin(1), Seen::Completed("one"));
    assert_eq!(dedup.begin(2), Seen::New { evicted: None });
    assert_eq!(dedup.begin(3), Seen::New { evicted: Some(1) });
    assert_eq!(dedup.len(), 2);
    // Key 1 was forgotten: a late duplicate looks new (the documented limit).
    assert_eq!(dedup.begin(1), Seen::New { evicted: Some(2) });
    // Completing a forgotten key caches nothing.
    assert!(!dedup.complete(2, "two"));
}

proptest! {
    /// Law: the deduplicator never remembers more than its capacity, and it
    /// recognises every key among the last `capacity` distinct keys it saw.
    #[test]
    fn deduplicator_memory_is_bounded_and_recent_keys_are_recognised(
        capacity in 1usize..8,
        keys in prop::collection::vec(0u64..20, 1..200),
    ) {
        let mut dedup = Deduplicator::<u64>::new(capacity).unwrap();
        // Distinct keys admitted as new, most recent last.
        let mut recent: Vec<u64> = Vec::new();
        for key in keys {
            let remembered = recent.iter().rev().take(capacity).any(|&k| k == key);
            match dedup.begin(key) {
                Seen::New { .. } => {
                    prop_assert!(!remembered, "key {} was recent but looked new", key);
                    recent.push(key);
                    dedup.complete(key, key * 10);
                }
                Seen::Completed(response) => {
                    prop_assert!(remembered);
                    prop_assert_eq!(response, key * 10);
                }
                Seen::InProgress => prop_assert!(false, "every key was completed"),
            }
            prop_assert!(dedup.len() <= capacity);
        }
    }
}

// ---------------------------------------------------------------------------
// In a simulation: a retrying client over a lossy, duplicating link

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    /// Charge the customer for order `key` (the idempotency key).
    ChargeCustomer { key: u64 },
    /// The charge for `key` went through with this receipt.
    CustomerCharged { key: u64, receipt: u64 },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::ChargeCustomer { .. } => "ChargeCustomer",
            Msg::CustomerCharged { .. } => "CustomerCharged",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::ChargeCustomer { key } => *key,
            Msg::CustomerCharged { key, receipt } => key ^ receipt.rotate_left(17),
        }
    }
}

const SEND_NEXT: u64 = u64::MAX;

/// Sends `request_count` charges, one every 5 ms, each retried on timeout
/// with backoff under a budget until it is answered or given up.
struct Client {
    server: ProcessId,
    request_count: u64,
    next: u64,
    deadlines: Deadlines,
    policy: RetryPolicy,
    budget: RetryBudget,
    attempts: BTreeMap<u64, u32>,
    answered: BTreeSet<u64>,
    abandoned: BTreeSet<u64>,
}

impl Client {
    fn new(server: ProcessId, request_count: u64) -> Client {
        Client {
            server,
            request_count,
            next: 0,
            deadlines: Deadlines::new(DeadlineConfig { timeout: ms(60), max_outstanding: 64 })
                .unwrap(),
            policy: policy(30, ms(10), ms(200), 2.0),
            budget: budget(SimDuration::from_secs(1), 10, 100, 50),
            attempts: BTreeMap::new(),
            answered: BTreeSet::new(),
            abandoned: BTreeSet::new(),
        }
    }

    fn attempt(&mut self, ctx: &mut Ctx<'_, Msg>, key: u64) {
        *self.attempts.entry(key).or_default() += 1;
        self.deadlines.start(ctx, key).expect("at most 64 charges are outstanding");
        ctx.send(self.server, Msg::ChargeCustomer { key });
    }
}

impl Process<Msg> for Client {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(ms(5), SEND_NEXT);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        if let Msg::CustomerCharged { key, .. } = message
            && self.deadlines.complete(ctx, key).is_some()
        {
            self.answered.insert(key);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        if let Some(key) = self.deadlines.on_timer(ctx, timer) {
            let attempts = self.attempts[&key];
            match self.policy.schedule_retry(ctx, Some(&mut self.budget), key, attempts) {
                RetryOutcome::Scheduled { .. } => {}
                RetryOutcome::AttemptsExhausted | RetryOutcome::BudgetExhausted => {
                    self.abandoned.insert(key);
                }
            }
        } else if tag == SEND_NEXT {
            let key = self.next;
            self.next += 1;
            self.budget.record_request(ctx.now_local());
            self.attempt(ctx, key);
            if self.next < self.request_count {
                ctx.set_timer(ms(5), SEND_NEXT);
            }
        } else {
            // A retry timer, tagged with its key.
            self.attempt(ctx, tag);
        }
    }
}

/// Charges customers; with a deduplicator it charges each key once and
/// replays the receipt to duplicates.
struct Server {
    dedup: Option<Deduplicator<u64>>,
    charges: BTreeMap<u64, u32>,
    arrivals: BTreeMap<u64, u32>,
}

impl Server {
    fn charge(&mut self, ctx: &mut Ctx<'_, Msg>, key: u64) -> u64 {
        *self.charges.entry(key).or_default() += 1;
        ctx.record("CustomerCharged", key);
        key * 1_000 + 7
    }
}

impl Process<Msg> for Server {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        let Msg::ChargeCustomer { key } = message else { return };
        *self.arrivals.entry(key).or_default() += 1;
        let receipt = match self.dedup.as_mut().map(|dedup| dedup.admit(ctx, key)) {
            None | Some(Seen::New { .. }) => {
                let receipt = self.charge(ctx, key);
                if let Some(dedup) = self.dedup.as_mut() {
                    dedup.complete(key, receipt);
                }
                receipt
            }
            Some(Seen::Completed(receipt)) => receipt,
            Some(Seen::InProgress) => return,
        };
        ctx.send(from, Msg::CustomerCharged { key, receipt });
    }
}

struct LossyRun {
    sim: Sim<Msg>,
    client: ProcessId,
    server: ProcessId,
    trace: Rc<RefCell<MemorySink>>,
}

fn run_lossy(
    seed: u64,
    loss: f64,
    duplicate: f64,
    deduplicate: bool,
    request_count: u64,
) -> LossyRun {
    let mut sim = Sim::new(SimConfig::new(Seed(seed)));
    let trace = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(trace.clone()));
    sim.set_default_link(LinkConfig {
        loss,
        duplicate,
        ..LinkConfig::with_latency(Dist::uniform(ms(1), ms(25)))
    });
    let client_node = sim.add_node(NodeConfig::new("client"));
    let server_node = sim.add_node(NodeConfig::new("server"));
    let server = sim.spawn(server_node, "payments", move || Server {
        // Capacity covers every key of the run, so no key is forgotten.
        dedup: deduplicate.then(|| Deduplicator::new(256).unwrap()),
        charges: BTreeMap::new(),
        arrivals: BTreeMap::new(),
    });
    let client = sim.spawn(client_node, "orders", move || Client::new(server, request_count));
    sim.run_until(SimTime::from_nanos(SimDuration::from_secs(60).as_nanos()));
    LossyRun { sim, client, server, trace }
}

fn kinds(trace: &RefCell<MemorySink>) -> BTreeSet<&'static str> {
    trace
        .borrow()
        .records
        .iter()
        .filter_map(|record| match record.event {
            TraceEvent::Component { component: Component::Retry, kind, .. } => Some(kind),
            _ => None,
        })
        .collect()
}

#[test]
fn retries_with_idempotency_keys_charge_each_order_once_over_a_bad_link() {
    // Goal: a fixed story: 30% loss and 30% duplication each way; every
    // charge is answered, each executed exactly once, and the trace shows
    // timeouts, retries and replayed duplicates.
    let run = run_lossy(11, 0.3, 0.3, true, 100);
    let client = run.sim.process_state::<Client>(run.client).unwrap();
    let server = run.sim.process_state::<Server>(run.server).unwrap();
    assert_eq!(client.answered.len(), 100);
    assert!(client.abandoned.is_empty());
    assert!(server.charges.values().all(|&count| count == 1));
    assert_eq!(server.charges.len(), 100);
    assert!(server.arrivals.values().any(|&count| count > 1), "duplicates did arrive");
    let kinds = kinds(&run.trace);
    for kind in [
        "deadline_set",
        "timed_out",
        "retry_scheduled",
        "replied",
        "accepted",
        "duplicate_replayed",
    ] {
        assert!(kinds.contains(kind), "no {kind} in the trace: {kinds:?}");
    }
    assert!(run.sim.metrics().counter("retry.scheduled") > 0);
    assert!(run.sim.metrics().counter("dedup.duplicates") > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Law: at-least-once redelivery plus idempotency keys gives
    /// effectively-once side effects. Whatever the seed, loss and
    /// duplication rates, every request that reached the server was charged
    /// exactly once, and every request the client saw answered was charged.
    #[test]
    fn at_least_once_redelivery_plus_idempotency_keys_gives_effectively_once_side_effects(
        seed in any::<u64>(),
        loss in 0.0f64..0.4,
        duplicate in 0.0f64..0.6,
    ) {
        let run = run_lossy(seed, loss, duplicate, true, 40);
        let client = run.sim.process_state::<Client>(run.client).unwrap();
        let server = run.sim.process_state::<Server>(run.server).unwrap();
        for (key, arrivals) in &server.arrivals {
            prop_assert!(*arrivals >= 1);
            prop_assert_eq!(server.charges.get(key), Some(&1), "key {} charged wrongly", key);
        }
        for key in &client.answered {
            prop_assert_eq!(server.charges.get(key), Some(&1));
        }
        prop_assert_eq!(client.answered.len() + client.abandoned.len(), 40);
    }
}

#[test]
fn without_the_deduplicator_some_seed_charges_an_order_twice() {
    // Goal: the protection matters: the same client over the same link,
    // against a server that executes every arrival, double-charges for some
    // seed (in fact for the first one tried).
    let double_charged = (0..20u64).find(|&seed| {
        let run = run_lossy(seed, 0.2, 0.2, false, 40);
        let server = run.sim.process_state::<Server>(run.server).unwrap();
        server.charges.values().any(|&count| count > 1)
    });
    assert_eq!(double_charged, Some(0));
}

#[test]
fn deadlines_refuse_calls_beyond_their_bound_and_discard_late_replies() {
    // Goal: the outstanding-call bound is observable (traced, counted), and
    // a reply after the deadline is discarded, not matched.
    struct Caller {
        deadlines: Deadlines,
        refused: u32,
        timed_out: Vec<u64>,
        late: Vec<u64>,
    }
    impl Process<Msg> for Caller {
        fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
            for call in 0..3 {
                if self.deadlines.start(ctx, call).is_err() {
                    self.refused += 1;
                }
            }
        }
        fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
            if let Msg::CustomerCharged { key, .. } = message
                && self.deadlines.complete(ctx, key).is_none()
            {
                self.late.push(key);
            }
        }
        fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, _tag: u64) {
            self.timed_out.extend(self.deadlines.on_timer(ctx, timer));
        }
    }
    let mut sim = Sim::new(SimConfig::new(Seed(1)));
    let node = sim.add_node(NodeConfig::new("n0"));
    let caller = sim.spawn(node, "caller", || Caller {
        deadlines: Deadlines::new(DeadlineConfig { timeout: ms(10), max_outstanding: 2 }).unwrap(),
        refused: 0,
        timed_out: Vec::new(),
        late: Vec::new(),
    });
    sim.post(
        SimTime::from_nanos(ms(20).as_nanos()),
        caller,
        Msg::CustomerCharged { key: 0, receipt: 0 },
    );
    sim.run();
    let state = sim.process_state::<Caller>(caller).unwrap();
    assert_eq!(state.refused, 1);
    assert_eq!(state.timed_out, vec![0, 1]);
    assert_eq!(state.late, vec![0]);
    assert_eq!(state.deadlines.outstanding(), 0);
    assert_eq!(sim.metrics().counter("deadline.refused"), 1);
    assert_eq!(sim.metrics().counter("deadline.timed_out"), 2);
    assert_eq!(sim.metrics().counter("deadline.reply_discarded"), 1);
}
