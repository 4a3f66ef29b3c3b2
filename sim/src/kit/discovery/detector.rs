//! Failure detectors: pure state machines fed the local arrival times of
//! heartbeats, which say whether a monitored process should be suspected.
//!
//! No detector can tell a crashed process from a slow one or a lossy link;
//! each only turns silence into suspicion, and they differ in how:
//! - [`TimeoutDetector`] suspects as soon as the silence exceeds a fixed
//!   timeout: simple, but one timeout must suit every network condition.
//! - [`PhiAccrualDetector`] (Hayashibara, Défago, Yared and Katayama, "The φ
//!   accrual failure detector", SRDS 2004) learns the distribution of
//!   recent inter-arrival intervals and outputs a level of suspicion, φ, on
//!   a continuous scale: φ = −log10 of the probability that a heartbeat
//!   still arrives later than the present silence. φ = 1 means a 10 %
//!   chance of being wrong to suspect, φ = 2 means 1 %, and so on. The
//!   process is suspected once φ reaches a threshold, so the same threshold
//!   adapts to a jittery link (slow rise) or a regular one (fast rise).
//!
//! [`Monitor`] wraps either and turns its yes/no answer into transitions
//! ([`Transition::Suspected`], [`Transition::Recovered`]) that a process can
//! trace.
//!
//! ```
//! use sim::LocalTime;
//! use sim::kit::discovery::{FailureDetector, PhiAccrualConfig, PhiAccrualDetector};
//! use sim::SimDuration;
//!
//! let interval = SimDuration::from_millis(100);
//! let mut detector =
//!     PhiAccrualDetector::new(PhiAccrualConfig::for_interval(interval), LocalTime(0)).unwrap();
//! // Ten regular heartbeats, every 100 ms.
//! for beat in 1..=10 {
//!     detector.heartbeat(LocalTime(beat * 100_000_000));
//! }
//! let last = 1_000_000_000;
//! // Shortly after the expected next beat there is little suspicion...
//! assert!(detector.phi(LocalTime(last + 110_000_000)) < 1.0);
//! // ...but after three missed beats the process is suspected.
//! assert!(detector.suspects(LocalTime(last + 300_000_000)));
//! ```

use crate::clock::LocalTime;
use crate::kit::ConfigError;
use crate::process::{Ctx, Message};
use crate::time::SimDuration;
use crate::trace::Component;
use std::collections::VecDeque;

/// What every failure detector offers: feed it heartbeats, ask it whether
/// it suspects, and ask when it will start suspecting if nothing arrives.
pub trait FailureDetector {
    /// A heartbeat arrived at local time `now`.
    fn heartbeat(&mut self, now: LocalTime);
    /// Whether the monitored process is suspected at local time `now`.
    fn suspects(&self, now: LocalTime) -> bool;
    /// The earliest local time at which [`FailureDetector::suspects`] turns
    /// true if no heartbeat arrives before; the time to set a timer for.
    fn suspicion_deadline(&self) -> LocalTime;
    /// The silence at `now`: time since the last heartbeat (zero if the
    /// clock has stepped back past it).
    fn silence(&self, now: LocalTime) -> SimDuration;
}

/// A change in what a [`Monitor`] thinks of the monitored process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// It was trusted and is now suspected.
    Suspected,
    /// It was suspected and a heartbeat arrived.
    Recovered,
}

impl Transition {
    /// The trace kind of this transition: `suspected` or `recovered`.
    pub fn kind(self) -> &'static str {
        match self {
            Transition::Suspected => "suspected",
            Transition::Recovered => "recovered",
        }
    }
}

/// Configuration of a [`TimeoutDetector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutDetectorConfig {
    /// Longest silence tolerated: suspicion starts when the silence is
    /// strictly longer.
    pub timeout: SimDuration,
}

impl TimeoutDetectorConfig {
    /// Rejects a zero timeout.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.timeout == SimDuration::ZERO {
            return Err(ConfigError::new("timeout_detector.timeout", self.timeout, "more than 0"));
        }
        Ok(())
    }
}

/// Suspects when the silence since the last heartbeat is longer than a
/// fixed timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeoutDetector {
    timeout: SimDuration,
    last_heartbeat: LocalTime,
}

