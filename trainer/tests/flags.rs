//! The trainer's numeric flags are checked while the command line is parsed (NaN, infinities
//! and out-of-range values never reach LibTorch), a diverging run stops with an error and
//! writes nothing (no metrics of NaN weights are printed), and a user error prints its message
//! and causes only, without a backtrace, even with `RUST_BACKTRACE=1`.

use std::path::{Path, PathBuf};

mod support;

use support::p;

/// The trainer with `env` added, logging at info (what a user sees by default).
fn trainer_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    support::trainer_env(args, &[&[("RUST_LOG", "info")], env].concat())
}

fn trainer(args: &[&str]) -> (Option<i32>, String, String) {
    trainer_env(args, &[])
}

/// A small prepared dataset.
fn prepared(root: &Path) -> PathBuf {
    support::prepared(root, "data", "60", "40", "5")
}

/// No stack trace of any kind: Rust's (`RUST_BACKTRACE`) or LibTorch's C++ one.
fn assert_no_trace(stderr: &str) {
    for marker in [
        "Stack backtrace",
        "stack backtrace",
        "Exception raised from",
        "frame #0",
        "at /rustc/",
        "std::backtrace",
    ] {
        assert!(!stderr.contains(marker), "{marker:?} in:\n{stderr}");
    }
}

#[test]
fn numeric_flags_out_of_range_are_refused_at_parse_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = p(&prepared(dir.path()));
    let out = dir.path().join("never");
    let o = p(&out);
    let train = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["train", "--data", &data, "--out", &o, "--epochs", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let distill = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "distill",
            "--data",
            &data,
            "--teacher",
            "127.0.0.1:1",
            "--out",
            &o,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    // (command line, what stderr must say)
    let rows: Vec<(Vec<String>, &str)> = vec![
        (
            train(&["--lr", "NaN"]),
            "--lr must be a number above 0 (the Adam learning rate), got NaN",
        ),
        (
            train(&["--lr", "0"]),
            "--lr must be a number above 0 (the Adam learning rate), got 0",
        ),
        (
            train(&["--l2=-1"]),
            "--l2 must be non-negative and finite, got -1",
        ),
        (
            train(&["--l2", "inf"]),
            "--l2 must be non-negative and finite, got inf",
        ),
        (
            train(&["--dropout", "NaN"]),
            "--dropout must be in [0, 1), got NaN",
        ),
        (
            distill(&["--lambda", "inf"]),
            "--lambda must be positive and finite, got inf",
        ),
        (
            distill(&["--mu", "NaN"]),
            "--mu must be non-negative and finite, got NaN",
        ),
        (
            distill(&["--alpha=-0.5"]),
            "--alpha must be non-negative and finite, got -0.5",
        ),
        (
            distill(&["--pull-rate", "0"]),
            "--pull-rate must be positive and finite, got 0",
        ),
        (
            vec![
                "prepare".into(),
                "--input".into(),
                p(&dir.path().join("data.data")),
                "--out".into(),
                o.clone(),
                "--test-fraction".into(),
                "inf".into(),
            ],
            "--test-fraction must be in [0, 1), got inf",
        ),
        (
            vec![
                "gen-synthetic".into(),
                "--out".into(),
                o.clone(),
                "--transition-prob".into(),
                "1.5".into(),
            ],
            "--transition-prob must be in [0, 1], got 1.5",
        ),
        (
            vec![
                "gen-synthetic".into(),
                "--out".into(),
                o.clone(),
                "--popularity-exponent".into(),
                "NaN".into(),
            ],
            "--popularity-exponent must be non-negative and finite, got NaN",
        ),
    ];
    for (args, needle) in rows {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, stderr) = trainer_env(&args, &[("RUST_BACKTRACE", "1")]);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {needle:?} not in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_no_trace(&stderr);
        assert!(!out.exists(), "{args:?} wrote {}", out.display());
    }
    // The environment variable goes through the same check.
    let args = train(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = trainer_env(&args, &[("RD_LR", "NaN")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--lr must be a number above 0"), "{stderr}");
    // Text that is no number stays a usage error (clap's status 2).
    let args = train(&["--l2", "tiny"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = trainer(&args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'tiny' for '--l2"),
        "{stderr}"
    );
}

#[test]
fn a_diverging_run_stops_without_printing_metrics_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = p(&prepared(dir.path()));
    let out = dir.path().join("diverged");
    for epochs in ["1", "3"] {
        let (code, stdout, stderr) = trainer_env(
            &[
                "train",
                "--data",
                &data,
                "--out",
                &p(&out),
                "--epochs",
                epochs,
                "--eval-every",
                "1",
                "--dim",
                "4",
                "--lr",
                "inf",
            ],
            &[("RUST_BACKTRACE", "1")],
        );
        assert_eq!(code, Some(1), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("the training diverged (try a lower --lr); nothing was written"),
            "{stderr}"
        );
        assert!(stderr.contains("epoch 1"), "{stderr}");
        let printed = format!("{stdout}{stderr}");
        for metric in ["MAP", "map=", "prec10=", "ndcg10=", "nDCG", "epoch done"] {
            assert!(!printed.contains(metric), "{metric:?} printed:\n{printed}");
        }
        assert_no_trace(&stderr);
        assert!(!out.exists());
    }
}

#[test]
fn user_errors_print_their_causes_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.data");
    std::fs::write(&bad, "1\t2\t5\t881250949\nnot a line\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "evaluate".into(),
                "--data".into(),
                "/nonexistent/data".into(),
            ],
            "cannot load the prepared dataset /nonexistent/data",
        ),
        (
            vec![
                "prepare".into(),
                "--input".into(),
                p(&bad),
                "--out".into(),
                p(&dir.path().join("out")),
            ],
            "bad.data:2:",
        ),
        (
            vec![
                "report".into(),
                "--group".into(),
                "a=/nonexistent/run".into(),
            ],
            "cannot read run /nonexistent/run",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for backtrace in ["1", "full"] {
            let (code, _, stderr) = trainer_env(&args, &[("RUST_BACKTRACE", backtrace)]);
            assert_eq!(code, Some(1), "{args:?}: {stderr}");
            assert!(
                stderr.contains(needle),
                "{args:?}: {needle:?} not in:\n{stderr}"
            );
            assert!(
                stderr.starts_with("Error: ") || stderr.contains("\nError: "),
                "{stderr}"
            );
            assert_no_trace(&stderr);
        }
    }
}
