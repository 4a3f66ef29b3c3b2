//! The scaling models of issue 5: contention and coherency emerge from
//! simulated queues and messages, and the Amdahl and USL fits recover
//! what the shipped sweep scenarios were designed to show. Runs are cut
//! to a few simulated seconds so the module stays quick in debug builds.

use scenarios::fit::{self, Sample};
use scenarios::scenario::{Architecture, Arrivals, Scenario};
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
    // below the lock's bound and far below linear, and the fits recover the
    // designed serial fraction (the lock's mean CPU time over one node's
    // round, 1 / X(1)) within 10%, with κ near zero.
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
    let usl = fit::fit_usl(&samples).unwrap();
    assert!((usl.sigma - designed).abs() <= 0.10 * designed, "{usl:?}, designed {designed}");
    // κ near zero: no retrograde scaling anywhere near the sweep.
    assert!(usl.kappa < 1e-4, "{usl:?}");
    assert!(usl.n_star.is_none_or(|n_star| n_star > 2.0 * largest.n), "{usl:?}");
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
    // The design: each order holds the lock 0.5 ms longer per peer, out of
    // one node's round of 1 / X(1), so κ ≈ 0.0005 · X(1).
    let designed_kappa = 0.0005 * samples[0].throughput;
    assert!((usl.kappa - designed_kappa).abs() <= 0.15 * designed_kappa, "{usl:?}");
    // One step of a doubling sweep: within a factor of two.
    assert!(n_star >= peak.n / 2.0 && n_star <= peak.n * 2.0, "N* {n_star}, measured {peak:?}");
}

#[test]
fn microlith_replicas_share_the_database_and_flatten() {
    // Goal: replicas of the whole microlith add throughput only until the
    // database they share saturates; the reactive microlith cannot scale
    // out at all.
    let at = |architecture: Architecture, nodes: u32| {
        let overrides = [
            format!("topology.nodes={nodes}"),
            format!("workload.users={}", 6 * nodes),
            "duration_s=5".to_string(),
        ];
        let scenario = load("sweep-architectures", &overrides);
        scenarios::run::run(&scenario, architecture, scenario.seed, &mut Default::default())
            .throughput
    };
    let (one, four, thirty_two) = (
        at(Architecture::Microlith, 1),
        at(Architecture::Microlith, 4),
        at(Architecture::Microlith, 32),
    );
    assert!(four > 3.0 * one, "4 replicas: {four}, one: {one}");
    assert!(thirty_two < 0.5 * 32.0 * one, "32 replicas: {thirty_two}, one: {one}");
    let (one, eight) = (at(Architecture::Reactive, 1), at(Architecture::Reactive, 8));
    assert!(eight < 2.5 * one, "reactive: 8 nodes {eight}, one {one}");
}

#[test]
fn scaling_knobs_are_validated_with_their_line() {
    // Goal: the knobs parse into the model, default to off, and mistakes
    // name the field and line.
    let header = "name = \"t\"\ndescription = \"A test.\"\n";
    let parse = |text: &str| {
        scenarios::file::parse("t.toml", &format!("{header}{text}"), &[])
            .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())
    };
    let plain = parse("").unwrap();
    assert_eq!((plain.topology.nodes, plain.scaling.serial.is_none()), (None, true));
    let set = parse(
        "[topology]\nnodes = 8\n[scaling]\nserial = { kind = \"constant\", ms = 2 }\n\
         invalidation = { kind = \"constant\", ms = 0.5 }\n",
    )
    .unwrap();
    assert_eq!(set.topology.nodes, Some(8));
    assert_eq!(set.scaling.serial, Some(sim::Dist::constant(sim::SimDuration::from_millis(2))));
    assert!(set.scaling.invalidation.is_some());
    let rounds =
        parse("[workload]\narrivals = \"rounds\"\nusers = 4\nthink_time_ms = 10\n").unwrap();
    assert_eq!(
        rounds.workload.arrivals,
        Arrivals::Rounds { users: 4, think_time: sim::SimDuration::from_millis(10) }
    );
    assert_eq!(
        parse("[topology]\nnodes = 0\n").unwrap_err(),
        ["t.toml:4: topology.nodes = 0: expected a whole number from 1 to 1024"]
    );
    assert_eq!(
        parse("[scaling]\ninvalidation = { kind = \"constant\", ms = 1 }\n").unwrap_err(),
        ["t.toml:4: scaling.invalidation: expected scaling.serial as well: invalidations \
             are broadcast while holding the serialised section's lock"]
    );
    assert_eq!(
        parse("[scaling]\nserail = { kind = \"constant\", ms = 1 }\n").unwrap_err(),
        ["t.toml:4: scaling.serail: unknown field; did you mean `serial`?"]
    );
}
