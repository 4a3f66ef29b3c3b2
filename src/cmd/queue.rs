//! `rlab queue`: simulate one station or a tandem and print it beside
//! queueing theory, as a table or as one JSON object.

use crate::cli::{ArrivalsArg, QueueArgs, ServiceArg};
use anyhow::bail;
use scenarios::queueing::theory::ArrivalKind;
use scenarios::queueing::{self, QueueParams, QueueReport, Service};
use scenarios::stats::Interval;
use sim::Seed;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;

pub fn run(args: &QueueArgs) -> anyhow::Result<ExitCode> {
    let params = params(args)?;
    // Validate before choosing a seed, so bad input gets exactly one line.
    if let Err(message) = params.validate() {
        bail!(message);
    }
    let seed = match args.seed {
        Some(seed) => Seed(seed),
        None => {
            let seed = random_seed();
            if !args.json {
                // First, so a run that goes wrong can be replayed.
                eprintln!("seed={seed}");
            }
            seed
        }
    };
    let report = match queueing::run(&params, seed) {
        Ok(report) => report,
        Err(message) => bail!(message),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_table(&params, &report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Maps the flags to the library's model; `--cv` belongs to lognormal
/// service and nothing else.
fn params(args: &QueueArgs) -> anyhow::Result<QueueParams> {
    let service = match (args.service, args.cv) {
        (ServiceArg::Lognormal, Some(cv)) => Service::LogNormal { cv },
        (ServiceArg::Lognormal, None) => {
            bail!(
                "--service lognormal needs --cv: expected a coefficient of variation > 0 and at most {}",
                queueing::CV_MAX
            )
        }
        (other, Some(cv)) => {
            bail!(
                "--cv {cv} is only allowed with --service lognormal, not with --service {}",
                service_name(other)
            )
        }
        (ServiceArg::Exp, None) => Service::Exponential,
        (ServiceArg::Det, None) => Service::Deterministic,
        (ServiceArg::Uniform, None) => Service::Uniform,
    };
    Ok(QueueParams {
        arrivals: match args.arrivals {
            ArrivalsArg::Poisson => ArrivalKind::Poisson,
            ArrivalsArg::Deterministic => ArrivalKind::Deterministic,
        },
        lambda: args.lambda,
        service,
        mu: args.mu,
        servers: args.servers,
        customers: args.customers,
        stations: args.stations,
    })
}

fn service_name(service: ServiceArg) -> &'static str {
    match service {
        ServiceArg::Exp => "exp",
        ServiceArg::Det => "det",
        ServiceArg::Lognormal => "lognormal",
        ServiceArg::Uniform => "uniform",
    }
}

/// A seed from the operating system: `RandomState` is keyed from OS
/// randomness, and the process id separates runs started together. Only the
/// command line may do this (STYLE.md 2.3.4).
fn random_seed() -> Seed {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    Seed(hasher.finish())
}

/// The human-readable report: a header, an aligned table of simulated
/// against theoretical values, and the run's identity.
fn render_table(params: &QueueParams, report: &QueueReport) -> String {
    let mut out = String::new();
    let service = match params.service {
        Service::LogNormal { cv } => format!("lognormal service (cv {cv})"),
        Service::Uniform => "uniform service on [0, 2/mu]".to_string(),
        Service::Exponential => "exponential service".to_string(),
        Service::Deterministic => "deterministic service".to_string(),
    };
    let station = if params.stations == 1 {
        format!("{} queue", params.kendall())
    } else {
        format!("tandem of {} {} stations", params.stations, params.kendall())
    };
    out.push_str(&format!(
        "{station}: {} arrivals at lambda {}/s, {service} at mu {}/s\n",
        report.arrivals, report.lambda, report.mu
    ));
    out.push_str(&format!(
        "{} customers, the first {} left out as warm-up; 95% CI by batch means over {} batches\n\n",
        report.customers,
        report.warmup_customers,
        queueing::BATCHES
    ));

    let theory = report.theory;
    let theory_cell = |value: Option<f64>, unit: &str| match value {
        Some(value) => format!("{} {unit}", number(value)),
        None => "n/a (no closed form)".to_string(),
    };
    let rows: [(&str, String, String, String); 6] = [
        (
            "mean time in system W",
            format!("{} s", number(report.mean_time_in_system)),
            interval(report.ci95_time_in_system),
            theory_cell(theory.map(|t| t.mean_time_in_system), "s"),
        ),
        (
            "mean wait Wq",
            format!("{} s", number(report.mean_wait)),
            interval(report.ci95_wait),
            theory_cell(theory.map(|t| t.mean_wait), "s"),
        ),
        (
            "mean queue length Lq",
            number(report.mean_queue_length),
            String::new(),
            theory_cell(theory.map(|t| t.mean_queue_length), ""),
        ),
        (
            "mean number in system L",
            number(report.mean_number_in_system),
            String::new(),
            theory_cell(theory.map(|t| t.mean_number_in_system), ""),
        ),
        (
            "utilisation (per server)",
            number(report.utilisation),
            String::new(),
            // Offered load is exact for any stable model.
            number(params.offered_utilisation()),
        ),
        (
            "throughput",
            format!("{} /s", number(report.throughput)),
            String::new(),
            format!("{} /s", number(report.lambda)),
        ),
    ];
    let header = ("metric", "simulated", "95% CI", "theory");
    let width = |column: fn(&(&str, String, String, String)) -> usize, title: &str| {
        rows.iter().map(column).max().unwrap_or(0).max(title.len())
    };
    let widths = [
        width(|row| row.0.len(), header.0),
        width(|row| row.1.len(), header.1),
        width(|row| row.2.len(), header.2),
    ];
    let line = |a: &str, b: &str, c: &str, d: &str| {
        let text = format!(
            "{a:<w0$}  {b:>w1$}  {c:<w2$}  {d}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        format!("{}\n", text.trim_end())
    };
    out.push_str(&line(header.0, header.1, header.2, header.3));
    for (metric, simulated, ci, theory) in &rows {
        out.push_str(&line(metric, simulated, ci, theory));
    }
    out.push_str(&format!(
        "\nLittle's law: L = {}, throughput × W = {}; Lq = {}, throughput × Wq = {}\n",
        number(report.little.l),
        number(report.little.lambda_w),
        number(report.little.lq),
        number(report.little.lambda_wq)
    ));
    out.push_str(&format!(
        "events={} trace_hash={} seed={}\n",
        report.events, report.trace_hash, report.seed
    ));
    out
}

/// Four significant digits, without exponent for ordinary magnitudes.
fn number(value: f64) -> String {
    if value == 0.0 || (1e-3..1e6).contains(&value.abs()) {
        let decimals = (3 - value.abs().log10().floor() as i32).max(0) as usize;
        let decimals = if value == 0.0 { 4 } else { decimals };
        format!("{value:.decimals$}")
    } else {
        format!("{value:.3e}")
    }
}

fn interval(interval: Interval) -> String {
    format!("[{}, {}]", number(interval.low), number(interval.high))
}
