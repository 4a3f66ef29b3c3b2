//! Backpressure: bounded buffers, a demand signal upstream, and drop
//! policies for load shedding.
//!
//! A fast producer feeding a slow consumer has three choices (Reactive
//! Microsystems, ch. 5, on flow control between asynchronous components):
//!
//! - **Unbounded push**: the producer sends at its own pace and the
//!   consumer queues what it cannot handle yet. Nothing is lost, but the
//!   queue, the memory it takes and the wait of every item grow without
//!   limit for as long as the producer is faster.
//! - **Bounded push with load shedding**: the consumer keeps at most
//!   `capacity` items and applies an [`OverflowPolicy`] to the excess:
//!   drop the arriving item, drop the oldest one to make room, or reject
//!   the arriving item and tell the sender. Memory and waits are bounded;
//!   what is shed is counted.
//! - **Demand signalling** (the Reactive Streams `request(n)` protocol):
//!   the consumer tells the producer how many more items it can take
//!   ([`Flow::Request`]), and the producer sends only while it has
//!   outstanding demand, pausing its source otherwise. The consumer never
//!   holds more than its bound, nothing is lost, and the producer is slowed
//!   to the consumer's pace: the pressure travels upstream.
//!
//! The pieces:
//! - [`BoundedBuffer`]: a FIFO buffer with an optional capacity and an
//!   [`OverflowPolicy`]; [`BoundedBuffer::offer`] says what happened as an
//!   [`Offer`]. Pure data, no simulation needed; the `_observed` variants
//!   also trace, count and sample its length.
//! - [`Demand`]: the consumer's side of `request(n)` bookkeeping: how much
//!   it has asked for and not received, how much it holds, and when to ask
//!   for more.
//! - [`Flow`]: the protocol, carried in a world's message type through
//!   [`Carry`].
//! - [`Producer`] and [`Consumer`]: processes speaking [`Flow`]. The
//!   producer's source makes one item per `interval`; in
//!   [`Pace::OnDemand`] it pauses while it has no demand, in [`Pace::Push`]
//!   it ignores demand. The consumer buffers arrivals and spends
//!   `service_time` of CPU on each, asking for more as it finishes them
//!   ([`Intake::Demand`]) or never asking ([`Intake::Push`]).
//!
//! Trace events ([`Component::Backpressure`]): `dropped` and `rejected`
//! (an overflow; key: the arriving item's sequence, value: the buffer
//! length),
//! `requested` (demand sent upstream; key: the producer, value: `n`),
//! `paused` and `resumed` (the producer's source; key: the consumer, value:
//! items made so far), `completed` (the producer sent, or the consumer
//! finished, the last item; value: the item count).
//!
//! Metrics, under the buffer's or producer's `name`: series
//! `NAME.length`; counters `NAME.dropped`, `NAME.rejected`,
//! `NAME.requested`, `NAME.processed` (consumer), `NAME.produced`,
//! `NAME.sent`, `NAME.paused`, `NAME.refused` (producer); latency histogram
//! `NAME.latency` (from production to the end of processing, read on the
//! consumer's clock, so meaningful when the two clocks agree).
//!
//! Demand lives in process memory: if the producer restarts it forgets the
//! demand it was given (the flow stalls, visible as a paused producer and
//! a consumer with outstanding demand), and if the consumer restarts it
//! asks for its whole bound again (the excess is shed by its buffer's
//! policy and counted, never held beyond the bound).
//!
//! # Example
//!
//! A producer making 1,000 items/s feeds a consumer that handles 500/s,
//! keeping at most 10 items: demand slows the producer down and the buffer
//! never exceeds its bound.
//!
//! ```
//! use sim::kit::backpressure::{
//!     BufferConfig, Consumer, ConsumerConfig, Flow, Intake, OverflowPolicy, Pace, Producer,
//!     ProducerConfig,
//! };
//! use sim::{NodeConfig, ProcessId, Seed, Sim, SimConfig, SimDuration, SimTime};
//!
//! let mut sim: Sim<Flow<u64>> = Sim::new(SimConfig::new(Seed(1)));
//! let node = sim.add_node(NodeConfig::new("n0"));
//! let (producer_id, consumer_id) = (ProcessId(0), ProcessId(1));
//! let producer = Producer::new(
//!     ProducerConfig {
//!         name: "orders".into(),
//!         downstream: consumer_id,
//!         interval: SimDuration::from_millis(1),
//!         item_count: Some(200),
//!         pace: Pace::OnDemand,
//!     },
//!     |sequence| sequence,
//! )?;
//! let consumer = Consumer::new(ConsumerConfig {
//!     upstream: producer_id,
//!     buffer: BufferConfig::bounded("inbox", 10, OverflowPolicy::Reject),
//!     service_time: SimDuration::from_millis(2),
//!     intake: Intake::Demand { request_batch: 1 },
//! })?;
//! sim.spawn(node, "producer", move || producer.clone());
//! sim.spawn(node, "consumer", move || consumer.clone());
//! sim.run();
//!
//! let consumer = sim.process_state::<Consumer<Flow<u64>, u64>>(consumer_id).unwrap();
//! assert_eq!(consumer.processed(), 200);
//! assert_eq!(consumer.buffer().stats().rejected, 0);
//! assert!(consumer.buffer().stats().high_water <= 10);
//! // 200 items at 2 ms each: the producer went at the consumer's pace.
//! assert!(sim.now() >= SimTime::from_nanos(400_000_000));
//! # Ok::<(), sim::kit::ConfigError>(())
//! ```

