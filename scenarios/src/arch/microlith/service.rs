//! One microlith service: a thread-per-request server with a fixed pool of
//! worker threads and a pool of database connections, whose every call
//! (to its database, to another service, to the payment gateway) blocks
//! the thread that makes it until the answer arrives or the call times
//! out.
//!
//! A request's life is a job: it waits for a thread (in the pool's
//! bounded wait line, or is rejected at once when the line is full), runs
//! its CPU work on the node's cores, then goes through its service's steps
//! ([`Stage`]) one blocking call at a time, and finally answers its caller
//! and gives the thread back. The thread is held the whole time, which is
//! the point: while a job waits for a slow dependency, its thread can do
//! nothing else (Reactive Microsystems, ch. 2).

use super::protocol::{CallResult, MicrolithMsg, Query, Refusal, ServiceRequest};
use crate::domain::{
    self, CancelReason, InventoryCommand, OrderCommand, PaymentEvent, PlaceOrder, ShippingCommand,
};
use crate::parts::{Answer, Edge, GatewayMsg};
use sim::kit::retry::{DeadlineConfig, Deadlines};
use sim::{Acquire, Ctx, Dist, Process, ProcessId, ResourceId, SimDuration, TimerId};
use std::collections::BTreeMap;

/// Which service a process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ServiceKind {
    /// The front door: runs the order flow, calling the others.
    Orders,
    /// Stock: reserve, release, ship.
    Inventory,
    /// Charges cards through the external gateway.
    Payments,
    /// Sends parcels, after asking Inventory to ship the products.
    Shipping,
}

impl ServiceKind {
    /// The service's name (also its role and its node's name).
    pub fn name(self) -> &'static str {
        match self {
            ServiceKind::Orders => "orders",
            ServiceKind::Inventory => "inventory",
            ServiceKind::Payments => "payments",
            ServiceKind::Shipping => "shipping",
        }
    }
}

/// Whom a service talks to.
#[derive(Clone, Copy, Debug)]
pub struct Peers {
    /// The Inventory service.
    pub inventory: ProcessId,
    /// The Payments service.
    pub payments: ProcessId,
    /// The Shipping service.
    pub shipping: ProcessId,
    /// The external payment gateway.
    pub gateway: ProcessId,
    /// This service's database.
    pub database: ProcessId,
}

/// How a service is set up.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Which one.
    pub kind: ServiceKind,
    /// Its worker threads (a resource on its node, with a bounded wait
    /// line).
    pub threads: ResourceId,
    /// How many threads (the bound on calls outstanding at once).
    pub thread_count: u32,
    /// Its database connections (a resource on its node).
    pub connections: ResourceId,
    /// CPU time per request.
    pub cpu: Dist,
    /// How long a blocking call waits for its answer.
    pub call_timeout: SimDuration,
    /// Products in the catalogue (for validation).
    pub products: u32,
    /// Whom it calls.
    pub peers: Peers,
}

/// Where a request came from, and so whom to answer.
#[derive(Clone, Debug)]
enum Origin {
    /// A customer's `PlaceOrder` at the Orders service.
    Customer { from: ProcessId, request: PlaceOrder },
    /// Another service's call.
    Caller { from: ProcessId, call: u64, request: ServiceRequest },
}

/// The step a job is at: what its thread does or waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Waiting in the pool's line for a thread.
    Queued,
    /// Running (or waiting for) its CPU work.
    Working,
    /// Orders: writing the new order.
    CreateOrder,
    /// Orders: calling Inventory to reserve the products.
    Reserve,
    /// Orders: calling Payments.
    Pay,
    /// Orders: calling Shipping.
    Ship,
    /// Orders: marking the order completed.
    Complete,
    /// Orders: calling Inventory to release the reservation of a declined
    /// order.
    Release,
    /// Orders: marking the order cancelled.
    Cancel { reason: CancelReason, answer: Answer },
    /// Inventory: running the command against its tables.
    InventoryCommand,
    /// Payments: waiting for the gateway.
    Charge,
    /// Payments: recording the gateway's answer.
    RecordPayment { approved: bool },
    /// Shipping: calling Inventory to ship the products.
    ShipProducts,
    /// Shipping: recording the parcel.
    RecordParcel,
}

impl Stage {
    /// What a thread at this stage is blocked on, for views and tests.
    pub fn blocked_on(self) -> &'static str {
        match self {
            Stage::Queued => "queue",
            Stage::Working => "cpu",
            Stage::CreateOrder
            | Stage::Complete
            | Stage::Cancel { .. }
            | Stage::InventoryCommand
            | Stage::RecordPayment { .. }
            | Stage::RecordParcel => "database",
            Stage::Reserve | Stage::Release | Stage::ShipProducts => "inventory",
            Stage::Pay => "payments",
            Stage::Ship => "shipping",
            Stage::Charge => "gateway",
        }
    }
}

