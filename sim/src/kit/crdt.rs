//! Convergent replicated data types (state-based CRDTs), and a gossiping
//! [`Replica`] process that spreads them.
//!
//! Replicas of a CRDT accept updates locally, without coordinating with
//! anyone, and exchange their whole state from time to time. Merging two
//! states is a *join*: commutative, associative and idempotent (what
//! DOMAIN.md calls ACID 2.0), so it does not matter in which order states
//! arrive, how often, or through which path: once every replica has
//! (transitively) seen every update, they all hold the same value. This is
//! the eventual consistency between services that Reactive Microsystems
//! (ch. 6, on the space between services) contrasts with coordination;
//! none of it depends on clocks, except the one type built to show why it
//! should not:
//!
//! - [`GCounter`]: a grow-only counter, one count per replica, merged by
//!   taking the larger count of each replica.
//! - [`PNCounter`]: a counter that also goes down: two grow-only counters,
//!   one of increments and one of decrements.
//! - [`OrSet`]: an observed-remove set in which a concurrent add wins over
//!   a remove. Each add is tagged with a unique [`Dot`] (replica, counter);
//!   a remove deletes only the tags it has seen, so an add it has not seen
//!   survives the merge.
//! - [`LwwRegister`]: a last-writer-wins register whose "last" is decided
//!   by the writer's wall clock ([`LocalTime`], the node's skewed clock),
//!   the replica id breaking ties. With skewed clocks a later write can
//!   carry an earlier stamp and be silently discarded: a *lost update*. The
//!   register tells a write discarded by one its writer had seen
//!   (superseded, fine) from a write discarded by one that never saw it
//!   (lost), and reports the latter as [`LostWrite`].
//!
//! Each type is plain data with a pure `merge` and value queries, and
//! implements [`Crdt`], through which the [`Replica`] process applies
//! updates and merges gossiped states, reporting as [`Component::Crdt`]
//! trace events: `update_applied`, `merged`, `write_lost` and `gossiped`.
//!
//! A replica's state is volatile: a replica that restarts empty must come
//! back under a new [`ReplicaId`] (or recover its state from storage),
//! otherwise its fresh counts and tags collide with the old ones its peers
//! still hold.
//!
//! ```
//! use sim::kit::crdt::{GCounter, LwwRegister, ReplicaId};
//! use sim::LocalTime;
//!
//! // Two replicas count on their own, then exchange states in any order.
//! let (a, b) = (ReplicaId(0), ReplicaId(1));
//! let mut at_a = GCounter::new();
//! let mut at_b = GCounter::new();
//! at_a.increment(a, 2);
//! at_b.increment(b, 3);
//! let snapshot_of_a = at_a.clone();
//! at_a.merge(&at_b);
//! at_b.merge(&snapshot_of_a);
//! at_b.merge(&snapshot_of_a); // a duplicate changes nothing
//! assert_eq!((at_a.value(), at_b.value()), (5, 5));
//!
//! // Last writer wins by wall clock: B writes 100 ms after A in real time,
//! // but B's clock is 300 ms behind, so B's write is the one discarded.
//! let mut register_a = LwwRegister::new();
//! let mut register_b = LwwRegister::new();
//! register_a.set(a, LocalTime(1_000_000_000), "from A");
//! register_b.set(b, LocalTime(800_000_000), "from B");
//! let outcome = register_b.merge(&register_a);
//! assert_eq!(register_b.value(), Some(&"from A"));
//! assert_eq!(outcome.write_lost.unwrap().lost.replica, b);
//! ```

use crate::clock::LocalTime;
use crate::ids::{ProcessId, TimerId};
use crate::kit::{Carry, ConfigError};
use crate::process::{Ctx, Message, Process};
use crate::time::SimDuration;
use crate::trace::Component;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A replica of a CRDT: whose counts, tags and writes are whose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(pub u32);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replica{}", self.0)
    }
}

/// A process's id as a replica id (for one replica per process that never
/// loses its state).
impl From<ProcessId> for ReplicaId {
    fn from(process: ProcessId) -> ReplicaId {
        ReplicaId(process.0)
    }
}

