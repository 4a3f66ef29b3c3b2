//! The saga's participants: Inventory, Payments and Shipping, each one
//! durable, idempotent process on its own node.
//!
//! Every participant keeps the kit's [`StepLedger`] (the outcome of each
//! `(saga, step)` it has handled), so a command redelivered by the network,
//! re-sent after a timeout or after the coordinator restarted has effect
//! at most once; and a compensation that overtakes its command voids the
//! step, so the late command is refused. Business rules come from the
//! domain aggregates ([`Inventory`], [`Shipping`]; the gateway keeps the
//! [`Payments`](crate::domain::Payments) ledger). State changes are written
//! to the node's storage and every answer waits for the sync (reply after
//! the write), so a crash never takes back something a participant said.

use super::codec::{
    Reader, Writer, card_code, card_from, outcome_code, outcome_from, reason_code, reason_from,
};
use super::message::{Internal, Msg, Task};
use crate::domain::{
    CancelReason, CardOutcome, Inventory, InventoryCommand, InventoryEvent, OrderId, Shipping,
    ShippingCommand, ShippingEvent,
};
use crate::parts::GatewayMsg;
use sim::kit::saga::{LedgerAction, SagaId, StepLedger, StepOutcome};
use sim::storage::LogId;
use sim::{Ctx, DenseMap, LocalTime, Process, ProcessId, SimDuration};

/// The saga's steps, in order.
pub const STEP_RESERVE: u32 = 0;
/// Taking the payment.
pub const STEP_PAY: u32 = 1;
/// Shipping: the pivot.
pub const STEP_SHIP: u32 = 2;

/// Records written while handling one message, and answers waiting for
/// the participant's log to be durable, by sync tag.
#[derive(Clone, Debug, Default)]
struct Replies {
    /// Records of the message being handled, appended to the log as one
    /// storage record when it answers (they become durable together).
    records: Vec<u8>,
    /// Where the participant's log is in storage, once written to.
    log_id: Option<LogId>,
    waiting: DenseMap<u64, (ProcessId, Msg)>,
    next_tag: u64,
}

impl Replies {
    /// Adds a record (several can follow one another), written straight
    /// onto the records kept so far: `build` gets a writer whose next byte
    /// is the new record's tag.
    fn record(&mut self, build: impl FnOnce(Writer) -> Writer) {
        let records = std::mem::take(&mut self.records);
        self.records = build(Writer::onto(records)).finish();
    }

    /// Writes the records so far to `log`, and sends `message` to `to` once
    /// they (and everything before them) are durable.
    fn after_sync(&mut self, ctx: &mut Ctx<'_, Msg>, log: &str, to: ProcessId, message: Msg) {
        if !self.records.is_empty() {
            // Storage copies the bytes; the buffer is kept for the next
            // records (no allocation per write).
            ctx.append_to(log, &mut self.log_id, &self.records);
            self.records.clear();
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        self.waiting.insert(tag, (to, message));
        ctx.sync(tag);
    }

    /// Writes the records so far to `log` without answering anyone.
    fn flush(&mut self, ctx: &mut Ctx<'_, Msg>, log: &str) {
        if !self.records.is_empty() {
            // Storage copies the bytes; the buffer is kept for the next
            // records (no allocation per write).
            ctx.append_to(log, &mut self.log_id, &self.records);
            self.records.clear();
        }
    }

    fn synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if let Some((to, message)) = self.waiting.remove(&tag) {
            ctx.send(to, message);
        }
    }
}

fn saga(order: OrderId) -> SagaId {
    SagaId(order.0)
}

const LEDGER_RECORD: u8 = 100;

fn ledger_record(
    writer: Writer,
    order: OrderId,
    step: u32,
    outcome: StepOutcome,
    reason: Option<CancelReason>,
) -> Writer {
    writer
        .u8(LEDGER_RECORD)
        .u64(order.0)
        .u32(step)
        .u8(outcome_code(outcome))
        .u8(reason.map_or(u8::MAX, reason_code))
}

