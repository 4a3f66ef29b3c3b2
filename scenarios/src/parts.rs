//! Processes every order world shares, whatever its architecture: the
//! customers ([`Clients`]) and the external payment gateway
//! ([`PaymentGateway`]), with the protocols they speak ([`Edge`],
//! [`GatewayMsg`]). An architecture's message type carries both through
//! [`sim::kit::Carry`].

pub mod client;
pub mod gateway;

pub use client::{Clients, ClientsConfig, Request, RequestOutcome};
pub use gateway::{GatewayMsg, PaymentGateway};

use crate::domain::{CancelReason, OrderId, PlaceOrder};
use serde::{Deserialize, Serialize};

/// Between the customers and the system's front door.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Edge {
    /// A customer places an order.
    PlaceOrder(PlaceOrder),
    /// The system's final word on an order.
    OrderAnswered {
        /// The order.
        order: OrderId,
        /// How it ended.
        answer: Answer,
    },
}

impl Edge {
    /// A label for traces.
    pub fn label(&self) -> &'static str {
        match self {
            Edge::PlaceOrder(_) => "PlaceOrder",
            Edge::OrderAnswered { .. } => "OrderAnswered",
        }
    }

    /// A digest of the content for the trace hash.
    pub fn digest(&self) -> u64 {
        match self {
            Edge::PlaceOrder(request) => request.order.0.wrapping_mul(0x9E37_79B9),
            Edge::OrderAnswered { order, answer } => order.0.wrapping_mul(31) ^ answer.code(),
        }
    }
}

/// How an order ended, as the customer is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// Paid and shipped.
    Completed,
    /// Cancelled (and compensated) for this reason.
    Cancelled(CancelReason),
    /// The system could not take or finish the order (overload, a failed
    /// dependency, a timeout inside the system).
    Failed,
}

impl Answer {
    fn code(self) -> u64 {
        match self {
            Answer::Completed => 1,
            Answer::Cancelled(reason) => 2 + reason as u64,
            Answer::Failed => 100,
        }
    }

    /// Whether this is a successful answer: the order completed, or was
    /// refused for a business reason the customer can act on (no stock, a
    /// declined card). System failures are not.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Answer::Completed
                | Answer::Cancelled(CancelReason::OutOfStock | CancelReason::PaymentDeclined)
        )
    }
}
