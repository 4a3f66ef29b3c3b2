//! Node clocks: an offset, a drift and occasional steps.
//!
//! No process can read the global [`SimTime`]; it reads its node's
//! [`LocalTime`], which is the global time seen through the node's clock.
//! Timers are set in local time, so a fast clock fires timers early and a
//! clock stepped backwards delays them, as on real machines.
//!
//! All arithmetic is in integers (drift in parts per billion), so readings
//! are identical on every platform.

use crate::time::{SimDuration, SimTime};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A reading of a node's clock, in nanoseconds. Signed, because a clock that
/// starts behind reads negative values early in a run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LocalTime(pub i64);

impl LocalTime {
    /// The reading `duration` later on the same clock.
    pub fn plus(self, duration: SimDuration) -> LocalTime {
        LocalTime(self.0.saturating_add(i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)))
    }
    /// Nanoseconds.
    pub fn as_nanos(self) -> i64 {
        self.0
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 0 {
            write!(f, "-{}", SimDuration::from_nanos(self.0.unsigned_abs()))
        } else {
            write!(f, "{}", SimDuration::from_nanos(self.0 as u64))
        }
    }
}

/// How a node's clock differs from the global timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClockConfig {
    /// Reading at global time zero, in nanoseconds (negative: behind).
    pub offset_ns: i64,
    /// Rate error in parts per million (positive: runs fast).
    pub drift_ppm: f64,
}

/// The largest drift accepted, in ppm. Real oscillators are within about
/// 100 ppm; a factor of ten beyond that still makes sense for a lesson.
pub const DRIFT_PPM_MAX: f64 = 1_000.0;

impl ClockConfig {
    /// A perfect clock.
    pub const PERFECT: ClockConfig = ClockConfig { offset_ns: 0, drift_ppm: 0.0 };

    /// Checks the drift is finite and within [`DRIFT_PPM_MAX`].
    pub fn validate(&self) -> Result<(), String> {
        if !self.drift_ppm.is_finite() || self.drift_ppm.abs() > DRIFT_PPM_MAX {
            return Err(format!(
                "clock.drift_ppm = {}: expected a number between -{DRIFT_PPM_MAX} and {DRIFT_PPM_MAX}",
                self.drift_ppm
            ));
        }
        Ok(())
    }
}

/// The state of one node's clock: a piecewise-linear map from global to
/// local time, re-anchored at each step.
#[derive(Clone, Debug)]
pub struct Clock {
    anchor_global: u64,
    anchor_local: i64,
    drift_ppb: i64,
}

const BILLION: i128 = 1_000_000_000;

impl Clock {
    /// A clock set up by `config` at global time zero.
    pub fn new(config: ClockConfig) -> Clock {
        Clock {
            anchor_global: 0,
            anchor_local: config.offset_ns,
            drift_ppb: libm::round(config.drift_ppm * 1_000.0) as i64,
        }
    }

    /// The reading at global time `now`.
    pub fn read(&self, now: SimTime) -> LocalTime {
        // Most clocks never drift: plain integer arithmetic then, and the
        // 128-bit path (a division per timer) only where it is needed.
        if self.drift_ppb == 0
            && let Ok(elapsed) = i64::try_from(now.as_nanos() - self.anchor_global)
            && let Some(local) = self.anchor_local.checked_add(elapsed)
        {
            return LocalTime(local);
        }
        let elapsed = i128::from(now.as_nanos() - self.anchor_global);
        // Floor division keeps the reading monotone for negative drift too.
        let local = i128::from(self.anchor_local)
            + elapsed
            + (elapsed * i128::from(self.drift_ppb)).div_euclid(BILLION);
        LocalTime(local.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
    }

    /// The earliest global time at or after `now` at which the clock reads
    /// at least `target`.
    pub fn when_reads(&self, target: LocalTime, now: SimTime) -> SimTime {
        if self.read(now) >= target {
            return now;
        }
        if self.drift_ppb == 0 {
            // Local time runs at the global rate: the target is reached
            // exactly `target - reading` later.
            let ahead = target.0.checked_sub(self.read(now).0).and_then(|d| u64::try_from(d).ok());
            if let Some(at) = ahead.and_then(|ahead| now.as_nanos().checked_add(ahead)) {
                return SimTime::from_nanos(at);
            }
        }
        let needed = i128::from(target.0) - i128::from(self.anchor_local);
        // Invert local = anchor + e + e*d/1e9, then correct the rounding by
        // stepping forward until the forward map agrees.
        let rate = BILLION + i128::from(self.drift_ppb);
        let mut elapsed = (needed * BILLION + rate - 1) / rate;
        elapsed = elapsed.max(0);
        let mut global =
            (i128::from(self.anchor_global) + elapsed).min(i128::from(u64::MAX)) as u64;
        global = global.max(now.as_nanos());
        while global < u64::MAX && self.read(SimTime::from_nanos(global)) < target {
            global += 1;
        }
        while global > now.as_nanos() && self.read(SimTime::from_nanos(global - 1)) >= target {
            global -= 1;
        }
        SimTime::from_nanos(global.max(now.as_nanos()))
    }

    /// Jumps the clock by `delta_ns` at global time `now`.
    pub fn step(&mut self, now: SimTime, delta_ns: i64) {
        let reading = self.read(now);
        self.anchor_global = now.as_nanos();
        self.anchor_local = reading.0.saturating_add(delta_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_and_drift_show_in_readings() {
        let clock = Clock::new(ClockConfig { offset_ns: -300_000_000, drift_ppm: 100.0 });
        // After 10 s a 100 ppm clock has gained 1 ms, on top of its offset.
        let reading = clock.read(SimTime::from_nanos(10_000_000_000));
        assert_eq!(reading, LocalTime(10_000_000_000 - 300_000_000 + 1_000_000));
    }

    #[test]
    fn a_backward_step_delays_a_timer() {
        let mut clock = Clock::new(ClockConfig::PERFECT);
        let now = SimTime::from_nanos(1_000);
        let deadline = clock.read(now).plus(SimDuration::from_nanos(500));
        assert_eq!(clock.when_reads(deadline, now), SimTime::from_nanos(1_500));
        clock.step(now, -200);
        assert_eq!(clock.when_reads(deadline, now), SimTime::from_nanos(1_700));
    }

    proptest! {
        /// `when_reads` is the exact inverse of `read`: the clock reads the
        /// target then and not one nanosecond earlier (unless that is `now`).
        #[test]
        fn when_reads_inverts_read(
            offset in -1_000_000_000i64..1_000_000_000,
            // A third of the cases without drift, for the integer fast path.
            drift in prop_oneof![Just(0.0f64), -1000.0f64..1000.0, -0.5f64..0.5],
            now in 0u64..1_000_000_000_000,
            ahead in 0u64..1_000_000_000_000,
        ) {
            let clock = Clock::new(ClockConfig { offset_ns: offset, drift_ppm: drift });
            let now = SimTime::from_nanos(now);
            let target = clock.read(now).plus(SimDuration::from_nanos(ahead));
            let at = clock.when_reads(target, now);
            prop_assert!(clock.read(at) >= target);
            if at > now {
                prop_assert!(clock.read(SimTime::from_nanos(at.as_nanos() - 1)) < target);
            }
        }
    }
}
