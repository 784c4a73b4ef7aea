//! `trainer distill` against a real teacher-svc process on an ephemeral port, with the
//! teacher killed and restarted mid-stream: the result must equal an uninterrupted run.

use std::path::Path;
use std::time::{Duration, Instant};

mod support;
use support::{Server, prepared, start_teacher, teacher_counter, trainer, trainer_command};

/// Rankings this teacher has streamed so far, read from its Prometheus endpoint.
fn streamed(teacher: &Server) -> u64 {
    teacher_counter(teacher, "teacher_streamed_rankings_total", "")
}

fn result_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| {
            !l.starts_with("rankings:") && !l.starts_with("wrote") && !l.starts_with("distilled")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn distill_survives_a_teacher_restart_and_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let teacher_ck = dir.path().join("teacher");
    let data = prepared(dir.path(), "data", "300", "200", "8");
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

    let distill = |teacher: &str, cache: &Path, out: &Path, extra: &[&str]| {
        let mut args: Vec<String> = [
            "distill",
            "--data",
            &p(&data),
            "--teacher",
            teacher,
            "--cache-dir",
            &p(cache),
            "--out",
            &p(out),
            "--dim",
            "8",
            "--epochs",
            "2",
            "--dynamic-start-epoch",
            "1",
            "--samples",
            "20",
            "--seed",
            "4",
            "--stream-batch",
            "16",
            "--max-retries",
            "30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        trainer_command(&args).spawn().expect("start distill")
    };

    // Interrupted run: a slow pull, the teacher killed part-way and restarted on its port.
    let mut teacher = start_teacher(&data, &teacher_ck, "127.0.0.1:0");
    let addr = teacher.addr.clone();
    let cache_a = dir.path().join("cache-a");
    let run_a = distill(
        &addr,
        &cache_a,
        &dir.path().join("student-a"),
        &["--pull-rate", "1500", "--streams-per-teacher", "2"],
    );
    // Kill the teacher once the pull is really under way (not before it started).
    let deadline = Instant::now() + Duration::from_secs(60);
    while streamed(&teacher) < 1000 {
        assert!(Instant::now() < deadline, "the pull never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    teacher.kill();
    std::thread::sleep(Duration::from_millis(700));
    teacher = start_teacher(&data, &teacher_ck, &addr);
    let out_a = run_a.wait_with_output().unwrap();
    let stdout_a = String::from_utf8_lossy(&out_a.stdout).into_owned();
    assert!(
        out_a.status.success(),
        "{}",
        String::from_utf8_lossy(&out_a.stderr)
    );
    let retries: u32 = stdout_a
        .split(" retries)")
        .next()
        .and_then(|s| s.rsplit('(').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("retry count in output");
    assert!(
        retries >= 1,
        "the kill must have interrupted the pull: {stdout_a}"
    );

    // Uninterrupted run, fresh cache.
    let cache_b = dir.path().join("cache-b");
    let out_b = distill(&teacher.addr, &cache_b, &dir.path().join("student-b"), &[])
        .wait_with_output()
        .unwrap();
    let stdout_b = String::from_utf8_lossy(&out_b.stdout).into_owned();
    assert!(
        out_b.status.success(),
        "{}",
        String::from_utf8_lossy(&out_b.stderr)
    );
    assert!(
        stdout_b.contains("from the teacher") && stdout_b.contains("(0 retries)"),
        "{stdout_b}"
    );

    // Same rankings, same student.
    let file = |d: &Path| {
        std::fs::read_dir(d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    assert_eq!(
        std::fs::read(file(&cache_a)).unwrap(),
        std::fs::read(file(&cache_b)).unwrap()
    );
    assert_eq!(result_lines(&stdout_a), result_lines(&stdout_b));
    let version = |d: &str| -> String {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join(d).join("manifest.json")).unwrap(),
        )
        .unwrap();
        m["version"].as_str().unwrap().to_string()
    };
    assert_eq!(
        version("student-a"),
        version("student-b"),
        "same seed, same rankings: same weights"
    );

    // A re-run reads the cache and skips the teacher's rankings.
    let out_c = distill(&teacher.addr, &cache_a, &dir.path().join("student-c"), &[])
        .wait_with_output()
        .unwrap();
    let stdout_c = String::from_utf8_lossy(&out_c.stdout).into_owned();
    assert!(stdout_c.contains("from the cache"), "{stdout_c}");
    assert_eq!(version("student-c"), version("student-a"));

    // The student artifact is complete and loads without LibTorch.
    let student = rankdistill_core::artifact::load(&dir.path().join("student-a"), None).unwrap();
    assert_eq!(student.manifest.model.dim, 8);
    assert!(student.manifest.teacher.is_some());
    assert_eq!(
        student.manifest.items.len() as i64,
        student.manifest.model.num_items
    );
}

#[test]
fn distill_refuses_a_teacher_on_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    for (seed, name) in [("1", "a"), ("2", "b")] {
        prepared(dir.path(), name, "100", "80", seed);
    }
    let ck = dir.path().join("teacher-a");
    assert!(
        trainer(&[
            "train",
            "--data",
            &p(&dir.path().join("a")),
            "--out",
            &p(&ck),
            "--dim",
            "8",
            "--epochs",
            "1"
        ])
        .0
    );
    let teacher = start_teacher(&dir.path().join("a"), &ck, "127.0.0.1:0");
    let (ok, _, stderr) = trainer(&[
        "distill",
        "--data",
        &p(&dir.path().join("b")),
        "--teacher",
        &teacher.addr,
        "--cache-dir",
        &p(&dir.path().join("cache")),
        "--out",
        &p(&dir.path().join("s")),
        "--epochs",
        "1",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("but the prepared dataset has fingerprint"),
        "{stderr}"
    );
    assert!(!dir.path().join("s").exists());
}
