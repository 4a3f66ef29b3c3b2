//! Active-passive replication of an event-sourced aggregate, with failover
//! and leader epochs that fence a deposed active.
//!
//! The book's stateful services run exactly one active instance per
//! aggregate, replicated active-passive so that a standby takes over when
//! the active's node fails (Reactive Microsystems, ch. 5, "Microservices
//! Come as Systems", and ch. 6). Taking over is the easy half. The hard half
//! is the old active that is not dead but cut off: it still believes it
//! leads and keeps writing, and two writers make two histories (split
//! brain). Leader epochs with fencing are the classic cure: each takeover
//! starts a higher epoch, and the storage refuses writes from any epoch but
//! the current one, so a deposed active *cannot* write whatever it
//! believes.
//!
//! # The pieces
//!
//! - A [`LogStore`] process holds the authoritative event log of each
//!   aggregate on its node's durable storage (an
//!   [`EventLog`] per aggregate). It is
//!   the fencing point: it records which replica *claimed* which epoch, and
//!   accepts an append only from the owner of the current epoch. Every
//!   accepted append is traced there, in the order it was accepted.
//! - [`Replica`] processes, one per node, play the roles. Each keeps the
//!   aggregate's state in memory (an [`Aggregate`]) and a local durable copy
//!   of the entries it applied, from which it restarts.
//!   - The **active** takes writes from clients, appends them through the
//!     store, applies them in the store's order once durable there, answers
//!     the client (reply after the write), streams the entries to the
//!     passive replicas, and sends heartbeats.
//!   - A **passive** follows: applies streamed entries in sequence order,
//!     syncs them to its own log and acknowledges; after a gap or a restart
//!     it catches up from the store from its next sequence number.
//!   - A passive that hears nothing from an active for the detection timeout
//!     (a small heartbeat-timeout failure detector private to this module)
//!     **suspects** it and becomes a candidate: it claims epoch + 1 at the
//!     store. The store grants the claim only if that epoch is newer than
//!     any it granted and, when fencing is on, only if the store itself has
//!     not heard from the current active (which heartbeats the store too)
//!     for the detection timeout: a partition between the replicas alone
//!     deposes nobody. The candidate then catches up and is **promoted**.
//!     An active told of a newer epoch (by the store, a follower or a
//!     heartbeat) is **demoted** to passive.
//!
//! A write is acknowledged once the store has synced it, so an acknowledged
//! write survives the loss of the active: the new active reads the store's
//! log up to its end before it takes writes.
//!
//! # Fencing, and turning it off
//!
//! With [`ReplicationConfig::fencing`] on, the store refuses stale claims
//! and appends from anyone but the current epoch's owner, and passives
//! refuse streams and heartbeats from an older epoch (each refusal is traced
//! `fenced`). With it off, nothing checks epochs or owners: the store grants
//! every claim and accepts every append, so a passive that promotes itself
//! during a partition and the old active both get their appends accepted,
//! and the trace shows the split brain. [`accepted_appends`] and
//! [`check_fencing`] read it from a trace, so a test or an invariant checker
//! can tell.
//!
//! # Where an append is recorded
//!
//! The store, not the writer, records each accepted append, because only
//! the store's order is the real one. A writer learns of acceptance from an
//! acknowledgement that travels the network; a slow one can arrive after a
//! newer epoch's write was accepted and acknowledged, so a writer-side
//! record could show a stale append that never happened (or hide one). The
//! writer is named in the record instead: `appended` then `appended_by`,
//! emitted together by the store in the same step.
//!
//! # Trace
//!
//! All events are [`Component::Replication`] with the aggregate id as key.
//! By the store: `appended` (value: epoch) immediately followed by
//! `appended_by` (value: the writer's process index) for each accepted
//! append; `claimed` (value: epoch granted); `fenced` (value: the refused
//! epoch); `rejected` (value: writes pending, when a bound is hit). By the
//! replicas: `suspected` (value: the epoch of the active suspected),
//! `promoted` (value: the new epoch), `demoted` (value: the epoch lost),
//! `fenced` (value: the refused epoch), `replicated` (value: the last
//! sequence number applied from a stream), `write_rejected` (value: the
//! client's request id).
//!
//! # Example
//!
//! Two replicas and a store. The first replica to suspect that nobody leads
//! claims epoch 1; a write posted to it is acknowledged and followed by the
//! other.
//!
//! ```
//! use sim::kit::Carry;
//! use sim::kit::persistence::Aggregate;
//! use sim::kit::replication::{LogStore, Replica, ReplicaGroup, ReplicaRole, Replication,
//!                             ReplicationConfig};
//! use sim::{Message, NodeConfig, ProcessId, Seed, Sim, SimConfig, SimTime};
//!
//! #[derive(Clone, Debug)]
//! struct World(Replication<u64>);
//! impl Message for World {
//!     fn label(&self) -> &'static str { self.0.label() }
//! }
//! impl Carry<Replication<u64>> for World {
//!     fn wrap(inner: Replication<u64>) -> World { World(inner) }
//!     fn unwrap(self) -> Result<Replication<u64>, World> { Ok(self.0) }
//! }
//!
//! #[derive(Clone, Debug, Default)]
//! struct Total(u64);
//! impl Aggregate for Total {
//!     type Event = u64;
//!     fn apply(&mut self, event: &u64) { self.0 += event; }
//! }
//!
//! let config = ReplicationConfig::new();
//! let group = ReplicaGroup {
//!     aggregate: 7,
//!     store: ProcessId(0),
//!     replicas: vec![ProcessId(1), ProcessId(2)],
//! };
//! let mut sim: Sim<World> = Sim::new(SimConfig::new(Seed(3)));
//! let nodes: Vec<_> = ["store", "a", "b"].iter().map(|n| sim.add_node(NodeConfig::new(*n))).collect();
//! let store = LogStore::<u64>::new(&config).unwrap();
//! sim.spawn(nodes[0], "store", move || store.clone());
//! for (i, node) in nodes[1..].iter().enumerate() {
//!     let replica = Replica::new(&config, &group, Total(0)).unwrap();
//!     sim.spawn(*node, format!("replica-{i}"), move || replica.clone());
//! }
//! sim.run_until(SimTime::from_nanos(1_000_000_000));
//! let a = sim.process_state::<Replica<Total>>(ProcessId(1)).unwrap();
//! assert_eq!((a.role(), a.epoch()), (ReplicaRole::Active, 1));
//! let write = Replication::Write { aggregate: 7, request: 1, events: vec![5, 6] };
//! sim.post(sim.now(), ProcessId(1), World(write));
//! sim.run_until(SimTime::from_nanos(2_000_000_000));
//! let b = sim.process_state::<Replica<Total>>(ProcessId(2)).unwrap();
//! assert_eq!((b.role(), b.state().0, b.applied_sequence()), (ReplicaRole::Passive, 11, 2));
//! ```

use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::persistence::{Aggregate, EventLog, PersistError, PersistenceConfig};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message, Process};
use crate::time::{SimDuration, SimTime};
use crate::trace::{Component, OwnedRecord, TraceEvent};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

/// How replication behaves; shared by the store and the replicas of a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// How often the active sends heartbeats (and every replica checks its
    /// timers). Must be positive.
    pub heartbeat_interval: SimDuration,
    /// How long a passive hears nothing from an active before it suspects
    /// it. Must exceed the heartbeat interval, or a single late heartbeat
    /// starts a failover.
    pub detection_timeout: SimDuration,
    /// How long an active waits for the store to answer a write before it
    /// tells the client the outcome is unknown. Must be positive.
    pub write_timeout: SimDuration,
    /// Whether the store and the passives refuse writes from stale epochs.
    /// Off, nothing stops a deposed active from writing: only for showing
    /// the split brain fencing prevents.
    pub fencing: bool,
    /// Most client writes an active has in flight to the store, and most
    /// appends awaiting a sync per aggregate at the store.
    pub pending_writes_max: usize,
    /// Most entries in one stream or catch-up message; also the largest
    /// write accepted.
    pub batch_max: usize,
    /// If set, a replica that starts with an empty local log and has never
    /// seen an epoch claims after this long (plus its rank's stagger)
    /// instead of after the detection timeout, so that a brand-new group
    /// elects its first active at once rather than after a detection
    /// timeout of silence nobody caused. Once it has followed or claimed any
    /// epoch, and after every restart with a log, only the detection timeout
    /// counts. `None` (the default): always the detection timeout.
    pub bootstrap_timeout: Option<SimDuration>,
}

