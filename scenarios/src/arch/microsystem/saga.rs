//! The order saga's coordinator: a durable process manager (ch. 6,
//! "Coordinating Work Across Aggregates").
//!
//! For each order it:
//! 1. records the validated order (`Accepted`) and tells the processing
//!    instance, once durable, that the order is in good hands;
//! 2. writes `CreateOrder` to the order's Orders shard (retried until the
//!    shard's active has it: the order enters the system of record only
//!    through the coordinator, so no accepted order is without a saga);
//! 3. runs the steps ReserveProducts (Inventory) → SubmitPayment
//!    (Payments) → ShipProducts (Shipping, the pivot) with the kit's
//!    [`SagaState`] machine, compensating in reverse order when a step
//!    before the pivot fails or times out;
//! 4. writes `CompleteOrder` or `CancelOrder(reason)` to Orders (retried
//!    until done), records `Closed`, and answers the customer.
//!
//! # Durability
//!
//! Every state change is journaled to the node's storage. Two kinds are
//! acted on only once durable: the acceptance (the processing instance
//! stops asking, so the order must not be forgotten) and a step's failure
//! or timeout (the decision to compensate: were it forgotten, the
//! coordinator could resume forward while a participant undoes its step on
//! the forgotten command's word). The other changes, which only move an
//! order forward or continue a compensation already decided, are acted on
//! at once and made durable by a group commit every sweep interval (as a
//! database flushing its journal every so often): a crash can take back
//! the last few, and the coordinator, replaying its log, redoes the steps
//! they recorded. That is safe because every command it sends is
//! idempotent at its receiver (the participants' step ledgers, the Orders
//! aggregate), so a step redone is answered from the receiver's memory,
//! never done twice. After a crash it resumes every unfinished order where
//! its log says, re-sending the command that was in flight.
//!
//! # Finding Orders
//!
//! It routes orders to shards by consistent hashing of the order id
//! ([`HashRing`]) and finds each shard's active through the registry (a
//! watch on `orders-<shard>`). Writes to a shard are pipelined: one batch
//! in flight per shard, and whatever comes meanwhile goes in the next
//! batch (group commit), so under load one replicated write carries
//! several orders' events.

use super::codec::{Reader, Writer, card_code, card_from, reason_code, reason_from};
use super::message::{Internal, Msg, Task};
use super::orders::service_name;
use crate::domain::{CancelReason, CardOutcome, Lines, OrderCommand, OrderId, total_cents};
use crate::parts::{Answer, Edge};
use sim::kit::discovery::{Discovery, ServiceName};
use sim::kit::replication::{Replication, WriteRejection};
use sim::kit::routing::{HashRing, key_hash};
use sim::kit::saga::{
    Saga, SagaCommand, SagaDecision, SagaId, SagaInput, SagaPhase, SagaRecord, SagaState,
};
use sim::storage::LogId;
use sim::{Component, Ctx, DenseMap, LocalTime, Process, ProcessId, SimDuration, TimerId};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// How the coordinator is wired and how patient it is.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// The saga: its steps, participants and timeouts.
    pub saga: Saga,
    /// The service registry.
    pub registry: ProcessId,
    /// Each shard's replicas (tried in turn when the registry names no
    /// active).
    pub shards: Vec<Vec<ProcessId>>,
    /// Which shard an order lives on.
    pub ring: HashRing<u32>,
    /// How long an Orders write may go unanswered before it is sent again.
    pub write_retry: SimDuration,
    /// How long to wait before asking again a replica that was catching up
    /// or refused.
    pub write_backoff: SimDuration,
    /// How often the registry watches are renewed (a restarted registry
    /// forgets its watchers).
    pub watch_refresh: SimDuration,
    /// How often deadlines (step timeouts, write retries, backoffs) are
    /// checked and the journal is synced: a deadline is noticed up to this
    /// much late. One periodic tick instead of a timer per command keeps
    /// the event queue short at a thousand orders a second.
    pub sweep_interval: SimDuration,
    /// Most commands in one write to a shard (the replication's batch
    /// bound).
    pub batch_max: usize,
}

/// The shard of `order` on `ring`.
pub fn shard_of(ring: &HashRing<u32>, order: OrderId) -> u32 {
    ring.route_hash(key_hash(&order.0.to_le_bytes())).expect("the ring has every shard")
}

