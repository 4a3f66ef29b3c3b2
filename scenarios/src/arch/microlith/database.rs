//! The microlith's SQL database, reduced to what the lesson needs: a
//! server with a bounded number of sessions, whose cores run every query,
//! and which writes every change to a write-ahead log on its node's
//! storage and syncs it before answering.
//!
//! A crash of the database node loses the queries in progress (their
//! callers time out), never a change it confirmed: on restart the tables
//! are rebuilt by replaying the log ([`Tables::replay`]). The same replay
//! reads the log of a node that is still down at the end of a run, which
//! is how a run reports the durable state of a database it crashed.

use super::protocol::{CallResult, MicrolithMsg, Query, Refusal};
use crate::domain::{
    Inventory, InventoryEvent, OrderEvent, Orders, PaymentEvent, Payments, ProductId, Shipping,
    ShippingEvent,
};
use serde::{Deserialize, Serialize};
use sim::{Acquire, Ctx, Dist, Process, ProcessId, ResourceId};
use std::collections::BTreeMap;

/// The name of the write-ahead log in the node's storage.
pub const WAL: &str = "database/wal";

/// Which services keep their tables in a database: one database per
/// service, or all four in one shared database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Schemas {
    /// The Orders table (the system of record for orders).
    pub orders: bool,
    /// The Inventory tables (stock, reservations, shipments).
    pub inventory: bool,
    /// The Payments service's table of gateway outcomes.
    pub payments: bool,
    /// The Shipping table (parcels).
    pub shipping: bool,
}

impl Schemas {
    /// All four: the shared database.
    pub const ALL: Schemas =
        Schemas { orders: true, inventory: true, payments: true, shipping: true };
}

/// One change as written to the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WalRecord {
    /// A change to the Orders table.
    Orders(OrderEvent),
    /// A change to the Inventory tables.
    Inventory(InventoryEvent),
    /// A change to the Payments table.
    Payments(PaymentEvent),
    /// A change to the Shipping table.
    Shipping(ShippingEvent),
}

/// The tables of one database: the domain aggregates, as folded from the
/// log. A table the database does not hold stays `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tables {
    /// Orders.
    pub orders: Option<Orders>,
    /// Stock, reservations, shipments.
    pub inventory: Option<Inventory>,
    /// What the gateway answered, as the Payments service recorded it.
    pub payments: Option<Payments>,
    /// Parcels.
    pub shipping: Option<Shipping>,
}

impl Tables {
    /// Empty tables for `schemas`, with `stock_per_product` units of each
    /// of `products` products in stock.
    pub fn new(schemas: Schemas, products: u32, stock_per_product: u64) -> Tables {
        Tables {
            orders: schemas.orders.then(Orders::default),
            inventory: schemas.inventory.then(|| {
                Inventory::with_stock((0..products).map(|p| (ProductId(p), stock_per_product)))
            }),
            payments: schemas.payments.then(Payments::default),
            shipping: schemas.shipping.then(Shipping::default),
        }
    }

    /// Folds one logged change in.
    pub fn apply(&mut self, record: &WalRecord) {
        match record {
            WalRecord::Orders(event) => self.orders.get_or_insert_default().evolve(event),
            WalRecord::Inventory(event) => {
                self.inventory.get_or_insert_default().evolve(event);
            }
            WalRecord::Payments(event) => self.payments.get_or_insert_default().evolve(event),
            WalRecord::Shipping(event) => self.shipping.get_or_insert_default().evolve(event),
        }
    }

    /// The tables as rebuilt from `records` of the log, on top of `self`
    /// (the initial state).
    ///
    /// # Panics
    /// If a record cannot be decoded: the log is only ever written by
    /// [`Database`], so that is a bug.
    pub fn replay(mut self, records: sim::storage::Records<'_>) -> Tables {
        for record in records {
            let record: WalRecord =
                serde_json::from_slice(record).expect("the write-ahead log holds WalRecords");
            self.apply(&record);
        }
        self
    }

    /// Runs one statement: decides it with the domain aggregate and
    /// returns the changes to log (empty when nothing changes) or the
    /// refusal. The changes are not applied yet.
    fn execute(&self, query: &Query) -> Result<Vec<WalRecord>, Refusal> {
        let refusal = |rejection| Refusal::from_rejection(&rejection);
        match query {
            Query::Orders(command) => {
                let table = self.orders.as_ref().ok_or(Refusal::Invalid)?;
                let events = table.decide(command).map_err(refusal)?;
                Ok(events.into_iter().map(WalRecord::Orders).collect())
            }
            Query::Inventory(command) => {
                let table = self.inventory.as_ref().ok_or(Refusal::Invalid)?;
                let events = table.decide(command).map_err(refusal)?;
                Ok(events.into_iter().map(WalRecord::Inventory).collect())
            }
            Query::Shipping(command) => {
                let table = self.shipping.as_ref().ok_or(Refusal::Invalid)?;
                let events = table.decide(command).map_err(refusal)?;
                Ok(events.into_iter().map(WalRecord::Shipping).collect())
            }
            // The Payments service records what the gateway said: a plain
            // insert, no decision to make.
            Query::Payments(event) => {
                self.payments.as_ref().ok_or(Refusal::Invalid)?;
                Ok(vec![WalRecord::Payments(event.clone())])
            }
        }
    }
}