fn read_ledger(reader: &mut Reader<'_>) -> (OrderId, u32, StepOutcome, Option<CancelReason>) {
    let order = reader.order();
    let step = reader.u32();
    let outcome = outcome_from(reader.u8());
    let reason = match reader.u8() {
        u8::MAX => None,
        code => Some(reason_from(code)),
    };
    (order, step, outcome, reason)
}

// ----- Inventory -----

const INVENTORY_LOG: &str = "inventory/log";
const RESERVED: u8 = 1;
const RELEASED: u8 = 2;
const SHIPPED: u8 = 3;

/// Inventory: reserves products (step 0), releases them (its
/// compensation), and moves a reservation to shipped when Shipping asks
/// (the first half of the pivot).
#[derive(Clone, Debug)]
pub struct InventoryService {
    inventory: Inventory,
    ledger: StepLedger,
    replies: Replies,
}

impl InventoryService {
    /// Inventory holding `stock` at the start (its log adds the rest).
    pub fn new(stock: Inventory) -> InventoryService {
        InventoryService {
            inventory: stock,
            ledger: StepLedger::default(),
            replies: Replies::default(),
        }
    }

    /// The stock now.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Replays `records` of the inventory log onto `inventory` and
    /// `ledger`.
    pub fn replay(
        records: sim::storage::Records<'_>,
        inventory: &mut Inventory,
        ledger: &mut StepLedger,
    ) {
        let mut readers = records.iter().map(Reader::over);
        let mut current = readers.next();
        while let Some(reader) = current.as_mut() {
            if reader.is_done() {
                current = readers.next();
                continue;
            }
            let tag = reader.u8();
            let event = match tag {
                RESERVED => {
                    let order = reader.order();
                    InventoryEvent::ProductsReserved { order, lines: reader.lines() }
                }
                RELEASED => InventoryEvent::ReservationReleased { order: reader.order() },
                SHIPPED => InventoryEvent::ProductsShipped { order: reader.order() },
                LEDGER_RECORD => {
                    let (order, step, outcome, _) = read_ledger(reader);
                    ledger.record(saga(order), step, outcome);
                    continue;
                }
                other => panic!("{INVENTORY_LOG}: unknown record tag {other}"),
            };
            inventory.evolve_owned(event);
        }
    }

    fn record(&mut self, ctx: &mut Ctx<'_, Msg>, event: InventoryEvent) {
        match &event {
            InventoryEvent::ProductsReserved { order, lines } => {
                ctx.record("ProductsReserved", order.0);
                self.replies.record(|w| w.u8(RESERVED).u64(order.0).lines(lines));
            }
            InventoryEvent::ReservationReleased { order } => {
                ctx.record("ReservationReleased", order.0);
                self.replies.record(|w| w.u8(RELEASED).u64(order.0));
            }
            InventoryEvent::ProductsShipped { order } => {
                ctx.record("ProductsShipped", order.0);
                self.replies.record(|w| w.u8(SHIPPED).u64(order.0));
            }
        }
        self.inventory.evolve_owned(event);
    }

    fn remember(&mut self, order: OrderId, outcome: StepOutcome) {
        self.ledger.record(saga(order), STEP_RESERVE, outcome);
        self.replies.record(|w| ledger_record(w, order, STEP_RESERVE, outcome, None));
    }

    fn reply(&mut self, ctx: &mut Ctx<'_, Msg>, to: ProcessId, message: Internal) {
        self.replies.after_sync(ctx, INVENTORY_LOG, to, Msg::Internal(message));
    }

    fn decide(&mut self, ctx: &mut Ctx<'_, Msg>, command: &InventoryCommand) -> bool {
        match self.inventory.decide(command) {
            Ok(events) => {
                for event in events {
                    self.record(ctx, event);
                }
                true
            }
            Err(_) => false,
        }
    }
}

