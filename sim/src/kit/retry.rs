//! Timeouts and retries: per-call deadlines, retries with exponential
//! backoff and full jitter under a retry budget, and idempotency keys with
//! a deduplicating receiver.
//!
//! In a message-driven system a caller never knows whether a request that
//! went unanswered was lost on the way, lost on the way back, or is merely
//! slow (Reactive Microsystems, ch. 5: failure is just another message, and
//! a missing one is detected only by a timeout). The building blocks here
//! turn that uncertainty into policy:
//!
//! - [`Deadlines`] tracks a caller's outstanding calls by id, each with a
//!   timer on the node's clock, and tells the caller which replies match a
//!   call and which calls timed out.
//! - [`RetryPolicy`] says how long to wait before the next attempt:
//!   exponential backoff capped at `max_delay`, with *full jitter* (the
//!   delay is drawn uniformly between zero and the backoff), so that callers
//!   that failed together do not retry together.
//! - [`RetryBudget`] bounds retries to a fraction of recent requests (plus a
//!   small floor), so that a struggling dependency is not buried under a
//!   retry storm.
//! - [`Deduplicator`] gives the receiver a memory of the last requests'
//!   idempotency keys and their responses. Retries and network duplicates
//!   make delivery at-least-once; remembering keys turns that into
//!   effectively-once side effects (ch. 6 asks for idempotent steps for the
//!   same reason: side effects in a saga are at-least-once).
//!
//! Each piece has a pure core (arguments in, outcome out) and thin methods
//! taking a [`Ctx`] that set timers, draw jitter from the process's own
//! stream and report as [`Component::Retry`] trace events with a metric.
//!
//! ```
//! use sim::kit::retry::{RetryBudget, RetryBudgetConfig, RetryConfig, RetryPolicy};
//! use sim::{LocalTime, Purpose, Seed, SimDuration, Stream};
//!
//! let policy = RetryPolicy::new(RetryConfig {
//!     max_attempts: 5,
//!     base_delay: SimDuration::from_millis(100),
//!     max_delay: SimDuration::from_secs(1),
//!     multiplier: 2.0,
//! })
//! .unwrap();
//! // The backoff doubles from 100 ms and stops at the 1 s cap.
//! assert_eq!(policy.backoff_ceiling(0), SimDuration::from_millis(100));
//! assert_eq!(policy.backoff_ceiling(3), SimDuration::from_millis(800));
//! assert_eq!(policy.backoff_ceiling(4), SimDuration::from_secs(1));
//! // Full jitter: the actual delay is anywhere from zero to the ceiling.
//! let mut stream = Stream::new(Seed(1), Purpose::Process(0));
//! assert!(policy.backoff(3, &mut stream) <= SimDuration::from_millis(800));
//!
//! // At most 10% of recent requests may be retried, plus 2 per window.
//! let mut budget = RetryBudget::new(RetryBudgetConfig {
//!     window: SimDuration::from_secs(10),
//!     bucket_count: 10,
//!     ratio_percent: 10,
//!     min_retries: 2,
//! })
//! .unwrap();
//! let now = LocalTime(0);
//! for _ in 0..10 {
//!     budget.record_request(now);
//! }
//! // 10 requests allow 1 retry, plus the floor of 2.
//! assert!(budget.try_retry(now) && budget.try_retry(now) && budget.try_retry(now));
//! assert!(!budget.try_retry(now));
//! ```

use crate::clock::LocalTime;
use crate::ids::TimerId;
use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::rng::Stream;
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::{BTreeMap, VecDeque};

// ---------------------------------------------------------------------------
// Deadlines

/// How a caller's deadlines are set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlineConfig {
    /// How long a call may stay unanswered before it counts as timed out.
    pub timeout: SimDuration,
    /// How many calls may be outstanding at once; a call beyond it is
    /// refused (and traced), never tracked silently.
    pub max_outstanding: u32,
}

