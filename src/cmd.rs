//! One module per subcommand; each returns the exit code of its outcome or
//! an error describing bad input.

mod bench;
mod queue;

use crate::cli::{Cli, Command};
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Queue(args) => queue::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
