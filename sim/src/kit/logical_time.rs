//! Logical time: Lamport clocks, vector clocks and hybrid logical clocks.
//!
//! A distributed system has no global "now": every node reads its own
//! clock, and node clocks are offset from each other, drift, and get
//! stepped (Reactive Microsystems, ch. 6, on events as facts ordered in
//! time, and DOMAIN.md "Time"). Ordering events by wall-clock timestamps
//! across nodes therefore mis-orders them. Logical clocks order events by
//! causality instead, which messages carry from node to node:
//!
//! - [`LamportClock`] (Lamport, 1978): one counter per process. If event
//!   `a` happened before `b`, then `L(a) < L(b)`; the converse does not
//!   hold, so a Lamport time alone cannot tell concurrency.
//! - [`VectorClock`] (Fidge, Mattern, 1988): one counter per process, per
//!   process. `a` happened before `b` exactly when `V(a) < V(b)`, and two
//!   events are concurrent exactly when neither clock is below the other
//!   ([`VectorClock::compare`] says [`Causality::Concurrent`]).
//! - [`HybridLogicalClock`] (Kulkarni, Demirbas et al., 2014): a timestamp
//!   that stays close to the node's physical clock (never behind it, and
//!   ahead of it by no more than the skew between clocks) yet respects
//!   causality like a Lamport clock, with a logical counter to order events
//!   within the same physical reading. It is read from the node's skewed
//!   [`LocalTime`] ([`Ctx::now_local`]), never from the global time.
//!
//! Each clock is plain data with pure methods (`tick`, `observe`, ...) for
//! tests, and `*_traced` methods taking a [`Ctx`] that report as
//! [`Component::Crdt`] trace events: `lamport_ticked`, `lamport_received`,
//! `vector_ticked`, `vector_received`, `hlc_ticked`, `hlc_received`,
//! `hlc_rejected`.
//!
//! ```
//! use sim::kit::logical_time::{
//!     Causality, HlcConfig, HybridLogicalClock, LamportClock, VectorClock,
//! };
//! use sim::{LocalTime, ProcessId, SimDuration};
//!
//! // Lamport: a receive jumps past the sender's time.
//! let mut alice = LamportClock::new();
//! let mut bob = LamportClock::new();
//! let sent = alice.tick();
//! bob.tick();
//! bob.tick();
//! assert_eq!(bob.observe(sent), 3);
//!
//! // Vector clocks tell concurrency from causality.
//! let (a, b) = (ProcessId(0), ProcessId(1));
//! let mut at_a = VectorClock::new();
//! let mut at_b = VectorClock::new();
//! at_a.increment(a);
//! at_b.increment(b);
//! assert_eq!(at_a.compare(&at_b), Causality::Concurrent);
//! at_b.observe(b, &at_a);
//! assert_eq!(at_a.compare(&at_b), Causality::Before);
//!
//! // A hybrid logical clock on a node whose clock is 300 ms behind still
//! // orders a message after its send.
//! let config = HlcConfig { max_drift: SimDuration::from_secs(1) };
//! let mut fast = HybridLogicalClock::new(config.clone()).unwrap();
//! let mut slow = HybridLogicalClock::new(config).unwrap();
//! let sent = fast.now(LocalTime(1_000_000_000));
//! let received = slow.observe(LocalTime(700_000_000), sent).unwrap();
//! assert!(sent < received);
//! assert_eq!(received.physical, LocalTime(1_000_000_000));
//! ```

use crate::clock::LocalTime;
use crate::ids::ProcessId;
use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::time::SimDuration;
use crate::trace::{self, Component};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

// ---------------------------------------------------------------------------
// Lamport clocks

/// A Lamport clock: one counter, ticked on every local event and send, and
/// pushed past any time received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LamportClock {
    time: u64,
}

impl LamportClock {
    /// A clock at time 0 (no event yet).
    pub fn new() -> LamportClock {
        LamportClock { time: 0 }
    }

