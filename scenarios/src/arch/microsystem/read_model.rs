//! The query side (CQRS): order status as a read model, derived from the
//! Orders shards' event streams through the broker by the kit's
//! [`Projection`](sim::kit::projection::Projection).
//!
//! Each shard's active publishes the status changes it has applied, in log
//! order, as batches ([`StatusBatch`]) keyed by shard. Publishing is at
//! least once: a producer retries unacknowledged batches, and a newly
//! promoted active publishes its whole log again (it cannot know what its
//! predecessor got out before it died). The model is therefore built to
//! take duplicates and reorderings: a terminal status (completed,
//! cancelled) is never overwritten by `created`, and an order has only one
//! terminal status, so applying any mix of copies gives the same model.

use crate::domain::{OrderEvent, OrderId, OrderStatus};
use serde::{Deserialize, Serialize};
use sim::kit::projection::{Position, ReadModel};
use std::sync::Arc;

/// Status changes of one shard, in the order its log applied them:
/// (order id, status code: 1 created, 2 completed, 10 + reason cancelled).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBatch {
    /// The changes. Shared, not copied, by the producer's retry buffer,
    /// the broker's partition and every fetch that hands them out;
    /// serialises like a vector.
    pub changes: Arc<[(u64, u8)]>,
}

const CREATED: u8 = 1;
const COMPLETED: u8 = 2;
const CANCELLED_BASE: u8 = 10;

/// The status an event leaves its order in, as one byte.
pub fn status_code(event: &OrderEvent) -> u8 {
    match event {
        OrderEvent::OrderCreated { .. } => CREATED,
        OrderEvent::OrderCompleted { .. } => COMPLETED,
        OrderEvent::OrderCancelled { reason, .. } => {
            CANCELLED_BASE + super::codec::reason_code(*reason)
        }
    }
}

/// The status a code stands for (`None` for 0, "never heard of").
pub fn status_from(code: u8) -> Option<OrderStatus> {
    match code {
        0 => None,
        CREATED => Some(OrderStatus::Created),
        COMPLETED => Some(OrderStatus::Completed),
        code => Some(OrderStatus::Cancelled(super::codec::reason_from(code - CANCELLED_BASE))),
    }
}

/// Order status by order id. Order ids are dense from 1 (the workload
/// numbers them), so a byte per order in a vector is the whole model: it
/// is snapshotted as it is, and small snapshots keep the projection cheap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    statuses: Vec<u8>,
}

impl StatusView {
    /// An order's status as the model has it.
    pub fn status(&self, order: OrderId) -> Option<OrderStatus> {
        let code = usize::try_from(order.0).ok().and_then(|index| self.statuses.get(index));
        code.and_then(|code| status_from(*code))
    }

    /// Every order the model knows, with its status, in id order.
    pub fn orders(&self) -> impl Iterator<Item = (OrderId, OrderStatus)> + '_ {
        self.statuses
            .iter()
            .enumerate()
            .filter_map(|(index, code)| status_from(*code).map(|s| (OrderId(index as u64), s)))
    }

    fn set(&mut self, order: u64, code: u8) {
        let Ok(index) = usize::try_from(order) else { return };
        if self.statuses.len() <= index {
            self.statuses.resize(index + 1, 0);
        }
        let current = &mut self.statuses[index];
        // Created never overwrites a terminal status: duplicates and
        // republished logs leave the model as it was.
        if code != CREATED || *current == 0 {
            *current = code;
        }
    }
}

impl ReadModel for StatusView {
    type Event = StatusBatch;
    type Query = OrderId;
    type Answer = Option<u8>;

    fn apply(&mut self, _position: Position, batch: &StatusBatch) {
        for (order, code) in batch.changes.iter() {
            self.set(*order, *code);
        }
    }

    fn answer(&self, order: &OrderId) -> Option<u8> {
        let index = usize::try_from(order.0).ok()?;
        self.statuses.get(index).copied().filter(|code| *code != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CancelReason;

    fn cancelled_code(reason: CancelReason) -> u8 {
        CANCELLED_BASE + super::super::codec::reason_code(reason)
    }

    #[test]
    fn copies_and_reorderings_give_the_same_model() {
        // Goal: at-least-once publishing is harmless: a created after a
        // terminal status, or a whole batch twice, changes nothing.
        let done = StatusBatch { changes: vec![(1, CREATED), (1, COMPLETED), (2, CREATED)].into() };
        let late = StatusBatch {
            changes: vec![(1, CREATED), (2, cancelled_code(CancelReason::OutOfStock))].into(),
        };
        let mut once = StatusView::default();
        once.apply(Position::default(), &done);
        once.apply(Position::default(), &late);
        let mut twice = once.clone();
        twice.apply(Position::default(), &done);
        twice.apply(Position::default(), &late);
        assert_eq!(once, twice);
        assert_eq!(once.status(OrderId(1)), Some(OrderStatus::Completed));
        assert_eq!(once.status(OrderId(2)), Some(OrderStatus::Cancelled(CancelReason::OutOfStock)));
        assert_eq!(once.status(OrderId(3)), None);
        assert_eq!(once.orders().count(), 2);
    }
}
