//! The external payment gateway: slow or failing on purpose, and the
//! keeper of the truth about money.
//!
//! Every charge and refund goes into a [`Payments`] ledger that is written
//! to the node's storage and synced before the gateway answers, so a crash
//! of the gateway loses no money movement it confirmed. The ledger is what
//! the money invariants are checked against.

use crate::domain::{CardOutcome, OrderId, PaymentCommand, PaymentEvent, Payments};
use crate::scenario::Gateway;
use serde::{Deserialize, Serialize};
use sim::kit::Carry;
use sim::storage::LogId;
use sim::{Ctx, DenseMap, Process, ProcessId, TimerId};

/// The gateway's protocol. `request` is the caller's id for matching
/// answers; the order is the idempotency key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum GatewayMsg {
    /// Take money.
    Charge {
        /// The caller's request id.
        request: u64,
        /// The order.
        order: OrderId,
        /// How much.
        amount_cents: u64,
        /// What the card issuer says.
        card: CardOutcome,
    },
    /// Give it back.
    Refund {
        /// The caller's request id.
        request: u64,
        /// The order.
        order: OrderId,
    },
    /// Money was taken (or had been, for a retry).
    Charged {
        /// The caller's request id.
        request: u64,
        /// The order.
        order: OrderId,
    },
    /// The card was declined.
    Declined {
        /// The caller's request id.
        request: u64,
        /// The order.
        order: OrderId,
    },
    /// Money was given back (or there was nothing to give back).
    Refunded {
        /// The caller's request id.
        request: u64,
        /// The order.
        order: OrderId,
    },
    /// The gateway failed; nothing happened.
    Failed {
        /// The caller's request id.
        request: u64,
        /// The order.
        order: OrderId,
    },
}

impl GatewayMsg {
    /// A label for traces.
    pub fn label(&self) -> &'static str {
        match self {
            GatewayMsg::Charge { .. } => "Charge",
            GatewayMsg::Refund { .. } => "Refund",
            GatewayMsg::Charged { .. } => "Charged",
            GatewayMsg::Declined { .. } => "Declined",
            GatewayMsg::Refunded { .. } => "Refunded",
            GatewayMsg::Failed { .. } => "GatewayFailed",
        }
    }

    /// A digest of the content for the trace hash.
    pub fn digest(&self) -> u64 {
        let (code, request, order) = match self {
            GatewayMsg::Charge { request, order, amount_cents, .. } => {
                (1 ^ amount_cents.wrapping_mul(7), *request, *order)
            }
            GatewayMsg::Refund { request, order } => (2, *request, *order),
            GatewayMsg::Charged { request, order } => (3, *request, *order),
            GatewayMsg::Declined { request, order } => (4, *request, *order),
            GatewayMsg::Refunded { request, order } => (5, *request, *order),
            GatewayMsg::Failed { request, order } => (6, *request, *order),
        };
        code.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ request.wrapping_mul(31) ^ order.0
    }
}

const LEDGER: &str = "gateway/ledger";

/// A request waiting for its processing time to pass.
#[derive(Clone, Debug)]
struct Working {
    from: ProcessId,
    message: GatewayMsg,
}

/// The gateway process.
pub struct PaymentGateway<M> {
    config: Gateway,
    ledger: Payments,
    /// Requests being processed and answers waiting for their ledger
    /// write to be durable, by tag (counted up, shared by both).
    working: DenseMap<u64, Working>,
    unsynced: DenseMap<u64, (ProcessId, GatewayMsg)>,
    next_tag: u64,
    /// Where the ledger's log is in storage, once written to.
    ledger_log_id: Option<LogId>,
    _message: std::marker::PhantomData<M>,
}

impl<M: Carry<GatewayMsg>> PaymentGateway<M> {
    /// A gateway behaving as `config` says.
    pub fn new(config: Gateway) -> PaymentGateway<M> {
        PaymentGateway {
            config,
            ledger: Payments::default(),
            working: DenseMap::new(),
            unsynced: DenseMap::new(),
            next_tag: 0,
            ledger_log_id: None,
            _message: std::marker::PhantomData,
        }
    }

