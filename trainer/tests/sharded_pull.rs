//! The pull split over Indexed Job workers: three `trainer pull` processes each write one
//! shard of the teacher rankings (shard index by flag, by `RD_SHARD_INDEX`, and by the
//! `JOB_COMPLETION_INDEX` that Kubernetes sets), `trainer distill --shard-count 3` merges them
//! without a teacher, and the student equals, byte for byte, one distilled from a single full
//! pull with the same seed. Missing, mixed and out-of-range shards are refused by name.

use std::path::Path;
use std::process::Child;

mod support;
use support::{Server, dataset_and_teacher, p, texts, trainer_command, trainer_ok};

/// `trainer distill` flags shared by every student here (same seed, same everything).
fn distill_args<'a>(data: &'a str, cache: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "distill",
        "--data",
        data,
        "--cache-dir",
        cache,
        "--out",
        out,
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
    ]
}

/// Starts `trainer pull` for one shard of three; `how` picks how the index is given.
fn spawn_pull(data: &str, cache: &str, teacher: &str, index: u32, how: &str) -> Child {
    let i = index.to_string();
    let mut args = vec![
        "pull",
        "--data",
        data,
        "--cache-dir",
        cache,
        "--teacher",
        teacher,
        "--shard-count",
        "3",
        "--stream-batch",
        "64",
    ];
    let mut command = match how {
        "flag" => {
            args.extend(["--shard-index", &i]);
            trainer_command(&args)
        }
        env => {
            let mut c = trainer_command(&args);
            c.env(env, &i);
            c
        }
    };
    command.spawn().expect("start trainer pull")
}