fn record_label(record: &WalRecord) -> (&'static str, u64) {
    match record {
        WalRecord::Orders(OrderEvent::OrderCreated { order, .. }) => ("OrderCreated", order.0),
        WalRecord::Orders(OrderEvent::OrderCompleted { order }) => ("OrderCompleted", order.0),
        WalRecord::Orders(OrderEvent::OrderCancelled { order, .. }) => ("OrderCancelled", order.0),
        WalRecord::Inventory(InventoryEvent::ProductsReserved { order, .. }) => {
            ("ProductsReserved", order.0)
        }
        WalRecord::Inventory(InventoryEvent::ReservationReleased { order }) => {
            ("ReservationReleased", order.0)
        }
        WalRecord::Inventory(InventoryEvent::ProductsShipped { order }) => {
            ("ProductsShipped", order.0)
        }
        WalRecord::Payments(PaymentEvent::PaymentApproved { order, .. }) => {
            ("PaymentApproved", order.0)
        }
        WalRecord::Payments(PaymentEvent::PaymentDeclined { order }) => {
            ("PaymentDeclined", order.0)
        }
        WalRecord::Payments(PaymentEvent::PaymentRefunded { order, .. }) => {
            ("PaymentRefunded", order.0)
        }
        WalRecord::Shipping(ShippingEvent::ParcelSent { order }) => ("ParcelSent", order.0),
    }
}

/// How a database is set up.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// The tables it holds.
    pub schemas: Schemas,
    /// Products in the catalogue (for the initial stock).
    pub products: u32,
    /// Units of each product at the start.
    pub stock_per_product: u64,
    /// Its sessions: queries running at once (a resource on its node).
    pub sessions: ResourceId,
    /// CPU time of one query on the node's cores.
    pub query_time: Dist,
}

/// A query the database has taken and not answered yet.
#[derive(Clone, Debug)]
struct InProgress {
    from: ProcessId,
    call: u64,
    query: Query,
    /// Whether it holds a session.
    session: bool,
}

/// The database server process.
pub struct Database {
    config: DatabaseConfig,
    tables: Tables,
    in_progress: BTreeMap<u64, InProgress>,
    next_tag: u64,
}

impl Database {
    /// A database with fresh tables; [`Process::on_start`] replays the log.
    pub fn new(config: DatabaseConfig) -> Database {
        let tables = Tables::new(config.schemas, config.products, config.stock_per_product);
        Database { config, tables, in_progress: BTreeMap::new(), next_tag: 0 }
    }

    /// The tables now.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    fn answer(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, tag: u64, result: CallResult) {
        if let Some(query) = self.in_progress.remove(&tag) {
            if query.session {
                ctx.release(self.config.sessions);
            }
            ctx.send(query.from, MicrolithMsg::QueryResult { call: query.call, result });
        }
    }

    fn run_query(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, tag: u64) {
        let duration = self.config.query_time.sample(ctx.rng());
        ctx.spend_cpu(duration, tag);
    }
}

impl Process<MicrolithMsg> for Database {
    fn on_start(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>) {
        let initial =
            Tables::new(self.config.schemas, self.config.products, self.config.stock_per_product);
        self.tables = initial.replay(ctx.read_log(WAL));
    }

    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, MicrolithMsg>,
        from: ProcessId,
        message: MicrolithMsg,
    ) {
        let MicrolithMsg::Query { call, query } = message else { return };
        self.next_tag += 1;
        let tag = self.next_tag;
        self.in_progress.insert(tag, InProgress { from, call, query, session: false });
        match ctx.acquire(self.config.sessions, tag) {
            Acquire::Granted => self.on_granted(ctx, self.config.sessions, tag),
            Acquire::Queued => {}
            Acquire::Rejected => {
                ctx.count("microlith.database.rejected", 1);
                self.answer(ctx, tag, CallResult::Error);
            }
        }
    }

    fn on_granted(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, _resource: ResourceId, tag: u64) {
        if let Some(query) = self.in_progress.get_mut(&tag) {
            query.session = true;
            self.run_query(ctx, tag);
        } else {
            ctx.release(self.config.sessions);
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, tag: u64) {
        let Some(query) = self.in_progress.get(&tag) else { return };
        match self.tables.execute(&query.query) {
            Err(refusal) => self.answer(ctx, tag, CallResult::Refused(refusal)),
            Ok(records) if records.is_empty() => self.answer(ctx, tag, CallResult::Done),
            Ok(records) => {
                for record in &records {
                    self.tables.apply(record);
                    let (label, key) = record_label(record);
                    ctx.record(label, key);
                    ctx.append(WAL, serde_json::to_vec(record).expect("records serialise"));
                }
                // Answer after the write: the commit is durable first.
                ctx.sync(tag);
            }
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, tag: u64) {
        self.answer(ctx, tag, CallResult::Done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Line, OrderCommand, OrderId};

    #[test]
    fn replaying_the_log_rebuilds_the_tables() {
        let mut tables = Tables::new(Schemas::ALL, 2, 5);
        let lines: crate::domain::Lines =
            vec![Line { product: ProductId(1), quantity: 2, unit_price_cents: 100 }].into();
        let queries = [
            Query::Orders(OrderCommand::CreateOrder { order: OrderId(1), lines: lines.clone() }),
            Query::Inventory(crate::domain::InventoryCommand::ReserveProducts {
                order: OrderId(1),
                lines,
            }),
        ];
        let mut storage = sim::Storage::default();
        for query in &queries {
            for record in tables.execute(query).unwrap() {
                tables.apply(&record);
                storage.append(WAL, &serde_json::to_vec(&record).unwrap());
            }
        }
        let rebuilt = Tables::new(Schemas::ALL, 2, 5).replay(storage.read(WAL));
        assert_eq!(rebuilt, tables);
        assert_eq!(rebuilt.inventory.unwrap().units().reserved, 2);
    }
}