    /// The time of the latest event.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// A local event or a send: the time moves on by one. Returns the new
    /// time, which a send carries.
    pub fn tick(&mut self) -> u64 {
        self.time += 1;
        self.time
    }

    /// A receive of a message stamped `received`: the time becomes one past
    /// the larger of the two. Returns the new time.
    pub fn observe(&mut self, received: u64) -> u64 {
        self.time = self.time.max(received) + 1;
        self.time
    }

    /// [`LamportClock::tick`], traced as `lamport_ticked` with `key` (what
    /// the event is about) and the new time.
    pub fn tick_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, key: u64) -> u64 {
        let time = self.tick();
        ctx.trace(Component::Crdt, "lamport_ticked", key, saturating_i64(time));
        time
    }

    /// [`LamportClock::observe`], traced as `lamport_received` with `key`
    /// and the new time.
    pub fn observe_traced<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: u64,
        received: u64,
    ) -> u64 {
        let time = self.observe(received);
        ctx.trace(Component::Crdt, "lamport_received", key, saturating_i64(time));
        time
    }
}

// ---------------------------------------------------------------------------
// Vector clocks

/// How two events (or two vector clocks) are related by causality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Causality {
    /// The left one happened before the right one.
    Before,
    /// The left one happened after the right one.
    After,
    /// The same point in causal history.
    Equal,
    /// Neither happened before the other.
    Concurrent,
}

/// A vector clock, sparse: process to count of its events seen, a missing
/// process meaning zero. Zero counts are never stored, so two clocks are
/// equal (`==`) exactly when they are causally [`Causality::Equal`].
///
/// `PartialOrd` is the causal order: `a < b` when `a` happened before `b`,
/// and `partial_cmp` is `None` for concurrent clocks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VectorClock {
    counts: BTreeMap<ProcessId, u64>,
}

impl VectorClock {
    /// The clock before any event.
    pub fn new() -> VectorClock {
        VectorClock::default()
    }

    /// The count of `process`'s events this clock has seen.
    pub fn get(&self, process: ProcessId) -> u64 {
        self.counts.get(&process).copied().unwrap_or(0)
    }

    /// The non-zero counts, in process order.
    pub fn iter(&self) -> impl Iterator<Item = (ProcessId, u64)> + '_ {
        self.counts.iter().map(|(&process, &count)| (process, count))
    }

    /// Whether no event has been seen.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// A local event or a send on `process`: its own count moves on by one.
    /// Returns the new count.
    pub fn increment(&mut self, process: ProcessId) -> u64 {
        let count = self.counts.entry(process).or_insert(0);
        *count += 1;
        *count
    }

    /// The least upper bound of both clocks, in place: each count becomes
    /// the larger of the two.
    pub fn merge(&mut self, other: &VectorClock) {
        for (&process, &count) in &other.counts {
            let mine = self.counts.entry(process).or_insert(0);
            *mine = (*mine).max(count);
        }
    }

    /// A receive on `process` of a message stamped `received`: merge, then
    /// count the receive as an event of `process`. Returns `process`'s new
    /// count.
    pub fn observe(&mut self, process: ProcessId, received: &VectorClock) -> u64 {
        self.merge(received);
        self.increment(process)
    }

    /// How `self` relates to `other`: [`Causality::Before`] when every
    /// count of `self` is at most `other`'s and one is smaller, and so on.
    pub fn compare(&self, other: &VectorClock) -> Causality {
        let mut less = false;
        let mut greater = false;
        let processes = self.counts.keys().chain(other.counts.keys());
        for &process in processes {
            match self.get(process).cmp(&other.get(process)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Whether `self` happened before `other` (strictly).
    pub fn happened_before(&self, other: &VectorClock) -> bool {
        self.compare(other) == Causality::Before
    }

    /// [`VectorClock::increment`] for the calling process, traced as
    /// `vector_ticked` with `key` and the new own count.
    pub fn increment_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, key: u64) -> u64 {
        let count = self.increment(ctx.me());
        ctx.trace(Component::Crdt, "vector_ticked", key, saturating_i64(count));
        count
    }

    /// [`VectorClock::observe`] for the calling process, traced as
    /// `vector_received` with `key` and the new own count.
    pub fn observe_traced<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: u64,
        received: &VectorClock,
    ) -> u64 {
        let count = self.observe(ctx.me(), received);
        ctx.trace(Component::Crdt, "vector_received", key, saturating_i64(count));
        count
    }
}