/// One request being served.
#[derive(Clone, Debug)]
struct Job {
    origin: Origin,
    stage: Stage,
    /// Whether it holds a worker thread.
    thread: bool,
    /// Whether it holds a database connection.
    connection: bool,
    /// The query waiting for a connection, if any.
    pending_query: Option<Query>,
}

/// What a stage does next.
enum Next {
    /// Move to this stage.
    Stage(Stage),
    /// Answer the caller (or the customer) and free the thread.
    Finish(Finished),
}

/// How a job ended.
#[derive(Clone, Copy, Debug)]
enum Finished {
    /// To a customer.
    Answer(Answer),
    /// To a calling service.
    Result(CallResult),
}

const TAG_THREAD: u64 = 1 << 60;
const TAG_CONNECTION: u64 = 2 << 60;
const TAG_MASK: u64 = 3 << 60;

/// A microlith service process.
pub struct Service {
    config: ServiceConfig,
    jobs: BTreeMap<u64, Job>,
    /// Outstanding blocking calls, each with its deadline.
    deadlines: Deadlines,
    /// Which job waits for which call.
    calls: BTreeMap<u64, u64>,
    next_job: u64,
    next_call: u64,
}

impl Service {
    /// A fresh service (after a crash, too: a microlith keeps nothing but
    /// its database).
    pub fn new(config: ServiceConfig) -> Service {
        let deadlines = Deadlines::new(DeadlineConfig {
            timeout: config.call_timeout,
            // A thread makes one blocking call at a time.
            max_outstanding: config.thread_count,
        })
        .expect("the scenario validated the call timeout and the pool size");
        Service {
            config,
            jobs: BTreeMap::new(),
            deadlines,
            calls: BTreeMap::new(),
            next_job: 0,
            next_call: 0,
        }
    }

    /// How many jobs are at each kind of wait: `queue` (no thread yet),
    /// `cpu`, `database`, or the service or gateway their thread is blocked
    /// on.
    pub fn threads_blocked_on(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for job in self.jobs.values() {
            *counts.entry(job.stage.blocked_on()).or_default() += 1;
        }
        counts
    }

    fn count(&self, ctx: &mut Ctx<'_, MicrolithMsg>, what: &str) {
        ctx.count(&format!("microlith.{}.{what}", self.config.kind.name()), 1);
    }

    /// Takes a new request: it waits for a thread, or is turned away.
    fn admit(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, origin: Origin) {
        self.next_job += 1;
        let id = self.next_job;
        let job = Job {
            origin,
            stage: Stage::Queued,
            thread: false,
            connection: false,
            pending_query: None,
        };
        self.jobs.insert(id, job);
        match ctx.acquire(self.config.threads, TAG_THREAD | id) {
            Acquire::Granted => self.start(ctx, id),
            Acquire::Queued => {}
            Acquire::Rejected => {
                // The pool's line is full: answer at once with an error,
                // without a thread (the acceptor thread does this).
                self.count(ctx, "rejected");
                let finished = match self.jobs[&id].origin {
                    Origin::Customer { .. } => Finished::Answer(Answer::Failed),
                    Origin::Caller { .. } => Finished::Result(CallResult::Error),
                };
                self.finish(ctx, id, finished);
            }
        }
    }

    /// A thread is ours: run the request's CPU work.
    fn start(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64) {
        let Some(job) = self.jobs.get_mut(&id) else {
            ctx.release(self.config.threads);
            return;
        };
        job.thread = true;
        job.stage = Stage::Working;
        let duration = self.config.cpu.sample(ctx.rng());
        ctx.spend_cpu(duration, id);
    }

    /// The CPU work is done: the first blocking step.
    fn first_stage(&self, id: u64) -> Next {
        let job = &self.jobs[&id];
        match (&job.origin, self.config.kind) {
            (Origin::Customer { request, .. }, ServiceKind::Orders) => {
                match domain::validate(request, self.config.products) {
                    Ok(()) => Next::Stage(Stage::CreateOrder),
                    Err(_) => Next::Finish(Finished::Answer(Answer::Failed)),
                }
            }
            (Origin::Caller { request, .. }, kind) => match (request, kind) {
                (ServiceRequest::Inventory(_), ServiceKind::Inventory) => {
                    Next::Stage(Stage::InventoryCommand)
                }
                (ServiceRequest::SubmitPayment { .. }, ServiceKind::Payments) => {
                    Next::Stage(Stage::Charge)
                }
                (ServiceRequest::ShipOrder { .. }, ServiceKind::Shipping) => {
                    Next::Stage(Stage::ShipProducts)
                }
                _ => Next::Finish(Finished::Result(CallResult::Refused(Refusal::Invalid))),
            },
            (Origin::Customer { .. }, _) => Next::Finish(Finished::Answer(Answer::Failed)),
        }
    }

