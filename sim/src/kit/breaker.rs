//! Circuit breaker: stop calling a dependency that is failing, fail fast
//! instead, and probe now and then to find out when it has recovered.
//!
//! A caller that keeps sending requests to a dead or drowning dependency
//! wastes its own resources waiting for timeouts and makes the
//! dependency's recovery harder. The breaker watches the outcomes of recent
//! calls; when too many fail or are too slow it *opens* and rejects calls at
//! once, so the caller can answer with a fallback (a cached value, "payment
//! pending") in microseconds instead of waiting out a timeout. After
//! `open_duration` it lets a few trial calls through (*half-open*); if they
//! all succeed it *closes* again, and if any fails it opens for another
//! round (Reactive Microsystems, ch. 5: circuit breakers around dangerous
//! dependencies, next to bulkheads and supervision, keep a failure inside
//! its compartment).
//!
//! The state machine:
//!
//! - **Closed**: every call is permitted; outcomes go into a sliding window,
//!   either the last `size` calls ([`SlidingWindow::Count`]) or the calls
//!   of the last `duration`, in `bucket_count` buckets
//!   ([`SlidingWindow::Time`]). Once the window holds at least
//!   `minimum_calls`, the breaker opens when the failure rate or the
//!   slow-call rate (calls taking at least `slow_call_duration`) reaches
//!   its threshold.
//! - **Open**: every call is rejected until `open_duration` has passed on
//!   the local clock; the next call attempt then moves it to half-open.
//! - **HalfOpen**: the first `permitted_half_open_calls` calls are permitted
//!   as probes, the rest rejected. Any probe that fails *or is slow* opens
//!   the breaker again at once; when all probes have succeeded it closes
//!   with an empty window. (This is the strict variant; resilience4j
//!   instead applies the rate thresholds over the probes.)
//!
//! The API is a permit: [`Breaker::try_acquire`] before the call, then
//! [`Breaker::on_success`] or [`Breaker::on_failure`] with the permit after.
//! A permit remembers the state period it was issued in, so the outcome of
//! a call that started before a transition (a slow reply from before the
//! breaker opened) is ignored rather than counted against the new state.
//! A caller must report every permit it got (a timeout is a failure), or a
//! half-open breaker waits for its probes forever.
//!
//! The methods taking a [`Ctx`] ([`Breaker::acquire`],
//! [`Breaker::record_success`], [`Breaker::record_failure`],
//! [`Breaker::call_or_fallback`]) trace every transition as a
//! [`Component::Breaker`] event (`opened`, `half_opened`, `closed`) and
//! every fast-failed call as `rejected`, each with a counter metric
//! (`breaker.opened`, ...).
//!
//! ```
//! use sim::kit::breaker::{Admission, Breaker, BreakerConfig, BreakerState, SlidingWindow};
//! use sim::{LocalTime, SimDuration};
//!
//! // The lesson-5 breaker: last 20 calls, at least 10, 50% failures,
//! // open for 5 s, then 3 probes.
//! let mut breaker = Breaker::new(BreakerConfig {
//!     sliding_window: SlidingWindow::Count { size: 20 },
//!     minimum_calls: 10,
//!     failure_rate_threshold_percent: 50,
//!     open_duration: SimDuration::from_secs(5),
//!     permitted_half_open_calls: 3,
//!     ..BreakerConfig::default()
//! })
//! .unwrap();
//! let second = |s: i64| LocalTime(s * 1_000_000_000);
//! let timeout = SimDuration::from_secs(1);
//! for _ in 0..10 {
//!     let Admission::Permitted(permit) = breaker.try_acquire(second(0)) else { unreachable!() };
//!     breaker.on_failure(permit, second(1), timeout);
//! }
//! // Ten calls, all failed: open, and calls fail fast.
//! assert_eq!(breaker.state(), BreakerState::Open);
//! assert_eq!(breaker.try_acquire(second(2)), Admission::Rejected);
//! // Five seconds later a probe goes through, and its success (with the
//! // two others) closes the breaker.
//! for _ in 0..3 {
//!     let Admission::Permitted(permit) = breaker.try_acquire(second(6)) else { unreachable!() };
//!     assert_eq!(breaker.state(), BreakerState::HalfOpen);
//!     breaker.on_success(permit, second(6), SimDuration::from_millis(20));
//! }
//! assert_eq!(breaker.state(), BreakerState::Closed);
//! ```

use crate::clock::LocalTime;
use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

