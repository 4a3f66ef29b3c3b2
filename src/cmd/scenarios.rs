//! `rlab scenarios [--json]`: lists the scenario library, `scenarios/*.toml`,
//! with each file's name and the first sentence of its description.
//!
//! The library is the `scenarios/` directory of the current directory if it
//! holds scenario files, else the one in the repository this binary was
//! built from (a development tool may know its checkout). That directory is
//! also the `scenarios` crate, so its `Cargo.toml` is not a scenario.
//!
//! A file that does not validate is listed as invalid, its errors go to
//! stderr one per line, and the command exits 2.

use crate::cli::ScenariosArgs;
use ::scenarios::file::{self, FileError};
use anyhow::{Context, bail};
use serde::Serialize;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// One library file, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Entry {
    /// The path, as found (relative to the current directory when the
    /// library is there).
    file: String,
    /// Whether the file validates.
    valid: bool,
    /// The scenario's name (`null` when invalid).
    name: Option<String>,
    /// The first sentence of its description (`null` when invalid).
    summary: Option<String>,
    /// The architectures it runs (empty when invalid).
    architectures: Vec<String>,
    /// Every error, one line each (empty when valid).
    errors: Vec<String>,
}

pub fn run(args: &ScenariosArgs) -> anyhow::Result<ExitCode> {
    let dir = library_dir();
    let files = library_files(&dir)
        .with_context(|| format!("cannot list the scenario library {}", dir.display()))?;
    if files.is_empty() {
        bail!("no scenario files (*.toml) in {}", dir.display());
    }
    let entries: Vec<Entry> = files.iter().map(|path| entry(path, file::load(path, &[]))).collect();
    let invalid = entries.iter().filter(|entry| !entry.valid).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
    } else {
        print_table(&entries);
    }
    for entry in &entries {
        for error in &entry.errors {
            eprintln!("{error}");
        }
    }
    Ok(if invalid == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

/// `scenarios/` here if it holds scenario files, else the checkout's.
pub(crate) fn library_dir() -> PathBuf {
    let here = Path::new("scenarios");
    if library_files(here).is_ok_and(|files| !files.is_empty()) {
        return here.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// The scenario files of `dir`, sorted: every `*.toml` but `Cargo.toml`.
pub(crate) fn library_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_toml = path.extension().is_some_and(|ext| ext == "toml");
        let is_manifest = path.file_name().is_some_and(|name| name == "Cargo.toml");
        if is_toml && !is_manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn entry(path: &Path, loaded: Result<::scenarios::scenario::Scenario, Vec<FileError>>) -> Entry {
    let file = path.display().to_string();
    match loaded {
        Ok(scenario) => Entry {
            file,
            valid: true,
            summary: Some(first_sentence(&scenario.description)),
            name: Some(scenario.name),
            architectures: scenario.architectures.iter().map(|a| a.name().to_string()).collect(),
            errors: Vec::new(),
        },
        Err(errors) => Entry {
            file,
            valid: false,
            name: None,
            summary: None,
            architectures: Vec::new(),
            errors: errors.iter().map(ToString::to_string).collect(),
        },
    }
}

fn print_table(entries: &[Entry]) {
    let file_width = entries.iter().map(|entry| entry.file.len()).max().unwrap_or(0);
    let name_width =
        entries.iter().map(|entry| entry.name.as_deref().map_or(7, str::len)).max().unwrap_or(0);
    for entry in entries {
        let (name, summary) = match (&entry.name, &entry.summary) {
            (Some(name), Some(summary)) => (name.as_str(), summary.clone()),
            _ => {
                let count = entry.errors.len();
                let noun = if count == 1 { "error" } else { "errors" };
                ("INVALID", format!("{count} {noun}; see `rlab validate {}`", entry.file))
            }
        };
        println!("{:file_width$}  {name:name_width$}  {summary}", entry.file);
    }
}

/// Abbreviations after which a period does not end a sentence.
const ABBREVIATIONS: [&str; 7] = ["ch", "e.g", "i.e", "vs", "cf", "fig", "p"];

/// The first sentence of `text`: up to the first `.`, `!` or `?` that is
/// followed by whitespace and a capital letter (or ends the text), and does
/// not close an abbreviation such as "ch." or "e.g.". Whitespace runs become
/// single spaces.
fn first_sentence(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut sentence: Vec<&str> = Vec::new();
    for (index, word) in words.iter().enumerate() {
        sentence.push(word);
        let ends = word.ends_with(['.', '!', '?']);
        let stem = word.trim_end_matches(['.', '!', '?']).trim_start_matches('(').to_lowercase();
        let abbreviation = word.ends_with('.') && ABBREVIATIONS.contains(&stem.as_str());
        let next_is_capital = words
            .get(index + 1)
            .is_none_or(|next| next.chars().next().is_some_and(char::is_uppercase));
        if ends && !abbreviation && next_is_capital {
            break;
        }
    }
    sentence.join(" ")
}

#[cfg(test)]
mod tests {
    use super::first_sentence;

    #[test]
    fn first_sentence_skips_abbreviations() {
        // Goal: "ch. 5" and "e.g." do not end the summary; a period before a
        // capital does.
        assert_eq!(
            first_sentence("Load (ch. 5) e.g. Orders.  Then more.\nAnd more."),
            "Load (ch. 5) e.g. Orders."
        );
        assert_eq!(first_sentence("No period at all"), "No period at all");
    }
}