impl ReplicationConfig {
    /// Heartbeats every 50 ms, suspicion after 200 ms, writes abandoned
    /// after 500 ms, fencing on, 64 writes in flight, batches of 64.
    pub fn new() -> ReplicationConfig {
        ReplicationConfig {
            heartbeat_interval: SimDuration::from_millis(50),
            detection_timeout: SimDuration::from_millis(200),
            write_timeout: SimDuration::from_millis(500),
            fencing: true,
            pending_writes_max: 64,
            batch_max: 64,
            bootstrap_timeout: None,
        }
    }

    /// With fencing on or off (builder style).
    pub fn fencing(mut self, fencing: bool) -> ReplicationConfig {
        self.fencing = fencing;
        self
    }

    /// With a fresh group's first claim after `timeout` (builder style; see
    /// [`ReplicationConfig::bootstrap_timeout`]).
    pub fn bootstrap_after(mut self, timeout: SimDuration) -> ReplicationConfig {
        self.bootstrap_timeout = Some(timeout);
        self
    }

    /// Checks the values; errors name the field as `replication.field`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat_interval == SimDuration::ZERO {
            return Err(ConfigError::new(
                "replication.heartbeat_interval",
                self.heartbeat_interval,
                "a positive duration",
            ));
        }
        if self.detection_timeout <= self.heartbeat_interval {
            return Err(ConfigError::new(
                "replication.detection_timeout",
                self.detection_timeout,
                format!("more than the heartbeat interval ({})", self.heartbeat_interval),
            ));
        }
        if self.write_timeout == SimDuration::ZERO {
            return Err(ConfigError::new(
                "replication.write_timeout",
                self.write_timeout,
                "a positive duration",
            ));
        }
        if self.pending_writes_max == 0 {
            return Err(ConfigError::new("replication.pending_writes_max", 0, "at least 1"));
        }
        if self.batch_max == 0 {
            return Err(ConfigError::new("replication.batch_max", 0, "at least 1"));
        }
        if self.bootstrap_timeout == Some(SimDuration::ZERO) {
            return Err(ConfigError::new(
                "replication.bootstrap_timeout",
                SimDuration::ZERO,
                "a positive duration, or none",
            ));
        }
        Ok(())
    }

    fn store_persistence(&self) -> PersistenceConfig {
        PersistenceConfig { snapshot_interval: None, pending_syncs_max: self.pending_writes_max }
    }
}

impl Default for ReplicationConfig {
    fn default() -> ReplicationConfig {
        ReplicationConfig::new()
    }
}

/// Who replicates one aggregate: the store holding its log and the
/// replicas, in rank order (on a tie, the lower rank suspects first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaGroup {
    /// The aggregate's id.
    pub aggregate: u64,
    /// The [`LogStore`] process.
    pub store: ProcessId,
    /// The [`Replica`] processes.
    pub replicas: Vec<ProcessId>,
}

impl ReplicaGroup {
    /// Checks there is at least one replica, none twice, and the store is
    /// not one of them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let names = || format!("{:?}", self.replicas);
        if self.replicas.is_empty() {
            return Err(ConfigError::new("replication.replicas", "[]", "at least one replica"));
        }
        let distinct: BTreeSet<ProcessId> = self.replicas.iter().copied().collect();
        if distinct.len() != self.replicas.len() {
            return Err(ConfigError::new("replication.replicas", names(), "no process twice"));
        }
        if distinct.contains(&self.store) {
            return Err(ConfigError::new(
                "replication.replicas",
                names(),
                format!("not the store ({})", self.store),
            ));
        }
        Ok(())
    }
}

/// One event in the store's log: where it is, which epoch and writer put it
/// there, and for which write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<E> {
    /// Its position in the aggregate's log, from 1.
    pub sequence: u64,
    /// The epoch of the active that wrote it.
    pub epoch: u64,
    /// The replica that wrote it.
    pub writer: ProcessId,
    /// The writer's id for the write it belongs to.
    pub write: u64,
    /// The event.
    pub event: E,
}

/// Why an active did not take a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteRejection {
    /// This replica is not the active; `active` is its best guess of who is.
    NotActive {
        /// The replica it believes active, if any.
        active: Option<ProcessId>,
    },
    /// This replica was just promoted and is still reading the log.
    CatchingUp,
    /// Too many writes are in flight.
    Overloaded,
    /// More events than [`ReplicationConfig::batch_max`].
    TooLarge,
    /// No events.
    Empty,
    /// The store refused it: a newer epoch exists. Nothing was written.
    Fenced,
    /// The store did not answer in time: the write may or may not be in the
    /// log.
    TimedOut,
}

/// The replication protocol: clients to the active, replicas to the store,
/// the active to the passives. Carried in a world's message type through
/// [`Carry`].
#[derive(Clone, Debug, PartialEq)]
pub enum Replication<E> {
    /// Client to active: append these events.
    Write {
        /// The aggregate.
        aggregate: u64,
        /// The client's id for this request, echoed in the answer.
        request: u64,
        /// The events.
        events: Vec<E>,
    },
    /// Active to client: the events are durable in the store at these
    /// sequence numbers.
    Written {
        /// The aggregate.
        aggregate: u64,
        /// The client's request id.
        request: u64,
        /// The epoch they were written in.
        epoch: u64,
        /// The first sequence number.
        first_sequence: u64,
        /// The last sequence number.
        last_sequence: u64,
    },
    /// Replica to client: the write was not taken, or failed.
    WriteRejected {
        /// The aggregate.
        aggregate: u64,
        /// The client's request id.
        request: u64,
        /// Why.
        reason: WriteRejection,
    },
    /// Candidate to store: grant me `epoch`, and send entries from
    /// `from_sequence` on.
    Claim {
        /// The aggregate.
        aggregate: u64,
        /// The epoch asked for.
        epoch: u64,
        /// The first entry the candidate lacks.
        from_sequence: u64,
    },
    /// Store to candidate: the epoch is yours (durably recorded).
    Claimed {
        /// The aggregate.
        aggregate: u64,
        /// The epoch granted.
        epoch: u64,
        /// Entries from the requested sequence number on (at most a batch).
        entries: Vec<Entry<E>>,
        /// The last durable sequence number in the store's log.
        last_sequence: u64,
    },
    /// Active to store: append these events in my epoch.
    Append {
        /// The aggregate.
        aggregate: u64,
        /// The writer's epoch.
        epoch: u64,
        /// The writer's id for this write.
        write: u64,
        /// The events.
        events: Vec<E>,
    },
    /// Store to active: the write is durable at these sequence numbers.
    Appended {
        /// The aggregate.
        aggregate: u64,
        /// The writer's epoch.
        epoch: u64,
        /// The writer's id for this write.
        write: u64,
        /// The first sequence number.
        first_sequence: u64,
        /// The last sequence number.
        last_sequence: u64,
    },
    /// Store or passive to a stale claimant or writer: `epoch` is not
    /// current; `current_epoch` is (owned by `active`, if known).
    Fenced {
        /// The aggregate.
        aggregate: u64,
        /// The refused epoch.
        epoch: u64,
        /// The newest epoch the refuser knows.
        current_epoch: u64,
        /// Who owns it, if known.
        active: Option<ProcessId>,
        /// The refused write, if it was one.
        write: Option<u64>,
    },
    /// Store to active: too many appends are awaiting a sync; this one was
    /// not taken.
    Overloaded {
        /// The aggregate.
        aggregate: u64,
        /// The writer's id for the refused write.
        write: u64,
    },
    /// Replica to store: send durable entries from `from_sequence` on.
    CatchUp {
        /// The aggregate.
        aggregate: u64,
        /// The first entry the replica lacks.
        from_sequence: u64,
    },
    /// Store to replica: durable entries, and who owns which epoch now.
    Entries {
        /// The aggregate.
        aggregate: u64,
        /// Entries from the requested sequence number on (at most a batch).
        entries: Vec<Entry<E>>,
        /// The last durable sequence number in the store's log.
        last_sequence: u64,
        /// The store's current epoch.
        epoch: u64,
        /// Its owner, if any.
        active: Option<ProcessId>,
    },
    /// Active to passives: I lead `epoch`; the log reaches `last_sequence`.
    Heartbeat {
        /// The aggregate.
        aggregate: u64,
        /// The active's epoch.
        epoch: u64,
        /// The last sequence number the active applied.
        last_sequence: u64,
    },
    /// Active to passives: entries to apply, in order.
    Replicate {
        /// The aggregate.
        aggregate: u64,
        /// The active's epoch.
        epoch: u64,
        /// Consecutive entries.
        entries: Vec<Entry<E>>,
    },
    /// Passive to active: I have durably applied every entry through
    /// `through`.
    Replicated {
        /// The aggregate.
        aggregate: u64,
        /// The epoch of the stream acknowledged.
        epoch: u64,
        /// The last sequence number durable at the passive.
        through: u64,
    },
}

