//! What the test modules share: running the built `rlab` binary from the
//! repository root, and scratch paths under the target directory.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `rlab` with `args` from the repository root (scenario paths in
/// tests are relative to it) and returns what it printed and its status.
pub fn rlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rlab"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("rlab runs")
}

/// A path named `name` in the test area `area`'s scratch directory (made
/// if missing), for files a test writes.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(area);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}