impl DeadlineConfig {
    /// Checks the timeout is positive and the bound at least 1.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout == SimDuration::ZERO {
            return Err(ConfigError::new("deadlines.timeout", self.timeout, "more than 0"));
        }
        if self.max_outstanding == 0 {
            return Err(ConfigError::new("deadlines.max_outstanding", 0, "at least 1"));
        }
        Ok(())
    }
}

/// A caller's outstanding calls, each with a timer that ends its wait.
///
/// The caller picks the call ids (they are also the trace keys), starts a
/// call with [`Deadlines::start`] when it sends the request, reports the
/// reply with [`Deadlines::complete`], and passes every timer it receives
/// to [`Deadlines::on_timer`], which says whether it was a call's deadline.
/// Timers run on the node's local clock, so clock skew and steps move
/// deadlines as they would on a real machine.
#[derive(Clone, Debug)]
pub struct Deadlines {
    config: DeadlineConfig,
    calls: BTreeMap<u64, Outstanding>,
    by_timer: BTreeMap<TimerId, u64>,
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    timer: TimerId,
    started_at: LocalTime,
    timeout: SimDuration,
}

/// [`Deadlines::start`] refused a call because `max_outstanding` calls are
/// already outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyOutstanding;

impl Deadlines {
    /// Deadlines under a validated `config`.
    pub fn new(config: DeadlineConfig) -> Result<Deadlines, ConfigError> {
        config.validate()?;
        Ok(Deadlines { config, calls: BTreeMap::new(), by_timer: BTreeMap::new() })
    }

    /// The configuration.
    pub fn config(&self) -> &DeadlineConfig {
        &self.config
    }

    /// How many calls are outstanding.
    pub fn outstanding(&self) -> usize {
        self.calls.len()
    }

    /// Whether `call` is outstanding.
    pub fn is_outstanding(&self, call: u64) -> bool {
        self.calls.contains_key(&call)
    }

    /// Starts waiting for `call` with the configured timeout.
    pub fn start<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        call: u64,
    ) -> Result<TimerId, TooManyOutstanding> {
        self.start_with_timeout(ctx, call, self.config.timeout)
    }

    /// Starts waiting for `call` for `timeout` (a per-call deadline, e.g.
    /// what is left of an upstream caller's own deadline). Traces
    /// `deadline_set` (value: the timeout in ns), or `deadline_refused` if
    /// too many calls are outstanding.
    ///
    /// # Panics
    /// If `call` is already outstanding: call ids must be unique among
    /// outstanding calls.
    pub fn start_with_timeout<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        call: u64,
        timeout: SimDuration,
    ) -> Result<TimerId, TooManyOutstanding> {
        assert!(!self.calls.contains_key(&call), "call {call} is already outstanding");
        if self.calls.len() >= self.config.max_outstanding as usize {
            ctx.trace(Component::Retry, "deadline_refused", call, self.calls.len() as i64);
            ctx.count("deadline.refused", 1);
            return Err(TooManyOutstanding);
        }
        let timer = ctx.set_timer(timeout, call);
        let started_at = ctx.now_local();
        self.calls.insert(call, Outstanding { timer, started_at, timeout });
        self.by_timer.insert(timer, call);
        ctx.trace(Component::Retry, "deadline_set", call, nanos_i64(timeout));
        Ok(timer)
    }

    /// The reply to `call` arrived: stops its timer and returns how long it
    /// took on the local clock. `None` if the call was not outstanding (it
    /// timed out already, or this is a duplicate reply); the reply is then
    /// discarded and traced as `reply_discarded`. Traces `replied` (value:
    /// the elapsed ns) otherwise.
    pub fn complete<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, call: u64) -> Option<SimDuration> {
        let Some(outstanding) = self.calls.remove(&call) else {
            ctx.trace(Component::Retry, "reply_discarded", call, 0);
            ctx.count("deadline.reply_discarded", 1);
            return None;
        };
        self.by_timer.remove(&outstanding.timer);
        ctx.cancel_timer(outstanding.timer);
        let elapsed = elapsed_since(outstanding.started_at, ctx.now_local());
        ctx.trace(Component::Retry, "replied", call, nanos_i64(elapsed));
        Some(elapsed)
    }

    /// Gives up on `call` without a reply or a timeout (the caller lost
    /// interest); returns whether it was outstanding. Not traced: the
    /// caller's own decision is what matters.
    pub fn cancel<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, call: u64) -> bool {
        let Some(outstanding) = self.calls.remove(&call) else {
            return false;
        };
        self.by_timer.remove(&outstanding.timer);
        ctx.cancel_timer(outstanding.timer);
        true
    }

    /// Hands a fired timer to the deadlines: if it was a call's deadline,
    /// the call is no longer outstanding and its id is returned (traced as
    /// `timed_out`, value: the timeout in ns). `None` for any other timer.
    pub fn on_timer<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId) -> Option<u64> {
        let call = self.by_timer.remove(&timer)?;
        let outstanding = self.calls.remove(&call).expect("a tracked timer has its call");
        ctx.trace(Component::Retry, "timed_out", call, nanos_i64(outstanding.timeout));
        ctx.count("deadline.timed_out", 1);
        Some(call)
    }
}