impl<E> Replication<E> {
    /// A short name for traces and diagrams.
    pub fn label(&self) -> &'static str {
        match self {
            Replication::Write { .. } => "Write",
            Replication::Written { .. } => "Written",
            Replication::WriteRejected { .. } => "WriteRejected",
            Replication::Claim { .. } => "Claim",
            Replication::Claimed { .. } => "Claimed",
            Replication::Append { .. } => "Append",
            Replication::Appended { .. } => "Appended",
            Replication::Fenced { .. } => "Fenced",
            Replication::Overloaded { .. } => "Overloaded",
            Replication::CatchUp { .. } => "CatchUp",
            Replication::Entries { .. } => "Entries",
            Replication::Heartbeat { .. } => "Heartbeat",
            Replication::Replicate { .. } => "Replicate",
            Replication::Replicated { .. } => "Replicated",
        }
    }

    /// The aggregate the message is about.
    pub fn aggregate(&self) -> u64 {
        match self {
            Replication::Write { aggregate, .. }
            | Replication::Written { aggregate, .. }
            | Replication::WriteRejected { aggregate, .. }
            | Replication::Claim { aggregate, .. }
            | Replication::Claimed { aggregate, .. }
            | Replication::Append { aggregate, .. }
            | Replication::Appended { aggregate, .. }
            | Replication::Fenced { aggregate, .. }
            | Replication::Overloaded { aggregate, .. }
            | Replication::CatchUp { aggregate, .. }
            | Replication::Entries { aggregate, .. }
            | Replication::Heartbeat { aggregate, .. }
            | Replication::Replicate { aggregate, .. }
            | Replication::Replicated { aggregate, .. } => *aggregate,
        }
    }
}

/// The bounds an event type needs to be replicated.
pub trait ReplicatedEvent: Clone + Debug + Serialize + DeserializeOwned + 'static {}
impl<E: Clone + Debug + Serialize + DeserializeOwned + 'static> ReplicatedEvent for E {}

// ----- the store -----

/// The fencing store: holds each aggregate's authoritative log and the
/// record of which replica claimed which epoch, and accepts appends only
/// from the current epoch's owner (when fencing is on).
///
/// Its state is rebuilt from its node's storage on demand, the first time
/// an aggregate is mentioned after a (re)start.
#[derive(Clone, Debug)]
pub struct LogStore<E> {
    config: ReplicationConfig,
    aggregates: BTreeMap<u64, StoredAggregate<E>>,
    /// Replies waiting for a sync, by sync tag.
    replies: InFlight<PendingReply>,
    next_tag: u64,
    /// Every append this incarnation accepted, in the order it accepted
    /// them (volatile, like the rest of its memory: a restart starts it
    /// empty).
    accepted: Vec<AcceptedAppend>,
    /// The entries of the append being written, kept empty between
    /// appends so that the buffer is reused rather than allocated for each.
    appending: Vec<StoredEntry<E>>,
}

#[derive(Clone, Debug)]
struct StoredAggregate<E> {
    entries: EventLog<StoredEntry<E>>,
    claims: EventLog<ClaimRecord>,
    epoch: u64,
    owner: Option<ProcessId>,
    /// When the owner last showed it is alive (a heartbeat, an append or
    /// its claim), by the store's clock.
    owner_heard: LocalTime,
}

/// An entry as the store keeps it (its sequence number is its position).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredEntry<E> {
    epoch: u64,
    writer: ProcessId,
    write: u64,
    event: E,
}

