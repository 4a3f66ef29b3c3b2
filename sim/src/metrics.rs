//! Metrics: counters, latency histograms, and series over simulated time.
//!
//! Histograms are HDR histograms (3 significant digits, nanoseconds), so
//! percentiles stay accurate from microseconds to minutes in bounded memory.
//! Time-weighted quantities (queue lengths, busy cores) are integrated
//! exactly in integers by [`TimeWeighted`], both over the whole run and per
//! interval of simulated time.

use crate::time::{SimDuration, SimTime};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;

/// All named metrics of a run. Names are kept sorted, so iteration and
/// output order never depend on hashing.
#[derive(Clone, Debug)]
pub struct Metrics {
    interval: SimDuration,
    counters: Named<u64>,
    histograms: Named<Histogram<u64>>,
    series: Named<Series>,
}

/// Values by name, sorted by name, with a small cache in front of the
/// sorted index.
///
/// Components count under string literals thousands of times a simulated
/// second, and a sorted-map search per count was a measurable share of a
/// large run. A literal has one address for the whole run, so the cache
/// is indexed by the name's address: a hit costs one comparison of the
/// name (which is what makes a reused address of a freed, different
/// string harmless). The cache decides only how fast a value is found,
/// never which value, so addresses cannot leak into behaviour.
#[derive(Clone, Debug)]
struct Named<T> {
    index: BTreeMap<String, usize>,
    entries: Vec<(String, T)>,
    recent: [(usize, usize); RECENT_NAMES],
}

/// Slots in a [`Named`] cache; a run uses a few dozen names.
const RECENT_NAMES: usize = 64;

impl<T> Named<T> {
    fn new() -> Named<T> {
        Named {
            index: BTreeMap::new(),
            entries: Vec::new(),
            recent: [(0, usize::MAX); RECENT_NAMES],
        }
    }

    #[inline]
    fn recent_slot(name: &str) -> usize {
        // String data is at least byte-aligned and literals sit close
        // together; dropping the lowest bits spreads them over the slots.
        (name.as_ptr() as usize >> 3) % RECENT_NAMES
    }

    #[inline]
    fn position(&mut self, name: &str) -> Option<usize> {
        let slot = Self::recent_slot(name);
        let (address, position) = self.recent[slot];
        if address == name.as_ptr() as usize
            && let Some((known, _)) = self.entries.get(position)
            && known == name
        {
            return Some(position);
        }
        let position = *self.index.get(name)?;
        self.recent[slot] = (name.as_ptr() as usize, position);
        Some(position)
    }

    #[inline]
    fn get_or_insert_with(&mut self, name: &str, make: impl FnOnce() -> T) -> &mut T {
        let position = match self.position(name) {
            Some(position) => position,
            None => {
                let position = self.entries.len();
                self.entries.push((name.to_string(), make()));
                self.index.insert(name.to_string(), position);
                self.recent[Self::recent_slot(name)] = (name.as_ptr() as usize, position);
                position
            }
        };
        &mut self.entries[position].1
    }

    fn get(&self, name: &str) -> Option<&T> {
        self.index.get(name).map(|&position| &self.entries[position].1)
    }

    /// Every entry, sorted by name.
    fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.index.iter().map(|(name, &position)| (name.as_str(), &self.entries[position].1))
    }
}

/// Summary statistics of a latency histogram, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of observations.
    pub count: u64,
    /// Mean.
    pub mean_ns: f64,
    /// Median.
    pub p50_ns: u64,
    /// 95th percentile.
    pub p95_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// Largest observation.
    pub max_ns: u64,
}

/// Values sampled over time, bucketed by the metrics interval.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Series {
    /// One bucket per interval, from time zero; empty buckets have count 0.
    pub buckets: Vec<Bucket>,
}

