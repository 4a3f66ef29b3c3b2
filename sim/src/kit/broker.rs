//! A Kafka-like pub/sub broker: durable topics split into partitions,
//! consumer groups with committed offsets, at-least-once redelivery, and
//! retention. The broker is a [`Process`] on a node, so it crashes with its
//! node and recovers from the node's storage.
//!
//! This is the backbone of the *reactive microlith* (Reactive Microsystems,
//! ch. 5): services stop calling each other and publish events to a
//! broker instead, so a consumer that is down does not take the producer
//! down with it: the events wait in the broker until it is back. The
//! event stream an aggregate emits (ch. 4) and the feed of a CQRS read
//! model (ch. 6, see [`crate::kit::projection`]) are topics here.
//!
//! How it behaves:
//! - **Partitions.** A topic has a fixed number of partitions; a record
//!   goes to partition [`partition_for_key`] of its key (splitmix64, so the
//!   choice is stable across platforms and versions). Order is kept per
//!   partition only.
//! - **Durable publish.** `Publish` appends the record to the node's
//!   storage and answers `Published { partition, offset }` only once a sync
//!   has made it durable. Syncs are grouped: while one is in flight, later
//!   records wait for the next. A crash loses what was not yet synced, and
//!   since it was never acknowledged, the producer retries ([`Producer`]).
//!   Consumers see only durable records (below the *high watermark*), so an
//!   offset they saw can never be reused after a crash.
//! - **Consumer groups.** Members join and send heartbeats every
//!   [`SessionConfig::heartbeat_interval`]; the broker expires a member not
//!   heard from for [`SessionConfig::session_timeout`]. On every join,
//!   leave or expiry it starts a new *generation* and deals the partitions
//!   among the live members ([`assign_partitions`]: sorted members,
//!   partitions round robin), so each partition has exactly one owner.
//!   Generations are unique across broker restarts (the broker's durable
//!   epoch is their high word). Membership is volatile: after a broker
//!   restart the members' next heartbeats make them join again.
//! - **Pull with long polling.** The owner sends `Fetch { partition,
//!   from_offset, max }`; the broker answers with up to `max` durable
//!   records (capped by [`BrokerConfig::max_batch`]). A fetch that finds
//!   nothing new waits at the broker until records become durable or until
//!   the broker's next tick (at most one heartbeat interval), then is
//!   answered, possibly empty. A fetch below the low watermark is answered
//!   from the earliest retained offset. Only the current owner may fetch.
//! - **Commits.** `Commit { partition, offset }` (the next offset to read)
//!   is written to storage and acknowledged once durable; a commit from a
//!   stale generation is rejected, so a deposed owner cannot move the
//!   group's offset. A new owner starts from the committed offset, which is
//!   where at-least-once redelivery comes from: whatever a crashed consumer
//!   processed but had not committed is delivered again.
//! - **Retention.** Each partition keeps at most
//!   [`BrokerConfig::retention_records`] records and, if set, none older
//!   than [`BrokerConfig::retention_age`] (by the broker's clock when it was
//!   written). The engine's storage cannot truncate, so removed records stay
//!   in the node's log but are dropped from memory and from every restart.
//!
//! Every queue is bounded: records per partition by retention, syncs
//! waiting by [`BrokerConfig::pending_max`] (beyond it, `Rejected` with
//! [`Rejection::Overloaded`]), groups by [`BrokerConfig::groups_max`],
//! members by [`BrokerConfig::members_max`], waiting fetches by one per
//! partition per group.
//!
//! Trace events (component [`Component::Broker`]); the key of a partition
//! is [`partition_trace_key`], of a group [`group_trace_key`]:
//!
//! | kind | key | value |
//! |---|---|---|
//! | `published` | partition | offset (durable and acknowledged) |
//! | `publish_rejected` | partition or topic | request |
//! | `delivered` | partition | records in the batch |
//! | `redelivered` | partition | records of the batch this group had been handed before |
//! | `fetch_reset` | partition | low watermark a too-old fetch started at |
//! | `committed` | partition | offset (durable) |
//! | `commit_rejected` | partition | offset |
//! | `member_joined` / `member_left` / `member_expired` | group | member process id |
//! | `rebalanced` | group | generation |
//! | `retained` | partition | records removed by retention |
//! | `recovered` | partition | records found in storage after a restart |
//!
//! The [`Consumer`] and [`Producer`] helpers, embedded in a client process,
//! add `assigned` (key: group, value: partitions owned), `fetch_retried`
//! (key: partition, value: offset), `publish_retried` (key: request, value:
//! attempt) and `publish_refused` (key: record key, value: records waiting).
//!
//! ```
//! use sim::kit::Carry;
//! use sim::kit::broker::{
//!     Broker, BrokerConfig, BrokerMsg, Consumer, ConsumerConfig, ConsumerEvent, SessionConfig,
//!     TopicConfig,
//! };
//! use sim::{Ctx, Message, NodeConfig, Process, ProcessId, Seed, Sim, SimConfig, SimTime, TimerId};
//!
//! #[derive(Clone, Debug)]
//! struct Msg(BrokerMsg<String>);
//! impl Message for Msg {
//!     fn label(&self) -> &'static str { self.0.label() }
//!     fn digest(&self) -> u64 { self.0.digest() }
//! }
//! impl Carry<BrokerMsg<String>> for Msg {
//!     fn wrap(inner: BrokerMsg<String>) -> Self { Msg(inner) }
//!     fn unwrap(self) -> Result<BrokerMsg<String>, Self> { Ok(self.0) }
//! }
//!
//! /// Reads the topic as a one-member group, committing after each batch.
//! struct Reader { consumer: Consumer<String>, seen: Vec<String> }
//! impl Process<Msg> for Reader {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) { self.consumer.start(ctx); }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, _from: ProcessId, message: Msg) {
//!         if let Some(ConsumerEvent::Delivered { partition, records, .. }) =
//!             self.consumer.on_message(ctx, message.0)
//!         {
//!             let next = records.last().map(|record| record.offset + 1).unwrap();
//!             self.seen.extend(records.into_iter().map(|record| record.payload));
//!             self.consumer.commit(ctx, partition, next);
//!             self.consumer.resume(ctx, partition);
//!         }
//!     }
//!     fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, _tag: u64) {
//!         self.consumer.on_timer(ctx, timer);
//!     }
//! }
//!
//! let session = SessionConfig::default();
//! let config = BrokerConfig::new(vec![TopicConfig::new("orders", 1)]);
//! let broker = Broker::<String>::new(config).expect("valid config");
//! let mut sim: Sim<Msg> = Sim::new(SimConfig::new(Seed(1)));
//! let node = sim.add_node(NodeConfig::new("kafka"));
//! let broker_id = sim.spawn(node, "broker", move || broker.clone());
//! let consumer = Consumer::new(ConsumerConfig::new(session), broker_id, "billing", "orders")
//!     .expect("valid config");
//! let reader = sim.add_node(NodeConfig::new("billing"));
//! let reader_id =
//!     sim.spawn(reader, "reader", move || Reader { consumer: consumer.clone(), seen: vec![] });
//! for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
//!     let publish = BrokerMsg::Publish {
//!         request: i as u64, topic: "orders".into(), key: 1, payload: name.to_string(),
//!     };
//!     sim.post(SimTime::from_nanos(1_000_000), broker_id, Msg(publish));
//! }
//! sim.run_until(SimTime::from_nanos(500_000_000));
//! assert_eq!(sim.process_state::<Reader>(reader_id).unwrap().seen, ["a", "b", "c"]);
//! let state = sim.process_state::<Broker<String>>(broker_id).unwrap();
//! assert_eq!(state.committed_offset("billing", "orders", 0), Some(3));
//! ```

