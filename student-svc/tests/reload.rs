//! Hot reload of a real student-svc process: a new artifact version (folder replaced by
//! rename, as `trainer` does) is picked up under continuous load with zero failed requests;
//! a corrupt artifact is refused (metric, old model keeps serving); SIGHUP and the Reload RPC
//! reload; SIGTERM drains and exits 0.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Fixture, SERVICE, Server, args, write_corrupt_copy};
use rankdistill_proto::v1::{Query, RecommendRequest, ReloadRequest, StudentInfoRequest};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn request(user: String) -> RecommendRequest {
    RecommendRequest {
        query: Some(Query {
            user_id: user,
            recent_items: vec![],
        }),
        k: 10,
        exclude_items: vec![],
        exclude_seen: None,
    }
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_load_then_a_corrupt_artifact_is_refused() {
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    let server = Server::start_serving(&args(
        &fx.model,
        &[
            "--data",
            &data,
            "--watch-interval-ms",
            "50",
            "--enable-admin",
        ],
    ))
    .await;
    let v1 = fx.manifest.version.clone();

    // Continuous load from concurrent clients, recording every version answered.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let seen_v2 = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    // Every version answered; checked against {v1, v2} at the end (v2 is only known once it
    // is published, and the watcher may switch before the test records it).
    let versions = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut clients = Vec::new();
    for c in 0..2 {
        let mut client = server.client().await;
        let (stop, failures, seen_v2, total, versions) = (
            stop.clone(),
            failures.clone(),
            seen_v2.clone(),
            total.clone(),
            versions.clone(),
        );
        let users: Vec<String> = (0..50).map(|u| fx.user(u)).collect();
        let v1 = v1.clone();
        clients.push(tokio::spawn(async move {
            let mut i = c;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match client
                    .recommend(request(users[i % users.len()].clone()))
                    .await
                {
                    Ok(r) => {
                        let r = r.into_inner();
                        total.fetch_add(1, Ordering::Relaxed);
                        if r.model_version != v1 {
                            seen_v2.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut v) = versions.lock() {
                            v.insert(r.model_version.clone());
                        }
                        if r.items.len() != 10 {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        eprintln!("request failed during reload: {e:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    wait_for("initial load traffic", async || {
        total.load(Ordering::Relaxed) > 50
    })
    .await;

    // Publish v2 by folder rename.
    let new_version = fx.publish(2);
    assert_ne!(new_version, v1);
    wait_for("responses from the new version", async || {
        seen_v2.load(Ordering::Relaxed) > 50
    })
    .await;
    let before = total.load(Ordering::Relaxed);
    wait_for("more traffic", async || {
        total.load(Ordering::Relaxed) > before + 50
    })
    .await;
    let mut client = server.client().await;
    let info = client
        .info(StudentInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.model.unwrap().version, new_version);
    assert_eq!(info.reloads, 1);

    // A corrupt artifact: refused with a metric, the old version keeps serving.
    let good_copy = fx.root.join("good-copy");
    std::fs::create_dir(&good_copy).unwrap();
    for f in ["manifest.json", "model.safetensors"] {
        std::fs::copy(fx.model.join(f), good_copy.join(f)).unwrap();
    }
    write_corrupt_copy(&good_copy, &fx.model);
    wait_for("the reload failure metric", async || {
        server
            .metric("student_reload_failures_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    let before = total.load(Ordering::Relaxed);
    wait_for("traffic after the refusal", async || {
        total.load(Ordering::Relaxed) > before + 50
    })
    .await;
    let r = client
        .recommend(request(fx.user(1)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.model_version, new_version);
    let status = client.reload(ReloadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains("does not match the manifest's version")
            && status.message().contains(&new_version),
        "{status:?}"
    );
    assert_eq!(
        server.health(SERVICE).await.unwrap(),
        ServingStatus::Serving
    );

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let answered = versions.lock().unwrap().clone();
    let expected: std::collections::BTreeSet<String> = [v1.clone(), new_version.clone()].into();
    assert_eq!(
        answered, expected,
        "responses must come from v1 or v2 only, and from both"
    );
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests during reload"
    );
    assert_eq!(server.metric("student_reloads_total").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_rpc_reload_then_sigterm_drains() {
    let fx = Fixture::new();
    let mut server = Server::start_serving(&args(
        &fx.model,
        &["--watch-interval-ms", "0", "--enable-admin"],
    ))
    .await;
    let mut client = server.client().await;

    let v2 = fx.publish(2);
    // No watcher: still the old version until asked.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client
        .recommend(request(fx.user(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.model_version, fx.manifest.version);
    server.signal("HUP");
    let mut client2 = client.clone();
    wait_for("the SIGHUP reload", async || {
        client2
            .info(StudentInfoRequest {})
            .await
            .map(|i| i.into_inner().model.unwrap().version == v2)
            .unwrap_or(false)
    })
    .await;

    let v3 = fx.publish(3);
    let reload = client.reload(ReloadRequest {}).await.unwrap().into_inner();
    assert!(reload.changed);
    assert_eq!(
        (reload.previous_version, reload.model_version.clone()),
        (v2, v3.clone())
    );
    let r = client
        .recommend(request(fx.user(0)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.model_version, v3);

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
}