/// Which calls the closed breaker's rates are computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlidingWindow {
    /// The last `size` calls.
    Count {
        /// How many calls.
        size: u32,
    },
    /// The calls completed in the last `duration`, counted in
    /// `bucket_count` buckets of `duration / bucket_count` on the local
    /// clock (the window slides a bucket at a time).
    Time {
        /// How far back.
        duration: SimDuration,
        /// How many buckets.
        bucket_count: u32,
    },
}

/// The kind of sliding window, by name (`count_based` or `time_based`),
/// for configurations read from text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlidingWindowKind {
    /// [`SlidingWindow::Count`].
    CountBased,
    /// [`SlidingWindow::Time`].
    TimeBased,
}

impl FromStr for SlidingWindowKind {
    type Err = ConfigError;

    fn from_str(name: &str) -> Result<SlidingWindowKind, ConfigError> {
        match name {
            "count_based" => Ok(SlidingWindowKind::CountBased),
            "time_based" => Ok(SlidingWindowKind::TimeBased),
            other => Err(ConfigError::new(
                "breaker.sliding_window_kind",
                other,
                "count_based or time_based",
            )),
        }
    }
}

/// How a breaker is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// The calls the closed breaker looks at.
    pub sliding_window: SlidingWindow,
    /// Calls the window must hold before rates are evaluated (at most the
    /// window size for a count-based window).
    pub minimum_calls: u32,
    /// Failure rate, in percent of the window's calls, that opens the
    /// breaker (1 to 100).
    pub failure_rate_threshold_percent: u32,
    /// Slow-call rate, in percent of the window's calls, that opens the
    /// breaker (1 to 100).
    pub slow_call_rate_threshold_percent: u32,
    /// A call taking at least this long is slow, whether it succeeded or
    /// failed.
    pub slow_call_duration: SimDuration,
    /// How long the breaker stays open before probing.
    pub open_duration: SimDuration,
    /// Probes permitted in half-open; all must succeed to close.
    pub permitted_half_open_calls: u32,
}

impl Default for BreakerConfig {
    /// resilience4j's defaults, which suit a busy caller: the last 100
    /// calls, at least 100, 50% failures, slow calls (60 s or more) only
    /// when all are slow, open 60 s, 10 probes.
    fn default() -> BreakerConfig {
        BreakerConfig {
            sliding_window: SlidingWindow::Count { size: 100 },
            minimum_calls: 100,
            failure_rate_threshold_percent: 50,
            slow_call_rate_threshold_percent: 100,
            slow_call_duration: SimDuration::from_secs(60),
            open_duration: SimDuration::from_secs(60),
            permitted_half_open_calls: 10,
        }
    }
}

impl BreakerConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.sliding_window {
            SlidingWindow::Count { size } => {
                if size == 0 {
                    return Err(ConfigError::new("breaker.window_size", 0, "at least 1"));
                }
                if self.minimum_calls > size {
                    return Err(ConfigError::new(
                        "breaker.minimum_calls",
                        self.minimum_calls,
                        format!("at most breaker.window_size ({size})"),
                    ));
                }
            }
            SlidingWindow::Time { duration, bucket_count } => {
                if duration == SimDuration::ZERO || duration.as_nanos() > i64::MAX as u64 {
                    return Err(ConfigError::new(
                        "breaker.window_duration",
                        duration,
                        "more than 0 and less than 292 years",
                    ));
                }
                if bucket_count == 0 || u64::from(bucket_count) > duration.as_nanos() {
                    return Err(ConfigError::new(
                        "breaker.bucket_count",
                        bucket_count,
                        "at least 1 and at most the window duration in nanoseconds",
                    ));
                }
            }
        }
        if self.minimum_calls == 0 {
            return Err(ConfigError::new("breaker.minimum_calls", 0, "at least 1"));
        }
        for (field, value) in [
            ("breaker.failure_rate_threshold_percent", self.failure_rate_threshold_percent),
            ("breaker.slow_call_rate_threshold_percent", self.slow_call_rate_threshold_percent),
        ] {
            if !(1..=100).contains(&value) {
                return Err(ConfigError::new(field, format!("{value}%"), "1% to 100%"));
            }
        }
        // Durations are unsigned, so a negative one cannot be written; zero
        // is the invalid value left.
        if self.slow_call_duration == SimDuration::ZERO {
            return Err(ConfigError::new(
                "breaker.slow_call_duration",
                self.slow_call_duration,
                "more than 0",
            ));
        }
        if self.open_duration == SimDuration::ZERO {
            return Err(ConfigError::new(
                "breaker.open_duration",
                self.open_duration,
                "more than 0",
            ));
        }
        if self.permitted_half_open_calls == 0 {
            return Err(ConfigError::new("breaker.permitted_half_open_calls", 0, "at least 1"));
        }
        Ok(())
    }
}