mod consumer;
mod group;
mod partition;
mod producer;

pub use consumer::{Consumer, ConsumerConfig, ConsumerEvent};
pub use group::assign_partitions;
pub use producer::{Producer, ProducerConfig, ProducerEvent};

use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Process};
use crate::storage::LogId;
use crate::time::SimDuration;
use crate::trace::{Component, fnv1a};
use group::{Group, Parked};
use partition::{PartitionLog, Retention};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound::{Excluded, Unbounded};
use std::sync::Arc;

/// What a broker carries: any cloneable type serde can encode and decode
/// (the broker writes payloads to the node's storage in postcard's binary
/// form, and must read them back after a crash; serde attributes that need
/// a self-describing format, such as untagged enums, are not supported).
/// Implemented for every such type.
pub trait Payload: Clone + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Serialize + DeserializeOwned + 'static> Payload for T {}

/// The partition, out of `partitions`, that records with `key` go to: the
/// splitmix64 finaliser of the key, modulo the count. Stable across runs,
/// platforms and versions (never `std`'s hasher).
///
/// ```
/// use sim::kit::broker::partition_for_key;
/// assert_eq!(partition_for_key(42, 8), partition_for_key(42, 8));
/// assert!(partition_for_key(7, 3) < 3);
/// ```
pub fn partition_for_key(key: u64, partitions: u32) -> u32 {
    assert!(partitions > 0, "a topic has at least one partition");
    (splitmix64(key) % u64::from(partitions)) as u32
}

/// The trace key of a partition: the high word of the FNV-1a hash of the
/// topic's name, and the partition in the low word.
pub fn partition_trace_key(topic: &str, partition: u32) -> u64 {
    (fnv1a(topic) & 0xffff_ffff_0000_0000) | u64::from(partition)
}

/// The trace key of a consumer group reading a topic.
pub fn group_trace_key(group: &str, topic: &str) -> u64 {
    fnv1a(group).rotate_left(32) ^ fnv1a(topic)
}

/// One record of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<P> {
    /// Its position in the partition, from 0.
    pub offset: u64,
    /// The key that chose the partition.
    pub key: u64,
    /// The broker's clock when the record was appended (so consumers on
    /// other nodes, with other clocks, can measure how far behind they are).
    pub write_time: LocalTime,
    /// What the producer published.
    pub payload: P,
}

/// Why the broker turned a request down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// No topic of that name.
    UnknownTopic,
    /// The topic has no partition of that number.
    UnknownPartition,
    /// The requester does not own the partition in the current generation.
    NotOwner,
    /// The requester's generation is over.
    StaleGeneration,
    /// Too many writes wait for a sync (or too many publishes wait for an
    /// acknowledgement, at a producer); try again later.
    Overloaded,
    /// The group has [`BrokerConfig::members_max`] members already.
    GroupFull,
    /// The broker has [`BrokerConfig::groups_max`] groups already.
    TooManyGroups,
}

/// A partition given to a member, with where its group left off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The partition.
    pub partition: u32,
    /// The group's committed offset: the next record to read.
    pub committed_offset: u64,
}

/// The broker's protocol. Commands are imperative, answers past tense.
#[derive(Clone, Debug, PartialEq)]
pub enum BrokerMsg<P> {
    /// Append a record to `topic`, in the partition of `key`.
    Publish {
        /// Chosen by the producer, echoed in the answer.
        request: u64,
        /// The topic.
        topic: Arc<str>,
        /// Chooses the partition; records with one key stay in order.
        key: u64,
        /// The record's content.
        payload: P,
    },
    /// The record of `request` is durable at `offset` of `partition`.
    Published {
        /// The producer's request.
        request: u64,
        /// The topic.
        topic: Arc<str>,
        /// The partition it went to.
        partition: u32,
        /// Its offset there.
        offset: u64,
    },
    /// The record of `request` was not appended.
    PublishRejected {
        /// The producer's request.
        request: u64,
        /// The topic.
        topic: Arc<str>,
        /// Why.
        reason: Rejection,
    },
    /// Join `group` as a consumer of `topic` (the sender is the member).
    JoinGroup {
        /// The group.
        group: Arc<str>,
        /// The topic it reads.
        topic: Arc<str>,
    },
    /// A member is alive; it believes `generation` is current.
    Heartbeat {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The generation of the member's last assignment (0 if none).
        generation: u64,
    },
    /// Leave `group` at once (rather than by expiry).
    LeaveGroup {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
    },
    /// A new generation started: these are the member's partitions now.
    Assigned {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The new generation.
        generation: u64,
        /// The member's partitions, each with its committed offset.
        partitions: Vec<Assignment>,
    },
    /// The sender could not join.
    JoinRejected {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// Why.
        reason: Rejection,
    },
    /// Send up to `max` records of `partition` from `from_offset` on.
    Fetch {
        /// Chosen by the consumer, echoed in the answer.
        request: u64,
        /// The group on whose behalf the sender reads.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The partition, which the sender must own.
        partition: u32,
        /// The first offset wanted.
        from_offset: u64,
        /// The most records wanted.
        max: u32,
    },
    /// Records of a partition, in offset order and contiguous.
    Fetched {
        /// The consumer's request.
        request: u64,
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: u32,
        /// The records (none if nothing new became durable in time).
        records: Vec<Record<P>>,
        /// Where the next fetch should start.
        next_offset: u64,
        /// The first offset not yet durable when the answer was sent.
        high_watermark: u64,
    },
    /// A fetch was turned down.
    FetchRejected {
        /// The consumer's request.
        request: u64,
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: u32,
        /// The group's generation when the broker turned it down (0 if the
        /// group does not exist), so a consumer can tell a rejection that
        /// predates its own assignment.
        generation: u64,
        /// Why.
        reason: Rejection,
    },
    /// Record that the group has consumed `partition` up to `offset`
    /// (exclusive: `offset` is the next record to read).
    Commit {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The partition, which the sender must own.
        partition: u32,
        /// The generation the sender's ownership comes from.
        generation: u64,
        /// The next offset to read.
        offset: u64,
    },
    /// The commit is durable.
    Committed {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: u32,
        /// The committed offset.
        offset: u64,
    },
    /// The commit was turned down.
    CommitRejected {
        /// The group.
        group: Arc<str>,
        /// The topic.
        topic: Arc<str>,
        /// The partition.
        partition: u32,
        /// The offset that was not committed.
        offset: u64,
        /// Why.
        reason: Rejection,
    },
}