    /// The ledger: every charge and refund made.
    pub fn ledger(&self) -> &Payments {
        &self.ledger
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    fn record(&mut self, ctx: &mut Ctx<'_, M>, event: &PaymentEvent) {
        self.ledger.evolve(event);
        self.append(ctx, event);
    }

    /// Writes `event` to the ledger's log.
    fn append(&mut self, ctx: &mut Ctx<'_, M>, event: &PaymentEvent) {
        // Encoded straight onto the log, with no scratch buffer, in
        // postcard rather than JSON: every charge of a run is written here,
        // and JSON cost ten times the instructions and three times the
        // bytes.
        let written = ctx.append_records(LEDGER, self.ledger_log_id, 1, |_, bytes| {
            postcard::to_io(event, bytes).map(drop)
        });
        self.ledger_log_id = Some(written.expect("payment events serialise"));
    }

    fn process(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: GatewayMsg) {
        if self.config.failure_rate > 0.0 && ctx.rng().chance(self.config.failure_rate) {
            let (request, order) = match &message {
                GatewayMsg::Charge { request, order, .. }
                | GatewayMsg::Refund { request, order } => (*request, *order),
                _ => return,
            };
            ctx.count("gateway.failed", 1);
            ctx.send(from, M::wrap(GatewayMsg::Failed { request, order }));
            return;
        }
        let answer = match message {
            GatewayMsg::Charge { request, order, amount_cents, card } => {
                if !self.config.idempotent && self.ledger.charged().contains_key(&order) {
                    // No idempotency key: a retry takes the money again.
                    self.ledger.charge_again(order, amount_cents);
                    self.append(ctx, &PaymentEvent::PaymentApproved { order, amount_cents });
                    ctx.count("gateway.double_charged", 1);
                    GatewayMsg::Charged { request, order }
                } else {
                    let command = PaymentCommand::SubmitPayment { order, amount_cents, card };
                    // A retry answered from the ledger moves no money; it must
                    // not be written again, or recovery reads the repeated
                    // approval as a double charge.
                    let repeated = self.ledger.charged().contains_key(&order);
                    match self.ledger.decide(&command) {
                        Ok(events) => {
                            let mut answer = GatewayMsg::Declined { request, order };
                            for event in &events {
                                if let PaymentEvent::PaymentApproved { .. } = event {
                                    answer = GatewayMsg::Charged { request, order };
                                }
                                if !repeated {
                                    self.record(ctx, event);
                                }
                            }
                            answer
                        }
                        Err(_) => GatewayMsg::Declined { request, order },
                    }
                }
            }
            GatewayMsg::Refund { request, order } => {
                let command = PaymentCommand::RefundPayment { order };
                for event in self.ledger.decide(&command).unwrap_or_default() {
                    self.record(ctx, &event);
                }
                GatewayMsg::Refunded { request, order }
            }
            _ => return,
        };
        // Answer only once the ledger write is durable.
        let tag = self.tag();
        self.unsynced.insert(tag, (from, answer));
        ctx.sync(tag);
    }
}

impl<M: Carry<GatewayMsg>> Process<M> for PaymentGateway<M> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        // Recover the ledger: the storage holds only what was synced.
        for record in ctx.read_log(LEDGER) {
            if let Ok(event) = postcard::from_bytes::<PaymentEvent>(record) {
                if let PaymentEvent::PaymentApproved { order, amount_cents } = &event
                    && self.ledger.charged().contains_key(order)
                {
                    // A recorded double charge (non-idempotent mode).
                    self.ledger.charge_again(*order, *amount_cents);
                    continue;
                }
                self.ledger.evolve(&event);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        if !matches!(message, GatewayMsg::Charge { .. } | GatewayMsg::Refund { .. }) {
            return;
        }
        // The gateway's own processing time; it serves requests in parallel
        // (an external service with plenty of capacity).
        let delay = self.config.latency.sample(ctx.rng());
        let tag = self.tag();
        self.working.insert(tag, Working { from, message });
        ctx.set_timer(delay, tag);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, _timer: TimerId, tag: u64) {
        if let Some(working) = self.working.remove(&tag) {
            self.process(ctx, working.from, working.message);
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        if let Some((to, answer)) = self.unsynced.remove(&tag) {
            ctx.send(to, M::wrap(answer));
        }
    }
}
