//! Tidy checks (rust-analyzer's tidy, TigerBeetle's tidy.zig): rules about
//! the source tree itself that the compiler cannot enforce.

use std::fs;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return files };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// Source files of the crates that run inside a simulation.
fn in_run_sources() -> Vec<PathBuf> {
    ["sim/src", "scenarios/src", "lessons/src"]
        .iter()
        .flat_map(|dir| rust_files(&workspace_root().join(dir)))
        .collect()
}

/// The engine depends on nothing else in the workspace (the architecture's
/// first invariant): its manifest names no sibling crate.
#[test]
fn sim_depends_on_no_workspace_crate() {
    let manifest = fs::read_to_string(workspace_root().join("sim/Cargo.toml")).unwrap();
    for sibling in ["scenarios", "lessons", "visualize", "rlab"] {
        assert!(
            !manifest.lines().any(|line| line.trim_start().starts_with(sibling)),
            "sim/Cargo.toml must not depend on {sibling}"
        );
    }
    for forbidden in ["clap", "toml", "anyhow", "ratatui", "crossterm", "plotters"] {
        assert!(
            !manifest.lines().any(|line| line.trim_start().starts_with(forbidden)),
            "sim must not use {forbidden}"
        );
    }
}

/// Inside a run there is no wall clock, no entropy, no thread and no hash
/// order: the crates that run inside a simulation never name them.
#[test]
fn no_wall_clock_entropy_threads_or_hash_maps_inside_a_run() {
    let banned = [
        "Instant::now",
        "SystemTime",
        "thread_rng",
        "from_entropy",
        "OsRng",
        "thread::spawn",
        "HashMap",
        "HashSet",
        "DefaultHasher",
    ];
    let mut hits = Vec::new();
    for file in in_run_sources() {
        let text = fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for word in banned {
                if line.contains(word) {
                    hits.push(format!("{}:{}: {word}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "determinism bans broken:\n{}", hits.join("\n"));
}

/// Transcendental functions come from libm, never from the platform's maths
/// library, so results are identical on every machine.
#[test]
fn sampling_uses_libm_not_std_float_functions() {
    // `.log(` is left out: it is also an ordinary method name (a saga's log);
    // `f64::log` still catches the float one called by path.
    let std_calls = [
        ".ln()",
        ".log10()",
        ".log2()",
        ".exp()",
        ".exp2()",
        ".powf(",
        ".powi(",
        ".sin()",
        ".cos()",
        ".tan()",
        ".ln_1p()",
        ".exp_m1()",
        "f64::log",
        "f64::ln",
        "f64::exp",
    ];
    let mut hits = Vec::new();
    for file in rust_files(&workspace_root().join("sim/src")) {
        // Test code may use std maths for tolerances; it never feeds a run.
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (number, line) in code.lines().enumerate() {
            for call in std_calls {
                if line.contains(call) && !line.trim_start().starts_with("//") {
                    hits.push(format!("{}:{}: {call}", file.display(), number + 1));
                }
            }
        }
    }
    assert!(hits.is_empty(), "use libm instead:\n{}", hits.join("\n"));
}

/// No debugging leftovers or placeholders in committed code.
#[test]
fn no_dbg_or_todo() {
    let mut hits = Vec::new();
    let dirs = ["sim", "scenarios", "lessons", "visualize", "src", "tests"];
    for dir in dirs {
        for file in rust_files(&workspace_root().join(dir)) {
            if file.ends_with("tidy.rs") {
                continue;
            }
            let text = fs::read_to_string(&file).unwrap();
            for (number, line) in text.lines().enumerate() {
                for word in ["dbg!(", "todo!(", "unimplemented!("] {
                    if line.contains(word) {
                        hits.push(format!("{}:{}: {word}", file.display(), number + 1));
                    }
                }
            }
        }
    }
    assert!(hits.is_empty(), "leftovers:\n{}", hits.join("\n"));
}

/// The README shows the two commands a new user needs, and CI runs the
/// README's test command.
#[test]
fn readme_and_ci_agree_on_the_test_command() {
    let readme = fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let ci = fs::read_to_string(workspace_root().join(".ci/run")).unwrap();
    assert!(readme.contains("cargo test --workspace"));
    assert!(readme.contains("cargo run --release --"));
    assert!(ci.lines().any(|line| line.trim() == "cargo test --workspace"));
}