impl<P> BrokerMsg<P> {
    /// A short name, for a world's [`crate::Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            BrokerMsg::Publish { .. } => "Publish",
            BrokerMsg::Published { .. } => "Published",
            BrokerMsg::PublishRejected { .. } => "PublishRejected",
            BrokerMsg::JoinGroup { .. } => "JoinGroup",
            BrokerMsg::Heartbeat { .. } => "Heartbeat",
            BrokerMsg::LeaveGroup { .. } => "LeaveGroup",
            BrokerMsg::Assigned { .. } => "Assigned",
            BrokerMsg::JoinRejected { .. } => "JoinRejected",
            BrokerMsg::Fetch { .. } => "Fetch",
            BrokerMsg::Fetched { .. } => "Fetched",
            BrokerMsg::FetchRejected { .. } => "FetchRejected",
            BrokerMsg::Commit { .. } => "Commit",
            BrokerMsg::Committed { .. } => "Committed",
            BrokerMsg::CommitRejected { .. } => "CommitRejected",
        }
    }

    /// A stable digest of the message's numbers (not of payloads), for a
    /// world's [`crate::Message::digest`].
    pub fn digest(&self) -> u64 {
        let words: [u64; 3] = match self {
            BrokerMsg::Publish { request, key, .. } => [1, *request, *key],
            BrokerMsg::Published { request, partition, offset, .. } => {
                [2, *request, (u64::from(*partition) << 40) ^ offset]
            }
            BrokerMsg::PublishRejected { request, reason, .. } => [3, *request, *reason as u64],
            BrokerMsg::JoinGroup { .. } => [4, 0, 0],
            BrokerMsg::Heartbeat { generation, .. } => [5, *generation, 0],
            BrokerMsg::LeaveGroup { .. } => [6, 0, 0],
            BrokerMsg::Assigned { generation, partitions, .. } => {
                [7, *generation, partitions.len() as u64]
            }
            BrokerMsg::JoinRejected { reason, .. } => [8, *reason as u64, 0],
            BrokerMsg::Fetch { request, partition, from_offset, .. } => {
                [9, *request, (u64::from(*partition) << 40) ^ from_offset]
            }
            BrokerMsg::Fetched { request, records, next_offset, .. } => {
                [10, *request, (records.len() as u64) << 40 ^ next_offset]
            }
            BrokerMsg::FetchRejected { request, reason, .. } => [11, *request, *reason as u64],
            BrokerMsg::Commit { partition, offset, .. } => [12, u64::from(*partition), *offset],
            BrokerMsg::Committed { partition, offset, .. } => [13, u64::from(*partition), *offset],
            BrokerMsg::CommitRejected { partition, offset, .. } => {
                [14, u64::from(*partition), *offset]
            }
        };
        words.iter().fold(0xcbf2_9ce4_8422_2325, |hash, word| splitmix64(hash ^ word))
    }
}

/// A topic and how many partitions it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// Its name.
    pub name: String,
    /// Its partitions; at least 1.
    pub partitions: u32,
}

impl TopicConfig {
    /// A topic named `name` with `partitions` partitions.
    pub fn new(name: impl Into<String>, partitions: u32) -> TopicConfig {
        TopicConfig { name: name.into(), partitions }
    }
}

/// How group members show they are alive; shared by the broker and its
/// consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// How often a member sends a heartbeat (and how often the broker
    /// checks for silent members and answers waiting fetches).
    pub heartbeat_interval: SimDuration,
    /// How long a member may stay silent before the broker removes it and
    /// rebalances; must exceed the heartbeat interval.
    pub session_timeout: SimDuration,
}

impl Default for SessionConfig {
    /// Heartbeats every 100 ms, a session of 1 s (10 missed heartbeats).
    fn default() -> SessionConfig {
        SessionConfig {
            heartbeat_interval: SimDuration::from_millis(100),
            session_timeout: SimDuration::from_secs(1),
        }
    }
}

impl SessionConfig {
    /// Checks the heartbeat interval is positive and the session timeout
    /// longer; errors name the field under `prefix`.
    pub(crate) fn validate_as(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.heartbeat_interval == SimDuration::ZERO {
            return Err(ConfigError::new(
                format!("{prefix}.heartbeat_interval"),
                self.heartbeat_interval,
                "a positive duration",
            ));
        }
        if self.session_timeout <= self.heartbeat_interval {
            return Err(ConfigError::new(
                format!("{prefix}.session_timeout"),
                self.session_timeout,
                format!("longer than the heartbeat interval ({})", self.heartbeat_interval),
            ));
        }
        Ok(())
    }
}

