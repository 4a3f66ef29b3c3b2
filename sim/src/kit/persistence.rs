//! Event logs with fsync semantics, snapshots and replay: the durable
//! memory of an event-sourced aggregate.
//!
//! An aggregate that is event-sourced keeps no table of its current state on
//! disk. It writes the *events* it decided (facts, past tense) to an
//! append-only log, and its state in memory (the "memory image") is the fold
//! of those events. After a crash it replays the log to get that state back
//! (Reactive Microsystems, ch. 4, on event logging and event sourcing). A
//! snapshot of the state every so often bounds how much has to be replayed.
//!
//! [`EventLog`] writes one aggregate's events to the node's durable
//! [storage](crate::Storage) through [`Ctx::append_records`], and makes the
//! node's fsync visible to the user:
//!
//! - [`EventLog::append`] puts events in the page cache and gives them
//!   sequence numbers, contiguous from 1 and kept across restarts. They are
//!   readable at once but **not durable**: a crash of the node loses them.
//! - [`EventLog::sync`] asks for a sync; [`Process::on_synced`] reports its
//!   completion, which the process hands to [`EventLog::on_synced`]. Only then
//!   are the events durable.
//! - [`EventLog::persist`] is both, and is how a command handler should
//!   write. **Reply after the write**: a process answers its caller only in
//!   `on_synced`, once the events are durable, never right after
//!   `append`. A reply sent earlier promises something a crash can take back.
//!
//! Snapshots ([`Snapshot`]) go to a second log of the same aggregate. A
//! snapshot names the sequence number it covers, so replay
//! ([`EventLog::replay`]) loads the newest snapshot and folds only the events
//! after it. Because a sync makes every log of the node durable up to the
//! same instant, a durable snapshot never covers an event that was lost.
//!
//! [`EventSourced`] puts the pieces together for a type implementing
//! [`Aggregate`]: it recovers on start, applies events as it persists them,
//! and snapshots every [`PersistenceConfig::snapshot_interval`] events.
//!
//! Every step is a trace event of [`Component::Persistence`] with the
//! aggregate id as key: `appended` (value: last sequence number),
//! `synced` (value: sequence number now durable), `snapshotted` (value:
//! sequence number covered), `replayed` (value: events replayed) and
//! `rejected` (value: syncs pending when the bound was hit).
//!
//! # Example
//!
//! A counter that persists one event per command, replies after the write,
//! and gets its state back after its node crashes.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use sim::kit::persistence::{Aggregate, EventSourced, PersistenceConfig};
//! use sim::{Ctx, Fault, FaultSchedule, Message, NodeConfig, Process, ProcessId, Seed, Sim,
//!           SimConfig, SimTime};
//!
//! #[derive(Clone, Debug)]
//! struct Add(u64);
//! impl Message for Add {
//!     fn label(&self) -> &'static str { "Add" }
//! }
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Total(u64);
//! impl Aggregate for Total {
//!     type Event = u64;
//!     fn apply(&mut self, event: &u64) { self.0 += event; }
//! }
//!
//! #[derive(Default)]
//! struct Counter { total: Option<EventSourced<Total>>, acknowledged: u64 }
//! impl Process<Add> for Counter {
//!     fn on_start(&mut self, ctx: &mut Ctx<'_, Add>) {
//!         let config = PersistenceConfig::new().snapshot_every(10);
//!         self.total = Some(EventSourced::recover(ctx, "counter", 1, config, Total(0)).unwrap());
//!     }
//!     fn on_message(&mut self, ctx: &mut Ctx<'_, Add>, _from: ProcessId, add: Add) {
//!         let total = self.total.as_mut().unwrap();
//!         let sequence = total.persist(ctx, vec![add.0], 0).unwrap();
//!         assert_eq!(sequence.start(), sequence.end());
//!     }
//!     fn on_synced(&mut self, ctx: &mut Ctx<'_, Add>, tag: u64) {
//!         // The write is durable: this is where a reply would be sent.
//!         if let Some(through) = self.total.as_mut().unwrap().on_synced(ctx, tag) {
//!             self.acknowledged = through;
//!         }
//!     }
//! }
//!
//! let mut sim = Sim::new(SimConfig::new(Seed(1)));
//! let node = sim.add_node(NodeConfig::new("n0"));
//! let counter = sim.spawn(node, "counter", Counter::default);
//! for (i, amount) in [5, 7, 11].into_iter().enumerate() {
//!     sim.post(SimTime::from_nanos(1_000 * (i as u64 + 1)), counter, Add(amount));
//! }
//! sim.schedule_faults(&FaultSchedule::new().window(
//!     SimTime::from_nanos(1_000_000),
//!     SimTime::from_nanos(2_000_000),
//!     Fault::CrashNode { node },
//! ));
//! sim.run();
//! let recovered = sim.process_state::<Counter>(counter).unwrap().total.as_ref().unwrap();
//! assert_eq!(recovered.state().0, 23);
//! assert_eq!(recovered.log().last_sequence(), 3);
//! ```
//!
//! [`Process::on_synced`]: crate::Process::on_synced

