use crate::cli::BenchArgs;
use std::process::ExitCode;

pub fn run(_args: &BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the bench command is being wired")
}
