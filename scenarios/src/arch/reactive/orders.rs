//! Orders: the front door and the system of record of each order.
//!
//! It takes `PlaceOrder` from the customers into its bounded edge lane
//! (a full lane answers `Failed` at once: load shed), validates it,
//! records `CreateOrder` in its log and publishes `OrderCreated`. Then it
//! listens: a rejected reservation or a failed or declined payment cancels
//! the order; `ProductsShipped` from Inventory and `ParcelSent` from
//! Shipping together complete it. The customer is answered once the final
//! state is durable.

use super::ReactiveMsg;
use super::facts::{Fact, TOPIC_INVENTORY, TOPIC_PAYMENTS, TOPIC_SHIPPING, cancel_reason};
use super::journal::Book;
use super::service::{Lane, Logic, Shell, Source};
use crate::domain::{self, Lines, OrderCommand, OrderEvent, OrderId, Orders, PlaceOrder};
use crate::parts::{Answer, Edge};
use serde::{Deserialize, Serialize};
use sim::{Ctx, ProcessId};
use std::collections::BTreeMap;

/// The Orders book: the domain aggregate plus which of the two shipping
/// steps each open order has seen.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OrdersBook {
    /// The aggregate.
    pub orders: Orders,
    /// Steps seen per open order.
    pub steps: BTreeMap<OrderId, Steps>,
    /// Orders cancelled (each a compensation of `CreateOrder`).
    pub cancelled: u64,
}

/// The two facts that together complete an order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Steps {
    /// Inventory moved the reservation to shipped.
    pub products_shipped: bool,
    /// Shipping sent the parcel.
    pub parcel_sent: bool,
}

/// What the Orders log holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum OrdersEvent {
    /// A fact of the aggregate.
    Order(OrderEvent),
    /// Inventory shipped the products.
    ProductsShipped(OrderId),
    /// Shipping sent the parcel.
    ParcelSent(OrderId),
}

impl Book for OrdersBook {
    type Event = OrdersEvent;

    fn apply(&mut self, event: &OrdersEvent) {
        match event {
            OrdersEvent::Order(event) => {
                self.orders.evolve(event);
                match event {
                    OrderEvent::OrderCreated { order, .. } => {
                        self.steps.entry(*order).or_default();
                    }
                    OrderEvent::OrderCompleted { order } => {
                        self.steps.remove(order);
                    }
                    OrderEvent::OrderCancelled { order, .. } => {
                        self.steps.remove(order);
                        self.cancelled += 1;
                    }
                }
            }
            OrdersEvent::ProductsShipped(order) => {
                if let Some(steps) = self.steps.get_mut(order) {
                    steps.products_shipped = true;
                }
            }
            OrdersEvent::ParcelSent(order) => {
                if let Some(steps) = self.steps.get_mut(order) {
                    steps.parcel_sent = true;
                }
            }
        }
    }
}

/// Work Orders queues itself.
#[derive(Clone, Debug)]
pub enum OrdersWork {
    /// A customer's request.
    Place(PlaceOrder),
}

/// What Orders does once a write is durable.
#[derive(Debug)]
pub enum OrdersAction {
    /// Tell the customer.
    Answer(OrderId, Answer),
}

/// The Orders service's business part.
pub struct OrdersLogic {
    /// The customers, to answer.
    pub clients: ProcessId,
    /// Products in the catalogue, for validation.
    pub catalogue_size: u32,
}

impl OrdersLogic {
    fn answer(ctx: &mut Ctx<'_, ReactiveMsg>, clients: ProcessId, order: OrderId, answer: Answer) {
        ctx.send(clients, ReactiveMsg::Edge(Edge::OrderAnswered { order, answer }));
    }

    fn place(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        request: PlaceOrder,
    ) {
        let order = request.order;
        if domain::validate(&request, self.catalogue_size).is_err() {
            ctx.count("orders.invalid", 1);
            Self::answer(ctx, self.clients, order, Answer::Failed);
            return;
        }
        let lines: Lines = request.lines;
        let command = OrderCommand::CreateOrder { order, lines: lines.clone() };
        // A repeated request (a duplicate on the network) changes nothing:
        // the first one's saga is already under way.
        let Ok(events) = shell.book().orders.decide(&command) else { return };
        if events.is_empty() {
            return;
        }
        let total_cents = domain::total_cents(&lines);
        let fact = Fact::OrderCreated { order, lines, total_cents, card: request.card };
        let events = events.into_iter().map(OrdersEvent::Order).collect();
        shell.persist(ctx, events, vec![fact], None, Vec::new());
    }