impl TimeoutDetector {
    /// A detector that starts watching at `now`, counting the silence from
    /// then as if a heartbeat had just arrived.
    pub fn new(
        config: TimeoutDetectorConfig,
        now: LocalTime,
    ) -> Result<TimeoutDetector, ConfigError> {
        config.validate()?;
        Ok(TimeoutDetector { timeout: config.timeout, last_heartbeat: now })
    }

    /// The timeout.
    pub fn timeout(&self) -> SimDuration {
        self.timeout
    }

    /// When the last heartbeat arrived.
    pub fn last_heartbeat(&self) -> LocalTime {
        self.last_heartbeat
    }
}

impl FailureDetector for TimeoutDetector {
    fn heartbeat(&mut self, now: LocalTime) {
        // The latest arrival wins, even if a clock step made it read earlier
        // than the previous one: silence is measured from the last thing
        // heard, as the node's clock reads it now.
        self.last_heartbeat = now;
    }

    fn suspects(&self, now: LocalTime) -> bool {
        self.silence(now) > self.timeout
    }

    fn suspicion_deadline(&self) -> LocalTime {
        self.last_heartbeat.plus(self.timeout).plus(SimDuration::from_nanos(1))
    }

    fn silence(&self, now: LocalTime) -> SimDuration {
        silence_between(self.last_heartbeat, now)
    }
}

/// How the phi-accrual detector models the inter-arrival intervals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IntervalModel {
    /// A normal distribution with the window's mean and standard deviation
    /// (the original paper; Akka). Suspicion rises faster the more regular
    /// the heartbeats.
    #[default]
    Normal,
    /// An exponential distribution with the window's mean (Cassandra):
    /// φ grows linearly with the silence and ignores the spread.
    Exponential,
}

/// Configuration of a [`PhiAccrualDetector`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiAccrualConfig {
    /// Suspicion starts when φ reaches this level. Must be positive; 8 is
    /// Akka's default (a one-in-10^8 chance of a wrong suspicion if the
    /// model were exact).
    pub threshold: f64,
    /// How many recent intervals the model is fitted to, 1 to
    /// [`WINDOW_SIZE_MAX`].
    pub window_size: usize,
    /// A floor on the standard deviation, so that perfectly regular
    /// heartbeats do not make the slightest delay look fatal. Positive.
    pub min_std_deviation: SimDuration,
    /// A pause always tolerated on top of the mean interval (a garbage
    /// collection, a busy link).
    pub acceptable_pause: SimDuration,
    /// The interval assumed before any has been measured; the window
    /// starts with two samples a quarter above and below it, as Akka's
    /// does. Positive.
    pub first_interval_estimate: SimDuration,
    /// How the intervals are modelled.
    pub model: IntervalModel,
}

/// The largest window accepted: it keeps the detector's integer sums
/// exact (see [`PhiAccrualDetector`]) and its memory small.
pub const WINDOW_SIZE_MAX: usize = 10_000;

/// The longest interval the detector records; longer ones (a node that was
/// down for an hour) are clamped, which keeps the integer sums exact.
/// About 73 minutes.
pub const INTERVAL_MAX: SimDuration = SimDuration::from_nanos(1 << 42);

impl PhiAccrualConfig {
    /// Defaults for heartbeats every `heartbeat_interval`: threshold 8, a
    /// window of 100 intervals, a floor on the standard deviation of a
    /// tenth of the interval, no acceptable pause, the normal model.
    pub fn for_interval(heartbeat_interval: SimDuration) -> PhiAccrualConfig {
        PhiAccrualConfig {
            threshold: 8.0,
            window_size: 100,
            min_std_deviation: SimDuration::from_nanos((heartbeat_interval.as_nanos() / 10).max(1)),
            acceptable_pause: SimDuration::ZERO,
            first_interval_estimate: heartbeat_interval,
            model: IntervalModel::Normal,
        }
    }

