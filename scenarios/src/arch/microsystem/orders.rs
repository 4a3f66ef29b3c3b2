//! The stateful part of Orders: the aggregate sharded by order id, each
//! shard event-sourced and replicated active-passive with
//! [`sim::kit::replication`].
//!
//! A shard is a [`LogStore`](sim::kit::replication::LogStore) (the
//! authoritative event log and the fencing point, on the event-log node)
//! and two [`OrdersReplica`] processes on different nodes. Each
//! `OrdersReplica` embeds the kit's [`Replica`] of an [`OrdersShard`] and
//! adds what a service around it needs:
//! - **Commands.** The coordinator sends [`Internal::OrdersCommand`]s. The
//!   active decides them against its memory image with the domain's
//!   [`Orders::decide`] and hands the events to its replica as a `Write`,
//!   which answers the coordinator (`Written` once the store has the
//!   events durably, or `WriteRejected`). A command that needs no events
//!   (a repeat) is answered [`Internal::OrdersDone`] at once; a passive
//!   answers [`Internal::OrdersRefused`] with its guess of the active.
//! - **Discovery.** While its replica is active it registers under
//!   `orders-<shard>` in the registry, and deregisters when demoted; a
//!   crashed active simply stops renewing and its lease runs out. Callers
//!   watch that name, so they find a new active without knowing where it
//!   runs (ch. 5, "Stay Mobile, but Addressable").
//! - **The event stream.** The active publishes the status changes it has
//!   applied to the broker, in log order, for the read model
//!   ([`super::read_model`]).

use super::codec::{reason_code, reason_from};
use super::message::{Internal, Msg};
use super::read_model::{StatusBatch, status_code};
use crate::domain::{Line, OrderCommand, ProductId};
use crate::domain::{OrderEvent, OrderId, Orders};
use serde::de::Error as _;
use serde::ser::SerializeSeq;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sim::kit::broker::{Producer, ProducerEvent};
use sim::kit::discovery::{Registration, ServiceName};
use sim::kit::persistence::Aggregate;
use sim::kit::replication::{REPLICA_TICK_TAG, Replica, ReplicaRole, Replication};
use sim::{Ctx, LocalTime, Process, ProcessId, SimDuration, Storage, TimerId};
use std::collections::BTreeMap;

/// The broker topic carrying status changes.
pub const STATUS_TOPIC: &str = "order-status";

/// Largest batch of status changes in one published record.
const PUBLISH_BATCH_MAX: usize = 500;

/// How long an active lets status changes gather before it publishes
/// them (Kafka's `linger.ms`): a few milliseconds more of read-model lag
/// for far fewer, larger records.
const PUBLISH_LINGER: SimDuration = SimDuration::from_millis(10);

/// The timer tag of an Orders replica's registration heartbeat.
const REGISTRATION_TAG: u64 = 0x4f52_4445_5253_0001;

/// The timer tag of the publishing linger.
const LINGER_TAG: u64 = 0x4f52_4445_5253_0002;

/// The registry name of shard `shard`'s active.
pub fn service_name(shard: u32) -> ServiceName {
    ServiceName::new(format!("orders-{shard}"))
}

/// An Orders event as the shards replicate and log it: the domain's
/// [`OrderEvent`], encoded as a flat array of numbers (`[0, order, total,
/// product, quantity, price, ...]` for a creation, `[1, order]` for a
/// completion, `[2, order, reason]` for a cancellation): one flat run of
/// numbers whatever the format (JSON when traced or inspected, the kit's
/// binary logs in storage), cheap to write, which matters because every
/// event is written three times (the store's log and both replicas' local
/// logs), at a thousand orders a second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardEvent(pub OrderEvent);

impl Serialize for ShardEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            OrderEvent::OrderCreated { order, lines, total_cents } => {
                let mut seq = serializer.serialize_seq(Some(3 + 3 * lines.len()))?;
                for number in [0, order.0, *total_cents] {
                    seq.serialize_element(&number)?;
                }
                for line in lines.iter() {
                    seq.serialize_element(&u64::from(line.product.0))?;
                    seq.serialize_element(&u64::from(line.quantity))?;
                    seq.serialize_element(&line.unit_price_cents)?;
                }
                seq.end()
            }
            // Always a sequence with its length (not a fixed-size array):
            // binary formats write the two differently, and reading back
            // expects the former.
            OrderEvent::OrderCompleted { order } => serializer.collect_seq([1, order.0]),
            OrderEvent::OrderCancelled { order, reason } => {
                serializer.collect_seq([2, order.0, u64::from(reason_code(*reason))])
            }
        }
    }
}