// ---------------------------------------------------------------------------
// Backoff

/// How a retry policy is set up.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    /// Attempts in all, the first one included (1: never retry).
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry.
    pub base_delay: SimDuration,
    /// The largest backoff ceiling.
    pub max_delay: SimDuration,
    /// How much the ceiling grows per retry; at least 1.
    pub multiplier: f64,
}

impl RetryConfig {
    /// Checks `max_attempts ≥ 1`, `0 < base_delay ≤ max_delay` and a
    /// finite `multiplier ≥ 1`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_attempts == 0 {
            return Err(ConfigError::new("retry.max_attempts", 0, "at least 1"));
        }
        if self.base_delay == SimDuration::ZERO {
            return Err(ConfigError::new("retry.base_delay", self.base_delay, "more than 0"));
        }
        if self.base_delay > self.max_delay {
            return Err(ConfigError::new(
                "retry.base_delay",
                self.base_delay,
                format!("at most retry.max_delay ({})", self.max_delay),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(ConfigError::new(
                "retry.multiplier",
                self.multiplier,
                "a finite number of at least 1",
            ));
        }
        Ok(())
    }
}

/// When to try again: exponential backoff with full jitter.
///
/// Retry `k` (0 for the first retry, i.e. the second attempt) waits a
/// duration drawn uniformly from `0..=ceiling(k)` whole nanoseconds, where
/// `ceiling(k) = min(max_delay, base_delay · multiplier^k)`. Full jitter
/// spreads the retries of callers that failed at the same moment over the
/// whole interval, which is what breaks up synchronised retry waves.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    config: RetryConfig,
}

/// What [`RetryPolicy::schedule_retry`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// A timer was set; retry when it fires.
    Scheduled {
        /// The timer (its tag is the call id).
        timer: TimerId,
        /// The jittered delay.
        delay: SimDuration,
    },
    /// `max_attempts` attempts were made: give up.
    AttemptsExhausted,
    /// The retry budget is spent: give up rather than add to the storm.
    BudgetExhausted,
}

impl RetryPolicy {
    /// A policy under a validated `config`.
    pub fn new(config: RetryConfig) -> Result<RetryPolicy, ConfigError> {
        config.validate()?;
        Ok(RetryPolicy { config })
    }

    /// The configuration.
    pub fn config(&self) -> &RetryConfig {
        &self.config
    }

    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn may_retry(&self, attempts_made: u32) -> bool {
        attempts_made < self.config.max_attempts
    }

    /// The upper bound of the delay before retry `retry` (0-based):
    /// `min(max_delay, base_delay · multiplier^retry)`, rounded to the
    /// nanosecond. Computed with `libm` so it is the same on every machine.
    pub fn backoff_ceiling(&self, retry: u32) -> SimDuration {
        let max = self.config.max_delay.as_nanos();
        let grown = self.config.base_delay.as_nanos() as f64
            * libm::pow(self.config.multiplier, f64::from(retry));
        // Compare before converting: a huge power must not wrap around.
        if grown >= max as f64 {
            return self.config.max_delay;
        }
        SimDuration::from_nanos((libm::round(grown) as u64).min(max))
    }