use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message, Process};
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

#[cfg(test)]
mod tests;

/// What a full buffer does with one more item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Discard the arriving item (the newest); the buffer is unchanged.
    /// Silent for the sender: load shedding.
    DropNewest,
    /// Discard the oldest buffered item to make room for the arriving one:
    /// the freshest data wins.
    DropOldest,
    /// Refuse the arriving item and hand it back, so that its sender can be
    /// told (the [`Consumer`] answers [`Flow::Rejected`]).
    Reject,
}

impl OverflowPolicy {
    /// The name used in configurations: `drop_newest`, `drop_oldest`,
    /// `reject`.
    pub fn name(self) -> &'static str {
        match self {
            OverflowPolicy::DropNewest => "drop_newest",
            OverflowPolicy::DropOldest => "drop_oldest",
            OverflowPolicy::Reject => "reject",
        }
    }
}

impl fmt::Display for OverflowPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OverflowPolicy {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<OverflowPolicy, ConfigError> {
        match text {
            "drop_newest" => Ok(OverflowPolicy::DropNewest),
            "drop_oldest" => Ok(OverflowPolicy::DropOldest),
            "reject" => Ok(OverflowPolicy::Reject),
            _ => Err(ConfigError::new(
                "backpressure.overflow_policy",
                text,
                "one of drop_newest, drop_oldest, reject",
            )),
        }
    }
}

/// How a [`BoundedBuffer`] is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BufferConfig {
    /// The prefix of its metrics, e.g. `inbox` for `inbox.length`.
    pub name: String,
    /// The most items it holds; `None` for an unbounded buffer, which only
    /// exists to show what happens without a bound.
    pub capacity: Option<u32>,
    /// What happens to an item offered to a full buffer.
    pub overflow_policy: OverflowPolicy,
}

impl BufferConfig {
    /// A buffer of at most `capacity` items.
    pub fn bounded(name: impl Into<String>, capacity: u32, policy: OverflowPolicy) -> BufferConfig {
        BufferConfig { name: name.into(), capacity: Some(capacity), overflow_policy: policy }
    }

    /// A buffer without a bound (the overflow policy never applies).
    pub fn unbounded(name: impl Into<String>) -> BufferConfig {
        BufferConfig {
            name: name.into(),
            capacity: None,
            overflow_policy: OverflowPolicy::DropNewest,
        }
    }

