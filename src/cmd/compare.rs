//! `rlab compare`: every architecture of a scenario on the same seed, side
//! by side.

use super::common;
use super::run::exit_code;
use super::table;
use crate::cli::CompareArgs;
use anyhow::Result;
use scenarios::harness::Hooks;
use scenarios::report::Outcome;
use std::process::ExitCode;

pub fn run(args: &CompareArgs) -> Result<ExitCode> {
    let (scenario, _) = common::load_scenario(&args.scenario, &args.set)?;
    if let Some(dir) = &args.plots {
        super::plot::prepare_directory("--plots", dir)?;
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    if !args.json {
        eprintln!("seed={seed}");
    }
    let outcomes = run_all(&scenario, seed);
    if let Some(dir) = &args.plots {
        super::run::write_plots(dir, &outcomes)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        print!("{}", table::render(&scenario, &outcomes, &args.scenario.display().to_string()));
    }
    Ok(exit_code(&outcomes))
}

/// Runs the architectures in parallel, one thread each: independent runs,
/// each single-threaded and deterministic, so the results do not depend on
/// how they were scheduled.
fn run_all(scenario: &scenarios::scenario::Scenario, seed: u64) -> Vec<Outcome> {
    let bar = common::Bar::new("compare");
    let outcomes = std::thread::scope(|scope| {
        let handles: Vec<_> = scenario
            .architectures
            .iter()
            .map(|architecture| {
                scope.spawn(move || {
                    scenarios::run::run(scenario, *architecture, seed, &mut Hooks::default())
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().expect("a run panicked")).collect()
    });
    bar.finish();
    outcomes
}