impl PartialOrd for VectorClock {
    fn partial_cmp(&self, other: &VectorClock) -> Option<Ordering> {
        match self.compare(other) {
            Causality::Before => Some(Ordering::Less),
            Causality::After => Some(Ordering::Greater),
            Causality::Equal => Some(Ordering::Equal),
            Causality::Concurrent => None,
        }
    }
}

/// Reads the engine's own causal clock from a trace record (keyed by
/// process index), so a process's clocks can be checked against the
/// engine's.
impl From<&trace::VectorClock> for VectorClock {
    fn from(engine: &trace::VectorClock) -> VectorClock {
        let counts = engine
            .iter()
            .filter(|&(_, &count)| count > 0)
            .map(|(&process, &count)| (ProcessId(process), count))
            .collect();
        VectorClock { counts }
    }
}

impl FromIterator<(ProcessId, u64)> for VectorClock {
    fn from_iter<I: IntoIterator<Item = (ProcessId, u64)>>(iter: I) -> VectorClock {
        let mut clock = VectorClock::new();
        for (process, count) in iter {
            if count > 0 {
                let entry = clock.counts.entry(process).or_insert(0);
                *entry = (*entry).max(count);
            }
        }
        clock
    }
}

// ---------------------------------------------------------------------------
// Hybrid logical clocks

/// A hybrid logical timestamp: the largest physical reading known to the
/// event's causal past, and a counter ordering events that share it.
/// Timestamps are totally ordered, physical part first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct HlcTimestamp {
    /// The physical part: a reading of some node's clock, at or after every
    /// reading in the causal past.
    pub physical: LocalTime,
    /// The logical part: events since the physical part last changed.
    pub logical: u64,
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{}", self.physical, self.logical)
    }
}

/// How a hybrid logical clock is set up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HlcConfig {
    /// How far ahead of the local clock a received timestamp may be. A
    /// timestamp further ahead comes from a clock that is badly wrong (or a
    /// forged message); adopting it would drag this clock, and everyone it
    /// talks to, away from physical time, so it is rejected. Must be more
    /// than zero; in practice a bound on the skew between clocks (NTP keeps
    /// it to tens of milliseconds).
    pub max_drift: SimDuration,
}

impl HlcConfig {
    /// Checks the drift bound is positive and fits in a clock reading.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_drift == SimDuration::ZERO {
            return Err(ConfigError::new("hlc.max_drift", self.max_drift, "more than 0"));
        }
        if i64::try_from(self.max_drift.as_nanos()).is_err() {
            return Err(ConfigError::new("hlc.max_drift", self.max_drift, "at most i64::MAX ns"));
        }
        Ok(())
    }
}

/// A received timestamp was further ahead of the local clock than
/// [`HlcConfig::max_drift`] allows; the clock did not move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriftExceeded {
    /// The timestamp received.
    pub remote: HlcTimestamp,
    /// The local clock's reading when it arrived.
    pub local: LocalTime,
    /// How far ahead of the local clock the timestamp was.
    pub ahead: SimDuration,
}

impl fmt::Display for DriftExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timestamp {} is {} ahead of the local clock {}",
            self.remote, self.ahead, self.local
        )
    }
}

impl std::error::Error for DriftExceeded {}