    /// The jittered delay before retry `retry`: uniform over
    /// `0..=backoff_ceiling(retry)` nanoseconds, drawn from `stream`.
    pub fn backoff(&self, retry: u32, stream: &mut Stream) -> SimDuration {
        let ceiling = self.backoff_ceiling(retry).as_nanos();
        let delay = match ceiling.checked_add(1) {
            Some(bound) => stream.below(bound),
            None => stream.next_u64(),
        };
        SimDuration::from_nanos(delay)
    }

    /// The delay before the next attempt after `attempts_made` attempts
    /// (at least 1: the first attempt waits for nothing), or `None` if no
    /// attempt is left.
    pub fn next_delay(&self, attempts_made: u32, stream: &mut Stream) -> Option<SimDuration> {
        if !self.may_retry(attempts_made) || attempts_made == 0 {
            return None;
        }
        Some(self.backoff(attempts_made - 1, stream))
    }

    /// Decides whether `call`, which has failed `attempts_made` times
    /// (at least 1), is tried again: checks the attempts left, then the
    /// `budget` if any, then draws the jittered delay from the process's
    /// stream and sets a timer tagged with `call`.
    ///
    /// Traces `retry_scheduled` (value: the attempt that will follow, from
    /// 2), `gave_up` (value: attempts made) or `retry_denied` (value:
    /// attempts made), with the metrics `retry.scheduled`, `retry.gave_up`
    /// and `retry.denied`.
    pub fn schedule_retry<M: Message>(
        &self,
        ctx: &mut Ctx<'_, M>,
        budget: Option<&mut RetryBudget>,
        call: u64,
        attempts_made: u32,
    ) -> RetryOutcome {
        assert!(attempts_made >= 1, "a retry follows at least one attempt");
        if !self.may_retry(attempts_made) {
            ctx.trace(Component::Retry, "gave_up", call, i64::from(attempts_made));
            ctx.count("retry.gave_up", 1);
            return RetryOutcome::AttemptsExhausted;
        }
        if let Some(budget) = budget
            && !budget.try_retry(ctx.now_local())
        {
            ctx.trace(Component::Retry, "retry_denied", call, i64::from(attempts_made));
            ctx.count("retry.denied", 1);
            return RetryOutcome::BudgetExhausted;
        }
        let delay = self.backoff(attempts_made - 1, ctx.rng());
        let timer = ctx.set_timer(delay, call);
        ctx.trace(Component::Retry, "retry_scheduled", call, i64::from(attempts_made) + 1);
        ctx.count("retry.scheduled", 1);
        RetryOutcome::Scheduled { timer, delay }
    }
}

// ---------------------------------------------------------------------------
// Retry budget

/// How a retry budget is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryBudgetConfig {
    /// The sliding window over which requests and retries are counted.
    pub window: SimDuration,
    /// How many buckets the window is cut into; the window slides one
    /// bucket at a time, and memory is one small record per bucket.
    pub bucket_count: u32,
    /// Retries allowed per 100 first-attempt requests in the window
    /// (0 to 100).
    pub ratio_percent: u32,
    /// Retries always allowed per window, however few requests there were,
    /// so that a quiet caller can still retry.
    pub min_retries: u32,
}

impl RetryBudgetConfig {
    /// Checks a positive window, at least one bucket of at least 1 ns, and
    /// a ratio of at most 100%.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.window == SimDuration::ZERO || self.window.as_nanos() > i64::MAX as u64 {
            return Err(ConfigError::new(
                "retry_budget.window",
                self.window,
                "more than 0 and less than 292 years",
            ));
        }
        if self.bucket_count == 0 || u64::from(self.bucket_count) > self.window.as_nanos() {
            return Err(ConfigError::new(
                "retry_budget.bucket_count",
                self.bucket_count,
                "at least 1 and at most the window in nanoseconds",
            ));
        }
        if self.ratio_percent > 100 {
            return Err(ConfigError::new(
                "retry_budget.ratio_percent",
                format!("{}%", self.ratio_percent),
                "0% to 100%",
            ));
        }
        Ok(())
    }
}