    /// Rejects a threshold that is not a positive number, an empty or
    /// oversized window, and a zero floor or first estimate.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(self.threshold.is_finite() && self.threshold > 0.0) {
            return Err(ConfigError::new(
                "phi_accrual.threshold",
                self.threshold,
                "a finite number above 0",
            ));
        }
        if self.window_size == 0 || self.window_size > WINDOW_SIZE_MAX {
            return Err(ConfigError::new(
                "phi_accrual.window_size",
                self.window_size,
                format!("1 to {WINDOW_SIZE_MAX}"),
            ));
        }
        if self.min_std_deviation == SimDuration::ZERO {
            return Err(ConfigError::new(
                "phi_accrual.min_std_deviation",
                self.min_std_deviation,
                "more than 0",
            ));
        }
        if self.first_interval_estimate == SimDuration::ZERO {
            return Err(ConfigError::new(
                "phi_accrual.first_interval_estimate",
                self.first_interval_estimate,
                "more than 0",
            ));
        }
        Ok(())
    }
}

/// The φ accrual failure detector.
///
/// It keeps the last `window_size` inter-arrival intervals, in integer
/// nanoseconds with their exact integer sum and sum of squares, so the
/// fitted mean and standard deviation do not drift with rounding however
/// long it runs. φ at a given silence is −log10 of the model's probability
/// that the next heartbeat arrives even later. The maths comes from `libm`
/// (`erfc`, `log10`, `log`), so it is the same on every machine.
#[derive(Clone, Debug, PartialEq)]
pub struct PhiAccrualDetector {
    config: PhiAccrualConfig,
    intervals: VecDeque<u64>,
    sum: u128,
    sum_of_squares: u128,
    last_heartbeat: LocalTime,
}

impl PhiAccrualDetector {
    /// A detector that starts watching at `now` (counted as a first
    /// heartbeat), with its window seeded from the first estimate.
    pub fn new(
        config: PhiAccrualConfig,
        now: LocalTime,
    ) -> Result<PhiAccrualDetector, ConfigError> {
        config.validate()?;
        let mut detector = PhiAccrualDetector {
            config,
            intervals: VecDeque::with_capacity(config.window_size),
            sum: 0,
            sum_of_squares: 0,
            last_heartbeat: now,
        };
        let estimate = config.first_interval_estimate.as_nanos().min(INTERVAL_MAX.as_nanos());
        let spread = estimate / 4;
        detector.record_interval(estimate - spread);
        detector.record_interval(estimate + spread);
        Ok(detector)
    }

    /// The configuration.
    pub fn config(&self) -> &PhiAccrualConfig {
        &self.config
    }

    /// The intervals in the window, oldest first, in nanoseconds.
    pub fn intervals(&self) -> impl Iterator<Item = u64> + '_ {
        self.intervals.iter().copied()
    }

    /// The mean of the window's intervals, in nanoseconds.
    pub fn mean(&self) -> f64 {
        self.sum as f64 / self.intervals.len() as f64
    }

    /// The standard deviation of the window's intervals, in nanoseconds,
    /// before the floor of `min_std_deviation` is applied.
    pub fn std_deviation(&self) -> f64 {
        let count = self.intervals.len() as u128;
        // count² · variance = count · Σx² − (Σx)², exact in integers.
        let scaled = (count * self.sum_of_squares).saturating_sub(self.sum * self.sum);
        libm::sqrt(scaled as f64) / count as f64
    }

    /// The level of suspicion at local time `now`: 0 right after a
    /// heartbeat, rising with the silence, never negative, and possibly
    /// infinite for an absurdly long silence.
    pub fn phi(&self, now: LocalTime) -> f64 {
        let elapsed = self.silence(now).as_nanos() as f64;
        let mean = self.mean() + self.config.acceptable_pause.as_nanos() as f64;
        match self.config.model {
            IntervalModel::Normal => {
                let floor = self.config.min_std_deviation.as_nanos() as f64;
                let deviation = self.std_deviation().max(floor);
                phi_normal((elapsed - mean) / deviation)
            }
            // −log10(e^(−t/μ)) = t / (μ · ln 10), linear in the silence.
            IntervalModel::Exponential => elapsed / mean * core::f64::consts::LOG10_E,
        }
    }

    fn record_interval(&mut self, interval: u64) {
        let interval = interval.min(INTERVAL_MAX.as_nanos());
        if self.intervals.len() == self.config.window_size
            && let Some(oldest) = self.intervals.pop_front()
        {
            self.sum -= u128::from(oldest);
            self.sum_of_squares -= u128::from(oldest) * u128::from(oldest);
        }
        self.intervals.push_back(interval);
        self.sum += u128::from(interval);
        self.sum_of_squares += u128::from(interval) * u128::from(interval);
    }
}

