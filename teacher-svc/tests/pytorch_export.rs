//! A teacher built and trained in PyTorch, exported to TorchScript by
//! `examples/python/export_teacher.py` (torch 2.13.0 from `scripts/python-env.sh torch`), is
//! served by the real teacher-svc binary; its Rank answers (from the user's history, with seen
//! items excluded, from explicit recent items with an excluded item) and its first
//! StreamRankings messages must equal PyTorch's own rankings: the same items except ties within
//! 1e-5, scores within 1e-4. Caser, MF and SASRec.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{Fixture, Server, args};
use rankdistill_proto::v1::{InfoRequest, Query, RankRequest, StreamRankingsRequest};
use rankdistill_testkit::python::{python_env, repo_root};
use serde_json::Value;

/// Scores of teacher-svc and PyTorch agree within this.
const SCORE_TOLERANCE: f32 = 1e-4;
/// Neighbours whose PyTorch scores differ by less than this may come in either order.
const TIE_TOLERANCE: f32 = 1e-5;
/// Training queries PyTorch ranks and the stream is compared on.
const TRAINING_QUERIES: usize = 64;

/// Runs `export_teacher.py` for `kind`; returns the TorchScript file and PyTorch's rankings.
fn export(fx: &Fixture, kind: &str) -> (PathBuf, Value) {
    let python = python_env("torch");
    let (model, rankings) = (
        fx.root.join(format!("{kind}.pt")),
        fx.root.join(format!("{kind}-rankings.json")),
    );
    let out = Command::new(python)
        .arg(repo_root().join("examples/python/export_teacher.py"))
        .arg("--data")
        .arg(&fx.data)
        .args(["--model", kind, "--dim", "12", "--seq-len", "5"])
        .args(["--steps", "30", "--seed", "3", "--users", "25", "--k", "10"])
        .args(["--training-queries", &TRAINING_QUERIES.to_string()])
        .arg("--out")
        .arg(&model)
        .arg("--rankings")
        .arg(&rankings)
        .output()
        .expect("run export_teacher.py");
    assert!(
        out.status.success(),
        "export_teacher.py --model {kind} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let sidecar: Value =
        serde_json::from_slice(&std::fs::read(fx.root.join(format!("{kind}.pt.json"))).unwrap())
            .expect("sidecar JSON");
    assert_eq!(
        sidecar["data_fingerprint"], fx.dataset.manifest.fingerprint,
        "sidecar {sidecar}"
    );
    let rankings = serde_json::from_slice(&std::fs::read(&rankings).unwrap()).expect("rankings");
    (model, rankings)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_f64().expect("number") as f32)
        .collect()
}

/// Asserts teacher-svc's ranking equals PyTorch's; returns the largest score difference.
fn assert_same(got: &[(String, f32)], want: &[(String, f32)], context: &str) -> f32 {
    assert_eq!(
        got.len(),
        want.len(),
        "{context}: lengths differ: {got:?} vs PyTorch {want:?}"
    );
    let mut worst = 0f32;
    for (i, ((gi, gs), (wi, ws))) in got.iter().zip(want).enumerate() {
        worst = worst.max((gs - ws).abs());
        assert!(
            (gs - ws).abs() <= SCORE_TOLERANCE,
            "{context}: score {i} is {gs}, PyTorch {ws}: {got:?} vs {want:?}"
        );
        if gi != wi {
            let tied = |j: usize| j < want.len() && (want[j].1 - ws).abs() <= TIE_TOLERANCE;
            assert!(
                (i > 0 && tied(i - 1)) || tied(i + 1),
                "{context}: position {i} holds {gi}, PyTorch ranks {wi} there (no tie within {TIE_TOLERANCE}): {got:?} vs {want:?}"
            );
        }
    }
    worst
}

async fn served_like_pytorch(kind: &str) {
    let fx = Fixture::new();
    let (model, rankings) = export(&fx, kind);
    let server = Server::start_serving(&args(&fx.data, &model)).await;
    let mut client = server.client().await;

    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.model_kind, "torchscript");
    assert_eq!(info.dim, 12);
    assert_eq!(info.sequence_length, 5);
    assert_eq!(info.num_items as usize, fx.dataset.num_items());
    assert_eq!(info.data_fingerprint, fx.dataset.manifest.fingerprint);

    let queries = rankings["queries"].as_array().expect("queries");
    assert!(queries.len() >= 30, "{} queries", queries.len());
    let mut worst = 0f32;
    for (n, q) in queries.iter().enumerate() {
        let query = Query {
            user_id: q["query"]["user_id"].as_str().unwrap().to_string(),
            recent_items: q["query"]
                .get("recent_items")
                .map(strings)
                .unwrap_or_default(),
        };
        let context = format!("{kind} query {n} {q}");
        let answer = client
            .rank(RankRequest {
                query: Some(query),
                k: q["k"].as_i64().unwrap() as i32,
                exclude_items: strings(&q["exclude_items"]),
                exclude_seen: q["exclude_seen"].as_bool().unwrap(),
            })
            .await
            .unwrap_or_else(|s| panic!("{context}: {s:?}"))
            .into_inner();
        let got: Vec<(String, f32)> = answer
            .items
            .into_iter()
            .map(|i| (i.item_id, i.score))
            .collect();
        let want: Vec<(String, f32)> = strings(&q["items"])
            .into_iter()
            .zip(floats(&q["scores"]))
            .collect();
        worst = worst.max(assert_same(&got, &want, &context));
    }

    // The training-query stream: PyTorch ranked the first queries with their targets excluded.
    let training = rankings["training_queries"]
        .as_array()
        .expect("training_queries");
    assert_eq!(training.len(), TRAINING_QUERIES);
    let mut stream = client
        .stream_rankings(StreamRankingsRequest {
            k: 10,
            batch_size: 16,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut compared = 0;
    while compared < training.len() {
        let batch = stream
            .message()
            .await
            .unwrap()
            .expect("the stream ended early");
        for r in batch.rankings {
            let Some(want) = training.get(r.query_index as usize) else {
                continue;
            };
            assert_eq!(want["query_index"].as_u64(), Some(r.query_index));
            let want: Vec<(String, f32)> = want["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap().to_string())
                .zip(floats(&want["scores"]))
                .collect();
            let got: Vec<(String, f32)> = r
                .items
                .iter()
                .map(|i| i.to_string())
                .zip(r.scores.iter().copied())
                .collect();
            worst = worst.max(assert_same(
                &got,
                &want,
                &format!("{kind} training query {}", r.query_index),
            ));
            compared += 1;
        }
    }
    eprintln!(
        "{kind}: {} Rank queries and {compared} streamed training queries equal PyTorch's (max |score diff| {worst:e})",
        queries.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pytorch_caser_exported_to_torchscript_ranks_like_pytorch() {
    served_like_pytorch("caser").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pytorch_mf_exported_to_torchscript_ranks_like_pytorch() {
    served_like_pytorch("mf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pytorch_sasrec_exported_to_torchscript_ranks_like_pytorch() {
    served_like_pytorch("sasrec").await;
}
