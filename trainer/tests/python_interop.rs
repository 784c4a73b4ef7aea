//! Python interoperability, with the venv of `scripts/python-env.sh small` (grpcio,
//! grpcio-tools, protobuf, numpy, safetensors; installed on first use):
//!
//! - `examples/python/client.py` (stubs generated at run time by grpcio-tools) calls real
//!   teacher-svc and student-svc processes on ephemeral ports and checks their answers (Rank,
//!   a StreamRankings shard with resume and Rank cross-checks, Recommend, RecommendBatch); it
//!   also fails, with the check that failed, when pointed at data the service does not serve.
//! - `examples/python/student_numpy.py` reads a student artifact with `safetensors` and scores
//!   every item in numpy (Caser and MF forward re-implemented); the scores must equal
//!   student-svc's, in process for every item and over gRPC (Recommend), within 1e-4.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rankdistill_core::artifact;
use rankdistill_core::instances::last_window;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::topk::top_k;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{Query, RecommendRequest};
use rankdistill_student::kernel::Kernel;
use rankdistill_student::model::{QueryInput, StudentModel};
use rankdistill_testkit::python::{python_env, repo_root};
use serde_json::Value;
use support::{STUDENT, Server, TEACHER, p, prepared, trainer, workspace_bin};

/// numpy's scores and student-svc's agree within this.
const TOLERANCE: f32 = 1e-4;
const K: usize = 10;