impl FailureDetector for PhiAccrualDetector {
    fn heartbeat(&mut self, now: LocalTime) {
        let interval = self.silence(now).as_nanos();
        self.record_interval(interval);
        self.last_heartbeat = now;
    }

    fn suspects(&self, now: LocalTime) -> bool {
        self.phi(now) >= self.config.threshold
    }

    fn suspicion_deadline(&self) -> LocalTime {
        // φ is non-decreasing in the silence (a law the tests check), so the
        // first silence at which it reaches the threshold can be found by
        // doubling, then bisecting, over integer nanoseconds.
        let reaches = |silence: u64| {
            self.suspects(self.last_heartbeat.plus(SimDuration::from_nanos(silence)))
        };
        let mut high: u64 = 1;
        while !reaches(high) {
            if high >= 1 << 62 {
                return self.last_heartbeat.plus(SimDuration::MAX);
            }
            high *= 2;
        }
        let mut low = 0;
        if reaches(low) {
            return self.last_heartbeat;
        }
        // Invariant: not reached at `low`, reached at `high`.
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if reaches(middle) {
                high = middle;
            } else {
                low = middle;
            }
        }
        self.last_heartbeat.plus(SimDuration::from_nanos(high))
    }

    fn silence(&self, now: LocalTime) -> SimDuration {
        silence_between(self.last_heartbeat, now)
    }
}

/// Where `erfc` is replaced by its asymptotic series: `libm`'s `erfc` is
/// monotone on a fine scan up to about 27, where its results become
/// subnormal and lose precision; at 26, φ is already about 295.
const ASYMPTOTIC_FROM: f64 = 26.0;

/// φ for a silence `standardised` standard deviations above the mean,
/// under the normal model: −log10(½ · erfc(z / √2)).
fn phi_normal(standardised: f64) -> f64 {
    let z = standardised / core::f64::consts::SQRT_2;
    if z < ASYMPTOTIC_FROM {
        let later = 0.5 * libm::erfc(z);
        return (-libm::log10(later)).max(0.0);
    }
    // ln erfc(z) ≈ −z² − ln(z·√π) + ln(1 − 1/(2z²) + 3/(4z⁴)), whose next
    // term is below 10⁻⁸ here. Taking the maximum with φ at the switch
    // point keeps φ non-decreasing across it.
    let z_squared = z * z;
    let log_erfc = -z_squared - libm::log(z) - 0.5 * libm::log(core::f64::consts::PI)
        + libm::log1p(-1.0 / (2.0 * z_squared) + 3.0 / (4.0 * z_squared * z_squared));
    let asymptotic = (core::f64::consts::LN_2 - log_erfc) * core::f64::consts::LOG10_E;
    let at_switch = -libm::log10(0.5 * libm::erfc(ASYMPTOTIC_FROM));
    asymptotic.max(at_switch)
}

fn silence_between(last: LocalTime, now: LocalTime) -> SimDuration {
    let nanos = now.as_nanos().saturating_sub(last.as_nanos());
    SimDuration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// Either detector, chosen by configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DetectorConfig {
    /// A [`TimeoutDetector`].
    Timeout(TimeoutDetectorConfig),
    /// A [`PhiAccrualDetector`].
    PhiAccrual(PhiAccrualConfig),
}

impl DetectorConfig {
    /// Validates the chosen detector's configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            DetectorConfig::Timeout(config) => config.validate(),
            DetectorConfig::PhiAccrual(config) => config.validate(),
        }
    }
}

/// Either detector, built from a [`DetectorConfig`].
#[derive(Clone, Debug, PartialEq)]
pub enum Detector {
    /// A [`TimeoutDetector`].
    Timeout(TimeoutDetector),
    /// A [`PhiAccrualDetector`].
    PhiAccrual(PhiAccrualDetector),
}

