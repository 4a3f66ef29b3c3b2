//! The facts the services publish to the broker, one topic per service.
//!
//! A fact carries what its consumers need to act without asking anyone
//! (event-carried state): `ProductsReserved` carries the amount and the
//! card, so Payments can charge without querying Orders.

use crate::domain::{CancelReason, CardOutcome, Lines, OrderId, ProductId};
use serde::{Deserialize, Serialize};

/// Order events, published by Orders.
pub const TOPIC_ORDERS: &str = "orders";
/// Inventory events, published by Inventory.
pub const TOPIC_INVENTORY: &str = "inventory";
/// Payment events, published by Payments.
pub const TOPIC_PAYMENTS: &str = "payments";
/// Shipping events, published by Shipping.
pub const TOPIC_SHIPPING: &str = "shipping";

/// Every topic, in the order the broker is configured with them.
pub const TOPICS: [&str; 4] = [TOPIC_ORDERS, TOPIC_INVENTORY, TOPIC_PAYMENTS, TOPIC_SHIPPING];

/// A fact one service tells the others, through the broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fact {
    /// Orders recorded a new order (the saga starts).
    OrderCreated {
        /// The order.
        order: OrderId,
        /// Its lines.
        lines: Lines,
        /// Its value.
        total_cents: u64,
        /// What the card issuer will say.
        card: CardOutcome,
    },
    /// Inventory holds the order's products.
    ProductsReserved {
        /// The order.
        order: OrderId,
        /// What to charge.
        total_cents: u64,
        /// What the card issuer will say.
        card: CardOutcome,
    },
    /// Inventory could not hold the products.
    ReservationRejected {
        /// The order.
        order: OrderId,
        /// The product short of stock.
        product: ProductId,
    },
    /// Inventory gave the reservation back (a compensation).
    ReservationReleased {
        /// The order.
        order: OrderId,
    },
    /// Inventory handed the products to shipping (the pivot).
    ProductsShipped {
        /// The order.
        order: OrderId,
    },
    /// The gateway charged the card.
    PaymentApproved {
        /// The order.
        order: OrderId,
        /// How much.
        amount_cents: u64,
    },
    /// The card was declined.
    PaymentDeclined {
        /// The order.
        order: OrderId,
    },
    /// The payment could not be made (gateway errors, timeouts, or an open
    /// breaker failing fast).
    PaymentFailed {
        /// The order.
        order: OrderId,
        /// Whether a call timed out, so the gateway may have charged: a
        /// refund follows.
        outcome_unknown: bool,
    },
    /// A refund of an unknown-outcome payment was confirmed by the gateway
    /// (a no-op there if nothing had been charged).
    PaymentRefunded {
        /// The order.
        order: OrderId,
    },
    /// Shipping sent the parcel.
    ParcelSent {
        /// The order.
        order: OrderId,
    },
}

impl Fact {
    /// The order it is about (the record's key, so one order's facts stay
    /// in one partition, in order).
    pub fn order(&self) -> OrderId {
        match self {
            Fact::OrderCreated { order, .. }
            | Fact::ProductsReserved { order, .. }
            | Fact::ReservationRejected { order, .. }
            | Fact::ReservationReleased { order }
            | Fact::ProductsShipped { order }
            | Fact::PaymentApproved { order, .. }
            | Fact::PaymentDeclined { order }
            | Fact::PaymentFailed { order, .. }
            | Fact::PaymentRefunded { order }
            | Fact::ParcelSent { order } => *order,
        }
    }

    /// Its name, past tense, for traces.
    pub fn label(&self) -> &'static str {
        match self {
            Fact::OrderCreated { .. } => "OrderCreated",
            Fact::ProductsReserved { .. } => "ProductsReserved",
            Fact::ReservationRejected { .. } => "ReservationRejected",
            Fact::ReservationReleased { .. } => "ReservationReleased",
            Fact::ProductsShipped { .. } => "ProductsShipped",
            Fact::PaymentApproved { .. } => "PaymentApproved",
            Fact::PaymentDeclined { .. } => "PaymentDeclined",
            Fact::PaymentFailed { .. } => "PaymentFailed",
            Fact::PaymentRefunded { .. } => "PaymentRefunded",
            Fact::ParcelSent { .. } => "ParcelSent",
        }
    }

    /// The topic it goes to: its publisher's.
    pub fn topic(&self) -> &'static str {
        match self {
            Fact::OrderCreated { .. } => TOPIC_ORDERS,
            Fact::ProductsReserved { .. }
            | Fact::ReservationRejected { .. }
            | Fact::ReservationReleased { .. }
            | Fact::ProductsShipped { .. } => TOPIC_INVENTORY,
            Fact::PaymentApproved { .. }
            | Fact::PaymentDeclined { .. }
            | Fact::PaymentFailed { .. }
            | Fact::PaymentRefunded { .. } => TOPIC_PAYMENTS,
            Fact::ParcelSent { .. } => TOPIC_SHIPPING,
        }
    }

    /// A digest of the content, for the trace hash.
    pub fn digest(&self) -> u64 {
        let code: u64 = match self {
            Fact::OrderCreated { total_cents, .. } => 1 ^ total_cents.rotate_left(8),
            Fact::ProductsReserved { total_cents, .. } => 2 ^ total_cents.rotate_left(8),
            Fact::ReservationRejected { product, .. } => 3 ^ u64::from(product.0).rotate_left(8),
            Fact::ReservationReleased { .. } => 4,
            Fact::ProductsShipped { .. } => 5,
            Fact::PaymentApproved { amount_cents, .. } => 6 ^ amount_cents.rotate_left(8),
            Fact::PaymentDeclined { .. } => 7,
            Fact::PaymentFailed { outcome_unknown, .. } => 8 + u64::from(*outcome_unknown),
            Fact::PaymentRefunded { .. } => 10,
            Fact::ParcelSent { .. } => 11,
        };
        code.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.order().0
    }
}

/// The cancel reason a payment fact implies for the order, if any.
pub fn cancel_reason(fact: &Fact) -> Option<CancelReason> {
    match fact {
        Fact::ReservationRejected { .. } => Some(CancelReason::OutOfStock),
        Fact::PaymentDeclined { .. } => Some(CancelReason::PaymentDeclined),
        Fact::PaymentFailed { .. } => Some(CancelReason::PaymentFailed),
        _ => None,
    }
}
