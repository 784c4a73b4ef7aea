//! Output faults of the `trainer` binary: the disk fills up (simulated with a file-size
//! limit, RLIMIT_FSIZE, on the child with SIGXFSZ ignored, so a write fails with EFBIG the way
//! it fails with ENOSPC on a full disk) or the output path cannot be a folder, while `prepare`
//! writes a dataset, `train` writes a checkpoint and `gen-synthetic` writes a file. The command
//! fails with an error naming what it could not write and why, the previous output stays
//! intact and loadable, and no temporary files are left behind. (Tests run as root, so
//! permissions would not stop a write.)
//!
//! A teacher killed during `distill` is `tests/distill.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_testkit::path_arg as p;

/// Runs the binary, with a file-size limit of `limit_kib` KiB when given; returns (exit
/// code, stderr).
fn trainer(limit_kib: Option<u64>, args: &[&str]) -> (Option<i32>, String) {
    let bin = env!("CARGO_BIN_EXE_trainer");
    let mut command = match limit_kib {
        // `ulimit -f` counts 512-byte blocks in POSIX sh; an ignored SIGXFSZ survives exec.
        Some(kib) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!(
                    "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
                    kib * 2
                ))
                .arg(bin)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(bin);
            c.args(args);
            c
        }
    };
    let out = command
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run trainer");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every file under `dir`, with its bytes, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap();
            out.push((path, bytes));
        }
    }
    out.sort();
    out
}

/// Names in `dir` that look like leftovers of an interrupted atomic write.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rankdistill-"))
        .collect()
}

fn assert_refused(code: Option<i32>, stderr: &str, needles: &[&str], context: &str) {
    assert_eq!(code, Some(1), "{context}: {stderr}");
    assert!(!stderr.contains("panicked"), "{context}: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{context}: no '{needle}' in:\n{stderr}"
        );
    }
}

#[test]
fn a_full_disk_or_a_file_in_the_way_keeps_the_previous_output() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let udata = root.join("u.data");
    let data = root.join("data");
    let checkpoint = root.join("teacher");
    let setup: [&[&str]; 3] = [
        &[
            "gen-synthetic",
            "--out",
            &p(&udata),
            "--users",
            "300",
            "--items",
            "120",
            "--seed",
            "4",
        ],
        &["prepare", "--input", &p(&udata), "--out", &p(&data)],
        &[
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(&checkpoint),
            "--dim",
            "8",
            "--epochs",
            "1",
        ],
    ];
    for args in setup {
        let (code, stderr) = trainer(None, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
    }
    let fingerprint = PreparedDataset::load(&data).unwrap().manifest.fingerprint;
    let (data_before, checkpoint_before, udata_before) = (
        snapshot(&data),
        snapshot(&checkpoint),
        std::fs::read(&udata).unwrap(),
    );
    let limit = Some(4); // KiB: far below every output here.

    // prepare over the existing dataset, from another input (so the content would change).
    let other = root.join("other.data");
    let (code, stderr) = trainer(
        None,
        &[
            "gen-synthetic",
            "--out",
            &p(&other),
            "--users",
            "300",
            "--items",
            "120",
            "--seed",
            "5",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = trainer(
        limit,
        &["prepare", "--input", &p(&other), "--out", &p(&data)],
    );
    assert_refused(
        code,
        &stderr,
        &[
            &format!("cannot write the prepared dataset to {}", data.display()),
            "File too large",
        ],
        "prepare on a full disk",
    );
    assert_eq!(snapshot(&data), data_before, "the previous dataset changed");
    assert_eq!(
        PreparedDataset::load(&data).unwrap().manifest.fingerprint,
        fingerprint
    );

    // train over the existing checkpoint.
    let (code, stderr) = trainer(
        limit,
        &[
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(&checkpoint),
            "--dim",
            "8",
            "--epochs",
            "1",
            "--seed",
            "9",
        ],
    );
    assert_refused(
        code,
        &stderr,
        &[&p(&checkpoint), "File too large"],
        "train on a full disk",
    );
    assert_eq!(
        snapshot(&checkpoint),
        checkpoint_before,
        "the previous checkpoint changed"
    );
    let (code, stderr) = trainer(
        None,
        &["evaluate", "--data", &p(&data), "--model", &p(&checkpoint)],
    );
    assert_eq!(
        code,
        Some(0),
        "the previous checkpoint no longer loads: {stderr}"
    );

    // gen-synthetic over the existing file.
    let (code, stderr) = trainer(
        limit,
        &[
            "gen-synthetic",
            "--out",
            &p(&udata),
            "--users",
            "300",
            "--seed",
            "6",
        ],
    );
    assert_refused(
        code,
        &stderr,
        &[
            &format!("cannot write {}", udata.display()),
            "File too large",
        ],
        "gen-synthetic on a full disk",
    );
    assert_eq!(std::fs::read(&udata).unwrap(), udata_before);

    // A regular file where the output folder must go.
    let blocker = root.join("blocker");
    std::fs::write(&blocker, b"a file").unwrap();
    let nested = blocker.join("out");
    let is_a_file = format!("{} is a file, not a folder", blocker.display());
    let (code, stderr) = trainer(
        None,
        &["prepare", "--input", &p(&udata), "--out", &p(&nested)],
    );
    assert_refused(
        code,
        &stderr,
        &["cannot write the prepared dataset", &is_a_file],
        "prepare under a file",
    );
    let (code, stderr) = trainer(
        None,
        &[
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(&nested),
            "--dim",
            "8",
            "--epochs",
            "1",
        ],
    );
    assert_refused(code, &stderr, &[&is_a_file], "train under a file");
    let (code, stderr) = trainer(
        None,
        &["gen-synthetic", "--out", &p(&nested.join("u.data"))],
    );
    assert_refused(code, &stderr, &[&is_a_file], "gen-synthetic under a file");
    assert_eq!(std::fs::read(&blocker).unwrap(), b"a file");

    assert_eq!(
        leftovers(root),
        Vec::<String>::new(),
        "temporary files left behind"
    );
}