/// How a broker is set up. Build one with [`BrokerConfig::new`] and adjust
/// fields; [`Broker::new`] validates it.
#[derive(Clone, Debug, PartialEq)]
pub struct BrokerConfig {
    /// Prefix of the broker's logs in node storage (two brokers on one node
    /// need different names).
    pub name: String,
    /// The topics.
    pub topics: Vec<TopicConfig>,
    /// Records kept per partition at most; at least 1.
    pub retention_records: u64,
    /// If set, records older than this are removed; positive.
    pub retention_age: Option<SimDuration>,
    /// Records per fetch answer at most; at least 1.
    pub max_batch: u32,
    /// Publishes and commits waiting for a sync at most; at least 1.
    pub pending_max: u32,
    /// Consumer groups at most; at least 1.
    pub groups_max: u32,
    /// Members per group at most; at least 1.
    pub members_max: u32,
    /// Heartbeats and session expiry.
    pub session: SessionConfig,
}

impl BrokerConfig {
    /// A broker named `broker` with these topics, keeping up to a million
    /// records per partition for ever, 500 records per fetch, 10,000 writes
    /// waiting for a sync, 64 groups of up to 64 members, and the default
    /// [`SessionConfig`].
    pub fn new(topics: Vec<TopicConfig>) -> BrokerConfig {
        BrokerConfig {
            name: "broker".to_string(),
            topics,
            retention_records: 1_000_000,
            retention_age: None,
            max_batch: 500,
            pending_max: 10_000,
            groups_max: 64,
            members_max: 64,
            session: SessionConfig::default(),
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::new("broker.name", "\"\"", "a non-empty name"));
        }
        if self.topics.is_empty() {
            return Err(ConfigError::new("broker.topics", "[]", "at least one topic"));
        }
        for (index, topic) in self.topics.iter().enumerate() {
            if topic.name.is_empty() {
                return Err(ConfigError::new(
                    format!("broker.topics[{index}].name"),
                    "\"\"",
                    "a non-empty name",
                ));
            }
            if self.topics[..index].iter().any(|other| other.name == topic.name) {
                return Err(ConfigError::new(
                    format!("broker.topics[{index}].name"),
                    &topic.name,
                    "a name no other topic has",
                ));
            }
            if topic.partitions == 0 {
                return Err(ConfigError::new(
                    format!("broker.topics[{index}].partitions"),
                    0,
                    "at least 1",
                ));
            }
        }
        let counts = [
            ("broker.retention_records", self.retention_records),
            ("broker.max_batch", u64::from(self.max_batch)),
            ("broker.pending_max", u64::from(self.pending_max)),
            ("broker.groups_max", u64::from(self.groups_max)),
            ("broker.members_max", u64::from(self.members_max)),
        ];
        for (field, value) in counts {
            if value == 0 {
                return Err(ConfigError::new(field, 0, "at least 1"));
            }
        }
        if self.retention_age == Some(SimDuration::ZERO) {
            return Err(ConfigError::new(
                "broker.retention_age",
                SimDuration::ZERO,
                "a positive duration, or none to keep records by count only",
            ));
        }
        self.session.validate_as("broker.session")
    }

    fn retention(&self) -> Retention {
        Retention { records_max: self.retention_records, age: self.retention_age }
    }
}

/// The broker process. Build it with [`Broker::new`] (which validates the
/// configuration) and spawn clones of it: `sim.spawn(node, "broker", move
/// || broker.clone())`, so every restart starts from the pristine value and
/// recovers from storage.
#[derive(Clone, Debug)]
pub struct Broker<P> {
    config: BrokerConfig,
    /// The topics' names, shared with every message that carries one (a
    /// reference count rather than a copy of the name per message).
    topic_names: Vec<Arc<str>>,
    /// Storage log of each partition, by topic then partition.
    log_names: Vec<Vec<String>>,
    /// Where each partition's log is in storage, once written to (spares
    /// the search by name on every publish).
    log_ids: Vec<Vec<Option<LogId>>>,
    offsets_log: String,
    /// Where the offsets log is in storage, once written to.
    offsets_log_id: Option<LogId>,
    epochs_log: String,
    /// How many times this broker has started on its node, durably.
    epoch: u64,
    /// Whether the recovery sync has completed; until then requests wait
    /// in `early`.
    recovered: bool,
    /// Requests that arrived during recovery, handled once it completes
    /// (at most `pending_max`; beyond it they are dropped and clients retry).
    early: Vec<(ProcessId, BrokerMsg<P>)>,
    partitions: Vec<Vec<PartitionLog<P>>>,
    /// Groups by name and topic index.
    groups: BTreeMap<(Arc<str>, usize), Group>,
    pending: VecDeque<Pending>,
    /// Sequence number of the next write, for matching syncs to writes.
    next_sequence: u64,
    sync_in_flight: bool,
    tick: Option<TimerId>,
}

