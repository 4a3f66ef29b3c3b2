//! `rlab sweep`: a scenario run at several values of a field (and several
//! seeds per value), with Amdahl and USL fits of throughput against N.
//!
//! Runs go in parallel across independent runs (`--jobs`); each run is
//! single-threaded and deterministic and results are kept in sweep order,
//! so the output is byte-identical for any `--jobs`.
//!
//! Exit status: 0 once the sweep ran, even if some runs broke the
//! scenario's expectations (a sweep is a measurement: pushing a system past
//! its knee is the point, and a scenario's `[[expect]]` describes its
//! default point); the text output lists such runs. `--strict` makes them
//! exit status 1. Bad input is status 2.

use super::common;
use crate::cli::SweepArgs;
use anyhow::{Context, Result, bail};
use scenarios::scenario::Scenario;
use scenarios::sweep::{self, SweepReport, SweepSpec, Vary};
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: &SweepArgs) -> Result<ExitCode> {
    let (scenario, text) = common::load_scenario(&args.scenario, &args.set)?;
    let file = args.scenario.display().to_string();
    let spec = sweep_spec(args, &scenario, &file)?;
    let architectures = common::architectures(&scenario, args.arch.as_deref())?;
    let jobs = match args.jobs {
        Some(0) => bail!("--jobs 0: expected at least 1"),
        Some(jobs) => jobs,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let points = match scenarios::file::parse_points(&file, &text, &args.set, &spec) {
        Ok(points) => points,
        Err(error) => bail!("{}", point_error(&error, &spec, !args.vary.is_empty())),
    };
    if let Some(dir) = &args.plots {
        // Made before the runs, so a bad path fails at once, not after them.
        std::fs::create_dir_all(dir)
            .with_context(|| format!("--plots {}: cannot create the directory", dir.display()))?;
    }

    let total = points.len() * architectures.len() * spec.seeds as usize;
    if !args.json {
        let last = scenario.seed + u64::from(spec.seeds) - 1;
        let seeds = if last == scenario.seed {
            format!("seed {last}")
        } else {
            format!("seeds {} to {last}", scenario.seed)
        };
        eprintln!("{seeds} at each point: {total} runs on {jobs} threads");
    }
    let bar = RunsBar::new(total);
    let runs = sweep::run_all(&points, &architectures, spec.seeds, jobs, &|done| bar.set(done));
    bar.finish();
    let report = sweep::summarize(&scenario, &spec, &architectures, &runs);

    let json = serde_json::to_string_pretty(&report)? + "\n";
    if let Some(out) = &args.out {
        common::write_atomically(out, json.as_bytes())?;
    }
    if let Some(dir) = &args.plots {
        write_chart(&report, dir)?;
    }
    if args.json {
        print!("{json}");
    } else {
        print!("{}", render(&report, &file));
    }
    Ok(if args.strict && report.runs_not_as_expected > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The sweep to run: the command line's `--vary`/`--seeds`, which replace
/// the file's `[sweep]`, or the file's.
fn sweep_spec(args: &SweepArgs, scenario: &Scenario, file: &str) -> Result<SweepSpec> {
    if let Some(seeds) = args.seeds
        && !(1..=sweep::SEEDS_MAX).contains(&seeds)
    {
        bail!("--seeds {seeds}: expected 1 to {}", sweep::SEEDS_MAX);
    }
    let declared = scenario.sweep.as_ref();
    let seeds = args.seeds.or(declared.map(|spec| spec.seeds)).unwrap_or(1);
    let vary = if args.vary.is_empty() {
        match declared {
            Some(spec) => spec.vary.clone(),
            None => bail!(
                "{file}: no sweep to run: give --vary PATH=V1,V2,... or add a [sweep] section \
                 (vary = [\"PATH=V1,V2,...\"]) to the file"
            ),
        }
    } else {
        let mut list = Vec::new();
        for text in &args.vary {
            list.push(
                Vary::parse(text).map_err(|message| anyhow::anyhow!("--vary {text}: {message}"))?,
            );
        }
        list
    };
    SweepSpec::new(vary, seeds).map_err(|message| anyhow::anyhow!("--vary: {message}"))
}

/// One line for a point that is not a valid scenario, naming the `--vary`
/// whose value is wrong when it can.
fn point_error(
    error: &scenarios::file::PointError,
    spec: &SweepSpec,
    from_command_line: bool,
) -> String {
    let first = &error.errors[0];
    let value = first.value.as_deref().map(|value| format!(" = {value}")).unwrap_or_default();
    let culprit = spec.vary.iter().find(|vary| vary.path == first.field);
    match culprit {
        Some(vary) if from_command_line => {
            format!("--vary {vary}: {}{value}: {}", first.field, first.message)
        }
        _ => format!(
            "sweep point {} ({}): {}{value}: {}",
            error.point,
            error.overrides.join(" "),
            first.field,
            first.message
        ),
    }
}

/// Writes `DIR/<scenario>-scaling.svg` and `.png`, each through a
/// temporary file and a rename.
fn write_chart(report: &SweepReport, dir: &Path) -> Result<()> {
    let chart = visualize::charts::scaling::ScalingChart::from_report(report);
    // A scenario's name is free text; the file name keeps only what is safe.
    let stem: String = report
        .scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    for extension in ["svg", "png"] {
        let path = dir.join(format!("{stem}-scaling.{extension}"));
        // The temporary name keeps the extension: it picks the format.
        let temporary = dir.join(format!(".{stem}-scaling.partial.{extension}"));
        let size = visualize::charts::canvas::DEFAULT_SIZE;
        match visualize::charts::render_to_file(&chart, &temporary, size) {
            Ok(()) => {
                std::fs::rename(&temporary, &path)
                    .with_context(|| format!("{}: cannot write", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            Err(error) => {
                let _ = std::fs::remove_file(&temporary);
                bail!("{error}");
            }
        }
    }
    Ok(())
}

/// The text report: the measured table with the USL prediction at each N,
/// then each architecture's fits.
fn render(report: &SweepReport, file: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "sweep of {} ({file})", report.scenario);
    let axis = &report.vary[0];
    let _ = writeln!(out, "N = {}", axis);
    for other in &report.vary[1..] {
        let _ = writeln!(out, "in lockstep: {other}");
    }
    let seeds = if report.seeds == 1 {
        format!("1 seed per point (seed {})", report.seed_base)
    } else {
        format!(
            "{} seeds per point (seed {} + k, k = 0..{}); ± is the sample standard deviation",
            report.seeds,
            report.seed_base,
            report.seeds - 1
        )
    };
    let _ = writeln!(out, "{seeds}\n");

    let mut header = vec!["N".to_string()];
    for architecture in &report.architectures {
        header.push(format!("{architecture} X/s"));
        header.push("± sd".to_string());
        header.push("USL fit".to_string());
        header.push("p99 ms".to_string());
    }
    let mut rows = vec![header];
    for point in &report.points {
        let mut row = vec![number(point.n)];
        for column in &point.architectures {
            row.push(format!("{:.1}", column.throughput_mean));
            row.push(format!("{:.1}", column.throughput_stddev));
            row.push(column.usl_prediction.map_or("-".to_string(), |x| format!("{x:.1}")));
            row.push(format!("{:.1}", column.latency_p99_ms_mean));
        }
        rows.push(row);
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, width))| {
                // A gap before each architecture's group of columns.
                let gap = if c > 0 && (c - 1) % 4 == 0 { "   " } else { "  " };
                let pad = width - cell.chars().count();
                format!("{gap}{}{cell}", " ".repeat(pad))
            })
            .collect();
        let _ = writeln!(out, "{}", cells.concat());
    }

    let _ =
        writeln!(out, "\nfits (least squares on the per-point means; X = throughput in orders/s)");
    for architecture in &report.architectures {
        let Some(fit) = report.fit.get(architecture.name()) else { continue };
        let _ = writeln!(out, "{architecture}");
        if let Some(amdahl) = &fit.amdahl {
            let ceiling = amdahl
                .ceiling
                .map_or("none (p = 0: linear)".to_string(), |ceiling| format!("{ceiling:.1}"));
            let _ = writeln!(
                out,
                "  Amdahl  p = {:.4}  λ = {:.2}  R² = {:.4}  ceiling X = {ceiling}",
                amdahl.p, amdahl.lambda, amdahl.r2
            );
        }
        if let Some(usl) = &fit.usl {
            let peak = match (usl.n_star, usl.peak_throughput) {
                (Some(n_star), Some(peak)) => format!("N* = {n_star:.1}  peak X = {peak:.1}"),
                _ => "N* = none (no retrograde)".to_string(),
            };
            let _ = writeln!(
                out,
                "  USL     σ = {:.4}  κ = {}  λ = {:.2}  R² = {:.4}  {peak}",
                usl.sigma,
                kappa(usl.kappa),
                usl.lambda,
                usl.r2
            );
        }
        for error in &fit.errors {
            let _ = writeln!(out, "  no fit: {error}");
        }
    }

    if report.runs_not_as_expected > 0 {
        let total: usize = report
            .points
            .iter()
            .map(|point| point.architectures.iter().map(|a| a.samples.len()).sum::<usize>())
            .sum();
        let _ = writeln!(
            out,
            "\n{} of {total} runs did not match the scenario's expectations \
             (reported, not failed: use --strict for exit status 1):",
            report.runs_not_as_expected
        );
        let mut shown = 0;
        'points: for point in &report.points {
            for column in &point.architectures {
                for sample in column.samples.iter().filter(|sample| !sample.as_expected) {
                    if shown == 5 {
                        let _ = writeln!(out, "  ...");
                        break 'points;
                    }
                    shown += 1;
                    let why = sample.mismatches.first().map_or("", String::as_str);
                    let _ = writeln!(
                        out,
                        "  N={} {} seed {}: {why}",
                        number(point.n),
                        column.architecture,
                        sample.seed
                    );
                }
            }
        }
    }
    out
}

/// A number as a sweep value is written: no fraction when it has none.
fn number(value: f64) -> String {
    value.to_string()
}

/// κ in a readable form: 0 as such, small values in scientific notation.
fn kappa(value: f64) -> String {
    if value == 0.0 { "0".to_string() } else { format!("{value:.3e}") }
}

/// Runs done out of the total, with an ETA, on stderr when it is a
/// terminal; nothing otherwise.
struct RunsBar {
    bar: Option<indicatif::ProgressBar>,
}

impl RunsBar {
    fn new(total: usize) -> RunsBar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>12} [{bar:30}] {pos}/{len} runs, ETA {eta}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_prefix("sweep");
            bar
        });
        RunsBar { bar }
    }

    fn set(&self, done: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
