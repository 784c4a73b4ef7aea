//! `trainer distill --method cd|rrd|dcd|rcekd` against a real teacher-svc process: every method
//! trains a student from the teacher's long lists (and RCE-KD from online ScoreItems calls),
//! the same seed gives the same student, a teacher restarted mid-training costs retries, not the
//! result, and bad settings are refused with the flag to fix.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::{
    SMALL_METHOD_LISTS, Server, p, prepared, pull_two_shards, start_teacher, teacher_counter,
    trainer, trainer_command,
};

fn distill_args(
    data: &Path,
    teacher: &str,
    cache: &Path,
    out: &Path,
    method: &str,
    epochs: &str,
) -> Vec<String> {
    let mut args: Vec<String> = [
        "distill",
        "--data",
        &p(data),
        "--teacher",
        teacher,
        "--cache-dir",
        &p(cache),
        "--out",
        &p(out),
        "--method",
        method,
        "--dim",
        "8",
        "--epochs",
        epochs,
        "--seed",
        "5",
        "--max-retries",
        "30",
        "--json",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(SMALL_METHOD_LISTS.iter().map(|s| s.to_string()));
    args
}

/// ScoreItems calls this teacher has answered, read from its Prometheus endpoint.
fn score_calls(teacher: &Server) -> u64 {
    teacher_counter(teacher, "teacher_requests_total", "method=\"ScoreItems\"")
}

fn json_of(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[test]
fn every_method_distills_from_a_live_teacher_and_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "150", "200", "8");
    let teacher_ck = dir.path().join("teacher");
    let (ok, _, err) = trainer(&[
        "train",
        "--data",
        &p(&data),
        "--out",
        &p(&teacher_ck),
        "--dim",
        "16",
        "--epochs",
        "2",
    ]);
    assert!(ok, "{err}");
    let teacher = start_teacher(&data, &teacher_ck, "127.0.0.1:0");
    let cache = dir.path().join("cache");
    let mut maps = Vec::new();
    for method in ["cd", "rrd", "dcd", "rcekd"] {
        let out = dir.path().join(method);
        let args = distill_args(&data, &teacher.addr, &cache, &out, method, "3");
        let (ok, stdout, err) = trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "{method}: {err}");
        let json = json_of(&stdout);
        assert_eq!(json["method"], method);
        let map = json["metrics"]["map"].as_f64().unwrap();
        assert!(map > 0.0 && map.is_finite(), "{method}: {json}");
        maps.push(map);
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        let training = &manifest["training"];
        assert_eq!(training["method"], method);
        assert_eq!(training["method_config"]["method"], method);
        // Each epoch records the ranking loss and the method's own.
        for record in training["history"].as_array().unwrap() {
            assert!(record["l_r"].as_f64().unwrap() > 0.0);
            assert!(record["l_d"].as_f64().unwrap().is_finite());
        }
        if method == "rcekd" {
            let scored = &json["score_items"];
            assert!(
                scored["calls"].as_u64().unwrap() >= 3,
                "one call per epoch at least: {scored}"
            );
            assert!(scored["scored_pairs"].as_u64().unwrap() > 0);
            // The student's picks repeat across epochs: the cache answers some.
            assert!(scored["cache_hits"].as_u64().unwrap() > 0, "{scored}");
        }
    }
    // The same seed again (the lists now from the cache): the same student.
    let again = dir.path().join("rrd-again");
    let args = distill_args(&data, &teacher.addr, &cache, &again, "rrd", "3");
    let (ok, stdout, err) = trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let json = json_of(&stdout);
    assert_eq!(json["pull"]["source"], "cache");
    assert_eq!(json["metrics"]["map"].as_f64().unwrap(), maps[1]);
    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(weights(&again), weights(&dir.path().join("rrd")));

    // `trainer pull --method dcd` in two shards, then `distill --method dcd` from the shards
    // alone (no teacher): the same lists, so the same student as the pull from the teacher.
    let shards = dir.path().join("shards");
    let mut extra = vec!["--method", "dcd"];
    extra.extend_from_slice(SMALL_METHOD_LISTS);
    pull_two_shards(&data, &teacher.addr, &shards, &extra);
    let merged = dir.path().join("dcd-merged");
    let mut args = distill_args(&data, &teacher.addr, &shards, &merged, "dcd", "3");
    let at = args.iter().position(|a| a == "--teacher").unwrap();
    args.drain(at..at + 2);
    args.extend(["--shard-count".to_string(), "2".to_string()]);
    let (ok, stdout, err) = trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{err}");
    let json = json_of(&stdout);
    assert_eq!(json["pull"]["source"], "shards");
    assert_eq!(weights(&merged), weights(&dir.path().join("dcd")));
}

