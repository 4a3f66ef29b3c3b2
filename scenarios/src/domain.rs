//! The order business, as pure domain logic: no engine, no time, no I/O.
//!
//! Commands are intents (imperative), events are facts (past tense);
//! aggregates decide commands into events and evolve by applying events
//! (Reactive Microsystems, ch. 4). Strong consistency lives only inside one
//! aggregate; aggregates refer to each other by id. The same functions run
//! inside every architecture, so differences between architectures come
//! from how they are wired, never from different business rules.
//!
//! ```
//! use scenarios::domain::{Inventory, InventoryCommand, InventoryEvent, Line, OrderId, ProductId};
//!
//! let mut inventory = Inventory::with_stock([(ProductId(1), 2)]);
//! let lines = vec![Line { product: ProductId(1), quantity: 2, unit_price_cents: 500 }];
//! let events = inventory.decide(&InventoryCommand::ReserveProducts { order: OrderId(7), lines: lines.into() }).unwrap();
//! assert!(matches!(events[0], InventoryEvent::ProductsReserved { .. }));
//! inventory.evolve(&events[0]);
//! assert_eq!(inventory.available(ProductId(1)), 0);
//! ```

pub mod inventory;
pub mod orders;
pub mod payments;
pub mod shipping;

pub use inventory::{Inventory, InventoryCommand, InventoryEvent, StockCount};
pub use orders::{OrderCommand, OrderEvent, OrderStatus, Orders};
pub use payments::{CardOutcome, PaymentCommand, PaymentEvent, Payments};
pub use shipping::{Shipping, ShippingCommand, ShippingEvent};

use serde::{Deserialize, Serialize};
use sim::DenseKey;
use std::fmt;
use std::sync::Arc;

/// An order, by id. Ids are given by the workload and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrderId(pub u64);

/// A product in the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductId(pub u32);

/// A customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(pub u32);

/// Order ids are numbered densely by the workload, so the aggregates keep
/// their per-order state in [`sim::DenseMap`]s.
impl DenseKey for OrderId {
    fn position(self) -> u64 {
        self.0
    }
}

/// Product ids run from 0 to the catalogue's size.
impl DenseKey for ProductId {
    fn position(self) -> u64 {
        u64::from(self.0)
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order-{}", self.0)
    }
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// What.
    pub product: ProductId,
    /// How many.
    pub quantity: u32,
    /// Price of one, in cents (integers: money is never a float).
    pub unit_price_cents: u64,
}

/// An order's lines, shared rather than copied: they never change once the
/// workload has drawn them, yet travel from the customer's request through
/// the saga into the Orders and Inventory commands, events and state, so each
/// of those holds a reference to the one allocation. Serialises exactly like
/// a `Vec<Line>` (a sequence), so logs, traces and digests are unchanged.
pub type Lines = Arc<[Line]>;

/// The events a command was decided into: none (a repeat of a command that
/// took effect) or one. No command of this domain decides into more, so the
/// event is kept inline rather than in a vector allocated per command; it
/// reads as a slice (`events[0]`, `events.is_empty()`, `for event in
/// &events`).
#[derive(Clone, PartialEq, Eq)]
pub struct Events<E>(Option<E>);

impl<E> Events<E> {
    /// No event.
    pub fn none() -> Events<E> {
        Events(None)
    }

    /// One event.
    pub fn one(event: E) -> Events<E> {
        Events(Some(event))
    }
}

impl<E> Default for Events<E> {
    fn default() -> Events<E> {
        Events::none()
    }
}

impl<E> std::ops::Deref for Events<E> {
    type Target = [E];

    fn deref(&self) -> &[E] {
        self.0.as_slice()
    }
}

impl<E> IntoIterator for Events<E> {
    type Item = E;
    type IntoIter = std::option::IntoIter<E>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, E> IntoIterator for &'a Events<E> {
    type Item = &'a E;
    type IntoIter = std::slice::Iter<'a, E>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<E> From<Events<E>> for Vec<E> {
    fn from(events: Events<E>) -> Vec<E> {
        events.into_iter().collect()
    }
}

impl<E: fmt::Debug> fmt::Debug for Events<E> {
    /// As a list, the way a vector of events prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The total of some lines, in cents.
pub fn total_cents(lines: &[Line]) -> u64 {
    lines.iter().map(|line| u64::from(line.quantity) * line.unit_price_cents).sum()
}

/// What the customer asks for at the edge. The stateless processing layer
/// validates and prices it, then sends `CreateOrder` to the Orders
/// aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// The order's id (chosen by the workload, so every architecture sees
    /// the same ids).
    pub order: OrderId,
    /// Who.
    pub customer: CustomerId,
    /// What.
    pub lines: Lines,
    /// What the card issuer will answer (drawn by the workload, so every
    /// architecture sees the same declines).
    pub card: CardOutcome,
}

/// Why a command was refused. Refusals are answers, not errors: a declined
/// card is business as usual.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rejection {
    /// The order is malformed (no lines, zero quantity, unknown product).
    Invalid(String),
    /// Not enough stock for a line.
    OutOfStock(ProductId),
    /// The command does not fit the aggregate's state (e.g. completing a
    /// cancelled order).
    WrongState(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Invalid(why) => write!(f, "invalid order: {why}"),
            Rejection::OutOfStock(product) => write!(f, "out of stock: product {}", product.0),
            Rejection::WrongState(why) => write!(f, "wrong state: {why}"),
        }
    }
}

/// Why an order ended cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// Inventory could not reserve the products.
    OutOfStock,
    /// The card was declined.
    PaymentDeclined,
    /// Payment failed or its outcome was unknown (gateway error, timeout).
    PaymentFailed,
    /// Shipping could not be arranged.
    ShippingFailed,
}

/// Validates and prices an order request: the stateless part of the
/// Orders service (the anti-corruption layer). `catalogue_size` bounds the
/// product ids.
pub fn validate(request: &PlaceOrder, catalogue_size: u32) -> Result<(), Rejection> {
    if request.lines.is_empty() {
        return Err(Rejection::Invalid("no lines".to_string()));
    }
    for line in request.lines.iter() {
        if line.quantity == 0 {
            return Err(Rejection::Invalid(format!("zero quantity of product {}", line.product.0)));
        }
        if line.product.0 >= catalogue_size {
            return Err(Rejection::Invalid(format!("unknown product {}", line.product.0)));
        }
    }
    Ok(())
}
