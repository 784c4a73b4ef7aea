//! Faults a serving student-svc must survive, against the real binary on loopback:
//! - SIGTERM under load from concurrent clients: health turns NOT_SERVING first while requests
//!   are still answered, every request ends OK or UNAVAILABLE (none cut, none hung), exit 0;
//! - client deadlines: queries and batch jobs whose deadline passed while they waited are
//!   dropped before any scoring (`student_abandoned_total`), the callers get a deadline error
//!   at once, and the server keeps serving;
//! - overload: with a small `--queue-capacity` and more concurrent clients than capacity, some
//!   requests get RESOURCE_EXHAUSTED and every admitted request still succeeds.
//!
//! A corrupt artifact arriving by hot reload is `tests/reload.rs`; broken artifacts at start-up
//! and on reload are `tests/bad_input.rs`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Fixture, SERVICE, Server, args, user_request, write_artifact};
use rankdistill_core::artifact::ModelConfig;
use rankdistill_proto::v1::RecommendBatchRequest;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// A clean refusal: UNAVAILABLE (connection refused, GOAWAY, shutting down), or a request the
/// client never sent because the connection closed while it was queued on it (hyper reports
/// that as a cancelled request, tonic as CANCELLED "operation was canceled"; it is safe to
/// retry: the server never saw it). A request cut after it was sent would be anything else.
fn refused(status: &tonic::Status) -> bool {
    let never_sent = status.code() == Code::Cancelled
        && format!("{status:?}").contains("hyper::Error(Canceled, \"connection closed\")");
    status.code() == Code::Unavailable || never_sent
}

