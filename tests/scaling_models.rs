//! The scaling models of issue 5: contention and coherency emerge from
//! simulated queues and messages, and the Amdahl and USL fits recover
//! what the shipped sweep scenarios were designed to show. Runs are cut
//! to a few simulated seconds so the module stays quick in debug builds.

use scenarios::fit::{self, Sample};
use scenarios::scenario::{Architecture, Scenario};
use std::path::Path;

fn load(name: &str, overrides: &[String]) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(format!("{name}.toml"));
    scenarios::file::load(&path, overrides).unwrap_or_else(|errors| panic!("{name}: {errors:?}"))
}

/// Runs the file's own `[sweep]` on `architecture`, each point cut to
/// `duration_s` simulated seconds: (N, throughput) per point.
fn sweep(name: &str, architecture: Architecture, duration_s: u32, points: usize) -> Vec<Sample> {
    let spec = load(name, &[]).sweep.unwrap_or_else(|| panic!("{name} declares a sweep"));
    let points: Vec<Scenario> = (0..spec.points().min(points))
        .map(|point| {
            let mut overrides = spec.overrides(point);
            overrides.push(format!("duration_s={duration_s}"));
            overrides.push("drain_s=2".to_string());
            load(name, &overrides)
        })
        .collect();
    let results = scenarios::sweep::run_all(&points, &[architecture], 1, 1, &|_| {});
    let samples: Vec<Sample> = results
        .iter()
        .map(|result| Sample { n: spec.n(result.point), throughput: result.throughput })
        .collect();
    samples
}

#[test]
fn the_stateless_part_scales_linearly() {
    // Goal: with no lock and no coherency traffic, N instances carry N
    // times what one carries (within 15%), and the fits say so.
    let samples = sweep("sweep-stateless", Architecture::Microsystem, 10, 4);
    let single = samples[0].throughput;
    for sample in &samples {
        let ideal = sample.n * single;
        assert!(
            (sample.throughput - ideal).abs() <= 0.15 * ideal,
            "N = {}: {} orders/s, ideal {ideal}",
            sample.n,
            sample.throughput
        );
    }
    let usl = fit::fit_usl(&samples).unwrap();
    assert!(usl.sigma < 0.01 && usl.kappa < 1e-4, "{usl:?}");
}

#[test]
fn a_serialised_section_gives_an_amdahl_ceiling() {
    // Goal: with one single-core lock every order passes, throughput stays
    // below the lock's bound and far below linear, and Amdahl's fit
    // recovers the designed serial fraction (the lock's mean CPU time over
    // one node's cycle, 1 / X(1)) within 10%.
    let samples = sweep("sweep-contention", Architecture::Microsystem, 15, 7);
    let serial_s = 0.006;
    let single = samples[0].throughput;
    let largest = samples.last().unwrap();
    assert!(largest.throughput < 1.0 / serial_s, "{largest:?} beats the serial bound");
    assert!(largest.throughput < 0.5 * largest.n * single, "{largest:?} is near linear");
    let designed = serial_s * single;
    let amdahl = fit::fit_amdahl(&samples).unwrap();
    assert!(
        (amdahl.p - designed).abs() <= 0.10 * designed,
        "fitted serial fraction {} against the designed {designed}",
        amdahl.p
    );
    // κ near zero. A queue in a closed loop bends more sharply at its knee
    // than Amdahl's curve, and the USL fit pays for that sharpness with a
    // small κ (a few 1e-4, where the coherency model's is ten times more):
    // small enough that the fitted curve does not turn down inside the
    // sweep by more than a few percent.
    let usl = fit::fit_usl(&samples).unwrap();
    assert!(usl.kappa < 1e-3, "{usl:?}");
    assert!(usl.predict(largest.n) >= 0.95 * usl.peak_throughput.unwrap_or(0.0), "{usl:?}");
}

#[test]
fn coherency_makes_scaling_retrograde() {
    // Goal: when the lock is held while every peer acknowledges an
    // invalidation, throughput peaks and then falls; the USL fit finds
    // κ > 0 and a peak N* within one sweep step of the measured peak.
    let samples = sweep("sweep-coherency", Architecture::Microsystem, 15, 7);
    let peak = samples.iter().max_by(|a, b| a.throughput.total_cmp(&b.throughput)).unwrap();
    let largest = samples.last().unwrap();
    assert!(largest.throughput < 0.6 * peak.throughput, "no fall after {peak:?}: {largest:?}");
    let usl = fit::fit_usl(&samples).unwrap();
    assert!(usl.kappa > 1e-3, "{usl:?}");
    let n_star = usl.n_star.expect("κ > 0 has a peak");
    // One step of a doubling sweep: within a factor of two.
    assert!(n_star >= peak.n / 2.0 && n_star <= peak.n * 2.0, "N* {n_star}, measured {peak:?}");
}
