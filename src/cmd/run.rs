//! `rlab run`: one scenario, one or more architectures, one report each.

use super::common::{self, Bar, Checkpoint};
use super::plot;
use super::table;
use crate::cli::RunArgs;
use anyhow::{Context, Result, bail};
use scenarios::harness::{Hooks, Progress};
use scenarios::report::Outcome;
use sim::trace::JsonLinesSink;
use std::process::ExitCode;

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let (scenario, text) = common::load_scenario(&args.scenario, &args.set)?;
    let architectures = common::architectures(&scenario, args.arch.as_deref())?;
    if (args.out.is_some() || args.trace.is_some()) && architectures.len() > 1 {
        bail!(
            "--out and --trace record one run: add --arch (the scenario names {})",
            architectures.iter().map(|arch| arch.name()).collect::<Vec<_>>().join(", ")
        );
    }
    // Refuse an output nobody could write before spending time on a run.
    for (flag, path) in [("--out", &args.out), ("--trace", &args.trace)] {
        if let Some(path) = path {
            let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty());
            if parent.is_some_and(|parent| !parent.is_dir()) {
                bail!("{flag} {}: its directory does not exist", path.display());
            }
        }
    }
    if let Some(dir) = &args.plots {
        plot::prepare_directory("--plots", dir)?;
    }
    let seed = args.seed.unwrap_or(scenario.seed);
    if !args.json {
        eprintln!("seed={seed}");
    }
    let mut outcomes: Vec<Outcome> = Vec::new();
    for architecture in architectures {
        let bar = Bar::new(architecture.name());
        let mut checkpoints: Vec<Checkpoint> = Vec::new();
        let mut on_progress = |progress: Progress| {
            bar.update(&progress);
            checkpoints.push(Checkpoint {
                time_s: progress.now.as_secs_f64(),
                events: progress.events,
                trace_hash: progress.trace_hash.to_string(),
            });
        };
        let trace_temporary = args.trace.as_ref().map(|path| common::temporary_path(path));
        let trace_sink: Option<Box<dyn sim::TraceSink>> = match &trace_temporary {
            Some(path) => {
                let file = std::fs::File::create(path)
                    .with_context(|| format!("{}: cannot write the trace", path.display()))?;
                Some(Box::new(JsonLinesSink::new(std::io::BufWriter::new(file))))
            }
            None => None,
        };
        let mut hooks = Hooks { trace: trace_sink, progress: Some(&mut on_progress) };
        let (outcome, sink) =
            scenarios::run::run_with_sink(&scenario, architecture, seed, &mut hooks);
        bar.finish();
        if let (Some(mut sink), Some(temporary), Some(path)) = (sink, &trace_temporary, &args.trace)
        {
            sink.finish()
                .with_context(|| format!("{}: cannot write the trace", temporary.display()))?;
            drop(sink);
            std::fs::rename(temporary, path)
                .with_context(|| format!("{}: cannot write the trace", path.display()))?;
        }
        if let Some(path) = &args.out {
            let saved = common::saved_run(&args.scenario, &text, &args.set, &outcome, checkpoints);
            let bytes = serde_json::to_vec_pretty(&saved).expect("saved runs serialise");
            common::write_atomically(path, &bytes)?;
        }
        outcomes.push(outcome);
    }
    if let Some(dir) = &args.plots {
        write_plots(dir, &outcomes)?;
    }
    if args.json {
        let value = if outcomes.len() == 1 {
            serde_json::to_value(&outcomes[0])
        } else {
            serde_json::to_value(&outcomes)
        };
        println!("{}", serde_json::to_string_pretty(&value.expect("outcomes serialise"))?);
    } else {
        print!("{}", table::render(&scenario, &outcomes, &args.scenario.display().to_string()));
    }
    Ok(exit_code(&outcomes))
}

/// Writes every chart of `outcomes` into `dir` (`--plots`), saying so on
/// stderr.
pub fn write_plots(dir: &std::path::Path, outcomes: &[Outcome]) -> Result<()> {
    let timelines: Vec<_> = outcomes.iter().map(|outcome| outcome.timeline.clone()).collect();
    for path in plot::write_all("--plots", dir, &timelines, &plot::stem(&timelines))? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// 0 when every outcome is what the scenario expects, 1 otherwise.
pub fn exit_code(outcomes: &[Outcome]) -> ExitCode {
    if outcomes.iter().all(|outcome| outcome.as_expected) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
