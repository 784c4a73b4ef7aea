//! End-to-end tests of the `trainer` binary on real files.

use std::path::{Path, PathBuf};

mod support;
use support::trainer;

/// MovieLens-100K from the shared data folder (never copied into the repo).
fn ml100k() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("RD_SHARED_DATA") {
        candidates.push(PathBuf::from(dir).join("ml-100k/u.data"));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    candidates.push(root.join("shared/data/ml-100k/u.data"));
    candidates.push(PathBuf::from("/work/shared/data/ml-100k/u.data"));
    candidates.into_iter().find(|p| p.exists())
}

#[test]
fn prepare_ml100k_reports_the_reference_counts_and_pop_metrics() {
    let Some(udata) = ml100k() else {
        eprintln!("SKIPPED: ml-100k not found (set RD_SHARED_DATA)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ml");
    let (ok, stdout, stderr) = trainer(&[
        "prepare",
        "--input",
        udata.to_str().unwrap(),
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(
            "943 users, 1,613 train items, 79,619 train rows, 20,295 test rows (86 test rows dropped)"
        ),
        "{stdout}"
    );
    let json = dir.path().join("pop.json");
    let (ok, stdout, stderr) = trainer(&[
        "evaluate",
        "--data",
        data.to_str().unwrap(),
        "--model",
        "pop",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    for label in [
        "Prec",
        "Recall",
        "nDCG",
        "nDCG(ref)",
        "MAP",
        "@3",
        "@5",
        "@10",
    ] {
        assert!(stdout.contains(label), "missing {label}: {stdout}");
    }
    let parsed: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
    let map = parsed["metrics"]["map"].as_f64().unwrap();
    assert!(map > 0.05 && map < 0.2, "POP MAP {map}");
    assert_eq!(parsed["metrics"]["users"], 943);
}

#[test]
fn synthetic_demo_pipeline_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let udata = dir.path().join("u.data");
    let data = dir.path().join("data");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let (ok, _, stderr) = trainer(&[
        "gen-synthetic",
        "--out",
        &p(&udata),
        "--users",
        "300",
        "--items",
        "200",
        "--seed",
        "5",
    ]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = trainer(&["prepare", "--input", &p(&udata), "--out", &p(&data)]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("300 users"), "{stdout}");
    let pop = trainer(&[
        "evaluate",
        "--data",
        &p(&data),
        "--model",
        "pop",
        "--json",
        "-",
    ]);
    let random = trainer(&[
        "evaluate",
        "--data",
        &p(&data),
        "--model",
        "random",
        "--json",
        "-",
    ]);
    let map_of = |stdout: &str| -> f64 {
        let start = stdout.find('{').unwrap();
        let v: serde_json::Value = serde_json::from_str(&stdout[start..]).unwrap();
        v["metrics"]["map"].as_f64().unwrap()
    };
    assert!(map_of(&pop.1) > map_of(&random.1));

    // Malformed input names the file and line; nothing is written.
    let bad = dir.path().join("bad.data");
    std::fs::write(&bad, "1\t2\t3\t100\n1\t2\t3\n").unwrap();
    let out = dir.path().join("never");
    let (ok, _, stderr) = trainer(&["prepare", "--input", &p(&bad), "--out", &p(&out)]);
    assert!(!ok);
    assert!(stderr.contains("bad.data:2: expected 4 fields"), "{stderr}");
    assert!(!out.exists());
    // Unknown models and missing data give actionable errors.
    let (ok, _, stderr) = trainer(&["evaluate", "--data", &p(&data), "--model", "nope"]);
    assert!(
        !ok && stderr.contains("use pop, random, or a checkpoint"),
        "{stderr}"
    );
    let (ok, _, stderr) = trainer(&["evaluate", "--data", &p(&out)]);
    assert!(
        !ok && stderr.contains("cannot load the prepared dataset"),
        "{stderr}"
    );
}

#[test]
fn train_writes_a_checkpoint_that_evaluate_reads_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let udata = dir.path().join("u.data");
    let data = dir.path().join("data");
    let p = |x: &Path| x.to_str().unwrap().to_string();
    assert!(
        trainer(&[
            "gen-synthetic",
            "--out",
            &p(&udata),
            "--users",
            "200",
            "--items",
            "150"
        ])
        .0
    );
    assert!(trainer(&["prepare", "--input", &p(&udata), "--out", &p(&data)]).0);
    let run = |out: &Path, kind: &str| {
        let (ok, stdout, stderr) = trainer(&[
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(out),
            "--model",
            kind,
            "--dim",
            "16",
            "--epochs",
            "2",
            "--seed",
            "3",
        ]);
        assert!(ok, "{stderr}");
        stdout
    };
    for kind in ["caser", "mf"] {
        let a = run(&dir.path().join(format!("{kind}-a")), kind);
        let b = run(&dir.path().join(format!("{kind}-b")), kind);
        let table = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("trained") && !l.starts_with("wrote"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(table(&a), table(&b), "same seed must give the same metrics");
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(format!("{kind}-a/manifest.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["model"]["kind"], kind);
        assert!(manifest["metrics"]["values"]["map"].as_f64().unwrap() > 0.0);
        let (ok, stdout, stderr) = trainer(&[
            "evaluate",
            "--data",
            &p(&data),
            "--model",
            &p(&dir.path().join(format!("{kind}-a"))),
        ]);
        assert!(ok, "{stderr}");
        let map_line = |s: &str| {
            s.lines()
                .find(|l| l.starts_with("MAP"))
                .unwrap()
                .to_string()
        };
        assert_eq!(map_line(&stdout), map_line(&a));
    }
}