/// Where a breaker is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BreakerState {
    /// Calls go through; outcomes are watched.
    Closed,
    /// Calls are rejected.
    Open,
    /// A few probes go through.
    HalfOpen,
}

impl BreakerState {
    /// The state's name in snake case, as in traces.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Leave to make one call; hand it back with the call's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permit {
    /// The state period the permit was issued in.
    period: u64,
    /// When it was issued.
    pub acquired_at: LocalTime,
}

/// The answer to [`Breaker::try_acquire`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Make the call, then report its outcome with the permit.
    Permitted(Permit),
    /// Fail fast: the breaker is open, or half-open with all probes out.
    /// This is where the caller's fallback runs.
    Rejected,
}

/// Calls counted in a window, or among the half-open probes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls with an outcome.
    pub calls: u32,
    /// Of which failed.
    pub failures: u32,
    /// Of which took at least `slow_call_duration`.
    pub slow_calls: u32,
}

impl CallCounts {
    /// Failures in whole percent of calls, rounded down (0 when empty).
    pub fn failure_rate_percent(&self) -> u32 {
        percent(self.failures, self.calls)
    }

    /// Slow calls in whole percent of calls, rounded down (0 when empty).
    pub fn slow_call_rate_percent(&self) -> u32 {
        percent(self.slow_calls, self.calls)
    }

    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += u32::from(failed);
        self.slow_calls += u32::from(slow);
    }

    fn remove(&mut self, failed: bool, slow: bool) {
        self.calls -= 1;
        self.failures -= u32::from(failed);
        self.slow_calls -= u32::from(slow);
    }
}

/// A change of state, with the counts that caused it: the window's for
/// `Closed → Open`, the probes' for `HalfOpen → Open` and
/// `HalfOpen → Closed`, none for `Open → HalfOpen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: BreakerState,
    /// The state entered.
    pub to: BreakerState,
    /// What was counted when it happened.
    pub counts: CallCounts,
}

/// A circuit breaker around one dependency; see the module docs.
#[derive(Clone, Debug)]
pub struct Breaker {
    config: BreakerConfig,
    key: u64,
    state: BreakerState,
    /// Bumped at every transition; permits from an earlier period are
    /// stale and their outcomes ignored.
    period: u64,
    window: Window,
    opened_at: LocalTime,
    /// Probes handed out and their outcomes, in the current half-open.
    probes_issued: u32,
    probes: CallCounts,
}

impl Breaker {
    /// A closed breaker under a validated `config`.
    pub fn new(config: BreakerConfig) -> Result<Breaker, ConfigError> {
        config.validate()?;
        let window = Window::new(config.sliding_window);
        Ok(Breaker {
            config,
            key: 0,
            state: BreakerState::Closed,
            period: 0,
            window,
            opened_at: LocalTime(0),
            probes_issued: 0,
            probes: CallCounts::default(),
        })
    }

    /// The same breaker, naming itself `key` in traces (builder style; to
    /// tell a process's breakers apart). The default is 0.
    pub fn with_key(mut self, key: u64) -> Breaker {
        self.key = key;
        self
    }

    /// The configuration.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// The key it traces under.
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The state now. An open breaker whose open duration has passed still
    /// reads `Open` until the next call attempt moves it.
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// When it last opened.
    pub fn opened_at(&self) -> LocalTime {
        self.opened_at
    }

    /// What the closed-state window holds at `now` (empty in the other
    /// states: the window restarts when the breaker closes).
    pub fn window_counts(&mut self, now: LocalTime) -> CallCounts {
        self.window.slide(now);
        self.window.counts
    }

    /// Asks to make a call at `now`. An open breaker whose open duration
    /// has passed moves to half-open here (compare [`Breaker::state`]
    /// before and after to see it; [`Breaker::acquire`] traces it).
    pub fn try_acquire(&mut self, now: LocalTime) -> Admission {
        if self.state == BreakerState::Open {
            if now < self.opened_at.plus(self.config.open_duration) {
                return Admission::Rejected;
            }
            self.enter(BreakerState::HalfOpen, now);
        }
        if self.state == BreakerState::HalfOpen {
            if self.probes_issued >= self.config.permitted_half_open_calls {
                return Admission::Rejected;
            }
            self.probes_issued += 1;
        }
        Admission::Permitted(Permit { period: self.period, acquired_at: now })
    }