impl<P: Payload> Broker<P> {
    /// A broker with `config`, or the first thing wrong with it.
    pub fn new(config: BrokerConfig) -> Result<Broker<P>, ConfigError> {
        config.validate()?;
        let log_names = config
            .topics
            .iter()
            .map(|topic| {
                (0..topic.partitions)
                    .map(|p| format!("{}/{}/{p}", config.name, topic.name))
                    .collect()
            })
            .collect();
        let partitions = config
            .topics
            .iter()
            .map(|topic| (0..topic.partitions).map(|_| PartitionLog::new()).collect())
            .collect();
        let log_ids =
            config.topics.iter().map(|topic| vec![None; topic.partitions as usize]).collect();
        Ok(Broker {
            topic_names: config.topics.iter().map(|topic| Arc::from(topic.name.as_str())).collect(),
            offsets_log: format!("{}/offsets", config.name),
            offsets_log_id: None,
            epochs_log: format!("{}/epochs", config.name),
            config,
            log_names,
            log_ids,
            epoch: 0,
            recovered: false,
            early: Vec::new(),
            partitions,
            groups: BTreeMap::new(),
            pending: VecDeque::new(),
            next_sequence: 0,
            sync_in_flight: false,
            tick: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Whether the broker has finished recovering and serves requests.
    pub fn is_recovered(&self) -> bool {
        self.recovered
    }

    /// The durable records of a partition still retained, in offset order
    /// (empty for an unknown partition).
    pub fn records(&self, topic: &str, partition: u32) -> Vec<Record<P>> {
        self.partition(topic, partition)
            .map(|log| log.durable_records().cloned().collect())
            .unwrap_or_default()
    }

    /// A partition's high watermark: the first offset not yet durable.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.partition(topic, partition).map(PartitionLog::high_watermark)
    }

    /// A partition's low watermark: the first offset still retained.
    pub fn low_watermark(&self, topic: &str, partition: u32) -> Option<u64> {
        self.partition(topic, partition).map(PartitionLog::low_watermark)
    }

    /// The offset `group` committed for a partition, if the group exists.
    pub fn committed_offset(&self, group: &str, topic: &str, partition: u32) -> Option<u64> {
        self.group(group, topic)?.committed.get(partition as usize).copied()
    }

    /// The member owning a partition in `group`'s current generation.
    pub fn owner(&self, group: &str, topic: &str, partition: u32) -> Option<ProcessId> {
        self.group(group, topic)?.owners.get(partition as usize).copied().flatten()
    }

    /// The current generation of `group`, if it exists.
    pub fn generation(&self, group: &str, topic: &str) -> Option<u64> {
        self.group(group, topic).map(|group| group.generation)
    }

    /// The live members of `group`, in order.
    pub fn members(&self, group: &str, topic: &str) -> Vec<ProcessId> {
        self.group(group, topic)
            .map(|group| group.members.keys().copied().collect())
            .unwrap_or_default()
    }

    fn topic_index(&self, topic: &str) -> Option<usize> {
        self.config.topics.iter().position(|candidate| candidate.name == topic)
    }

    fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionLog<P>> {
        self.partitions.get(self.topic_index(topic)?)?.get(partition as usize)
    }

    fn group(&self, group: &str, topic: &str) -> Option<&Group> {
        self.groups.get(&(Arc::from(group), self.topic_index(topic)?))
    }

    /// Rebuilds the partitions and committed offsets from storage, bumps
    /// the durable epoch, and syncs before serving anything.
    fn recover<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        self.epoch = ctx.read_log(&self.epochs_log).len() as u64 + 1;
        ctx.append(&self.epochs_log, self.epoch.to_le_bytes());
        let now = ctx.now_local();
        let retention = self.config.retention();
        for (topic, names) in self.log_names.iter().enumerate() {
            for (partition, name) in names.iter().enumerate() {
                self.partitions[topic][partition] =
                    PartitionLog::recover(ctx.read_log(name), now, retention);
            }
        }
        let commits: Vec<_> =
            ctx.read_log(&self.offsets_log).iter().map(partition::decode_commit).collect();
        for (group, topic, partition, offset) in commits {
            let Some(topic) = self.topic_index(&topic) else { continue };
            if let Some(state) = self.group_entry(group.into(), topic)
                && let Some(committed) = state.committed.get_mut(partition as usize)
            {
                *committed = offset;
            }
        }
        ctx.sync(RECOVERY_SYNC_TAG);
        self.tick = Some(ctx.set_timer(self.config.session.heartbeat_interval, 0));
    }

    /// The group, created if there is room.
    fn group_entry(&mut self, group: Arc<str>, topic: usize) -> Option<&mut Group> {
        let key = (group, topic);
        if !self.groups.contains_key(&key) && self.groups.len() >= self.config.groups_max as usize {
            return None;
        }
        let partitions = self.config.topics[topic].partitions;
        Some(self.groups.entry(key).or_insert_with(|| Group::new(partitions)))
    }

    fn finish_recovery<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        self.recovered = true;
        for (topic, logs) in self.partitions.iter_mut().enumerate() {
            for (partition, log) in logs.iter_mut().enumerate() {
                log.make_durable(log.next_offset());
                if log.next_offset() > 0 {
                    let key =
                        partition_trace_key(&self.config.topics[topic].name, partition as u32);
                    ctx.trace(Component::Broker, "recovered", key, log.next_offset() as i64);
                }
            }
        }
        ctx.count("broker.recovered", 1);
    }