const LOG: &str = "order-saga/log";

const TAG_SWEEP: u64 = 1;

/// A record of the coordinator's log.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Record {
    Accepted { order: OrderId, client: ProcessId, card: CardOutcome, lines: Lines },
    Created { order: OrderId, at: LocalTime },
    Saga(SagaRecord),
    Reason { order: OrderId, reason: CancelReason },
    Closed { order: OrderId },
}

impl Record {
    /// Appends the record's bytes to `bytes`.
    fn encode_into(&self, bytes: &mut Vec<u8>) {
        let writer = Writer::onto(std::mem::take(bytes));
        *bytes = match self {
            Record::Accepted { order, client, card, lines } => {
                writer.u8(1).u64(order.0).u32(client.0).u8(card_code(*card)).lines(lines).finish()
            }
            Record::Created { order, at } => writer.u8(2).u64(order.0).i64(at.as_nanos()).finish(),
            Record::Saga(record) => {
                let kind = match record {
                    SagaRecord::Started { .. } => 0,
                    SagaRecord::StepExecuted { .. } => 1,
                    SagaRecord::StepFailed { .. } => 2,
                    SagaRecord::StepTimedOut { .. } => 3,
                    SagaRecord::StepCompensated { .. } => 4,
                    SagaRecord::Completed { .. } => 5,
                    SagaRecord::Aborted { .. } => 6,
                };
                let step = record.step().unwrap_or(0);
                writer.u8(3).u8(kind).u64(record.saga().0).u32(step).finish()
            }
            Record::Reason { order, reason } => {
                writer.u8(4).u64(order.0).u8(reason_code(*reason)).finish()
            }
            Record::Closed { order } => writer.u8(5).u64(order.0).finish(),
        };
    }

    /// The records of one storage record, in order.
    fn decode_all(bytes: &[u8]) -> Vec<Record> {
        let mut records = Vec::new();
        let mut reader = Reader::over(bytes);
        while !reader.is_done() {
            let tag = reader.u8();
            records.push(Record::decode(tag, &mut reader));
        }
        records
    }

    fn decode(tag: u8, reader: &mut Reader<'_>) -> Record {
        match tag {
            1 => {
                let order = reader.order();
                let client = ProcessId(reader.u32());
                let card = card_from(reader.u8());
                Record::Accepted { order, client, card, lines: reader.lines() }
            }
            2 => Record::Created { order: reader.order(), at: LocalTime(reader.i64()) },
            3 => {
                let kind = reader.u8();
                let saga = SagaId(reader.u64());
                let step = reader.u32();
                Record::Saga(match kind {
                    1 => SagaRecord::StepExecuted { saga, step },
                    2 => SagaRecord::StepFailed { saga, step },
                    3 => SagaRecord::StepTimedOut { saga, step },
                    4 => SagaRecord::StepCompensated { saga, step },
                    5 => SagaRecord::Completed { saga },
                    6 => SagaRecord::Aborted { saga },
                    _ => panic!("{LOG}: unknown saga record kind {kind}"),
                })
            }
            4 => Record::Reason { order: reader.order(), reason: reason_from(reader.u8()) },
            5 => Record::Closed { order: reader.order() },
            _ => panic!("{LOG}: unknown record tag {tag}"),
        }
    }
}

/// A set of order ids as a bitmap: order ids are dense from 1 (the
/// workload numbers them), so a bit per order is the smallest and fastest
/// way to remember tens of thousands of closed orders.
#[derive(Clone, Debug, Default)]
struct OrderSet {
    words: Vec<u64>,
    len: usize,
}