    /// Reports that the call of `permit` succeeded at `now`, after
    /// `duration`. Returns the transition it caused, if any.
    pub fn on_success(
        &mut self,
        permit: Permit,
        now: LocalTime,
        duration: SimDuration,
    ) -> Option<Transition> {
        self.on_outcome(permit, now, false, duration)
    }

    /// Reports that the call of `permit` failed (or timed out) at `now`,
    /// after `duration`. Returns the transition it caused, if any.
    pub fn on_failure(
        &mut self,
        permit: Permit,
        now: LocalTime,
        duration: SimDuration,
    ) -> Option<Transition> {
        self.on_outcome(permit, now, true, duration)
    }

    fn on_outcome(
        &mut self,
        permit: Permit,
        now: LocalTime,
        failed: bool,
        duration: SimDuration,
    ) -> Option<Transition> {
        if permit.period != self.period {
            // Issued before the last transition: it says nothing about the
            // dependency as the current state sees it.
            return None;
        }
        let slow = duration >= self.config.slow_call_duration;
        match self.state {
            BreakerState::Closed => {
                self.window.record(now, failed, slow);
                let counts = self.window.counts;
                let tripped = counts.calls >= self.config.minimum_calls
                    && (reaches(
                        counts.failures,
                        counts.calls,
                        self.config.failure_rate_threshold_percent,
                    ) || reaches(
                        counts.slow_calls,
                        counts.calls,
                        self.config.slow_call_rate_threshold_percent,
                    ));
                tripped.then(|| self.enter(BreakerState::Open, now).with_counts(counts))
            }
            // Permits issued while open are impossible, and a half-open
            // permit is stale once the breaker reopens.
            BreakerState::Open => None,
            BreakerState::HalfOpen => {
                self.probes.add(failed, slow);
                let counts = self.probes;
                if failed || slow {
                    // Half-open → open. Covered by:
                    // tests::a_failed_probe_reopens_the_breaker_for_another_open_duration
                    Some(self.enter(BreakerState::Open, now).with_counts(counts))
                } else if counts.calls >= self.config.permitted_half_open_calls {
                    Some(self.enter(BreakerState::Closed, now).with_counts(counts))
                } else {
                    None
                }
            }
        }
    }

    fn enter(&mut self, to: BreakerState, now: LocalTime) -> Transition {
        let from = self.state;
        assert!(from != to, "a breaker transition changes the state");
        self.state = to;
        self.period += 1;
        self.window.clear();
        self.probes_issued = 0;
        self.probes = CallCounts::default();
        if to == BreakerState::Open {
            self.opened_at = now;
        }
        Transition { from, to, counts: CallCounts::default() }
    }

    /// [`try_acquire`](Breaker::try_acquire) at the node's local time,
    /// traced: `half_opened` when the open duration has passed, `rejected`
    /// (value: 1 if open, 2 if half-open with all probes out) for a
    /// fast-failed call; metrics `breaker.half_opened`, `breaker.rejected`.
    pub fn acquire<M: Message>(&mut self, ctx: &mut Ctx<'_, M>) -> Admission {
        let before = self.state;
        let admission = self.try_acquire(ctx.now_local());
        if before != self.state {
            let transition =
                Transition { from: before, to: self.state, counts: CallCounts::default() };
            self.trace_transition(ctx, transition);
        }
        if admission == Admission::Rejected {
            let value = if self.state == BreakerState::Open { 1 } else { 2 };
            ctx.trace(Component::Breaker, "rejected", self.key, value);
            ctx.count("breaker.rejected", 1);
        }
        admission
    }