impl<'de> Deserialize<'de> for ShardEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ShardEvent, D::Error> {
        let numbers = Vec::<u64>::deserialize(deserializer)?;
        let field = |index: usize| {
            numbers.get(index).copied().ok_or_else(|| D::Error::custom("a short Orders event"))
        };
        let order = OrderId(field(1)?);
        let event = match field(0)? {
            0 => {
                let lines = numbers[3..]
                    .chunks_exact(3)
                    .map(|line| Line {
                        product: ProductId(line[0] as u32),
                        quantity: line[1] as u32,
                        unit_price_cents: line[2],
                    })
                    .collect();
                OrderEvent::OrderCreated { order, lines, total_cents: field(2)? }
            }
            1 => OrderEvent::OrderCompleted { order },
            2 => OrderEvent::OrderCancelled { order, reason: reason_from(field(2)? as u8) },
            kind => {
                return Err(D::Error::custom(format!("an Orders event of unknown kind {kind}")));
            }
        };
        Ok(ShardEvent(event))
    }
}

/// One shard's memory image: the domain's Orders aggregate for the orders
/// of this shard, and the status changes in the order they were applied
/// (what the active publishes to the read model).
#[derive(Clone, Debug, Default)]
pub struct OrdersShard {
    orders: Orders,
    changes: Vec<(u64, u8)>,
}

impl OrdersShard {
    /// The orders of this shard.
    pub fn orders(&self) -> &Orders {
        &self.orders
    }
}

impl Aggregate for OrdersShard {
    type Event = ShardEvent;

    fn apply(&mut self, event: &ShardEvent) {
        self.orders.evolve(&event.0);
        self.changes.push((event.0.order().0, status_code(&event.0)));
    }
}

/// A replica of one Orders shard, as a service (see the module docs).
#[derive(Clone, Debug)]
pub struct OrdersReplica {
    shard: u32,
    replica: Replica<OrdersShard>,
    registration: Registration,
    registered: bool,
    producer: Producer<StatusBatch>,
    /// How many of the memory image's changes the broker has acknowledged
    /// (volatile: a new active publishes from the start).
    published: usize,
    /// The publish in flight: its request and the change index it ends at.
    publishing: Option<(u64, usize)>,
    /// Whether the linger timer is set.
    lingering: bool,
    /// Writes made with some commands left out, by request: the
    /// coordinator to tell, and the commands left out (by position).
    partly: BTreeMap<u64, (ProcessId, Vec<u32>)>,
    /// Since when commands have kept not fitting the memory image.
    deferring_since: Option<LocalTime>,
    /// How long they may before the log is read again.
    patience: SimDuration,
    /// The newest epoch this incarnation led.
    led_epoch: u64,
}

impl OrdersReplica {
    /// A replica of shard `shard` around the kit's `replica`, registering
    /// with `registration` while active and publishing with `producer`;
    /// `patience` is how long commands may keep not fitting its memory
    /// image before it reads the log again (a detection timeout).
    pub fn new(
        shard: u32,
        replica: Replica<OrdersShard>,
        registration: Registration,
        producer: Producer<StatusBatch>,
        patience: SimDuration,
    ) -> OrdersReplica {
        OrdersReplica {
            shard,
            replica,
            registration,
            registered: false,
            producer,
            published: 0,
            publishing: None,
            lingering: false,
            partly: BTreeMap::new(),
            deferring_since: None,
            patience,
            led_epoch: 0,
        }
    }

    /// The embedded replica.
    pub fn replica(&self) -> &Replica<OrdersShard> {
        &self.replica
    }

    /// The registration timer tag this process uses.
    pub fn registration_tag() -> u64 {
        REGISTRATION_TAG
    }

    fn commands(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: ProcessId,
        request: u64,
        commands: Vec<OrderCommand>,
    ) {
        if self.replica.role() != ReplicaRole::Active {
            let active = self.replica.active();
            ctx.send(from, Msg::Internal(Internal::OrdersRefused { request, active }));
            return;
        }
        let orders = &self.replica.state().orders;
        let mut events = Vec::with_capacity(commands.len());
        let mut deferred = Vec::new();
        for (index, command) in commands.iter().enumerate() {
            match orders.decide(command) {
                Ok(decided) => events.extend(decided.into_iter().map(ShardEvent)),
                // A command that does not fit this memory image: only a
                // split brain makes that possible, by a rival's writes this
                // active has not read. It waits; the rest is written.
                Err(_) => deferred.push(index as u32),
            }
        }
        if deferred.is_empty() {
            self.deferring_since = None;
        } else {
            ctx.count("microsystem.orders_deferred", deferred.len() as u64);
            // An active learns of a rival's writes when it next writes
            // itself (the gap in its sequence numbers); if commands keep not
            // fitting for a detection timeout, it reads the log again.
            let now = ctx.now_local();
            let since = *self.deferring_since.get_or_insert(now);
            if now >= since.plus(self.patience) {
                self.replica.catch_up(ctx);
                self.deferring_since = Some(now);
            }
        }
        if events.is_empty() {
            if !deferred.is_empty() {
                let answer = Internal::OrdersPartly { request, deferred };
                ctx.send(from, Msg::Internal(answer));
            } else {
                ctx.send(from, Msg::Internal(Internal::OrdersDone { request }));
            }
            return;
        }
        let aggregate = u64::from(self.shard);
        let write = Replication::Write { aggregate, request, events };
        if deferred.is_empty() {
            // The replica answers the coordinator itself, once the store has
            // the events durably.
            self.replica.on_message(ctx, from, Msg::Replication(write));
        } else {
            // The answer must say what was left out: the replica answers
            // here, and this process tells the coordinator.
            self.partly.insert(request, (from, deferred));
            let me = ctx.me();
            self.replica.on_message(ctx, me, Msg::Replication(write));
        }
    }