/// Decodes record `index` of a store's log `log` (as read from its node's
/// storage, e.g. for a report after the run) into the entry it holds.
pub fn decode_store_record<E: DeserializeOwned>(
    log: &str,
    index: usize,
    record: &[u8],
) -> Result<Entry<E>, PersistError> {
    let (sequence, stored): (u64, StoredEntry<E>) =
        crate::kit::persistence::decode_stored_event(log, index, record)?;
    let StoredEntry { epoch, writer, write, event } = stored;
    Ok(Entry { sequence, epoch, writer, write, event })
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ClaimRecord {
    epoch: u64,
    owner: ProcessId,
}

#[derive(Clone, Debug)]
enum PendingReply {
    Claimed { to: ProcessId, aggregate: u64, epoch: u64, from_sequence: u64 },
    Appended { to: ProcessId, aggregate: u64, epoch: u64, write: u64, first: u64, last: u64 },
    Entries { to: ProcessId, aggregate: u64, from_sequence: u64 },
}

impl<E: ReplicatedEvent> LogStore<E> {
    /// A store with this configuration.
    pub fn new(config: &ReplicationConfig) -> Result<LogStore<E>, ConfigError> {
        config.validate()?;
        Ok(LogStore {
            config: config.clone(),
            aggregates: BTreeMap::new(),
            replies: InFlight::new(),
            next_tag: 0,
            accepted: Vec::new(),
            appending: Vec::new(),
        })
    }

    /// Every append this incarnation of the store accepted, in the order it
    /// accepted them: the same record [`accepted_appends`] reads from a
    /// trace, kept in memory so a run without a trace sink can audit
    /// fencing with [`check_fencing`]. One entry per `Append` message
    /// accepted; `time` is the store's clock reading (global time on a
    /// node with a perfect clock). A restart of the store starts it empty.
    pub fn accepted(&self) -> &[AcceptedAppend] {
        &self.accepted
    }

    /// The current epoch and its owner for `aggregate`, if the store has
    /// loaded it since it last started.
    pub fn epoch(&self, aggregate: u64) -> Option<(u64, Option<ProcessId>)> {
        self.aggregates.get(&aggregate).map(|stored| (stored.epoch, stored.owner))
    }

    /// The last sequence number in `aggregate`'s log (durable or not), if
    /// loaded.
    pub fn last_sequence(&self, aggregate: u64) -> Option<u64> {
        self.aggregates.get(&aggregate).map(|stored| stored.entries.last_sequence())
    }

    fn load<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        aggregate: u64,
    ) -> Result<&mut StoredAggregate<E>, PersistError> {
        if !self.aggregates.contains_key(&aggregate) {
            let persistence = self.config.store_persistence();
            let entries = EventLog::open(ctx, "store/entries", aggregate, persistence.clone())?;
            let claims = EventLog::open(ctx, "store/claims", aggregate, persistence)?;
            // The current epoch is the highest claimed; its owner the last
            // claimant of it (only one, when fencing is on).
            let recovered = claims.replay_all(ctx, (0, None), |current, claim: &ClaimRecord| {
                if claim.epoch >= current.0 {
                    *current = (claim.epoch, Some(claim.owner));
                }
            })?;
            let (epoch, owner) = recovered.state;
            // After a restart the store cannot know whether the owner is
            // alive: it gives it one detection timeout to show up.
            let owner_heard = ctx.now_local();
            let stored = StoredAggregate { entries, claims, epoch, owner, owner_heard };
            self.aggregates.insert(aggregate, stored);
        }
        Ok(self.aggregates.get_mut(&aggregate).expect("loaded above"))
    }

    fn next_tag(&mut self) -> u64 {
        self.next_tag += 1;
        STORE_SYNC_TAG_BASE | self.next_tag
    }

    fn handle<M: Carry<Replication<E>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        message: Replication<E>,
    ) -> Result<(), PersistError> {
        let fencing = self.config.fencing;
        let lease = self.config.detection_timeout;
        let now = ctx.now_local();
        match message {
            Replication::Claim { aggregate, epoch, from_sequence } => {
                let tag = self.next_tag();
                let stored = self.load(ctx, aggregate)?;
                let stale = stored.epoch > epoch
                    || (stored.epoch == epoch && stored.owner.is_some_and(|owner| owner != from));
                // A replica that cannot hear the active may still be
                // claiming against one the store hears well: refusing it
                // keeps a partition between replicas from deposing a
                // working active again and again. Only liveness depends on
                // this clock reading; safety rests on the epochs.
                let owner_alive = stored.owner.is_some_and(|owner| owner != from)
                    && now < stored.owner_heard.plus(lease);
                if fencing && (stale || owner_alive) {
                    let (current_epoch, active) = (stored.epoch, stored.owner);
                    fence(ctx, from, aggregate, epoch, current_epoch, active, None);
                    return Ok(());
                }
                stored.epoch = stored.epoch.max(epoch);
                stored.owner = Some(from);
                stored.owner_heard = now;
                // The claim is answered only once durable, so a store crash
                // cannot forget an epoch it granted.
                stored.claims.append(ctx, &[ClaimRecord { epoch, owner: from }])?;
                let joined = stored.entries.join_sync(ctx, tag);
                let synced = joined.and_then(|()| stored.claims.sync(ctx, tag));
                if synced.is_err() {
                    // Over the bound: the candidate will ask again.
                    return Ok(());
                }
                ctx.trace(Component::Replication, "claimed", aggregate, epoch as i64);
                ctx.count("replication.claimed", 1);
                self.replies.insert(
                    tag,
                    PendingReply::Claimed { to: from, aggregate, epoch, from_sequence },
                );
            }
            Replication::Append { aggregate, epoch, write, events } => {
                let tag = self.next_tag();
                let pending_max = self.config.pending_writes_max;
                // (A refused append drops the buffer; the next allocates anew.)
                let mut records = std::mem::take(&mut self.appending);
                let stored = self.load(ctx, aggregate)?;
                if fencing && (epoch != stored.epoch || stored.owner != Some(from)) {
                    let (current_epoch, active) = (stored.epoch, stored.owner);
                    fence(ctx, from, aggregate, epoch, current_epoch, active, Some(write));
                    return Ok(());
                }
                if stored.owner == Some(from) {
                    stored.owner_heard = now;
                }
                if stored.entries.pending_syncs() >= pending_max {
                    let pending = stored.entries.pending_syncs();
                    ctx.trace(Component::Replication, "rejected", aggregate, pending as i64);
                    ctx.count("replication.rejected", 1);
                    ctx.send(from, M::wrap(Replication::Overloaded { aggregate, write }));
                    return Ok(());
                }
                records.extend(events.into_iter().map(|event| StoredEntry {
                    epoch,
                    writer: from,
                    write,
                    event,
                }));
                let persisted = stored.entries.persist(ctx, &records, tag);
                let count = records.len() as u64;
                records.clear();
                self.appending = records;
                let sequences = persisted?;
                // The fencing decision is made here, so this is where an
                // append is recorded as accepted: the trace then orders
                // accepted appends exactly as the store did.
                ctx.trace(Component::Replication, "appended", aggregate, epoch as i64);
                ctx.trace(Component::Replication, "appended_by", aggregate, i64::from(from.0));
                self.accepted.push(AcceptedAppend {
                    time: SimTime::from_nanos(u64::try_from(now.as_nanos()).unwrap_or(0)),
                    store: ctx.me(),
                    aggregate,
                    epoch,
                    writer: from,
                });
                ctx.count("replication.appended", count);
                let (first, last) = (*sequences.start(), *sequences.end());
                self.replies.insert(
                    tag,
                    PendingReply::Appended { to: from, aggregate, epoch, write, first, last },
                );
            }
            Replication::CatchUp { aggregate, from_sequence } => {
                let tag = self.next_tag();
                let stored = self.load(ctx, aggregate)?;
                if stored.entries.synced_sequence() < stored.entries.last_sequence() {
                    // Serve only durable entries: wait for a sync first.
                    if stored.entries.sync(ctx, tag).is_ok() {
                        let reply = PendingReply::Entries { to: from, aggregate, from_sequence };
                        self.replies.insert(tag, reply);
                    }
                    return Ok(());
                }
                self.send_entries(ctx, from, aggregate, from_sequence)?;
            }
            Replication::Heartbeat { aggregate, epoch, .. } => {
                let stored = self.load(ctx, aggregate)?;
                if stored.owner == Some(from) && stored.epoch == epoch {
                    stored.owner_heard = now;
                }
            }
            // Messages for replicas and clients are not the store's business.
            _ => {}
        }
        Ok(())
    }

    fn durable_entries<M: Message>(
        &self,
        ctx: &Ctx<'_, M>,
        aggregate: u64,
        from_sequence: u64,
    ) -> Result<(Vec<Entry<E>>, u64), PersistError> {
        let stored = &self.aggregates[&aggregate];
        let last = stored.entries.synced_sequence();
        let from = from_sequence.max(1);
        let count = last.saturating_add(1).saturating_sub(from).min(self.config.batch_max as u64);
        let entries = stored
            .entries
            .read(ctx, from, count as usize)?
            .into_iter()
            .map(|(sequence, stored)| Entry {
                sequence,
                epoch: stored.epoch,
                writer: stored.writer,
                write: stored.write,
                event: stored.event,
            })
            .collect();
        Ok((entries, last))
    }

    fn send_entries<M: Carry<Replication<E>>>(
        &self,
        ctx: &mut Ctx<'_, M>,
        to: ProcessId,
        aggregate: u64,
        from_sequence: u64,
    ) -> Result<(), PersistError> {
        let (entries, last_sequence) = self.durable_entries(ctx, aggregate, from_sequence)?;
        let stored = &self.aggregates[&aggregate];
        let (epoch, active) = (stored.epoch, stored.owner);
        let reply = Replication::Entries { aggregate, entries, last_sequence, epoch, active };
        ctx.send(to, M::wrap(reply));
        Ok(())
    }

    fn synced<M: Carry<Replication<E>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        tag: u64,
    ) -> Result<(), PersistError> {
        for stored in self.aggregates.values_mut() {
            stored.entries.on_synced(ctx, tag);
            stored.claims.on_synced(ctx, tag);
        }
        let Some(reply) = self.replies.remove(tag) else { return Ok(()) };
        match reply {
            PendingReply::Claimed { to, aggregate, epoch, from_sequence } => {
                let (entries, last_sequence) =
                    self.durable_entries(ctx, aggregate, from_sequence)?;
                let claimed = Replication::Claimed { aggregate, epoch, entries, last_sequence };
                ctx.send(to, M::wrap(claimed));
            }
            PendingReply::Appended { to, aggregate, epoch, write, first, last } => {
                let appended = Replication::Appended {
                    aggregate,
                    epoch,
                    write,
                    first_sequence: first,
                    last_sequence: last,
                };
                ctx.send(to, M::wrap(appended));
            }
            PendingReply::Entries { to, aggregate, from_sequence } => {
                self.send_entries(ctx, to, aggregate, from_sequence)?;
            }
        }
        Ok(())
    }
}

/// Refuses a stale claim, append, stream or heartbeat: tells the sender,
/// and traces `fenced` with the refused epoch.
fn fence<E, M: Carry<Replication<E>>>(
    ctx: &mut Ctx<'_, M>,
    to: ProcessId,
    aggregate: u64,
    epoch: u64,
    current_epoch: u64,
    active: Option<ProcessId>,
    write: Option<u64>,
) {
    ctx.trace(Component::Replication, "fenced", aggregate, epoch as i64);
    ctx.count("replication.fenced", 1);
    let fenced = Replication::Fenced { aggregate, epoch, current_epoch, active, write };
    ctx.send(to, M::wrap(fenced));
}

/// Sync tags of the store: a fixed high prefix, so a process embedding a
/// store can tell its syncs from its own.
pub const STORE_SYNC_TAG_BASE: u64 = 0x5354_4f52_0000_0000;

impl<E: ReplicatedEvent, M: Carry<Replication<E>>> Process<M> for LogStore<E> {
    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        if self.handle(ctx, from, message).is_err() {
            // The log is unreadable or unwritable: let it crash.
            ctx.fail("replication store: event log error");
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        if self.synced(ctx, tag).is_err() {
            ctx.fail("replication store: event log error");
        }
    }
}