impl OrderSet {
    fn contains(&self, order: OrderId) -> bool {
        let index = order.0 as usize;
        self.words.get(index / 64).is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    fn insert(&mut self, order: OrderId) {
        let index = order.0 as usize;
        if self.words.len() <= index / 64 {
            self.words.resize(index / 64 + 1, 0);
        }
        let bit = 1 << (index % 64);
        if self.words[index / 64] & bit == 0 {
            self.words[index / 64] |= bit;
            self.len += 1;
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// One order's saga as the coordinator tracks it.
#[derive(Clone, Debug)]
struct Entry {
    client: ProcessId,
    lines: Lines,
    card: CardOutcome,
    /// The saga machine, from the moment Orders has the order.
    saga: Option<SagaState>,
    reason: Option<CancelReason>,
    closed: bool,
    /// Whether `Accepted` is known durable (answers to repeated starts wait
    /// for it).
    accepted_durable: bool,
    /// Processing instances to tell once `Accepted` is durable.
    ack_to: AckTo,
    /// When the step command in flight times out, or a backoff ends.
    deadline: Option<LocalTime>,
    backing_off: bool,
    /// The Orders write in flight.
    write: Option<u64>,
}

impl Entry {
    /// The status to write to Orders once the saga has finished.
    fn final_command(&self, order: OrderId) -> OrderCommand {
        match self.saga.as_ref().map(SagaState::phase) {
            Some(SagaPhase::Completed) => OrderCommand::CompleteOrder { order },
            _ => {
                // A saga aborted only by timeouts has no participant's
                // reason: the payment could not be taken.
                let reason = self.reason.unwrap_or(CancelReason::PaymentFailed);
                OrderCommand::CancelOrder { order, reason }
            }
        }
    }
}

/// The processing instances waiting for an order's acceptance: nearly
/// always exactly one, kept inline (no allocation per order).
#[derive(Clone, Debug, Default)]
struct AckTo {
    first: Option<ProcessId>,
    more: Vec<ProcessId>,
}

impl AckTo {
    /// Adds `processing` unless it waits already.
    fn add(&mut self, processing: ProcessId) {
        match self.first {
            None => self.first = Some(processing),
            Some(first) if first == processing => {}
            Some(_) => {
                if !self.more.contains(&processing) {
                    self.more.push(processing);
                }
            }
        }
    }

    /// Every waiting instance, in the order they asked; none wait after.
    fn take(&mut self) -> impl Iterator<Item = ProcessId> + 'static {
        let first = self.first.take();
        first.into_iter().chain(std::mem::take(&mut self.more))
    }
}

/// The orders to act on once a sync completes: nearly always one (an
/// acceptance, a decision to compensate), kept inline; after a restart,
/// every order resumed.
#[derive(Clone, Debug)]
enum ToAct {
    One(OrderId),
    All(Vec<OrderId>),
}

impl ToAct {
    fn orders(self) -> impl Iterator<Item = OrderId> {
        let (one, all) = match self {
            ToAct::One(order) => (Some(order), Vec::new()),
            ToAct::All(orders) => (None, orders),
        };
        one.into_iter().chain(all)
    }
}

/// One order's command for Orders, waiting to go or in a batch.
#[derive(Clone, Debug)]
struct OrdersWrite {
    order: OrderId,
    /// The command while it waits; a batch holds it (`None` here) from the
    /// moment it is sent until it is written or deferred back.
    command: Option<OrderCommand>,
}

/// A batch of commands sent to one shard, waiting for its answer.
#[derive(Clone, Debug)]
struct Batch {
    shard: u32,
    writes: Vec<u64>,
    commands: Vec<OrderCommand>,
    target: Option<ProcessId>,
    /// When to send it again if no answer has come.
    deadline: LocalTime,
    /// Whether its last attempt was refused (it waits for a backoff or
    /// for the registry to name an active).
    refused: bool,
}

/// What the coordinator knows of a shard: where its active is, and the
/// writes waiting for the batch in flight to be answered.
#[derive(Clone, Debug, Default)]
struct ShardRoute {
    live: Vec<ProcessId>,
    revision: u64,
    cursor: usize,
    waiting: VecDeque<u64>,
    batch: Option<u64>,
}

/// The coordinator process (see the module docs).
pub struct OrderSagas {
    config: Rc<CoordinatorConfig>,
    services: BTreeMap<ServiceName, u32>,
    /// Orders not yet closed (and closed ones until their answer is sent).
    entries: DenseMap<OrderId, Entry>,
    /// Orders closed: only their ids are kept, so a repeated start is
    /// recognised; everything else about them is in the log.
    closed: OrderSet,
    running: u32,
    ticks: u64,
    /// Orders to act on once the sync with this tag completes (accepted,
    /// or resumed after a restart).
    syncing: DenseMap<u64, ToAct>,
    /// Journal records not yet written to storage: they are written as one
    /// storage record at the next sync (a group commit), so a crash loses
    /// exactly what a crash before the sync would lose anyway.
    buffer: Vec<u8>,
    /// Where the journal is in storage, once written to.
    log_id: Option<LogId>,
    next_tag: u64,
    /// Writes and batches by request id (counted up from a random start).
    writes: DenseMap<u64, OrdersWrite>,
    batches: DenseMap<u64, Batch>,
    next_request: Option<u64>,
    routes: Vec<ShardRoute>,
}

impl OrderSagas {
    /// A coordinator wired as `config` says.
    pub fn new(config: Rc<CoordinatorConfig>) -> OrderSagas {
        let services =
            (0..config.shards.len() as u32).map(|shard| (service_name(shard), shard)).collect();
        let routes = vec![ShardRoute::default(); config.shards.len()];
        OrderSagas {
            config,
            services,
            entries: DenseMap::new(),
            closed: OrderSet::default(),
            running: 0,
            ticks: 0,
            syncing: DenseMap::new(),
            buffer: Vec::new(),
            log_id: None,
            next_tag: 0,
            writes: DenseMap::new(),
            batches: DenseMap::new(),
            next_request: None,
            routes,
        }
    }

    /// Sagas not yet closed.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// Where each open order's saga is: `None` while Orders is still being
    /// asked to create it.
    pub fn open_phases(&self) -> impl Iterator<Item = (OrderId, Option<SagaPhase>)> + '_ {
        self.entries
            .iter()
            .map(|(order, entry)| (*order, entry.saga.as_ref().map(SagaState::phase)))
    }

    /// How many orders are closed (written complete or cancelled, and
    /// answered).
    pub fn closed_count(&self) -> usize {
        self.closed.len()
    }

    /// Applies a record, taking it (an order's lines move into its entry).
    fn apply(&mut self, record: Record) {
        match record {
            Record::Accepted { order, client, card, lines } => {
                if !self.entries.contains_key(&order) && !self.closed.contains(order) {
                    self.running += 1;
                    let entry = Entry {
                        client,
                        lines,
                        card,
                        saga: None,
                        reason: None,
                        closed: false,
                        accepted_durable: false,
                        ack_to: AckTo::default(),
                        deadline: None,
                        backing_off: false,
                        write: None,
                    };
                    self.entries.insert(order, entry);
                }
            }
            Record::Created { order, at } => {
                let saga = &self.config.saga;
                let entry = self.entries.get_mut(&order).expect("created after accepted");
                let started =
                    SagaRecord::Started { saga: SagaId(order.0), requester: entry.client, at };
                entry.saga = Some(saga.restore(&started));
            }
            Record::Saga(saga_record) => {
                let order = OrderId(saga_record.saga().0);
                let entry = self.entries.get_mut(&order).expect("a saga record of a known order");
                entry.saga.as_mut().expect("steps after creation").apply(&saga_record);
            }
            Record::Reason { order, reason } => {
                let entry = self.entries.get_mut(&order).expect("a reason of a known order");
                entry.reason.get_or_insert(reason);
            }
            Record::Closed { order } => {
                let entry = self.entries.get_mut(&order).expect("closing a known order");
                if !entry.closed {
                    entry.closed = true;
                    self.running -= 1;
                }
            }
        }
    }

    /// Journals `records` about `order` and applies them; the next sync
    /// makes them durable.
    fn journal(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        order: OrderId,
        records: impl IntoIterator<Item = Record>,
    ) {
        for record in records {
            record.encode_into(&mut self.buffer);
            Self::report(ctx, &record);
            self.apply(record);
        }
        let entry = self.entries.get_mut(&order).expect("journaling a known order");
        entry.deadline = None;
        entry.backing_off = false;
    }

    /// Writes the journal's buffer and syncs, acting on `orders` (if any)
    /// once it is durable.
    fn sync_then_act(&mut self, ctx: &mut Ctx<'_, Msg>, orders: Option<ToAct>) {
        if !self.buffer.is_empty() {
            // Storage copies the bytes; the buffer is kept for next time.
            ctx.append_to(LOG, &mut self.log_id, &self.buffer);
            self.buffer.clear();
        }
        let tag = self.next_tag;
        self.next_tag += 1;
        if let Some(orders) = orders {
            self.syncing.insert(tag, orders);
        }
        ctx.sync(tag);
    }

    fn report(ctx: &mut Ctx<'_, Msg>, record: &Record) {
        match record {
            Record::Created { order, .. } => ctx.trace(Component::Saga, "started", order.0, 0),
            Record::Saga(saga_record) => {
                let step = saga_record.step().map_or(0, i64::from);
                ctx.trace(Component::Saga, saga_record.kind(), saga_record.saga().0, step);
                if let SagaRecord::StepCompensated { .. } = saga_record {
                    ctx.count("microsystem.compensations", 1);
                }
            }
            Record::Closed { order } => ctx.trace(Component::Saga, "closed", order.0, 0),
            Record::Accepted { .. } | Record::Reason { .. } => {}
        }
    }

    /// Does what the order needs next.
    fn act(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId) {
        let Some(entry) = self.entries.get_mut(&order) else { return };
        if entry.closed {
            let command = entry.final_command(order);
            let answer = match command {
                OrderCommand::CompleteOrder { .. } => Answer::Completed,
                OrderCommand::CancelOrder { reason, .. } => {
                    // Cancelling the order is the saga's last compensation.
                    ctx.count("microsystem.compensations", 1);
                    Answer::Cancelled(reason)
                }
                OrderCommand::CreateOrder { .. } => Answer::Failed,
            };
            ctx.send(entry.client, Msg::Edge(Edge::OrderAnswered { order, answer }));
            // Everything else about it is in the log.
            self.entries.remove(&order);
            self.closed.insert(order);
            return;
        }
        match entry.saga.as_ref() {
            None => {
                let command = OrderCommand::CreateOrder { order, lines: entry.lines.clone() };
                self.send_write(ctx, order, command);
            }
            Some(state) if !state.is_finished() => self.send_command(ctx, order),
            Some(_) => {
                let command = entry.final_command(order);
                self.send_write(ctx, order, command);
            }
        }
    }

    fn send_command(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId) {
        let saga = &self.config.saga;
        let entry = self.entries.get_mut(&order).expect("a known order");
        let Some(command) = entry.saga.as_ref().and_then(SagaState::command) else { return };
        let (step, message) = match command {
            SagaCommand::Execute { step, after_pivot } => {
                let task = match step {
                    0 => Task::Reserve { lines: entry.lines.clone() },
                    1 => Task::Pay { amount_cents: total_cents(&entry.lines), card: entry.card },
                    _ => Task::Ship,
                };
                (step, Internal::Execute { order, step, after_pivot, task })
            }
            SagaCommand::Compensate { step } => {
                ctx.trace(Component::Saga, "compensating", order.0, i64::from(step));
                (step, Internal::Compensate { order, step })
            }
        };
        let definition = saga.step(step);
        ctx.send(definition.participant, Msg::Internal(message));
        entry.backing_off = false;
        entry.deadline = Some(ctx.now_local().plus(definition.timeout));
    }

    fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        order: OrderId,
        input: SagaInput,
        reason: Option<CancelReason>,
    ) {
        let retry_interval = self.config.saga.definition().retry_interval;
        let Some(entry) = self.entries.get_mut(&order) else { return };
        let Some(state) = entry.saga.as_ref() else { return };
        let phase = state.phase();
        match state.decide(input) {
            SagaDecision::Log(records) => {
                let failing = records.iter().any(|record| {
                    matches!(
                        record,
                        SagaRecord::StepFailed { .. } | SagaRecord::StepTimedOut { .. }
                    )
                });
                let reason = (failing && entry.reason.is_none()).then(|| Record::Reason {
                    order,
                    reason: reason.unwrap_or(CancelReason::PaymentFailed),
                });
                self.journal(
                    ctx,
                    order,
                    reason.into_iter().chain(records.into_iter().map(Record::Saga)),
                );
                if failing {
                    // A decision to compensate is acted on only once
                    // durable: were it lost in a crash, the coordinator
                    // could resume forward while a participant undoes its
                    // step on the forgotten command's word.
                    self.sync_then_act(ctx, Some(ToAct::One(order)));
                } else {
                    self.act(ctx, order);
                }
            }
            SagaDecision::ResendNow => {
                if let SagaPhase::Executing { step } = phase {
                    ctx.trace(Component::Saga, "step_timed_out", order.0, i64::from(step));
                }
                self.send_command(ctx, order);
            }
            SagaDecision::ResendLater => {
                entry.backing_off = true;
                entry.deadline = Some(ctx.now_local().plus(retry_interval));
            }
            SagaDecision::Ignore => ctx.count("saga.stale_answers", 1),
        }
    }

    fn participant_answer(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: ProcessId,
        order: OrderId,
        step: u32,
        input: SagaInput,
        reason: Option<CancelReason>,
    ) {
        let saga = &self.config.saga;
        // Only the step's own participant may answer for it.
        if step >= saga.step_count() || saga.step(step).participant != from {
            ctx.count("saga.stale_answers", 1);
            return;
        }
        self.handle(ctx, order, input, reason);
    }

    // ----- Orders writes -----

    fn next_request(&mut self, ctx: &mut Ctx<'_, Msg>) -> u64 {
        // Random per incarnation, so a late answer to an earlier
        // incarnation's write matches nothing.
        let request = match self.next_request {
            Some(request) => request,
            None => ctx.rng().next_u64() >> 3,
        };
        self.next_request = Some(request + 1);
        request
    }

    fn send_write(&mut self, ctx: &mut Ctx<'_, Msg>, order: OrderId, command: OrderCommand) {
        let id = self.next_request(ctx);
        let entry = self.entries.get_mut(&order).expect("a known order");
        if let Some(previous) = entry.write.replace(id) {
            self.writes.remove(&previous);
        }
        self.writes.insert(id, OrdersWrite { order, command: Some(command) });
        let shard = shard_of(&self.config.ring, order);
        self.routes[shard as usize].waiting.push_back(id);
        self.flush(ctx, shard);
    }

    /// Sends the shard's waiting writes as one batch, unless a batch is in
    /// flight there already (then they wait for its answer).
    fn flush(&mut self, ctx: &mut Ctx<'_, Msg>, shard: u32) {
        let route = &mut self.routes[shard as usize];
        if route.batch.is_some() {
            return;
        }
        let mut writes = Vec::new();
        let mut commands = Vec::new();
        while writes.len() < self.config.batch_max {
            let Some(id) = route.waiting.pop_front() else { break };
            // A write superseded while it waited is dropped.
            if let Some(command) = self.writes.get_mut(&id).and_then(|write| write.command.take()) {
                writes.push(id);
                commands.push(command);
            }
        }
        if writes.is_empty() {
            return;
        }
        let request = self.next_request(ctx);
        self.routes[shard as usize].batch = Some(request);
        let deadline = ctx.now_local();
        let batch = Batch { shard, writes, commands, target: None, deadline, refused: false };
        self.batches.insert(request, batch);
        self.dispatch(ctx, request, None);
    }

    /// Sends batch `request` to `target`, or to the shard's active as the
    /// registry names it, or (when it names none) to its replicas in turn.
    fn dispatch(&mut self, ctx: &mut Ctx<'_, Msg>, request: u64, target: Option<ProcessId>) {
        let Some(batch) = self.batches.get_mut(&request) else { return };
        let route = &mut self.routes[batch.shard as usize];
        let target = target.unwrap_or_else(|| {
            let candidates = if route.live.is_empty() {
                &self.config.shards[batch.shard as usize]
            } else {
                &route.live
            };
            let target = candidates[route.cursor % candidates.len()];
            route.cursor = route.cursor.wrapping_add(1);
            target
        });
        batch.target = Some(target);
        batch.refused = false;
        let command = Internal::OrdersBatch { request, commands: batch.commands.clone() };
        ctx.send(target, Msg::Internal(command));
        batch.deadline = ctx.now_local().plus(self.config.write_retry);
    }

    /// Batch `request` is written, but for the commands at `deferred`,
    /// which go back in line for the next batch.
    fn batch_done(&mut self, ctx: &mut Ctx<'_, Msg>, request: u64, deferred: &[u32]) {
        let Some(batch) = self.batches.remove(&request) else { return };
        let route = &mut self.routes[batch.shard as usize];
        if route.batch == Some(request) {
            route.batch = None;
        }
        let is_deferred = |index: usize| deferred.contains(&(index as u32));
        for (index, (id, command)) in batch.writes.iter().zip(batch.commands).enumerate() {
            if is_deferred(index) {
                route.waiting.push_back(*id);
                // Back in line with its command, unless superseded since.
                if let Some(write) = self.writes.get_mut(id) {
                    write.command = Some(command);
                }
            }
        }
        for (index, id) in batch.writes.iter().enumerate() {
            if !is_deferred(index) {
                self.write_done(ctx, *id);
            }
        }
        self.flush(ctx, batch.shard);
    }

    fn write_done(&mut self, ctx: &mut Ctx<'_, Msg>, id: u64) {
        let Some(write) = self.writes.remove(&id) else { return };
        let order = write.order;
        let Some(entry) = self.entries.get_mut(&order) else { return };
        if entry.write != Some(id) {
            return;
        }
        entry.write = None;
        match (&entry.saga, entry.closed) {
            (None, _) => {
                let at = ctx.now_local();
                self.journal(ctx, order, [Record::Created { order, at }]);
            }
            (Some(state), false) if state.is_finished() => {
                self.journal(ctx, order, [Record::Closed { order }]);
            }
            _ => return,
        }
        self.act(ctx, order);
    }

    fn batch_refused(&mut self, ctx: &mut Ctx<'_, Msg>, request: u64, active: Option<ProcessId>) {
        let Some(batch) = self.batches.get_mut(&request) else { return };
        match active {
            Some(active) if batch.target != Some(active) => {
                self.dispatch(ctx, request, Some(active))
            }
            _ => {
                batch.refused = true;
                batch.deadline = ctx.now_local().plus(self.config.write_backoff);
            }
        }
    }

    /// Acts on every deadline that has passed (a step command that got no
    /// answer times out, a backoff ends, an unanswered batch goes again),
    /// and syncs the journal.
    fn sweep(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        let due: Vec<OrderId> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.deadline.is_some_and(|deadline| now >= deadline))
            .map(|(order, _)| *order)
            .collect();
        for order in due {
            let Some(entry) = self.entries.get_mut(&order) else { continue };
            entry.deadline = None;
            if entry.backing_off {
                entry.backing_off = false;
                self.send_command(ctx, order);
            } else {
                self.handle(ctx, order, SagaInput::TimedOut, None);
            }
        }
        let due: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, batch)| now >= batch.deadline)
            .map(|(request, _)| *request)
            .collect();
        for request in due {
            self.dispatch(ctx, request, None);
        }
        if !self.buffer.is_empty() {
            self.sync_then_act(ctx, None);
        }
    }

    fn watch(&self, ctx: &mut Ctx<'_, Msg>) {
        for service in self.services.keys() {
            let watch = Discovery::Watch { service: service.clone() };
            ctx.send(self.config.registry, Msg::Discovery(Box::new(watch)));
        }
    }

    fn registry_changed(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        service: &ServiceName,
        instances: Vec<ProcessId>,
        revision: u64,
    ) {
        let Some(&shard) = self.services.get(service) else { return };
        let route = &mut self.routes[shard as usize];
        if revision < route.revision {
            return;
        }
        route.revision = revision;
        route.live = instances;
        if route.live.is_empty() {
            return;
        }
        // A batch sent to an active the registry no longer names, or refused
        // while there was none, goes to the one named now, at once: this is
        // how a failover is noticed.
        let stranded: Vec<u64> = self
            .batches
            .iter()
            .filter(|(_, batch)| {
                batch.shard == shard
                    && (batch.refused
                        || batch.target.is_none_or(|target| !route.live.contains(&target)))
            })
            .map(|(request, _)| *request)
            .collect();
        for request in stranded {
            self.dispatch(ctx, request, None);
        }
    }

    fn start_order(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: ProcessId,
        client: ProcessId,
        request: crate::domain::PlaceOrder,
    ) {
        let order = request.order;
        if self.closed.contains(order) {
            ctx.send(from, Msg::Internal(Internal::OrderAccepted { order }));
            return;
        }
        if let Some(entry) = self.entries.get_mut(&order) {
            if entry.accepted_durable {
                ctx.send(from, Msg::Internal(Internal::OrderAccepted { order }));
            } else {
                entry.ack_to.add(from);
            }
            return;
        }
        if self.running >= self.config.saga.definition().active_max {
            ctx.trace(Component::Saga, "rejected", order.0, i64::from(self.running));
            ctx.count("saga.rejected", 1);
            ctx.send(from, Msg::Internal(Internal::OrderRefused { order }));
            return;
        }
        let record = Record::Accepted { order, client, card: request.card, lines: request.lines };
        self.journal(ctx, order, [record]);
        self.entries.get_mut(&order).expect("just accepted").ack_to.add(from);
        // The one change acted on only once durable: from the answer on,
        // the processing instance forgets the order.
        self.sync_then_act(ctx, Some(ToAct::One(order)));
    }

    fn synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let Some(orders) = self.syncing.remove(&tag) else { return };
        for order in orders.orders() {
            let Some(entry) = self.entries.get_mut(&order) else { continue };
            entry.accepted_durable = true;
            for processing in entry.ack_to.take() {
                ctx.send(processing, Msg::Internal(Internal::OrderAccepted { order }));
            }
            self.act(ctx, order);
        }
    }
}