/// What an update or a merge did to a replica's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the state changed.
    pub changed: bool,
    /// A write that was discarded without the winning write having seen
    /// it: a lost update (only [`LwwRegister`] loses writes).
    pub write_lost: Option<LostWrite>,
}

impl Outcome {
    fn changed(changed: bool) -> Outcome {
        Outcome { changed, write_lost: None }
    }
}

/// A convergent replicated data type as a [`Replica`] drives it.
pub trait Crdt: Clone + fmt::Debug + PartialEq + 'static {
    /// A local update, e.g. an increment.
    type Update: Clone + fmt::Debug + PartialEq + 'static;

    /// Applies a local update made by `replica` when its node's clock read
    /// `now` (only clock-based types use `now`).
    fn apply_update(
        &mut self,
        replica: ReplicaId,
        now: LocalTime,
        update: &Self::Update,
    ) -> Outcome;

    /// Joins `other`'s state into this one.
    fn merge_state(&mut self, other: &Self) -> Outcome;
}

// ---------------------------------------------------------------------------
// Counters

/// A grow-only counter: one count per replica; the value is their sum.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GCounter {
    /// Never holds a zero, so equal counters are equal maps.
    counts: BTreeMap<ReplicaId, u64>,
}

impl GCounter {
    /// A counter at zero.
    pub fn new() -> GCounter {
        GCounter::default()
    }

    /// Adds `amount` to `replica`'s own count (saturating).
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) {
        if amount > 0 {
            let count = self.counts.entry(replica).or_insert(0);
            *count = count.saturating_add(amount);
        }
    }

    /// The counter's value: the sum of every replica's count (saturating).
    pub fn value(&self) -> u64 {
        self.counts.values().fold(0u64, |sum, count| sum.saturating_add(*count))
    }

    /// `replica`'s own count.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }

    /// Joins `other` into this counter: each replica's count becomes the
    /// larger of the two. Returns whether this counter changed.
    pub fn merge(&mut self, other: &GCounter) -> bool {
        let mut changed = false;
        for (&replica, &count) in &other.counts {
            let mine = self.counts.entry(replica).or_insert(0);
            if count > *mine {
                *mine = count;
                changed = true;
            }
        }
        changed
    }
}

impl Crdt for GCounter {
    /// The amount to add.
    type Update = u64;

    fn apply_update(&mut self, replica: ReplicaId, _now: LocalTime, amount: &u64) -> Outcome {
        self.increment(replica, *amount);
        Outcome::changed(*amount > 0)
    }

    fn merge_state(&mut self, other: &GCounter) -> Outcome {
        Outcome::changed(self.merge(other))
    }
}

/// A counter that goes up and down: increments and decrements kept as two
/// grow-only counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    increments: GCounter,
    decrements: GCounter,
}

impl PNCounter {
    /// A counter at zero.
    pub fn new() -> PNCounter {
        PNCounter::default()
    }

    /// Adds `amount` on behalf of `replica`.
    pub fn increment(&mut self, replica: ReplicaId, amount: u64) {
        self.increments.increment(replica, amount);
    }

    /// Subtracts `amount` on behalf of `replica`.
    pub fn decrement(&mut self, replica: ReplicaId, amount: u64) {
        self.decrements.increment(replica, amount);
    }

    /// Increments minus decrements, clamped to the range of `i64`.
    pub fn value(&self) -> i64 {
        let value = i128::from(self.increments.value()) - i128::from(self.decrements.value());
        value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Joins `other` into this counter. Returns whether it changed.
    pub fn merge(&mut self, other: &PNCounter) -> bool {
        let up = self.increments.merge(&other.increments);
        let down = self.decrements.merge(&other.decrements);
        up || down
    }
}

impl Crdt for PNCounter {
    /// The amount to add; negative subtracts.
    type Update = i64;

    fn apply_update(&mut self, replica: ReplicaId, _now: LocalTime, amount: &i64) -> Outcome {
        if *amount >= 0 {
            self.increment(replica, amount.unsigned_abs());
        } else {
            self.decrement(replica, amount.unsigned_abs());
        }
        Outcome::changed(*amount != 0)
    }