    /// What happens after `stage` ended with `result`: the order flow and
    /// each service's steps. No retries, no compensation of what may have
    /// happened downstream of a failed call.
    fn after(stage: Stage, result: CallResult) -> Next {
        use CallResult::{Done, Error, Refused};
        let cancel = |reason, answer| Next::Stage(Stage::Cancel { reason, answer });
        let failed = |reason| cancel(reason, Answer::Failed);
        match (stage, result) {
            // ----- Orders -----
            (Stage::CreateOrder, Done) => Next::Stage(Stage::Reserve),
            (Stage::CreateOrder, _) => Next::Finish(Finished::Answer(Answer::Failed)),
            (Stage::Reserve, Done) => Next::Stage(Stage::Pay),
            (Stage::Reserve, Refused(Refusal::OutOfStock)) => {
                cancel(CancelReason::OutOfStock, Answer::Cancelled(CancelReason::OutOfStock))
            }
            // Inventory failed or timed out: the reservation may or may not
            // exist, and nobody will ever release it.
            (Stage::Reserve, _) => failed(CancelReason::OutOfStock),
            (Stage::Pay, Done) => Next::Stage(Stage::Ship),
            (Stage::Pay, Refused(Refusal::Declined)) => Next::Stage(Stage::Release),
            // Payments failed or timed out: the card may have been charged,
            // and nobody will ever refund it; the reservation stays held.
            (Stage::Pay, _) => failed(CancelReason::PaymentFailed),
            (Stage::Release, Done) => cancel(
                CancelReason::PaymentDeclined,
                Answer::Cancelled(CancelReason::PaymentDeclined),
            ),
            (Stage::Release, _) => failed(CancelReason::PaymentDeclined),
            (Stage::Ship, Done) => Next::Stage(Stage::Complete),
            // Shipping failed or timed out: the parcel may have left.
            (Stage::Ship, _) => failed(CancelReason::ShippingFailed),
            (Stage::Complete, Done) => Next::Finish(Finished::Answer(Answer::Completed)),
            (Stage::Complete, _) => Next::Finish(Finished::Answer(Answer::Failed)),
            (Stage::Cancel { answer, .. }, Done) => Next::Finish(Finished::Answer(answer)),
            (Stage::Cancel { .. }, _) => Next::Finish(Finished::Answer(Answer::Failed)),
            // ----- Inventory -----
            (Stage::InventoryCommand, result) => Next::Finish(Finished::Result(result)),
            // ----- Payments -----
            (Stage::Charge, Done) => Next::Stage(Stage::RecordPayment { approved: true }),
            (Stage::Charge, Refused(_)) => Next::Stage(Stage::RecordPayment { approved: false }),
            (Stage::Charge, Error) => Next::Finish(Finished::Result(Error)),
            (Stage::RecordPayment { approved: true }, Done) => Next::Finish(Finished::Result(Done)),
            (Stage::RecordPayment { approved: false }, Done) => {
                Next::Finish(Finished::Result(Refused(Refusal::Declined)))
            }
            (Stage::RecordPayment { .. }, _) => Next::Finish(Finished::Result(Error)),
            // ----- Shipping -----
            (Stage::ShipProducts, Done) => Next::Stage(Stage::RecordParcel),
            (Stage::ShipProducts, result) => Next::Finish(Finished::Result(result)),
            (Stage::RecordParcel, result) => Next::Finish(Finished::Result(result)),
            (Stage::Queued | Stage::Working, _) => {
                unreachable!("a job waits for no call before its work is done")
            }
        }
    }

    /// Moves job `id` on: into its next stage (issuing that stage's
    /// blocking call) or to its end.
    fn advance(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64, next: Next) {
        match next {
            Next::Finish(finished) => self.finish(ctx, id, finished),
            Next::Stage(stage) => {
                if let Stage::Cancel { answer, .. } = stage
                    && answer != Answer::Failed
                {
                    // A business refusal: the order is cancelled (after the
                    // reservation was released, for a declined card).
                    ctx.count("microlith.compensations", 1);
                }
                if stage == Stage::Release {
                    ctx.count("microlith.compensations", 1);
                }
                self.jobs.get_mut(&id).expect("the job exists").stage = stage;
                self.enter(ctx, id, stage);
            }
        }
    }

