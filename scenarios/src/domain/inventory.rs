//! The Inventory aggregate: stock, reservations and shipments.
//!
//! Stock is conserved by construction: every unit is either available,
//! reserved for one order, or shipped. A reservation is released (back to
//! available) or shipped, never both.

use super::{Events, Line, Lines, OrderId, ProductId, Rejection};
use serde::{Deserialize, Serialize};
use sim::DenseMap;

/// A command to Inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryCommand {
    /// Hold the order's products (all lines or none).
    ReserveProducts {
        /// The order.
        order: OrderId,
        /// What to hold.
        lines: Lines,
    },
    /// Give a reservation back (compensation).
    ReleaseReservation {
        /// The order.
        order: OrderId,
    },
    /// Hand a reservation to shipping: the pivot of the saga.
    ShipProducts {
        /// The order.
        order: OrderId,
    },
}

/// A fact about stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InventoryEvent {
    /// The lines are held for the order.
    ProductsReserved {
        /// The order.
        order: OrderId,
        /// What was held.
        lines: Lines,
    },
    /// The reservation went back to stock.
    ReservationReleased {
        /// The order.
        order: OrderId,
    },
    /// The reserved products left the warehouse.
    ProductsShipped {
        /// The order.
        order: OrderId,
    },
}

/// Stock per product, reservations and shipments per order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    available: DenseMap<ProductId, u64>,
    reserved: DenseMap<OrderId, Lines>,
    shipped: DenseMap<OrderId, Lines>,
    released: DenseMap<OrderId, Lines>,
}

impl Inventory {
    /// An inventory holding the given stock.
    pub fn with_stock(stock: impl IntoIterator<Item = (ProductId, u64)>) -> Inventory {
        Inventory { available: stock.into_iter().collect(), ..Inventory::default() }
    }

    /// Decides a command; repeats of commands that took effect are no-ops.
    pub fn decide(&self, command: &InventoryCommand) -> Result<Events<InventoryEvent>, Rejection> {
        match command {
            InventoryCommand::ReserveProducts { order, lines } => {
                if self.reserved.contains_key(order)
                    || self.shipped.contains_key(order)
                    || self.released.contains_key(order)
                {
                    // Reserved before (or already finished with): a
                    // redelivered command must not hold stock twice.
                    return Ok(Events::none());
                }
                if let Some(product) = self.first_short(lines) {
                    return Err(Rejection::OutOfStock(product));
                }
                Ok(Events::one(InventoryEvent::ProductsReserved {
                    order: *order,
                    lines: lines.clone(),
                }))
            }
            InventoryCommand::ReleaseReservation { order } => {
                if self.reserved.contains_key(order) {
                    Ok(Events::one(InventoryEvent::ReservationReleased { order: *order }))
                } else {
                    // Nothing held (never reserved, or already released or
                    // shipped): releasing is a no-op, so compensations can
                    // be retried blindly.
                    Ok(Events::none())
                }
            }
            InventoryCommand::ShipProducts { order } => {
                if self.shipped.contains_key(order) {
                    Ok(Events::none())
                } else if self.reserved.contains_key(order) {
                    Ok(Events::one(InventoryEvent::ProductsShipped { order: *order }))
                } else {
                    Err(Rejection::WrongState(format!("{order} has no reservation to ship")))
                }
            }
        }
    }

    /// Applies an event.
    pub fn evolve(&mut self, event: &InventoryEvent) {
        self.evolve_owned(event.clone());
    }

    /// Applies an event the caller gives up, keeping its lines instead of
    /// copying them.
    pub fn evolve_owned(&mut self, event: InventoryEvent) {
        match event {
            InventoryEvent::ProductsReserved { order, lines } => {
                for line in lines.iter() {
                    let available = self.available.get_or_insert_with(line.product, || 0);
                    *available = available.saturating_sub(u64::from(line.quantity));
                }
                self.reserved.insert(order, lines);
            }
            InventoryEvent::ReservationReleased { order } => {
                if let Some(lines) = self.reserved.remove(&order) {
                    for line in lines.iter() {
                        *self.available.get_or_insert_with(line.product, || 0) +=
                            u64::from(line.quantity);
                    }
                    self.released.insert(order, lines);
                }
            }
            InventoryEvent::ProductsShipped { order } => {
                if let Some(lines) = self.reserved.remove(&order) {
                    self.shipped.insert(order, lines);
                }
            }
        }
    }