/// One interval of a [`Series`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Samples in the interval.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Metrics {
    /// Empty metrics whose series use buckets of `interval`.
    pub fn new(interval: SimDuration) -> Metrics {
        assert!(interval > SimDuration::ZERO, "metrics interval must be positive");
        Metrics { interval, counters: Named::new(), histograms: Named::new(), series: Named::new() }
    }

    /// The width of one series bucket.
    pub fn interval(&self) -> SimDuration {
        self.interval
    }

    /// Adds to a counter.
    pub fn count(&mut self, name: &str, amount: u64) {
        *self.counters.get_or_insert_with(name, || 0) += amount;
    }

    /// Records a duration in a histogram.
    pub fn observe(&mut self, name: &str, duration: SimDuration) {
        let histogram = self.histograms.get_or_insert_with(name, || {
            Histogram::new(3).expect("3 significant digits is a valid precision")
        });
        // The histogram grows to fit; only a value beyond what it can ever
        // represent is clamped.
        if histogram.record(duration.as_nanos()).is_err() {
            histogram.saturating_record(duration.as_nanos());
        }
    }

    /// Adds a sample to a series at time `at`.
    pub fn sample(&mut self, name: &str, at: SimTime, value: f64) {
        let index = (at.as_nanos() / self.interval.as_nanos()) as usize;
        let series = self.series.get_or_insert_with(name, Series::default);
        if series.buckets.len() <= index {
            series.buckets.resize(index + 1, Bucket::default());
        }
        let bucket = &mut series.buckets[index];
        if bucket.count == 0 {
            bucket.min = value;
            bucket.max = value;
        } else {
            bucket.min = bucket.min.min(value);
            bucket.max = bucket.max.max(value);
        }
        bucket.count += 1;
        bucket.sum += value;
    }

    /// A counter's value (0 if never counted).
    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// All counters, sorted by name.
    pub fn counters(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counters.iter().map(|(name, &value)| (name, value))
    }

    /// A histogram's summary, if anything was observed under `name`.
    pub fn latency(&self, name: &str) -> Option<LatencySummary> {
        let histogram = self.histograms.get(name)?;
        Some(LatencySummary {
            count: histogram.len(),
            mean_ns: histogram.mean(),
            p50_ns: histogram.value_at_quantile(0.50),
            p95_ns: histogram.value_at_quantile(0.95),
            p99_ns: histogram.value_at_quantile(0.99),
            max_ns: histogram.max(),
        })
    }

    /// Names of all histograms, sorted.
    pub fn histogram_names(&self) -> impl Iterator<Item = &str> {
        self.histograms.iter().map(|(name, _)| name)
    }

    /// A series, if anything was sampled under `name`.
    pub fn series(&self, name: &str) -> Option<&Series> {
        self.series.get(name)
    }
}

/// A quantity that holds a value over time (a queue length, busy cores),
/// integrated exactly: the sum of value × nanoseconds, in total and per
/// interval of simulated time.
///
/// The per-interval series is bounded: when it would exceed
/// [`TimeWeighted::INTERVALS_MAX`] entries, neighbouring intervals are
/// merged and the interval doubles, so a long run keeps its whole history
/// at a coarser grain instead of growing without limit.
#[derive(Clone, Debug)]
pub struct TimeWeighted {
    value: u64,
    max: u64,
    since: u64,
    interval_ns: u64,
    total: u128,
    per_interval: Vec<u128>,
}

impl TimeWeighted {
    /// The longest per-interval series kept before intervals are merged.
    pub const INTERVALS_MAX: usize = 4096;

    /// Starts at zero at time zero.
    pub fn new(interval: SimDuration) -> TimeWeighted {
        TimeWeighted {
            value: 0,
            max: 0,
            since: 0,
            interval_ns: interval.as_nanos().max(1),
            total: 0,
            per_interval: Vec::new(),
        }
    }

    /// Brings the integral up to `now` without changing the value.
    #[inline]
    pub fn advance(&mut self, now: SimTime) {
        let now = now.as_nanos();
        debug_assert!(now >= self.since);
        if self.value == 0 {
            self.since = now;
            return;
        }
        while self.since < now {
            let index = (self.since / self.interval_ns) as usize;
            let end = now.min((index as u64 + 1) * self.interval_ns);
            let area = u128::from(self.value) * u128::from(end - self.since);
            if self.per_interval.len() <= index {
                if index >= Self::INTERVALS_MAX {
                    self.coarsen();
                    continue;
                }
                self.per_interval.resize(index + 1, 0);
            }
            self.per_interval[index] += area;
            self.total += area;
            self.since = end;
        }
    }

    /// Merges neighbouring intervals pairwise and doubles the interval.
    fn coarsen(&mut self) {
        let merged: Vec<u128> = self.per_interval.chunks(2).map(|pair| pair.iter().sum()).collect();
        self.per_interval = merged;
        self.interval_ns *= 2;
    }

    /// The current width of one interval of the series.
    pub fn interval(&self) -> SimDuration {
        SimDuration::from_nanos(self.interval_ns)
    }

    /// Sets a new value from `now` on.
    #[inline]
    pub fn set(&mut self, now: SimTime, value: u64) {
        self.advance(now);
        self.value = value;
        self.max = self.max.max(value);
    }

    /// The current value.
    pub fn value(&self) -> u64 {
        self.value
    }

    /// The largest value held.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The time average from zero to `until` (call [`TimeWeighted::advance`]
    /// first so the integral reaches `until`).
    pub fn mean(&self, until: SimTime) -> f64 {
        if until == SimTime::ZERO {
            return 0.0;
        }
        self.total as f64 / until.as_nanos() as f64
    }

