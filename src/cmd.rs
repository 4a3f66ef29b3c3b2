//! One module per subcommand; each returns the exit code of its outcome or
//! an error describing bad input.

mod bench;
mod common;
mod compare;
mod queue;
mod replay;
mod run;
mod scenarios;
mod sweep;
mod table;
mod validate;

use crate::cli::{Cli, Command};
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Queue(args) => queue::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Scenarios(args) => scenarios::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Compare(args) => compare::run(&args),
        Command::Replay(args) => replay::run(&args),
        Command::Sweep(args) => sweep::run(&args),
    }
}