impl Process<Msg> for InventoryService {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        Self::replay(ctx.read_log(INVENTORY_LOG), &mut self.inventory, &mut self.ledger);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        let Msg::Internal(message) = message else { return };
        match message {
            Internal::Execute { order, step, after_pivot, task: Task::Reserve { lines } } => {
                let executed = Internal::Executed { order, step };
                let failed = Internal::StepFailed { order, step, reason: CancelReason::OutOfStock };
                let answer = match self.ledger.on_execute(saga(order), step, after_pivot) {
                    LedgerAction::RepeatExecuted => executed,
                    LedgerAction::Evaluate => {
                        let command = InventoryCommand::ReserveProducts { order, lines };
                        if self.decide(ctx, &command) {
                            self.remember(order, StepOutcome::Executed);
                            executed
                        } else {
                            self.remember(order, StepOutcome::Failed);
                            failed
                        }
                    }
                    _ => failed,
                };
                self.reply(ctx, from, answer);
            }
            Internal::Compensate { order, step } => {
                match self.ledger.on_compensate(saga(order), step) {
                    LedgerAction::Undo => {
                        self.decide(ctx, &InventoryCommand::ReleaseReservation { order });
                        self.remember(order, StepOutcome::Undone);
                    }
                    LedgerAction::Void => self.remember(order, StepOutcome::Voided),
                    _ => {}
                }
                self.reply(ctx, from, Internal::Compensated { order, step });
            }
            Internal::ShipProducts { order } => {
                let answer = if self.decide(ctx, &InventoryCommand::ShipProducts { order }) {
                    Internal::ProductsShipped { order }
                } else {
                    Internal::ShipRefused { order }
                };
                self.reply(ctx, from, answer);
            }
            _ => {}
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.replies.synced(ctx, tag);
    }
}

// ----- Payments -----

const PAYMENTS_LOG: &str = "payments/log";
const CHARGE_SENT: u8 = 101;

/// A charge sent to the gateway whose outcome is not known yet. It is
/// written to the log before it is sent, so it survives a crash.
#[derive(Clone, Debug)]
struct Charging {
    request: u64,
    /// Who waits for the step's answer (none once it has had it).
    coordinator: Option<ProcessId>,
    amount_cents: u64,
    card: CardOutcome,
    /// When it was last sent.
    sent_at: LocalTime,
    /// Refund once the outcome is known: a compensation arrived while the
    /// charge was in flight, or the step was answered as failed on a
    /// gateway failure, which speaks only for one copy of the charge (the
    /// network can duplicate requests), so the charge is asked again until
    /// the gateway says charged (then refunded) or declined.
    refund_wanted: bool,
}

#[derive(Clone, Debug)]
struct Refunding {
    /// Who to tell once it is done (none for money taken by a stray copy
    /// of a charge, which no one asked about).
    coordinator: Option<ProcessId>,
    /// What to record once the gateway confirms.
    outcome: StepOutcome,
    /// When it was last sent (an overdue refund is sent again).
    sent_at: LocalTime,
}

/// The timer tag of the Payments participant's sweep.
const PAYMENTS_SWEEP_TAG: u64 = 1;

/// Payments: takes the payment through the external gateway (step 1) and
/// refunds it (its compensation).
///
/// A payment whose outcome is unknown when it is compensated (the
/// coordinator timed out) is refunded once its outcome is known, never
/// blindly: at the gateway a refund can overtake the charge it should
/// undo, and a refund of a charge not yet made is a no-op that leaves the
/// charge to go through afterwards. So every charge is written to the log
/// before it is sent (with its request id, which survives a crash), a
/// compensation waits for the charge's answer, and an answer overdue by
/// `patience` is asked for again by sending the same charge again (the
/// gateway's idempotency key answers from its ledger).
#[derive(Clone, Debug)]
pub struct PaymentsService {
    gateway: ProcessId,
    /// How long a charge may go unanswered before it is sent again.
    patience: SimDuration,
    ledger: StepLedger,
    reasons: DenseMap<OrderId, CancelReason>,
    charging: DenseMap<OrderId, Charging>,
    refunding: DenseMap<OrderId, Refunding>,
    /// Gateway requests awaiting an answer: the order, and whether it is a
    /// refund (else a charge).
    requests: DenseMap<u64, (OrderId, bool)>,
    next_request: Option<u64>,
    replies: Replies,
}

