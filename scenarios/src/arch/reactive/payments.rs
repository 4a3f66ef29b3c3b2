//! Payments: charges the card through the external gateway when products
//! are reserved, without blocking anything while it waits.
//!
//! Each call has a deadline (`reactive.call_timeout`, [`Deadlines`]); a
//! failed or timed-out call is retried (`reactive.retries`, exponential
//! backoff with full jitter, [`RetryPolicy`]) under the order's idempotency
//! key, so a retry never charges twice at a gateway that honours keys. A
//! circuit breaker ([`Breaker`]) around the gateway fails calls fast while
//! it is open: the fallback is to give up at once, and the order is
//! cancelled (`PaymentFailed`) and compensated.
//!
//! When a call timed out, the gateway may have charged: the outcome is
//! unknown, so once the order is given up a refund follows, retried until
//! the gateway confirms it (a refund of a charge that never happened is a
//! no-op there). Refunds are compensations and are not given up; they only
//! hold off while the breaker is open.

use super::ReactiveMsg;
use super::facts::{Fact, TOPIC_INVENTORY};
use super::journal::Book;
use super::service::{Lane, Logic, Shell, Source};
use crate::domain::{CardOutcome, OrderId};
use crate::parts::GatewayMsg;
use serde::{Deserialize, Serialize};
use sim::kit::breaker::{Admission, Breaker, BreakerConfig, BreakerState, Permit};
use sim::kit::retry::{DeadlineConfig, Deadlines, RetryConfig, RetryOutcome, RetryPolicy};
use sim::{Ctx, LocalTime, ProcessId, SimDuration, TimerId};
use std::collections::BTreeMap;

/// Calls to the gateway in flight at most; far above what any scenario
/// reaches, since the intake bound limits orders being charged.
const CALLS_OUTSTANDING_MAX: u32 = 100_000;

/// Backoff of charge retries: 100 ms doubling to 1 s, full jitter, so a
/// retry lands well within a customer's patience.
const CHARGE_BACKOFF_BASE: SimDuration = SimDuration::from_millis(100);
const CHARGE_BACKOFF_MAX: SimDuration = SimDuration::from_secs(1);

/// Backoff of refund retries: 200 ms doubling to 2 s. Refunds never give
/// up, so the cap bounds how hard they press on a gateway that is down.
const REFUND_BACKOFF_BASE: SimDuration = SimDuration::from_millis(200);
const REFUND_BACKOFF_MAX: SimDuration = SimDuration::from_secs(2);

/// How a payment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentOutcome {
    /// Charged.
    Approved,
    /// The card was declined.
    Declined,
    /// Given up.
    Failed {
        /// A call timed out, so the gateway may have charged.
        outcome_unknown: bool,
    },
}

/// One order's payment, as Payments knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// How much to charge.
    pub amount_cents: u64,
    /// What the issuer will say.
    pub card: CardOutcome,
    /// How it ended, once it has.
    pub outcome: Option<PaymentOutcome>,
    /// Whether the gateway confirmed a refund.
    pub refunded: bool,
}

/// The Payments book.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PaymentBook {
    /// Every payment asked for.
    pub payments: BTreeMap<OrderId, PaymentRecord>,
    /// Refunds the gateway confirmed (compensations).
    pub refunds: u64,
}

/// What the Payments log holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum PaymentsEvent {
    /// A payment is asked for (products are reserved).
    Requested {
        /// The order.
        order: OrderId,
        /// How much.
        amount_cents: u64,
        /// What the issuer will say.
        card: CardOutcome,
    },
    /// The payment ended.
    Decided {
        /// The order.
        order: OrderId,
        /// How.
        outcome: PaymentOutcome,
    },
    /// The gateway confirmed a refund.
    RefundConfirmed {
        /// The order.
        order: OrderId,
    },
}

impl Book for PaymentBook {
    type Event = PaymentsEvent;

