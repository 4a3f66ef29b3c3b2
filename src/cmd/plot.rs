//! `rlab plot`, and the `--plots DIR` of `rlab run` and `rlab compare`:
//! charts of runs over simulated time, written atomically.

use super::common::{self, SavedRun};
use crate::cli::{ChartArg, PlotArgs};
use anyhow::{Context, Result, bail};
use scenarios::timeline::Timeline;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use visualize::charts::timeline::{TimelineChart, TimelineKind};
use visualize::charts::{Format, render};

pub fn run(args: &PlotArgs) -> Result<ExitCode> {
    let mut timelines = Vec::new();
    for path in &args.reports {
        timelines.push(read_timeline(path)?);
    }
    if let Some(index) =
        timelines.iter().position(|timeline| timeline.scenario != timelines[0].scenario)
    {
        bail!(
            "{}: scenario {} differs from {} in {}: one chart draws one scenario",
            args.reports[index].display(),
            timelines[index].scenario,
            timelines[0].scenario,
            args.reports[0].display()
        );
    }
    match kind_of(args.chart) {
        Some(kind) => {
            let format = format_of("--out", &args.out)?;
            refuse_missing_directory("--out", &args.out)?;
            write_chart(kind, &timelines, &args.out, format)?;
            eprintln!("wrote {}", args.out.display());
        }
        None => {
            let written = write_all("--out", &args.out, &timelines, &stem(&timelines))?;
            for path in written {
                eprintln!("wrote {}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The timeline a saved run holds.
fn read_timeline(path: &Path) -> Result<Timeline> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the saved run", path.display()))?;
    let saved: SavedRun = serde_json::from_str(&text).map_err(|error| {
        anyhow::anyhow!(
            "{}: not a saved run (write one with `rlab run SCENARIO --arch A --out FILE`): {error}",
            path.display()
        )
    })?;
    if saved.rlab_saved_run != common::SAVED_RUN_VERSION {
        bail!(
            "{}: rlab_saved_run = {}: this rlab reads version {}",
            path.display(),
            saved.rlab_saved_run,
            common::SAVED_RUN_VERSION
        );
    }
    saved.timeline.with_context(|| {
        format!(
            "{}: this saved run has no timeline (it predates charts); run it again with --out",
            path.display()
        )
    })
}

fn kind_of(chart: ChartArg) -> Option<TimelineKind> {
    Some(match chart {
        ChartArg::Throughput => TimelineKind::Throughput,
        ChartArg::Latency => TimelineKind::Latency,
        ChartArg::Queues => TimelineKind::Queues,
        ChartArg::Breaker => TimelineKind::Breaker,
        ChartArg::Lag => TimelineKind::Lag,
        ChartArg::Sagas => TimelineKind::Sagas,
        ChartArg::All => return None,
    })
}

/// The format a chart file's extension asks for, or the one-line error.
fn format_of(flag: &str, path: &Path) -> Result<Format> {
    Format::from_path(path).map_err(|_| {
        anyhow::anyhow!(
            "{flag} {}: the chart's file must end in .png or .svg (for every chart at once, use --chart all and a directory)",
            path.display()
        )
    })
}

fn refuse_missing_directory(flag: &str, path: &Path) -> Result<()> {
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty());
    if parent.is_some_and(|parent| !parent.is_dir()) {
        bail!("{flag} {}: its directory does not exist", path.display());
    }
    Ok(())
}

/// The start of the file names of a set of runs: the scenario, and the
/// architecture when there is only one.
pub fn stem(timelines: &[Timeline]) -> String {
    match timelines {
        [] => "empty".to_string(),
        [only] => format!("{}-{}", only.scenario, only.architecture.name()),
        [first, ..] => first.scenario.clone(),
    }
}

/// Checks that `dir` can hold the charts (creating it if missing), before
/// any run spends time.
pub fn prepare_directory(flag: &str, dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{flag} {}: not a directory", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{flag} {}: cannot create the directory", dir.display()))
}

/// Writes every chart of `timelines` into `dir` as `STEM-CHART.png`;
/// returns the paths written.
pub fn write_all(
    flag: &str,
    dir: &Path,
    timelines: &[Timeline],
    stem: &str,
) -> Result<Vec<PathBuf>> {
    prepare_directory(flag, dir)?;
    let mut written = Vec::new();
    for kind in TimelineKind::ALL {
        let path = dir.join(format!("{stem}-{}.png", kind.name()));
        write_chart(kind, timelines, &path, Format::Png)?;
        written.push(path);
    }
    Ok(written)
}

fn write_chart(
    kind: TimelineKind,
    timelines: &[Timeline],
    path: &Path,
    format: Format,
) -> Result<()> {
    let chart = TimelineChart::new(kind, timelines);
    let bytes = render(&chart, format, chart.size())
        .map_err(|error| anyhow::anyhow!("{}: cannot draw the chart: {error}", path.display()))?;
    common::write_atomically(path, &bytes)
}
