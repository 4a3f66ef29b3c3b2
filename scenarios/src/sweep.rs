//! Sweeps: one scenario run at several values of one or more fields, with
//! several seeds per value, and Amdahl and USL fits of throughput against
//! the first field (the x-axis, `N`).
//!
//! A sweep is a [`SweepSpec`]: the fields that vary ([`Vary`], written
//! `PATH=V1,V2,...` on the command line and in a file's `[sweep]` section)
//! and the number of seeds. Several fields move in lockstep: point `i` sets
//! every field to its `i`-th value, so a closed-loop load can grow with the
//! system. Point `i` with seed index `k` runs the scenario built with the
//! `--set`-style overrides of point `i` on seed `scenario.seed + k`.
//!
//! [`run_all`] runs every (point, architecture, seed) in parallel across
//! independent runs: each run stays single-threaded and deterministic, and
//! results are stored by index, so the output does not depend on `jobs`.
//! [`summarize`] turns the runs into the report `rlab sweep` prints, with
//! the fits of [`crate::fit`].

use crate::fit::{self, AmdahlFit, Sample, UslFit};
use crate::harness::Hooks;
use crate::report::Outcome;
use crate::scenario::{Architecture, Scenario};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The most points a sweep may have.
pub const POINTS_MAX: usize = 64;
/// The most seeds per point.
pub const SEEDS_MAX: u32 = 1000;

/// One field that varies, and its values in sweep order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Vary {
    /// The dotted path of the field, as `--set` writes it.
    pub path: String,
    /// Its values, one per point.
    pub values: Vec<f64>,
}

impl Vary {
    /// Parses `PATH=V1,V2,...`. The error says what is wrong, without
    /// naming the flag or file (the caller does).
    ///
    /// # Errors
    /// A message when the text is not a path, an `=` and 1 to
    /// [`POINTS_MAX`] finite numbers separated by commas.
    pub fn parse(text: &str) -> Result<Vary, String> {
        let Some((path, values)) = text.split_once('=') else {
            return Err("expected PATH=V1,V2,..., e.g. microsystem.instances=1,2,4,8".into());
        };
        let path = path.trim();
        if path.is_empty() || path.split('.').any(|segment| segment.trim().is_empty()) {
            return Err(
                "expected a dotted field path before `=`, e.g. microsystem.instances".into()
            );
        }
        if values.trim().is_empty() {
            return Err("expected at least one value after `=`".into());
        }
        let mut parsed = Vec::new();
        for value in values.split(',') {
            let value = value.trim();
            match value.parse::<f64>() {
                Ok(number) if number.is_finite() => parsed.push(number),
                _ => return Err(format!("value `{value}` is not a finite number")),
            }
        }
        if parsed.len() > POINTS_MAX {
            return Err(format!(
                "{} values; a sweep has at most {POINTS_MAX} points",
                parsed.len()
            ));
        }
        Ok(Vary { path: path.to_string(), values: parsed })
    }

    /// The `--set` override of point `point`, e.g. `microsystem.instances=4`.
    #[must_use]
    pub fn override_at(&self, point: usize) -> String {
        // `Display` of an integral f64 has no fraction (`4`, not `4.0`), so
        // integer fields accept it.
        format!("{}={}", self.path, self.values[point])
    }
}

impl fmt::Display for Vary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<String> = self.values.iter().map(ToString::to_string).collect();
        write!(f, "{}={}", self.path, values.join(","))
    }
}

/// A sweep: which fields vary (the first is the x-axis `N`) and how many
/// seeds each point runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepSpec {
    /// The fields that vary, in lockstep; at least one, all with the same
    /// number of values.
    pub vary: Vec<Vary>,
    /// Seeds per point: seed index `k` runs on `scenario.seed + k`.
    pub seeds: u32,
}

impl SweepSpec {
    /// Checks that the fields move in lockstep (equal lengths, each path
    /// once) and that `seeds` is from 1 to [`SEEDS_MAX`].
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn new(vary: Vec<Vary>, seeds: u32) -> Result<SweepSpec, String> {
        let Some(first) = vary.first() else {
            return Err("expected at least one field to vary".into());
        };
        for other in &vary[1..] {
            if other.values.len() != first.values.len() {
                return Err(format!(
                    "{} has {} values but {} has {}: fields vary in lockstep, so they need \
                     as many values each",
                    other.path,
                    other.values.len(),
                    first.path,
                    first.values.len()
                ));
            }
        }
        for (index, item) in vary.iter().enumerate() {
            if vary[..index].iter().any(|earlier| earlier.path == item.path) {
                return Err(format!("{} varies twice", item.path));
            }
        }
        if !(1..=SEEDS_MAX).contains(&seeds) {
            return Err(format!("seeds = {seeds}: expected 1 to {SEEDS_MAX}"));
        }
        Ok(SweepSpec { vary, seeds })
    }