    fn merge_state(&mut self, other: &PNCounter) -> Outcome {
        Outcome::changed(self.merge(other))
    }
}

// ---------------------------------------------------------------------------
// Observed-remove set

/// The unique tag of one add: the replica that made it and its count of
/// adds so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    /// The replica that added.
    pub replica: ReplicaId,
    /// That replica's add counter, from 1.
    pub counter: u64,
}

/// An update to an [`OrSet`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrSetUpdate<T> {
    /// Add the element (with a fresh tag).
    Add(T),
    /// Remove the element (every tag of it seen so far).
    Remove(T),
}

/// An observed-remove set where a concurrent add wins over a remove
/// (the optimised OR-Set of Bieniusa et al., 2012).
///
/// Each present element keeps the tags ([`Dot`]s) of the adds that put it
/// there, and the set keeps a version vector of every tag it has seen. A
/// remove forgets an element's tags but not the version vector, so a merge
/// can tell "removed here" (seen, now absent) from "not yet seen here";
/// removes leave no tombstones behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrSet<T: Ord> {
    /// Present elements and their tags; never an empty tag set.
    entries: BTreeMap<T, BTreeSet<Dot>>,
    /// The largest add counter seen per replica; every tag at or below it
    /// has been seen (adds are merged as whole states, so in order).
    context: BTreeMap<ReplicaId, u64>,
}

impl<T: Ord> Default for OrSet<T> {
    fn default() -> OrSet<T> {
        OrSet { entries: BTreeMap::new(), context: BTreeMap::new() }
    }
}

impl<T: Ord + Clone> OrSet<T> {
    /// An empty set.
    pub fn new() -> OrSet<T> {
        OrSet::default()
    }

    /// Adds `value` on behalf of `replica`, with a fresh tag (returned).
    /// Tags of earlier adds of `value` are replaced: the new one covers
    /// them.
    pub fn add(&mut self, replica: ReplicaId, value: T) -> Dot {
        let counter = self.context.entry(replica).or_insert(0);
        *counter += 1;
        let dot = Dot { replica, counter: *counter };
        self.entries.insert(value, BTreeSet::from([dot]));
        dot
    }

    /// Removes `value` as far as this replica has seen it added; adds it has
    /// not seen yet survive. Returns whether it was present.
    pub fn remove(&mut self, value: &T) -> bool {
        self.entries.remove(value).is_some()
    }

    /// Whether `value` is present.
    pub fn contains(&self, value: &T) -> bool {
        self.entries.contains_key(value)
    }

    /// The present elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.entries.keys()
    }

    /// How many elements are present.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no element is present.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The present elements as a set.
    pub fn value(&self) -> BTreeSet<T> {
        self.entries.keys().cloned().collect()
    }

    /// Joins `other` into this set. A tag survives if both sides have it,
    /// or if one side has it and the other has never seen it; a tag one
    /// side has seen and dropped was removed there. Returns whether this
    /// set changed.
    pub fn merge(&mut self, other: &OrSet<T>) -> bool {
        let empty = BTreeSet::new();
        let mut merged: BTreeMap<T, BTreeSet<Dot>> = BTreeMap::new();
        for (value, mine) in &self.entries {
            let theirs = other.entries.get(value).unwrap_or(&empty);
            let kept = join_dots(mine, &self.context, theirs, &other.context);
            if !kept.is_empty() {
                merged.insert(value.clone(), kept);
            }
        }
        for (value, theirs) in &other.entries {
            if !self.entries.contains_key(value) {
                let kept = join_dots(&empty, &self.context, theirs, &other.context);
                if !kept.is_empty() {
                    merged.insert(value.clone(), kept);
                }
            }
        }
        let mut changed = merged != self.entries;
        self.entries = merged;
        for (&replica, &counter) in &other.context {
            let mine = self.context.entry(replica).or_insert(0);
            if counter > *mine {
                *mine = counter;
                changed = true;
            }
        }
        changed
    }
}