    /// Rejects an empty name and a zero capacity.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("backpressure.name", "\"\"", "a non-empty metric prefix"));
        }
        if self.capacity == Some(0) {
            return Err(ConfigError::new(
                "backpressure.capacity",
                0,
                "at least 1 (or none for an unbounded buffer)",
            ));
        }
        Ok(())
    }
}

/// What became of an item offered to a [`BoundedBuffer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// Buffered; nothing was lost.
    Accepted,
    /// Buffered, after the oldest item (returned) was dropped for it.
    DroppedOldest(T),
    /// The buffer was full; the arriving item (returned) was dropped.
    DroppedNewest(T),
    /// The buffer was full; the arriving item (returned) was refused.
    Rejected(T),
}

impl<T> Offer<T> {
    /// Whether the offered item is now in the buffer.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Offer::Accepted | Offer::DroppedOldest(_))
    }
}

/// Running totals of a [`BoundedBuffer`]. They always satisfy
/// `offered = taken + dropped + rejected + length`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferStats {
    /// Items offered.
    pub offered: u64,
    /// Items taken out in order.
    pub taken: u64,
    /// Items dropped (arriving ones under `DropNewest`, buffered ones
    /// under `DropOldest`).
    pub dropped: u64,
    /// Items refused under `Reject`.
    pub rejected: u64,
    /// The largest length reached.
    pub high_water: u64,
}

/// A FIFO buffer with an optional bound and a policy for the excess.
///
/// ```
/// use sim::kit::backpressure::{BoundedBuffer, BufferConfig, Offer, OverflowPolicy};
///
/// let config = BufferConfig::bounded("inbox", 2, OverflowPolicy::DropOldest);
/// let mut buffer = BoundedBuffer::new(config)?;
/// assert_eq!(buffer.offer('a'), Offer::Accepted);
/// assert_eq!(buffer.offer('b'), Offer::Accepted);
/// assert_eq!(buffer.offer('c'), Offer::DroppedOldest('a'));
/// assert_eq!(buffer.take(), Some('b'));
/// assert_eq!(buffer.stats().dropped, 1);
/// # Ok::<(), sim::kit::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct BoundedBuffer<T> {
    config: BufferConfig,
    items: VecDeque<T>,
    stats: BufferStats,
    length_metric: String,
    dropped_metric: String,
    rejected_metric: String,
}

impl<T> BoundedBuffer<T> {
    /// An empty buffer, if `config` is valid.
    pub fn new(config: BufferConfig) -> Result<BoundedBuffer<T>, ConfigError> {
        config.validate()?;
        let name = &config.name;
        Ok(BoundedBuffer {
            length_metric: format!("{name}.length"),
            dropped_metric: format!("{name}.dropped"),
            rejected_metric: format!("{name}.rejected"),
            config,
            items: VecDeque::new(),
            stats: BufferStats::default(),
        })
    }

    /// Adds `item` at the back, applying the overflow policy if full.
    pub fn offer(&mut self, item: T) -> Offer<T> {
        self.stats.offered += 1;
        let outcome = if self.is_full() {
            match self.config.overflow_policy {
                OverflowPolicy::DropNewest => {
                    self.stats.dropped += 1;
                    Offer::DroppedNewest(item)
                }
                OverflowPolicy::Reject => {
                    self.stats.rejected += 1;
                    Offer::Rejected(item)
                }
                OverflowPolicy::DropOldest => {
                    self.stats.dropped += 1;
                    let oldest = self.items.pop_front().expect("a full buffer has an oldest item");
                    self.items.push_back(item);
                    Offer::DroppedOldest(oldest)
                }
            }
        } else {
            self.items.push_back(item);
            Offer::Accepted
        };
        self.stats.high_water = self.stats.high_water.max(self.items.len() as u64);
        outcome
    }