/// Bounds retries to `ratio_percent` of recent first-attempt requests, plus
/// `min_retries`, over a sliding window.
///
/// The window is the current bucket and the `bucket_count - 1` before it
/// (buckets are aligned on multiples of `window / bucket_count` of the local
/// clock). A retry is allowed when, counting it, the retries in the window
/// stay within `ratio_percent × requests / 100 + min_retries`. If the clock
/// steps backwards, the budget keeps counting in its newest bucket rather
/// than reopening old ones.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    config: RetryBudgetConfig,
    bucket_width: i64,
    /// Oldest first; at most `bucket_count` entries, indices increasing.
    buckets: VecDeque<BudgetBucket>,
}

#[derive(Clone, Copy, Debug)]
struct BudgetBucket {
    index: i64,
    requests: u64,
    retries: u64,
}

/// What a retry budget's window holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BudgetCounts {
    /// First-attempt requests recorded.
    pub requests: u64,
    /// Retries allowed.
    pub retries: u64,
}

impl RetryBudget {
    /// A budget under a validated `config`.
    pub fn new(config: RetryBudgetConfig) -> Result<RetryBudget, ConfigError> {
        config.validate()?;
        let bucket_width = (config.window.as_nanos() / u64::from(config.bucket_count)) as i64;
        let buckets = VecDeque::with_capacity(config.bucket_count as usize);
        Ok(RetryBudget { config, bucket_width, buckets })
    }

    /// The configuration.
    pub fn config(&self) -> &RetryBudgetConfig {
        &self.config
    }

    /// The width of one bucket.
    pub fn bucket_width(&self) -> SimDuration {
        SimDuration::from_nanos(self.bucket_width as u64)
    }

    /// Records a first attempt (not a retry) at `now`.
    pub fn record_request(&mut self, now: LocalTime) {
        self.current(now).requests += 1;
    }

    /// Takes one retry from the budget at `now` if it allows one; returns
    /// whether it did.
    pub fn try_retry(&mut self, now: LocalTime) -> bool {
        self.current(now);
        let counts = self.sum();
        let allowed = u128::from(self.config.ratio_percent) * u128::from(counts.requests)
            + u128::from(self.config.min_retries) * 100;
        if (u128::from(counts.retries) + 1) * 100 > allowed {
            return false;
        }
        self.buckets.back_mut().expect("current made a bucket").retries += 1;
        true
    }

    /// What the window ending at `now` holds.
    pub fn counts(&mut self, now: LocalTime) -> BudgetCounts {
        self.current(now);
        self.sum()
    }

    fn sum(&self) -> BudgetCounts {
        self.buckets.iter().fold(BudgetCounts::default(), |sum, bucket| BudgetCounts {
            requests: sum.requests + bucket.requests,
            retries: sum.retries + bucket.retries,
        })
    }

    /// Slides the window to `now` and returns its newest bucket.
    fn current(&mut self, now: LocalTime) -> &mut BudgetBucket {
        let newest = self.buckets.back().map(|bucket| bucket.index);
        // A clock stepped backwards keeps counting in the newest bucket.
        let index = now.as_nanos().div_euclid(self.bucket_width).max(newest.unwrap_or(i64::MIN));
        let oldest_kept = index.saturating_sub(i64::from(self.config.bucket_count) - 1);
        while self.buckets.front().is_some_and(|bucket| bucket.index < oldest_kept) {
            self.buckets.pop_front();
        }
        if newest != Some(index) {
            self.buckets.push_back(BudgetBucket { index, requests: 0, retries: 0 });
        }
        self.buckets.back_mut().expect("just pushed or kept")
    }
}

// ---------------------------------------------------------------------------
// Idempotency keys

