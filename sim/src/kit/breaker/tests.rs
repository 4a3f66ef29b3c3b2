use super::*;
use crate::fault::{Fault, FaultSchedule};
use crate::ids::{ProcessId, TimerId};
use crate::kit::retry::{DeadlineConfig, Deadlines};
use crate::net::LinkConfig;
use crate::process::Process;
use crate::rng::Seed;
use crate::time::SimTime;
use crate::trace::{MemorySink, TraceEvent};
use crate::world::{NodeConfig, Sim, SimConfig};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

fn ms(millis: u64) -> SimDuration {
    SimDuration::from_millis(millis)
}

fn at_ms(millis: i64) -> LocalTime {
    LocalTime(millis * 1_000_000)
}

/// The lesson-5 breaker (shared/LESSONS.md): a count window of 20, at
/// least 10 calls, 50% failures, open 5 s, 3 probes.
fn lesson_config() -> BreakerConfig {
    BreakerConfig {
        sliding_window: SlidingWindow::Count { size: 20 },
        minimum_calls: 10,
        failure_rate_threshold_percent: 50,
        open_duration: SimDuration::from_secs(5),
        permitted_half_open_calls: 3,
        ..BreakerConfig::default()
    }
}

fn permit(breaker: &mut Breaker, now: LocalTime) -> Permit {
    match breaker.try_acquire(now) {
        Admission::Permitted(permit) => permit,
        Admission::Rejected => panic!("rejected in {}", breaker.state()),
    }
}

/// Makes `count` calls at `now` that all end the same way after 10 ms;
/// returns the transitions.
fn calls(breaker: &mut Breaker, now: LocalTime, count: u32, failed: bool) -> Vec<Transition> {
    (0..count)
        .filter_map(|_| {
            let permit = permit(breaker, now);
            if failed {
                breaker.on_failure(permit, now, ms(10))
            } else {
                breaker.on_success(permit, now, ms(10))
            }
        })
        .collect()
}

#[test]
fn bad_breaker_configs_are_rejected_naming_the_field() {
    // Goal: each invalid setting fails when the breaker is built, naming
    // the field.
    let good = lesson_config();
    assert!(Breaker::new(good.clone()).is_ok());
    let field = |config: BreakerConfig| Breaker::new(config).unwrap_err().field;
    assert_eq!(
        field(BreakerConfig { sliding_window: SlidingWindow::Count { size: 0 }, ..good.clone() }),
        "breaker.window_size"
    );
    assert_eq!(
        field(BreakerConfig { failure_rate_threshold_percent: 150, ..good.clone() }),
        "breaker.failure_rate_threshold_percent"
    );
    assert_eq!(
        field(BreakerConfig { failure_rate_threshold_percent: 0, ..good.clone() }),
        "breaker.failure_rate_threshold_percent"
    );
    assert_eq!(
        field(BreakerConfig { slow_call_rate_threshold_percent: 101, ..good.clone() }),
        "breaker.slow_call_rate_threshold_percent"
    );
    assert_eq!(
        field(BreakerConfig { open_duration: SimDuration::ZERO, ..good.clone() }),
        "breaker.open_duration"
    );
    assert_eq!(
        field(BreakerConfig { permitted_half_open_calls: 0, ..good.clone() }),
        "breaker.permitted_half_open_calls"
    );
    assert_eq!(field(BreakerConfig { minimum_calls: 21, ..good.clone() }), "breaker.minimum_calls");
    assert_eq!(field(BreakerConfig { minimum_calls: 0, ..good.clone() }), "breaker.minimum_calls");
    assert_eq!(
        field(BreakerConfig { slow_call_duration: SimDuration::ZERO, ..good.clone() }),
        "breaker.slow_call_duration"
    );
    let time = |duration, bucket_count| BreakerConfig {
        sliding_window: SlidingWindow::Time { duration, bucket_count },
        ..good.clone()
    };
    assert_eq!(field(time(SimDuration::ZERO, 10)), "breaker.window_duration");
    assert_eq!(field(time(SimDuration::from_secs(10), 0)), "breaker.bucket_count");
    let error =
        Breaker::new(BreakerConfig { failure_rate_threshold_percent: 150, ..good }).unwrap_err();
    assert_eq!(
        error.to_string(),
        "breaker.failure_rate_threshold_percent = 150%: expected 1% to 100%"
    );
    assert_eq!("time_based".parse::<SlidingWindowKind>(), Ok(SlidingWindowKind::TimeBased));
    assert_eq!(
        "sliding".parse::<SlidingWindowKind>().unwrap_err().field,
        "breaker.sliding_window_kind"
    );
}