    /// Takes the oldest item out.
    pub fn take(&mut self) -> Option<T> {
        let item = self.items.pop_front()?;
        self.stats.taken += 1;
        Some(item)
    }

    /// Items held now.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether one more item would overflow it (never, if unbounded).
    pub fn is_full(&self) -> bool {
        self.config.capacity.is_some_and(|capacity| self.items.len() >= capacity as usize)
    }

    /// Its bound, if any.
    pub fn capacity(&self) -> Option<u32> {
        self.config.capacity
    }

    /// Its configuration.
    pub fn config(&self) -> &BufferConfig {
        &self.config
    }

    /// Its running totals.
    pub fn stats(&self) -> BufferStats {
        self.stats
    }

    /// The held items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// [`BoundedBuffer::offer`], reporting an overflow as a `dropped` or
    /// `rejected` trace event about `key` (with the length as value) and a
    /// counter, and sampling the length.
    pub fn offer_observed<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: u64,
        item: T,
    ) -> Offer<T> {
        let outcome = self.offer(item);
        let length = self.items.len() as i64;
        match &outcome {
            Offer::Accepted => {}
            Offer::DroppedOldest(_) | Offer::DroppedNewest(_) => {
                ctx.trace(Component::Backpressure, "dropped", key, length);
                ctx.count(&self.dropped_metric, 1);
            }
            Offer::Rejected(_) => {
                ctx.trace(Component::Backpressure, "rejected", key, length);
                ctx.count(&self.rejected_metric, 1);
            }
        }
        ctx.sample(&self.length_metric, length as f64);
        outcome
    }

    /// [`BoundedBuffer::take`], sampling the length.
    pub fn take_observed<M: Message>(&mut self, ctx: &mut Ctx<'_, M>) -> Option<T> {
        let item = self.take()?;
        ctx.sample(&self.length_metric, self.items.len() as f64);
        Some(item)
    }
}

/// The consumer's side of `request(n)`: it never has more than `bound`
/// items held or asked for, and asks for more in batches of at least
/// `request_batch` as it lets items go.
///
/// ```
/// use sim::kit::backpressure::Demand;
///
/// let mut demand = Demand::new(4, 2)?;
/// assert_eq!(demand.start(), 4); // ask for as much as the bound allows
/// for _ in 0..4 {
///     assert!(demand.received());
/// }
/// assert_eq!(demand.released(), None, "one free slot is less than a batch");
/// assert_eq!(demand.released(), Some(2));
/// assert!(demand.received());
/// assert!(demand.received());
/// assert!(!demand.received(), "this one was never asked for");
/// # Ok::<(), sim::kit::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Demand {
    bound: u32,
    request_batch: u32,
    outstanding: u32,
    held: u32,
}

impl Demand {
    /// Bookkeeping for a consumer holding at most `bound` items and asking
    /// for at least `request_batch` at a time.
    pub fn new(bound: u32, request_batch: u32) -> Result<Demand, ConfigError> {
        if bound == 0 {
            return Err(ConfigError::new("backpressure.capacity", 0, "at least 1"));
        }
        if request_batch == 0 || request_batch > bound {
            return Err(ConfigError::new(
                "backpressure.request_batch",
                request_batch,
                format!("between 1 and the capacity ({bound})"),
            ));
        }
        Ok(Demand { bound, request_batch, outstanding: 0, held: 0 })
    }

    /// The first request: everything the bound allows.
    pub fn start(&mut self) -> u32 {
        self.request_more().unwrap_or(0)
    }

    /// An item arrived and is now held. Returns whether it had been asked
    /// for (an unrequested item, from a producer that broke the protocol
    /// or a duplicating network, is held all the same).
    pub fn received(&mut self) -> bool {
        self.held += 1;
        if self.outstanding == 0 {
            return false;
        }
        self.outstanding -= 1;
        true
    }

    /// A held item was let go (processed, dropped or rejected). Returns how
    /// many more to ask for, if a batch's worth of room is free.
    pub fn released(&mut self) -> Option<u32> {
        self.held = self.held.saturating_sub(1);
        self.request_more()
    }