/// The lines of distill's output that depend only on the trained student.
fn result_lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter(|l| {
            !l.starts_with("rankings:") && !l.starts_with("wrote") && !l.starts_with("distilled")
        })
        .map(str::to_string)
        .collect()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn three_shard_pulls_train_the_same_student_as_one_full_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    dataset_and_teacher(dir, "300", "200", "8", &["--dim", "16", "--epochs", "1"]);
    let data = p(&dir.join("data"));
    let teacher = Server::teacher(&dir.join("data"), &dir.join("teacher"));
    let shards = p(&dir.join("shards"));

    // The training step starts first, without a teacher, and waits for the three shards.
    let sharded_out = p(&dir.join("student-sharded"));
    let mut args = distill_args(&data, &shards, &sharded_out);
    args.extend(["--shard-count", "3", "--shard-wait-s", "600"]);
    let training = trainer_command(&args).spawn().expect("start distill");

    // The Indexed Job: three workers, in parallel, each told its index another way.
    let pulls: Vec<Child> = [
        (0, "flag"),
        (1, "RD_SHARD_INDEX"),
        (2, "JOB_COMPLETION_INDEX"),
    ]
    .into_iter()
    .map(|(i, how)| spawn_pull(&data, &shards, &teacher.addr, i, how))
    .collect();
    let mut pulled = 0u64;
    let mut total = 0u64;
    for (i, pull) in pulls.into_iter().enumerate() {
        let out = pull.wait_with_output().unwrap();
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "pull {i}: {stderr}");
        // "pulled shard I of 3: X of N queries from 1 teacher(s) in S s (0 retries); wrote F"
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("pulled shard {i} of 3: ")))
            .unwrap_or_else(|| panic!("pull {i}: {stdout}"));
        let numbers: Vec<u64> = line
            .split(": ")
            .nth(1)
            .unwrap()
            .split(' ')
            .filter_map(|w| w.parse().ok())
            .collect();
        pulled += numbers[0];
        total = numbers[1];
        assert!(
            dir.join("shards").read_dir().unwrap().any(|f| f
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(&format!(".shard-{i}-of-3.bin"))),
            "shard {i} file missing"
        );
    }
    assert_eq!(pulled, total, "the shards cover every query exactly once");
    let out = training.wait_with_output().unwrap();
    let (sharded_stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        sharded_stdout.contains(&format!("rankings: {total} queries from the 3 shards")),
        "{sharded_stdout}"
    );

    // One full pull by distill itself, fresh cache, same seed.
    let full_out = p(&dir.join("student-full"));
    let mut args = distill_args(&data, "", &full_out);
    let full_cache = p(&dir.join("full-cache"));
    args[4] = &full_cache;
    args.extend(["--teacher", &teacher.addr]);
    let full_stdout = trainer_ok(&args);
    assert!(full_stdout.contains("from the teacher"), "{full_stdout}");

    let sharded = manifest(&dir.join("student-sharded"));
    let full = manifest(&dir.join("student-full"));
    assert_eq!(sharded["version"], full["version"], "same weights hash");
    assert_eq!(
        std::fs::read(dir.join("student-sharded/model.safetensors")).unwrap(),
        std::fs::read(dir.join("student-full/model.safetensors")).unwrap()
    );
    assert_eq!(sharded["metrics"], full["metrics"]);
    assert_eq!(result_lines(&sharded_stdout), result_lines(&full_stdout));
    assert_eq!(sharded["teacher"], full["teacher"]);
    assert_eq!(sharded["training"]["pull"]["source"], "shards");
    assert_eq!(sharded["training"]["pull"]["shards"], 3);

    // A worker that runs again (a retried pod) finds its valid shard and does not pull.
    let again = trainer_command(&[
        "pull",
        "--data",
        &data,
        "--cache-dir",
        &shards,
        "--teacher",
        &teacher.addr,
        "--shard-count",
        "3",
        "--shard-index",
        "1",
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = texts(&again);
    assert!(again.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("shard 1 of 3: ") && stdout.contains("already in"),
        "{stdout}"
    );

    // With the teacher given, the shards must come from the version it serves: they do.
    let checked_out = p(&dir.join("student-checked"));
    let mut args = distill_args(&data, &shards, &checked_out);
    args.extend(["--shard-count", "3", "--teacher", &teacher.addr]);
    trainer_ok(&args);
    assert_eq!(
        manifest(&dir.join("student-checked"))["version"],
        full["version"]
    );
}

#[test]
fn missing_mixed_and_out_of_range_shards_are_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    dataset_and_teacher(dir, "120", "90", "3", &["--dim", "8", "--epochs", "1"]);
    let data = p(&dir.join("data"));
    // A second teacher on the same data (another seed: another model version).
    trainer_ok(&[
        "train",
        "--data",
        &data,
        "--out",
        &p(&dir.join("teacher-b")),
        "--dim",
        "8",
        "--epochs",
        "1",
        "--seed",
        "9",
    ]);
    let a = Server::teacher(&dir.join("data"), &dir.join("teacher"));
    let b = Server::teacher(&dir.join("data"), &dir.join("teacher-b"));
    let shards = p(&dir.join("shards"));
    let out = p(&dir.join("student"));
    let distill = |extra: &[&str]| {
        let mut args = distill_args(&data, &shards, &out);
        args.extend(["--shard-count", "3"]);
        args.extend(extra);
        let result = trainer_command(&args).output().unwrap();
        let (_, stderr) = texts(&result);
        (result.status.success(), stderr)
    };

    for i in [0u32, 2] {
        let out = spawn_pull(&data, &shards, &a.addr, i, "flag")
            .wait_with_output()
            .unwrap();
        assert!(out.status.success(), "{}", texts(&out).1);
    }
    let (ok, stderr) = distill(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("shard 1 of 3 is missing")
            && stderr.contains("trainer pull --shard-index 1 --shard-count 3")
            && !stderr.contains("shard 0 of 3 is missing"),
        "{stderr}"
    );
    assert!(!dir.join("student").exists(), "nothing is written");

    // Shard 1 pulled from another teacher: the set is mixed.
    let out1 = spawn_pull(&data, &shards, &b.addr, 1, "flag")
        .wait_with_output()
        .unwrap();
    assert!(out1.status.success(), "{}", texts(&out1).1);
    let (ok, stderr) = distill(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("shard 1 of 3 (") && stderr.contains("but shard 0 of 3 was pulled from"),
        "{stderr}"
    );
    // Checked against teacher B, shards 0 and 2 are the stale ones.
    let (ok, stderr) = distill(&["--teacher", &b.addr]);
    assert!(!ok);
    assert!(
        stderr.contains("shard 0 of 3 (")
            && stderr.contains("shard 2 of 3 (")
            && stderr.contains("but the teachers serve now")
            && !stderr.contains("shard 1 of 3 ("),
        "{stderr}"
    );
    // A damaged shard is named with the reason.
    let file = dir
        .join("shards")
        .read_dir()
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|f| f.to_string_lossy().ends_with(".shard-2-of-3.bin"))
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&file, bytes).unwrap();
    let (ok, stderr) = distill(&[]);
    assert!(!ok);
    assert!(
        stderr.contains("shard 2 of 3 is not valid") && stderr.contains("checksum"),
        "{stderr}"
    );

    // The shard index must be given (or come from the Job) and lie in range.
    let pull = |extra: &[&str]| {
        let mut args = vec![
            "pull",
            "--data",
            &data,
            "--cache-dir",
            &shards,
            "--teacher",
            &a.addr,
            "--shard-count",
            "3",
        ];
        args.extend(extra);
        let result = trainer_command(&args).output().unwrap();
        (result.status.success(), texts(&result).1)
    };
    let (ok, stderr) = pull(&["--shard-index", "3"]);
    assert!(
        !ok && stderr.contains("--shard-index 3 is out of range: shards are 0..3"),
        "{stderr}"
    );
    let (ok, stderr) = pull(&[]);
    assert!(
        !ok && stderr.contains("give --shard-index (RD_SHARD_INDEX) with --shard-count 3"),
        "{stderr}"
    );
    // Without a teacher and without shards there is nothing to distill from.
    let result = trainer_command(&distill_args(&data, &shards, &out))
        .output()
        .unwrap();
    assert!(!result.status.success());
    assert!(
        texts(&result).1.contains("no teacher: pass --teacher"),
        "{}",
        texts(&result).1
    );
}
