//! The customers: they place orders (open loop at the workload's times,
//! closed loop with think times, or closed loop in rounds), wait for the answer up to a timeout, and
//! keep a record of every request, which is the client's view of
//! availability and latency.

use super::{Answer, Edge};
use crate::domain::{OrderId, PlaceOrder};
use crate::workload::OrderSource;
use serde::Serialize;
use sim::kit::Carry;
use sim::{Ctx, DenseMap, Process, ProcessId, SimDuration, SimTime, TimerId};

/// How the customers behave.
#[derive(Clone, Debug)]
pub enum ClientsConfig {
    /// Orders at fixed times, whatever the system does.
    Open {
        /// Arrival times, sorted.
        arrivals: Vec<SimTime>,
    },
    /// `users` users who each wait for an answer, then think.
    Closed {
        /// How many.
        users: u32,
        /// Mean think time.
        think_time: SimDuration,
        /// No new order after this time.
        until: SimTime,
    },
    /// `users` users acting in step: each round all of them place an
    /// order at once; once every order of the round has ended, the next
    /// round follows after one think time.
    Rounds {
        /// How many.
        users: u32,
        /// Mean pause between rounds.
        think_time: SimDuration,
        /// No new round after this time.
        until: SimTime,
    },
}

/// The user index a think timer carries for "start the next round".
const NEXT_ROUND: u32 = u32::MAX;

/// One customer request and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Request {
    /// The order.
    pub order: OrderId,
    /// What it is worth, in cents.
    pub value_cents: u64,
    /// When it was placed.
    pub placed_at: SimTime,
    /// When the customer heard the final answer (or gave up).
    pub ended_at: Option<SimTime>,
    /// What happened.
    pub outcome: RequestOutcome,
}

/// What became of a request, from the customer's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestOutcome {
    /// Answered in time.
    Answered(Answer),
    /// No answer before the client timeout.
    TimedOut,
    /// Still waiting when the run ended.
    Pending,
}

const TAG_ARRIVAL: u64 = 1 << 62;
const TAG_TIMEOUT: u64 = 2 << 62;
const TAG_THINK: u64 = 3 << 62;
const TAG_MASK: u64 = 3 << 62;

/// The customer population: one process placing every order.
///
/// Its node must keep a perfect clock (no clock faults on the client's
/// role), because it reads its local clock as the time of placing and
/// answering.
pub struct Clients<M> {
    entry: ProcessId,
    config: ClientsConfig,
    source: OrderSource,
    timeout: SimDuration,
    next_arrival: usize,
    requests: Vec<Request>,
    /// Open requests: order to (index in `requests`, timeout timer, user).
    /// Order ids come densely from the workload, so a table, not a tree.
    open: DenseMap<OrderId, (usize, TimerId, u32)>,
    /// In rounds: orders of the current round not ended yet.
    round_open: u32,
    _message: std::marker::PhantomData<M>,
}

impl<M: Carry<Edge>> Clients<M> {
    /// Customers sending to `entry`.
    pub fn new(
        entry: ProcessId,
        config: ClientsConfig,
        source: OrderSource,
        timeout: SimDuration,
    ) -> Clients<M> {
        Clients {
            entry,
            config,
            source,
            timeout,
            next_arrival: 0,
            requests: Vec::new(),
            open: DenseMap::new(),
            round_open: 0,
            _message: std::marker::PhantomData,
        }
    }

    /// Every request so far, in the order placed.
    pub fn requests(&self) -> &[Request] {
        &self.requests
    }

    fn now(ctx: &Ctx<'_, M>) -> SimTime {
        SimTime::from_nanos(ctx.now_local().as_nanos().max(0) as u64)
    }

    fn place(&mut self, ctx: &mut Ctx<'_, M>, user: u32) {
        let request: PlaceOrder = self.source.next_order();
        let order = request.order;
        let timer = ctx.set_timer(self.timeout, TAG_TIMEOUT | order.0);
        self.open.insert(order, (self.requests.len(), timer, user));
        self.requests.push(Request {
            order,
            value_cents: crate::domain::total_cents(&request.lines),
            placed_at: Self::now(ctx),
            ended_at: None,
            outcome: RequestOutcome::Pending,
        });
        ctx.send(self.entry, M::wrap(Edge::PlaceOrder(request)));
    }

    fn schedule_next_arrival(&mut self, ctx: &mut Ctx<'_, M>) {
        if let ClientsConfig::Open { arrivals } = &self.config
            && let Some(at) = arrivals.get(self.next_arrival)
        {
            let now = Self::now(ctx);
            let wait = if *at > now { *at - now } else { SimDuration::ZERO };
            ctx.set_timer(wait, TAG_ARRIVAL);
        }
    }

    fn think(&mut self, ctx: &mut Ctx<'_, M>, user: u32) {
        let (think_time, until, user) = match &self.config {
            ClientsConfig::Open { .. } => return,
            ClientsConfig::Closed { think_time, until, .. } => (*think_time, *until, user),
            ClientsConfig::Rounds { think_time, until, .. } => {
                // A user's order ended: the round goes on until all have.
                if user != NEXT_ROUND {
                    self.round_open = self.round_open.saturating_sub(1);
                    if self.round_open > 0 {
                        return;
                    }
                }
                (*think_time, *until, NEXT_ROUND)
            }
        };
        if Self::now(ctx) >= until {
            return;
        }
        let mean = think_time.as_nanos() as f64;
        let pause = -libm::log(ctx.rng().unit_open_zero()) * mean;
        ctx.set_timer(SimDuration::from_nanos_f64(pause), TAG_THINK | u64::from(user));
    }

    /// Every user places an order at once.
    fn start_round(&mut self, ctx: &mut Ctx<'_, M>) {
        let ClientsConfig::Rounds { users, .. } = self.config else { return };
        self.round_open = users;
        for user in 0..users {
            self.place(ctx, user);
        }
    }
}

impl<M: Carry<Edge>> Process<M> for Clients<M> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        match &self.config {
            ClientsConfig::Open { .. } => self.schedule_next_arrival(ctx),
            ClientsConfig::Closed { users, .. } => {
                for user in 0..*users {
                    self.think(ctx, user);
                }
            }
            ClientsConfig::Rounds { .. } => self.think(ctx, NEXT_ROUND),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, _from: ProcessId, message: M) {
        let Ok(Edge::OrderAnswered { order, answer }) = message.unwrap() else { return };
        // A late or repeated answer for a request already ended is ignored:
        // the customer has moved on.
        if let Some((index, timer, user)) = self.open.remove(&order) {
            ctx.cancel_timer(timer);
            self.requests[index].ended_at = Some(Self::now(ctx));
            self.requests[index].outcome = RequestOutcome::Answered(answer);
            self.think(ctx, user);
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, _timer: TimerId, tag: u64) {
        match tag & TAG_MASK {
            TAG_ARRIVAL => {
                self.next_arrival += 1;
                self.place(ctx, 0);
                self.schedule_next_arrival(ctx);
            }
            TAG_TIMEOUT => {
                let order = OrderId(tag & !TAG_MASK);
                if let Some((index, _, user)) = self.open.remove(&order) {
                    self.requests[index].ended_at = Some(Self::now(ctx));
                    self.requests[index].outcome = RequestOutcome::TimedOut;
                    self.think(ctx, user);
                }
            }
            _ => {
                let user = (tag & !TAG_MASK) as u32;
                if user == NEXT_ROUND {
                    self.start_round(ctx);
                } else {
                    self.place(ctx, user);
                }
            }
        }
    }
}
