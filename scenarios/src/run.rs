//! Running a scenario: one architecture ([`run`]) or all of its
//! architectures on the same seed ([`compare`]).

use crate::arch;
use crate::harness::Hooks;
use crate::report::{self, Outcome};
use crate::scenario::{Architecture, Scenario};
use sim::Seed;

/// Runs `architecture` on `scenario` with `seed` and reports the outcome.
pub fn run(
    scenario: &Scenario,
    architecture: Architecture,
    seed: u64,
    hooks: &mut Hooks<'_>,
) -> Outcome {
    let seed = Seed(seed);
    let observed = match architecture {
        Architecture::Microlith => arch::microlith::run(scenario, seed, hooks),
        Architecture::Reactive => arch::reactive::run(scenario, seed, hooks),
        Architecture::Microsystem => arch::microsystem::run(scenario, seed, hooks),
    };
    report::outcome(scenario, &observed)
}

/// Like [`run`], and hands back the trace sink the hooks carried (after
/// the run, so the caller can flush it and see write errors).
pub fn run_with_sink(
    scenario: &Scenario,
    architecture: Architecture,
    seed: u64,
    hooks: &mut Hooks<'_>,
) -> (Outcome, Option<Box<dyn sim::TraceSink>>) {
    let outcome = run(scenario, architecture, seed, hooks);
    (outcome, hooks.trace.take())
}

/// Runs every architecture the scenario names, one after the other, on the
/// same seed, so they see the identical workload and faults.
pub fn compare(scenario: &Scenario, seed: u64) -> Vec<Outcome> {
    scenario
        .architectures
        .iter()
        .map(|architecture| run(scenario, *architecture, seed, &mut Hooks::default()))
        .collect()
}