    fn apply(&mut self, event: &PaymentsEvent) {
        match event {
            PaymentsEvent::Requested { order, amount_cents, card } => {
                self.payments.entry(*order).or_insert(PaymentRecord {
                    amount_cents: *amount_cents,
                    card: *card,
                    outcome: None,
                    refunded: false,
                });
            }
            PaymentsEvent::Decided { order, outcome } => {
                if let Some(record) = self.payments.get_mut(order) {
                    record.outcome.get_or_insert(*outcome);
                }
            }
            PaymentsEvent::RefundConfirmed { order } => {
                if let Some(record) = self.payments.get_mut(order)
                    && !record.refunded
                {
                    record.refunded = true;
                    self.refunds += 1;
                }
            }
        }
    }
}

/// What Payments' calls to the gateway are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    /// Take the money.
    Charge,
    /// Give it back.
    Refund,
}

/// What the gateway answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Charged (now or before).
    Charged,
    /// Declined.
    Declined,
    /// Refunded (or nothing to refund).
    Refunded,
    /// The gateway failed; nothing happened.
    Failed,
}

/// A gateway reply waiting for CPU.
#[derive(Clone, Debug)]
pub struct PaymentsWork {
    order: OrderId,
    kind: CallKind,
    reply: Reply,
}

/// What Payments does once a write is durable.
#[derive(Debug)]
pub enum PaymentsAction {
    /// Start charging.
    Charge(OrderId),
    /// Start refunding.
    Refund(OrderId),
}

/// A change of the breaker's state, on Payments' clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerChange {
    /// When.
    pub at: LocalTime,
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
}

/// How Payments talks to the gateway.
#[derive(Clone, Debug)]
pub struct PaymentsSettings {
    /// The gateway.
    pub gateway: ProcessId,
    /// Per-call deadline.
    pub call_timeout: SimDuration,
    /// Retries of a failed charge.
    pub retries: u32,
    /// The breaker, if enabled.
    pub breaker: Option<BreakerConfig>,
}

#[derive(Clone, Copy, Debug)]
struct Call {
    order: OrderId,
    kind: CallKind,
    permit: Option<Permit>,
}

#[derive(Clone, Copy, Debug)]
struct Charging {
    amount_cents: u64,
    card: CardOutcome,
    attempts: u32,
    outcome_unknown: bool,
}

#[derive(Clone, Copy, Debug)]
enum Wake {
    Charge(OrderId),
    Refund(OrderId),
}

/// The Payments service's business part.
pub struct PaymentsLogic {
    settings: PaymentsSettings,
    breaker: Option<Breaker>,
    deadlines: Deadlines,
    charge_retry: RetryPolicy,
    refund_retry: RetryPolicy,
    calls: BTreeMap<u64, Call>,
    charging: BTreeMap<OrderId, Charging>,
    /// Refunds under way, with the attempts made.
    refunding: BTreeMap<OrderId, u32>,
    timers: BTreeMap<TimerId, Wake>,
    next_request: u64,
    /// The breaker's changes since this incarnation started.
    pub breaker_changes: Vec<BreakerChange>,
}

impl PaymentsLogic {
    /// Payments, fresh (it recovers its unfinished payments on start).
    pub fn new(settings: PaymentsSettings) -> PaymentsLogic {
        let breaker = settings
            .breaker
            .clone()
            .map(|config| Breaker::new(config).expect("a valid breaker configuration"));
        let deadlines = Deadlines::new(DeadlineConfig {
            timeout: settings.call_timeout,
            max_outstanding: CALLS_OUTSTANDING_MAX,
        })
        .expect("a valid deadline configuration");
        let charge_retry = RetryPolicy::new(RetryConfig {
            max_attempts: settings.retries.saturating_add(1),
            base_delay: CHARGE_BACKOFF_BASE,
            max_delay: CHARGE_BACKOFF_MAX,
            multiplier: 2.0,
        })
        .expect("a valid retry configuration");
        let refund_retry = RetryPolicy::new(RetryConfig {
            max_attempts: u32::MAX,
            base_delay: REFUND_BACKOFF_BASE,
            max_delay: REFUND_BACKOFF_MAX,
            multiplier: 2.0,
        })
        .expect("a valid retry configuration");
        PaymentsLogic {
            settings,
            breaker,
            deadlines,
            charge_retry,
            refund_retry,
            calls: BTreeMap::new(),
            charging: BTreeMap::new(),
            refunding: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_request: 0,
            breaker_changes: Vec::new(),
        }
    }