/// What the [`Deduplicator`] knew about a key when a request carrying it
/// arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen<R> {
    /// First time: execute the request, then
    /// [`complete`](Deduplicator::complete) it with the response. Making
    /// room for the key may have forgotten the oldest key.
    New {
        /// The key forgotten to make room, if any.
        evicted: Option<u64>,
    },
    /// A duplicate of a request still being executed: drop it, the
    /// response will follow the first copy.
    InProgress,
    /// A duplicate of a completed request: send this cached response again
    /// instead of executing it twice.
    Completed(R),
}

/// The receiver's memory of idempotency keys: the last `capacity` keys and
/// their cached responses, oldest forgotten first.
///
/// Memory is bounded, so the guarantee is too: a duplicate that arrives
/// after `capacity` newer keys have pushed its key out is executed again
/// (traced as `key_evicted` when the key is dropped). Size the capacity to
/// cover the keys a sender can still retry.
#[derive(Clone, Debug)]
pub struct Deduplicator<R> {
    capacity: usize,
    /// `None` while the request is being executed.
    entries: BTreeMap<u64, Option<R>>,
    /// Keys in arrival order, oldest first.
    order: VecDeque<u64>,
}

impl<R: Clone> Deduplicator<R> {
    /// A deduplicator remembering up to `capacity` keys (at least 1).
    pub fn new(capacity: usize) -> Result<Deduplicator<R>, ConfigError> {
        if capacity == 0 {
            return Err(ConfigError::new("deduplicator.capacity", 0, "at least 1"));
        }
        Ok(Deduplicator { capacity, entries: BTreeMap::new(), order: VecDeque::new() })
    }

    /// How many keys it remembers now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it remembers no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks `key` up; a new key is remembered as in progress.
    pub fn begin(&mut self, key: u64) -> Seen<R> {
        match self.entries.get(&key) {
            Some(Some(response)) => return Seen::Completed(response.clone()),
            Some(None) => return Seen::InProgress,
            None => {}
        }
        let mut evicted = None;
        if self.entries.len() >= self.capacity {
            let oldest = self.order.pop_front().expect("a full deduplicator has keys");
            self.entries.remove(&oldest);
            evicted = Some(oldest);
        }
        self.entries.insert(key, None);
        self.order.push_back(key);
        Seen::New { evicted }
    }

    /// Caches the response to `key`'s request; returns `false` (and caches
    /// nothing) if the key was forgotten meanwhile.
    pub fn complete(&mut self, key: u64, response: R) -> bool {
        match self.entries.get_mut(&key) {
            Some(slot) => {
                *slot = Some(response);
                true
            }
            None => false,
        }
    }

    /// [`begin`](Deduplicator::begin), traced: `accepted` for a new key,
    /// `duplicate_replayed` or `duplicate_dropped` for a duplicate (with the
    /// metric `dedup.duplicates`), and `key_evicted` for a forgotten key.
    pub fn admit<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, key: u64) -> Seen<R> {
        let seen = self.begin(key);
        match &seen {
            Seen::New { evicted } => {
                if let Some(evicted) = evicted {
                    ctx.trace(Component::Retry, "key_evicted", *evicted, 0);
                    ctx.count("dedup.evicted", 1);
                }
                ctx.trace(Component::Retry, "accepted", key, 0);
            }
            Seen::InProgress => {
                ctx.trace(Component::Retry, "duplicate_dropped", key, 0);
                ctx.count("dedup.duplicates", 1);
            }
            Seen::Completed(_) => {
                ctx.trace(Component::Retry, "duplicate_replayed", key, 0);
                ctx.count("dedup.duplicates", 1);
            }
        }
        seen
    }
}

fn nanos_i64(duration: SimDuration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

/// The local time from `start` to `end`, zero if the clock stepped back.
fn elapsed_since(start: LocalTime, end: LocalTime) -> SimDuration {
    SimDuration::from_nanos(end.as_nanos().saturating_sub(start.as_nanos()).max(0) as u64)
}

#[cfg(test)]
mod tests;