use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::storage::LogId;
use crate::trace::Component;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::ops::RangeInclusive;

/// How an event log behaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistenceConfig {
    /// Take a snapshot every this many events (counted from the last
    /// snapshot); `None`: only when asked. Zero is rejected.
    pub snapshot_interval: Option<u64>,
    /// Most syncs awaiting completion at once; a sync asked beyond it is
    /// rejected (traced `rejected`) rather than queued without bound.
    pub pending_syncs_max: usize,
}

/// Syncs in flight allowed by default: far more than a process that waits
/// for its writes ever has, so hitting it means a runaway writer.
const PENDING_SYNCS_MAX_DEFAULT: usize = 1024;

impl PersistenceConfig {
    /// Snapshots only on demand, at most 1024 syncs pending.
    pub fn new() -> PersistenceConfig {
        PersistenceConfig { snapshot_interval: None, pending_syncs_max: PENDING_SYNCS_MAX_DEFAULT }
    }

    /// With a snapshot every `events` events (builder style).
    pub fn snapshot_every(mut self, events: u64) -> PersistenceConfig {
        self.snapshot_interval = Some(events);
        self
    }

    /// Checks the values; errors name the field as `persistence.field`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.snapshot_interval == Some(0) {
            return Err(ConfigError::new(
                "persistence.snapshot_interval",
                0,
                "at least 1 event (or none, for snapshots on demand only)",
            ));
        }
        if self.pending_syncs_max == 0 {
            return Err(ConfigError::new("persistence.pending_syncs_max", 0, "at least 1"));
        }
        Ok(())
    }
}

impl Default for PersistenceConfig {
    fn default() -> PersistenceConfig {
        PersistenceConfig::new()
    }
}

/// State rebuilt by folding events: the memory image of an aggregate.
pub trait Aggregate {
    /// The facts it is built from.
    type Event;
    /// Folds one event into the state. Must be deterministic: replaying the
    /// same events must give the same state.
    fn apply(&mut self, event: &Self::Event);
}

/// A saved state and the last event sequence number it includes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot<S> {
    /// The state includes every event up to and including this one.
    pub sequence: u64,
    /// The state.
    pub state: S,
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered<S> {
    /// The rebuilt state.
    pub state: S,
    /// The snapshot it started from, if any.
    pub snapshot_sequence: Option<u64>,
    /// Events folded after the snapshot (or from the start).
    pub events_replayed: u64,
    /// The last sequence number in the log.
    pub last_sequence: u64,
}

/// Why an event log operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PersistError {
    /// The configuration was invalid.
    Config(ConfigError),
    /// An event or a state could not be encoded.
    Encode {
        /// The serializer's message.
        message: String,
    },
    /// A stored record could not be decoded.
    Decode {
        /// The log.
        log: String,
        /// Position of the record in the log, from 0.
        index: usize,
        /// The deserializer's message.
        message: String,
    },
    /// A record's sequence number is not the one its position requires:
    /// the log is not contiguous.
    Corrupt {
        /// The log.
        log: String,
        /// The sequence number expected there.
        expected: u64,
        /// The sequence number found.
        found: u64,
    },
    /// Too many syncs were already awaiting completion.
    TooManyPendingSyncs {
        /// The bound ([`PersistenceConfig::pending_syncs_max`]).
        max: usize,
    },
}