    /// The breaker's state now, if there is one.
    pub fn breaker_state(&self) -> Option<BreakerState> {
        self.breaker.as_ref().map(Breaker::state)
    }

    fn note(&mut self, ctx: &Ctx<'_, ReactiveMsg>, from: BreakerState) {
        let Some(breaker) = &self.breaker else { return };
        if breaker.state() != from {
            let change = BreakerChange { at: ctx.now_local(), from, to: breaker.state() };
            self.breaker_changes.push(change);
        }
    }

    fn request(&mut self) -> u64 {
        let request = self.next_request;
        self.next_request = self.next_request.wrapping_add(1);
        request
    }

    fn start_charge(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        order: OrderId,
    ) {
        if self.charging.contains_key(&order) {
            return;
        }
        let Some(record) = shell.book().payments.get(&order) else { return };
        if record.outcome.is_some() {
            return;
        }
        let charging = Charging {
            amount_cents: record.amount_cents,
            card: record.card,
            attempts: 0,
            outcome_unknown: false,
        };
        self.charging.insert(order, charging);
        self.attempt(ctx, shell, order);
    }

    /// One attempt at charging, through the breaker if there is one.
    fn attempt(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, shell: &mut Shell<Self>, order: OrderId) {
        let Some(charging) = self.charging.get_mut(&order) else { return };
        charging.attempts += 1;
        let charging = *charging;
        let mut permit = None;
        if let Some(breaker) = self.breaker.as_mut() {
            let before = breaker.state();
            let admission = breaker.acquire(ctx);
            self.note(ctx, before);
            match admission {
                Admission::Permitted(granted) => permit = Some(granted),
                Admission::Rejected => {
                    // The fallback: fail fast instead of waiting out a
                    // timeout on a gateway known to be failing.
                    ctx.count("payments.fail_fast", 1);
                    let outcome =
                        PaymentOutcome::Failed { outcome_unknown: charging.outcome_unknown };
                    self.decide(ctx, shell, order, outcome);
                    return;
                }
            }
        }
        let request = self.request();
        if self.deadlines.start(ctx, request).is_err() {
            // Never sent: report the permit so a half-open breaker is not
            // left waiting, and give up knowing nothing was charged.
            if let (Some(breaker), Some(permit)) = (self.breaker.as_mut(), permit) {
                let before = breaker.state();
                breaker.record_failure(ctx, permit, SimDuration::ZERO);
                self.note(ctx, before);
            }
            let outcome = PaymentOutcome::Failed { outcome_unknown: charging.outcome_unknown };
            self.decide(ctx, shell, order, outcome);
            return;
        }
        self.calls.insert(request, Call { order, kind: CallKind::Charge, permit });
        let charge = GatewayMsg::Charge {
            request,
            order,
            amount_cents: charging.amount_cents,
            card: charging.card,
        };
        ctx.send(self.settings.gateway, ReactiveMsg::Gateway(charge));
        ctx.count("payments.gateway_charges", 1);
        ctx.sample("payments.gateway_charges", 1.0);
    }

    /// The attempt failed: retry after a backoff, or give up.
    fn retry_or_give_up(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        order: OrderId,
    ) {
        let Some(charging) = self.charging.get(&order).copied() else { return };
        match self.charge_retry.schedule_retry(ctx, None, order.0, charging.attempts) {
            RetryOutcome::Scheduled { timer, .. } => {
                self.timers.insert(timer, Wake::Charge(order));
            }
            RetryOutcome::AttemptsExhausted | RetryOutcome::BudgetExhausted => {
                let outcome = PaymentOutcome::Failed { outcome_unknown: charging.outcome_unknown };
                self.decide(ctx, shell, order, outcome);
            }
        }
    }

