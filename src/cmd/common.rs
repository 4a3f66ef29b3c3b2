//! What the scenario commands share: loading a scenario with overrides,
//! writing files atomically, the progress bar, and the saved-report format
//! that `rlab replay` reads.

use anyhow::{Context, Result, bail};
use scenarios::harness::Progress;
use scenarios::report::Outcome;
use scenarios::scenario::{Architecture, Scenario};
use scenarios::timeline::Timeline;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// Loads and validates a scenario file with `--set` overrides; every error
/// is printed, one per line, and the command fails with exit status 2.
pub fn load_scenario(path: &Path, overrides: &[String]) -> Result<(Scenario, String)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the scenario file", path.display()))?;
    match scenarios::file::parse(&path.display().to_string(), &text, overrides) {
        Ok(scenario) => Ok((scenario, text)),
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            // All but the last go out now; the last becomes the error, so
            // every problem is on its own line.
            let (last, rest) = lines.split_last().expect("a failed parse reports an error");
            for line in rest {
                eprintln!("error: {line}");
            }
            bail!("{last}")
        }
    }
}

/// The architectures to run: the one asked for, or all the scenario names.
pub fn architectures(scenario: &Scenario, asked: Option<&str>) -> Result<Vec<Architecture>> {
    match asked {
        None => Ok(scenario.architectures.clone()),
        Some(name) => match Architecture::parse(name) {
            Some(architecture) => Ok(vec![architecture]),
            None => bail!("--arch {name}: expected one of microlith, reactive, microsystem"),
        },
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// failed or interrupted run never leaves half a file behind.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = temporary_path(path);
    let result = std::fs::File::create(&temporary)
        .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
        .and_then(|()| std::fs::rename(&temporary, path));
    if let Err(error) = result {
        let _ = std::fs::remove_file(&temporary);
        return Err(error).with_context(|| format!("{}: cannot write", path.display()));
    }
    Ok(())
}

/// The temporary sibling a file is written to before it is renamed.
pub fn temporary_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().map(|name| name.to_os_string()).unwrap_or_default();
    name.push(".partial");
    path.with_file_name(name)
}

/// A progress bar on stderr (simulated time and events per second), shown
/// only when stderr is a terminal.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    #[allow(clippy::disallowed_types)] // wall time paces the bar; it is outside the run
    started: std::time::Instant,
}

impl Bar {
    /// A bar labelled `label`, or nothing if stderr is not a terminal.
    #[allow(clippy::disallowed_types)] // wall time paces the bar; it is outside the run
    pub fn new(label: &str) -> Bar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(1000);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix:>12} [{bar:30}] {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        Bar { bar, started: std::time::Instant::now() }
    }

    /// Moves the bar.
    pub fn update(&self, progress: &Progress) {
        let Some(bar) = &self.bar else { return };
        let fraction = progress.now.as_nanos() as f64 / progress.end.as_nanos().max(1) as f64;
        bar.set_position((fraction * 1000.0) as u64);
        let wall = self.started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "{:.1}s / {:.1}s simulated, {:.2}M events/s",
            progress.now.as_secs_f64(),
            progress.end.as_secs_f64(),
            progress.events as f64 / wall / 1e6
        ));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A trace-hash checkpoint taken while a run progressed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Simulated seconds.
    pub time_s: f64,
    /// Engine events so far.
    pub events: u64,
    /// The trace hash so far.
    pub trace_hash: String,
}

/// What `rlab run --out` saves and `rlab replay` reads: the outcome and
/// everything needed to run it again.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedRun {
    /// Format version of this file.
    pub rlab_saved_run: u32,
    /// The scenario file as given.
    pub scenario_file: String,
    /// Its text, so a replay does not depend on the file still existing.
    pub scenario_text: String,
    /// The `--set` overrides.
    pub overrides: Vec<String>,
    /// The architecture run.
    pub architecture: String,
    /// The seed.
    pub seed: u64,
    /// The final trace hash.
    pub trace_hash: String,
    /// Hashes along the way.
    pub checkpoints: Vec<Checkpoint>,
    /// The outcome report.
    pub outcome: serde_json::Value,
    /// The run over simulated time, for `rlab plot` (absent in files
    /// written before charts existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
}

/// The saved-run format version written now.
pub const SAVED_RUN_VERSION: u32 = 1;

/// Builds the saved form of a run.
pub fn saved_run(
    scenario_file: &Path,
    scenario_text: &str,
    overrides: &[String],
    outcome: &Outcome,
    checkpoints: Vec<Checkpoint>,
) -> SavedRun {
    SavedRun {
        rlab_saved_run: SAVED_RUN_VERSION,
        scenario_file: scenario_file.display().to_string(),
        scenario_text: scenario_text.to_string(),
        overrides: overrides.to_vec(),
        architecture: outcome.architecture.name().to_string(),
        seed: outcome.seed,
        trace_hash: outcome.trace_hash.clone(),
        checkpoints,
        outcome: serde_json::to_value(outcome).expect("outcomes serialise"),
        timeline: Some(outcome.timeline.clone()),
    }
}