impl fmt::Display for PersistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistError::Config(error) => write!(f, "invalid configuration: {error}"),
            PersistError::Encode { message } => write!(f, "cannot encode: {message}"),
            PersistError::Decode { log, index, message } => {
                write!(f, "cannot decode record {index} of log {log}: {message}")
            }
            PersistError::Corrupt { log, expected, found } => {
                write!(
                    f,
                    "log {log} is not contiguous: expected sequence {expected}, found {found}"
                )
            }
            PersistError::TooManyPendingSyncs { max } => {
                write!(f, "{max} syncs already pending")
            }
        }
    }
}

impl std::error::Error for PersistError {}

/// The append-only event log of one aggregate on the node's storage.
///
/// It is volatile bookkeeping over durable logs: a restarted process opens
/// it again with [`EventLog::open`], which finds the sequence numbers where
/// they were.
#[derive(Clone, Debug)]
pub struct EventLog<E> {
    aggregate: u64,
    events_log: String,
    snapshots_log: String,
    config: PersistenceConfig,
    last_sequence: u64,
    synced_sequence: u64,
    /// Syncs asked for and not yet reported, oldest first: (tag, the last
    /// sequence number they cover).
    pending_syncs: VecDeque<(u64, u64)>,
    /// Sequence number covered by the newest snapshot (0 if none).
    snapshot_sequence: u64,
    /// Where the events log sits in the node's storage, once an append has
    /// found it: later appends go straight there (see [`LogId`]).
    events_log_id: Option<LogId>,
    event: PhantomData<fn() -> E>,
}

/// How an event is stored: with its sequence number, so a log can be
/// checked for gaps and read from a position.
#[derive(Serialize)]
struct StoredEvent<'a, E> {
    sequence: u64,
    event: &'a E,
}

#[derive(Deserialize)]
struct LoadedEvent<E> {
    sequence: u64,
    event: E,
}

/// The sequence number alone, to find where a log ends without decoding
/// its content (serde ignores the other fields).
#[derive(Deserialize)]
struct SequenceOnly {
    sequence: u64,
}

impl<E: Serialize + DeserializeOwned> EventLog<E> {
    /// Opens the log of `aggregate` under `namespace` (two logs on the node:
    /// `namespace/aggregate/events` and `namespace/aggregate/snapshots`),
    /// positioned after its last record.
    ///
    /// After a crash of the node, everything found is durable. After a
    /// restart of the process alone, the tail may still be unsynced;
    /// [`EventLog::synced_sequence`] starts at what the node's storage
    /// reports as durable.
    pub fn open<M: Message>(
        ctx: &Ctx<'_, M>,
        namespace: &str,
        aggregate: u64,
        config: PersistenceConfig,
    ) -> Result<EventLog<E>, PersistError> {
        config.validate().map_err(PersistError::Config)?;
        let events_log = format!("{namespace}/{aggregate}/events");
        let snapshots_log = format!("{namespace}/{aggregate}/snapshots");
        let records = ctx.read_log(&events_log);
        let last_sequence = match records.last() {
            None => 0,
            Some(record) => {
                let index = records.len() - 1;
                let found = decode::<SequenceOnly>(&events_log, index, record)?.sequence;
                let expected = records.len() as u64;
                if found != expected {
                    return Err(PersistError::Corrupt { log: events_log, expected, found });
                }
                found
            }
        };
        // Record i holds sequence i + 1, so the durable count is the durable
        // sequence.
        let synced_sequence = ctx.synced_len(&events_log) as u64;
        let snapshot_sequence =
            newest_snapshot_position(ctx.read_log(&snapshots_log), &snapshots_log, last_sequence)?
                .map_or(0, |(_, sequence)| sequence);
        Ok(EventLog {
            aggregate,
            events_log,
            snapshots_log,
            config,
            last_sequence,
            synced_sequence,
            pending_syncs: VecDeque::new(),
            snapshot_sequence,
            events_log_id: None,
            event: PhantomData,
        })
    }

