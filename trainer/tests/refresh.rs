//! `trainer refresh` against real teacher-svc processes on ephemeral ports: the first refresh
//! publishes, a second one for the same teacher is up to date, a teacher trained with another
//! seed gives a candidate that a gate can refuse and that passes otherwise (reusing the
//! rankings and the candidate already there), `--keep` prunes, `--rollback-to` publishes a
//! kept version again.

use std::path::{Path, PathBuf};

mod support;
use support::{Server, p, prepared, trainer_env, trainer_ok};

/// A finished refresh: exit code, its `--json` report, stderr.
struct Run {
    code: Option<i32>,
    report: serde_json::Value,
    stderr: String,
}

struct Setup {
    data: PathBuf,
    cache: PathBuf,
    state: PathBuf,
    publish: PathBuf,
}

impl Setup {
    fn new(root: &Path) -> Setup {
        Setup {
            data: root.join("data"),
            cache: root.join("cache"),
            state: root.join("state"),
            publish: root.join("artifacts").join("student"),
        }
    }

    /// `trainer refresh --json` with tiny settings against `teacher`, plus `extra`.
    fn refresh(&self, teacher: &str, extra: &[&str]) -> Run {
        let (code, stdout, stderr) = self.refresh_raw(teacher, extra);
        let report = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}): {stdout}\n{stderr}"));
        Run {
            code,
            report,
            stderr,
        }
    }

    /// `refresh` with this setup's folders, `teacher` and a tiny student (d = 8, 20 samples).
    fn base_args(&self, teacher: &str) -> Vec<String> {
        let (data, cache, state, publish) = (
            p(&self.data),
            p(&self.cache),
            p(&self.state),
            p(&self.publish),
        );
        [
            "refresh",
            "--data",
            &data,
            "--teacher",
            teacher,
            "--cache-dir",
            &cache,
            "--state-dir",
            &state,
            "--publish",
            &publish,
            "--dim",
            "8",
            "--samples",
            "20",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    }

    /// The same, returning the exit code, stdout and stderr.
    fn refresh_raw(&self, teacher: &str, extra: &[&str]) -> (Option<i32>, String, String) {
        let mut args = self.base_args(teacher);
        let tail = [
            "--epochs",
            "1",
            "--pull-shards",
            "3",
            "--fidelity-users",
            "60",
            "--json",
        ];
        args.extend(tail.iter().chain(extra).map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        trainer_env(&args, &[])
    }

    fn served_version(&self) -> String {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.publish.join("manifest.json")).unwrap())
                .unwrap();
        manifest["version"].as_str().unwrap().to_string()
    }

    fn kept(&self) -> Vec<String> {
        let mut dirs: Vec<String> =
            std::fs::read_dir(self.publish.with_file_name("student.versions"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        dirs.sort();
        dirs
    }

    fn state_report(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.state.join("report.json")).unwrap()).unwrap()
    }
}