    /// How many points.
    #[must_use]
    pub fn points(&self) -> usize {
        self.vary[0].values.len()
    }

    /// The x-axis value of point `point`.
    #[must_use]
    pub fn n(&self, point: usize) -> f64 {
        self.vary[0].values[point]
    }

    /// The overrides that build point `point`.
    #[must_use]
    pub fn overrides(&self, point: usize) -> Vec<String> {
        self.vary.iter().map(|vary| vary.override_at(point)).collect()
    }
}

/// What one run of a sweep measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// The point's index.
    #[serde(skip)]
    pub point: usize,
    /// The architecture.
    #[serde(skip)]
    pub architecture: Architecture,
    /// The seed it ran on.
    pub seed: u64,
    /// Completed orders per simulated second.
    pub throughput: f64,
    /// 99th-percentile latency of answered requests, in milliseconds.
    pub latency_p99_ms: f64,
    /// Fraction of requests answered successfully.
    pub availability: f64,
    /// Engine events processed.
    pub events: u64,
    /// The trace hash, to replay this run with `rlab run`.
    pub trace_hash: String,
    /// Whether the run's outcome matched the scenario's expectations and
    /// invariants.
    pub as_expected: bool,
    /// Why not, one line per reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<String>,
}

impl RunResult {
    fn of(point: usize, outcome: &Outcome) -> RunResult {
        RunResult {
            point,
            architecture: outcome.architecture,
            seed: outcome.seed,
            throughput: outcome.throughput,
            latency_p99_ms: outcome.latency_ms.p99,
            availability: outcome.availability,
            events: outcome.events,
            trace_hash: outcome.trace_hash.clone(),
            as_expected: outcome.as_expected,
            mismatches: outcome.mismatches.clone(),
        }
    }
}

/// One run to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Job {
    point: usize,
    architecture: Architecture,
    seed: u64,
}

/// Runs every architecture of `architectures` on every point (`points[i]`
/// is the scenario of point `i`) with `seeds` seeds each, on up to `jobs`
/// threads. `done` is called with the number of runs finished after each
/// one (from worker threads; for a progress bar).
///
/// Results come back in (point, architecture, seed) order whatever `jobs`
/// is: workers pull job indices and store each result at its index.
pub fn run_all(
    points: &[Scenario],
    architectures: &[Architecture],
    seeds: u32,
    jobs: usize,
    done: &(dyn Fn(usize) + Sync),
) -> Vec<RunResult> {
    let mut list = Vec::new();
    for (point, scenario) in points.iter().enumerate() {
        for &architecture in architectures {
            for k in 0..u64::from(seeds) {
                list.push(Job { point, architecture, seed: scenario.seed.wrapping_add(k) });
            }
        }
    }
    let results: Mutex<Vec<Option<RunResult>>> = Mutex::new(vec![None; list.len()]);
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let worker = || {
        loop {
            let taken = next.fetch_add(1, Ordering::Relaxed);
            if taken >= list.len() {
                break;
            }
            // Largest points first: they are usually the slowest runs, and
            // starting them early keeps one straggler from ending the sweep
            // alone. The order of work does not change any result.
            let index = list.len() - 1 - taken;
            let job = list[index];
            let outcome = crate::run::run(
                &points[job.point],
                job.architecture,
                job.seed,
                &mut Hooks::default(),
            );
            let result = RunResult::of(job.point, &outcome);
            results.lock().expect("no worker panics while holding the lock")[index] = Some(result);
            done(finished.fetch_add(1, Ordering::Relaxed) + 1);
        }
    };
    let threads = jobs.clamp(1, list.len().max(1));
    if threads == 1 {
        worker();
    } else {
        // Parallel across independent runs only; each run is single-
        // threaded and owns its whole world.
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(worker);
            }
        });
    }
    results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .map(|result| result.expect("every job ran"))
        .collect()
}