#[test]
fn it_waits_for_the_minimum_calls_before_judging_the_failure_rate() {
    // Goal: nine failures out of nine are not enough with a minimum of
    // ten; the tenth opens it, with 100% in the transition.
    let mut breaker = Breaker::new(lesson_config()).unwrap();
    assert!(calls(&mut breaker, at_ms(0), 9, true).is_empty());
    assert_eq!(breaker.state(), BreakerState::Closed);
    let transitions = calls(&mut breaker, at_ms(0), 1, true);
    assert_eq!(
        transitions,
        vec![Transition {
            from: BreakerState::Closed,
            to: BreakerState::Open,
            counts: CallCounts { calls: 10, failures: 10, slow_calls: 0 },
        }]
    );
    assert_eq!(breaker.opened_at(), at_ms(0));
}

#[test]
fn it_opens_when_failures_reach_the_threshold_over_the_last_calls_only() {
    // Goal: the count window forgets old calls: 20 successes then failures
    // open it at exactly 10 failures among the last 20 calls.
    let mut breaker = Breaker::new(lesson_config()).unwrap();
    calls(&mut breaker, at_ms(0), 20, false);
    assert!(calls(&mut breaker, at_ms(0), 9, true).is_empty());
    assert_eq!(
        breaker.window_counts(at_ms(0)),
        CallCounts { calls: 20, failures: 9, slow_calls: 0 }
    );
    let transitions = calls(&mut breaker, at_ms(0), 1, true);
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].counts.failure_rate_percent(), 50);
}

#[test]
fn a_failure_rate_below_the_threshold_never_opens_it() {
    // Goal: one failure in three (33%) under a 50% threshold, for a long
    // time, leaves it closed.
    let mut breaker = Breaker::new(lesson_config()).unwrap();
    for round in 0..100 {
        calls(&mut breaker, at_ms(round), 2, false);
        assert!(calls(&mut breaker, at_ms(round), 1, true).is_empty());
    }
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn slow_calls_open_it_even_when_they_succeed() {
    // Goal: the slow-call rate is a second trigger: 80% of calls slower
    // than 500 ms trips an 80% threshold although none failed.
    let config = BreakerConfig {
        slow_call_duration: ms(500),
        slow_call_rate_threshold_percent: 80,
        ..lesson_config()
    };
    let mut breaker = Breaker::new(config).unwrap();
    calls(&mut breaker, at_ms(0), 2, false);
    let mut transition = None;
    for _ in 0..8 {
        let permit = permit(&mut breaker, at_ms(0));
        transition = breaker.on_success(permit, at_ms(600), ms(600));
    }
    let transition = transition.expect("the eighth slow call trips it");
    assert_eq!(transition.to, BreakerState::Open);
    assert_eq!(transition.counts, CallCounts { calls: 10, failures: 0, slow_calls: 8 });
}

#[test]
fn a_time_window_forgets_failures_older_than_its_duration() {
    // Goal: with a 10 s window in 10 buckets, failures from 10 s ago have
    // slid out, so new failures start counting from zero.
    let config = BreakerConfig {
        sliding_window: SlidingWindow::Time {
            duration: SimDuration::from_secs(10),
            bucket_count: 10,
        },
        ..lesson_config()
    };
    let mut breaker = Breaker::new(config).unwrap();
    calls(&mut breaker, at_ms(0), 9, true);
    assert_eq!(breaker.window_counts(at_ms(9_999)).calls, 9);
    assert_eq!(breaker.window_counts(at_ms(10_000)).calls, 0);
    assert!(calls(&mut breaker, at_ms(10_000), 9, true).is_empty());
    assert_eq!(calls(&mut breaker, at_ms(10_500), 1, true).len(), 1);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[test]
fn half_open_lets_exactly_the_permitted_probes_through_and_closes_when_all_succeed() {
    // Goal: after the open duration, three probes go through and the
    // fourth caller is rejected; three successes close it with an empty
    // window.
    let mut breaker = Breaker::new(lesson_config()).unwrap();
    calls(&mut breaker, at_ms(0), 10, true);
    assert_eq!(breaker.try_acquire(at_ms(4_999)), Admission::Rejected);
    let probes: Vec<Permit> = (0..3).map(|_| permit(&mut breaker, at_ms(5_000))).collect();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.try_acquire(at_ms(5_001)), Admission::Rejected);
    assert_eq!(breaker.on_success(probes[0], at_ms(5_010), ms(10)), None);
    assert_eq!(breaker.on_success(probes[1], at_ms(5_010), ms(10)), None);
    let closed = breaker.on_success(probes[2], at_ms(5_010), ms(10)).unwrap();
    assert_eq!((closed.from, closed.to), (BreakerState::HalfOpen, BreakerState::Closed));
    assert_eq!(closed.counts.calls, 3);
    assert_eq!(breaker.window_counts(at_ms(5_010)), CallCounts::default());
}

#[test]
fn a_failed_probe_reopens_the_breaker_for_another_open_duration() {
    // Goal: the half-open → open transition (coverage mark in
    // `Breaker::on_outcome`): one failed probe reopens it at once, the
    // open duration restarts, and the other probes' late outcomes are
    // ignored.
    let mut breaker = Breaker::new(lesson_config()).unwrap();
    calls(&mut breaker, at_ms(0), 10, true);
    let first = permit(&mut breaker, at_ms(6_000));
    let second = permit(&mut breaker, at_ms(6_000));
    let reopened = breaker.on_failure(first, at_ms(7_000), SimDuration::from_secs(1)).unwrap();
    assert_eq!((reopened.from, reopened.to), (BreakerState::HalfOpen, BreakerState::Open));
    assert_eq!(breaker.opened_at(), at_ms(7_000));
    assert_eq!(breaker.on_success(second, at_ms(7_001), ms(10)), None);
    assert_eq!(breaker.try_acquire(at_ms(11_999)), Admission::Rejected);
    permit(&mut breaker, at_ms(12_000));
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
}

#[test]
fn an_outcome_from_before_a_transition_is_ignored() {
    // Goal: a call permitted while closed that ends after the breaker
    // opened and half-opened cannot close it.
    let mut breaker =
        Breaker::new(BreakerConfig { permitted_half_open_calls: 1, ..lesson_config() }).unwrap();
    let old = permit(&mut breaker, at_ms(0));
    calls(&mut breaker, at_ms(0), 10, true);
    let probe = permit(&mut breaker, at_ms(5_000));
    assert_eq!(breaker.on_success(old, at_ms(5_001), ms(10)), None);
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.on_success(probe, at_ms(5_002), ms(2)).is_some());
    assert_eq!(breaker.state(), BreakerState::Closed);
}

