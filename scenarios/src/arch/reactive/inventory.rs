//! Inventory: reserves stock when an order is created, moves the
//! reservation to shipped when the payment is approved (the pivot), and
//! releases it when the payment fails or is declined (a compensation).

use super::ReactiveMsg;
use super::facts::{Fact, TOPIC_ORDERS, TOPIC_PAYMENTS};
use super::journal::Book;
use super::service::{Logic, Shell, Source};
use crate::domain::{Inventory, InventoryCommand, InventoryEvent, OrderId, ProductId, Rejection};
use serde::{Deserialize, Serialize};
use sim::Ctx;
use std::collections::BTreeSet;

/// The Inventory book: the aggregate, the orders it refused (so a
/// redelivered `OrderCreated` is not reconsidered once stock came back),
/// and how many reservations it released.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StockBook {
    /// The aggregate.
    pub inventory: Inventory,
    /// Orders refused for want of stock.
    pub refused: BTreeSet<OrderId>,
    /// Reservations released (compensations).
    pub released: u64,
}

/// What the Inventory log holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum StockEvent {
    /// A fact of the aggregate.
    Inventory(InventoryEvent),
    /// The order was refused: a product was short.
    Refused {
        /// The order.
        order: OrderId,
        /// The product.
        product: ProductId,
    },
}

impl Book for StockBook {
    type Event = StockEvent;

    fn apply(&mut self, event: &StockEvent) {
        match event {
            StockEvent::Inventory(event) => {
                if let InventoryEvent::ReservationReleased { .. } = event {
                    self.released += 1;
                }
                self.inventory.evolve(event);
            }
            StockEvent::Refused { order, .. } => {
                self.refused.insert(*order);
            }
        }
    }
}

/// The Inventory service's business part.
pub struct InventoryLogic {
    /// Products in the catalogue.
    pub products: u32,
    /// Units of each at the start.
    pub stock_per_product: u64,
}

impl Logic for InventoryLogic {
    type Book = StockBook;
    type Local = ();
    type Action = ();
    const NAME: &'static str = "inventory";
    const TOPICS: &'static [&'static str] = &[TOPIC_ORDERS, TOPIC_PAYMENTS];

    fn initial_book(&self) -> StockBook {
        let stock = (0..self.products).map(|product| (ProductId(product), self.stock_per_product));
        StockBook { inventory: Inventory::with_stock(stock), ..StockBook::default() }
    }

    fn wants(fact: &Fact) -> bool {
        matches!(
            fact,
            Fact::OrderCreated { .. }
                | Fact::PaymentApproved { .. }
                | Fact::PaymentDeclined { .. }
                | Fact::PaymentFailed { .. }
        )
    }

    fn on_fact(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        fact: Fact,
        source: Source,
    ) {
        let order = fact.order();
        let (command, then) = match fact {
            Fact::OrderCreated { lines, total_cents, card, .. } => {
                if shell.book().refused.contains(&order) {
                    shell.done(source);
                    return;
                }
                let reserved = Fact::ProductsReserved { order, total_cents, card };
                (InventoryCommand::ReserveProducts { order, lines }, reserved)
            }
            Fact::PaymentApproved { .. } => {
                (InventoryCommand::ShipProducts { order }, Fact::ProductsShipped { order })
            }
            Fact::PaymentDeclined { .. } | Fact::PaymentFailed { .. } => (
                InventoryCommand::ReleaseReservation { order },
                Fact::ReservationReleased { order },
            ),
            _ => {
                shell.done(source);
                return;
            }
        };
        match shell.book().inventory.decide(&command) {
            // Already done (a redelivery): the fact it caused is in the
            // outbox or already out.
            Ok(events) if events.is_empty() => shell.done(source),
            Ok(events) => {
                let events = events.into_iter().map(StockEvent::Inventory).collect();
                shell.persist(ctx, events, vec![then], Some(source), Vec::new());
            }
            Err(Rejection::OutOfStock(product)) => {
                let refused = StockEvent::Refused { order, product };
                let fact = Fact::ReservationRejected { order, product };
                shell.persist(ctx, vec![refused], vec![fact], Some(source), Vec::new());
            }
            Err(_) => {
                // Shipping an order with no reservation: the saga never
                // asks for it; counted so a test would see it.
                ctx.count("inventory.refused_command", 1);
                shell.done(source);
            }
        }
    }
}