/// One architecture at one point: the spread over seeds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ArchitecturePoint {
    /// The architecture.
    pub architecture: Architecture,
    /// Mean throughput over the seeds (orders/s).
    pub throughput_mean: f64,
    /// Sample standard deviation of throughput over the seeds (0 with one
    /// seed).
    pub throughput_stddev: f64,
    /// Mean over the seeds of the 99th-percentile latency (ms).
    pub latency_p99_ms_mean: f64,
    /// Mean availability over the seeds.
    pub availability_mean: f64,
    /// The fitted USL's throughput at this point, when the fit exists.
    pub usl_prediction: Option<f64>,
    /// Every seed's run.
    pub samples: Vec<RunResult>,
}

/// One point of the sweep.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointReport {
    /// The x-axis value.
    pub n: f64,
    /// Every varied field's value at this point, by path.
    pub set: BTreeMap<String, f64>,
    /// The first architecture's mean throughput (the only one's, when one
    /// architecture is swept).
    pub throughput_mean: f64,
    /// The first architecture's throughput standard deviation.
    pub throughput_stddev: f64,
    /// One row per architecture, in the scenario's order.
    pub architectures: Vec<ArchitecturePoint>,
}

/// Amdahl's law as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AmdahlReport {
    /// Serial fraction.
    pub p: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// One node's throughput.
    pub lambda: f64,
    /// `λ / p`, or `None` when `p = 0`.
    pub ceiling: Option<f64>,
}

/// The USL as reported.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UslReport {
    /// Contention.
    pub sigma: f64,
    /// Coherency.
    pub kappa: f64,
    /// One node's throughput.
    pub lambda: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// The N of peak throughput, or `None` when `κ = 0`.
    pub n_star: Option<f64>,
    /// Throughput at `n_star`.
    pub peak_throughput: Option<f64>,
}

/// The fits of one architecture; a fit that cannot be made is `None` with
/// the reason in `errors`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FitReport {
    /// Amdahl's law.
    pub amdahl: Option<AmdahlReport>,
    /// The Universal Scalability Law.
    pub usl: Option<UslReport>,
    /// Why a fit is missing, one line per missing fit.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// The whole sweep: what `rlab sweep --json` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SweepReport {
    /// The scenario's name.
    pub scenario: String,
    /// The fields varied, the x-axis first.
    pub vary: Vec<Vary>,
    /// Seeds per point.
    pub seeds: u32,
    /// The first point's seeds are `seed_base + k` for `k < seeds`.
    pub seed_base: u64,
    /// The architectures swept, in the scenario's order.
    pub architectures: Vec<Architecture>,
    /// The points, in sweep order.
    pub points: Vec<PointReport>,
    /// The fits, by architecture name.
    pub fit: BTreeMap<String, FitReport>,
    /// Runs whose outcome did not match the scenario's expectations.
    pub runs_not_as_expected: usize,
}

/// Builds the report from the runs of [`run_all`] (in its order).
#[must_use]
pub fn summarize(
    scenario: &Scenario,
    spec: &SweepSpec,
    architectures: &[Architecture],
    runs: &[RunResult],
) -> SweepReport {
    let mut points: Vec<PointReport> = (0..spec.points())
        .map(|point| {
            let rows: Vec<ArchitecturePoint> = architectures
                .iter()
                .map(|&architecture| {
                    let samples: Vec<RunResult> = runs
                        .iter()
                        .filter(|run| run.point == point && run.architecture == architecture)
                        .cloned()
                        .collect();
                    let throughputs: Vec<f64> = samples.iter().map(|s| s.throughput).collect();
                    let p99s: Vec<f64> = samples.iter().map(|s| s.latency_p99_ms).collect();
                    let availabilities: Vec<f64> = samples.iter().map(|s| s.availability).collect();
                    ArchitecturePoint {
                        architecture,
                        throughput_mean: mean(&throughputs),
                        throughput_stddev: stddev(&throughputs),
                        latency_p99_ms_mean: mean(&p99s),
                        availability_mean: mean(&availabilities),
                        usl_prediction: None,
                        samples,
                    }
                })
                .collect();
            let first = rows.first();
            PointReport {
                n: spec.n(point),
                set: spec.vary.iter().map(|vary| (vary.path.clone(), vary.values[point])).collect(),
                throughput_mean: first.map_or(0.0, |row| row.throughput_mean),
                throughput_stddev: first.map_or(0.0, |row| row.throughput_stddev),
                architectures: rows,
            }
        })
        .collect();
    let mut fits = BTreeMap::new();
    for (column, architecture) in architectures.iter().enumerate() {
        let samples: Vec<Sample> = points
            .iter()
            .map(|point| Sample {
                n: point.n,
                throughput: point.architectures[column].throughput_mean,
            })
            .collect();
        let (report, usl) = fit_both(&samples);
        if let Some(usl) = usl {
            for point in &mut points {
                point.architectures[column].usl_prediction = Some(usl.predict(point.n));
            }
        }
        fits.insert(architecture.name().to_string(), report);
    }
    SweepReport {
        scenario: scenario.name.clone(),
        vary: spec.vary.clone(),
        seeds: spec.seeds,
        seed_base: scenario.seed,
        architectures: architectures.to_vec(),
        points,
        fit: fits,
        runs_not_as_expected: runs.iter().filter(|run| !run.as_expected).count(),
    }
}