impl Detector {
    /// Builds the configured detector, watching from `now`.
    pub fn new(config: DetectorConfig, now: LocalTime) -> Result<Detector, ConfigError> {
        Ok(match config {
            DetectorConfig::Timeout(config) => {
                Detector::Timeout(TimeoutDetector::new(config, now)?)
            }
            DetectorConfig::PhiAccrual(config) => {
                Detector::PhiAccrual(PhiAccrualDetector::new(config, now)?)
            }
        })
    }
}

impl FailureDetector for Detector {
    fn heartbeat(&mut self, now: LocalTime) {
        match self {
            Detector::Timeout(detector) => detector.heartbeat(now),
            Detector::PhiAccrual(detector) => detector.heartbeat(now),
        }
    }
    fn suspects(&self, now: LocalTime) -> bool {
        match self {
            Detector::Timeout(detector) => detector.suspects(now),
            Detector::PhiAccrual(detector) => detector.suspects(now),
        }
    }
    fn suspicion_deadline(&self) -> LocalTime {
        match self {
            Detector::Timeout(detector) => detector.suspicion_deadline(),
            Detector::PhiAccrual(detector) => detector.suspicion_deadline(),
        }
    }
    fn silence(&self, now: LocalTime) -> SimDuration {
        match self {
            Detector::Timeout(detector) => detector.silence(now),
            Detector::PhiAccrual(detector) => detector.silence(now),
        }
    }
}

/// A detector plus whether it currently suspects, so that each change of
/// mind is reported once, as a [`Transition`].
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor<D> {
    detector: D,
    suspected: bool,
}

impl<D: FailureDetector> Monitor<D> {
    /// Starts monitoring with a trusted process.
    pub fn new(detector: D) -> Monitor<D> {
        Monitor { detector, suspected: false }
    }

    /// The detector.
    pub fn detector(&self) -> &D {
        &self.detector
    }

    /// Whether the last check suspected the process.
    pub fn is_suspected(&self) -> bool {
        self.suspected
    }

    /// A heartbeat arrived at `now`; a suspected process recovers.
    pub fn heartbeat(&mut self, now: LocalTime) -> Option<Transition> {
        self.detector.heartbeat(now);
        if self.suspected {
            self.suspected = false;
            return Some(Transition::Recovered);
        }
        None
    }

    /// Checks at `now`; a trusted process whose detector now suspects it
    /// becomes suspected.
    pub fn check(&mut self, now: LocalTime) -> Option<Transition> {
        if !self.suspected && self.detector.suspects(now) {
            self.suspected = true;
            return Some(Transition::Suspected);
        }
        None
    }

    /// When to check next: the detector's suspicion deadline while the
    /// process is trusted, nothing while it is already suspected.
    pub fn next_check(&self) -> Option<LocalTime> {
        (!self.suspected).then(|| self.detector.suspicion_deadline())
    }

    /// [`Monitor::heartbeat`] at the node's time, tracing a recovery as
    /// `recovered` (key: `key`, value: the silence in nanoseconds).
    pub fn heartbeat_traced<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: u64,
    ) -> Option<Transition> {
        let now = ctx.now_local();
        let silence = self.detector.silence(now);
        let transition = self.heartbeat(now);
        trace_transition(ctx, transition, key, silence);
        transition
    }

    /// [`Monitor::check`] at the node's time, tracing a suspicion as
    /// `suspected` (key: `key`, value: the silence in nanoseconds).
    pub fn check_traced<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        key: u64,
    ) -> Option<Transition> {
        let now = ctx.now_local();
        let transition = self.check(now);
        trace_transition(ctx, transition, key, self.detector.silence(now));
        transition
    }
}

fn trace_transition<M: Message>(
    ctx: &mut Ctx<'_, M>,
    transition: Option<Transition>,
    key: u64,
    silence: SimDuration,
) {
    if let Some(transition) = transition {
        let value = i64::try_from(silence.as_nanos()).unwrap_or(i64::MAX);
        ctx.trace(Component::Discovery, transition.kind(), key, value);
        ctx.count(
            match transition {
                Transition::Suspected => "discovery.suspected",
                Transition::Recovered => "discovery.recovered",
            },
            1,
        );
    }
}