    /// Issues the blocking call of `stage`.
    fn enter(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64, stage: Stage) {
        let peers = self.config.peers;
        let (order, lines, amount_cents, card) = match &self.jobs[&id].origin {
            Origin::Customer { request, .. } => (
                request.order,
                request.lines.clone(),
                domain::total_cents(&request.lines),
                request.card,
            ),
            Origin::Caller { request, .. } => match request {
                // Inventory's one step runs the caller's command as it is.
                ServiceRequest::Inventory(command) => {
                    let command = command.clone();
                    return self.query(ctx, id, Query::Inventory(command));
                }
                ServiceRequest::SubmitPayment { order, amount_cents, card } => {
                    (*order, domain::Lines::default(), *amount_cents, *card)
                }
                ServiceRequest::ShipOrder { order } => {
                    (*order, domain::Lines::default(), 0, domain::CardOutcome::Approve)
                }
            },
        };
        match stage {
            Stage::CreateOrder => {
                self.query(ctx, id, Query::Orders(OrderCommand::CreateOrder { order, lines }));
            }
            Stage::Reserve => {
                let command = InventoryCommand::ReserveProducts { order, lines };
                self.call(ctx, id, peers.inventory, ServiceRequest::Inventory(command));
            }
            Stage::Pay => {
                let request = ServiceRequest::SubmitPayment { order, amount_cents, card };
                self.call(ctx, id, peers.payments, request);
            }
            Stage::Ship => self.call(ctx, id, peers.shipping, ServiceRequest::ShipOrder { order }),
            Stage::Complete => {
                self.query(ctx, id, Query::Orders(OrderCommand::CompleteOrder { order }));
            }
            Stage::Release => {
                let command = InventoryCommand::ReleaseReservation { order };
                self.call(ctx, id, peers.inventory, ServiceRequest::Inventory(command));
            }
            Stage::Cancel { reason, .. } => {
                self.query(ctx, id, Query::Orders(OrderCommand::CancelOrder { order, reason }));
            }
            Stage::Charge => {
                let call = self.begin_call(ctx, id);
                let Some(call) = call else { return };
                let charge = GatewayMsg::Charge { request: call, order, amount_cents, card };
                ctx.send(peers.gateway, MicrolithMsg::Gateway(charge));
            }
            Stage::RecordPayment { approved } => {
                let event = if approved {
                    PaymentEvent::PaymentApproved { order, amount_cents }
                } else {
                    PaymentEvent::PaymentDeclined { order }
                };
                self.query(ctx, id, Query::Payments(event));
            }
            Stage::ShipProducts => {
                let command = InventoryCommand::ShipProducts { order };
                self.call(ctx, id, peers.inventory, ServiceRequest::Inventory(command));
            }
            Stage::RecordParcel => {
                self.query(ctx, id, Query::Shipping(ShippingCommand::ShipOrder { order }));
            }
            Stage::InventoryCommand | Stage::Queued | Stage::Working => {
                unreachable!("{stage:?} issues no call here")
            }
        }
    }

    /// Starts waiting for a call; `None` (and the job has failed the call)
    /// if no more calls may be outstanding, which cannot happen while each
    /// thread makes one call at a time.
    fn begin_call(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64) -> Option<u64> {
        self.next_call += 1;
        let call = self.next_call;
        match self.deadlines.start(ctx, call) {
            Ok(_) => {
                self.calls.insert(call, id);
                Some(call)
            }
            Err(_) => {
                let stage = self.jobs[&id].stage;
                let next = Self::after(stage, CallResult::Error);
                self.advance(ctx, id, next);
                None
            }
        }
    }

    /// A blocking call to another service.
    fn call(
        &mut self,
        ctx: &mut Ctx<'_, MicrolithMsg>,
        id: u64,
        to: ProcessId,
        request: ServiceRequest,
    ) {
        if let Some(call) = self.begin_call(ctx, id) {
            ctx.send(to, MicrolithMsg::Call { call, request });
        }
    }

    /// A blocking database call: first a connection, then the query.
    fn query(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64, query: Query) {
        self.jobs.get_mut(&id).expect("the job exists").pending_query = Some(query);
        match ctx.acquire(self.config.connections, TAG_CONNECTION | id) {
            Acquire::Granted => self.send_query(ctx, id),
            Acquire::Queued => {}
            Acquire::Rejected => {
                self.count(ctx, "no_connection");
                self.jobs.get_mut(&id).expect("the job exists").pending_query = None;
                let stage = self.jobs[&id].stage;
                self.advance(ctx, id, Self::after(stage, CallResult::Error));
            }
        }
    }