    fn request_more(&mut self) -> Option<u32> {
        let free = self.bound.saturating_sub(self.held + self.outstanding);
        if free < self.request_batch {
            return None;
        }
        self.outstanding += free;
        Some(free)
    }

    /// Items asked for and not yet received.
    pub fn outstanding(&self) -> u32 {
        self.outstanding
    }

    /// Items received and not yet let go.
    pub fn held(&self) -> u32 {
        self.held
    }

    /// The bound on held plus outstanding items.
    pub fn bound(&self) -> u32 {
        self.bound
    }
}

/// The flow-control protocol between a [`Producer`] and a [`Consumer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow<T> {
    /// Consumer to producer: send up to `n` more items.
    Request {
        /// How many more.
        n: u32,
    },
    /// Producer to consumer: one item.
    Item {
        /// Its position in the producer's output, from 0.
        sequence: u64,
        /// When the producer's source made it, on the producer's clock.
        produced_at: LocalTime,
        /// The item itself.
        payload: T,
    },
    /// Consumer to producer: the item with this sequence was refused
    /// because the consumer's buffer was full.
    Rejected {
        /// The refused item's sequence.
        sequence: u64,
    },
    /// Producer to consumer: there will be no more items.
    Completed,
}

/// A world whose only protocol is [`Flow`] can use it as its message type.
impl<T: Clone + fmt::Debug + 'static> Message for Flow<T> {
    fn label(&self) -> &'static str {
        match self {
            Flow::Request { .. } => "Request",
            Flow::Item { .. } => "Item",
            Flow::Rejected { .. } => "Rejected",
            Flow::Completed => "Completed",
        }
    }

    /// Covers the protocol fields, not the payload (which has no digest).
    fn digest(&self) -> u64 {
        match self {
            Flow::Request { n } => u64::from(*n),
            Flow::Item { sequence, produced_at, .. } => {
                sequence.wrapping_mul(3).wrapping_add(produced_at.as_nanos() as u64)
            }
            Flow::Rejected { sequence } => sequence.wrapping_mul(5).wrapping_add(1),
            Flow::Completed => 7,
        }
    }
}

impl<T: Clone + fmt::Debug + 'static> Carry<Flow<T>> for Flow<T> {
    fn wrap(inner: Flow<T>) -> Flow<T> {
        inner
    }
    fn unwrap(self) -> Result<Flow<T>, Flow<T>> {
        Ok(self)
    }
}

/// Whether a [`Producer`] heeds demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// Send every item as soon as the source makes it, asked for or not.
    Push,
    /// Send only against outstanding demand; pause the source otherwise.
    OnDemand,
}

impl Pace {
    /// The name used in configurations: `push` or `on_demand`.
    pub fn name(self) -> &'static str {
        match self {
            Pace::Push => "push",
            Pace::OnDemand => "on_demand",
        }
    }
}

impl FromStr for Pace {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Pace, ConfigError> {
        match text {
            "push" => Ok(Pace::Push),
            "on_demand" => Ok(Pace::OnDemand),
            _ => Err(ConfigError::new("backpressure.pace", text, "one of push, on_demand")),
        }
    }
}

/// How a [`Producer`] is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerConfig {
    /// The prefix of its metrics.
    pub name: String,
    /// Where its items go.
    pub downstream: ProcessId,
    /// Time between two items of its source (its rate is one per interval).
    pub interval: SimDuration,
    /// Items to make before sending [`Flow::Completed`]; `None`: forever.
    pub item_count: Option<u64>,
    /// Whether it heeds demand.
    pub pace: Pace,
}