// ----- the failure detector -----

/// Suspects a peer it has not heard from for `timeout`, by the node's
/// clock. Deliberately minimal and private; `kit::discovery` has the
/// general detectors.
#[derive(Clone, Debug)]
struct HeartbeatDetector {
    timeout: SimDuration,
    last_heard: LocalTime,
}

impl HeartbeatDetector {
    fn new(timeout: SimDuration, now: LocalTime) -> HeartbeatDetector {
        HeartbeatDetector { timeout, last_heard: now }
    }

    fn heard(&mut self, now: LocalTime) {
        self.last_heard = self.last_heard.max(now);
    }

    fn suspects(&self, now: LocalTime) -> bool {
        now >= self.last_heard.plus(self.timeout)
    }
}

// ----- the replicas -----

/// What a replica is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaRole {
    /// Following an active (or waiting for one).
    Passive,
    /// Has claimed an epoch at the store and awaits the answer.
    Candidate,
    /// Takes writes.
    Active,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Passive,
    Candidate { epoch: u64 },
    Active { epoch: u64, ready: bool },
}

#[derive(Clone, Debug)]
struct PendingWrite<E> {
    client: ProcessId,
    request: u64,
    epoch: u64,
    /// The events, kept to apply once the store has placed them; moved out
    /// when they are (see [`Replica::appended`]).
    events: Vec<E>,
    /// How many events the write has.
    count: usize,
    first_sequence: Option<u64>,
    applied: usize,
    sent_at: LocalTime,
}

/// What awaits an answer (client writes, syncs), by an id handed out in
/// increasing order (write ids, sync tags). The ids sit in a ring by their
/// distance from the oldest: a lookup is an index rather than a tree search
/// (these are on the path of every write), and iteration runs in id order,
/// as a map's would.
#[derive(Clone, Debug)]
struct InFlight<T> {
    /// The id of `slots[0]`.
    first: u64,
    /// One slot per id from `first` on; `None` once answered (or never
    /// used). The front slot is always occupied (empty ones there go).
    slots: VecDeque<Option<T>>,
    len: usize,
}

impl<T> InFlight<T> {
    fn new() -> InFlight<T> {
        InFlight { first: 0, slots: VecDeque::new(), len: 0 }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Adds `id`, which must be newer than every id present.
    fn insert(&mut self, id: u64, value: T) {
        if self.slots.is_empty() {
            self.first = id;
        }
        let index = id.checked_sub(self.first).expect("ids only grow") as usize;
        assert!(index >= self.slots.len(), "ids only grow");
        self.slots.resize_with(index, || None);
        self.slots.push_back(Some(value));
        self.len += 1;
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut T> {
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        self.slots.get_mut(index)?.as_mut()
    }

    fn remove(&mut self, id: u64) -> Option<T> {
        let index = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let removed = self.slots.get_mut(index)?.take()?;
        self.len -= 1;
        while self.slots.front().is_some_and(Option::is_none) {
            self.slots.pop_front();
            self.first += 1;
        }
        Some(removed)
    }

    /// The ids present and their values, oldest first.
    fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let first = self.first;
        let present = self.slots.iter().enumerate();
        present.filter_map(move |(index, slot)| Some((first + index as u64, slot.as_ref()?)))
    }
}

/// The timer tag of a replica's periodic tick.
pub const REPLICA_TICK_TAG: u64 = 0x5245_504c_ffff_ffff;
/// Sync tags of a replica: a fixed high prefix.
pub const REPLICA_SYNC_TAG_BASE: u64 = 0x5245_504c_0000_0000;

/// One replica of an aggregate: active or passive, see the module docs.
///
/// Build it with [`Replica::new`] and spawn clones of it: a restart starts
/// from the value given, then recovers from the node's storage.
#[derive(Clone, Debug)]
pub struct Replica<A: Aggregate> {
    config: ReplicationConfig,
    group: ReplicaGroup,
    state: A,
    log: Option<EventLog<Entry<A::Event>>>,
    me: ProcessId,
    role: Role,
    epoch_seen: u64,
    active: Option<ProcessId>,
    detector: HeartbeatDetector,
    suspecting: bool,
    claim_sent: Option<LocalTime>,
    catch_up_sent: Option<LocalTime>,
    store_last: u64,
    writes: InFlight<PendingWrite<A::Event>>,
    /// Own entries acknowledged by the store but not yet applied because an
    /// earlier sequence number is missing.
    ahead: BTreeMap<u64, Entry<A::Event>>,
    next_write: u64,
    /// Acknowledgements to send once a local sync completes, by sync tag.
    acks: InFlight<(ProcessId, u64, u64)>,
    next_sync_tag: u64,
    peer_through: BTreeMap<ProcessId, u64>,
    /// When a fresh replica claims if it has still seen no epoch (see
    /// [`ReplicationConfig::bootstrap_timeout`]).
    bootstrap_at: Option<LocalTime>,
}

impl<A> Replica<A>
where
    A: Aggregate + Clone + 'static,
    A::Event: ReplicatedEvent,
{
    /// A replica of `group.aggregate` starting from state `initial`.
    pub fn new(
        config: &ReplicationConfig,
        group: &ReplicaGroup,
        initial: A,
    ) -> Result<Replica<A>, ConfigError> {
        config.validate()?;
        group.validate()?;
        Ok(Replica {
            config: config.clone(),
            group: group.clone(),
            state: initial,
            log: None,
            me: ProcessId(u32::MAX),
            role: Role::Passive,
            epoch_seen: 0,
            active: None,
            detector: HeartbeatDetector::new(config.detection_timeout, LocalTime(0)),
            suspecting: false,
            claim_sent: None,
            catch_up_sent: None,
            store_last: 0,
            writes: InFlight::new(),
            ahead: BTreeMap::new(),
            next_write: 0,
            acks: InFlight::new(),
            next_sync_tag: 0,
            peer_through: BTreeMap::new(),
            bootstrap_at: None,
        })
    }

    /// The role now.
    pub fn role(&self) -> ReplicaRole {
        match self.role {
            Role::Passive => ReplicaRole::Passive,
            Role::Candidate { .. } => ReplicaRole::Candidate,
            Role::Active { .. } => ReplicaRole::Active,
        }
    }

    /// The epoch it leads or claims, or else the newest it has seen.
    pub fn epoch(&self) -> u64 {
        match self.role {
            Role::Candidate { epoch } | Role::Active { epoch, .. } => epoch,
            Role::Passive => self.epoch_seen,
        }
    }

    /// The replica it believes active.
    pub fn active(&self) -> Option<ProcessId> {
        self.active
    }

    /// The aggregate's state: the fold of every entry applied.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The last sequence number applied.
    pub fn applied_sequence(&self) -> u64 {
        self.log.as_ref().map_or(0, EventLog::last_sequence)
    }

    /// Client writes awaiting the store's answer.
    pub fn pending_writes(&self) -> usize {
        self.writes.len()
    }

    /// Asks the store at once for the entries after the last one applied:
    /// for a host that has reason to think its memory image is behind (a
    /// command about something it has never seen). Without fencing, an
    /// active that a rival's writes overtook learns of them no other way
    /// until it writes itself.
    pub fn catch_up<M: Carry<Replication<A::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        self.request_catch_up(ctx, true);
    }

    /// How far `peer` has acknowledged the stream (when active).
    pub fn peer_through(&self, peer: ProcessId) -> u64 {
        self.peer_through.get(&peer).copied().unwrap_or(0)
    }

    fn aggregate(&self) -> u64 {
        self.group.aggregate
    }