impl Process<Msg> for OrderSagas {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let records: Vec<Record> = ctx.read_log(LOG).iter().flat_map(Record::decode_all).collect();
        for record in records {
            self.apply(record);
        }
        let closed: Vec<OrderId> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.closed)
            .map(|(order, _)| *order)
            .collect();
        for order in closed {
            self.entries.remove(&order);
            self.closed.insert(order);
        }
        let mut resumed = Vec::new();
        for (order, entry) in &mut self.entries {
            entry.accepted_durable = true;
            let step = match entry.saga.as_ref().map(SagaState::phase) {
                Some(SagaPhase::Executing { step } | SagaPhase::Compensating { step }) => {
                    i64::from(step)
                }
                _ => -1,
            };
            ctx.trace(Component::Saga, "resumed", order.0, step);
            ctx.count("saga.resumed", 1);
            resumed.push(*order);
        }
        // Act once what was replayed is known durable (a process restart
        // may find an unsynced tail in the page cache).
        if !resumed.is_empty() {
            self.sync_then_act(ctx, Some(ToAct::All(resumed)));
        }
        self.watch(ctx);
        ctx.set_timer(self.config.sweep_interval, TAG_SWEEP);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        match message {
            Msg::Internal(internal) => match internal {
                Internal::StartOrder { client, request } => {
                    self.start_order(ctx, from, client, request)
                }
                Internal::Executed { order, step } => {
                    let input = SagaInput::Executed { step };
                    self.participant_answer(ctx, from, order, step, input, None);
                }
                Internal::StepFailed { order, step, reason } => {
                    let input = SagaInput::Failed { step };
                    self.participant_answer(ctx, from, order, step, input, Some(reason));
                }
                Internal::Compensated { order, step } => {
                    let input = SagaInput::Compensated { step };
                    self.participant_answer(ctx, from, order, step, input, None);
                }
                Internal::OrdersDone { request } => self.batch_done(ctx, request, &[]),
                Internal::OrdersPartly { request, deferred } => {
                    let all = self
                        .batches
                        .get(&request)
                        .is_some_and(|batch| deferred.len() >= batch.writes.len());
                    if all {
                        // Nothing fitted: ask again after a pause.
                        self.batch_refused(ctx, request, None);
                    } else {
                        self.batch_done(ctx, request, &deferred);
                    }
                }
                Internal::OrdersRefused { request, active } => {
                    self.batch_refused(ctx, request, active)
                }
                _ => {}
            },
            Msg::Replication(Replication::Written { request, .. }) => {
                self.batch_done(ctx, request, &[])
            }
            Msg::Replication(Replication::WriteRejected { request, reason, .. }) => match reason {
                WriteRejection::NotActive { active } => self.batch_refused(ctx, request, active),
                _ => self.batch_refused(ctx, request, None),
            },
            Msg::Discovery(discovery) => {
                if let Discovery::Changed { service, instances, revision }
                | Discovery::Resolved { service, instances, revision } = *discovery
                {
                    self.registry_changed(ctx, &service, instances, revision);
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        if tag != TAG_SWEEP {
            return;
        }
        self.sweep(ctx);
        self.ticks += 1;
        let interval = self.config.sweep_interval.as_nanos().max(1);
        let every = (self.config.watch_refresh.as_nanos() / interval).max(1);
        if self.ticks.is_multiple_of(every) {
            self.watch(ctx);
        }
        ctx.set_timer(self.config.sweep_interval, TAG_SWEEP);
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.synced(ctx, tag);
    }
}
