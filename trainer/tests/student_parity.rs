//! Parity of student-svc's pure-Rust inference with LibTorch: a tiny Caser, MF and SASRec are
//! trained with the `trainer` binary on synthetic data; for every test user, the tch scores
//! (`Model::score_all` on the user's last training window) must equal student-svc's within
//! 1e-4, in process (`rankdistill_student::model`) and through a real `student-svc` process
//! over gRPC, whose top-10 lists must match except where ties fall within the tolerance.

use std::path::Path;
use std::time::{Duration, Instant};

use rankdistill_core::artifact;
use rankdistill_core::instances::last_window;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::topk::top_k;
use rankdistill_models::ids_tensor;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{Query, RecommendRequest};
use rankdistill_student::kernel::Kernel;
use rankdistill_student::model::{QueryInput, StudentModel};
use tch::Device;

mod support;
use support::{Server, prepared, trainer_ok};

const TOLERANCE: f32 = 1e-4;
const K: usize = 10;

/// Scores of every item for each test user, from LibTorch.
fn tch_scores(model_dir: &Path, data: &PreparedDataset, users: &[u32], l: usize) -> Vec<Vec<f32>> {
    let loaded = rankdistill_models::checkpoint::load(model_dir, Device::Cpu).expect("load");
    let inputs: Vec<u32> = users
        .iter()
        .flat_map(|&u| last_window(&data.split.train[u as usize], l))
        .collect();
    let n = users.len() as i64;
    let scores = tch::no_grad(|| {
        loaded.model.score_all(
            &ids_tensor(users, &[n], Device::Cpu),
            &ids_tensor(&inputs, &[n, l as i64], Device::Cpu),
            false,
        )
    });
    let flat: Vec<f32> = Vec::try_from(scores.contiguous().view([-1])).expect("scores");
    flat.chunks(data.num_items()).map(<[f32]>::to_vec).collect()
}

/// Asserts a top-k list matches the reference ranking up to ties within the tolerance: at
/// each position the returned item's reference score equals the reference's k-th best score.
fn assert_same_top_k(got: &[(u32, f32)], reference: &[f32], context: &str) {
    let want = top_k(reference, got.len().max(K), |_| false);
    assert_eq!(got.len(), want.len(), "{context}: length");
    for (pos, ((item, score), (want_item, want_score))) in got.iter().zip(&want).enumerate() {
        let own = reference[*item as usize];
        assert!(
            (own - score).abs() <= TOLERANCE,
            "{context}: item {item} scored {score}, tch {own}"
        );
        assert!(
            (own - want_score).abs() <= TOLERANCE,
            "{context}: position {pos} holds {item} ({own}), tch ranks {want_item} ({want_score}) there"
        );
    }
}

async fn check_process(
    model_dir: &Path,
    data_dir: &Path,
    data: &PreparedDataset,
    users: &[u32],
    tch: &[Vec<f32>],
) {
    let server = Server::student(data_dir, model_dir);
    let addr = &server.addr;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut client = loop {
        if let Ok(c) = StudentServiceClient::connect(format!("http://{addr}")).await {
            break c;
        }
        assert!(Instant::now() < deadline, "student-svc unreachable");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (&u, reference) in users.iter().zip(tch) {
        let request = RecommendRequest {
            query: Some(Query {
                user_id: data.split.users[u as usize].clone(),
                recent_items: vec![],
            }),
            k: K as i32,
            exclude_items: vec![],
            exclude_seen: Some(false),
        };
        let response = loop {
            match client.recommend(request.clone()).await {
                Ok(r) => break r.into_inner(),
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(s) => panic!("Recommend for user {u}: {s:?}"),
            }
        };
        let got: Vec<(u32, f32)> = response
            .items
            .iter()
            .map(|s| {
                let dense = data
                    .split
                    .items
                    .iter()
                    .position(|i| *i == s.item_id)
                    .expect("known item");
                (dense as u32, s.score)
            })
            .collect();
        assert_same_top_k(&got, reference, &format!("gRPC user {u}"));
    }
    drop(server);
}

fn parity(kind: &str, l: usize, extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = |x: &Path| x.to_str().unwrap().to_string();
    let model_dir = dir.path().join(kind);
    let data_dir = prepared(dir.path(), "data", "120", "90", "5");
    let mut args = vec![
        "train",
        "--data",
        &p(&data_dir),
        "--out",
        &p(&model_dir),
        "--model",
        kind,
        "--dim",
        "12",
        "--epochs",
        "2",
        "--seq-len",
        &l.to_string(),
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    trainer_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let data = PreparedDataset::load(&data_dir).expect("dataset");
    let users: Vec<u32> = (0..data.num_users() as u32)
        .filter(|&u| !data.split.test[u as usize].is_empty())
        .collect();
    assert!(users.len() > 50, "{} test users", users.len());
    let tch = tch_scores(&model_dir, &data, &users, l);

    // In process: every score of every test user, with each kernel.
    for kernel in [Kernel::Scalar, Kernel::detect()] {
        let a = artifact::load(&model_dir, Some(&data.manifest.fingerprint)).expect("artifact");
        let student = StudentModel::from_artifact(a, kernel).expect("student");
        let queries: Vec<QueryInput> = users
            .iter()
            .map(|&u| QueryInput {
                user: Some(u),
                inputs: last_window(&data.split.train[u as usize], l),
            })
            .collect();
        let ours = student.score_all(&queries);
        let mut worst = 0f32;
        for ((u, mine), theirs) in users.iter().zip(&ours).zip(&tch) {
            for (a, b) in mine.iter().zip(theirs) {
                worst = worst.max((a - b).abs());
            }
            let ranked = student.top_k_batch(
                &[queries[users.iter().position(|x| x == u).unwrap()].clone()],
                K,
                &[Vec::new()],
            );
            assert_same_top_k(
                &ranked[0],
                theirs,
                &format!("{kind} {} user {u}", kernel.name()),
            );
        }
        assert!(
            worst <= TOLERANCE,
            "{kind} {}: max |diff| {worst}",
            kernel.name()
        );
        eprintln!(
            "{kind} {}: {} users, max |score diff| {worst:e}",
            kernel.name(),
            users.len()
        );
    }

    // Through a real student-svc process.
    let runtime = rankdistill_testkit::runtime::runtime();
    runtime.block_on(check_process(&model_dir, &data_dir, &data, &users, &tch));
}

#[test]
fn caser_student_scores_equal_tch() {
    parity(
        "caser",
        4,
        &["--conv-activation", "relu", "--nh", "3", "--nv", "2"],
    );
}

#[test]
fn mf_student_scores_equal_tch() {
    parity("mf", 4, &[]);
}

/// SASRec with two heads and two blocks over 20 inputs: users with fewer items give
/// left-padded windows, the others full ones.
#[test]
fn sasrec_student_scores_equal_tch() {
    parity("sasrec", 20, &["--num-heads", "2"]);
}