    /// [`on_success`](Breaker::on_success) at the node's local time, with
    /// any transition traced.
    pub fn record_success<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        permit: Permit,
        duration: SimDuration,
    ) -> Option<Transition> {
        let transition = self.on_success(permit, ctx.now_local(), duration);
        if let Some(transition) = transition {
            self.trace_transition(ctx, transition);
        }
        transition
    }

    /// [`on_failure`](Breaker::on_failure) at the node's local time, with
    /// any transition traced.
    pub fn record_failure<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        permit: Permit,
        duration: SimDuration,
    ) -> Option<Transition> {
        let transition = self.on_failure(permit, ctx.now_local(), duration);
        if let Some(transition) = transition {
            self.trace_transition(ctx, transition);
        }
        transition
    }

    /// Runs `call` with a permit if the breaker gives one, `fallback`
    /// otherwise (traced as [`acquire`](Breaker::acquire) is). `call`
    /// usually sends the request and keeps the permit with the call's
    /// deadline, to report the outcome when the reply or the timeout comes.
    pub fn call_or_fallback<'a, M: Message, T>(
        &mut self,
        ctx: &mut Ctx<'a, M>,
        call: impl FnOnce(&mut Ctx<'a, M>, Permit) -> T,
        fallback: impl FnOnce(&mut Ctx<'a, M>) -> T,
    ) -> T {
        match self.acquire(ctx) {
            Admission::Permitted(permit) => call(ctx, permit),
            Admission::Rejected => fallback(ctx),
        }
    }

    /// Traces `opened` (value: the failure rate in percent that tripped
    /// it), `half_opened` (value 0) or `closed` (value: probes that
    /// succeeded), and counts `breaker.<kind>`.
    fn trace_transition<M: Message>(&self, ctx: &mut Ctx<'_, M>, transition: Transition) {
        let (kind, metric, value) = match transition.to {
            BreakerState::Open => {
                ("opened", "breaker.opened", i64::from(transition.counts.failure_rate_percent()))
            }
            BreakerState::HalfOpen => ("half_opened", "breaker.half_opened", 0),
            BreakerState::Closed => {
                ("closed", "breaker.closed", i64::from(transition.counts.calls))
            }
        };
        ctx.trace(Component::Breaker, kind, self.key, value);
        ctx.count(metric, 1);
    }
}

impl Transition {
    fn with_counts(mut self, counts: CallCounts) -> Transition {
        self.counts = counts;
        self
    }
}

/// The closed state's sliding window.
#[derive(Clone, Debug)]
struct Window {
    kind: SlidingWindow,
    counts: CallCounts,
    /// Count-based: the last `size` outcomes as (failed, slow), oldest
    /// first. Time-based: unused.
    outcomes: VecDeque<(bool, bool)>,
    /// Time-based: (bucket index, counts), oldest first, at most
    /// `bucket_count`. Count-based: unused.
    buckets: VecDeque<(i64, CallCounts)>,
}

impl Window {
    fn new(kind: SlidingWindow) -> Window {
        let (outcomes, buckets) = match kind {
            SlidingWindow::Count { size } => {
                (VecDeque::with_capacity(size as usize), VecDeque::new())
            }
            SlidingWindow::Time { bucket_count, .. } => {
                (VecDeque::new(), VecDeque::with_capacity(bucket_count as usize))
            }
        };
        Window { kind, counts: CallCounts::default(), outcomes, buckets }
    }

    fn clear(&mut self) {
        self.counts = CallCounts::default();
        self.outcomes.clear();
        self.buckets.clear();
    }

    fn record(&mut self, now: LocalTime, failed: bool, slow: bool) {
        match self.kind {
            SlidingWindow::Count { size } => {
                if self.outcomes.len() == size as usize {
                    let (old_failed, old_slow) = self.outcomes.pop_front().expect("full");
                    self.counts.remove(old_failed, old_slow);
                }
                self.outcomes.push_back((failed, slow));
            }
            SlidingWindow::Time { .. } => {
                self.slide(now);
                self.buckets.back_mut().expect("slide keeps a current bucket").1.add(failed, slow);
            }
        }
        self.counts.add(failed, slow);
    }

    /// Time-based: drops buckets older than the window ending at `now` and
    /// makes sure the newest bucket is `now`'s (or, if the clock stepped
    /// back, stays the newest). Count-based: nothing to do.
    fn slide(&mut self, now: LocalTime) {
        let SlidingWindow::Time { duration, bucket_count } = self.kind else {
            return;
        };
        let width = (duration.as_nanos() / u64::from(bucket_count)) as i64;
        let newest = self.buckets.back().map(|(index, _)| *index);
        let index = now.as_nanos().div_euclid(width).max(newest.unwrap_or(i64::MIN));
        let oldest_kept = index.saturating_sub(i64::from(bucket_count) - 1);
        while let Some((bucket, counts)) = self.buckets.front().copied()
            && bucket < oldest_kept
        {
            self.buckets.pop_front();
            self.counts.calls -= counts.calls;
            self.counts.failures -= counts.failures;
            self.counts.slow_calls -= counts.slow_calls;
        }
        if newest != Some(index) {
            self.buckets.push_back((index, CallCounts::default()));
        }
    }
}

/// Whether `part` is at least `threshold_percent` of `whole`.
fn reaches(part: u32, whole: u32, threshold_percent: u32) -> bool {
    u64::from(part) * 100 >= u64::from(threshold_percent) * u64::from(whole)
}

fn percent(part: u32, whole: u32) -> u32 {
    if whole == 0 { 0 } else { (u64::from(part) * 100 / u64::from(whole)) as u32 }
}

#[cfg(test)]
mod tests;