// ---------------------------------------------------------------------------
// Laws

#[derive(Clone, Debug)]
enum Op {
    /// Move the clock on by this many ms.
    Advance(u64),
    /// Ask for a permit.
    Acquire,
    /// Report the outstanding permit at this position (modulo their
    /// number): failed or not, taking this many ms.
    Complete { pick: usize, failed: bool, duration_ms: u64 },
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    // Failures are as likely as successes so that the breaker cycles
    // through all its states; advances are up to a little over the open
    // duration so that half-open is reached often.
    prop::collection::vec(
        prop_oneof![
            2 => (0u64..1_500).prop_map(Op::Advance),
            4 => Just(Op::Acquire),
            4 => (any::<usize>(), any::<bool>(), 0u64..300)
                .prop_map(|(pick, failed, duration_ms)| Op::Complete { pick, failed, duration_ms }),
        ],
        1..300,
    )
}

fn configs() -> impl Strategy<Value = BreakerConfig> {
    let window = prop_oneof![
        (1u32..12).prop_map(|size| SlidingWindow::Count { size }),
        (1u64..5, 1u32..6).prop_map(|(seconds, bucket_count)| SlidingWindow::Time {
            duration: SimDuration::from_secs(seconds),
            bucket_count,
        }),
    ];
    (window, 1u32..12, 1u32..=100, 1u32..=100, 1u64..300, 1u64..1_000, 1u32..4).prop_map(
        |(window, minimum, failure, slow, slow_ms, open_ms, probes)| {
            let minimum = match window {
                SlidingWindow::Count { size } => minimum.min(size),
                SlidingWindow::Time { .. } => minimum,
            };
            BreakerConfig {
                sliding_window: window,
                minimum_calls: minimum,
                failure_rate_threshold_percent: failure,
                slow_call_rate_threshold_percent: slow,
                slow_call_duration: ms(slow_ms),
                open_duration: ms(open_ms),
                permitted_half_open_calls: probes,
            }
        },
    )
}