    fn peers(&self) -> impl Iterator<Item = ProcessId> + '_ {
        self.group.replicas.iter().copied().filter(move |replica| *replica != self.me)
    }

    fn send<M: Carry<Replication<A::Event>>>(
        ctx: &mut Ctx<'_, M>,
        to: ProcessId,
        message: Replication<A::Event>,
    ) {
        ctx.send(to, M::wrap(message));
    }

    fn start<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
    ) -> Result<(), PersistError> {
        self.me = ctx.me();
        let rank = self.group.replicas.iter().position(|replica| *replica == self.me);
        let rank = rank.unwrap_or(self.group.replicas.len()) as u64;
        // Lower ranks suspect first, so that replicas rarely race for the
        // same epoch; the store settles the races that remain.
        let stagger = SimDuration::from_nanos(self.config.heartbeat_interval.as_nanos() * rank);
        let timeout = self.config.detection_timeout.saturating_add(stagger);
        self.detector = HeartbeatDetector::new(timeout, ctx.now_local());
        let persistence = PersistenceConfig {
            snapshot_interval: None,
            pending_syncs_max: self.config.pending_writes_max,
        };
        let namespace = format!("replica-{}", self.me.0);
        let log = EventLog::open(ctx, &namespace, self.aggregate(), persistence)?;
        let recovered =
            log.replay_all(ctx, (self.state.clone(), 0), |(state, epoch), entry: &Entry<_>| {
                state.apply(&entry.event);
                *epoch = (*epoch).max(entry.epoch);
            })?;
        (self.state, self.epoch_seen) = recovered.state;
        self.store_last = log.last_sequence();
        self.bootstrap_at = match self.config.bootstrap_timeout {
            Some(bootstrap) if self.store_last == 0 && self.epoch_seen == 0 => {
                Some(ctx.now_local().plus(bootstrap.saturating_add(stagger)))
            }
            _ => None,
        };
        self.log = Some(log);
        // Write ids must not repeat across incarnations, or a late answer
        // to an old write could resolve a new one.
        self.next_write = ctx.rng().next_u64() >> 16;
        ctx.set_timer(self.config.heartbeat_interval, REPLICA_TICK_TAG);
        self.request_catch_up(ctx, true);
        Ok(())
    }

    fn handle<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        message: Replication<A::Event>,
    ) -> Result<(), PersistError> {
        if message.aggregate() != self.aggregate() {
            return Ok(());
        }
        match message {
            Replication::Write { request, events, .. } => self.write(ctx, from, request, events),
            Replication::Claimed { epoch, entries, last_sequence, .. } => {
                self.claimed(ctx, epoch, entries, last_sequence)?;
            }
            Replication::Appended { epoch, write, first_sequence, last_sequence, .. } => {
                self.appended(ctx, epoch, write, first_sequence, last_sequence)?;
            }
            Replication::Fenced { epoch, current_epoch, active, write, .. } => {
                self.fenced(ctx, epoch, current_epoch, active, write);
            }
            Replication::Overloaded { write, .. } => {
                if let Some(pending) = self.writes.remove(write) {
                    self.reject(ctx, pending.client, pending.request, WriteRejection::Overloaded);
                }
            }
            Replication::Entries { entries, last_sequence, epoch, active, .. } => {
                self.caught_up(ctx, entries, last_sequence, epoch, active)?;
            }
            Replication::Heartbeat { epoch, last_sequence, .. } => {
                if self.check_epoch(ctx, from, epoch) {
                    self.store_last = self.store_last.max(last_sequence);
                    if self.role == Role::Passive && self.applied_sequence() < self.store_last {
                        self.request_catch_up(ctx, false);
                    }
                }
            }
            Replication::Replicate { epoch, entries, .. } => {
                self.replicate_received(ctx, from, epoch, entries)?;
            }
            Replication::Replicated { through, .. } => {
                if matches!(self.role, Role::Active { .. }) {
                    let applied = self.applied_sequence();
                    let known = self.peer_through.entry(from).or_insert(0);
                    *known = (*known).max(through);
                    let lag = applied.saturating_sub(*known);
                    ctx.sample("replication.lag_events", lag as f64);
                }
            }
            // Store and client messages are not a replica's business.
            Replication::Written { .. }
            | Replication::WriteRejected { .. }
            | Replication::Claim { .. }
            | Replication::Append { .. }
            | Replication::CatchUp { .. } => {}
        }
        Ok(())
    }

    fn write<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        client: ProcessId,
        request: u64,
        events: Vec<A::Event>,
    ) {
        let epoch = match self.role {
            Role::Active { epoch, ready: true } => epoch,
            Role::Active { ready: false, .. } => {
                return self.reject(ctx, client, request, WriteRejection::CatchingUp);
            }
            Role::Passive | Role::Candidate { .. } => {
                let reason = WriteRejection::NotActive { active: self.active };
                return self.reject(ctx, client, request, reason);
            }
        };
        if events.is_empty() {
            return self.reject(ctx, client, request, WriteRejection::Empty);
        }
        if events.len() > self.config.batch_max {
            return self.reject(ctx, client, request, WriteRejection::TooLarge);
        }
        if self.writes.len() >= self.config.pending_writes_max {
            return self.reject(ctx, client, request, WriteRejection::Overloaded);
        }
        let write = self.next_write;
        self.next_write += 1;
        let aggregate = self.aggregate();
        let append = Replication::Append { aggregate, epoch, write, events: events.clone() };
        Self::send(ctx, self.group.store, append);
        let sent_at = ctx.now_local();
        let pending = PendingWrite {
            client,
            request,
            epoch,
            count: events.len(),
            events,
            first_sequence: None,
            applied: 0,
            sent_at,
        };
        self.writes.insert(write, pending);
    }

    fn reject<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        client: ProcessId,
        request: u64,
        reason: WriteRejection,
    ) {
        let aggregate = self.aggregate();
        ctx.trace(Component::Replication, "write_rejected", aggregate, request as i64);
        ctx.count("replication.write_rejected", 1);
        Self::send(ctx, client, Replication::WriteRejected { aggregate, request, reason });
    }

    /// Handles an epoch announced by `from` (in a heartbeat or a stream):
    /// refuses it if stale and fencing is on, steps down or follows if it
    /// is newer. Returns whether the message should be taken.
    fn check_epoch<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        epoch: u64,
    ) -> bool {
        if epoch < self.epoch_seen {
            if self.config.fencing {
                let (aggregate, current) = (self.aggregate(), self.epoch_seen);
                fence(ctx, from, aggregate, epoch, current, self.active, None);
                return false;
            }
            // Without fencing, a stale stream is still applied (entries
            // carry the store's sequence numbers), but it leads nobody.
            return true;
        }
        match self.role {
            Role::Active { epoch: mine, .. } if epoch > mine => {
                self.demote(ctx);
                self.follow(ctx, from, epoch);
            }
            // Two actives of one epoch only happen without fencing; neither
            // yields to the other.
            Role::Active { .. } => {}
            Role::Candidate { epoch: claimed } if epoch < claimed => {
                // The old active is alive, but the claim is out: let the
                // store decide.
                self.epoch_seen = self.epoch_seen.max(epoch);
            }
            Role::Candidate { .. } | Role::Passive => {
                self.role = Role::Passive;
                self.follow(ctx, from, epoch);
            }
        }
        true
    }

    fn follow<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, active: ProcessId, epoch: u64) {
        self.epoch_seen = self.epoch_seen.max(epoch);
        self.active = Some(active);
        self.detector.heard(ctx.now_local());
        self.suspecting = false;
    }

    fn demote<M: Message>(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Role::Active { epoch, .. } = self.role {
            ctx.trace(Component::Replication, "demoted", self.aggregate(), epoch as i64);
            ctx.count("replication.demoted", 1);
            self.role = Role::Passive;
            self.active = None;
            // A fresh timeout, so it does not claim again at once.
            self.detector.heard(ctx.now_local());
        }
    }

    fn claimed<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        epoch: u64,
        entries: Vec<Entry<A::Event>>,
        last_sequence: u64,
    ) -> Result<(), PersistError> {
        match self.role {
            Role::Candidate { epoch: claimed } if claimed == epoch => {
                self.role = Role::Active { epoch, ready: false };
                self.epoch_seen = self.epoch_seen.max(epoch);
                self.active = Some(self.me);
                self.suspecting = false;
                self.claim_sent = None;
                ctx.trace(Component::Replication, "promoted", self.aggregate(), epoch as i64);
                ctx.count("replication.promoted", 1);
            }
            // A repeated answer to a repeated claim.
            Role::Active { epoch: mine, .. } if mine == epoch => {}
            _ => return Ok(()),
        }
        self.store_last = self.store_last.max(last_sequence);
        self.apply_batch(ctx, entries, None)?;
        self.check_ready(ctx);
        self.send_heartbeats(ctx);
        Ok(())
    }

    fn check_ready<M: Carry<Replication<A::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Role::Active { epoch, ready: false } = self.role {
            if self.applied_sequence() >= self.store_last {
                self.role = Role::Active { epoch, ready: true };
            } else {
                self.request_catch_up(ctx, false);
            }
        }
    }

    fn appended<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        epoch: u64,
        write: u64,
        first_sequence: u64,
        last_sequence: u64,
    ) -> Result<(), PersistError> {
        let me = self.me;
        let next = self.applied_sequence() + 1;
        let nothing_ahead = self.ahead.is_empty();
        let Some(pending) = self.writes.get_mut(write) else { return Ok(()) };
        let count = last_sequence.saturating_add(1).saturating_sub(first_sequence);
        if pending.epoch != epoch || count != pending.count as u64 {
            return Ok(());
        }
        if nothing_ahead && first_sequence == next && pending.applied == 0 {
            // The usual case: the write continues the log, so all of it is
            // applied now and the write resolved; its events are needed no
            // more and move into the entries instead of being copied. (Any
            // other case keeps them: a duplicated `Append` is placed twice,
            // and its second answer needs them again.)
            let events = std::mem::take(&mut pending.events);
            let entries = events
                .into_iter()
                .zip(first_sequence..)
                .map(|(event, sequence)| Entry { sequence, epoch, writer: me, write, event })
                .collect();
            self.store_last = self.store_last.max(last_sequence);
            return self.apply_batch(ctx, entries, None);
        }
        for (offset, event) in pending.events.iter().enumerate() {
            let sequence = first_sequence + offset as u64;
            let entry = Entry { sequence, epoch, writer: self.me, write, event: event.clone() };
            self.ahead.insert(sequence, entry);
        }
        self.store_last = self.store_last.max(last_sequence);
        self.drain_ahead(ctx)?;
        if !self.ahead.is_empty() {
            // Someone else's entries sit in between (or an answer is late).
            self.request_catch_up(ctx, false);
        }
        Ok(())
    }

    fn drain_ahead<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
    ) -> Result<(), PersistError> {
        if self.ahead.is_empty() {
            return Ok(());
        }
        let applied = self.applied_sequence();
        self.ahead.retain(|sequence, _| *sequence > applied);
        let mut ready = Vec::new();
        let mut next = applied + 1;
        while let Some(entry) = self.ahead.remove(&next) {
            ready.push(entry);
            next += 1;
        }
        self.apply_batch(ctx, ready, None)
    }

    /// Applies the entries that continue the log (skipping ones already
    /// applied, stopping at a gap), syncs them locally, acknowledges to
    /// `ack_to` once durable, and streams them on when active.
    fn apply_batch<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        entries: Vec<Entry<A::Event>>,
        ack_to: Option<(ProcessId, u64)>,
    ) -> Result<(), PersistError> {
        // Each entry applied moves the log's end on by one, so which ones
        // continue it is known before applying any; the rest are dropped
        // here, and `entries` itself becomes the batch streamed on.
        let mut applied = entries;
        let mut next = self.applied_sequence() + 1;
        let mut gap = false;
        applied.retain(|entry| {
            if gap || entry.sequence < next {
                return false;
            }
            gap = entry.sequence != next;
            next += u64::from(!gap);
            !gap
        });
        // Appended one by one (each is traced before it is resolved), but
        // counted once for the batch: a counter update is a search by name.
        for (appended, entry) in applied.iter().enumerate() {
            let log = self.log.as_mut().expect("started");
            if let Err(error) = log.append_uncounted(ctx, std::slice::from_ref(entry)) {
                if appended > 0 {
                    ctx.count("persistence.appended", appended as u64);
                }
                return Err(error);
            }
            self.state.apply(&entry.event);
            self.epoch_seen = self.epoch_seen.max(entry.epoch);
            self.resolve(ctx, entry);
        }
        if !applied.is_empty() {
            ctx.count("persistence.appended", applied.len() as u64);
        }
        if applied.is_empty() {
            return Ok(());
        }
        self.next_sync_tag += 1;
        let tag = REPLICA_SYNC_TAG_BASE | (self.next_sync_tag & 0xffff_ffff);
        let log = self.log.as_mut().expect("started");
        // Over the bound, skip this sync: the next one covers these entries,
        // and acknowledgements are cumulative.
        if log.sync(ctx, tag).is_ok()
            && let Some((to, epoch)) = ack_to
        {
            self.acks.insert(tag, (to, epoch, log.last_sequence()));
        }
        if let Role::Active { epoch, .. } = self.role {
            let aggregate = self.aggregate();
            let peers = self.peers().count();
            while !applied.is_empty() {
                let rest = applied.split_off(applied.len().min(self.config.batch_max));
                let mut chunk = std::mem::replace(&mut applied, rest);
                // Every peer but the last gets a copy; the last the entries.
                for (sent, peer) in self.peers().enumerate() {
                    let entries =
                        if sent + 1 == peers { std::mem::take(&mut chunk) } else { chunk.clone() };
                    Self::send(ctx, peer, Replication::Replicate { aggregate, epoch, entries });
                }
            }
        }
        Ok(())
    }

    /// Answers the client once every entry of one of our writes is applied.
    fn resolve<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        entry: &Entry<A::Event>,
    ) {
        if entry.writer != self.me {
            return;
        }
        let Some(pending) = self.writes.get_mut(entry.write) else { return };
        if pending.epoch != entry.epoch {
            return;
        }
        let first_sequence = *pending.first_sequence.get_or_insert(entry.sequence);
        pending.applied += 1;
        if pending.applied < pending.count {
            return;
        }
        let pending = self.writes.remove(entry.write).expect("present above");
        let written = Replication::Written {
            aggregate: self.aggregate(),
            request: pending.request,
            epoch: entry.epoch,
            first_sequence,
            last_sequence: entry.sequence,
        };
        ctx.count("replication.written", 1);
        Self::send(ctx, pending.client, written);
    }

    fn fenced<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        epoch: u64,
        current_epoch: u64,
        active: Option<ProcessId>,
        write: Option<u64>,
    ) {
        if let Some(pending) = write.and_then(|write| self.writes.remove(write)) {
            self.reject(ctx, pending.client, pending.request, WriteRejection::Fenced);
        }
        match self.role {
            Role::Active { epoch: mine, .. } if mine == epoch => {
                self.demote(ctx);
                self.active = active;
            }
            Role::Candidate { epoch: claimed } if claimed == epoch => {
                self.role = Role::Passive;
                self.claim_sent = None;
                self.active = active;
                if current_epoch >= claimed {
                    // Someone newer leads: give it time to be heard.
                    self.detector.heard(ctx.now_local());
                    self.suspecting = false;
                }
                // Otherwise the store still hears the old active: keep
                // suspecting (and claiming each tick), and meanwhile follow
                // through the store, since the stream does not get here.
                self.request_catch_up(ctx, false);
            }
            _ => {}
        }
        self.epoch_seen = self.epoch_seen.max(current_epoch);
    }

    fn caught_up<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        entries: Vec<Entry<A::Event>>,
        last_sequence: u64,
        epoch: u64,
        active: Option<ProcessId>,
    ) -> Result<(), PersistError> {
        let before = self.applied_sequence();
        self.store_last = self.store_last.max(last_sequence);
        if epoch > self.epoch_seen || (epoch == self.epoch_seen && self.active.is_none()) {
            if let Role::Active { epoch: mine, .. } = self.role
                && mine < epoch
            {
                self.demote(ctx);
            }
            if self.role == Role::Passive {
                self.active = active;
            }
            self.epoch_seen = self.epoch_seen.max(epoch);
        }
        self.apply_batch(ctx, entries, None)?;
        self.drain_ahead(ctx)?;
        if self.applied_sequence() > before {
            // Progress: the next batch may be asked for at once. Without
            // progress, the tick asks again after the detection timeout,
            // so a store that cannot serve more is not asked in a tight
            // loop (same-node messages take no time at all).
            self.catch_up_sent = None;
        }
        self.check_ready(ctx);
        if self.applied_sequence() < self.store_last {
            self.request_catch_up(ctx, false);
        }
        Ok(())
    }

    fn replicate_received<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: ProcessId,
        epoch: u64,
        entries: Vec<Entry<A::Event>>,
    ) -> Result<(), PersistError> {
        if !self.check_epoch(ctx, from, epoch) {
            return Ok(());
        }
        let Some(first) = entries.first().map(|entry| entry.sequence) else { return Ok(()) };
        let last = entries.last().map_or(first, |entry| entry.sequence);
        self.store_last = self.store_last.max(last);
        let before = self.applied_sequence();
        if first > before + 1 {
            // A gap: an earlier stream message was lost. Ask the store.
            self.request_catch_up(ctx, false);
            return Ok(());
        }
        let ack_to = (!matches!(self.role, Role::Active { .. })).then_some((from, epoch));
        self.apply_batch(ctx, entries, ack_to)?;
        let after = self.applied_sequence();
        if after > before {
            ctx.trace(Component::Replication, "replicated", self.aggregate(), after as i64);
            ctx.count("replication.replicated", after - before);
        } else if let Some((to, epoch)) = ack_to {
            // Nothing new (a duplicate): acknowledge what is durable.
            let through = self.log.as_ref().map_or(0, EventLog::synced_sequence);
            let aggregate = self.aggregate();
            Self::send(ctx, to, Replication::Replicated { aggregate, epoch, through });
        }
        Ok(())
    }

    fn request_catch_up<M: Carry<Replication<A::Event>>>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        force: bool,
    ) {
        let now = ctx.now_local();
        let outstanding =
            self.catch_up_sent.is_some_and(|sent| now < sent.plus(self.config.detection_timeout));
        if outstanding && !force {
            return;
        }
        self.catch_up_sent = Some(now);
        let (aggregate, from_sequence) = (self.aggregate(), self.applied_sequence() + 1);
        Self::send(ctx, self.group.store, Replication::CatchUp { aggregate, from_sequence });
    }

    /// Heartbeats to the passives, and to the store, which refuses claims
    /// against an active it hears.
    fn send_heartbeats<M: Carry<Replication<A::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        if let Role::Active { epoch, .. } = self.role {
            let (aggregate, last_sequence) = (self.aggregate(), self.applied_sequence());
            for peer in self.peers().chain([self.group.store]) {
                Self::send(ctx, peer, Replication::Heartbeat { aggregate, epoch, last_sequence });
            }
        }
    }

    fn tick<M: Carry<Replication<A::Event>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        let now = ctx.now_local();
        let expired: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, pending)| now >= pending.sent_at.plus(self.config.write_timeout))
            .map(|(write, _)| write)
            .collect();
        for write in expired {
            let pending = self.writes.remove(write).expect("listed above");
            self.reject(ctx, pending.client, pending.request, WriteRejection::TimedOut);
        }
        match self.role {
            Role::Active { ready, .. } => {
                self.send_heartbeats(ctx);
                let behind = self.applied_sequence() < self.store_last;
                if !ready || behind || !self.ahead.is_empty() {
                    self.request_catch_up(ctx, false);
                }
            }
            Role::Passive => {
                let bootstrap_due = self.epoch_seen == 0
                    && self.active.is_none()
                    && self.bootstrap_at.is_some_and(|at| now >= at);
                if self.detector.suspects(now) || bootstrap_due {
                    if !self.suspecting {
                        let epoch = self.epoch_seen as i64;
                        ctx.trace(Component::Replication, "suspected", self.aggregate(), epoch);
                        ctx.count("replication.suspected", 1);
                        self.suspecting = true;
                    }
                    let epoch = self.epoch_seen + 1;
                    self.role = Role::Candidate { epoch };
                    self.send_claim(ctx, epoch);
                } else if self.applied_sequence() < self.store_last {
                    self.request_catch_up(ctx, false);
                }
            }
            Role::Candidate { epoch } => {
                let unanswered = self
                    .claim_sent
                    .is_none_or(|sent| now >= sent.plus(self.config.detection_timeout));
                if unanswered {
                    self.send_claim(ctx, epoch);
                }
            }
        }
        ctx.set_timer(self.config.heartbeat_interval, REPLICA_TICK_TAG);
    }

    fn send_claim<M: Carry<Replication<A::Event>>>(&mut self, ctx: &mut Ctx<'_, M>, epoch: u64) {
        self.claim_sent = Some(ctx.now_local());
        let (aggregate, from_sequence) = (self.aggregate(), self.applied_sequence() + 1);
        Self::send(ctx, self.group.store, Replication::Claim { aggregate, epoch, from_sequence });
    }

    fn synced<M: Carry<Replication<A::Event>>>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        let Some(log) = self.log.as_mut() else { return };
        if log.on_synced(ctx, tag).is_none() {
            return;
        }
        if let Some((to, epoch, through)) = self.acks.remove(tag) {
            let aggregate = self.aggregate();
            Self::send(ctx, to, Replication::Replicated { aggregate, epoch, through });
        }
    }
}

