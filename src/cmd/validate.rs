//! `rlab validate FILE [--set PATH=VALUE]...`: checks a scenario file
//! (with its overrides) and prints either one `ok` line or every mistake,
//! one per line on stderr, exiting 2.

use crate::cli::ValidateArgs;
use ::scenarios::file;
use std::process::ExitCode;

pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    match file::load(&args.file, &args.set) {
        Ok(scenario) => {
            let architectures: Vec<&str> =
                scenario.architectures.iter().map(|arch| arch.name()).collect();
            println!(
                "{}: ok (name: {}, architectures: {})",
                args.file.display(),
                scenario.name,
                architectures.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for error in &errors {
                eprintln!("{error}");
            }
            Ok(ExitCode::from(2))
        }
    }
}