impl ProducerConfig {
    /// Rejects an empty name, a zero interval and a zero item count.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("backpressure.name", "\"\"", "a non-empty metric prefix"));
        }
        if self.interval == SimDuration::ZERO {
            return Err(ConfigError::new("backpressure.interval", self.interval, "more than 0"));
        }
        if self.item_count == Some(0) {
            return Err(ConfigError::new("backpressure.item_count", 0, "at least 1 (or none)"));
        }
        Ok(())
    }
}

const TICK: u64 = 0;

/// A process whose source makes one item every `interval` and sends it
/// downstream as [`Flow::Item`], either at once ([`Pace::Push`]) or only
/// against demand ([`Pace::OnDemand`]), in which case the source pauses
/// (holding the item it just made) until a [`Flow::Request`] arrives.
#[derive(Clone, Debug)]
pub struct Producer<M, T> {
    config: ProducerConfig,
    make_item: fn(u64) -> T,
    /// Items the consumer asked for and has not been sent.
    demand: u64,
    produced: u64,
    sent: u64,
    refused: u64,
    /// The item made while there was no demand: the source waits on it.
    held: Option<(u64, LocalTime)>,
    timer: Option<TimerId>,
    metrics: [String; 4],
    _world: PhantomData<fn() -> M>,
}

impl<M, T> Producer<M, T> {
    /// A producer making its items with `make_item(sequence)`, if `config`
    /// is valid.
    pub fn new(
        config: ProducerConfig,
        make_item: fn(u64) -> T,
    ) -> Result<Producer<M, T>, ConfigError> {
        config.validate()?;
        let metrics = ["produced", "sent", "paused", "refused"]
            .map(|metric| format!("{}.{metric}", config.name));
        Ok(Producer {
            config,
            make_item,
            demand: 0,
            produced: 0,
            sent: 0,
            refused: 0,
            held: None,
            timer: None,
            metrics,
            _world: PhantomData,
        })
    }

    /// Items its source made.
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Items it sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Items the consumer refused ([`Flow::Rejected`]).
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Demand received and not yet used.
    pub fn demand(&self) -> u64 {
        self.demand
    }

    /// Whether its source is paused for lack of demand.
    pub fn is_paused(&self) -> bool {
        self.held.is_some()
    }

    fn source_exhausted(&self) -> bool {
        self.config.item_count.is_some_and(|count| self.produced >= count)
    }
}

impl<M: Carry<Flow<T>>, T: Clone + 'static> Producer<M, T> {
    fn send_item(&mut self, ctx: &mut Ctx<'_, M>, sequence: u64, produced_at: LocalTime) {
        let payload = (self.make_item)(sequence);
        ctx.send(self.config.downstream, M::wrap(Flow::Item { sequence, produced_at, payload }));
        self.sent += 1;
        ctx.count(&self.metrics[1], 1);
        if self.config.pace == Pace::OnDemand {
            self.demand -= 1;
        }
        if self.source_exhausted() && self.held.is_none() {
            ctx.send(self.config.downstream, M::wrap(Flow::Completed));
            ctx.trace(
                Component::Backpressure,
                "completed",
                self.downstream_key(),
                self.sent as i64,
            );
        }
    }

    fn schedule_tick(&mut self, ctx: &mut Ctx<'_, M>) {
        if !self.source_exhausted() {
            self.timer = Some(ctx.set_timer(self.config.interval, TICK));
        }
    }

    fn downstream_key(&self) -> u64 {
        u64::from(self.config.downstream.0)
    }
}