/// The tags of one element that survive a merge.
fn join_dots(
    mine: &BTreeSet<Dot>,
    my_context: &BTreeMap<ReplicaId, u64>,
    theirs: &BTreeSet<Dot>,
    their_context: &BTreeMap<ReplicaId, u64>,
) -> BTreeSet<Dot> {
    let seen = |context: &BTreeMap<ReplicaId, u64>, dot: &Dot| {
        context.get(&dot.replica).is_some_and(|&counter| counter >= dot.counter)
    };
    let from_mine = mine.iter().filter(|dot| theirs.contains(dot) || !seen(their_context, dot));
    let from_theirs = theirs.iter().filter(|dot| !seen(my_context, dot));
    from_mine.chain(from_theirs).copied().collect()
}

impl<T: Ord + Clone + fmt::Debug + 'static> Crdt for OrSet<T> {
    type Update = OrSetUpdate<T>;

    fn apply_update(
        &mut self,
        replica: ReplicaId,
        _now: LocalTime,
        update: &OrSetUpdate<T>,
    ) -> Outcome {
        match update {
            OrSetUpdate::Add(value) => {
                self.add(replica, value.clone());
                Outcome::changed(true)
            }
            OrSetUpdate::Remove(value) => Outcome::changed(self.remove(value)),
        }
    }

    fn merge_state(&mut self, other: &OrSet<T>) -> Outcome {
        Outcome::changed(self.merge(other))
    }
}

// ---------------------------------------------------------------------------
// Last-writer-wins register

/// The stamp of one write to an [`LwwRegister`]; the larger stamp wins.
/// Ordered by the writer's clock reading, then replica, then the writer's
/// own write count (so stamps are unique even when a clock stands still).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LwwStamp {
    /// The writer's node clock when it wrote (skewed, not global time).
    pub time: LocalTime,
    /// The writer.
    pub replica: ReplicaId,
    /// The writer's count of writes, this one included.
    pub write: u64,
}

/// A write discarded by last-writer-wins although the winning write had
/// not seen it: the update is lost, whichever of the two happened later in
/// real time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostWrite {
    /// The discarded write.
    pub lost: LwwStamp,
    /// The write kept instead.
    pub winner: LwwStamp,
}

/// One write with what its writer had seen when it wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Write<T> {
    stamp: LwwStamp,
    value: T,
    /// Writes seen by the writer per replica (a version vector), this one
    /// included.
    seen: BTreeMap<ReplicaId, u64>,
}

/// A register holding the value of the write with the largest
/// [`LwwStamp`], i.e. the latest by the writers' own clocks.
///
/// Alongside the value it keeps a version vector of all writes it has
/// seen, so it can tell a lost update from a superseded value; that
/// bookkeeping never changes which value wins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LwwRegister<T> {
    current: Option<Write<T>>,
    seen: BTreeMap<ReplicaId, u64>,
}

impl<T> Default for LwwRegister<T> {
    fn default() -> LwwRegister<T> {
        LwwRegister { current: None, seen: BTreeMap::new() }
    }
}

fn has_seen(seen: &BTreeMap<ReplicaId, u64>, stamp: &LwwStamp) -> bool {
    seen.get(&stamp.replica).is_some_and(|&write| write >= stamp.write)
}

impl<T: Clone> LwwRegister<T> {
    /// An empty register.
    pub fn new() -> LwwRegister<T> {
        LwwRegister::default()
    }

    /// The winning value, if anything was written.
    pub fn value(&self) -> Option<&T> {
        self.current.as_ref().map(|write| &write.value)
    }

    /// The winning write's stamp.
    pub fn stamp(&self) -> Option<LwwStamp> {
        self.current.as_ref().map(|write| write.stamp)
    }

    /// Writes `value` on behalf of `replica`, stamped with its node clock
    /// reading `now`. If the register already holds a larger stamp (a write
    /// from a clock that is ahead), this write is lost at once, although it
    /// came after the value it loses to: the outcome says so.
    pub fn set(&mut self, replica: ReplicaId, now: LocalTime, value: T) -> Outcome {
        let count = self.seen.entry(replica).or_insert(0);
        *count += 1;
        let stamp = LwwStamp { time: now, replica, write: *count };
        let write = Write { stamp, value, seen: self.seen.clone() };
        match &self.current {
            Some(current) if current.stamp > stamp => Outcome {
                changed: true,
                write_lost: Some(LostWrite { lost: stamp, winner: current.stamp }),
            },
            _ => {
                self.current = Some(write);
                Outcome::changed(true)
            }
        }
    }