    /// The aggregate this log belongs to.
    pub fn aggregate(&self) -> u64 {
        self.aggregate
    }

    /// The name of the storage log holding the events.
    pub fn events_log_name(&self) -> &str {
        &self.events_log
    }

    /// The name of the storage log holding the snapshots.
    pub fn snapshots_log_name(&self) -> &str {
        &self.snapshots_log
    }

    /// The last sequence number appended (durable or not); 0 if none.
    pub fn last_sequence(&self) -> u64 {
        self.last_sequence
    }

    /// The last sequence number known to be durable.
    pub fn synced_sequence(&self) -> u64 {
        self.synced_sequence
    }

    /// Syncs asked for and not yet reported.
    pub fn pending_syncs(&self) -> usize {
        self.pending_syncs.len()
    }

    /// The sequence number covered by the newest snapshot (0 if none).
    pub fn snapshot_sequence(&self) -> u64 {
        self.snapshot_sequence
    }

    /// Whether [`PersistenceConfig::snapshot_interval`] events have been
    /// appended since the last snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.config
            .snapshot_interval
            .is_some_and(|interval| self.last_sequence - self.snapshot_sequence >= interval)
    }

    /// Appends `events` to the page cache; returns their sequence numbers
    /// (empty if `events` is). They are readable at once and durable only
    /// once a later sync completes.
    pub fn append<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        events: &[E],
    ) -> Result<RangeInclusive<u64>, PersistError> {
        let sequences = self.append_uncounted(ctx, events)?;
        ctx.count("persistence.appended", events.len() as u64);
        Ok(sequences)
    }

    /// [`EventLog::append`] without adding to the `persistence.appended`
    /// counter, for a caller that appends one event at a time (to trace
    /// each) and counts the batch once afterwards.
    pub(crate) fn append_uncounted<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        events: &[E],
    ) -> Result<RangeInclusive<u64>, PersistError> {
        let first = self.last_sequence + 1;
        if events.is_empty() {
            return Ok(first..=self.last_sequence);
        }
        // Encoded straight onto the storage log; all or nothing, so a
        // failure appends nothing.
        let id = ctx.append_records(
            &self.events_log,
            self.events_log_id,
            events.len(),
            |offset, bytes| {
                let sequence = first + offset as u64;
                encode_into(&StoredEvent { sequence, event: &events[offset] }, bytes)
            },
        )?;
        self.events_log_id = Some(id);
        self.last_sequence += events.len() as u64;
        ctx.trace(Component::Persistence, "appended", self.aggregate, self.last_sequence as i64);
        Ok(first..=self.last_sequence)
    }

    /// Asks the node to make everything appended so far durable;
    /// [`Process::on_synced`](crate::Process::on_synced) follows with `tag`,
    /// to be handed to [`EventLog::on_synced`].
    pub fn sync<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) -> Result<(), PersistError> {
        self.join_sync(ctx, tag)?;
        ctx.sync(tag);
        Ok(())
    }

    /// Counts a sync that the caller asks for itself, with `tag`, as
    /// covering this log's appends so far. A sync makes every log of the
    /// node durable, so several logs can share one: call this on each but
    /// the last, then [`EventLog::sync`] on the last.
    pub fn join_sync<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        tag: u64,
    ) -> Result<(), PersistError> {
        self.check_sync_room(ctx)?;
        self.pending_syncs.push_back((tag, self.last_sequence));
        Ok(())
    }

    /// Fails, and traces `rejected`, if another sync would exceed the bound.
    fn check_sync_room<M: Message>(&self, ctx: &mut Ctx<'_, M>) -> Result<(), PersistError> {
        if self.pending_syncs.len() < self.config.pending_syncs_max {
            return Ok(());
        }
        ctx.trace(
            Component::Persistence,
            "rejected",
            self.aggregate,
            self.pending_syncs.len() as i64,
        );
        ctx.count("persistence.rejected", 1);
        Err(PersistError::TooManyPendingSyncs { max: self.config.pending_syncs_max })
    }

    /// Appends `events` and syncs them with `tag`: the way to write when a
    /// reply depends on it. Reply in `on_synced`, after the write.
    pub fn persist<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        events: &[E],
        tag: u64,
    ) -> Result<RangeInclusive<u64>, PersistError> {
        // Refuse before appending, so a rejected persist leaves nothing
        // behind that a later sync would make durable unasked.
        self.check_sync_room(ctx)?;
        let sequences = self.append(ctx, events)?;
        self.sync(ctx, tag)?;
        Ok(sequences)
    }

    /// Hands over a completed sync. Returns the last sequence number it made
    /// durable if `tag` is one of this log's syncs, `None` otherwise (the
    /// tag belongs to someone else).
    pub fn on_synced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) -> Option<u64> {
        let position = self.pending_syncs.iter().position(|(pending, _)| *pending == tag)?;
        let (_, through) = self.pending_syncs.remove(position).expect("position is in range");
        // Syncs can complete out of order; a later one covers every earlier
        // append, so durability only grows.
        self.synced_sequence = self.synced_sequence.max(through);
        ctx.trace(Component::Persistence, "synced", self.aggregate, through as i64);
        ctx.count("persistence.synced", 1);
        Some(through)
    }

    /// Saves `state` as covering every event appended so far, in the
    /// snapshot log; returns the sequence number it covers. Like an event,
    /// it is durable only after the next sync.
    pub fn snapshot<M: Message, S: Serialize>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        state: &S,
    ) -> Result<u64, PersistError> {
        #[derive(Serialize)]
        struct StoredSnapshot<'a, S> {
            sequence: u64,
            state: &'a S,
        }
        let sequence = self.last_sequence;
        ctx.append_records(&self.snapshots_log, None, 1, |_, bytes| {
            encode_into(&StoredSnapshot { sequence, state }, bytes)
        })?;
        self.snapshot_sequence = sequence;
        ctx.trace(Component::Persistence, "snapshotted", self.aggregate, sequence as i64);
        ctx.count("persistence.snapshotted", 1);
        Ok(sequence)
    }

    /// Up to `max` events from `from_sequence` on (1 is the first), with
    /// their sequence numbers, durable or not.
    pub fn read<M: Message>(
        &self,
        ctx: &Ctx<'_, M>,
        from_sequence: u64,
        max: usize,
    ) -> Result<Vec<(u64, E)>, PersistError> {
        let records = ctx.read_log(&self.events_log);
        let start = from_sequence.max(1) as usize - 1;
        let mut events = Vec::new();
        for (index, record) in records.iter().enumerate().skip(start).take(max) {
            events.push(self.decode_event(index, record)?);
        }
        Ok(events)
    }

    /// The newest snapshot that covers no more than the log holds.
    pub fn latest_snapshot<M: Message, S: DeserializeOwned>(
        &self,
        ctx: &Ctx<'_, M>,
    ) -> Result<Option<Snapshot<S>>, PersistError> {
        let records = ctx.read_log(&self.snapshots_log);
        match newest_snapshot_position(records, &self.snapshots_log, self.last_sequence)? {
            None => Ok(None),
            Some((index, _)) => {
                let record = records.get(index).expect("the position was found in these records");
                decode(&self.snapshots_log, index, record).map(Some)
            }
        }
    }

    /// Rebuilds state: the newest snapshot (or `initial` if there is none),
    /// then every event after it, folded with `fold`. Traced `replayed` with
    /// the number of events folded.
    pub fn replay<M: Message, S: DeserializeOwned>(
        &self,
        ctx: &mut Ctx<'_, M>,
        initial: S,
        fold: impl FnMut(&mut S, &E),
    ) -> Result<Recovered<S>, PersistError> {
        let (state, snapshot_sequence) = match self.latest_snapshot::<M, S>(ctx)? {
            Some(snapshot) => (snapshot.state, Some(snapshot.sequence)),
            None => (initial, None),
        };
        self.fold_from(ctx, state, snapshot_sequence, fold)
    }

    /// Rebuilds state from `initial` and every event, ignoring snapshots.
    pub fn replay_all<M: Message, S>(
        &self,
        ctx: &mut Ctx<'_, M>,
        initial: S,
        fold: impl FnMut(&mut S, &E),
    ) -> Result<Recovered<S>, PersistError> {
        self.fold_from(ctx, initial, None, fold)
    }

    fn fold_from<M: Message, S>(
        &self,
        ctx: &mut Ctx<'_, M>,
        mut state: S,
        snapshot_sequence: Option<u64>,
        mut fold: impl FnMut(&mut S, &E),
    ) -> Result<Recovered<S>, PersistError> {
        let start = snapshot_sequence.unwrap_or(0);
        let records = ctx.read_log(&self.events_log);
        let mut events_replayed = 0;
        for (index, record) in records.iter().enumerate().skip(start as usize) {
            let (_, event) = self.decode_event(index, record)?;
            fold(&mut state, &event);
            events_replayed += 1;
        }
        ctx.trace(Component::Persistence, "replayed", self.aggregate, events_replayed as i64);
        ctx.count("persistence.replayed", events_replayed);
        Ok(Recovered {
            state,
            snapshot_sequence,
            events_replayed,
            last_sequence: self.last_sequence,
        })
    }

    fn decode_event(&self, index: usize, record: &[u8]) -> Result<(u64, E), PersistError> {
        let loaded: LoadedEvent<E> = decode(&self.events_log, index, record)?;
        let expected = index as u64 + 1;
        if loaded.sequence != expected {
            return Err(PersistError::Corrupt {
                log: self.events_log.clone(),
                expected,
                found: loaded.sequence,
            });
        }
        Ok((loaded.sequence, loaded.event))
    }
}