impl<M: Carry<Flow<T>>, T: Clone + 'static> Process<M> for Producer<M, T> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        self.schedule_tick(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, _from: ProcessId, message: M) {
        let Ok(flow) = message.unwrap() else { return };
        match flow {
            Flow::Request { n } => {
                self.demand += u64::from(n);
                if self.config.pace == Pace::OnDemand
                    && self.demand > 0
                    && let Some((sequence, produced_at)) = self.held.take()
                {
                    ctx.trace(
                        Component::Backpressure,
                        "resumed",
                        self.downstream_key(),
                        self.produced as i64,
                    );
                    self.send_item(ctx, sequence, produced_at);
                    self.schedule_tick(ctx);
                }
            }
            Flow::Rejected { .. } => {
                self.refused += 1;
                ctx.count(&self.metrics[3], 1);
            }
            Flow::Item { .. } | Flow::Completed => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, _tag: u64) {
        if self.timer != Some(timer) {
            return;
        }
        self.timer = None;
        let sequence = self.produced;
        self.produced += 1;
        ctx.count(&self.metrics[0], 1);
        let produced_at = ctx.now_local();
        if self.config.pace == Pace::OnDemand && self.demand == 0 {
            self.held = Some((sequence, produced_at));
            ctx.count(&self.metrics[2], 1);
            ctx.trace(
                Component::Backpressure,
                "paused",
                self.downstream_key(),
                self.produced as i64,
            );
            return;
        }
        self.send_item(ctx, sequence, produced_at);
        self.schedule_tick(ctx);
    }
}

/// Whether a [`Consumer`] signals demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intake {
    /// Take whatever arrives; never ask.
    Push,
    /// Ask for as many items as the buffer's capacity allows, and ask again
    /// whenever at least `request_batch` slots are free.
    Demand {
        /// The smallest request sent after the first.
        request_batch: u32,
    },
}

/// How a [`Consumer`] is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Where its items come from (where demand goes).
    pub upstream: ProcessId,
    /// Its buffer: its bound, overflow policy, and metric prefix.
    pub buffer: BufferConfig,
    /// CPU time spent on each item.
    pub service_time: SimDuration,
    /// Whether it signals demand.
    pub intake: Intake,
}

impl ConsumerConfig {
    /// Checks the buffer, and that demand comes with a bounded buffer and a
    /// batch between 1 and the capacity.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.buffer.validate()?;
        if let Intake::Demand { request_batch } = self.intake {
            let Some(capacity) = self.buffer.capacity else {
                return Err(ConfigError::new(
                    "backpressure.capacity",
                    "none",
                    "a bound when demand is signalled",
                ));
            };
            Demand::new(capacity, request_batch)?;
        }
        Ok(())
    }
}

/// An item waiting in a [`Consumer`]'s buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Buffered<T> {
    /// Its position in the producer's output.
    pub sequence: u64,
    /// When it was made, on the producer's clock.
    pub produced_at: LocalTime,
    /// The item.
    pub payload: T,
}

/// A process that buffers the [`Flow::Item`]s it receives and handles them
/// one at a time, spending `service_time` of CPU on each; with
/// [`Intake::Demand`] it asks upstream for more as it finishes them.
#[derive(Clone, Debug)]
pub struct Consumer<M, T> {
    config: ConsumerConfig,
    buffer: BoundedBuffer<Buffered<T>>,
    demand: Option<Demand>,
    in_service: Option<Buffered<T>>,
    holding_high_water: u64,
    processed: u64,
    unrequested: u64,
    upstream_completed: bool,
    completion_traced: bool,
    metrics: [String; 3],
    _world: PhantomData<fn() -> M>,
}

impl<M, T> Consumer<M, T> {
    /// A consumer with an empty buffer, if `config` is valid.
    pub fn new(config: ConsumerConfig) -> Result<Consumer<M, T>, ConfigError> {
        config.validate()?;
        let demand = match (config.intake, config.buffer.capacity) {
            (Intake::Demand { request_batch }, Some(capacity)) => {
                Some(Demand::new(capacity, request_batch)?)
            }
            _ => None,
        };
        let name = &config.buffer.name;
        let metrics =
            ["requested", "processed", "latency"].map(|metric| format!("{name}.{metric}"));
        Ok(Consumer {
            buffer: BoundedBuffer::new(config.buffer.clone())?,
            config,
            demand,
            in_service: None,
            holding_high_water: 0,
            processed: 0,
            unrequested: 0,
            upstream_completed: false,
            completion_traced: false,
            metrics,
            _world: PhantomData,
        })
    }