    fn send_query(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64) {
        let job = self.jobs.get_mut(&id).expect("the job exists");
        job.connection = true;
        let query = job.pending_query.take().expect("a query waits for the connection");
        if let Some(call) = self.begin_call(ctx, id) {
            ctx.send(self.config.peers.database, MicrolithMsg::Query { call, query });
        }
    }

    /// A call's answer arrived, or its deadline passed (`Error`).
    fn on_call_ended(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, call: u64, result: CallResult) {
        let Some(id) = self.calls.remove(&call) else { return };
        let Some(job) = self.jobs.get_mut(&id) else { return };
        if job.connection {
            job.connection = false;
            ctx.release(self.config.connections);
        }
        let stage = job.stage;
        self.advance(ctx, id, Self::after(stage, result));
    }

    /// Answers and frees what the job holds.
    fn finish(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, id: u64, finished: Finished) {
        let job = self.jobs.remove(&id).expect("the job exists");
        if job.connection {
            ctx.release(self.config.connections);
        }
        if job.thread {
            ctx.release(self.config.threads);
        }
        match (job.origin, finished) {
            (Origin::Customer { from, request }, Finished::Answer(answer)) => {
                if answer == Answer::Failed {
                    self.count(ctx, "failed");
                }
                ctx.send(
                    from,
                    MicrolithMsg::Edge(Edge::OrderAnswered { order: request.order, answer }),
                );
            }
            (Origin::Caller { from, call, .. }, Finished::Result(result)) => {
                if result == CallResult::Error {
                    self.count(ctx, "failed");
                }
                ctx.send(from, MicrolithMsg::Reply { call, result });
            }
            (origin, finished) => unreachable!("{finished:?} does not answer {origin:?}"),
        }
    }
}

impl Process<MicrolithMsg> for Service {
    fn on_start(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>) {
        // Call ids must not repeat across restarts, or a late answer to a
        // call made before a crash could be taken for the answer to a new
        // one. Starting from the local clock's reading in nanoseconds does
        // it: no incarnation makes a call per nanosecond.
        self.next_call = ctx.now_local().as_nanos().max(0) as u64;
    }

    fn on_message(
        &mut self,
        ctx: &mut Ctx<'_, MicrolithMsg>,
        from: ProcessId,
        message: MicrolithMsg,
    ) {
        match message {
            MicrolithMsg::Edge(Edge::PlaceOrder(request)) => {
                self.admit(ctx, Origin::Customer { from, request });
            }
            MicrolithMsg::Call { call, request } => {
                self.admit(ctx, Origin::Caller { from, call, request });
            }
            MicrolithMsg::Reply { call, result } | MicrolithMsg::QueryResult { call, result } => {
                if self.deadlines.complete(ctx, call).is_some() {
                    self.on_call_ended(ctx, call, result);
                }
            }
            MicrolithMsg::Gateway(answer) => {
                let (call, result) = match answer {
                    GatewayMsg::Charged { request, .. } => (request, CallResult::Done),
                    GatewayMsg::Declined { request, .. } => {
                        (request, CallResult::Refused(Refusal::Declined))
                    }
                    GatewayMsg::Failed { request, .. } => (request, CallResult::Error),
                    _ => return,
                };
                if self.deadlines.complete(ctx, call).is_some() {
                    self.on_call_ended(ctx, call, result);
                }
            }
            MicrolithMsg::Edge(Edge::OrderAnswered { .. }) | MicrolithMsg::Query { .. } => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, timer: TimerId, _tag: u64) {
        if let Some(call) = self.deadlines.on_timer(ctx, timer) {
            // The thread gives up waiting; whatever the callee does with
            // the request from now on, this caller never hears of it.
            self.count(ctx, "call_timeouts");
            self.on_call_ended(ctx, call, CallResult::Error);
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, tag: u64) {
        if self.jobs.contains_key(&tag) {
            let next = self.first_stage(tag);
            self.advance(ctx, tag, next);
        }
    }

    fn on_granted(&mut self, ctx: &mut Ctx<'_, MicrolithMsg>, resource: ResourceId, tag: u64) {
        let id = tag & !TAG_MASK;
        match tag & TAG_MASK {
            TAG_THREAD => self.start(ctx, id),
            TAG_CONNECTION if self.jobs.contains_key(&id) => self.send_query(ctx, id),
            _ => ctx.release(resource),
        }
    }
}
