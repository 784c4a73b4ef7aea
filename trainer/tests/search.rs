//! `trainer search` through the real binary against a real teacher-svc: trials on the
//! validation split, the choice and its flags, resuming from finished trials, the model-alone
//! search, and the refusal of a dataset without validation.

use std::fs;
use std::path::Path;

mod support;
use support::{Server, p, prepared, trainer_env, trainer_ok};

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn search_chooses_on_validation_resumes_and_repeats_its_choice() {
    let dir = tempfile::tempdir().unwrap();
    let udata = dir.path().join("u.data");
    let data = dir.path().join("data");
    trainer_ok(&[
        "gen-synthetic",
        "--out",
        &p(&udata),
        "--users",
        "200",
        "--items",
        "120",
        "--seed",
        "5",
    ]);
    trainer_ok(&[
        "prepare",
        "--input",
        &p(&udata),
        "--out",
        &p(&data),
        "--valid-fraction",
        "0.2",
    ]);
    let teacher = dir.path().join("teacher");
    trainer_ok(&[
        "train",
        "--data",
        &p(&data),
        "--out",
        &p(&teacher),
        "--dim",
        "16",
        "--epochs",
        "1",
        "--eval-split",
        "valid",
    ]);
    let server = Server::teacher(&data, &teacher);
    let out = dir.path().join("search");
    let (data_arg, out_arg) = (p(&data), p(&out));
    let cache_arg = p(&dir.path().join("cache"));
    let search = |extra: &[&str]| {
        let mut args = vec![
            "search",
            "--data",
            &data_arg,
            "--out",
            &out_arg,
            "--teacher",
            &server.addr,
            "--cache-dir",
            &cache_arg,
            "--dim",
            "8",
            "--epochs",
            "3",
            "--budget",
            "3",
            "--lambdas",
            "1,2",
            "--mus",
            "0.1",
            "--alphas",
            "0.5,1",
            "--dynamic-starts",
            "1",
            "--renormalise-options",
            "false",
        ];
        args.extend_from_slice(extra);
        trainer_env(&args, &[])
    };
    let (code, stdout, stderr) = search(&["--dynamic-start-epoch", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let choice = read_json(&out.join("choice.json"));
    let trials = choice["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{choice}");
    // Trial 0 is the flags as given (the reference defaults otherwise).
    assert_eq!(trials[0]["rd"]["lambda"], 1.0);
    assert_eq!(trials[0]["rd"]["alpha"], 1.0);
    assert_eq!(trials[0]["rd"]["mu"], 0.1);
    for trial in trials {
        assert_eq!(trial["valid_map"].as_array().unwrap().len(), 3);
        let index = trial["index"].as_u64().unwrap();
        assert!(fs::metadata(out.join(format!("trials/{index:03}.json"))).is_ok());
    }
    // The choice is the best validation MAP over every trial and epoch.
    let best = trials
        .iter()
        .flat_map(|t| {
            t["valid_map"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_f64().unwrap())
        })
        .fold(f64::MIN, f64::max);
    assert_eq!(choice["valid_map"].as_f64().unwrap(), best);
    assert_eq!(choice["selected_by"], "MAP on the validation split");
    let flags: Vec<String> = choice["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    assert_eq!(flags[0], "--epochs");
    assert_eq!(flags[1], choice["epochs"].to_string());
    assert!(stdout.contains("chose trial"), "{stdout}");

    // Run again: every trial is reused, the choice is the same.
    let (code, stdout, stderr) = search(&["--dynamic-start-epoch", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.matches("reusing").count(), 3, "{stdout}");
    assert_eq!(
        read_json(&out.join("choice.json"))["flags"],
        choice["flags"]
    );

    // The chosen flags are accepted by distill as they are.
    let mut args: Vec<String> = [
        "distill",
        "--data",
        &p(&data),
        "--teacher",
        &server.addr,
        "--cache-dir",
        &p(&dir.path().join("cache")),
        "--dim",
        "8",
        "--out",
        &p(&dir.path().join("student")),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(flags);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = trainer_env(&refs, &[]);
    assert_eq!(code, Some(0), "{stderr}");

    // The model alone: one trial, which chooses the epochs.
    let alone = dir.path().join("alone");
    trainer_ok(&[
        "search",
        "--method",
        "alone",
        "--data",
        &p(&data),
        "--out",
        &p(&alone),
        "--dim",
        "8",
        "--epochs",
        "2",
    ]);
    let choice = read_json(&alone.join("choice.json"));
    assert_eq!(choice["method"], "alone");
    assert!(choice["rd"].is_null());
    assert_eq!(choice["trials"].as_array().unwrap().len(), 1);
    assert_eq!(choice["flags"][0], "--epochs");
}

#[test]
fn search_refuses_a_dataset_without_validation() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "50", "40", "5");
    let out = dir.path().join("search");
    let (code, _, stderr) = trainer_env(
        &[
            "search",
            "--method",
            "alone",
            "--data",
            &p(&data),
            "--out",
            &p(&out),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("has no validation split"), "{stderr}");
    assert!(stderr.contains("--valid-fraction"), "{stderr}");
    assert!(!out.exists());
    let (code, _, stderr) = trainer_env(
        &[
            "search",
            "--method",
            "alone",
            "--data",
            &p(&data),
            "--budget",
            "0",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--budget must be at least 1"), "{stderr}");
}
