//! `trainer prepare --train FILE --test FILE [--valid FILE]`: a pre-split import run through
//! the real binary on small files, evaluated with `pop`, and the flag combinations it refuses.

use std::fs;
use std::path::Path;

mod support;
use support::{p, trainer_env as run};

/// Writes a pre-split pair in `dir`: 20 users with 10 training rows each (items 1..=30) and
/// 2 test rows each, plus two test rows to drop (item 999 never in train, user 77 never in
/// train). With `timestamps`, MovieLens lines (`user item rating time`), else SASRec lines.
/// Returns (train, test).
fn write_pair(dir: &Path, timestamps: bool) -> (String, String) {
    let line = |u: u32, i: u32, t: u32| {
        if timestamps {
            format!("{u}\t{i}\t4\t{}\n", 1000 + t)
        } else {
            format!("{u} {i}\n")
        }
    };
    let (mut train, mut test) = (String::new(), String::new());
    for u in 1..=20 {
        for j in 0..10 {
            train.push_str(&line(u, (u * 7 + j) % 30 + 1, j));
        }
        for j in 10..12 {
            test.push_str(&line(u, (u * 7 + j) % 30 + 1, j));
        }
    }
    test.push_str(&line(1, 999, 50));
    test.push_str(&line(77, 1, 50));
    let (train_path, test_path) = (dir.join("train.txt"), dir.join("test.txt"));
    fs::write(&train_path, train).unwrap();
    fs::write(&test_path, test).unwrap();
    (p(&train_path), p(&test_path))
}

#[test]
fn a_presplit_pair_is_imported_reports_dropped_rows_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_pair(dir.path(), true);
    let data = p(&dir.path().join("data"));
    let json = p(&dir.path().join("prepare.json"));
    let (code, stdout, stderr) = run(
        &[
            "prepare", "--train", &train, "--test", &test, "--out", &data, "--json", &json,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(
            "20 users, 30 train items, 200 train rows, 40 test rows (2 test rows dropped)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("read 200 train interactions from"),
        "{stdout}"
    );
    assert!(
        stdout.contains("read 42 test interactions from"),
        "{stdout}"
    );
    let figures: serde_json::Value = serde_json::from_slice(&fs::read(&json).unwrap()).unwrap();
    assert_eq!(figures["mode"], "presplit");
    assert_eq!(figures["format"], "movielens");
    assert_eq!(figures["train"], train.as_str());
    assert_eq!(figures["test"], test.as_str());
    assert!(figures["valid"].is_null());
    assert_eq!(figures["interactions"], 242);
    assert_eq!(figures["stats"]["test_dropped"], 2);
    assert_eq!(figures["stats"]["test_rows"], 40);

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("data/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["origin"]["kind"], "presplit");
    assert_eq!(manifest["origin"]["train"], train.as_str());
    assert_eq!(manifest["origin"]["test"], test.as_str());
    assert!(manifest["split"].is_null());
    assert_eq!(manifest["fingerprint"], figures["fingerprint"]);

    let eval = p(&dir.path().join("pop.json"));
    let (code, stdout, stderr) = run(
        &[
            "evaluate", "--data", &data, "--model", "pop", "--json", &eval,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("MAP"), "{stdout}");
    let metrics: serde_json::Value = serde_json::from_slice(&fs::read(&eval).unwrap()).unwrap();
    assert_eq!(metrics["metrics"]["users"], 20);
    assert_eq!(metrics["fingerprint"], figures["fingerprint"]);
}

#[test]
fn a_validation_file_is_filtered_like_test_and_formats_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_pair(dir.path(), false);
    let valid = dir.path().join("valid.txt");
    fs::write(&valid, "1 2\n2 998\n3 4\n").unwrap();
    let data = p(&dir.path().join("data"));
    let (code, stdout, stderr) = run(
        &[
            "prepare",
            "--train",
            &train,
            "--valid",
            &p(&valid),
            "--test",
            &test,
            "--out",
            &data,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("(2 test rows dropped), 2 valid rows (1 valid rows dropped)"),
        "{stdout}"
    );
    assert!(stdout.contains("(sasrec)"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("data/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["origin"]["valid"], p(&valid).as_str());
    let (code, _, stderr) = run(
        &[
            "evaluate", "--data", &data, "--model", "pop", "--split", "valid",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");

    // A MovieLens test file with a SASRec train file: refused, naming both files.
    let ml = dir.path().join("ml");
    fs::create_dir(&ml).unwrap();
    let (_, ml_test) = write_pair(&ml, true);
    let out = dir.path().join("mixed");
    let (code, _, stderr) = run(
        &[
            "prepare",
            "--train",
            &train,
            "--test",
            &ml_test,
            "--out",
            &p(&out),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the test file {ml_test} is movielens but the train file {train} is sasrec"
        )),
        "{stderr}"
    );
    assert!(!out.exists());
    // With --format the files are read as one format: the SASRec train file is not MovieLens.
    let (code, _, stderr) = run(
        &[
            "prepare",
            "--train",
            &train,
            "--test",
            &ml_test,
            "--format",
            "movielens",
            "--out",
            &p(&out),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains(&train), "{stderr}");
    assert!(!out.exists());
}

/// Environment variables added to a run.
type Env<'a> = Vec<(&'a str, &'a str)>;

#[test]
fn bad_flag_combinations_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = write_pair(dir.path(), true);
    let out = dir.path().join("data");
    let o = p(&out);
    let cases: Vec<(Vec<&str>, Env, &str)> = vec![
        (
            vec!["--input", &train, "--train", &train, "--test", &test],
            vec![],
            "cannot be used with",
        ),
        (vec!["--input", &train, "--test", &test], vec![], "--train"),
        (vec!["--input", &train, "--valid", &test], vec![], "--train"),
        (vec!["--train", &train], vec![], "--test"),
        (vec![], vec![], "--input"),
        (
            vec!["--train", &train, "--test", &test, "--test-fraction", "0.3"],
            vec![],
            "--test-fraction does not apply with --train",
        ),
        (
            vec![
                "--train",
                &train,
                "--test",
                &test,
                "--valid-fraction",
                "0.1",
            ],
            vec![],
            "--valid-fraction does not apply with --train",
        ),
        (
            vec!["--train", &train, "--test", &test],
            vec![("RD_VALID_FRACTION", "0.1")],
            "--valid-fraction does not apply with --train",
        ),
    ];
    for (flags, env, expected) in cases {
        let mut args = vec!["prepare", "--out", &o];
        args.extend(flags.iter().copied());
        let (code, stdout, stderr) = run(&args, &env);
        assert_eq!(code, Some(2), "{args:?}: {stdout}{stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
    // The fractions still work with --input.
    let (code, stdout, stderr) = run(
        &[
            "prepare",
            "--input",
            &train,
            "--test-fraction",
            "0.3",
            "--out",
            &o,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("20 users"), "{stdout}");
}