    /// Records how the payment ended and publishes it; a payment whose
    /// outcome is unknown is refunded once that is durable.
    fn decide(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        order: OrderId,
        outcome: PaymentOutcome,
    ) {
        let Some(charging) = self.charging.remove(&order) else { return };
        let fact = match outcome {
            PaymentOutcome::Approved => {
                Fact::PaymentApproved { order, amount_cents: charging.amount_cents }
            }
            PaymentOutcome::Declined => Fact::PaymentDeclined { order },
            PaymentOutcome::Failed { outcome_unknown } => {
                Fact::PaymentFailed { order, outcome_unknown }
            }
        };
        let actions = match outcome {
            PaymentOutcome::Failed { outcome_unknown: true } => vec![PaymentsAction::Refund(order)],
            _ => Vec::new(),
        };
        let decided = PaymentsEvent::Decided { order, outcome };
        shell.persist(ctx, vec![decided], vec![fact], None, actions);
    }

    fn start_refund(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &Shell<Self>,
        order: OrderId,
    ) {
        let Some(record) = shell.book().payments.get(&order) else { return };
        if record.refunded || self.refunding.contains_key(&order) {
            return;
        }
        self.refunding.insert(order, 0);
        self.send_refund(ctx, order);
    }

    fn send_refund(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, order: OrderId) {
        if let Some(breaker) = &self.breaker
            && breaker.state() == BreakerState::Open
        {
            let reopens = breaker.opened_at().plus(breaker.config().open_duration);
            let now = ctx.now_local();
            if now < reopens {
                // The gateway is known to be failing: hold the refund until
                // the breaker would let a probe through.
                let wait = SimDuration::from_nanos((reopens.as_nanos() - now.as_nanos()) as u64);
                let timer = ctx.set_timer(wait, order.0);
                self.timers.insert(timer, Wake::Refund(order));
                return;
            }
        }
        let request = self.request();
        if self.deadlines.start(ctx, request).is_err() {
            self.retry_refund(ctx, order);
            return;
        }
        if let Some(attempts) = self.refunding.get_mut(&order) {
            *attempts += 1;
        }
        self.calls.insert(request, Call { order, kind: CallKind::Refund, permit: None });
        ctx.send(
            self.settings.gateway,
            ReactiveMsg::Gateway(GatewayMsg::Refund { request, order }),
        );
        ctx.count("payments.gateway_refunds", 1);
    }

    fn retry_refund(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, order: OrderId) {
        let Some(attempts) = self.refunding.get(&order).copied() else { return };
        if let RetryOutcome::Scheduled { timer, .. } =
            self.refund_retry.schedule_retry(ctx, None, order.0, attempts.max(1))
        {
            self.timers.insert(timer, Wake::Refund(order));
        }
    }

    /// Reports a charge call's outcome to the breaker.
    fn report(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        call: &Call,
        failed: bool,
        took: SimDuration,
    ) {
        let (Some(breaker), Some(permit)) = (self.breaker.as_mut(), call.permit) else { return };
        let before = breaker.state();
        if failed {
            breaker.record_failure(ctx, permit, took);
        } else {
            breaker.record_success(ctx, permit, took);
        }
        self.note(ctx, before);
    }
}