fn strings(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn train_teacher(data: &Path, out: &Path, seed: &str) {
    trainer_ok(&[
        "train",
        "--data",
        &p(data),
        "--out",
        &p(out),
        "--dim",
        "16",
        "--epochs",
        "1",
        "--seed",
        seed,
    ]);
}

#[test]
fn refresh_publishes_gates_keeps_prunes_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Setup::new(dir.path());
    prepared(dir.path(), "data", "300", "200", "8");
    let (teacher_a, teacher_b) = (dir.path().join("teacher-a"), dir.path().join("teacher-b"));
    train_teacher(&s.data, &teacher_a, "1");
    train_teacher(&s.data, &teacher_b, "2");

    // (a) Nothing published yet: the first refresh distills and publishes.
    let a = Server::teacher(&s.data, &teacher_a);
    let first = s.refresh(&a.addr, &[]);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let r = &first.report;
    assert_eq!(r["outcome"], "published", "{r:#}");
    assert_eq!(r["stale"][0], "nothing published yet");
    assert_eq!(r["pull"]["shards_pulled"], 3);
    assert_eq!(r["candidate_source"], "distilled");
    assert!(r["current"].is_null());
    let v1 = s.served_version();
    assert_eq!(r["served_version"], v1.as_str());
    assert_eq!(r["candidate"]["version"], v1.as_str());
    let version_a = r["teacher"]["version"].as_str().unwrap().to_string();
    assert_eq!(r["candidate"]["teacher_version"], version_a.as_str());
    let overlap = r["candidate"]["fidelity"]["overlap"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&overlap), "{r:#}");
    assert_eq!(r["candidate"]["fidelity"]["queries"], 60);
    assert!(r["candidate"]["map"].as_f64().unwrap() > 0.0);
    assert_eq!(s.kept(), vec![v1.clone()]);
    assert_eq!(&s.state_report(), r);

    // (b) Same teacher version, same settings: up to date, nothing published; also as a
    // long-running loop of two cycles.
    let again = s.refresh(&a.addr, &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.report["outcome"], "up-to-date", "{:#}", again.report);
    assert!(
        again.report["reason"].as_str().unwrap().contains(&format!(
            "teacher version {version_a}, which the teacher still serves"
        )),
        "{:#}",
        again.report
    );
    assert!(again.report["pull"].is_null() && again.report["candidate"].is_null());
    assert_eq!(s.served_version(), v1);
    let mut args = s.base_args(&a.addr);
    args.extend(
        ["--epochs", "1", "--interval-secs", "1", "--max-cycles", "2"]
            .iter()
            .map(|a| a.to_string()),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = trainer_env(&args, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines.iter().all(|l| l.starts_with("refresh: up-to-date: ")),
        "{stdout}"
    );
    drop(a);

    // A teacher trained with another seed, on a new process. One shard of its rankings is
    // already pulled (as a crashed refresh would have left it): only the other two are pulled.
    let b = Server::teacher(&s.data, &teacher_b);
    trainer_ok(&[
        "pull",
        "--data",
        &p(&s.data),
        "--teacher",
        &b.addr,
        "--cache-dir",
        &p(&s.cache),
        "--shard-index",
        "0",
        "--shard-count",
        "3",
    ]);

    // (d) A gate no candidate can pass (beat the current MAP by 1): the current one stays.
    let refused = s.refresh(&b.addr, &["--max-map-drop", "-1"]);
    assert_eq!(refused.code, Some(0), "{}", refused.stderr);
    let r = &refused.report;
    assert_eq!(r["outcome"], "kept", "{r:#}");
    let version_b = r["teacher"]["version"].as_str().unwrap().to_string();
    assert_ne!(version_a, version_b);
    assert_eq!(
        strings(&r["stale"]),
        vec![format!("teacher version {version_a} -> {version_b}")]
    );
    assert_eq!(r["pull"]["shards_reused"], 1, "{r:#}");
    assert_eq!(r["pull"]["shards_pulled"], 2, "{r:#}");
    assert_eq!(r["candidate_source"], "distilled");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("minus --max-map-drop -1 (needs >= 1."),
        "{r:#}"
    );
    assert_eq!(r["current"]["version"], v1.as_str());
    assert_eq!(r["current"]["teacher_version"], version_a.as_str());
    assert_eq!(s.served_version(), v1);
    assert_eq!(s.kept(), vec![v1.clone()]);
    assert_eq!(s.state_report()["outcome"], "kept");
    let candidate_b = r["candidate"]["version"].as_str().unwrap().to_string();

    // (c) Gates that pass: the same candidate (already distilled for this teacher) and the
    // same rankings are reused, it is published, and the previous version is kept.
    let passed = s.refresh(&b.addr, &["--max-map-drop", "1"]);
    assert_eq!(passed.code, Some(0), "{}", passed.stderr);
    let r = &passed.report;
    assert_eq!(r["outcome"], "published", "{r:#}");
    assert_eq!(r["candidate_source"], "reused");
    assert_eq!(r["pull"]["shards_reused"], 3);
    assert_eq!(r["pull"]["shards_pulled"], 0);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("the candidate passes the gates"),
        "{r:#}"
    );
    let v2 = s.served_version();
    assert_eq!(v2, candidate_b);
    assert_ne!(v2, v1);
    assert_eq!(strings(&r["kept"]), vec![v2.clone(), v1.clone()]);
    assert_eq!(s.kept(), sorted(vec![v1.clone(), v2.clone()]));

    // (e) --keep 2: two more publications (other seeds change the recipe, so the student is
    // stale; --force publishes past a gate that fails) prune the oldest ones.
    let forced = s.refresh(
        &b.addr,
        &[
            "--seed",
            "2",
            "--keep",
            "2",
            "--force",
            "--max-map-drop",
            "-1",
        ],
    );
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    let r = &forced.report;
    assert_eq!(r["outcome"], "published", "{r:#}");
    assert_eq!(strings(&r["stale"]), vec!["optimisation settings"]);
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("--force: published although candidate MAP"),
        "{r:#}"
    );
    let v3 = s.served_version();
    assert_eq!(strings(&r["pruned"]), vec![v1.clone()]);
    assert_eq!(strings(&r["kept"]), vec![v3.clone(), v2.clone()]);
    let next = s.refresh(&b.addr, &["--seed", "3", "--keep", "2", "--force"]);
    assert_eq!(next.code, Some(0), "{}", next.stderr);
    let v4 = s.served_version();
    assert_eq!(strings(&next.report["pruned"]), vec![v2.clone()]);
    assert_eq!(s.kept(), sorted(vec![v3.clone(), v4.clone()]));

    // A cycle that fails half-way (the distillation diverges) publishes nothing and says why.
    let (code, _, stderr) = s.refresh_raw(&b.addr, &["--seed", "4", "--keep", "2", "--lr", "inf"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("diverged"), "{stderr}");
    let report = s.state_report();
    assert_eq!(report["outcome"], "failed", "{report:#}");
    assert!(
        report["reason"].as_str().unwrap().contains("diverged"),
        "{report:#}"
    );
    assert_eq!(report["pull"]["shards_reused"], 3, "{report:#}");
    assert_eq!(s.served_version(), v4);
    assert_eq!(s.kept(), sorted(vec![v3.clone(), v4.clone()]));

    // --rollback-to a kept version (by a prefix) publishes it again; a pruned one is refused.
    let back = s.refresh(&b.addr, &["--keep", "2", "--rollback-to", &v3[..8]]);
    assert_eq!(back.code, Some(0), "{}", back.stderr);
    assert_eq!(back.report["outcome"], "rolled-back", "{:#}", back.report);
    assert_eq!(s.served_version(), v3);
    assert_eq!(strings(&back.report["kept"]), vec![v3.clone(), v4.clone()]);
    let (code, _, stderr) = trainer_env(
        &[
            "refresh",
            "--publish",
            &p(&s.publish),
            "--state-dir",
            &p(&s.state),
            "--rollback-to",
            &v1,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("version '{v1}' is not kept")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{v3}, {v4}")), "{stderr}");
    assert_eq!(s.served_version(), v3);
    assert_eq!(s.state_report()["outcome"], "failed");

    // A refresh killed part-way (here once its first shard is written, pulling slowly, with
    // a distillation that would never end) leaves the served student and the kept versions
    // as they were, and no half-written folder; the next refresh resumes from the shards.
    let crashed = Setup {
        cache: dir.path().join("cache-crash"),
        ..Setup::new(dir.path())
    };
    let mut args = crashed.base_args(&b.addr);
    let slow = [
        "--epochs",
        "1000000",
        "--seed",
        "5",
        "--pull-shards",
        "3",
        "--pull-rate",
        "300",
        "--stream-batch",
        "16",
    ];
    args.extend(slow.iter().map(|a| a.to_string()));
    let mut child = support::trainer_command(&args).spawn().unwrap();
    let first_shard = || {
        std::fs::read_dir(&crashed.cache)
            .map(|entries| {
                entries.filter_map(Result::ok).any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .ends_with(".shard-0-of-3.bin")
                })
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    while !first_shard() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first shard never appeared"
        );
        assert!(child.try_wait().unwrap().is_none(), "refresh ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(s.served_version(), v3);
    assert_eq!(s.kept(), sorted(vec![v3.clone(), v4.clone()]));
    let mut beside: Vec<String> = std::fs::read_dir(s.publish.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    beside.sort();
    assert_eq!(beside, vec!["student", "student.versions"]);
    let resumed = crashed.refresh(&b.addr, &["--seed", "5", "--max-map-drop", "-1"]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    let pull = &resumed.report["pull"];
    let reused = pull["shards_reused"].as_u64().unwrap();
    assert!(reused >= 1, "{:#}", resumed.report);
    assert_eq!(reused + pull["shards_pulled"].as_u64().unwrap(), 3);
    assert_eq!(resumed.report["outcome"], "kept", "{:#}", resumed.report);
    assert_eq!(s.served_version(), v3);

    // A served student whose weights no longer match its manifest cannot be scored: it does
    // not block the candidate (only the overlap gate applies), which replaces it.
    std::fs::write(s.publish.join("model.safetensors"), b"damaged").unwrap();
    let repaired = crashed.refresh(&b.addr, &["--seed", "5", "--max-map-drop", "-1"]);
    assert_eq!(repaired.code, Some(0), "{}", repaired.stderr);
    let r = &repaired.report;
    assert_eq!(r["outcome"], "published", "{r:#}");
    assert_eq!(r["candidate_source"], "reused");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("the served student cannot be scored"),
        "{r:#}"
    );
    assert_eq!(
        s.served_version(),
        r["candidate"]["version"].as_str().unwrap()
    );
}

#[test]
fn refresh_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let publish = p(&dir.path().join("student"));
    let state = p(&dir.path().join("state"));
    let base = [
        "refresh",
        "--publish",
        publish.as_str(),
        "--state-dir",
        state.as_str(),
        "--teacher",
        "127.0.0.1:1",
    ];
    let cases: [(&[&str], i32, &str); 6] = [
        (
            &["--min-overlap", "1.01"],
            1,
            "--min-overlap must be in [0, 1], got 1.01",
        ),
        (
            &["--max-map-drop", "-1.5"],
            1,
            "--max-map-drop must be in [-1, 1], got -1.5",
        ),
        (&["--keep", "0"], 2, "--keep"),
        (
            &["--rollback-to", "abc", "--force"],
            2,
            "cannot be used with",
        ),
        (&["--max-cycles", "2"], 2, "--interval-secs"),
        (
            &["--shard-count", "2"],
            2,
            "leave --shard-count (RD_SHARD_COUNT) at 1",
        ),
    ];
    for (extra, expected, words) in cases {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let (code, _, stderr) = trainer_env(&args, &[]);
        assert_eq!(code, Some(expected), "{extra:?}: {stderr}");
        assert!(stderr.contains(words), "{extra:?}: {stderr}");
    }
    let (code, _, stderr) = trainer_env(
        &["refresh", "--state-dir", &state, "--teacher", "127.0.0.1:1"],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--publish"), "{stderr}");
    // Nothing kept yet: a rollback says so, and nothing appears.
    let (code, _, stderr) =
        trainer_env(&[base.as_slice(), &["--rollback-to", "abc"]].concat(), &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("(kept, latest first: none)"), "{stderr}");
    assert!(!dir.path().join("student").exists());
}
