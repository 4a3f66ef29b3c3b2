//! Virtual time: integer nanoseconds, never floats in an ordering key.
//!
//! [`SimTime`] is an instant on the simulator's global timeline (which no
//! process can read directly: processes see their node's skewed clock).
//! [`SimDuration`] is a span between two instants.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An instant of simulated time, in nanoseconds since the start of the run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SimTime(u64);

/// A span of simulated time, in nanoseconds.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct SimDuration(u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The largest representable instant (about 584 years).
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// An instant `nanos` nanoseconds after the start of the run.
    pub const fn from_nanos(nanos: u64) -> SimTime {
        SimTime(nanos)
    }
    /// Nanoseconds since the start of the run.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Seconds since the start of the run, for reports and charts only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// The span from `earlier` to `self`; panics if `earlier` is later,
    /// because time never runs backwards on the global timeline.
    pub fn since(self, earlier: SimTime) -> SimDuration {
        assert!(earlier.0 <= self.0, "time went backwards: {earlier} > {self}");
        SimDuration(self.0 - earlier.0)
    }
    /// `self + duration`, saturating at [`SimTime::MAX`].
    pub fn saturating_add(self, duration: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(duration.0))
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);
    /// The largest representable span.
    pub const MAX: SimDuration = SimDuration(u64::MAX);

    /// A span of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: u64) -> SimDuration {
        SimDuration(nanos)
    }
    /// A span of `micros` microseconds.
    pub const fn from_micros(micros: u64) -> SimDuration {
        SimDuration(micros * 1_000)
    }
    /// A span of `millis` milliseconds.
    pub const fn from_millis(millis: u64) -> SimDuration {
        SimDuration(millis * 1_000_000)
    }
    /// A span of `secs` seconds.
    pub const fn from_secs(secs: u64) -> SimDuration {
        SimDuration(secs * 1_000_000_000)
    }
    /// A span of `secs` seconds given as a float, rounded to the nearest
    /// nanosecond. Negative and NaN inputs give zero, overly large ones
    /// saturate: callers validate user input before converting.
    pub fn from_secs_f64(secs: f64) -> SimDuration {
        SimDuration::from_nanos_f64(secs * 1e9)
    }
    /// A span of `nanos` nanoseconds given as a float (a sampled latency),
    /// rounded to the nearest nanosecond; negative and NaN give zero.
    pub fn from_nanos_f64(nanos: f64) -> SimDuration {
        // `as` saturates and maps NaN to 0, which is what we want here.
        SimDuration(libm::round(nanos) as u64)
    }
    /// The span in nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// The span in seconds, for reports only.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// The span in milliseconds, for reports only.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    /// `self + other`, saturating.
    pub fn saturating_add(self, other: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(other.0))
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    fn add(self, duration: SimDuration) -> SimTime {
        SimTime(self.0.checked_add(duration.0).expect("SimTime overflow"))
    }
}

impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, duration: SimDuration) {
        *self = *self + duration;
    }
}

impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    fn sub(self, earlier: SimTime) -> SimDuration {
        self.since(earlier)
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, other: SimDuration) -> SimDuration {
        SimDuration(self.0.checked_add(other.0).expect("SimDuration overflow"))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", SimDuration(self.0))
    }
}

impl fmt::Display for SimDuration {
    /// Human units: `1.5s`, `250ms`, `12us`, `800ns`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0;
        if nanos >= 1_000_000_000 {
            write!(f, "{}s", trim(nanos as f64 / 1e9))
        } else if nanos >= 1_000_000 {
            write!(f, "{}ms", trim(nanos as f64 / 1e6))
        } else if nanos >= 1_000 {
            write!(f, "{}us", trim(nanos as f64 / 1e3))
        } else {
            write!(f, "{nanos}ns")
        }
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Parses a duration with a unit: `250ms`, `1.5s`, `20us`, `800ns`.
/// A bare number is rejected, because a missing unit is a classic source of
/// off-by-1000 mistakes.
pub fn parse_duration(text: &str) -> Result<SimDuration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("`{text}` has no unit; use ns, us, ms or s (e.g. 250ms)"))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a number followed by a unit (ns, us, ms, s)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{text}` must be a non-negative duration"));
    }
    let scale = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => {
            return Err(format!("`{text}` has unknown unit `{unit}`; use ns, us, ms or s"));
        }
    };
    let nanos = value * scale;
    if nanos > u64::MAX as f64 / 2.0 {
        return Err(format!("`{text}` is too long a duration"));
    }
    Ok(SimDuration::from_nanos_f64(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_picks_human_units() {
        assert_eq!(SimDuration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(SimDuration::from_micros(250).to_string(), "250us");
        assert_eq!(SimDuration::from_nanos(7).to_string(), "7ns");
        assert_eq!(SimTime::from_nanos(2_000_000).to_string(), "2ms");
    }

    #[test]
    fn parse_duration_requires_a_unit() {
        assert_eq!(parse_duration("1.5s"), Ok(SimDuration::from_millis(1500)));
        assert_eq!(parse_duration("20us"), Ok(SimDuration::from_micros(20)));
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("3h").unwrap_err().contains("unknown unit"));
    }
}