impl PaymentsService {
    /// Payments calling `gateway`.
    pub fn new(gateway: ProcessId, patience: SimDuration) -> PaymentsService {
        PaymentsService {
            gateway,
            patience,
            ledger: StepLedger::default(),
            reasons: DenseMap::new(),
            charging: DenseMap::new(),
            refunding: DenseMap::new(),
            requests: DenseMap::new(),
            next_request: None,
            replies: Replies::default(),
        }
    }

    fn request(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId, is_refund: bool) -> u64 {
        // Request ids start at a random point per incarnation, so they do
        // not repeat an earlier incarnation's.
        let request = match self.next_request {
            Some(request) => request,
            None => ctx.rng().next_u64() >> 2,
        };
        self.next_request = Some(request + 1);
        self.requests.insert(request, (order, is_refund));
        request
    }

    fn remember(&mut self, order: OrderId, outcome: StepOutcome, reason: Option<CancelReason>) {
        self.ledger.record(saga(order), STEP_PAY, outcome);
        if let Some(reason) = reason {
            self.reasons.insert(order, reason);
        }
        self.replies.record(|w| ledger_record(w, order, STEP_PAY, outcome, reason));
    }

    fn reply(&mut self, ctx: &mut Ctx<'_, Msg>, to: ProcessId, message: Internal) {
        self.replies.after_sync(ctx, PAYMENTS_LOG, to, Msg::Internal(message));
    }

    fn refund(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        order: OrderId,
        coordinator: Option<ProcessId>,
        outcome: StepOutcome,
    ) {
        // An earlier refund request's answer still counts: with a slow
        // gateway, waiting only for the newest could wait for ever.
        let request = self.request(ctx, order, true);
        let sent_at = ctx.now_local();
        self.refunding.insert(order, Refunding { coordinator, outcome, sent_at });
        ctx.send(self.gateway, Msg::Gateway(GatewayMsg::Refund { request, order }));
    }

    fn charge(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId) -> Msg {
        let charging = self.charging.get_mut(&order).expect("charging");
        charging.sent_at = ctx.now_local();
        let (request, amount_cents, card) =
            (charging.request, charging.amount_cents, charging.card);
        Msg::Gateway(GatewayMsg::Charge { request, order, amount_cents, card })
    }

    fn execute(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: ProcessId,
        order: OrderId,
        after_pivot: bool,
        amount_cents: u64,
        card: CardOutcome,
    ) {
        let step = STEP_PAY;
        match self.ledger.on_execute(saga(order), step, after_pivot) {
            LedgerAction::RepeatExecuted => {
                self.reply(ctx, from, Internal::Executed { order, step });
            }
            LedgerAction::Evaluate if !self.charging.contains_key(&order) => {
                let request = self.request(ctx, order, false);
                let sent_at = ctx.now_local();
                let charging = Charging {
                    request,
                    coordinator: Some(from),
                    amount_cents,
                    card,
                    sent_at,
                    refund_wanted: false,
                };
                self.charging.insert(order, charging);
                // Write ahead: the charge is in the log before it leaves.
                self.replies.record(|w| {
                    w.u8(CHARGE_SENT)
                        .u64(order.0)
                        .u64(request)
                        .u32(from.0)
                        .u64(amount_cents)
                        .u8(card_code(card))
                });
                let charge = self.charge(ctx, order);
                self.replies.after_sync(ctx, PAYMENTS_LOG, self.gateway, charge);
            }
            // The charge is in flight; its answer will come.
            LedgerAction::Evaluate => {}
            _ => {
                let reason =
                    self.reasons.get(&order).copied().unwrap_or(CancelReason::PaymentFailed);
                self.reply(ctx, from, Internal::StepFailed { order, step, reason });
            }
        }
    }

