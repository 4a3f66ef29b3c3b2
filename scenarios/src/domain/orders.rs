//! The Orders aggregate: the system of record of each order's life.

use super::{CancelReason, Events, Lines, OrderId, Rejection, total_cents};
use serde::{Deserialize, Serialize};
use sim::DenseMap;

/// A command to the Orders aggregate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Record a new, validated order.
    CreateOrder {
        /// The order.
        order: OrderId,
        /// Its lines.
        lines: Lines,
    },
    /// Mark it done (all steps succeeded).
    CompleteOrder {
        /// The order.
        order: OrderId,
    },
    /// Mark it cancelled (compensated).
    CancelOrder {
        /// The order.
        order: OrderId,
        /// Why.
        reason: CancelReason,
    },
}

/// A fact about an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// The order exists.
    OrderCreated {
        /// The order.
        order: OrderId,
        /// Its lines.
        lines: Lines,
        /// Its value in cents.
        total_cents: u64,
    },
    /// The order completed.
    OrderCompleted {
        /// The order.
        order: OrderId,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// The order.
        order: OrderId,
        /// Why.
        reason: CancelReason,
    },
}

impl OrderEvent {
    /// The order the event is about.
    pub fn order(&self) -> OrderId {
        match self {
            OrderEvent::OrderCreated { order, .. }
            | OrderEvent::OrderCompleted { order }
            | OrderEvent::OrderCancelled { order, .. } => *order,
        }
    }
}

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, not yet finished.
    Created,
    /// All steps done.
    Completed,
    /// Compensated.
    Cancelled(CancelReason),
}

/// What the aggregate knows of one order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// Its status.
    pub status: OrderStatus,
    /// Its value in cents.
    pub total_cents: u64,
}

/// The Orders aggregate (one instance may hold a shard of many orders;
/// each order is its own unit of consistency).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orders {
    orders: DenseMap<OrderId, OrderRecord>,
}

impl Orders {
    /// Decides a command. Repeating a command that already took effect is
    /// answered with no events (idempotent), not an error, so redelivery is
    /// harmless.
    pub fn decide(&self, command: &OrderCommand) -> Result<Events<OrderEvent>, Rejection> {
        match command {
            OrderCommand::CreateOrder { order, lines } => match self.orders.get(order) {
                Some(_) => Ok(Events::none()),
                None => Ok(Events::one(OrderEvent::OrderCreated {
                    order: *order,
                    lines: lines.clone(),
                    total_cents: total_cents(lines),
                })),
            },
            OrderCommand::CompleteOrder { order } => match self.status(*order) {
                Some(OrderStatus::Created) => {
                    Ok(Events::one(OrderEvent::OrderCompleted { order: *order }))
                }
                Some(OrderStatus::Completed) => Ok(Events::none()),
                Some(OrderStatus::Cancelled(_)) => {
                    Err(Rejection::WrongState(format!("{order} is cancelled")))
                }
                None => Err(Rejection::WrongState(format!("{order} does not exist"))),
            },
            OrderCommand::CancelOrder { order, reason } => match self.status(*order) {
                Some(OrderStatus::Created) => {
                    Ok(Events::one(OrderEvent::OrderCancelled { order: *order, reason: *reason }))
                }
                Some(OrderStatus::Cancelled(_)) => Ok(Events::none()),
                Some(OrderStatus::Completed) => {
                    Err(Rejection::WrongState(format!("{order} is completed")))
                }
                None => Err(Rejection::WrongState(format!("{order} does not exist"))),
            },
        }
    }

    /// Applies an event.
    pub fn evolve(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::OrderCreated { order, total_cents, .. } => {
                self.orders.get_or_insert_with(*order, || OrderRecord {
                    status: OrderStatus::Created,
                    total_cents: *total_cents,
                });
            }
            OrderEvent::OrderCompleted { order } => {
                if let Some(record) = self.orders.get_mut(order) {
                    record.status = OrderStatus::Completed;
                }
            }
            OrderEvent::OrderCancelled { order, reason } => {
                if let Some(record) = self.orders.get_mut(order) {
                    record.status = OrderStatus::Cancelled(*reason);
                }
            }
        }
    }

    /// An order's status, if it exists.
    pub fn status(&self, order: OrderId) -> Option<OrderStatus> {
        self.orders.get(&order).map(|record| record.status)
    }

    /// Every order, in id order.
    pub fn orders(&self) -> &DenseMap<OrderId, OrderRecord> {
        &self.orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Line, ProductId};

    fn lines() -> Lines {
        vec![Line { product: ProductId(0), quantity: 2, unit_price_cents: 150 }].into()
    }

    #[test]
    fn an_order_is_created_once_and_finishes_once() {
        let mut orders = Orders::default();
        let create = OrderCommand::CreateOrder { order: OrderId(1), lines: lines() };
        let events = orders.decide(&create).unwrap();
        assert_eq!(events.len(), 1);
        orders.evolve(&events[0]);
        assert!(orders.decide(&create).unwrap().is_empty(), "a repeated create is a no-op");
        let complete = OrderCommand::CompleteOrder { order: OrderId(1) };
        orders.evolve(&orders.decide(&complete).unwrap()[0]);
        assert_eq!(orders.status(OrderId(1)), Some(OrderStatus::Completed));
        assert!(orders.decide(&complete).unwrap().is_empty());
        let cancel =
            OrderCommand::CancelOrder { order: OrderId(1), reason: CancelReason::OutOfStock };
        assert!(orders.decide(&cancel).is_err(), "a completed order cannot be cancelled");
        assert_eq!(orders.orders()[&OrderId(1)].total_cents, 300);
    }
}