/// Runs an example script of `examples/python` with the small venv.
fn example(script: &str, args: &[&str]) -> Output {
    Command::new(python_env("small"))
        .arg(repo_root().join("examples/python").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"))
}

fn show(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `bin` (serving `service`) on ephemeral loopback ports; killed on drop.
fn start_service(bin: &str, service: &'static str, args: &[&str]) -> Server {
    let mut args = args.to_vec();
    args.extend(["--addr", "127.0.0.1:0"]);
    Server::start(&workspace_bin(bin), service, &args)
}

/// `trainer train` of a small model.
fn train(data: &Path, out: &Path, kind: &str, extra: &[&str]) {
    let mut args = vec![
        "train".to_string(),
        "--data".into(),
        p(data),
        "--out".into(),
        p(out),
        "--model".into(),
        kind.into(),
        "--dim".into(),
        "12".into(),
        "--epochs".into(),
        "2".into(),
        "--device".into(),
        "cpu".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let (ok, _, err) = trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "train {kind}: {err}");
}

#[test]
fn the_python_client_example_checks_teacher_svc_and_student_svc() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "150", "100", "7");
    let (teacher_ck, student_ck) = (dir.path().join("teacher"), dir.path().join("student"));
    train(&data, &teacher_ck, "caser", &["--seq-len", "4"]);
    train(&data, &student_ck, "mf", &[]);
    let teacher = start_service(
        "teacher-svc",
        TEACHER,
        &[
            "--data",
            &p(&data),
            "--model",
            &p(&teacher_ck),
            "--device",
            "cpu",
            "--torch-threads",
            "1",
        ],
    );
    let student = start_service(
        "student-svc",
        STUDENT,
        &["--data", &p(&data), "--model", &p(&student_ck)],
    );
    let (stubs, summary) = (dir.path().join("stubs"), dir.path().join("summary.json"));
    let out = example(
        "client.py",
        &[
            "--teacher",
            &teacher.addr,
            "--student",
            &student.addr,
            "--data",
            &p(&data),
            "--users",
            "4",
            "--k",
            "10",
            "--shard-index",
            "1",
            "--shard-count",
            "3",
            "--batch-size",
            "32",
            "--cross-checks",
            "25",
            "--build-dir",
            &p(&stubs),
            "--json",
            &p(&summary),
        ],
    );
    assert!(out.status.success(), "client.py: {}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("all checks passed"), "{}", show(&out));
    eprintln!("{stdout}");

    let summary: Value = serde_json::from_slice(&std::fs::read(&summary).unwrap()).unwrap();
    let dataset = PreparedDataset::load(&data).expect("dataset");
    let windows = rankdistill_core::instances::Instances::build(
        &dataset.split.train,
        rankdistill_core::instances::WindowConfig {
            sequence_length: 4,
            target_length: 1,
            ..Default::default()
        },
    );
    let t = &summary["teacher"];
    assert_eq!(t["total_queries"].as_u64(), Some(windows.len() as u64));
    assert_eq!(
        t["shard_queries"].as_u64(),
        Some((1..windows.len()).step_by(3).count() as u64)
    );
    assert!(t["cross_checked"].as_u64().unwrap() >= 20, "{summary}");
    assert!(t["messages"].as_u64().unwrap() > 1, "{summary}");
    assert_eq!(summary["student"]["users"].as_u64(), Some(4));
    assert_eq!(summary["student"]["batch"].as_u64(), Some(5));
    // The stubs were generated into the build folder, not into the repository.
    assert!(
        std::fs::read_dir(&stubs).unwrap().flatten().any(|e| e
            .path()
            .join("rankdistill/v1/student_pb2_grpc.py")
            .is_file()),
        "no stubs under {}",
        stubs.display()
    );

    // Pointed at a dataset the student does not serve, the example fails and says why.
    let other = prepared(dir.path(), "other", "60", "70", "8");
    let out = example(
        "client.py",
        &[
            "--student",
            &student.addr,
            "--data",
            &p(&other),
            "--build-dir",
            &p(&stubs),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("FAILED: student serves 100 items, the data has 70"),
        "{}",
        show(&out)
    );
}

/// Item index of a raw id.
fn dense_item(data: &PreparedDataset, raw: &str) -> u32 {
    data.split
        .items
        .iter()
        .position(|i| i == raw)
        .unwrap_or_else(|| panic!("unknown item {raw}")) as u32
}

async fn recommend_matches(
    addr: &str,
    data: &PreparedDataset,
    users: &[(u32, Vec<f32>)],
    kind: &str,
) -> f32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        if let Ok(c) = StudentServiceClient::connect(format!("http://{addr}")).await {
            break c;
        }
        assert!(Instant::now() < deadline, "student-svc unreachable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut worst = 0f32;
    for (u, numpy) in users {
        let request = RecommendRequest {
            query: Some(Query {
                user_id: data.split.users[*u as usize].clone(),
                recent_items: vec![],
            }),
            k: K as i32,
            exclude_items: vec![],
            exclude_seen: Some(false),
        };
        // UNAVAILABLE until the model is loaded and warmed up.
        let response = loop {
            match client.recommend(request.clone()).await {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(s) => panic!("Recommend user {u}: {s:?}"),
            }
        };
        let want = top_k(numpy, K, |_| false);
        assert_eq!(response.items.len(), want.len(), "{kind} user {u}");
        for (pos, (item, (want_item, want_score))) in response.items.iter().zip(&want).enumerate() {
            let dense = dense_item(data, &item.item_id);
            let own = numpy[dense as usize];
            worst = worst.max((own - item.score).abs());
            assert!(
                (own - item.score).abs() <= TOLERANCE,
                "{kind} user {u}: student-svc scores {} {}, numpy {own}",
                item.item_id,
                item.score
            );
            assert!(
                (own - want_score).abs() <= TOLERANCE,
                "{kind} user {u}: position {pos} holds {dense} ({own}), numpy ranks {want_item} ({want_score}) there"
            );
        }
    }
    worst
}

fn numpy_parity(kind: &str, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = prepared(dir.path(), "data", "120", "90", "5");
    let model_dir = dir.path().join(kind);
    train(&data_dir, &model_dir, kind, extra);
    let scores_file = dir.path().join("numpy.json");
    let out = example(
        "student_numpy.py",
        &[
            "--model",
            &p(&model_dir),
            "--data",
            &p(&data_dir),
            "--users",
            "40",
            "--k",
            "5",
            "--out",
            &p(&scores_file),
        ],
    );
    assert!(out.status.success(), "student_numpy.py: {}", show(&out));
    let numpy: Value = serde_json::from_slice(&std::fs::read(&scores_file).unwrap()).unwrap();
    let data = PreparedDataset::load(&data_dir).expect("dataset");
    let artifact = artifact::load(&model_dir, Some(&data.manifest.fingerprint)).expect("artifact");
    let l = artifact.manifest.model.sequence_length as usize;
    assert_eq!(numpy["model"]["kind"].as_str(), Some(kind));
    assert_eq!(
        numpy["model"]["version"].as_str(),
        Some(artifact.manifest.version.as_str())
    );

    let mut users: Vec<(u32, Vec<f32>)> = Vec::new();
    let mut queries = Vec::new();
    for entry in numpy["users"].as_array().expect("users") {
        let u = entry["user"].as_u64().unwrap() as u32;
        assert_eq!(
            entry["user_id"].as_str(),
            Some(data.split.users[u as usize].as_str())
        );
        let inputs: Vec<u32> = entry["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            inputs,
            last_window(&data.split.train[u as usize], l),
            "the input of user {u}"
        );
        let scores: Vec<f32> = entry["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(scores.len(), data.num_items());
        queries.push(QueryInput {
            user: Some(u),
            inputs,
        });
        users.push((u, scores));
    }
    assert_eq!(users.len(), 40);

    // In process: every item of every user.
    let student = StudentModel::from_artifact(artifact, Kernel::detect()).expect("student");
    let ours = student.score_all(&queries);
    let mut worst_all = 0f32;
    for ((u, numpy), mine) in users.iter().zip(&ours) {
        for (i, (a, b)) in mine.iter().zip(numpy).enumerate() {
            assert!(
                (a - b).abs() <= TOLERANCE,
                "{kind} user {u} item {i}: student-svc model {a}, numpy {b}"
            );
            worst_all = worst_all.max((a - b).abs());
        }
    }

    // Through a real student-svc process.
    let service = start_service(
        "student-svc",
        STUDENT,
        &["--model", &p(&model_dir), "--data", &p(&data_dir)],
    );
    let runtime = rankdistill_testkit::runtime::runtime();
    let worst_grpc = runtime.block_on(recommend_matches(&service.addr, &data, &users, kind));
    eprintln!(
        "{kind}: numpy vs student-svc, 40 users: max |score diff| {worst_all:e} over all {} items, {worst_grpc:e} over Recommend's top {K}",
        data.num_items()
    );
}

#[test]
fn numpy_scores_of_a_caser_artifact_equal_student_svc() {
    numpy_parity(
        "caser",
        &[
            "--seq-len",
            "4",
            "--nv",
            "2",
            "--nh",
            "3",
            "--conv-activation",
            "relu",
            "--fc-activation",
            "tanh",
        ],
    );
}

#[test]
fn numpy_scores_of_an_mf_artifact_equal_student_svc() {
    numpy_parity("mf", &[]);
}