    fn ensure_sync<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        if !self.sync_in_flight && !self.pending.is_empty() {
            self.sync_in_flight = true;
            // Every write so far has a sequence below `next_sequence`, so the
            // tag says which pending writes this sync covers.
            ctx.sync(self.next_sequence);
        }
    }

    fn publish<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        request: u64,
        topic_name: Arc<str>,
        key: u64,
        payload: P,
    ) {
        let Some(topic) = self.topic_index(&topic_name) else {
            ctx.trace(Component::Broker, "publish_rejected", fnv1a(&topic_name), request as i64);
            ctx.count("broker.publish_rejected", 1);
            let reason = Rejection::UnknownTopic;
            send(ctx, from, BrokerMsg::PublishRejected { request, topic: topic_name, reason });
            return;
        };
        let partition = partition_for_key(key, self.config.topics[topic].partitions);
        if self.pending.len() >= self.config.pending_max as usize {
            let trace_key = partition_trace_key(&topic_name, partition);
            ctx.trace(Component::Broker, "publish_rejected", trace_key, request as i64);
            ctx.count("broker.publish_rejected", 1);
            let reason = Rejection::Overloaded;
            send(ctx, from, BrokerMsg::PublishRejected { request, topic: topic_name, reason });
            return;
        }
        let write_time = ctx.now_local();
        let log = &self.log_names[topic][partition as usize];
        let log_id = &mut self.log_ids[topic][partition as usize];
        let written = ctx.append_records(log, *log_id, 1, |_, bytes| {
            partition::write_record(key, write_time, &payload, bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(written) = written;
        *log_id = Some(written);
        let offset = self.partitions[topic][partition as usize].append(key, write_time, payload);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.pending.push_back(Pending::Publish {
            sequence,
            from,
            request,
            topic,
            partition,
            offset,
        });
        self.ensure_sync(ctx);
    }

    fn join<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        group_name: Arc<str>,
        topic_name: Arc<str>,
    ) {
        let Some(topic) = self.topic_index(&topic_name) else {
            let reason = Rejection::UnknownTopic;
            send(
                ctx,
                from,
                BrokerMsg::JoinRejected { group: group_name, topic: topic_name, reason },
            );
            return;
        };
        let now = ctx.now_local();
        let members_max = self.config.members_max as usize;
        let Some(group) = self.group_entry(group_name.clone(), topic) else {
            let reason = Rejection::TooManyGroups;
            send(
                ctx,
                from,
                BrokerMsg::JoinRejected { group: group_name, topic: topic_name, reason },
            );
            return;
        };
        if !group.members.contains_key(&from) && group.members.len() >= members_max {
            let reason = Rejection::GroupFull;
            send(
                ctx,
                from,
                BrokerMsg::JoinRejected { group: group_name, topic: topic_name, reason },
            );
            return;
        }
        group.touch(from, now);
        // A join from a known member means it restarted and lost its
        // assignment: a new generation tells it (and everyone) again.
        let key = group_trace_key(&group_name, &topic_name);
        ctx.trace(Component::Broker, "member_joined", key, i64::from(from.0));
        self.rebalance(ctx, (group_name, topic));
    }

    fn heartbeat<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        group_name: Arc<str>,
        topic_name: Arc<str>,
        generation: u64,
    ) {
        let now = ctx.now_local();
        let known = self.topic_index(&topic_name).and_then(|topic| {
            let group = self.groups.get_mut(&(group_name.clone(), topic))?;
            group.members.contains_key(&from).then(|| {
                group.touch(from, now);
                (topic, group.generation)
            })
        });
        match known {
            // Unknown (expired, or the broker restarted): join again.
            None => self.join(ctx, from, group_name, topic_name),
            Some((topic, current)) if current != generation => {
                // Its assignment was lost or is late: send it again.
                let key = (group_name, topic);
                self.send_assignment(ctx, &key, from);
            }
            Some(_) => {}
        }
    }

    fn leave<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        group_name: Arc<str>,
        topic_name: Arc<str>,
    ) {
        let Some(topic) = self.topic_index(&topic_name) else { return };
        let key = (group_name, topic);
        let Some(group) = self.groups.get_mut(&key) else { return };
        if group.remove(from) {
            let trace_key = group_trace_key(&key.0, &topic_name);
            ctx.trace(Component::Broker, "member_left", trace_key, i64::from(from.0));
            self.rebalance(ctx, key);
        }
    }

    fn send_assignment<M: Carry<BrokerMsg<P>>>(
        &self,
        ctx: &mut Ctx<'_, M>,
        key: &(Arc<str>, usize),
        member: ProcessId,
    ) {
        let group = &self.groups[key];
        let partitions = group
            .partitions_of(member)
            .into_iter()
            .map(|partition| Assignment {
                partition,
                committed_offset: group.committed[partition as usize],
            })
            .collect();
        let assigned = BrokerMsg::Assigned {
            group: key.0.clone(),
            topic: self.topic_names[key.1].clone(),
            generation: group.generation,
            partitions,
        };
        send(ctx, member, assigned);
    }

    fn rebalance<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>, key: (Arc<str>, usize)) {
        let topic_name = self.topic_names[key.1].clone();
        let group = self.groups.get_mut(&key).expect("rebalancing a group that exists");
        let evicted = group.rebalance(self.epoch);
        let generation = group.generation;
        let members: Vec<ProcessId> = group.members.keys().copied().collect();
        for (partition, parked) in evicted {
            let rejected = BrokerMsg::FetchRejected {
                request: parked.request,
                group: key.0.clone(),
                topic: topic_name.clone(),
                partition,
                generation,
                reason: Rejection::NotOwner,
            };
            send(ctx, parked.member, rejected);
        }
        let trace_key = group_trace_key(&key.0, &topic_name);
        ctx.trace(Component::Broker, "rebalanced", trace_key, generation as i64);
        ctx.count("broker.rebalanced", 1);
        for member in members {
            self.send_assignment(ctx, &key, member);
        }
    }

    #[allow(clippy::too_many_arguments)] // the fields of one `Fetch`
    fn fetch<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        request: u64,
        group_name: Arc<str>,
        topic_name: Arc<str>,
        partition: u32,
        from_offset: u64,
        max: u32,
    ) {
        let topic = self.topic_index(&topic_name);
        let group = topic.and_then(|topic| self.groups.get(&(group_name.clone(), topic)));
        let generation = group.map_or(0, |group| group.generation);
        let reason = match topic {
            None => Some(Rejection::UnknownTopic),
            Some(topic) if partition >= self.config.topics[topic].partitions => {
                Some(Rejection::UnknownPartition)
            }
            Some(_) if group.is_some_and(|group| group.owns(from, partition)) => None,
            Some(_) => Some(Rejection::NotOwner),
        };
        if let Some(reason) = reason {
            ctx.count("broker.fetch_rejected", 1);
            let rejected = BrokerMsg::FetchRejected {
                request,
                group: group_name,
                topic: topic_name,
                partition,
                generation,
                reason,
            };
            send(ctx, from, rejected);
            return;
        }
        let key = (group_name, topic.expect("checked above"));
        let parked = Parked { member: from, request, from_offset, max };
        self.answer_or_park(ctx, &key, partition, parked, false);
    }

    /// Answers a fetch if records are there (or `answer_empty`), otherwise
    /// parks it until records become durable.
    fn answer_or_park<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: &(Arc<str>, usize),
        partition: u32,
        fetch: Parked,
        answer_empty: bool,
    ) {
        let topic_name = &self.topic_names[key.1];
        let trace_key = partition_trace_key(topic_name, partition);
        let log = &self.partitions[key.1][partition as usize];
        let max = fetch.max.clamp(1, self.config.max_batch) as usize;
        let slice = log.fetch(fetch.from_offset, max);
        let group = self.groups.get_mut(key).expect("fetching for a group that exists");
        if slice.records.is_empty() && !answer_empty {
            group.parked[partition as usize] = Some(fetch);
            return;
        }
        if fetch.from_offset < slice.start && fetch.from_offset < log.low_watermark() {
            ctx.trace(Component::Broker, "fetch_reset", trace_key, slice.start as i64);
            ctx.count("broker.fetch_reset", 1);
        }
        if !slice.records.is_empty() {
            let delivered_upto = &mut group.delivered_upto[partition as usize];
            let again = delivered_upto.saturating_sub(slice.start).min(slice.records.len() as u64);
            *delivered_upto = (*delivered_upto).max(slice.next_offset);
            ctx.trace(Component::Broker, "delivered", trace_key, slice.records.len() as i64);
            ctx.count("broker.delivered", slice.records.len() as u64);
            if again > 0 {
                ctx.trace(Component::Broker, "redelivered", trace_key, again as i64);
                ctx.count("broker.redelivered", again);
            }
        }
        let fetched = BrokerMsg::Fetched {
            request: fetch.request,
            group: key.0.clone(),
            topic: topic_name.clone(),
            partition,
            records: slice.records,
            next_offset: slice.next_offset,
            high_watermark: log.high_watermark(),
        };
        send(ctx, fetch.member, fetched);
    }

    /// Answers every parked fetch on a partition (after records became
    /// durable there) or on every partition (at a tick, possibly empty).
    fn answer_parked<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        only: Option<(usize, u32)>,
        answer_empty: bool,
    ) {
        // Walks the groups in key order one key at a time rather than
        // collecting the keys first (this runs after every sync); answering
        // never adds or removes a group, so the walk sees the same keys.
        let mut next = self.groups.keys().next().cloned();
        while let Some(key) = next {
            if only.is_none_or(|(wanted, _)| wanted == key.1) {
                let partitions = match only {
                    Some((_, wanted)) => wanted..wanted + 1,
                    None => 0..self.config.topics[key.1].partitions,
                };
                for partition in partitions {
                    let group = self.groups.get_mut(&key).expect("walked to above");
                    if let Some(fetch) = group.parked[partition as usize].take() {
                        self.answer_or_park(ctx, &key, partition, fetch, answer_empty);
                    }
                }
            }
            next =
                self.groups.range((Excluded(&key), Unbounded)).next().map(|(key, _)| key.clone());
        }
    }

    #[allow(clippy::too_many_arguments)] // the fields of one `Commit`
    fn commit<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        group_name: Arc<str>,
        topic_name: Arc<str>,
        partition: u32,
        generation: u64,
        offset: u64,
    ) {
        let topic = self.topic_index(&topic_name);
        let reason = match topic {
            None => Some(Rejection::UnknownTopic),
            Some(topic) if partition >= self.config.topics[topic].partitions => {
                Some(Rejection::UnknownPartition)
            }
            Some(topic) => match self.groups.get(&(group_name.clone(), topic)) {
                Some(group) if !group.owns(from, partition) => Some(Rejection::NotOwner),
                Some(group) if group.generation != generation => Some(Rejection::StaleGeneration),
                Some(_) if self.pending.len() >= self.config.pending_max as usize => {
                    Some(Rejection::Overloaded)
                }
                Some(_) => None,
                None => Some(Rejection::NotOwner),
            },
        };
        if let Some(reason) = reason {
            let trace_key = partition_trace_key(&topic_name, partition);
            ctx.trace(Component::Broker, "commit_rejected", trace_key, offset as i64);
            ctx.count("broker.commit_rejected", 1);
            let rejected = BrokerMsg::CommitRejected {
                group: group_name,
                topic: topic_name,
                partition,
                offset,
                reason,
            };
            send(ctx, from, rejected);
            return;
        }
        let topic = topic.expect("checked above");
        let written = ctx.append_records(&self.offsets_log, self.offsets_log_id, 1, |_, bytes| {
            partition::write_commit(&group_name, &topic_name, partition, offset, bytes);
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(written) = written;
        self.offsets_log_id = Some(written);
        // The new offset is used at once (a crash loses it together with
        // this memory); it is acknowledged only once durable.
        let group = self.groups.get_mut(&(group_name.clone(), topic)).expect("checked above");
        group.committed[partition as usize] = offset;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.pending.push_back(Pending::Commit {
            sequence,
            from,
            group: group_name,
            topic,
            partition,
            offset,
        });
        self.ensure_sync(ctx);
    }

    /// Acknowledges every write the completed sync covers.
    fn synced<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>, covered: u64) {
        self.sync_in_flight = false;
        let mut advanced: Vec<(usize, u32)> = Vec::new();
        while self.pending.front().is_some_and(|write| write.sequence() < covered) {
            match self.pending.pop_front().expect("checked above") {
                Pending::Publish { from, request, topic, partition, offset, .. } => {
                    let topic_name = self.topic_names[topic].clone();
                    let log = &mut self.partitions[topic][partition as usize];
                    if log.make_durable(offset + 1) && !advanced.contains(&(topic, partition)) {
                        advanced.push((topic, partition));
                    }
                    let trace_key = partition_trace_key(&topic_name, partition);
                    ctx.trace(Component::Broker, "published", trace_key, offset as i64);
                    ctx.count("broker.published", 1);
                    let published =
                        BrokerMsg::Published { request, topic: topic_name, partition, offset };
                    send(ctx, from, published);
                }
                Pending::Commit { from, group, topic, partition, offset, .. } => {
                    let topic_name = self.topic_names[topic].clone();
                    let trace_key = partition_trace_key(&topic_name, partition);
                    ctx.trace(Component::Broker, "committed", trace_key, offset as i64);
                    ctx.count("broker.committed", 1);
                    let committed =
                        BrokerMsg::Committed { group, topic: topic_name, partition, offset };
                    send(ctx, from, committed);
                }
            }
        }
        let now = ctx.now_local();
        for (topic, partition) in advanced {
            self.retain(ctx, topic, partition, now);
            self.answer_parked(ctx, Some((topic, partition)), false);
        }
        self.ensure_sync(ctx);
    }

    fn retain<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        topic: usize,
        partition: u32,
        now: LocalTime,
    ) {
        let removed =
            self.partitions[topic][partition as usize].retain(now, self.config.retention());
        if removed > 0 {
            let trace_key = partition_trace_key(&self.config.topics[topic].name, partition);
            ctx.trace(Component::Broker, "retained", trace_key, removed as i64);
            ctx.count("broker.retained", removed);
        }
    }

    /// Every heartbeat interval: expire silent members, answer waiting
    /// fetches, apply age retention, and sample each group's lag.
    fn on_tick<M: Carry<BrokerMsg<P>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        self.tick = Some(ctx.set_timer(self.config.session.heartbeat_interval, 0));
        if !self.recovered {
            return;
        }
        let now = ctx.now_local();
        let timeout = self.config.session.session_timeout;
        let keys: Vec<(Arc<str>, usize)> = self.groups.keys().cloned().collect();
        for key in &keys {
            let group = self.groups.get_mut(key).expect("listed above");
            let expired = group.expired(now, timeout);
            for member in &expired {
                group.remove(*member);
            }
            if !expired.is_empty() {
                let trace_key = group_trace_key(&key.0, &self.config.topics[key.1].name);
                for member in expired {
                    ctx.trace(Component::Broker, "member_expired", trace_key, i64::from(member.0));
                    ctx.count("broker.member_expired", 1);
                }
                self.rebalance(ctx, key.clone());
            }
        }
        if self.config.retention_age.is_some() {
            for topic in 0..self.partitions.len() {
                for partition in 0..self.partitions[topic].len() as u32 {
                    self.retain(ctx, topic, partition, now);
                }
            }
        }
        self.answer_parked(ctx, None, true);
        for (key, group) in &self.groups {
            let logs = &self.partitions[key.1];
            let lag: u64 = logs
                .iter()
                .zip(&group.committed)
                .map(|(log, committed)| log.high_watermark().saturating_sub(*committed))
                .sum();
            let name = format!("broker.lag.{}.{}", key.0, self.config.topics[key.1].name);
            ctx.sample(&name, lag as f64);
        }
    }
}

