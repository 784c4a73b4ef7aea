//! student-svc over TLS and mutual TLS (certificates generated in the test with rcgen):
//! Recommend, health, reflection and the token-gated Reload over mutual TLS; clients without
//! a certificate, with one from another CA, or in plain text refused; the message size limit;
//! clear refusals to start. Real processes on ephemeral loopback ports.

mod common;

use common::{Fixture, SERVICE, Server, args, run_to_refusal};
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{
    Query, RecommendBatchRequest, RecommendRequest, ReloadRequest, StudentInfoRequest,
};
use rankdistill_testkit::health::{ServingStatus, assert_plain_health_serving};
use rankdistill_testkit::path_arg as path;
use rankdistill_testkit::pki::{Pki, cert_and_key};
use rankdistill_testkit::reflection::assert_lists;
use rankdistill_testkit::tls::{
    ClientTlsFiles, assert_too_large, tls_channel, tls_health, wait_serving_tls,
};
use rankdistill_testkit::tls_refusal::assert_unusable_tls_flags_refused;
use tonic::Code;

const TOKEN: &str = "tls-test-admin-token-5d41402abc4b2a76";

fn request(user: String, k: i32) -> RecommendRequest {
    RecommendRequest {
        query: Some(Query {
            user_id: user,
            recent_items: vec![],
        }),
        k,
        exclude_items: vec![],
        exclude_seen: Some(true),
    }
}

async fn client(
    server: &Server,
    files: &ClientTlsFiles,
) -> Result<StudentServiceClient<tonic::transport::Channel>, tonic::Status> {
    Ok(StudentServiceClient::new(
        tls_channel(server.addr, files).await?,
    ))
}

/// How many items a Recommend answers.
async fn answered(
    c: &mut StudentServiceClient<tonic::transport::Channel>,
    request: RecommendRequest,
) -> usize {
    c.recommend(request).await.unwrap().into_inner().items.len()
}

/// Info over a fresh connection: the error when the connection or the call is refused.
async fn version(server: &Server, files: &ClientTlsFiles) -> Result<String, tonic::Status> {
    let info = client(server, files)
        .await?
        .info(StudentInfoRequest {})
        .await?
        .into_inner();
    Ok(info.model.map(|m| m.version).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_recommend_health_reflection_and_the_gated_reload() {
    let fx = Fixture::new();
    let pki = Pki::new();
    let token_file = fx.root.join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut extra: Vec<String> = pki.server_args(true);
    extra.extend([
        "--watch-interval-ms".into(),
        "0".into(),
        "--admin-token-file".into(),
        path(&token_file),
        "--health-addr".into(),
        "127.0.0.1:0".into(),
    ]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = Server::start(&args(&fx.model, &extra));
    let good = pki.client(true);
    wait_serving_tls(server.addr, &good, SERVICE).await;
    assert_eq!(
        tls_health(server.addr, &good, "").await.unwrap(),
        ServingStatus::Serving
    );
    // The plain-text health port (for probes that cannot do TLS) answers health only.
    let health_addr = server.health_addr.expect("health on ADDR");
    let channel = assert_plain_health_serving(health_addr, SERVICE).await;
    let status = StudentServiceClient::new(channel)
        .info(StudentInfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let mut c = client(&server, &good).await.unwrap();
    let answer = c
        .recommend(request(fx.user(0), 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.items.len(), 5);
    assert_eq!(answer.model_version, fx.manifest.version);

    // Reflection over mutual TLS.
    assert_lists(tls_channel(server.addr, &good).await.unwrap(), SERVICE).await;

    // Reload over mutual TLS still needs the bearer token.
    let v2 = fx.publish(2);
    let status = c.reload(ReloadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let mut reload = tonic::Request::new(ReloadRequest {});
    reload
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let reloaded = c.reload(reload).await.unwrap().into_inner();
    assert!(reloaded.changed);
    assert_eq!(reloaded.model_version, v2);

    // Refused: no client certificate, a certificate from another CA, plain text.
    let without = version(&server, &pki.client(false)).await;
    assert!(without.is_err(), "{without:?}");
    let intruder = version(&server, &pki.intruder()).await;
    assert!(intruder.is_err(), "{intruder:?}");
    let plain = server.health("").await;
    assert!(plain.is_err(), "{plain:?}");
    assert_eq!(version(&server, &good).await.unwrap(), v2);
    // The metrics port stays plain HTTP.
    assert!(server.metrics().await.contains("student_ready 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_above_the_limit_are_refused_both_ways() {
    let fx = Fixture::new();
    let pki = Pki::new();
    let mut extra = pki.server_args(false);
    extra.extend(["--max-message-bytes".into(), "1024".into()]);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = Server::start(&args(&fx.model, &extra));
    let files = pki.client(false);
    wait_serving_tls(server.addr, &files, SERVICE).await;
    let mut c = client(&server, &files).await.unwrap();
    assert_eq!(answered(&mut c, request(fx.user(0), 5)).await, 5);
    // Request above the limit: refused while decoding.
    let items = fx.dataset.num_items() as u32;
    let mut big = request(fx.user(0), 5);
    big.exclude_items = (0..400).map(|i| fx.item(i % items)).collect();
    let status = c.recommend(big).await.unwrap_err();
    assert_too_large(&status);
    // Response above the limit: refused while encoding (4 answers of 50 items).
    let status = c
        .recommend_batch(RecommendBatchRequest {
            requests: (0..4).map(|u| request(fx.user(u), 50)).collect(),
        })
        .await
        .unwrap_err();
    assert_too_large(&status);
    assert_eq!(answered(&mut c, request(fx.user(1), 5)).await, 5);
}

#[test]
fn unusable_tls_files_stop_the_start_naming_the_flag_and_the_file() {
    let fx = Fixture::new();
    assert_unusable_tls_flags_refused(&Pki::new(), |extra| {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        run_to_refusal(&args(&fx.model, &extra))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rd_loadgen_loads_a_mutual_tls_server() {
    let fx = Fixture::new();
    let pki = Pki::new();
    let extra = pki.server_args(true);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let server = Server::start(&args(&fx.model, &extra));
    let good = pki.client(true);
    wait_serving_tls(server.addr, &good, SERVICE).await;
    let loadgen = |extra: &[String]| {
        let mut command = common::loadgen();
        command
            .args(["--addr", &format!("https://{}", server.addr)])
            .args(["--data", &path(&fx.data)])
            .args(["--requests", "20", "--warmup-s", "0", "--concurrency", "2"])
            .args(["--tls-ca", &path(&pki.ca)])
            .args(extra)
            .output()
            .expect("run rd-loadgen")
    };
    let out = loadgen(&cert_and_key(&pki.client_cert, &pki.client_key));
    let report = common::loadgen_report(&out);
    assert_eq!(report["ok"], 20, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    // Without a client certificate the server refuses every call (or the connection).
    let out = loadgen(&[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let refused = !out.status.success()
        || serde_json::from_str::<serde_json::Value>(&stdout)
            .map(|r| r["ok"] == 0)
            .unwrap_or(false);
    assert!(refused, "{stdout}");
}
