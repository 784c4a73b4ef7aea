//! Live fidelity and automatic rollback with real processes: student-svc shadowing a sample
//! of its Recommend queries to a real teacher-svc (both on ephemeral loopback ports, called
//! through the generated clients), over the synthetic dataset of the fixtures.
//!
//! - With every query sampled, the exported figures and `Info` equal an offline computation
//!   (`core::fidelity`) of the same lists: the student's answers, and the teacher's full
//!   ranking with the student's exclusions removed.
//! - With the teacher down, every request still succeeds and the failed count grows.
//! - A bad version published under probation is rolled back by the server itself; a good
//!   one passes its probation.
//!
//! teacher-svc is the workspace binary beside this test (`rankdistill_testkit::workspace_bin`):
//! the workspace test run builds it; alone, run `cargo build -p rankdistill-teacher` first.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Fixture, SERVICE, Server, args, teacher, write_artifact, write_artifact_weights};
use rankdistill_core::fidelity::{FidelitySummary, QueryFidelity};
use rankdistill_proto::v1::{
    Query, RankRequest, RecommendRequest, ReloadRequest, StudentInfo, StudentInfoRequest,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn info(server: &Server) -> StudentInfo {
    server
        .client()
        .await
        .info(StudentInfoRequest {})
        .await
        .expect("Info")
        .into_inner()
}

fn recommend(
    user: &str,
    recent: &[String],
    exclude: &[String],
    seen: Option<bool>,
    k: i32,
) -> RecommendRequest {
    RecommendRequest {
        query: Some(Query {
            user_id: user.to_string(),
            recent_items: recent.to_vec(),
        }),
        k,
        exclude_items: exclude.to_vec(),
        exclude_seen: seen,
    }
}

/// The two lists as small integers, equal ids to equal integers (the test's own mapping).
fn as_ints(student: &[String], teacher: &[String]) -> (Vec<u32>, Vec<u32>) {
    let mut ids = std::collections::HashMap::<String, u32>::new();
    let mut map = |list: &[String]| -> Vec<u32> {
        list.iter()
            .map(|id| {
                let n = ids.len() as u32;
                *ids.entry(id.clone()).or_insert(n)
            })
            .collect()
    };
    let s = map(student);
    let t = map(teacher);
    (s, t)
}

fn shadow_args(fx: &Fixture, teacher_url: &str, extra: &[&str]) -> Vec<std::ffi::OsString> {
    let data = fx.data.to_string_lossy().into_owned();
    let mut all = vec![
        "--data",
        data.as_str(),
        "--shadow-teacher",
        teacher_url,
        "--shadow-fraction",
        "1.0",
    ];
    all.extend_from_slice(extra);
    let owned: Vec<String> = all.iter().map(|s| s.to_string()).collect();
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    args(&fx.model, &refs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_fidelity_equals_the_offline_computation_of_the_same_lists() {
    let fx = Fixture::new();
    // The teacher: another model of the same shape on the same data (figures below 1).
    let teacher_dir = fx.root.join("teacher");
    write_artifact(
        &teacher_dir,
        &fx.config,
        7,
        &fx.dataset.split.users,
        &fx.dataset.split.items,
        &fx.dataset.manifest.fingerprint,
    );
    let teacher = teacher::start(&fx.data, &teacher_dir).await;
    let server = Server::start_serving(&shadow_args(
        &fx,
        &teacher.url(),
        // A generous timeout: on a loaded machine a slow teacher call must not count as failed.
        &[
            "--watch-interval-ms",
            "0",
            "--shadow-seed",
            "3",
            "--shadow-timeout-ms",
            "30000",
        ],
    ))
    .await;
    let version = fx.manifest.version.clone();
    let mut student = server.client().await;
    let mut teacher_client = teacher::client(&teacher).await;

    // Eligible queries: known users, user-only or with recent items and exclusions, with and
    // without exclude_seen, k >= 10.
    let items = fx.dataset.num_items() as u32;
    let mut eligible = Vec::new();
    for u in 0..16u32 {
        eligible.push(recommend(&fx.user(u), &[], &[], None, 10));
    }
    for u in 16..24u32 {
        let train = &fx.dataset.split.train[u as usize];
        let recent: Vec<String> = train.iter().rev().take(2).map(|&i| fx.item(i)).collect();
        let exclude = vec![fx.item((u * 7) % items)];
        let seen = (u % 2 == 0).then_some(false);
        eligible.push(recommend(&fx.user(u), &recent, &exclude, seen, 12));
    }
    // Not eligible: k below 10, and an unknown user with recent items (the teacher refuses
    // unknown users).
    let ineligible = vec![
        recommend(&fx.user(30), &[], &[], None, 5),
        recommend("no-such-user", &[fx.item(1), fx.item(2)], &[], None, 10),
    ];
    let mut answers = Vec::new();
    for request in eligible.iter().chain(&ineligible) {
        let answer = student.recommend(request.clone()).await.expect("Recommend");
        answers.push(answer.into_inner());
    }
    let ok_line = format!(r#"student_shadow_calls_total{{outcome="ok",version="{version}"}}"#);
    wait_for("every eligible query measured", async || {
        server.metric(&ok_line).await == Some(eligible.len() as f64)
    })
    .await;

    // Offline: the teacher's full ranking with the student's exclusions removed.
    let seen = fx.dataset.split.seen_sets();
    let mut offline = FidelitySummary::default();
    for (request, answer) in eligible.iter().zip(&answers) {
        let query = request.query.clone().unwrap();
        let full = teacher_client
            .rank(RankRequest {
                query: Some(query.clone()),
                k: items as i32,
                exclude_items: vec![],
                exclude_seen: false,
            })
            .await
            .expect("Rank")
            .into_inner();
        let user = fx
            .dataset
            .split
            .users
            .iter()
            .position(|u| *u == query.user_id)
            .unwrap();
        let mut excluded: BTreeSet<String> = request.exclude_items.iter().cloned().collect();
        if request.exclude_seen.unwrap_or(true) {
            excluded.extend(seen[user].iter().map(|&i| fx.item(i)));
            excluded.extend(query.recent_items.iter().cloned());
        }
        let teacher_top: Vec<String> = full
            .items
            .into_iter()
            .map(|i| i.item_id)
            .filter(|id| !excluded.contains(id))
            .take(request.k as usize)
            .collect();
        let student_top: Vec<String> = answer.items.iter().map(|i| i.item_id.clone()).collect();
        assert_eq!(student_top.len(), request.k as usize);
        assert!(student_top.iter().all(|id| !excluded.contains(id)));
        let (s, t) = as_ints(&student_top, &teacher_top);
        offline.add(QueryFidelity::measure(&s, &t, 10));
    }
    eprintln!("offline fidelity: {offline:?}");
    assert!(
        offline.overlap > 0.0 && offline.overlap < 1.0,
        "{offline:?}"
    );

    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let live = info(&server).await;
    let f = live.fidelity.expect("Info.fidelity with shadowing on");
    assert_eq!(f.queries, eligible.len() as u64);
    assert_eq!(
        (f.shadow_ok, f.shadow_dropped, f.shadow_failed),
        (f.queries, 0, 0)
    );
    assert!(
        close(f.overlap_at_10, offline.overlap),
        "{f:?} vs {offline:?}"
    );
    assert!(close(f.ndcg_at_10, offline.ndcg), "{f:?} vs {offline:?}");
    assert!(
        close(f.rank_correlation, offline.rank_correlation),
        "{f:?} vs {offline:?}"
    );
    assert!(live.rejected_versions.is_empty());

    let text = server.metrics().await;
    let metric = |name: &str| {
        rankdistill_testkit::metrics::value(&text, &format!(r#"{name}{{version="{version}"}}"#))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert!(close(metric("student_fidelity_overlap"), offline.overlap));
    assert!(close(metric("student_fidelity_ndcg"), offline.ndcg));
    assert!(close(
        metric("student_fidelity_rank_correlation"),
        offline.rank_correlation
    ));
    assert_eq!(
        metric("student_fidelity_queries_total"),
        eligible.len() as f64
    );
    for outcome in ["dropped", "failed"] {
        let line =
            format!(r#"student_shadow_calls_total{{outcome="{outcome}",version="{version}"}}"#);
        assert_eq!(
            rankdistill_testkit::metrics::value(&text, &line),
            Some(0.0),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_shadow_teacher_down_requests_succeed_and_failures_are_counted() {
    let fx = Fixture::new();
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let server = Server::start_serving(&shadow_args(
        &fx,
        &url,
        &["--watch-interval-ms", "0", "--shadow-timeout-ms", "300"],
    ))
    .await;
    let mut client = server.client().await;
    let n = 20u32;
    for u in 0..n {
        let answer = client
            .recommend(recommend(&fx.user(u), &[], &[], None, 10))
            .await
            .expect("Recommend succeeds with the teacher down")
            .into_inner();
        assert_eq!(answer.items.len(), 10);
    }
    let failed = format!(
        r#"student_shadow_calls_total{{outcome="failed",version="{}"}}"#,
        fx.manifest.version
    );
    wait_for("every shadow call counted as failed", async || {
        server.metric(&failed).await == Some(f64::from(n))
    })
    .await;
    let f = info(&server).await.fidelity.expect("fidelity");
    assert_eq!(
        (f.queries, f.shadow_ok, f.shadow_failed, f.shadow_dropped),
        (0, 0, u64::from(n), 0)
    );
    assert_eq!(
        server.health(SERVICE).await.unwrap(),
        ServingStatus::Serving
    );
    // Shadowing off: Info has no fidelity.
    let plain = Server::start_serving(&args(&fx.model, &["--watch-interval-ms", "0"])).await;
    assert!(info(&plain).await.fidelity.is_none());
}

/// A teacher serving v1's own weights (so v1 agrees with it), student-svc serving v1 and
/// shadowing every query to it with `probation` flags, a client load, and v1's fidelity
/// measured on 40 queries. The teacher process is returned to keep it alive.
async fn v1_shadowed(
    fx: &Fixture,
    probation: &[&str],
) -> (rankdistill_testkit::ServerProcess, Server, Load) {
    let teacher_dir = fx.root.join("teacher");
    rankdistill_testkit::dataset::copy_dir(&fx.model, &teacher_dir);
    let teacher = teacher::start(&fx.data, &teacher_dir).await;
    let mut extra = vec!["--watch-interval-ms", "50"];
    extra.extend_from_slice(probation);
    let server = Server::start_serving(&shadow_args(fx, &teacher.url(), &extra)).await;
    let load = Load::start(&server, fx).await;
    wait_for("v1's fidelity measured on enough queries", async || {
        info(&server)
            .await
            .fidelity
            .is_some_and(|f| f.queries >= 40)
    })
    .await;
    (teacher, server, load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_on_probation_is_rolled_back_and_rejected() {
    let fx = Fixture::new();
    // v2 (other random weights) disagrees with the teacher, which serves v1's weights.
    let (_teacher, server, load) = v1_shadowed(
        &fx,
        &[
            "--probation-secs",
            "300",
            "--probation-min-queries",
            "20",
            "--enable-admin",
        ],
    )
    .await;
    let v1 = fx.manifest.version.clone();
    let before = info(&server).await.fidelity.unwrap();
    eprintln!("v1 before the reload: {before:?}");
    assert!(before.overlap_at_10 > 0.9, "{before:?}");

    let v2 = fx.publish(2);
    assert_ne!(v2, v1);
    wait_for("the rollback of v2", async || {
        info(&server).await.rejected_versions.contains(&v2)
    })
    .await;
    let after = info(&server).await;
    assert_eq!(after.model.as_ref().unwrap().version, v1);
    assert_eq!(after.rejected_versions, vec![v2.clone()]);
    assert_eq!(after.reloads, 1);
    assert_eq!(server.metric("student_rollbacks_total").await, Some(1.0));
    let text = server.metrics().await;
    let v2_overlap = rankdistill_testkit::metrics::value(
        &text,
        &format!(r#"student_fidelity_overlap{{version="{v2}"}}"#),
    );
    eprintln!("v2's overlap when rolled back: {v2_overlap:?}");

    // Traffic goes on with v1; the rejected version is refused by name.
    load.more(50).await;
    let mut client = server.client().await;
    let status = client.reload(ReloadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains(&v2) && status.message().contains("rolled back"),
        "{status:?}"
    );
    let answer = client
        .recommend(recommend(&fx.user(3), &[], &[], None, 10))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_version, v1);

    let answered = load.finish().await;
    assert!(answered.contains(&v1));
    assert!(
        answered.iter().all(|v| *v == v1 || *v == v2),
        "{answered:?}"
    );
}

/// v1's weights with one value moved by one unit in the last place: another version (another
/// content hash) that ranks like v1.
fn nudged_weights(model: &std::path::Path) -> Vec<u8> {
    let mut tensors = rankdistill_testkit::weights::read(&model.join("model.safetensors"));
    let bytes = &mut tensors[0].3;
    let x = f32::from_le_bytes(bytes[..4].try_into().unwrap());
    bytes[..4].copy_from_slice(&f32::from_bits(x.to_bits() ^ 1).to_le_bytes());
    rankdistill_testkit::weights::serialize(&tensors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_passes_its_probation_and_the_previous_one_is_released() {
    let fx = Fixture::new();
    let (_teacher, server, load) = v1_shadowed(
        &fx,
        &[
            "--probation-secs",
            "2",
            "--probation-min-queries",
            "20",
            // Fidelity only: a debug build's p99 on a shared machine is too noisy to judge.
            "--rollback-max-p99-ratio",
            "1000",
        ],
    )
    .await;
    let v1 = fx.manifest.version.clone();
    let v2 = write_artifact_weights(
        &fx.model,
        &fx.config,
        &nudged_weights(&fx.model),
        &fx.dataset.split.users,
        &fx.dataset.split.items,
        &fx.dataset.manifest.fingerprint,
    )
    .version;
    assert_ne!(v2, v1);
    // The probation starts before the reload is counted, so once Info counts it the gauge
    // was 1; it returns to 0 when the window ends (or on a rollback, checked below).
    wait_for("the reload of v2", async || {
        info(&server).await.reloads == 1
    })
    .await;
    wait_for("the end of v2's probation", async || {
        server.metric("student_probation_active").await == Some(0.0)
    })
    .await;
    let after = info(&server).await;
    assert_eq!(after.model.as_ref().unwrap().version, v2);
    assert!(after.rejected_versions.is_empty());
    let f = after.fidelity.unwrap();
    eprintln!("v2 at the end of its probation: {f:?}");
    assert!(f.queries >= 20 && f.overlap_at_10 > 0.9, "{f:?}");
    assert_eq!(server.metric("student_rollbacks_total").await, Some(0.0));
    load.more(20).await;
    let answered = load.finish().await;
    assert!(answered.contains(&v2));
    assert!(
        answered.iter().all(|v| *v == v1 || *v == v2),
        "{answered:?}"
    );
}

/// A small closed-loop client load on Recommend (two clients, user-only queries, k = 10)
/// recording every answered version; a failed or short answer is a failure.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
    versions: Arc<Mutex<BTreeSet<String>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(server: &Server, fx: &Fixture) -> Load {
        let load = Load {
            stop: Arc::default(),
            failures: Arc::default(),
            total: Arc::default(),
            versions: Arc::default(),
            clients: Vec::new(),
        };
        let mut clients = Vec::new();
        for c in 0..2usize {
            let mut client = server.client().await;
            let (stop, failures, total, versions) = (
                load.stop.clone(),
                load.failures.clone(),
                load.total.clone(),
                load.versions.clone(),
            );
            let users: Vec<String> = (0..50).map(|u| fx.user(u)).collect();
            clients.push(tokio::spawn(async move {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let request = recommend(&users[i % users.len()], &[], &[], None, 10);
                    match client.recommend(request).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            total.fetch_add(1, Ordering::Relaxed);
                            versions.lock().unwrap().insert(r.model_version.clone());
                            if r.items.len() != 10 {
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            eprintln!("request failed: {e:?}");
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // A light load: the shadow queue keeps up.
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }));
        }
        Load { clients, ..load }
    }

    /// Waits for `n` more answers.
    async fn more(&self, n: u64) {
        let from = self.total.load(Ordering::Relaxed);
        wait_for("more traffic", async || {
            self.total.load(Ordering::Relaxed) >= from + n
        })
        .await;
    }

    /// Stops the clients; asserts that no request failed; returns the versions answered.
    async fn finish(self) -> BTreeSet<String> {
        self.stop.store(true, Ordering::Relaxed);
        for c in self.clients {
            c.await.unwrap();
        }
        assert_eq!(self.failures.load(Ordering::Relaxed), 0, "failed requests");
        self.versions.lock().unwrap().clone()
    }
}

#[test]
fn unusable_shadow_and_probation_flags_are_refused_at_start() {
    let fx = Fixture::new();
    let data = fx.data.to_string_lossy().into_owned();
    for (extra, says) in [
        (
            vec![
                "--data",
                data.as_str(),
                "--shadow-teacher",
                "https://teacher:50051",
            ],
            "plain-text endpoint http://HOST:PORT",
        ),
        (
            vec![
                "--data",
                data.as_str(),
                "--shadow-teacher",
                "http://bad host",
            ],
            "not a valid endpoint",
        ),
        (vec!["--shadow-teacher", "http://127.0.0.1:1"], "--data"),
        (vec!["--shadow-fraction", "0.1"], "--shadow-teacher"),
        (vec!["--probation-secs=-3"], "negative"),
    ] {
        let (status, stderr) = common::run_to_refusal(&args(&fx.model, &extra));
        assert!(!status.success(), "{extra:?}");
        assert!(stderr.contains(says), "{extra:?}: {stderr}");
    }
}