impl<P: Payload, M: Carry<BrokerMsg<P>>> Process<M> for Broker<P> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        self.recover(ctx);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = <M as Carry<BrokerMsg<P>>>::unwrap(message) else {
            ctx.count("broker.foreign_messages", 1);
            return;
        };
        if !self.recovered {
            if self.early.len() < self.config.pending_max as usize {
                self.early.push((from, message));
            } else {
                // Clients time out and retry; nothing is lost by dropping.
                ctx.count("broker.dropped_while_recovering", 1);
            }
            return;
        }
        self.handle(ctx, from, message);
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, _tag: u64) {
        if self.tick == Some(timer) {
            self.on_tick(ctx);
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        if tag == RECOVERY_SYNC_TAG {
            self.finish_recovery(ctx);
            for (from, message) in std::mem::take(&mut self.early) {
                self.handle(ctx, from, message);
            }
        } else {
            self.synced(ctx, tag);
        }
    }
}

impl<P: Payload> Broker<P> {
    fn handle<M: Carry<BrokerMsg<P>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        message: BrokerMsg<P>,
    ) {
        match message {
            BrokerMsg::Publish { request, topic, key, payload } => {
                self.publish(ctx, from, request, topic, key, payload);
            }
            BrokerMsg::JoinGroup { group, topic } => self.join(ctx, from, group, topic),
            BrokerMsg::Heartbeat { group, topic, generation } => {
                self.heartbeat(ctx, from, group, topic, generation);
            }
            BrokerMsg::LeaveGroup { group, topic } => self.leave(ctx, from, group, topic),
            BrokerMsg::Fetch { request, group, topic, partition, from_offset, max } => {
                self.fetch(ctx, from, request, group, topic, partition, from_offset, max);
            }
            BrokerMsg::Commit { group, topic, partition, generation, offset } => {
                self.commit(ctx, from, group, topic, partition, generation, offset);
            }
            // Answers are for clients; a broker ignores them.
            BrokerMsg::Published { .. }
            | BrokerMsg::PublishRejected { .. }
            | BrokerMsg::Assigned { .. }
            | BrokerMsg::JoinRejected { .. }
            | BrokerMsg::Fetched { .. }
            | BrokerMsg::FetchRejected { .. }
            | BrokerMsg::Committed { .. }
            | BrokerMsg::CommitRejected { .. } => ctx.count("broker.foreign_messages", 1),
        }
    }
}