    /// Its buffer (what waits, and the running totals).
    pub fn buffer(&self) -> &BoundedBuffer<Buffered<T>> {
        &self.buffer
    }

    /// The most items it ever held at once: buffered plus the one in
    /// service. With demand signalling this never exceeds the capacity.
    pub fn holding_high_water(&self) -> u64 {
        self.holding_high_water
    }

    /// Items fully handled.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Items that arrived without having been asked for.
    pub fn unrequested(&self) -> u64 {
        self.unrequested
    }

    /// Its demand bookkeeping, if it signals demand.
    pub fn demand(&self) -> Option<&Demand> {
        self.demand.as_ref()
    }

    /// Whether the producer said it is done and everything was handled.
    pub fn is_completed(&self) -> bool {
        self.completion_traced
    }
}

impl<M: Carry<Flow<T>>, T: Clone + 'static> Consumer<M, T> {
    fn upstream_key(&self) -> u64 {
        u64::from(self.config.upstream.0)
    }

    /// One item left the consumer: ask for more if a batch is free.
    fn release(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Some(n) = self.demand.as_mut().and_then(Demand::released) {
            self.request(ctx, n);
        }
    }

    fn request(&mut self, ctx: &mut Ctx<'_, M>, n: u32) {
        ctx.send(self.config.upstream, M::wrap(Flow::Request { n }));
        ctx.trace(Component::Backpressure, "requested", self.upstream_key(), i64::from(n));
        ctx.count(&self.metrics[0], u64::from(n));
    }

    fn start_next(&mut self, ctx: &mut Ctx<'_, M>) {
        if self.in_service.is_some() {
            return;
        }
        match self.buffer.take_observed(ctx) {
            Some(item) => {
                self.in_service = Some(item);
                ctx.spend_cpu(self.config.service_time, 0);
            }
            None if self.upstream_completed && !self.completion_traced => {
                self.completion_traced = true;
                ctx.trace(
                    Component::Backpressure,
                    "completed",
                    self.upstream_key(),
                    self.processed as i64,
                );
            }
            None => {}
        }
    }
}

impl<M: Carry<Flow<T>>, T: Clone + 'static> Process<M> for Consumer<M, T> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Some(n) = self.demand.as_mut().map(Demand::start) {
            self.request(ctx, n);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, _from: ProcessId, message: M) {
        let Ok(flow) = message.unwrap() else { return };
        match flow {
            Flow::Item { sequence, produced_at, payload } => {
                if let Some(demand) = self.demand.as_mut()
                    && !demand.received()
                {
                    self.unrequested += 1;
                }
                let item = Buffered { sequence, produced_at, payload };
                let outcome = self.buffer.offer_observed(ctx, sequence, item);
                let holding = self.buffer.len() as u64 + u64::from(self.in_service.is_some());
                self.holding_high_water = self.holding_high_water.max(holding);
                match outcome {
                    Offer::Accepted => {}
                    Offer::DroppedOldest(_) | Offer::DroppedNewest(_) => self.release(ctx),
                    Offer::Rejected(_) => {
                        ctx.send(self.config.upstream, M::wrap(Flow::Rejected { sequence }));
                        self.release(ctx);
                    }
                }
                self.start_next(ctx);
            }
            Flow::Completed => {
                self.upstream_completed = true;
                self.start_next(ctx);
            }
            Flow::Request { .. } | Flow::Rejected { .. } => {}
        }
    }

    fn on_work_done(&mut self, ctx: &mut Ctx<'_, M>, _tag: u64) {
        let Some(item) = self.in_service.take() else { return };
        self.processed += 1;
        ctx.count(&self.metrics[1], 1);
        let waited = ctx.now_local().as_nanos().saturating_sub(item.produced_at.as_nanos());
        ctx.observe(&self.metrics[2], SimDuration::from_nanos(waited.max(0) as u64));
        self.release(ctx);
        self.start_next(ctx);
    }
}
