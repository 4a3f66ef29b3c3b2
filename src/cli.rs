//! Command-line definitions (clap). Validation that clap cannot express
//! (ranges, stability of a queue) happens in the command modules, with
//! errors that name the flag, the value and what is allowed.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::process::ExitCode;

/// rlab: a deterministic distributed-systems simulator and teaching lab.
#[derive(Debug, Parser)]
#[command(name = "rlab", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Simulate queueing stations (alone or in tandem) and compare with theory.
    Queue(QueueArgs),
    /// Run the standard engine benchmarks and print events per second.
    Bench(BenchArgs),
    /// Check a scenario file and report every mistake in it.
    Validate(ValidateArgs),
    /// List the scenario library (scenarios/*.toml) with what each shows.
    Scenarios(ScenariosArgs),
    /// Run a scenario and print its report.
    Run(RunArgs),
    /// Run every architecture of a scenario on the same seed, side by side.
    Compare(CompareArgs),
    /// Run a saved run again and check it gives the same trace.
    Replay(ReplayArgs),
    /// Run a scenario at several values of a field and fit Amdahl and USL to throughput.
    Sweep(SweepArgs),
}

/// Interarrival-time distribution of the customer source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ArrivalsArg {
    /// Exponential interarrival times (a Poisson process).
    Poisson,
    /// Evenly spaced arrivals.
    Deterministic,
}

/// Service-time distribution of every station.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ServiceArg {
    /// Exponential, mean 1/mu.
    Exp,
    /// Constant 1/mu.
    Det,
    /// Lognormal with mean 1/mu and coefficient of variation --cv.
    Lognormal,
    /// Uniform on [0, 2/mu] (mean 1/mu).
    Uniform,
}

#[derive(Debug, Args)]
pub struct QueueArgs {
    /// Arrival process.
    #[arg(long, value_enum, default_value = "poisson")]
    pub arrivals: ArrivalsArg,
    /// Arrival rate, customers per second (> 0).
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub lambda: f64,
    /// Service-time distribution.
    #[arg(long, value_enum, default_value = "exp")]
    pub service: ServiceArg,
    /// Service rate per server, customers per second (> 0); mean service time is 1/mu.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true)]
    pub mu: f64,
    /// Coefficient of variation of lognormal service times (> 0).
    #[arg(long, value_name = "CV", allow_negative_numbers = true)]
    pub cv: Option<f64>,
    /// Servers (cores) per station.
    #[arg(long, value_name = "C", default_value_t = 1)]
    pub servers: u32,
    /// Customers to simulate.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub customers: u64,
    /// Master seed (chosen at random and printed when omitted).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Identical stations chained in tandem.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub stations: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Scale every workload by this factor (1.0 = the standard sizes).
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, allow_negative_numbers = true)]
    pub scale: f64,
    /// Run only the workloads whose name contains this text.
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// Repeat each workload this many times and report the median.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub repeat: u32,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The scenario file.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// Override a field, e.g. `--set workload.rate_per_s=500` or
    /// `--set faults.0.at_s=5` (the value is TOML; bare words are strings).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScenariosArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: std::path::PathBuf,
    /// Run only this architecture: microlith, reactive or microsystem.
    #[arg(long, value_name = "A")]
    pub arch: Option<String>,
    /// Master seed (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Override a scenario field, e.g. `--set workload.rate_per_s=500`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Print the report as JSON (one object; an array for several architectures).
    #[arg(long)]
    pub json: bool,
    /// Save the run (report, scenario and trace checkpoints) for `rlab replay`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Write the trace as JSON lines.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: std::path::PathBuf,
    /// Master seed (default: the scenario's).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Override a scenario field, e.g. `--set workload.rate_per_s=500`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Print a JSON array of reports, one per architecture.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// The scenario file.
    #[arg(value_name = "SCENARIO")]
    pub scenario: std::path::PathBuf,
    /// A field and its values, e.g. `--vary microsystem.instances=1,2,4,8`; the
    /// first is the x-axis N, further ones move in lockstep with it (default:
    /// the file's `[sweep]` section).
    #[arg(long = "vary", value_name = "PATH=V1,V2,...")]
    pub vary: Vec<String>,
    /// Seeds per point: seed index k runs on the scenario's seed + k (default:
    /// the file's `[sweep] seeds`, else 1).
    #[arg(long, value_name = "K")]
    pub seeds: Option<u32>,
    /// Runs at once (default: the available parallelism); output is the same
    /// for any value.
    #[arg(long, value_name = "J")]
    pub jobs: Option<usize>,
    /// Override a scenario field for every point, e.g. `--set duration_s=20`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Sweep only this architecture: microlith, reactive or microsystem.
    #[arg(long, value_name = "A")]
    pub arch: Option<String>,
    /// Print the sweep report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the throughput-versus-N chart into this directory.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<std::path::PathBuf>,
    /// Also save the JSON report to this file.
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Exit with status 1 if any run's outcome did not match the scenario's
    /// expectations (by default a sweep is a measurement and exits 0).
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A file written by `rlab run --out`.
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
}

/// Prints a clap error as one line (help and version go to stdout whole)
/// and returns the matching exit status.
pub fn report_usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            eprintln!("{}", one_line(&error.render().to_string()));
            ExitCode::from(2)
        }
    }
}

/// Folds clap's message into one line: its first line plus the details it
/// puts on the following lines (possible values, missing flags), without
/// the usage and help hints.
fn one_line(rendered: &str) -> String {
    let kept: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.starts_with("tip:"))
        .collect();
    if kept.is_empty() { "error: invalid arguments".to_string() } else { kept.join(" ") }
}
