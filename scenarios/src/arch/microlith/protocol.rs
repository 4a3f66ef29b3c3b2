//! What the microlith's processes say to each other: the customers' and
//! the gateway's protocols, synchronous calls between services
//! (request/response, REST-style), and queries to a database.
//!
//! Every request carries a call id chosen by the caller; the answer echoes
//! it, so the caller can match it to the thread that waits for it, and can
//! tell a late answer (for a call it gave up on) from a current one.

use crate::domain::{
    CancelReason, CardOutcome, InventoryCommand, OrderCommand, OrderId, PaymentEvent, Rejection,
    ShippingCommand,
};
use crate::parts::{Edge, GatewayMsg};
use sim::Message;
use sim::kit::Carry;

/// The microlith world's message type.
#[derive(Clone, Debug, PartialEq)]
pub enum MicrolithMsg {
    /// Between the customers and the Orders service.
    Edge(Edge),
    /// Between the Payments service and the external payment gateway.
    Gateway(GatewayMsg),
    /// A synchronous call from one service to another.
    Call {
        /// The caller's id for this call.
        call: u64,
        /// What is asked.
        request: ServiceRequest,
    },
    /// The answer to a [`MicrolithMsg::Call`].
    Reply {
        /// The caller's id for the call.
        call: u64,
        /// How it went.
        result: CallResult,
    },
    /// A blocking database call from a service.
    Query {
        /// The caller's id for this query.
        call: u64,
        /// The statement.
        query: Query,
    },
    /// The database's answer to a [`MicrolithMsg::Query`].
    QueryResult {
        /// The caller's id for the query.
        call: u64,
        /// How it went.
        result: CallResult,
    },
}

/// What one service asks of another.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceRequest {
    /// To Inventory: reserve, release or ship an order's products.
    Inventory(InventoryCommand),
    /// To Payments: charge the order's total through the gateway.
    SubmitPayment {
        /// The order (the gateway's idempotency key).
        order: OrderId,
        /// How much.
        amount_cents: u64,
        /// What the card issuer will say.
        card: CardOutcome,
    },
    /// To Shipping: send the order's parcel (Shipping asks Inventory to
    /// ship the reserved products first).
    ShipOrder {
        /// The order.
        order: OrderId,
    },
}

/// One statement against a service's tables. The database runs it as one
/// local transaction: it decides the command with the pure domain
/// aggregate (the constraint checks a `SELECT ... FOR UPDATE` would do),
/// writes the resulting events to its write-ahead log, syncs, and only
/// then answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// The Orders table.
    Orders(OrderCommand),
    /// The Inventory tables.
    Inventory(InventoryCommand),
    /// The Shipping table.
    Shipping(ShippingCommand),
    /// The Payments service's record of what the gateway answered.
    Payments(PaymentEvent),
}

/// How a call or a query ended, from the caller's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// It took effect (or had already).
    Done,
    /// A business refusal: an answer, not a failure.
    Refused(Refusal),
    /// Something broke: no thread or connection free, a dependency failed
    /// or timed out. Whether anything happened downstream is unknown.
    Error,
}

/// Why a step was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not enough stock for a line.
    OutOfStock,
    /// The card was declined.
    Declined,
    /// The command did not fit the state (e.g. shipping an order that holds
    /// no reservation).
    WrongState,
    /// The request was malformed.
    Invalid,
}

impl Refusal {
    /// The refusal a domain rejection amounts to.
    pub fn from_rejection(rejection: &Rejection) -> Refusal {
        match rejection {
            Rejection::OutOfStock(_) => Refusal::OutOfStock,
            Rejection::WrongState(_) => Refusal::WrongState,
            Rejection::Invalid(_) => Refusal::Invalid,
        }
    }
}

