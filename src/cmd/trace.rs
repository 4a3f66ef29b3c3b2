//! `rlab trace export`: converts a JSON-lines trace for Perfetto UI, ShiViz
//! or as a space-time diagram, over a time window or one order's history.

use super::common::write_atomically;
use crate::cli::{TraceCommand, TraceExportArgs, TraceFormatArg};
use anyhow::{Context, Result, bail};
use std::process::ExitCode;
use visualize::export::{self, Format, select::Filter};

pub fn run(command: TraceCommand) -> Result<ExitCode> {
    match command {
        TraceCommand::Export(args) => export_trace(&args),
    }
}

fn export_trace(args: &TraceExportArgs) -> Result<ExitCode> {
    let filter = Filter {
        from_ns: args.from.as_deref().map(|text| parse_bound("--from", text)).transpose()?,
        to_ns: args.to.as_deref().map(|text| parse_bound("--to", text)).transpose()?,
        order: args.order,
    };
    if let (Some(from), Some(to)) = (&args.from, &args.to)
        && filter.to_ns <= filter.from_ns
    {
        bail!("--to {to}: must be after --from {from}");
    }
    let file = std::fs::File::open(&args.trace)
        .with_context(|| format!("{}: cannot read the trace", args.trace.display()))?;
    let trace = export::read::read_trace(std::io::BufReader::new(file))
        .with_context(|| format!("{}", args.trace.display()))?;
    let format = match args.format {
        TraceFormatArg::Perfetto => Format::Perfetto,
        TraceFormatArg::Shiviz => Format::Shiviz,
        TraceFormatArg::LamportSvg => Format::LamportSvg,
    };
    let (text, summary) = export::export(&trace, filter, format)?;
    write_atomically(&args.out, text.as_bytes())?;
    println!(
        "wrote {}: {} events, {} processes, {} messages ({})",
        args.out.display(),
        summary.events,
        summary.processes,
        summary.messages,
        export::describe_filter(&filter)
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses a window bound, naming the flag in the error.
fn parse_bound(flag: &str, text: &str) -> Result<u64> {
    match sim::time::parse_duration(text) {
        Ok(duration) => Ok(duration.as_nanos()),
        Err(_) => bail!("{flag} {text}: expected a duration like 250ms, 1.5s, 10us or 300ns"),
    }
}