    /// The time average from zero to `now`, as if advanced to `now`, without
    /// changing anything (so a view can read it without cloning the series).
    pub fn mean_at(&self, now: SimTime) -> f64 {
        if now == SimTime::ZERO {
            return 0.0;
        }
        let pending =
            u128::from(self.value) * u128::from(now.as_nanos().saturating_sub(self.since));
        (self.total + pending) as f64 / now.as_nanos() as f64
    }

    /// The integral of value × nanoseconds so far.
    pub fn integral(&self) -> u128 {
        self.total
    }

    /// The time average within each interval so far.
    pub fn interval_means(&self) -> Vec<f64> {
        self.per_interval.iter().map(|area| *area as f64 / self.interval_ns as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_found_by_name_not_by_address() {
        let mut metrics = Metrics::new(SimDuration::from_secs(1));
        // Freed and reallocated names of one length often share an
        // address; each must still count under its own name.
        for round in 0..50u64 {
            let name = format!("name.{}", round % 7);
            metrics.count(&name, 1);
            drop(name);
            metrics.count("literal", 2);
        }
        let counters: Vec<(&str, u64)> = metrics.counters().collect();
        let mut expected: Vec<(String, u64)> = (0..7u64)
            .map(|k| (format!("name.{k}"), (0..50).filter(|r| r % 7 == k).count() as u64))
            .collect();
        expected.insert(0, ("literal".to_string(), 100));
        let expected: Vec<(&str, u64)> = expected.iter().map(|(n, v)| (n.as_str(), *v)).collect();
        assert_eq!(counters, expected, "sorted by name, each under its own name");
        assert_eq!(metrics.counter("name.3"), 7);
        assert_eq!(metrics.counter("missing"), 0);
    }

    #[test]
    fn time_weighted_mean_splits_across_intervals() {
        let mut queue = TimeWeighted::new(SimDuration::from_nanos(10));
        queue.set(SimTime::from_nanos(5), 2);
        queue.set(SimTime::from_nanos(15), 0);
        queue.advance(SimTime::from_nanos(20));
        // 2 for 10 ns out of 20: mean 1; 5 ns in each of the two intervals.
        assert_eq!(queue.mean(SimTime::from_nanos(20)), 1.0);
        assert_eq!(queue.interval_means(), vec![1.0, 1.0]);
        let mut later = queue.clone();
        later.advance(SimTime::from_nanos(40));
        assert_eq!(queue.mean_at(SimTime::from_nanos(40)), later.mean(SimTime::from_nanos(40)));
        assert_eq!(queue.max(), 2);
    }

    #[test]
    fn the_series_coarsens_instead_of_growing_without_bound() {
        let mut queue = TimeWeighted::new(SimDuration::from_nanos(1));
        queue.set(SimTime::ZERO, 1);
        let end = SimTime::from_nanos(10 * TimeWeighted::INTERVALS_MAX as u64);
        queue.advance(end);
        let means = queue.interval_means();
        assert!(means.len() <= TimeWeighted::INTERVALS_MAX);
        assert_eq!(queue.interval(), SimDuration::from_nanos(16));
        assert!(means.iter().all(|mean| (*mean - 1.0).abs() < 1e-12), "a constant 1 stays 1");
        assert_eq!(queue.mean(end), 1.0);
    }

    #[test]
    fn histogram_percentiles_are_accurate_to_three_digits() {
        let mut metrics = Metrics::new(SimDuration::from_secs(1));
        for millis in 1..=100 {
            metrics.observe("latency", SimDuration::from_millis(millis));
        }
        let summary = metrics.latency("latency").unwrap();
        assert_eq!(summary.count, 100);
        let p99 = summary.p99_ns as f64 / 1e6;
        assert!((p99 - 99.0).abs() < 0.1, "p99 = {p99} ms");
        assert!(metrics.latency("absent").is_none());
    }

    #[test]
    fn series_buckets_by_interval() {
        let mut metrics = Metrics::new(SimDuration::from_secs(1));
        metrics.sample("lag", SimTime::from_nanos(500_000_000), 3.0);
        metrics.sample("lag", SimTime::from_nanos(2_100_000_000), 1.0);
        metrics.sample("lag", SimTime::from_nanos(2_200_000_000), 5.0);
        let series = metrics.series("lag").unwrap();
        assert_eq!(series.buckets.len(), 3);
        assert_eq!(series.buckets[1].count, 0);
        assert_eq!(series.buckets[2], Bucket { count: 2, sum: 6.0, min: 1.0, max: 5.0 });
    }
}