    /// Ends the order with `command`, answering `answer` once durable.
    fn finish(
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        mut events: Vec<OrdersEvent>,
        command: OrderCommand,
        answer: Answer,
        source: Source,
    ) {
        let order = match &command {
            OrderCommand::CreateOrder { order, .. }
            | OrderCommand::CompleteOrder { order }
            | OrderCommand::CancelOrder { order, .. } => *order,
        };
        match shell.book().orders.decide(&command) {
            Ok(decided) if !decided.is_empty() => {
                events.extend(decided.into_iter().map(OrdersEvent::Order));
                let action = OrdersAction::Answer(order, answer);
                shell.persist(ctx, events, Vec::new(), Some(source), vec![action]);
            }
            // Already ended this way (a redelivered fact), or unknown.
            _ if events.is_empty() => shell.done(source),
            _ => shell.persist(ctx, events, Vec::new(), Some(source), Vec::new()),
        }
    }
}

impl Logic for OrdersLogic {
    type Book = OrdersBook;
    type Local = OrdersWork;
    type Action = OrdersAction;
    const NAME: &'static str = "orders";
    const TOPICS: &'static [&'static str] = &[TOPIC_INVENTORY, TOPIC_PAYMENTS, TOPIC_SHIPPING];

    fn initial_book(&self) -> OrdersBook {
        OrdersBook::default()
    }

    fn wants(fact: &Fact) -> bool {
        matches!(
            fact,
            Fact::ReservationRejected { .. }
                | Fact::ProductsShipped { .. }
                | Fact::PaymentDeclined { .. }
                | Fact::PaymentFailed { .. }
                | Fact::ParcelSent { .. }
        )
    }

    fn on_other(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        _from: ProcessId,
        message: ReactiveMsg,
    ) {
        let ReactiveMsg::Edge(Edge::PlaceOrder(request)) = message else { return };
        let order = request.order;
        if shell.admit(ctx, Lane::Edge, order.0, OrdersWork::Place(request)).is_err() {
            // The intake is full: shed the request at once rather than
            // queue it beyond the bound.
            ctx.count("orders.shed", 1);
            Self::answer(ctx, self.clients, order, Answer::Failed);
        }
    }

    fn on_local(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        work: OrdersWork,
    ) {
        let OrdersWork::Place(request) = work;
        self.place(ctx, shell, request);
    }

    fn on_fact(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        shell: &mut Shell<Self>,
        fact: Fact,
        source: Source,
    ) {
        let order = fact.order();
        if let Some(reason) = cancel_reason(&fact) {
            let command = OrderCommand::CancelOrder { order, reason };
            Self::finish(ctx, shell, Vec::new(), command, Answer::Cancelled(reason), source);
            return;
        }
        let Some(mut steps) = shell.book().steps.get(&order).copied() else {
            // Ended already (or never created here): nothing to record.
            shell.done(source);
            return;
        };
        let event = match fact {
            Fact::ProductsShipped { .. } if !steps.products_shipped => {
                steps.products_shipped = true;
                OrdersEvent::ProductsShipped(order)
            }
            Fact::ParcelSent { .. } if !steps.parcel_sent => {
                steps.parcel_sent = true;
                OrdersEvent::ParcelSent(order)
            }
            _ => {
                shell.done(source);
                return;
            }
        };
        if steps.products_shipped && steps.parcel_sent {
            let command = OrderCommand::CompleteOrder { order };
            Self::finish(ctx, shell, vec![event], command, Answer::Completed, source);
        } else {
            shell.persist(ctx, vec![event], Vec::new(), Some(source), Vec::new());
        }
    }

    fn after_sync(
        &mut self,
        ctx: &mut Ctx<'_, ReactiveMsg>,
        _shell: &mut Shell<Self>,
        action: OrdersAction,
    ) {
        let OrdersAction::Answer(order, answer) = action;
        ctx.record(
            if answer == Answer::Completed { "OrderCompleted" } else { "OrderCancelled" },
            order.0,
        );
        Self::answer(ctx, self.clients, order, answer);
    }
}
