//! `rlab replay`: runs a saved run again and checks it gives the same
//! trace, or says where the two runs part ways.

use super::common::{self, SavedRun};
use crate::cli::ReplayArgs;
use anyhow::{Context, Result, bail};
use scenarios::harness::{Hooks, Progress};
use scenarios::scenario::Architecture;
use std::process::ExitCode;

pub fn run(args: &ReplayArgs) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("{}: cannot read the saved run", args.file.display()))?;
    let saved: SavedRun = serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "{}: not a saved run (write one with `rlab run SCENARIO --arch A --out FILE`): {error}",
            args.file.display()
        )
    })?;
    if saved.rlab_saved_run != common::SAVED_RUN_VERSION {
        bail!(
            "{}: rlab_saved_run = {}: this rlab reads version {}",
            args.file.display(),
            saved.rlab_saved_run,
            common::SAVED_RUN_VERSION
        );
    }
    let Some(architecture) = Architecture::parse(&saved.architecture) else {
        bail!("{}: architecture = {}: unknown", args.file.display(), saved.architecture);
    };
    let scenario = match scenarios::file::parse(
        &saved.scenario_file,
        &saved.scenario_text,
        &saved.overrides,
    ) {
        Ok(scenario) => scenario,
        Err(errors) => bail!(
            "{}: the saved scenario no longer validates: {}",
            args.file.display(),
            errors.first().map(ToString::to_string).unwrap_or_default()
        ),
    };
    let bar = common::Bar::new("replay");
    let mut hashes: Vec<common::Checkpoint> = Vec::new();
    let mut on_progress = |progress: Progress| {
        bar.update(&progress);
        hashes.push(common::Checkpoint {
            time_s: progress.now.as_secs_f64(),
            events: progress.events,
            trace_hash: progress.trace_hash.to_string(),
        });
    };
    let mut hooks = Hooks { trace: None, progress: Some(&mut on_progress) };
    let outcome = scenarios::run::run(&scenario, architecture, saved.seed, &mut hooks);
    bar.finish();
    if outcome.trace_hash == saved.trace_hash {
        println!(
            "replay ok: {} on {} with seed {} gives trace hash {} again",
            saved.scenario_file, architecture, saved.seed, outcome.trace_hash
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "replay DIVERGED: {} on {} with seed {}: trace hash {} now, {} saved",
        saved.scenario_file, architecture, saved.seed, outcome.trace_hash, saved.trace_hash
    );
    let first = saved.checkpoints.iter().zip(&hashes).position(|(then, now)| then != now);
    match first {
        Some(index) => {
            let after = if index == 0 {
                "the start".to_string()
            } else {
                let agreed = &saved.checkpoints[index - 1];
                format!(
                    "{:.3}s (event {}, both {})",
                    agreed.time_s, agreed.events, agreed.trace_hash
                )
            };
            let then = &saved.checkpoints[index];
            let now = &hashes[index];
            println!("the runs agree up to {after}");
            println!(
                "and differ by {:.3}s: saved event {} hash {}, now event {} hash {}",
                then.time_s, then.events, then.trace_hash, now.events, now.trace_hash
            );
            println!(
                "to see the first differing event, write both traces with `rlab run ... --trace FILE` and compare them line by line from event {}",
                saved.checkpoints.get(index.saturating_sub(1)).map_or(0, |c| c.events)
            );
        }
        None => println!("the checkpoints agree; the runs differ after the last one"),
    }
    Ok(ExitCode::from(1))
}