/// Mixes a code and a word into a digest (splitmix64's finaliser), so
/// digests are stable across platforms and versions.
fn mix(code: u64, word: u64) -> u64 {
    let mut z = word.wrapping_add(code.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl CallResult {
    fn code(self) -> u64 {
        match self {
            CallResult::Done => 1,
            CallResult::Refused(refusal) => 2 + refusal as u64,
            CallResult::Error => 9,
        }
    }
}

fn inventory_digest(command: &InventoryCommand) -> u64 {
    match command {
        InventoryCommand::ReserveProducts { order, lines } => {
            let units: u64 = lines.iter().map(|line| u64::from(line.quantity)).sum();
            mix(1, order.0 ^ (units << 40))
        }
        InventoryCommand::ReleaseReservation { order } => mix(2, order.0),
        InventoryCommand::ShipProducts { order } => mix(3, order.0),
    }
}

fn cancel_code(reason: CancelReason) -> u64 {
    reason as u64
}

impl ServiceRequest {
    fn digest(&self) -> u64 {
        match self {
            ServiceRequest::Inventory(command) => mix(10, inventory_digest(command)),
            ServiceRequest::SubmitPayment { order, amount_cents, card } => {
                mix(11 + *card as u64, order.0 ^ (amount_cents << 24))
            }
            ServiceRequest::ShipOrder { order } => mix(13, order.0),
        }
    }
}

impl Query {
    fn digest(&self) -> u64 {
        match self {
            Query::Orders(OrderCommand::CreateOrder { order, lines }) => {
                mix(20, order.0 ^ ((lines.len() as u64) << 48))
            }
            Query::Orders(OrderCommand::CompleteOrder { order }) => mix(21, order.0),
            Query::Orders(OrderCommand::CancelOrder { order, reason }) => {
                mix(22 + cancel_code(*reason), order.0)
            }
            Query::Inventory(command) => mix(30, inventory_digest(command)),
            Query::Shipping(ShippingCommand::ShipOrder { order }) => mix(31, order.0),
            Query::Payments(PaymentEvent::PaymentApproved { order, amount_cents }) => {
                mix(32, order.0 ^ (amount_cents << 24))
            }
            Query::Payments(PaymentEvent::PaymentDeclined { order }) => mix(33, order.0),
            Query::Payments(PaymentEvent::PaymentRefunded { order, .. }) => mix(34, order.0),
        }
    }
}

impl Message for MicrolithMsg {
    fn label(&self) -> &'static str {
        match self {
            MicrolithMsg::Edge(edge) => edge.label(),
            MicrolithMsg::Gateway(gateway) => gateway.label(),
            MicrolithMsg::Call { request, .. } => match request {
                ServiceRequest::Inventory(InventoryCommand::ReserveProducts { .. }) => {
                    "ReserveProducts"
                }
                ServiceRequest::Inventory(InventoryCommand::ReleaseReservation { .. }) => {
                    "ReleaseReservation"
                }
                ServiceRequest::Inventory(InventoryCommand::ShipProducts { .. }) => "ShipProducts",
                ServiceRequest::SubmitPayment { .. } => "SubmitPayment",
                ServiceRequest::ShipOrder { .. } => "ShipOrder",
            },
            MicrolithMsg::Reply { .. } => "Reply",
            MicrolithMsg::Query { query, .. } => match query {
                Query::Orders(OrderCommand::CreateOrder { .. }) => "CreateOrder",
                Query::Orders(OrderCommand::CompleteOrder { .. }) => "CompleteOrder",
                Query::Orders(OrderCommand::CancelOrder { .. }) => "CancelOrder",
                Query::Inventory(_) => "InventoryQuery",
                Query::Shipping(_) => "ShippingQuery",
                Query::Payments(_) => "PaymentsQuery",
            },
            MicrolithMsg::QueryResult { .. } => "QueryResult",
        }
    }

    fn digest(&self) -> u64 {
        match self {
            MicrolithMsg::Edge(edge) => mix(1, edge.digest()),
            MicrolithMsg::Gateway(gateway) => mix(2, gateway.digest()),
            MicrolithMsg::Call { call, request } => mix(3, call ^ request.digest()),
            MicrolithMsg::Reply { call, result } => mix(4 + result.code(), *call),
            MicrolithMsg::Query { call, query } => mix(20, call ^ query.digest()),
            MicrolithMsg::QueryResult { call, result } => mix(21 + result.code(), *call),
        }
    }
}

impl Carry<Edge> for MicrolithMsg {
    fn wrap(inner: Edge) -> Self {
        MicrolithMsg::Edge(inner)
    }
    fn unwrap(self) -> Result<Edge, Self> {
        match self {
            MicrolithMsg::Edge(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

impl Carry<GatewayMsg> for MicrolithMsg {
    fn wrap(inner: GatewayMsg) -> Self {
        MicrolithMsg::Gateway(inner)
    }
    fn unwrap(self) -> Result<GatewayMsg, Self> {
        match self {
            MicrolithMsg::Gateway(inner) => Ok(inner),
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_follow_content() {
        let a = MicrolithMsg::Reply { call: 1, result: CallResult::Done };
        let b = MicrolithMsg::Reply { call: 1, result: CallResult::Error };
        let c = MicrolithMsg::Reply { call: 2, result: CallResult::Done };
        assert_ne!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.digest(), a.clone().digest());
    }
}