/// A naive model of the closed window: every outcome since the breaker
/// last closed, as (time in ns, failed, slow); it recounts from scratch.
fn window_counts(config: &BreakerConfig, outcomes: &[(i64, bool, bool)], now: i64) -> CallCounts {
    let in_window: Vec<&(i64, bool, bool)> = match config.sliding_window {
        SlidingWindow::Count { size } => outcomes.iter().rev().take(size as usize).collect(),
        SlidingWindow::Time { duration, bucket_count } => {
            let width = (duration.as_nanos() / u64::from(bucket_count)) as i64;
            let oldest = now.div_euclid(width) - i64::from(bucket_count) + 1;
            outcomes.iter().filter(|(at, _, _)| at.div_euclid(width) >= oldest).collect()
        }
    };
    let mut counts = CallCounts::default();
    for (_, failed, slow) in in_window {
        counts.add(*failed, *slow);
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Laws, over arbitrary outcomes, durations and time advances:
    /// - it never lets a call through while open (before the open duration
    ///   has passed), and in half-open never more than the permitted probes;
    /// - it opens from closed exactly when the window (recounted by a naive
    ///   model) holds at least the minimum calls and a rate at or above its
    ///   threshold;
    /// - it closes only from half-open, after all probes succeeded, and any
    ///   failed or slow probe reopens it.
    #[test]
    fn a_breaker_never_lets_calls_through_while_open_and_opens_and_closes_only_by_its_rules(
        config in configs(),
        ops in ops(),
    ) {
        let mut breaker = Breaker::new(config.clone()).unwrap();
        let mut now = 0i64;
        // The test's own view: which period each permit belongs to, and
        // what the current closed period has recorded.
        let mut period = 0u64;
        let mut outstanding: Vec<(u64, Permit)> = Vec::new();
        let mut closed_outcomes: Vec<(i64, bool, bool)> = Vec::new();
        let mut probes_issued = 0u32;
        let mut probes_succeeded = 0u32;
        for op in ops {
            match op {
                Op::Advance(step) => now += step as i64 * 1_000_000,
                Op::Acquire => {
                    let before = breaker.state();
                    let admission = breaker.try_acquire(LocalTime(now));
                    let after = breaker.state();
                    let open_until = breaker.opened_at().plus(config.open_duration);
                    if before == BreakerState::Open && LocalTime(now) < open_until {
                        prop_assert_eq!(admission, Admission::Rejected, "a call went through while open");
                        prop_assert_eq!(after, BreakerState::Open);
                    }
                    if before != after {
                        prop_assert_eq!((before, after), (BreakerState::Open, BreakerState::HalfOpen));
                        period += 1;
                        probes_issued = 0;
                        probes_succeeded = 0;
                    }
                    if let Admission::Permitted(permit) = admission {
                        prop_assert_ne!(after, BreakerState::Open);
                        if after == BreakerState::HalfOpen {
                            probes_issued += 1;
                            prop_assert!(probes_issued <= config.permitted_half_open_calls);
                        }
                        outstanding.push((period, permit));
                    }
                }
                Op::Complete { pick, failed, duration_ms } => {
                    if outstanding.is_empty() {
                        continue;
                    }
                    let (issued_in, permit) = outstanding.remove(pick % outstanding.len());
                    let duration = ms(duration_ms);
                    let slow = duration >= config.slow_call_duration;
                    let before = breaker.state();
                    let transition = if failed {
                        breaker.on_failure(permit, LocalTime(now), duration)
                    } else {
                        breaker.on_success(permit, LocalTime(now), duration)
                    };
                    let current = issued_in == period;
                    if !current {
                        prop_assert_eq!(transition, None, "a stale outcome changed the state");
                        continue;
                    }
                    match before {
                        BreakerState::Closed => {
                            closed_outcomes.push((now, failed, slow));
                            let counts = window_counts(&config, &closed_outcomes, now);
                            let should_open = counts.calls >= config.minimum_calls
                                && (reaches(counts.failures, counts.calls, config.failure_rate_threshold_percent)
                                    || reaches(counts.slow_calls, counts.calls, config.slow_call_rate_threshold_percent));
                            match transition {
                                Some(transition) => {
                                    prop_assert!(should_open, "opened on {:?}", counts);
                                    prop_assert_eq!(transition.to, BreakerState::Open);
                                    prop_assert_eq!(transition.counts, counts);
                                    period += 1;
                                    closed_outcomes.clear();
                                }
                                None => prop_assert!(!should_open, "stayed closed on {:?}", counts),
                            }
                        }
                        BreakerState::HalfOpen => {
                            if failed || slow {
                                prop_assert_eq!(transition.map(|t| t.to), Some(BreakerState::Open));
                                period += 1;
                            } else {
                                probes_succeeded += 1;
                                if probes_succeeded == config.permitted_half_open_calls {
                                    let transition = transition.expect("all probes succeeded");
                                    prop_assert_eq!(transition.from, BreakerState::HalfOpen);
                                    prop_assert_eq!(transition.to, BreakerState::Closed);
                                    period += 1;
                                } else {
                                    prop_assert_eq!(transition, None);
                                }
                            }
                        }
                        BreakerState::Open => prop_assert!(false, "a current permit while open"),
                    }
                    if let Some(transition) = transition
                        && transition.to == BreakerState::Closed
                    {
                        prop_assert_eq!(transition.from, BreakerState::HalfOpen, "closed from elsewhere");
                    }
                    prop_assert_eq!(breaker.state(), transition.map_or(before, |t| t.to));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// In a simulation: lesson 5, a payment gateway down from 20 s to 40 s

#[derive(Clone, Debug, PartialEq)]
enum Msg {
    AuthorizePayment { call: u64 },
    PaymentAuthorized { call: u64 },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::AuthorizePayment { .. } => "AuthorizePayment",
            Msg::PaymentAuthorized { .. } => "PaymentAuthorized",
        }
    }
    fn digest(&self) -> u64 {
        match self {
            Msg::AuthorizePayment { call } => *call,
            Msg::PaymentAuthorized { call } => !*call,
        }
    }
}

/// Answers every authorisation at once.
struct Gateway;

impl Process<Msg> for Gateway {
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        if let Msg::AuthorizePayment { call } = message {
            ctx.send(from, Msg::PaymentAuthorized { call });
        }
    }
}

const NEXT_PAYMENT: u64 = u64::MAX;

/// Pays for one order every 20 ms (50 per second) until 60 s, with a 1 s
/// timeout, through a breaker if it has one; rejected calls fall back to
/// "payment pending".
struct Payments {
    gateway: ProcessId,
    breaker: Option<Breaker>,
    deadlines: Deadlines,
    permits: BTreeMap<u64, Permit>,
    next: u64,
    /// Local times (ms) at which a call was sent to the gateway.
    sent_at_ms: Vec<i64>,
    pending: u64,
}

impl Process<Msg> for Payments {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(ms(20), NEXT_PAYMENT);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
        let Msg::PaymentAuthorized { call } = message else { return };
        if let Some(elapsed) = self.deadlines.complete(ctx, call)
            && let (Some(breaker), Some(permit)) =
                (self.breaker.as_mut(), self.permits.remove(&call))
        {
            breaker.record_success(ctx, permit, elapsed);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        if let Some(call) = self.deadlines.on_timer(ctx, timer) {
            if let (Some(breaker), Some(permit)) =
                (self.breaker.as_mut(), self.permits.remove(&call))
            {
                breaker.record_failure(ctx, permit, self.deadlines.config().timeout);
            }
            return;
        }
        assert_eq!(tag, NEXT_PAYMENT);
        let call = self.next;
        self.next += 1;
        if ctx.now_local() < at_ms(60_000) {
            ctx.set_timer(ms(20), NEXT_PAYMENT);
        }
        let gateway = self.gateway;
        let (deadlines, sent_at_ms) = (&mut self.deadlines, &mut self.sent_at_ms);
        match self.breaker.as_mut() {
            None => send_payment(ctx, deadlines, sent_at_ms, gateway, call),
            Some(breaker) => breaker.call_or_fallback(
                ctx,
                |ctx, permit| {
                    self.permits.insert(call, permit);
                    send_payment(ctx, deadlines, sent_at_ms, gateway, call);
                },
                |ctx| {
                    self.pending += 1;
                    ctx.record("PaymentPending", call);
                },
            ),
        }
    }
}

fn send_payment(
    ctx: &mut Ctx<'_, Msg>,
    deadlines: &mut Deadlines,
    sent_at_ms: &mut Vec<i64>,
    gateway: ProcessId,
    call: u64,
) {
    deadlines.start(ctx, call).expect("at most 50 calls wait 1 s");
    sent_at_ms.push(ctx.now_local().as_nanos() / 1_000_000);
    ctx.send(gateway, Msg::AuthorizePayment { call });
}

struct OutageRun {
    sim: Sim<Msg>,
    payments: ProcessId,
    trace: Rc<RefCell<MemorySink>>,
}

fn run_outage(with_breaker: bool) -> OutageRun {
    let mut sim = Sim::new(SimConfig::new(Seed(5)));
    let trace = Rc::new(RefCell::new(MemorySink::default()));
    sim.set_trace_sink(Box::new(trace.clone()));
    sim.set_default_link(LinkConfig::constant(ms(2)));
    let orders_node = sim.add_node(NodeConfig::new("orders"));
    let gateway_node = sim.add_node(NodeConfig::new("gateway"));
    let gateway = sim.spawn(gateway_node, "gateway", || Gateway);
    let payments = sim.spawn(orders_node, "payments", move || Payments {
        gateway,
        breaker: with_breaker.then(|| Breaker::new(lesson_config()).unwrap().with_key(7)),
        deadlines: Deadlines::new(DeadlineConfig {
            timeout: SimDuration::from_secs(1),
            max_outstanding: 100,
        })
        .unwrap(),
        permits: BTreeMap::new(),
        next: 0,
        sent_at_ms: Vec::new(),
        pending: 0,
    });
    let second = |s: u64| SimTime::from_nanos(SimDuration::from_secs(s).as_nanos());
    sim.schedule_faults(&FaultSchedule::new().window(
        second(20),
        second(40),
        Fault::CrashNode { node: gateway_node },
    ));
    sim.run_until(second(62));
    OutageRun { sim, payments, trace }
}

/// The breaker's transitions as (kind, time in ms).
fn breaker_transitions(trace: &RefCell<MemorySink>) -> Vec<(&'static str, u64)> {
    trace
        .borrow()
        .records
        .iter()
        .filter_map(|record| match record.event {
            TraceEvent::Component { component: Component::Breaker, kind, key, .. }
                if kind != "rejected" =>
            {
                assert_eq!(key, 7);
                Some((kind, record.time.as_nanos() / 1_000_000))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_breaker_opens_soon_after_the_gateway_fails_probes_and_closes_soon_after_it_recovers() {
    // Goal: lesson 5 measured: the breaker opens 1.18 s into the outage
    // (the calls sent at 20.00, 20.02, ..., 20.18 s time out 1 s later and
    // make ten failures out of the last twenty), probes every 6 s (5 s open
    // + 1 s probe timeout), closes at the first half-open after recovery
    // (44.18 s, plus the probes' 4 ms round trip), and
    // only 68 calls reach the gateway during the 20 s outage instead of
    // ~1,000 without the breaker.
    let run = run_outage(true);
    let transitions = breaker_transitions(&run.trace);
    assert_eq!(
        transitions,
        vec![
            ("opened", 21_180),
            ("half_opened", 26_180),
            ("opened", 27_180),
            ("half_opened", 32_180),
            ("opened", 33_180),
            ("half_opened", 38_180),
            ("opened", 39_180),
            ("half_opened", 44_180),
            ("closed", 44_224),
        ]
    );
    let payments = run.sim.process_state::<Payments>(run.payments).unwrap();
    let during_outage =
        |sent: &[i64]| sent.iter().filter(|&&t| (20_000..40_000).contains(&t)).count();
    let with_breaker = during_outage(&payments.sent_at_ms);
    // The 59 sent before it trips (20.00 to 21.16 s; the 21.18 s call
    // comes just after the tripping timeout and is rejected) plus 3 probes
    // in each of 3 half-open rounds.
    assert_eq!(with_breaker, 68);
    assert!(payments.pending > 1_000, "fallbacks ran: {}", payments.pending);
    let metrics = run.sim.metrics();
    assert_eq!(metrics.counter("breaker.opened"), 4);
    assert_eq!(metrics.counter("breaker.half_opened"), 4);
    assert_eq!(metrics.counter("breaker.closed"), 1);
    assert_eq!(metrics.counter("breaker.rejected"), payments.pending);

    let without = run_outage(false);
    let payments = without.sim.process_state::<Payments>(without.payments).unwrap();
    let without_breaker = during_outage(&payments.sent_at_ms);
    assert_eq!(without_breaker, 1_000);
    assert!(with_breaker * 10 < without_breaker);
    assert!(breaker_transitions(&without.trace).is_empty());
}
