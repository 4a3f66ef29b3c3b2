use crate::cli::QueueArgs;
use std::process::ExitCode;

pub fn run(_args: &QueueArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the queue command is being wired")
}