impl<A, M> Process<M> for Replica<A>
where
    A: Aggregate + Clone + 'static,
    A::Event: ReplicatedEvent,
    M: Carry<Replication<A::Event>>,
{
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        if self.start(ctx).is_err() {
            ctx.fail("replica: local log unreadable");
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else { return };
        if self.handle(ctx, from, message).is_err() {
            ctx.fail("replica: local log error");
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, _timer: TimerId, tag: u64) {
        if tag == REPLICA_TICK_TAG {
            self.tick(ctx);
        }
    }

    fn on_synced(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        self.synced(ctx, tag);
    }
}

// ----- auditing a trace -----

/// One append a store accepted, as read back from a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcceptedAppend {
    /// When the store accepted it.
    pub time: SimTime,
    /// The store.
    pub store: ProcessId,
    /// The aggregate.
    pub aggregate: u64,
    /// The writer's epoch.
    pub epoch: u64,
    /// The writer.
    pub writer: ProcessId,
}

/// A breach of "at most one writer per aggregate per epoch, and no append
/// from an older epoch once a newer one was accepted".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FencingViolation {
    /// Two writers appended in the same epoch.
    SharedEpoch {
        /// The second writer's append.
        append: AcceptedAppend,
        /// The first writer of that epoch.
        first_writer: ProcessId,
    },
    /// An append from an older epoch came after one from a newer epoch.
    StaleEpoch {
        /// The stale append.
        append: AcceptedAppend,
        /// The newest epoch accepted before it.
        newer_epoch: u64,
    },
}