    /// Joins `other` into this register: the larger stamp wins. The outcome
    /// names a write lost here, if the discarded write was not seen by the
    /// winner (each lost write is reported once per replica).
    pub fn merge(&mut self, other: &LwwRegister<T>) -> Outcome {
        let seen_before = self.seen.clone();
        for (&replica, &count) in &other.seen {
            let mine = self.seen.entry(replica).or_insert(0);
            *mine = (*mine).max(count);
        }
        let mut outcome = Outcome::changed(self.seen != seen_before);
        let Some(theirs) = &other.current else {
            return outcome;
        };
        match &self.current {
            None => {
                self.current = Some(theirs.clone());
                outcome.changed = true;
            }
            Some(mine) if mine.stamp < theirs.stamp => {
                if !has_seen(&theirs.seen, &mine.stamp) {
                    outcome.write_lost = Some(LostWrite { lost: mine.stamp, winner: theirs.stamp });
                }
                self.current = Some(theirs.clone());
                outcome.changed = true;
            }
            Some(mine) => {
                let news = !has_seen(&seen_before, &theirs.stamp);
                if mine.stamp > theirs.stamp && news && !has_seen(&mine.seen, &theirs.stamp) {
                    outcome.write_lost = Some(LostWrite { lost: theirs.stamp, winner: mine.stamp });
                }
            }
        }
        outcome
    }

    /// [`LwwRegister::set`] at the node's clock, traced as `update_applied`
    /// or, if the write is lost at once, `write_lost` (see [`trace_outcome`]).
    pub fn set_traced<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        replica: ReplicaId,
        value: T,
    ) -> Outcome {
        let outcome = self.set(replica, ctx.now_local(), value);
        ctx.trace(Component::Crdt, "update_applied", u64::from(replica.0), 1);
        trace_outcome(ctx, outcome);
        outcome
    }
}

impl<T: Clone + fmt::Debug + PartialEq + 'static> Crdt for LwwRegister<T> {
    /// The value to write.
    type Update = T;

    fn apply_update(&mut self, replica: ReplicaId, now: LocalTime, value: &T) -> Outcome {
        self.set(replica, now, value.clone())
    }

    fn merge_state(&mut self, other: &LwwRegister<T>) -> Outcome {
        self.merge(other)
    }
}

/// Reports a lost write, if `outcome` has one, as a `write_lost` trace
/// event (key: the lost write's replica; value: its stamp in nanoseconds)
/// and in the `crdt.writes_lost` counter.
pub fn trace_outcome<M: Message>(ctx: &mut Ctx<'_, M>, outcome: Outcome) {
    if let Some(lost) = outcome.write_lost {
        let stamp = lost.lost;
        ctx.trace(Component::Crdt, "write_lost", u64::from(stamp.replica.0), stamp.time.as_nanos());
        ctx.count("crdt.writes_lost", 1);
    }
}

// ---------------------------------------------------------------------------
// The gossiping replica

/// What replicas and their clients say to each other.
#[derive(Clone, Debug, PartialEq)]
pub enum CrdtProtocol<C: Crdt> {
    /// Apply this update locally (from a client).
    ApplyUpdate(C::Update),
    /// Join this replica's state into yours (gossip).
    MergeState(C),
}

impl<C: Crdt> CrdtProtocol<C> {
    /// A short name for [`Message::label`].
    pub fn label(&self) -> &'static str {
        match self {
            CrdtProtocol::ApplyUpdate(_) => "ApplyUpdate",
            CrdtProtocol::MergeState(_) => "MergeState",
        }
    }
}

/// How a [`Replica`] gossips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    /// This replica's id in the CRDT (unique among replicas, and never
    /// reused by a replica that lost its state).
    pub replica: ReplicaId,
    /// The other replicas' processes.
    pub peers: Vec<ProcessId>,
    /// How often, by the node's clock, the replica sends its state.
    pub gossip_interval: SimDuration,
    /// To how many peers (chosen at random) each round goes; all of them
    /// if there are no more than this.
    pub fanout: u32,
}