#[test]
fn rcekd_rides_out_a_teacher_restart_with_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "150", "200", "9");
    let teacher_ck = dir.path().join("teacher");
    let (ok, _, err) = trainer(&[
        "train",
        "--data",
        &p(&data),
        "--out",
        &p(&teacher_ck),
        "--dim",
        "16",
        "--epochs",
        "1",
    ]);
    assert!(ok, "{err}");
    let mut teacher = start_teacher(&data, &teacher_ck, "127.0.0.1:0");
    let addr = teacher.addr.clone();
    let run = |cache: &Path, out: &Path| {
        let args = distill_args(&data, &addr, cache, out, "rcekd", "8");
        trainer_command(&args).spawn().expect("start distill")
    };
    // Undisturbed.
    let quiet = run(&dir.path().join("cache-a"), &dir.path().join("a"))
        .wait_with_output()
        .unwrap();
    assert!(
        quiet.status.success(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    // Disturbed: once training has asked the teacher for scores twice (two epochs begun), the
    // teacher goes away for a second and comes back on its port.
    let before = score_calls(&teacher);
    let child = run(&dir.path().join("cache-b"), &dir.path().join("b"));
    let deadline = Instant::now() + Duration::from_secs(120);
    while score_calls(&teacher) < before + 2 {
        assert!(Instant::now() < deadline, "training never asked for scores");
        std::thread::sleep(Duration::from_millis(10));
    }
    teacher.kill();
    std::thread::sleep(Duration::from_millis(1000));
    teacher = start_teacher(&data, &teacher_ck, &addr);
    let disturbed = child.wait_with_output().unwrap();
    assert!(
        disturbed.status.success(),
        "{}",
        String::from_utf8_lossy(&disturbed.stderr)
    );
    let a = json_of(&String::from_utf8_lossy(&quiet.stdout));
    let b = json_of(&String::from_utf8_lossy(&disturbed.stdout));
    // The teacher batches the calls as they come, so its scores (and the student's weights)
    // may differ in the last bits between the runs; the metrics agree.
    let (x, y) = (a["metrics"]["map"].as_f64(), b["metrics"]["map"].as_f64());
    assert!((x.unwrap() - y.unwrap()).abs() < 2e-3, "MAP {x:?} vs {y:?}");
    let retries = b["score_items"]["retries"].as_u64().unwrap();
    assert!(
        retries >= 1,
        "the outage must have cost a ScoreItems retry: {}",
        String::from_utf8_lossy(&disturbed.stderr)
    );
    drop(teacher);
}

#[test]
fn bad_method_settings_name_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "60", "100", "3");
    let base = |method: &str, extra: &[&str]| {
        let mut args = vec![
            "distill".to_string(),
            "--data".into(),
            p(&data),
            "--teacher".into(),
            "127.0.0.1:1".into(),
            "--method".into(),
            method.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (ok, _, err) = trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(!ok);
        err
    };
    let err = base("rrd", &["--rrd-k", "80", "--rrd-top-n", "60"]);
    assert!(
        err.contains("--rrd-k (80) cannot be above --rrd-top-n (60)"),
        "{err}"
    );
    let err = base("dcd", &[]);
    assert!(
        err.contains("the method needs teacher lists of 500 items, but the catalog has only")
            && err.contains("lower --dcd-top-n"),
        "{err}"
    );
    let err = base("cd", &["--cd-t1", "0"]);
    assert!(err.contains("--cd-t1"), "{err}");
    let err = base(
        "rcekd",
        &["--rcekd-top-n", "20", "--rcekd-l", "30", "--rcekd-k", "10"],
    );
    assert!(
        err.contains("--rcekd-l (30) cannot be above --rcekd-top-n (20)"),
        "{err}"
    );
    let err = base("nope", &[]);
    assert!(err.contains("invalid value 'nope'"), "{err}");
}
