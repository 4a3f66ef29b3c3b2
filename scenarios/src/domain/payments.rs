//! The Payments aggregate: the ledger of charges and refunds, as kept by
//! the external payment gateway (the truth about money).
//!
//! Charges are keyed by order, so a retried charge for the same order is
//! answered from the ledger instead of charging again (an idempotency key),
//! and a refund of a charge that never happened is a no-op: that is what
//! makes "refund when the outcome is unknown" safe.

use super::{Events, OrderId, Rejection};
use serde::{Deserialize, Serialize};
use sim::DenseMap;

/// What the card issuer answers for an order (drawn by the workload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardOutcome {
    /// The charge goes through.
    Approve,
    /// The card is declined.
    Decline,
}

/// A command to Payments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Charge the order's total.
    SubmitPayment {
        /// The order (the idempotency key).
        order: OrderId,
        /// How much, in cents.
        amount_cents: u64,
        /// What the issuer will say.
        card: CardOutcome,
    },
    /// Give the charge back (compensation).
    RefundPayment {
        /// The order.
        order: OrderId,
    },
}

/// A fact about money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentEvent {
    /// The card was charged.
    PaymentApproved {
        /// The order.
        order: OrderId,
        /// How much.
        amount_cents: u64,
    },
    /// The card was declined; nothing was charged.
    PaymentDeclined {
        /// The order.
        order: OrderId,
    },
    /// The charge was given back.
    PaymentRefunded {
        /// The order.
        order: OrderId,
        /// How much.
        amount_cents: u64,
    },
}

/// The ledger.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payments {
    charged: DenseMap<OrderId, u64>,
    declined: DenseMap<OrderId, ()>,
    refunded: DenseMap<OrderId, u64>,
    /// Charges made per order, counting every time money moved; more than
    /// one means a double charge (which the idempotency key prevents, and
    /// a test without it shows).
    charge_count: DenseMap<OrderId, u32>,
}

impl Payments {
    /// Decides a command; a repeated charge answers with the earlier
    /// outcome and moves no money.
    pub fn decide(&self, command: &PaymentCommand) -> Result<Events<PaymentEvent>, Rejection> {
        match command {
            PaymentCommand::SubmitPayment { order, amount_cents, card } => {
                if let Some(amount) = self.charged.get(order) {
                    return Ok(Events::one(PaymentEvent::PaymentApproved {
                        order: *order,
                        amount_cents: *amount,
                    }));
                }
                if self.declined.contains_key(order) || *card == CardOutcome::Decline {
                    return Ok(Events::one(PaymentEvent::PaymentDeclined { order: *order }));
                }
                if self.refunded.contains_key(order) {
                    // Refunded before the charge arrived (a late charge after
                    // a blind refund): refuse rather than take money for an
                    // order that was given up.
                    return Err(Rejection::WrongState(format!("{order} was already refunded")));
                }
                Ok(Events::one(PaymentEvent::PaymentApproved {
                    order: *order,
                    amount_cents: *amount_cents,
                }))
            }
            PaymentCommand::RefundPayment { order } => match self.charged.get(order) {
                Some(amount) if !self.refunded.contains_key(order) => {
                    Ok(Events::one(PaymentEvent::PaymentRefunded {
                        order: *order,
                        amount_cents: *amount,
                    }))
                }
                // Never charged, or refunded already: nothing to give back.
                _ => Ok(Events::none()),
            },
        }
    }

    /// Applies an event. An approval for an order already charged is a
    /// replay and moves no money.
    pub fn evolve(&mut self, event: &PaymentEvent) {
        match event {
            PaymentEvent::PaymentApproved { order, amount_cents } => {
                if !self.charged.contains_key(order) {
                    self.charged.insert(*order, *amount_cents);
                    *self.charge_count.get_or_insert_with(*order, || 0) += 1;
                }
            }
            PaymentEvent::PaymentDeclined { order } => {
                self.declined.insert(*order, ());
            }
            PaymentEvent::PaymentRefunded { order, amount_cents } => {
                self.refunded.get_or_insert_with(*order, || *amount_cents);
            }
        }
    }

    /// Records a charge without the idempotency check: what a gateway
    /// without idempotency keys does when a request is retried. Used to
    /// show the protection matters.
    pub fn charge_again(&mut self, order: OrderId, amount_cents: u64) {
        *self.charged.get_or_insert_with(order, || 0) += amount_cents;
        *self.charge_count.get_or_insert_with(order, || 0) += 1;
    }

    /// Cents charged per order (the sum of all charges for it).
    pub fn charged(&self) -> &DenseMap<OrderId, u64> {
        &self.charged
    }

    /// Cents refunded per order.
    pub fn refunded(&self) -> &DenseMap<OrderId, u64> {
        &self.refunded
    }

    /// How many times money was taken for each order.
    pub fn charge_count(&self) -> &DenseMap<OrderId, u32> {
        &self.charge_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_idempotent_and_blind_refunds_are_no_ops() {
        let mut payments = Payments::default();
        let submit = PaymentCommand::SubmitPayment {
            order: OrderId(1),
            amount_cents: 500,
            card: CardOutcome::Approve,
        };
        for _ in 0..3 {
            for event in payments.decide(&submit).unwrap() {
                payments.evolve(&event);
            }
        }
        assert_eq!(payments.charged()[&OrderId(1)], 500);
        assert_eq!(payments.charge_count()[&OrderId(1)], 1);
        let blind = PaymentCommand::RefundPayment { order: OrderId(2) };
        assert!(payments.decide(&blind).unwrap().is_empty());
        let refund = PaymentCommand::RefundPayment { order: OrderId(1) };
        for _ in 0..2 {
            for event in payments.decide(&refund).unwrap() {
                payments.evolve(&event);
            }
        }
        assert_eq!(payments.refunded()[&OrderId(1)], 500);
    }
}