impl ReplicaConfig {
    /// Checks there is a peer, a positive interval and a fanout of at
    /// least one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.peers.is_empty() {
            return Err(ConfigError::new("replica.peers", "[]", "at least one peer"));
        }
        if self.gossip_interval == SimDuration::ZERO {
            return Err(ConfigError::new(
                "replica.gossip_interval",
                self.gossip_interval,
                "more than 0",
            ));
        }
        if self.fanout == 0 {
            return Err(ConfigError::new("replica.fanout", self.fanout, "at least 1"));
        }
        Ok(())
    }
}

/// A process holding one replica of a CRDT: it applies the updates it is
/// sent ([`CrdtProtocol::ApplyUpdate`]), merges the states it receives
/// ([`CrdtProtocol::MergeState`]), and every `gossip_interval` sends its
/// whole state to `fanout` peers. Lost, duplicated and reordered gossip is
/// harmless: the next round repeats it, and merging is idempotent and
/// order-free.
///
/// Trace events ([`Component::Crdt`]): `update_applied` (key: replica),
/// `merged` (key: sender; value: 1 if the state changed), `write_lost`
/// (see [`trace_outcome`]), `gossiped` (key: round; value: peers). Counters:
/// `crdt.updates_applied`, `crdt.merges`, `crdt.merges_changed`,
/// `crdt.gossip_sent`, `crdt.writes_lost`, `crdt.messages_ignored`.
#[derive(Clone, Debug)]
pub struct Replica<C> {
    config: ReplicaConfig,
    state: C,
    rounds: u64,
}

impl<C: Crdt> Replica<C> {
    /// A replica starting from `initial`, if `config` is valid.
    pub fn new(config: ReplicaConfig, initial: C) -> Result<Replica<C>, ConfigError> {
        config.validate()?;
        Ok(Replica { config, state: initial, rounds: 0 })
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// The replica's current state.
    pub fn state(&self) -> &C {
        &self.state
    }

    /// Gossip rounds so far.
    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    fn gossip<M: Carry<CrdtProtocol<C>>>(&mut self, ctx: &mut Ctx<'_, M>) {
        self.rounds += 1;
        let mut peers = self.config.peers.clone();
        let fanout = self.config.fanout as usize;
        if fanout < peers.len() {
            // A partial Fisher-Yates shuffle picks `fanout` distinct peers.
            for index in 0..fanout {
                let remaining = (peers.len() - index) as u64;
                let pick = index + ctx.rng().below(remaining) as usize;
                peers.swap(index, pick);
            }
            peers.truncate(fanout);
        }
        ctx.trace(Component::Crdt, "gossiped", self.rounds, peers.len() as i64);
        ctx.count("crdt.gossip_sent", peers.len() as u64);
        for peer in peers {
            ctx.send(peer, M::wrap(CrdtProtocol::MergeState(self.state.clone())));
        }
    }
}

impl<C: Crdt, M: Carry<CrdtProtocol<C>>> Process<M> for Replica<C> {
    fn on_start(&mut self, ctx: &mut Ctx<'_, M>) {
        ctx.set_timer(self.config.gossip_interval, 0);
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, M>, from: ProcessId, message: M) {
        let Ok(message) = message.unwrap() else {
            ctx.count("crdt.messages_ignored", 1);
            return;
        };
        match message {
            CrdtProtocol::ApplyUpdate(update) => {
                let replica = self.config.replica;
                let outcome = self.state.apply_update(replica, ctx.now_local(), &update);
                ctx.trace(
                    Component::Crdt,
                    "update_applied",
                    u64::from(replica.0),
                    i64::from(outcome.changed),
                );
                ctx.count("crdt.updates_applied", 1);
                trace_outcome(ctx, outcome);
            }
            CrdtProtocol::MergeState(other) => {
                let outcome = self.state.merge_state(&other);
                ctx.trace(Component::Crdt, "merged", u64::from(from.0), i64::from(outcome.changed));
                ctx.count("crdt.merges", 1);
                if outcome.changed {
                    ctx.count("crdt.merges_changed", 1);
                }
                trace_outcome(ctx, outcome);
            }
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, M>, _timer: TimerId, _tag: u64) {
        self.gossip(ctx);
        ctx.set_timer(self.config.gossip_interval, 0);
    }
}

#[cfg(test)]
mod tests;