/// Longest any single call may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Outcomes {
    ok: AtomicU64,
    unavailable: AtomicU64,
    other: std::sync::Mutex<Vec<String>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_cleanly() {
    let fx = Fixture::with_items(3000);
    let data = fx.data.to_string_lossy().into_owned();
    let mut server = Server::start_serving(&args(
        &fx.model,
        &["--data", &data, "--drain-delay-ms", "3000"],
    ))
    .await;
    let outcomes = Arc::new(Outcomes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8u32 {
        let mut client = server.client().await;
        let user = fx.user(c);
        let (outcomes, stop) = (outcomes.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            // Until the server is gone: a client stops at its first refusal once draining.
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(HANG, client.recommend(user_request(&user, 10))).await {
                    Ok(Ok(answer)) => {
                        assert_eq!(answer.into_inner().items.len(), 10);
                        outcomes.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(status)) if refused(&status) => {
                        outcomes.unavailable.fetch_add(1, Ordering::Relaxed);
                        // Keep trying on the same channel: reconnecting must be refused too.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Ok(Err(status)) => outcomes.other.lock().unwrap().push(format!("{status:?}")),
                    Err(_) => {
                        outcomes.other.lock().unwrap().push("a call hung".into());
                        return;
                    }
                }
            }
        }));
    }
    let deadline = Instant::now() + HANG;
    while outcomes.ok.load(Ordering::Relaxed) < 200 {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    server.sigterm();
    // Health says NOT_SERVING while the server still answers (the health call itself is one).
    server.wait_for_health(ServingStatus::NotServing).await;
    let at_not_serving = outcomes.ok.load(Ordering::Relaxed);
    // During the drain delay the load is still served.
    let deadline = Instant::now() + HANG;
    while outcomes.ok.load(Ordering::Relaxed) < at_not_serving + 20 {
        assert!(
            Instant::now() < deadline,
            "requests stopped being answered while draining"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let exit = server.wait_exit(HANG);
    assert!(exit.success(), "exit status {exit:?}");
    // After the exit, new calls are refused (connection refused: UNAVAILABLE).
    let deadline = Instant::now() + HANG;
    let refused_before = outcomes.unavailable.load(Ordering::Relaxed);
    while outcomes.unavailable.load(Ordering::Relaxed) < refused_before + 8 {
        assert!(
            Instant::now() < deadline,
            "calls after exit were not refused"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let other = outcomes.other.lock().unwrap().clone();
    assert!(
        other.is_empty(),
        "requests neither answered nor refused cleanly ({} ok, {} unavailable): {other:?}",
        outcomes.ok.load(Ordering::Relaxed),
        outcomes.unavailable.load(Ordering::Relaxed)
    );
    assert!(server.health("").await.is_err());
}

/// An MF artifact with a large item table (and no `--data`), so that a backlog of big
/// batches keeps a single scoring thread busy for seconds.
fn big_artifact(root: &std::path::Path) -> (std::path::PathBuf, Vec<String>) {
    let dir = root.join("big");
    let users: Vec<String> = (0..50).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = (0..100_000).map(|i| format!("i{i}")).collect();
    let config = ModelConfig::mf(32, users.len() as i64, items.len() as i64);
    write_artifact(&dir, &config, 9, &users, &items, "fp");
    (dir, users)
}

async fn metric(server: &Server, name: &str) -> f64 {
    server.metric(name).await.unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_work_is_dropped_before_scoring() {
    let root = tempfile::tempdir().unwrap();
    let (model, users) = big_artifact(root.path());
    let server = Server::start_serving(&args(
        &model,
        &[
            "--threads",
            "1",
            "--scan",
            "f32",
            "--queue-capacity",
            "64",
            "--watch-interval-ms",
            "0",
        ],
    ))
    .await;
    let client = server.client().await;
    let big = RecommendBatchRequest {
        requests: (0..256)
            .map(|i| user_request(&users[i % users.len()], 500))
            .collect(),
    };
    // A backlog: 6 big batches (no deadline, about a second each) on the one scoring thread.
    let mut blockers = Vec::new();
    for _ in 0..6 {
        let mut c = client.clone();
        let big = big.clone();
        blockers.push(tokio::spawn(async move {
            tokio::time::timeout(HANG, c.recommend_batch(big)).await
        }));
    }
    let deadline = Instant::now() + HANG;
    while metric(&server, "student_inflight_jobs").await < 4.0 {
        assert!(Instant::now() < deadline, "the backlog never formed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Behind it: single queries and a batch whose 200 ms deadline passes while they wait.
    let mut late = Vec::new();
    for i in 0..20 {
        let mut c = client.clone();
        let mut r = tonic::Request::new(user_request(&users[i % users.len()], 10));
        r.set_timeout(Duration::from_millis(200));
        late.push(tokio::spawn(async move {
            tokio::time::timeout(HANG, c.recommend(r))
                .await
                .map(|r| r.map(|_| ()))
        }));
    }
    for _ in 0..2 {
        let mut c = client.clone();
        let mut r = tonic::Request::new(big.clone());
        r.set_timeout(Duration::from_millis(200));
        late.push(tokio::spawn(async move {
            tokio::time::timeout(HANG, c.recommend_batch(r))
                .await
                .map(|r| r.map(|_| ()))
        }));
    }
    for call in late {
        let status = call
            .await
            .unwrap()
            .expect("a call with a deadline hung")
            .expect_err("answered despite a backlog of seconds");
        // tonic clients enforce the deadline themselves and report it as CANCELLED
        // "Timeout expired"; other gRPC clients (and a server that notices first) say
        // DEADLINE_EXCEEDED.
        let deadline_error = status.code() == Code::DeadlineExceeded
            || (status.code() == Code::Cancelled && status.message().contains("Timeout expired"));
        assert!(deadline_error, "{status:?}");
    }
    for b in blockers {
        let answer = b
            .await
            .unwrap()
            .expect("a batch hung")
            .expect("a batch failed");
        assert_eq!(answer.into_inner().responses.len(), 256);
    }
    // Each late query and batch was dropped when it reached a scoring thread, unscored: no
    // pass over the table ever ran for a single query.
    let deadline = Instant::now() + HANG;
    while metric(&server, "student_abandoned_total").await < 22.0 {
        assert!(
            Instant::now() < deadline,
            "expired work was not dropped: {} of 22",
            metric(&server, "student_abandoned_total").await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(metric(&server, "student_abandoned_total").await, 22.0);
    assert_eq!(metric(&server, "student_batch_size_count").await, 0.0);
    // Still serving.
    let mut c = client.clone();
    let answer = c
        .recommend(user_request(&users[0], 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.items.len(), 5);
    assert_eq!(metric(&server, "student_batch_size_count").await, 1.0);
    assert_eq!(
        server.health(SERVICE).await.unwrap(),
        ServingStatus::Serving
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_refuses_some_and_every_admitted_request_succeeds() {
    let root = tempfile::tempdir().unwrap();
    let (model, users) = big_artifact(root.path());
    let server = Server::start_serving(&args(
        &model,
        &[
            "--threads",
            "1",
            "--queue-capacity",
            "2",
            "--watch-interval-ms",
            "0",
        ],
    ))
    .await;
    let (mut ok, mut exhausted) = (0u64, 0u64);
    // Rounds of 32 concurrent clients (single queries and small batches) against a capacity
    // of 2, until both outcomes were seen; every answer is checked.
    for _round in 0..20 {
        let mut calls = Vec::new();
        for c in 0..32usize {
            let mut client = server.client().await;
            let user = users[c % users.len()].clone();
            calls.push(tokio::spawn(async move {
                let call = async {
                    if c % 4 == 0 {
                        let batch = RecommendBatchRequest {
                            requests: vec![user_request(&user, 50); 8],
                        };
                        let r = client.recommend_batch(batch).await?.into_inner();
                        assert_eq!(r.responses.len(), 8);
                        assert!(r.responses.iter().all(|x| x.items.len() == 50));
                    } else {
                        let r = client
                            .recommend(user_request(&user, 50))
                            .await?
                            .into_inner();
                        assert_eq!(r.items.len(), 50);
                    }
                    Ok::<(), tonic::Status>(())
                };
                tokio::time::timeout(HANG, call).await
            }));
        }
        for call in calls {
            match call.await.unwrap().expect("a call hung") {
                Ok(()) => ok += 1,
                Err(s) if s.code() == Code::ResourceExhausted => {
                    assert!(
                        s.message().contains("--queue-capacity")
                            && s.message().contains("retry with backoff"),
                        "{s:?}"
                    );
                    exhausted += 1;
                }
                Err(s) => panic!("an admitted request failed: {s:?}"),
            }
        }
        if ok > 0 && exhausted > 0 {
            break;
        }
    }
    assert!(ok > 0 && exhausted > 0, "ok {ok}, exhausted {exhausted}");
    let text = server.metrics().await;
    assert!(
        text.contains(r#"student_requests_total{code="RESOURCE_EXHAUSTED""#),
        "{text}"
    );
    assert!(!text.contains(r#"code="INTERNAL""#), "{text}");
}