    fn compensate(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, order: OrderId) {
        let step = STEP_PAY;
        if let Some(refunding) = self.refunding.get(&order) {
            // Asked again: the refund's answer is late or lost; ask again.
            let outcome = refunding.outcome;
            self.refund(ctx, order, Some(from), outcome);
            return;
        }
        if let Some(charging) = self.charging.get_mut(&order) {
            charging.refund_wanted = true;
            charging.coordinator = Some(from);
            if ctx.now_local() >= charging.sent_at.plus(self.patience) {
                // The answer is overdue (lost, or the gateway was down):
                // ask again with the same charge.
                ctx.count("microsystem.charges_asked_again", 1);
                let charge = self.charge(ctx, order);
                ctx.send(self.gateway, charge);
            }
            return;
        }
        match self.ledger.on_compensate(saga(order), step) {
            LedgerAction::Undo => self.refund(ctx, order, Some(from), StepOutcome::Undone),
            LedgerAction::Void => {
                // Declined or failed at the gateway, or never sent (every
                // charge sent is in the log): nothing was taken.
                self.remember(order, StepOutcome::Voided, None);
                self.reply(ctx, from, Internal::Compensated { order, step });
            }
            _ => self.reply(ctx, from, Internal::Compensated { order, step }),
        }
    }

    fn gateway_answer(&mut self, ctx: &mut Ctx<'_, Msg>, answer: GatewayMsg) {
        let step = STEP_PAY;
        let (request, order) = match &answer {
            GatewayMsg::Charged { request, order }
            | GatewayMsg::Declined { request, order }
            | GatewayMsg::Refunded { request, order }
            | GatewayMsg::Failed { request, order } => (*request, *order),
            _ => return,
        };
        let Some(&(_, is_refund)) = self.requests.get(&request) else { return };
        // A failed charge stays listed: a copy of it (the network can
        // duplicate the request) may still take money, and then that money
        // goes back.
        if is_refund || !matches!(answer, GatewayMsg::Failed { .. }) {
            self.requests.remove(&request);
        }
        if is_refund {
            let Some(refunding) = self.refunding.remove(&order) else { return };
            if let GatewayMsg::Failed { .. } = answer {
                // A compensation must succeed: try the refund again.
                self.refund(ctx, order, refunding.coordinator, refunding.outcome);
                return;
            }
            self.remember(order, refunding.outcome, None);
            self.answer(ctx, refunding.coordinator, Internal::Compensated { order, step });
            return;
        }
        let Some(charging) = self.charging.remove(&order) else {
            // The charge was settled already (as failed): money a copy of
            // it took after all goes back.
            let executed = self.ledger.outcome(saga(order), step) == Some(StepOutcome::Executed);
            if matches!(answer, GatewayMsg::Charged { .. })
                && !executed
                && !self.refunding.contains_key(&order)
            {
                ctx.count("microsystem.stray_charges_refunded", 1);
                self.refund(ctx, order, None, StepOutcome::Undone);
            }
            return;
        };
        if matches!(answer, GatewayMsg::Failed { .. }) && charging.refund_wanted {
            // "Nothing happened" speaks for this copy of the charge only;
            // an earlier copy (sent again when overdue, or before a crash)
            // may have taken the money. Compensating needs the truth: ask
            // again until the gateway says charged or declined.
            self.charging.insert(order, charging);
            ctx.count("microsystem.charges_asked_again", 1);
            let charge = self.charge(ctx, order);
            ctx.send(self.gateway, charge);
            return;
        }
        let (outcome, reason) = match answer {
            GatewayMsg::Charged { .. } => (StepOutcome::Executed, None),
            GatewayMsg::Declined { .. } => {
                (StepOutcome::Failed, Some(CancelReason::PaymentDeclined))
            }
            _ => (StepOutcome::Failed, Some(CancelReason::PaymentFailed)),
        };
        let coordinator = charging.coordinator;
        if charging.refund_wanted {
            match outcome {
                // Not recorded as executed: the step is being undone (the
                // refund records it undone).
                StepOutcome::Executed => self.refund(ctx, order, coordinator, StepOutcome::Undone),
                _ => {
                    self.remember(order, StepOutcome::Voided, reason);
                    self.answer(ctx, coordinator, Internal::Compensated { order, step });
                }
            }
            return;
        }
        self.remember(order, outcome, reason);
        let answer = match outcome {
            StepOutcome::Executed => Internal::Executed { order, step },
            _ => {
                let reason = reason.unwrap_or(CancelReason::PaymentFailed);
                Internal::StepFailed { order, step, reason }
            }
        };
        self.answer(ctx, coordinator, answer);
        if reason == Some(CancelReason::PaymentFailed) {
            // Failed at the gateway: verify (see `Charging::refund_wanted`).
            let verifying = Charging { coordinator: None, refund_wanted: true, ..charging };
            self.charging.insert(order, verifying);
        }
    }