    /// The smallest product of `lines` whose lines together ask for more
    /// than is available. An order has a handful of lines, so the lines of
    /// each product are summed by scanning them, not in a map built per
    /// order.
    fn first_short(&self, lines: &[Line]) -> Option<ProductId> {
        let mut short: Option<ProductId> = None;
        for (index, line) in lines.iter().enumerate() {
            let product = line.product;
            if lines[..index].iter().any(|earlier| earlier.product == product) {
                continue; // summed with its first line
            }
            let needed: u64 = lines[index..]
                .iter()
                .filter(|other| other.product == product)
                .map(|other| u64::from(other.quantity))
                .sum();
            if self.available(product) < needed && short.is_none_or(|first| product < first) {
                short = Some(product);
            }
        }
        short
    }

    /// Units of `product` free to reserve.
    pub fn available(&self, product: ProductId) -> u64 {
        self.available.get(&product).copied().unwrap_or(0)
    }

    /// Units of every product: available, reserved and shipped, for the
    /// stock-conservation invariant.
    pub fn units(&self) -> StockCount {
        let count = |orders: &DenseMap<OrderId, Lines>| -> u64 {
            orders
                .values()
                .flat_map(|lines| lines.iter())
                .map(|line| u64::from(line.quantity))
                .sum()
        };
        StockCount {
            available: self.available.values().sum(),
            reserved: count(&self.reserved),
            shipped: count(&self.shipped),
        }
    }

    /// Whether the order's products shipped.
    pub fn has_shipped(&self, order: OrderId) -> bool {
        self.shipped.contains_key(&order)
    }

    /// Whether the order holds a reservation now.
    pub fn is_reserved(&self, order: OrderId) -> bool {
        self.reserved.contains_key(&order)
    }

    /// Orders whose products shipped, in id order.
    pub fn shipped_orders(&self) -> impl Iterator<Item = OrderId> + '_ {
        self.shipped.keys().copied()
    }
}

/// Units of stock by where they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockCount {
    /// Free to reserve.
    pub available: u64,
    /// Held for orders.
    pub reserved: u64,
    /// Gone to customers.
    pub shipped: u64,
}

impl StockCount {
    /// All units.
    pub fn total(&self) -> u64 {
        self.available + self.reserved + self.shipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn line(product: u32, quantity: u32) -> Line {
        Line { product: ProductId(product), quantity, unit_price_cents: 100 }
    }

    proptest! {
        /// Whatever commands arrive, in whatever order and however often,
        /// stock is conserved and no order is both shipped and released.
        #[test]
        fn stock_is_conserved_under_any_command_sequence(
            commands in prop::collection::vec((0u64..6, 0u8..3, 0u32..3, 1u32..4), 0..80)
        ) {
            let mut inventory = Inventory::with_stock([(ProductId(0), 5), (ProductId(1), 5), (ProductId(2), 5)]);
            let initial = inventory.units().total();
            for (order, kind, product, quantity) in commands {
                let order = OrderId(order);
                let command = match kind {
                    0 => InventoryCommand::ReserveProducts { order, lines: vec![line(product, quantity)].into() },
                    1 => InventoryCommand::ReleaseReservation { order },
                    _ => InventoryCommand::ShipProducts { order },
                };
                if let Ok(events) = inventory.decide(&command) {
                    for event in &events {
                        inventory.evolve(event);
                    }
                }
                prop_assert_eq!(inventory.units().total(), initial);
            }
            for order in inventory.shipped_orders() {
                prop_assert!(!inventory.released.contains_key(&order));
            }
        }
    }

    #[test]
    fn a_reservation_is_all_or_nothing() {
        let inventory = Inventory::with_stock([(ProductId(0), 1), (ProductId(1), 5)]);
        let command = InventoryCommand::ReserveProducts {
            order: OrderId(1),
            lines: vec![line(1, 2), line(0, 2)].into(),
        };
        assert_eq!(inventory.decide(&command), Err(Rejection::OutOfStock(ProductId(0))));
    }
}