fn send<P: Payload, M: Carry<BrokerMsg<P>>>(
    ctx: &mut Ctx<'_, M>,
    to: ProcessId,
    message: BrokerMsg<P>,
) {
    ctx.send(to, M::wrap(message));
}

/// The tag of the sync a broker issues when it starts, to make sure what it
/// recovered is durable before serving it.
const RECOVERY_SYNC_TAG: u64 = u64::MAX;

/// A write waiting for a sync before it is acknowledged.
#[derive(Clone, Debug)]
enum Pending {
    Publish {
        sequence: u64,
        from: ProcessId,
        request: u64,
        topic: usize,
        partition: u32,
        offset: u64,
    },
    Commit {
        sequence: u64,
        from: ProcessId,
        group: Arc<str>,
        topic: usize,
        partition: u32,
        offset: u64,
    },
}

impl Pending {
    fn sequence(&self) -> u64 {
        match self {
            Pending::Publish { sequence, .. } | Pending::Commit { sequence, .. } => *sequence,
        }
    }
}

/// The splitmix64 finaliser (Steele, Lea and Flood, 2014): a fast, well
/// mixed bijection on 64-bit words.
fn splitmix64(key: u64) -> u64 {
    let mut z = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partition_hash_is_pinned() {
        // Goal: a key's partition never changes between versions or platforms;
        // 0xe220a8397b1dcdaf is the first output of SplitMix64 seeded with 0.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        assert_eq!(partition_for_key(0, 4), (0xe220_a839_7b1d_cdaf_u64 % 4) as u32);
        assert_eq!(partition_for_key(12_345, 1), 0);
    }

    #[test]
    fn configuration_errors_name_the_field() {
        // Goal: each listed bad value is refused with its field's full name.
        let check = |change: fn(&mut BrokerConfig), field: &str| {
            let mut config = BrokerConfig::new(vec![TopicConfig::new("orders", 3)]);
            change(&mut config);
            assert_eq!(Broker::<u64>::new(config).unwrap_err().field, field);
        };
        check(|c| c.topics[0].partitions = 0, "broker.topics[0].partitions");
        check(|c| c.topics.clear(), "broker.topics");
        check(|c| c.retention_records = 0, "broker.retention_records");
        check(|c| c.retention_age = Some(SimDuration::ZERO), "broker.retention_age");
        check(|c| c.max_batch = 0, "broker.max_batch");
        check(|c| c.pending_max = 0, "broker.pending_max");
        check(
            |c| c.session.heartbeat_interval = SimDuration::ZERO,
            "broker.session.heartbeat_interval",
        );
        check(
            |c| c.session.session_timeout = SimDuration::from_millis(50),
            "broker.session.session_timeout",
        );
        let config = BrokerConfig::new(vec![TopicConfig::new("orders", 3)]);
        assert!(Broker::<u64>::new(config).is_ok());
    }
}
