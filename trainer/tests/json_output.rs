//! Machine-readable output: `--json` (stdout) and `--json FILE` on every trainer command that
//! prints figures, the text moving to stderr when the JSON takes stdout, and `--quiet`.

use std::path::Path;

mod support;
use support::{p, texts, trainer_command};

/// Runs the trainer; returns (stdout, stderr) and panics when it fails.
fn run(args: &[&str]) -> (String, String) {
    let out = trainer_command(args).output().expect("run trainer");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "trainer {args:?}: {stderr}");
    (stdout, stderr)
}

/// stdout must be exactly one JSON object with these keys.
fn parse(stdout: &str, keys: &[&str]) -> serde_json::Value {
    let value: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"));
    for key in keys {
        assert!(value.get(key).is_some(), "missing {key}: {value}");
    }
    value
}

#[test]
fn every_command_with_figures_prints_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let udata = p(&dir.join("u.data"));
    let data = p(&dir.join("data"));

    let (stdout, stderr) = run(&[
        "gen-synthetic",
        "--out",
        &udata,
        "--users",
        "150",
        "--items",
        "100",
        "--seed",
        "2",
        "--json",
    ]);
    let v = parse(
        &stdout,
        &["command", "out", "interactions", "users", "items", "seed"],
    );
    assert_eq!(v["command"], "gen-synthetic");
    assert_eq!(v["users"], 150);
    assert!(
        stderr.contains("wrote"),
        "the text moves to stderr: {stderr}"
    );

    let (stdout, stderr) = run(&["prepare", "--input", &udata, "--out", &data, "--json", "-"]);
    let v = parse(
        &stdout,
        &[
            "command",
            "input",
            "format",
            "interactions",
            "out",
            "fingerprint",
            "stats",
            "seconds",
        ],
    );
    assert_eq!(v["stats"]["users"], 150);
    assert_eq!(
        v["interactions"],
        parse(
            &run(&[
                "gen-synthetic",
                "--out",
                &udata,
                "--users",
                "150",
                "--items",
                "100",
                "--seed",
                "2",
                "--json"
            ])
            .0,
            &[]
        )["interactions"]
    );
    assert!(stderr.contains("150 users"), "{stderr}");
    assert!(stderr.contains("prepare: "), "summary line: {stderr}");

    let (stdout, _) = run(&["evaluate", "--data", &data, "--model", "pop", "--json"]);
    let v = parse(
        &stdout,
        &[
            "command",
            "model",
            "data",
            "fingerprint",
            "split",
            "metrics",
            "seconds",
        ],
    );
    assert!(v["metrics"]["map"].as_f64().unwrap() > 0.0);
    assert_eq!(v["metrics"]["at"].as_array().unwrap().len(), 3);

    let teacher = p(&dir.join("teacher"));
    let (stdout, stderr) = run(&[
        "train",
        "--data",
        &data,
        "--out",
        &teacher,
        "--dim",
        "8",
        "--epochs",
        "2",
        "--eval-every",
        "1",
        "--json",
    ]);
    let v = parse(
        &stdout,
        &[
            "command",
            "out",
            "version",
            "model",
            "num_parameters",
            "epochs",
            "train_seconds",
            "seconds_per_epoch",
            "metrics",
            "history",
        ],
    );
    assert_eq!(v["epochs"], 2);
    assert_eq!(v["model"]["dim"], 8);
    assert_eq!(v["history"][1]["epoch"], 2);
    assert!(v["history"][0]["metrics"]["map"].is_number());
    assert!(
        v["history"][0].get("rd_weight_mean").is_none(),
        "no RD fields for plain training"
    );
    assert!(
        stderr.contains("trained caser d=8") && stderr.contains("train: caser d=8"),
        "{stderr}"
    );

    let (stdout, _) = run(&["report", "--group", &format!("t={teacher}"), "--json"]);
    let v = parse(&stdout, &["command", "out", "files", "groups", "latency"]);
    assert_eq!(v["groups"][0]["name"], "t");
    assert_eq!(
        v["groups"][0]["num_parameters"],
        parse(
            &std::fs::read_to_string(Path::new(&teacher).join("manifest.json")).unwrap(),
            &[]
        )["num_parameters"]
    );
    assert!(v["out"].is_null());

    // --json FILE: the text stays on stdout, the file is the JSON; RD_JSON works too.
    let file = dir.join("eval.json");
    let (stdout, _) = run(&[
        "evaluate",
        "--data",
        &data,
        "--model",
        "random",
        "--json",
        &p(&file),
    ]);
    assert!(stdout.contains("MAP"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["model"], "random");
    let out = trainer_command(&["evaluate", "--data", &data])
        .env("RD_JSON", "-")
        .output()
        .unwrap();
    parse(&texts(&out).0, &["metrics"]);
}

#[test]
fn quiet_drops_the_summary_line_and_keeps_the_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let udata = p(&dir.join("u.data"));
    run(&[
        "gen-synthetic",
        "--out",
        &udata,
        "--users",
        "60",
        "--items",
        "40",
    ]);
    let (stdout, stderr) = run(&["prepare", "--input", &udata, "--out", &p(&dir.join("a"))]);
    assert!(stdout.contains("60 users"));
    let summary: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("prepare: "))
        .collect();
    assert_eq!(summary.len(), 1, "one summary line: {stderr}");
    assert!(
        summary[0].contains("60 users") && summary[0].contains("wrote"),
        "{stderr}"
    );
    let (stdout, stderr) = run(&[
        "prepare",
        "--input",
        &udata,
        "--out",
        &p(&dir.join("b")),
        "--quiet",
    ]);
    assert!(stdout.contains("60 users"));
    assert!(
        stderr.trim().is_empty(),
        "nothing on stderr with --quiet: {stderr}"
    );
}