/// A hybrid logical clock (Kulkarni et al., 2014). Its physical part comes
/// from the node's [`LocalTime`], so it inherits the node's skew, but it
/// never runs backwards and never orders an effect before its cause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HybridLogicalClock {
    config: HlcConfig,
    last: HlcTimestamp,
}

impl HybridLogicalClock {
    /// A clock that has seen no event, if `config` is valid.
    pub fn new(config: HlcConfig) -> Result<HybridLogicalClock, ConfigError> {
        config.validate()?;
        Ok(HybridLogicalClock {
            config,
            last: HlcTimestamp { physical: LocalTime(i64::MIN), logical: 0 },
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HlcConfig {
        &self.config
    }

    /// The timestamp of the latest event (the minimum before any event).
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// A local event or a send at local clock reading `local`. Returns its
    /// timestamp, which a send carries.
    pub fn now(&mut self, local: LocalTime) -> HlcTimestamp {
        let previous = self.last;
        self.last = if local > previous.physical {
            HlcTimestamp { physical: local, logical: 0 }
        } else {
            // The clock has not moved past what we already stamped (or went
            // back): keep the physical part, count on.
            HlcTimestamp { physical: previous.physical, logical: previous.logical + 1 }
        };
        self.last
    }

    /// A receive, at local clock reading `local`, of a message stamped
    /// `remote`. Returns the receive's timestamp, later than both the
    /// previous local one and `remote`; or [`DriftExceeded`] (and the clock
    /// unchanged) if `remote` is more than `max_drift` ahead of `local`.
    pub fn observe(
        &mut self,
        local: LocalTime,
        remote: HlcTimestamp,
    ) -> Result<HlcTimestamp, DriftExceeded> {
        let ahead = i128::from(remote.physical.0) - i128::from(local.0);
        if ahead > i128::from(self.config.max_drift.as_nanos()) {
            return Err(DriftExceeded {
                remote,
                local,
                ahead: SimDuration::from_nanos(u64::try_from(ahead).unwrap_or(u64::MAX)),
            });
        }
        let previous = self.last;
        let physical = previous.physical.max(remote.physical).max(local);
        let same_as_previous = physical == previous.physical;
        let same_as_remote = physical == remote.physical;
        let logical = match (same_as_previous, same_as_remote) {
            (true, true) => previous.logical.max(remote.logical) + 1,
            (true, false) => previous.logical + 1,
            (false, true) => remote.logical + 1,
            // The local clock is ahead of both: a fresh physical reading.
            (false, false) => 0,
        };
        self.last = HlcTimestamp { physical, logical };
        Ok(self.last)
    }

    /// [`HybridLogicalClock::now`] at the node's clock, traced as
    /// `hlc_ticked` with `key` and the physical part in nanoseconds.
    pub fn now_traced<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, key: u64) -> HlcTimestamp {
        let stamp = self.now(ctx.now_local());
        ctx.trace(Component::Crdt, "hlc_ticked", key, stamp.physical.as_nanos());
        stamp
    }

    /// [`HybridLogicalClock::observe`] at the node's clock, traced as
    /// `hlc_received` (with the physical part) or, when rejected, as
    /// `hlc_rejected` (with how far ahead the remote clock was, in
    /// nanoseconds) and counted in `hlc.rejected`.
    pub fn observe_traced<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: u64,
        remote: HlcTimestamp,
    ) -> Result<HlcTimestamp, DriftExceeded> {
        match self.observe(ctx.now_local(), remote) {
            Ok(stamp) => {
                ctx.trace(Component::Crdt, "hlc_received", key, stamp.physical.as_nanos());
                Ok(stamp)
            }
            Err(error) => {
                let ahead = saturating_i64(error.ahead.as_nanos());
                ctx.trace(Component::Crdt, "hlc_rejected", key, ahead);
                ctx.count("hlc.rejected", 1);
                Err(error)
            }
        }
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
