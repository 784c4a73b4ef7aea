//! Finding the workspace's binaries from a test, and reading what a finished process printed.

use std::path::{Path, PathBuf};
use std::process::Output;

/// A binary of another workspace package, built beside the test executable: a test runs as
/// `target/<profile>/deps/<test>-<hash>` under both `cargo test` and `cargo nextest`, and
/// the binaries sit in `target/<profile>/`. A test of the binary's own package uses
/// `env!("CARGO_BIN_EXE_<name>")` instead.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (the workspace test run does)",
        bin.display()
    );
    bin
}

/// The path as a string argument (the test folders are UTF-8).
pub fn path_arg(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}

/// Stdout and stderr of a finished process.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
