//! (being written)

use crate::harness::Hooks;
use crate::observe::Observations;
use crate::scenario::Scenario;
use sim::Seed;

/// Runs the reactive on `scenario`.
pub fn run(scenario: &Scenario, seed: Seed, hooks: &mut Hooks<'_>) -> Observations {
    let _ = (scenario, seed, hooks);
    panic!("the reactive is being written")
}
