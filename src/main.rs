//! `rlab`: the command-line entry point. This file and `cli.rs` hold only
//! wiring: parse arguments, validate them, call the libraries, print, and
//! map outcomes to exit codes (0 = as expected, 1 = not as expected,
//! 2 = bad input).

mod cli;
mod cmd;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return cli::report_usage_error(error),
    };
    match cmd::dispatch(cli) {
        Ok(code) => code,
        Err(error) => {
            // Every error that reaches here is bad input the command could
            // not act on: one line, exit status 2.
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