/// Position and sequence number of the newest snapshot that covers at most
/// `last_sequence` events (a snapshot further ahead could only come from a
/// log that lost events it covers, which a shared sync rules out; it is
/// skipped rather than trusted).
fn newest_snapshot_position(
    records: crate::storage::Records<'_>,
    log: &str,
    last_sequence: u64,
) -> Result<Option<(usize, u64)>, PersistError> {
    for (index, record) in records.iter().enumerate().rev() {
        let sequence = decode::<SequenceOnly>(log, index, record)?.sequence;
        if sequence <= last_sequence {
            return Ok(Some((index, sequence)));
        }
    }
    Ok(None)
}

// Records are postcard: compact, schema-driven binary through serde. The
// logs are read back only by the types that wrote them, so a
// self-describing format (JSON, as first written) bought nothing but cost:
// encoding JSON was several per cent of a busy microsystem's run. A record whose
// leading fields match (`SequenceOnly`) decodes from the front of a longer
// one, since postcard ignores trailing bytes.

/// Decodes record `index` of the event log `log` as written by
/// [`EventLog::append`]: its sequence number and event. For reading a log
/// from outside the process that owns it (reports, tests).
pub fn decode_stored_event<E: DeserializeOwned>(
    log: &str,
    index: usize,
    record: &[u8],
) -> Result<(u64, E), PersistError> {
    let loaded: LoadedEvent<E> = decode(log, index, record)?;
    Ok((loaded.sequence, loaded.event))
}