    /// Answers `coordinator` once the log is durable, or just writes the
    /// log if no one waits.
    fn answer(&mut self, ctx: &mut Ctx<'_, Msg>, coordinator: Option<ProcessId>, answer: Internal) {
        match coordinator {
            Some(coordinator) => self.reply(ctx, coordinator, answer),
            None => self.replies.flush(ctx, PAYMENTS_LOG),
        }
    }
}

impl PaymentsService {
    /// Sends again every refund whose answer is overdue (a compensation
    /// must succeed, including the refund of money no one asked about), and
    /// every charge a compensation is waiting on.
    fn sweep(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        let patience = self.patience;
        let overdue = |sent_at: LocalTime| now >= sent_at.plus(patience);
        let refunds: Vec<OrderId> = self
            .refunding
            .iter()
            .filter(|(_, refunding)| overdue(refunding.sent_at))
            .map(|(order, _)| *order)
            .collect();
        for order in refunds {
            let refunding = self.refunding[&order].clone();
            self.refund(ctx, order, refunding.coordinator, refunding.outcome);
        }
        let charges: Vec<OrderId> = self
            .charging
            .iter()
            .filter(|(_, charging)| charging.refund_wanted && overdue(charging.sent_at))
            .map(|(order, _)| *order)
            .collect();
        for order in charges {
            let charge = self.charge(ctx, order);
            ctx.send(self.gateway, charge);
        }
        ctx.set_timer(self.patience, PAYMENTS_SWEEP_TAG);
    }
}