    /// The replica's answer to a write it made for this process (one that
    /// left commands out), passed on to the coordinator.
    fn partly_answered(&mut self, ctx: &mut Ctx<'_, Msg>, answer: Replication<ShardEvent>) {
        let request = match &answer {
            Replication::Written { request, .. } | Replication::WriteRejected { request, .. } => {
                *request
            }
            _ => return,
        };
        let Some((coordinator, deferred)) = self.partly.remove(&request) else { return };
        match answer {
            Replication::Written { .. } => {
                let answer = Internal::OrdersPartly { request, deferred };
                ctx.send(coordinator, Msg::Internal(answer));
            }
            rejected => ctx.send(coordinator, Msg::Replication(rejected)),
        }
    }

    /// Follows the replica's role: registers while active, counts a
    /// takeover, publishes what is new.
    fn after(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let active = self.replica.role() == ReplicaRole::Active;
        if active && !self.registered {
            self.registration.start(ctx);
            self.registered = true;
        }
        if !active && self.registered {
            self.registration.stop(ctx);
            self.registered = false;
            self.published = 0;
            self.publishing = None;
        }
        if active {
            let epoch = self.replica.epoch();
            if epoch > self.led_epoch {
                if epoch >= 2 {
                    // Epoch 1 is the group's first election; every later
                    // epoch is a takeover.
                    ctx.count("microsystem.failovers", 1);
                }
                self.led_epoch = epoch;
            }
            let unpublished = self.replica.state().changes.len() > self.published;
            if unpublished && self.publishing.is_none() && !self.lingering {
                self.lingering = true;
                ctx.set_timer(PUBLISH_LINGER, LINGER_TAG);
            }
        }
    }

    fn publish(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.publishing.is_some() || self.replica.role() != ReplicaRole::Active {
            return;
        }
        let changes = &self.replica.state().changes;
        if self.published >= changes.len() {
            return;
        }
        let end = changes.len().min(self.published + PUBLISH_BATCH_MAX);
        let batch = StatusBatch { changes: changes[self.published..end].into() };
        let key = u64::from(self.shard);
        if let Ok(request) = self.producer.publish(ctx, STATUS_TOPIC, key, batch) {
            self.publishing = Some((request, end));
        }
    }
}

impl Process<Msg> for OrdersReplica {
    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.replica.on_start(ctx);
        self.after(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: ProcessId, message: Msg) {
        match message {
            Msg::Internal(Internal::OrdersBatch { request, commands }) => {
                self.commands(ctx, from, request, commands);
            }
            Msg::Replication(
                answer @ (Replication::Written { .. } | Replication::WriteRejected { .. }),
            ) if from == ctx.me() => self.partly_answered(ctx, answer),
            Msg::Replication(replication) => {
                self.replica.on_message(ctx, from, Msg::Replication(replication));
            }
            Msg::Broker(broker) => {
                let settled = match self.producer.on_message(ctx, &broker) {
                    Some(ProducerEvent::Acked { request, .. }) => Some((request, true)),
                    Some(ProducerEvent::Rejected { request, .. }) => Some((request, false)),
                    None => None,
                };
                if let (Some((request, acked)), Some((in_flight, end))) = (settled, self.publishing)
                    && request == in_flight
                {
                    if acked {
                        self.published = end;
                    }
                    self.publishing = None;
                }
            }
            // Registration answers (a full registry) and anything else.
            _ => {}
        }
        self.after(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        if tag == REPLICA_TICK_TAG {
            self.replica.on_timer(ctx, timer, tag);
        } else if tag == LINGER_TAG {
            self.lingering = false;
            self.publish(ctx);
        } else if !self.registration.on_timer::<Msg>(ctx, tag) {
            self.producer.on_timer(ctx, timer);
        }
        self.after(ctx);
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.replica.on_synced(ctx, tag);
        self.after(ctx);
    }
}

/// The storage log holding shard `shard`'s entries at the store (the kit's
/// [`EventLog`](sim::kit::persistence::EventLog) naming).
pub fn store_log_name(shard: u32) -> String {
    format!("store/entries/{shard}/events")
}

/// The events in shard `shard`'s authoritative log at the store, in log
/// order, read from the event-log node's storage (durable records, plus an
/// unsynced tail if the node is up), decoded by the kit's
/// [`decode_store_record`](sim::kit::replication::decode_store_record).
pub fn store_events(storage: &Storage, shard: u32) -> Vec<OrderEvent> {
    let log = store_log_name(shard);
    storage
        .read(&log)
        .iter()
        .enumerate()
        .map(|(index, record)| {
            let entry: sim::kit::replication::Entry<ShardEvent> =
                sim::kit::replication::decode_store_record(&log, index, record)
                    .expect("the store's log holds its entries");
            entry.event.0
        })
        .collect()
}