/// Encodes `value` onto the end of `bytes` (the same bytes as
/// `postcard::to_extend`, only cheaper).
fn encode_into<T: Serialize>(value: &T, bytes: &mut Vec<u8>) -> Result<(), PersistError> {
    postcard_onto(value, bytes).map_err(|error| PersistError::Encode { message: error.to_string() })
}

/// Encodes `value` in postcard onto the end of `bytes`.
pub(crate) fn postcard_onto<T: Serialize + ?Sized>(
    value: &T,
    bytes: &mut Vec<u8>,
) -> postcard::Result<()> {
    postcard::serialize_with_flavor(value, VecTail(bytes))
}

/// A postcard output writing straight onto the end of a `Vec`. postcard's
/// own `ExtendFlavor` goes through `Extend`, which made every varint (most
/// fields of a record, one to three bytes each) a call to `memmove`: a few
/// per cent of a busy microsystem's run.
struct VecTail<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for VecTail<'_> {
    type Output = ();

    fn try_push(&mut self, byte: u8) -> postcard::Result<()> {
        self.0.push(byte);
        Ok(())
    }

    fn try_extend(&mut self, bytes: &[u8]) -> postcard::Result<()> {
        // Varints are at most ten bytes: pushed one by one, they cost less
        // than a call to copy them.
        if bytes.len() <= 10 {
            self.0.reserve(bytes.len());
            for byte in bytes {
                self.0.push(*byte);
            }
        } else {
            self.0.extend_from_slice(bytes);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

fn decode<T: DeserializeOwned>(log: &str, index: usize, record: &[u8]) -> Result<T, PersistError> {
    postcard::from_bytes(record).map_err(|error| PersistError::Decode {
        log: log.to_string(),
        index,
        message: error.to_string(),
    })
}

/// An [`Aggregate`] with its event log: recovered on start, updated as it
/// persists, snapshotted every [`PersistenceConfig::snapshot_interval`]
/// events.
///
/// Events are applied to the state as soon as they are appended, before
/// they are durable. That is safe as long as replies wait for the write:
/// syncs are cumulative, so an event is durable only if every earlier one
/// is, and a crash that loses an event loses the state that saw it too.
#[derive(Clone, Debug)]
pub struct EventSourced<A: Aggregate> {
    state: A,
    log: EventLog<A::Event>,
}

impl<A> EventSourced<A>
where
    A: Aggregate + Serialize + DeserializeOwned,
    A::Event: Serialize + DeserializeOwned,
{
    /// Opens the log of `aggregate` and rebuilds the state from the newest
    /// snapshot and the events after it (from `initial` if there is no
    /// snapshot).
    pub fn recover<M: Message>(
        ctx: &mut Ctx<'_, M>,
        namespace: &str,
        aggregate: u64,
        config: PersistenceConfig,
        initial: A,
    ) -> Result<EventSourced<A>, PersistError> {
        let log = EventLog::open(ctx, namespace, aggregate, config)?;
        let recovered = log.replay(ctx, initial, |state: &mut A, event| state.apply(event))?;
        Ok(EventSourced { state: recovered.state, log })
    }

    /// The state: the fold of every event appended so far.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// The underlying log.
    pub fn log(&self) -> &EventLog<A::Event> {
        &self.log
    }

    /// Appends `events`, applies them, snapshots if one is due, and syncs
    /// with `tag`. Reply to the caller when [`EventSourced::on_synced`]
    /// reports the sync.
    pub fn persist<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        events: Vec<A::Event>,
        tag: u64,
    ) -> Result<RangeInclusive<u64>, PersistError> {
        self.log.check_sync_room(ctx)?;
        let sequences = self.log.append(ctx, &events)?;
        for event in &events {
            self.state.apply(event);
        }
        if self.log.snapshot_due() {
            self.log.snapshot(ctx, &self.state)?;
        }
        self.log.sync(ctx, tag)?;
        Ok(sequences)
    }

    /// Saves a snapshot of the state now (durable after the next sync).
    pub fn snapshot<M: Message>(&mut self, ctx: &mut Ctx<'_, M>) -> Result<u64, PersistError> {
        self.log.snapshot(ctx, &self.state)
    }

    /// Hands over a completed sync; see [`EventLog::on_synced`].
    pub fn on_synced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) -> Option<u64> {
        self.log.on_synced(ctx, tag)
    }
}

#[cfg(test)]
mod tests;
