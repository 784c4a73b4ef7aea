//! The repository's Python environments (`scripts/python-env.sh`), for the tests that check
//! interoperability with PyTorch, numpy and the Python client example.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The python of a venv from `scripts/python-env.sh FLAVOUR` (installed on first use); the
/// test fails with the script's own error when the set-up fails.
pub fn python_env(flavour: &str) -> PathBuf {
    let script = repo_root().join("scripts/python-env.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(flavour)
        .output()
        .expect("run scripts/python-env.sh");
    assert!(
        out.status.success(),
        "{} {flavour} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let python = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        python.is_file(),
        "python-env.sh printed {}",
        python.display()
    );
    python
}
