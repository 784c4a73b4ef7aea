//! Every RPC of a real student-svc process and its error cases: Recommend (history, recent
//! items, exclusions, exclude_seen default, fallback), RecommendBatch, Info, Reload, health,
//! reflection, metrics, admission control, and refusal to start on a bad artifact.

mod common;

use std::collections::HashSet;

use common::{Fixture, SERVICE, Server, args, run_to_refusal, write_artifact};
use rankdistill_core::artifact::load;
use rankdistill_core::instances::last_window;
use rankdistill_core::topk::top_k;
use rankdistill_proto::v1::{
    Query, RecommendBatchRequest, RecommendRequest, ReloadRequest, StudentInfoRequest,
};
use rankdistill_student::kernel::Kernel;
use rankdistill_student::model::{QueryInput, StudentModel};
use rankdistill_testkit::reflection::{assert_lists, list_services_v1alpha};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn request(user: &str, recent: &[String], k: i32) -> RecommendRequest {
    RecommendRequest {
        query: Some(Query {
            user_id: user.to_string(),
            recent_items: recent.to_vec(),
        }),
        k,
        exclude_items: vec![],
        exclude_seen: None,
    }
}

fn expect_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("expected an error");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "'{}' does not mention '{needle}'",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpcs_errors_parity_and_metrics_with_data() {
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    let server = Server::start_serving(&args(
        &fx.model,
        &[
            "--data",
            &data,
            "--max-k",
            "50",
            "--max-batch",
            "4",
            "--enable-admin",
        ],
    ))
    .await;
    let mut client = server.client().await;

    // Info.
    let info = client
        .info(StudentInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let model = info.model.clone().unwrap();
    assert_eq!(model.model_kind, "caser");
    assert_eq!(model.dim, 8);
    assert_eq!(model.sequence_length, 3);
    assert_eq!(model.num_items as usize, fx.dataset.num_items());
    assert_eq!(model.version, fx.manifest.version);
    assert_eq!(model.device, "cpu");
    assert!(info.loaded_at_unix_ms > 0);
    assert_eq!(info.reloads, 0);
    assert!(["avx512-vnni", "avx2-fma", "scalar"].contains(&info.kernel.as_str()));

    // In-process reference for parity.
    let reference =
        StudentModel::from_artifact(load(&fx.model, None).unwrap(), Kernel::Scalar).unwrap();

    // A user from their history, exclude_seen on by default.
    for u in [0u32, 7, 19] {
        let got = client
            .recommend(request(&fx.user(u), &[], 10))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.model_version, fx.manifest.version);
        assert!(!got.fallback);
        let train = &fx.dataset.split.train[u as usize];
        let scores = reference.score_all(&[QueryInput {
            user: Some(u),
            inputs: last_window(train, 3),
        }]);
        let want = top_k(&scores[0], 10, |i| train.contains(&i));
        assert_eq!(got.items.len(), 10);
        for (g, (i, s)) in got.items.iter().zip(&want) {
            assert!((g.score - s).abs() < 1e-4, "{} vs {s}", g.score);
            let seen: HashSet<&String> = train
                .iter()
                .map(|&t| &fx.dataset.split.items[t as usize])
                .collect();
            assert!(!seen.contains(&g.item_id), "seen item returned");
            if (g.score - s).abs() > 1e-6 {
                continue;
            }
            assert_eq!(g.item_id, fx.item(*i));
        }
        // exclude_seen = false returns scores of the unmasked ranking.
        let mut r = request(&fx.user(u), &[], 5);
        r.exclude_seen = Some(false);
        let got = client.recommend(r).await.unwrap().into_inner();
        let want = top_k(&scores[0], 5, |_| false);
        let ids: Vec<String> = want.iter().map(|(i, _)| fx.item(*i)).collect();
        assert_eq!(
            got.items
                .iter()
                .map(|s| s.item_id.clone())
                .collect::<Vec<_>>(),
            ids
        );
    }

    // Explicit recent items (last L used), explicit excludes.
    let recent: Vec<String> = (0..5).map(|i| fx.item(i)).collect();
    let mut r = request(&fx.user(3), &recent, 8);
    r.exclude_items = vec![fx.item(10)];
    let got = client.recommend(r.clone()).await.unwrap().into_inner();
    let ids: HashSet<String> = got.items.iter().map(|s| s.item_id.clone()).collect();
    assert!(!ids.contains(&fx.item(10)));
    for i in 0..5 {
        assert!(
            !ids.contains(&fx.item(i)),
            "recent items are excluded by default"
        );
    }
    // Unknown user with recent items: served (user part zero).
    let got = client
        .recommend(request("no-such-user", &recent, 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.len(), 3);

    // Batch equals the single calls.
    let batch = RecommendBatchRequest {
        requests: vec![
            request(&fx.user(0), &[], 10),
            r.clone(),
            request(&fx.user(7), &[], 3),
        ],
    };
    let got = client.recommend_batch(batch).await.unwrap().into_inner();
    assert_eq!(got.responses.len(), 3);
    assert_eq!(got.model_version, fx.manifest.version);
    let single = client.recommend(r.clone()).await.unwrap().into_inner();
    assert_eq!(got.responses[1], single);
    assert_eq!(got.responses[2].items.len(), 3);

    // Errors.
    expect_code(
        client.recommend(request("no-such-user", &[], 5)).await,
        Code::NotFound,
        "unknown user id 'no-such-user'",
    );
    expect_code(
        client.recommend(request(&fx.user(0), &[], 0)).await,
        Code::InvalidArgument,
        "k must be between 1 and 50",
    );
    expect_code(
        client.recommend(request(&fx.user(0), &[], 51)).await,
        Code::InvalidArgument,
        "got 51",
    );
    expect_code(
        client
            .recommend(request(&fx.user(0), &["nope".into()], 5))
            .await,
        Code::InvalidArgument,
        "query.recent_items: unknown item id 'nope'",
    );
    let mut bad = request(&fx.user(0), &[], 5);
    bad.exclude_items = vec!["zzz".into()];
    expect_code(
        client.recommend(bad).await,
        Code::InvalidArgument,
        "exclude_items: unknown item id 'zzz'",
    );
    expect_code(
        client.recommend(request("", &[], 5)).await,
        Code::InvalidArgument,
        "user_id, recent_items",
    );
    let mut no_query = request("", &[], 5);
    no_query.query = None;
    expect_code(
        client.recommend(no_query).await,
        Code::InvalidArgument,
        "query is required",
    );
    expect_code(
        client
            .recommend_batch(RecommendBatchRequest { requests: vec![] })
            .await,
        Code::InvalidArgument,
        "1..=4",
    );
    expect_code(
        client
            .recommend_batch(RecommendBatchRequest {
                requests: vec![request(&fx.user(0), &[], 5); 5],
            })
            .await,
        Code::InvalidArgument,
        "got 5",
    );
    expect_code(
        client
            .recommend_batch(RecommendBatchRequest {
                requests: vec![request(&fx.user(0), &[], 5), request("ghost", &[], 5)],
            })
            .await,
        Code::NotFound,
        "requests[1]: unknown user id 'ghost'",
    );

    // Reload with nothing new: unchanged.
    let reload = client.reload(ReloadRequest {}).await.unwrap().into_inner();
    assert!(!reload.changed);
    assert_eq!(reload.model_version, fx.manifest.version);

    // Health and metrics.
    assert_eq!(
        server.health(SERVICE).await.unwrap(),
        ServingStatus::Serving
    );
    let text = server.metrics().await;
    for needle in [
        r#"student_requests_total{code="OK",method="Recommend"}"#,
        r#"student_requests_total{code="NOT_FOUND",method="Recommend"} 1"#,
        r#"student_requests_total{code="INVALID_ARGUMENT",method="RecommendBatch"} 2"#,
        "student_request_duration_seconds_bucket",
        &format!(r#"version="{}""#, fx.manifest.version),
        "student_reloads_total 0",
        "student_reload_failures_total 0",
        "student_ready 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_data_and_with_the_popularity_fallback() {
    let fx = Fixture::new();
    let server = Server::start_serving(&args(&fx.model, &["--unknown-user", "popularity"])).await;
    let mut client = server.client().await;
    // Unknown user, no items: the popularity fallback (item-bias order without --data).
    let got = client
        .recommend(request("ghost", &[], 5))
        .await
        .unwrap()
        .into_inner();
    assert!(got.fallback);
    let reference =
        StudentModel::from_artifact(load(&fx.model, None).unwrap(), Kernel::Scalar).unwrap();
    let want = top_k(&reference.item_bias(), 5, |_| false);
    let ids: Vec<String> = want.iter().map(|(i, _)| fx.item(*i)).collect();
    assert_eq!(
        got.items
            .iter()
            .map(|s| s.item_id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    // A known user with no --data: an all-padding window; nothing to exclude but what's given.
    let got = client
        .recommend(request(&fx.user(0), &[], 5))
        .await
        .unwrap()
        .into_inner();
    let scores = reference.score_all(&[QueryInput {
        user: Some(0),
        inputs: vec![0, 0, 0],
    }]);
    let want = top_k(&scores[0], 5, |_| false);
    for (g, (i, s)) in got.items.iter().zip(&want) {
        assert_eq!(g.item_id, fx.item(*i));
        assert!((g.score - s).abs() < 1e-5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mf_artifacts_serve_and_reflection_lists_the_service() {
    let fx = Fixture::new();
    let dir = fx.root.join("mf");
    let manifest = fx.write_mf(&dir, 6, 4);
    let server = Server::start_serving(&args(&dir, &[])).await;
    let mut client = server.client().await;
    let info = client
        .info(StudentInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.model.unwrap().model_kind, "mf");
    let got = client
        .recommend(request(&fx.user(2), &[], 4))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.model_version, manifest.version);
    let reference = StudentModel::from_artifact(load(&dir, None).unwrap(), Kernel::Scalar).unwrap();
    let scores = reference.score_all(&[QueryInput {
        user: Some(2),
        inputs: vec![],
    }]);
    let want = top_k(&scores[0], 4, |_| false);
    for (g, (i, s)) in got.items.iter().zip(&want) {
        assert_eq!(g.item_id, fx.item(*i));
        assert!((g.score - s).abs() < 1e-5);
    }

    // Reflection, v1 and v1alpha.
    assert_lists(server.channel().await.unwrap(), SERVICE).await;
    let names = list_services_v1alpha(server.channel().await.unwrap()).await;
    assert!(names.iter().any(|s| s == SERVICE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_control_answers_resource_exhausted() {
    let fx = Fixture::with_items(3000);
    let server = Server::start_serving(&args(
        &fx.model,
        &[
            "--queue-capacity",
            "1",
            "--threads",
            "1",
            "--max-batch",
            "256",
        ],
    ))
    .await;
    let batch = RecommendBatchRequest {
        requests: (0..256)
            .map(|u| request(&fx.user(u % 50), &[], 100))
            .collect(),
    };
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let mut client = server.client().await;
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            client.recommend_batch(batch).await.map(|_| ())
        }));
    }
    let mut exhausted = 0;
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(s) if s.code() == Code::ResourceExhausted => {
                assert!(s.message().contains("--queue-capacity"), "{s:?}");
                exhausted += 1
            }
            Err(s) => panic!("unexpected {s:?}"),
        }
    }
    assert!(ok >= 1 && exhausted >= 1, "ok {ok}, exhausted {exhausted}");
}

#[test]
fn refuses_to_start_on_a_corrupt_artifact_or_other_data() {
    let fx = Fixture::new();
    let corrupt = fx.root.join("corrupt");
    common::write_corrupt_copy(&fx.model, &corrupt);
    let (status, stderr) = run_to_refusal(&args(&corrupt, &[]));
    assert!(!status.success());
    assert!(
        stderr.contains("does not match the manifest's version"),
        "{stderr}"
    );

    let other = fx.root.join("other-data");
    write_artifact(
        &other,
        &fx.config,
        2,
        &fx.dataset.split.users,
        &fx.dataset.split.items,
        "ffff",
    );
    let data = fx.data.to_string_lossy().into_owned();
    let (status, stderr) = run_to_refusal(&args(&other, &["--data", &data]));
    assert!(!status.success());
    assert!(stderr.contains("fingerprint ffff"), "{stderr}");
}