/// Both fits of one architecture's means.
fn fit_both(samples: &[Sample]) -> (FitReport, Option<UslFit>) {
    let mut errors = Vec::new();
    let amdahl = match fit::fit_amdahl(samples) {
        Ok(AmdahlFit { lambda, p, r2, ceiling }) => Some(AmdahlReport { p, r2, lambda, ceiling }),
        Err(error) => {
            errors.push(format!("amdahl: {error}"));
            None
        }
    };
    let usl = match fit::fit_usl(samples) {
        Ok(usl) => Some(usl),
        Err(error) => {
            errors.push(format!("usl: {error}"));
            None
        }
    };
    let report = FitReport {
        amdahl,
        usl: usl.map(|usl| UslReport {
            sigma: usl.sigma,
            kappa: usl.kappa,
            lambda: usl.lambda,
            r2: usl.r2,
            n_star: usl.n_star,
            peak_throughput: usl.peak_throughput,
        }),
        errors,
    };
    (report, usl)
}

fn mean(values: &[f64]) -> f64 {
    if values.is_empty() { 0.0 } else { values.iter().sum::<f64>() / values.len() as f64 }
}

/// Sample standard deviation (divisor n − 1); 0 for fewer than two values.
fn stddev(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = mean(values);
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    libm::sqrt(squares / (values.len() - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_parses_paths_and_numbers() {
        let vary = Vary::parse(" microsystem.instances = 1, 2,4 ").unwrap();
        assert_eq!(vary.path, "microsystem.instances");
        assert_eq!(vary.values, [1.0, 2.0, 4.0]);
        assert_eq!(vary.override_at(2), "microsystem.instances=4");
        assert_eq!(Vary::parse("network.loss=0.5").unwrap().override_at(0), "network.loss=0.5");
        assert_eq!(vary.to_string(), "microsystem.instances=1,2,4");
    }

    #[test]
    fn vary_refuses_bad_text() {
        for (text, part) in [
            ("microsystem.instances", "expected PATH=V1,V2"),
            ("=1,2", "dotted field path"),
            ("a..b=1", "dotted field path"),
            ("a.b=", "at least one value"),
            ("a.b=1,x", "`x` is not a finite number"),
            ("a.b=1,,2", "`` is not a finite number"),
            ("a.b=inf", "not a finite number"),
        ] {
            let error = Vary::parse(text).unwrap_err();
            assert!(error.contains(part), "{text}: {error}");
        }
        let many = format!("a.b={}", vec!["1"; POINTS_MAX + 1].join(","));
        assert!(Vary::parse(&many).unwrap_err().contains("at most 64 points"));
    }

    #[test]
    fn spec_needs_lockstep_lengths_and_a_seed_count() {
        let a = Vary::parse("a.b=1,2,3").unwrap();
        let b = Vary::parse("c.d=10,20").unwrap();
        assert!(SweepSpec::new(vec![a.clone(), b], 1).unwrap_err().contains("lockstep"));
        assert!(SweepSpec::new(vec![a.clone(), a.clone()], 1).unwrap_err().contains("twice"));
        assert!(SweepSpec::new(vec![a.clone()], 0).unwrap_err().contains("seeds"));
        assert!(SweepSpec::new(Vec::new(), 1).is_err());
        let spec = SweepSpec::new(vec![a, Vary::parse("c.d=10,20,30").unwrap()], 2).unwrap();
        assert_eq!(spec.points(), 3);
        assert_eq!(spec.overrides(1), ["a.b=2", "c.d=20"]);
    }

    #[test]
    fn stddev_is_the_sample_standard_deviation() {
        assert_eq!(stddev(&[5.0]), 0.0);
        assert!((stddev(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]) - 2.138_089_935).abs() < 1e-6);
    }
}