impl Process<Msg> for PaymentsService {
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: sim::TimerId, tag: u64) {
        if tag == PAYMENTS_SWEEP_TAG {
            self.sweep(ctx);
        }
    }

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(self.patience, PAYMENTS_SWEEP_TAG);
        let now = ctx.now_local();
        for record in ctx.read_log(PAYMENTS_LOG) {
            let mut reader = Reader::over(record);
            while !reader.is_done() {
                match reader.u8() {
                    LEDGER_RECORD => {
                        let (order, step, outcome, reason) = read_ledger(&mut reader);
                        self.ledger.record(saga(order), step, outcome);
                        if let Some(reason) = reason {
                            self.reasons.insert(order, reason);
                        }
                        if outcome == StepOutcome::Failed
                            && reason == Some(CancelReason::PaymentFailed)
                            && let Some(charging) = self.charging.get_mut(&order)
                        {
                            // Still to verify.
                            charging.coordinator = None;
                            charging.refund_wanted = true;
                        } else {
                            // Settled: another copy's answer, should one
                            // come, is handled as a stray.
                            self.charging.remove(&order);
                        }
                    }
                    CHARGE_SENT => {
                        let order = reader.order();
                        let request = reader.u64();
                        let coordinator = ProcessId(reader.u32());
                        let amount_cents = reader.u64();
                        let card = card_from(reader.u8());
                        self.requests.insert(request, (order, false));
                        let charging = Charging {
                            request,
                            coordinator: Some(coordinator),
                            amount_cents,
                            card,
                            sent_at: now,
                            refund_wanted: false,
                        };
                        self.charging.insert(order, charging);
                    }
                    tag => panic!("{PAYMENTS_LOG}: unknown record tag {tag}"),
                }
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        match message {
            Msg::Internal(Internal::Execute {
                order,
                after_pivot,
                task: Task::Pay { amount_cents, card },
                ..
            }) => self.execute(ctx, from, order, after_pivot, amount_cents, card),
            Msg::Internal(Internal::Compensate { order, .. }) => self.compensate(ctx, from, order),
            Msg::Gateway(answer) => self.gateway_answer(ctx, answer),
            _ => {}
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.replies.synced(ctx, tag);
    }
}

// ----- Shipping -----

const SHIPPING_LOG: &str = "shipping/log";
const PARCEL_SENT: u8 = 1;

/// Shipping: the pivot. It has Inventory move the reservation to shipped,
/// then sends the parcel; it is never compensated, and the coordinator
/// asks again until it answers.
#[derive(Clone, Debug)]
pub struct ShippingService {
    inventory: ProcessId,
    shipping: Shipping,
    ledger: StepLedger,
    /// Orders waiting for Inventory, with the coordinator to answer.
    waiting: DenseMap<OrderId, ProcessId>,
    replies: Replies,
}

impl ShippingService {
    /// Shipping asking `inventory` to release shipped products.
    pub fn new(inventory: ProcessId) -> ShippingService {
        ShippingService {
            inventory,
            shipping: Shipping::default(),
            ledger: StepLedger::default(),
            waiting: DenseMap::new(),
            replies: Replies::default(),
        }
    }

    /// Parcels sent.
    pub fn shipping(&self) -> &Shipping {
        &self.shipping
    }

    /// Replays `records` of the shipping log.
    pub fn replay(
        records: sim::storage::Records<'_>,
        shipping: &mut Shipping,
        ledger: &mut StepLedger,
    ) {
        for record in records {
            let mut reader = Reader::over(record);
            while !reader.is_done() {
                match reader.u8() {
                    PARCEL_SENT => {
                        shipping.evolve(&ShippingEvent::ParcelSent { order: reader.order() })
                    }
                    LEDGER_RECORD => {
                        let (order, step, outcome, _) = read_ledger(&mut reader);
                        ledger.record(saga(order), step, outcome);
                    }
                    other => panic!("{SHIPPING_LOG}: unknown record tag {other}"),
                }
            }
        }
    }

    fn remember(&mut self, order: OrderId, outcome: StepOutcome) {
        self.ledger.record(saga(order), STEP_SHIP, outcome);
        self.replies.record(|w| ledger_record(w, order, STEP_SHIP, outcome, None));
    }

    fn reply(&mut self, ctx: &mut Ctx<'_, Msg>, to: ProcessId, message: Internal) {
        self.replies.after_sync(ctx, SHIPPING_LOG, to, Msg::Internal(message));
    }
}

impl Process<Msg> for ShippingService {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        Self::replay(ctx.read_log(SHIPPING_LOG), &mut self.shipping, &mut self.ledger);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        let Msg::Internal(message) = message else { return };
        let step = STEP_SHIP;
        match message {
            Internal::Execute { order, after_pivot, task: Task::Ship, .. } => {
                match self.ledger.on_execute(saga(order), step, after_pivot) {
                    LedgerAction::RepeatExecuted => {
                        self.reply(ctx, from, Internal::Executed { order, step });
                    }
                    LedgerAction::Evaluate => {
                        // Asked again while waiting: Inventory's answer may
                        // have been lost, so ask it again too (idempotent).
                        self.waiting.insert(order, from);
                        ctx.send(self.inventory, Msg::Internal(Internal::ShipProducts { order }));
                    }
                    _ => {
                        let reason = CancelReason::ShippingFailed;
                        self.reply(ctx, from, Internal::StepFailed { order, step, reason });
                    }
                }
            }
            Internal::ProductsShipped { order } => {
                let Some(coordinator) = self.waiting.remove(&order) else { return };
                let command = ShippingCommand::ShipOrder { order };
                for event in self.shipping.decide(&command).unwrap_or_default() {
                    ctx.record("ParcelSent", order.0);
                    self.replies.record(|w| w.u8(PARCEL_SENT).u64(order.0));
                    self.shipping.evolve(&event);
                }
                self.remember(order, StepOutcome::Executed);
                self.reply(ctx, coordinator, Internal::Executed { order, step });
            }
            Internal::ShipRefused { order } => {
                let Some(coordinator) = self.waiting.remove(&order) else { return };
                self.remember(order, StepOutcome::Failed);
                let reason = CancelReason::ShippingFailed;
                self.reply(ctx, coordinator, Internal::StepFailed { order, step, reason });
            }
            Internal::Compensate { order, step } => {
                // The pivot is never compensated; answer so nothing waits.
                self.reply(ctx, from, Internal::Compensated { order, step });
            }
            _ => {}
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.replies.synced(ctx, tag);
    }
}