impl Logic for PaymentsLogic {
    type Book = PaymentBook;
    type Local = PaymentsWork;
    type Action = PaymentsAction;
    const NAME: &'static str = "payments";
    const TOPICS: &'static [&'static str] = &[TOPIC_INVENTORY];

    fn initial_book(&self) -> PaymentBook {
        PaymentBook::default()
    }

    fn wants(fact: &Fact) -> bool {
        matches!(fact, Fact::ProductsReserved { .. })
    }

    fn on_recovered(&mut self, ctx: &mut Ctx<'_, ReactiveMsg>, shell: &mut Shell<Self>) {
        // Request ids start at a random point per incarnation, so a late
        // reply meant for an earlier incarnation matches nothing.
        self.next_request = ctx.rng().next_u64() >> 1;
        let unfinished: Vec<(OrderId, Option<PaymentOutcome>)> = shell
            .book()
            .payments
            .iter()
            .filter(|(_, record)| !record.refunded)
            .map(|(order, record)| (*order, record.outcome))
            .collect();
        for (order, outcome) in unfinished {
            match outcome {
                None => self.start_charge(ctx, shell, order),
                Some(PaymentOutcome::Failed { outcome_unknown: true }) => {
                    self.start_refund(ctx, shell, order);
                }
                Some(_) => {}
            }
        }
    }

    fn on_fact(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        fact: Fact,
        source: Source,
    ) {
        let Fact::ProductsReserved { order, total_cents, card } = fact else {
            shell.done(source);
            return;
        };
        if shell.book().payments.contains_key(&order) {
            // Asked before (a redelivery): that payment is under way or
            // ended, and its outcome is in the outbox or out already.
            shell.done(source);
            return;
        }
        let requested = PaymentsEvent::Requested { order, amount_cents: total_cents, card };
        shell.persist(
            ctx,
            vec![requested],
            Vec::new(),
            Some(source),
            vec![PaymentsAction::Charge(order)],
        );
    }

    fn on_other(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        _from: ProcessId,
        message: ReactiveMsg,
    ) {
        let ReactiveMsg::Gateway(answer) = message else { return };
        let (request, reply) = match answer {
            GatewayMsg::Charged { request, .. } => (request, Reply::Charged),
            GatewayMsg::Declined { request, .. } => (request, Reply::Declined),
            GatewayMsg::Refunded { request, .. } => (request, Reply::Refunded),
            GatewayMsg::Failed { request, .. } => (request, Reply::Failed),
            GatewayMsg::Charge { .. } | GatewayMsg::Refund { .. } => return,
        };
        // A reply after its deadline is discarded: the call was already
        // counted as failed and retried (or given up and refunded).
        let Some(took) = self.deadlines.complete(ctx, request) else { return };
        let Some(call) = self.calls.remove(&request) else { return };
        if call.kind == CallKind::Charge {
            self.report(ctx, &call, reply == Reply::Failed, took);
        }
        let work = PaymentsWork { order: call.order, kind: call.kind, reply };
        if shell.admit(ctx, Lane::Reply, call.order.0, work).is_err() {
            unreachable!("the reply lane is bounded by the calls out, never by rejection");
        }
    }

    fn on_local(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        work: PaymentsWork,
    ) {
        let order = work.order;
        match (work.kind, work.reply) {
            (CallKind::Charge, Reply::Charged) => {
                self.decide(ctx, shell, order, PaymentOutcome::Approved)
            }
            (CallKind::Charge, Reply::Declined) => {
                self.decide(ctx, shell, order, PaymentOutcome::Declined)
            }
            (CallKind::Charge, _) => self.retry_or_give_up(ctx, shell, order),
            (CallKind::Refund, Reply::Refunded) => {
                if self.refunding.remove(&order).is_some()
                    && shell.book().payments.get(&order).is_some_and(|record| !record.refunded)
                {
                    let confirmed = PaymentsEvent::RefundConfirmed { order };
                    let fact = Fact::PaymentRefunded { order };
                    shell.persist(ctx, vec![confirmed], vec![fact], None, Vec::new());
                }
            }
            (CallKind::Refund, _) => self.retry_refund(ctx, order),
        }
    }

    fn on_timer(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        timer: TimerId,
    ) {
        if let Some(request) = self.deadlines.on_timer(ctx, timer) {
            let Some(call) = self.calls.remove(&request) else { return };
            match call.kind {
                CallKind::Charge => {
                    self.report(ctx, &call, true, self.settings.call_timeout);
                    if let Some(charging) = self.charging.get_mut(&call.order) {
                        charging.outcome_unknown = true;
                    }
                    self.retry_or_give_up(ctx, shell, call.order);
                }
                CallKind::Refund => self.retry_refund(ctx, call.order),
            }
            return;
        }
        match self.timers.remove(&timer) {
            Some(Wake::Charge(order)) => self.attempt(ctx, shell, order),
            Some(Wake::Refund(order)) => self.send_refund(ctx, order),
            None => {}
        }
    }

    fn after_sync(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        action: PaymentsAction,
    ) {
        match action {
            PaymentsAction::Charge(order) => self.start_charge(ctx, shell, order),
            PaymentsAction::Refund(order) => self.start_refund(ctx, shell, order),
        }
    }

    fn extra_load(&self) -> usize {
        self.charging.len()
    }
}