/// Every append the stores of a run accepted, in the order they accepted
/// them, read from the `appended` / `appended_by` pairs in a trace.
pub fn accepted_appends(records: &[OwnedRecord]) -> Vec<AcceptedAppend> {
    let mut appends = Vec::new();
    let mut open: Option<AcceptedAppend> = None;
    for record in records {
        let TraceEvent::Component { process, component: Component::Replication, kind, key, value } =
            &record.event
        else {
            continue;
        };
        match *kind {
            "appended" => {
                open = Some(AcceptedAppend {
                    time: record.time,
                    store: *process,
                    aggregate: *key,
                    epoch: *value as u64,
                    writer: ProcessId(u32::MAX),
                });
            }
            "appended_by" => {
                if let Some(mut append) = open.take()
                    && append.store == *process
                    && append.aggregate == *key
                {
                    append.writer = ProcessId(*value as u32);
                    appends.push(append);
                }
            }
            _ => {}
        }
    }
    appends
}

/// Checks accepted appends, in order, for the fencing invariant; returns
/// every breach (empty when it held).
pub fn check_fencing(appends: &[AcceptedAppend]) -> Vec<FencingViolation> {
    let mut writers: BTreeMap<(u64, u64), ProcessId> = BTreeMap::new();
    let mut newest: BTreeMap<u64, u64> = BTreeMap::new();
    let mut violations = Vec::new();
    for append in appends {
        let first_writer =
            *writers.entry((append.aggregate, append.epoch)).or_insert(append.writer);
        if first_writer != append.writer {
            violations.push(FencingViolation::SharedEpoch { append: *append, first_writer });
        }
        let newest_epoch = newest.entry(append.aggregate).or_insert(append.epoch);
        if append.epoch < *newest_epoch {
            violations
                .push(FencingViolation::StaleEpoch { append: *append, newer_epoch: *newest_epoch });
        }
        *newest_epoch = (*newest_epoch).max(append.epoch);
    }
    violations
}

#[cfg(test)]
mod tests;
