//! teacher-svc over TLS and mutual TLS (certificates generated in the test with rcgen), the
//! message size limit, and clear refusals to start on unusable PEM files. Real processes on
//! ephemeral loopback ports, called through the generated clients.

mod common;

use std::ffi::OsString;

use common::{Fixture, SERVICE, Server, args, run_to_refusal};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{InfoRequest, Query, RankRequest, StreamRankingsRequest};
use rankdistill_testkit::health::{ServingStatus, assert_plain_health_serving};
use rankdistill_testkit::pki::Pki;
use rankdistill_testkit::reflection::assert_lists;
use rankdistill_testkit::tls::{
    ClientTlsFiles, assert_too_large, tls_channel, tls_health, wait_serving_tls,
};
use rankdistill_testkit::tls_refusal::assert_unusable_tls_flags_refused;
use tonic::Code;

fn with(fx: &Fixture, extra: &[String]) -> Vec<OsString> {
    let mut out = args(&fx.data, &fx.checkpoint);
    out.extend(extra.iter().map(OsString::from));
    out
}

/// StreamRankings of every training query, `k` items each, `batch_size` rankings a message.
fn stream_request(k: i32, batch_size: u32) -> StreamRankingsRequest {
    StreamRankingsRequest {
        k,
        batch_size,
        shard_count: 1,
        ..StreamRankingsRequest::default()
    }
}

async fn tls_client(
    server: &Server,
    files: &ClientTlsFiles,
) -> Result<TeacherServiceClient<tonic::transport::Channel>, tonic::Status> {
    Ok(TeacherServiceClient::new(
        tls_channel(server.addr, files).await?,
    ))
}

/// Info over a fresh connection: the error when the connection or the call is refused.
async fn info(server: &Server, files: &ClientTlsFiles) -> Result<String, tonic::Status> {
    let mut client = tls_client(server, files).await?;
    Ok(client.info(InfoRequest {}).await?.into_inner().version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_rpcs_health_and_reflection_and_refuses_plain_text() {
    let fx = Fixture::new();
    let pki = Pki::new();
    let server = Server::start(&with(&fx, &pki.server_args(false)));
    let files = pki.client(false);
    wait_serving_tls(server.addr, &files, "").await;
    assert_eq!(
        tls_health(server.addr, &files, SERVICE).await.unwrap(),
        ServingStatus::Serving
    );

    let mut client = tls_client(&server, &files).await.unwrap();
    let answer = client
        .rank(RankRequest {
            query: Some(Query {
                user_id: fx.user(0),
                recent_items: vec![],
            }),
            k: 5,
            exclude_items: vec![],
            exclude_seen: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.items.len(), 5);
    assert_eq!(answer.model_version, fx.manifest.version);

    // Reflection over TLS.
    assert_lists(tls_channel(server.addr, &files).await.unwrap(), SERVICE).await;

    // A plain-text client gets nothing; the server keeps serving TLS clients.
    let plain = server.health("").await;
    assert!(
        plain.is_err(),
        "plain text must fail against TLS: {plain:?}"
    );
    // A client that does not trust the server's CA is refused by its own verification.
    let untrusting = ClientTlsFiles {
        ca: Some(pki.other_ca.clone()),
        ..ClientTlsFiles::default()
    };
    let refused = info(&server, &untrusting).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        info(&server, &files).await.unwrap(),
        fx.manifest.version,
        "TLS clients are still served after the failed handshakes"
    );
    // The metrics port stays plain HTTP.
    assert!(server.metrics().await.contains("teacher_ready 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_a_client_certificate_from_the_configured_ca() {
    let fx = Fixture::new();
    let pki = Pki::new();
    let mut extra = pki.server_args(true);
    extra.extend(["--health-addr".into(), "127.0.0.1:0".into()]);
    let server = Server::start(&with(&fx, &extra));
    let good = pki.client(true);
    wait_serving_tls(server.addr, &good, SERVICE).await;
    assert_eq!(info(&server, &good).await.unwrap(), fx.manifest.version);

    // The plain-text health port (for probes that cannot do TLS) answers health only.
    let health_addr = server.health_addr.expect("health on ADDR");
    let channel = assert_plain_health_serving(health_addr, SERVICE).await;
    let status = TeacherServiceClient::new(channel)
        .info(InfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let without = info(&server, &pki.client(false)).await;
    assert!(
        without.is_err(),
        "no client certificate must be refused: {without:?}"
    );
    let intruder = info(&server, &pki.intruder()).await;
    assert!(
        intruder.is_err(),
        "a certificate from another CA must be refused: {intruder:?}"
    );
    assert!(server.health("").await.is_err(), "plain text is refused");

    // Streams work over mutual TLS too.
    let mut client = tls_client(&server, &good).await.unwrap();
    let mut stream = client
        .stream_rankings(stream_request(3, 8))
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("a batch");
    assert_eq!(first.rankings.len(), 8);
    assert_eq!(info(&server, &good).await.unwrap(), fx.manifest.version);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_above_the_limit_are_refused_both_ways() {
    let fx = Fixture::new();
    let server = Server::start_serving(&with(
        &fx,
        &["--max-message-bytes".to_string(), "1024".to_string()],
    ))
    .await;
    let mut client = server.client().await;
    let rank = |exclude: Vec<String>| RankRequest {
        query: Some(Query {
            user_id: fx.user(0),
            recent_items: vec![],
        }),
        k: 5,
        exclude_items: exclude,
        exclude_seen: false,
    };
    // A small request is served.
    let answer = client.rank(rank(vec![])).await.unwrap().into_inner();
    assert_eq!(answer.items.len(), 5);
    // A request above 1024 bytes is refused while decoding.
    let items = fx.dataset.num_items() as u32;
    let big: Vec<String> = (0..400).map(|i| fx.item(i % items)).collect();
    let status = client.rank(rank(big)).await.unwrap_err();
    assert_too_large(&status);
    // A stream whose messages could exceed 1024 bytes (64 queries x 10 items) is refused up
    // front, naming the batch size that fits; that batch size streams within the limit (the
    // client's decoder holds it to 1024 bytes too).
    let status = client
        .stream_rankings(stream_request(10, 64))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("ask for batch_size 8 or less"),
        "{status:?}"
    );
    let mut small = server.client_with_limit(1024).await;
    let mut stream = small
        .stream_rankings(stream_request(10, 8))
        .await
        .unwrap()
        .into_inner();
    let mut streamed = 0;
    while let Some(batch) = stream.message().await.unwrap() {
        assert!(batch.rankings.len() <= 8);
        streamed += batch.rankings.len() as u64;
        if batch.next_cursor == batch.total_queries {
            assert_eq!(streamed, batch.total_queries);
        }
    }
    assert!(streamed > 0);
    // The server is unharmed.
    let answer = client.rank(rank(vec![])).await.unwrap().into_inner();
    assert_eq!(answer.items.len(), 5);
}

#[test]
fn unusable_tls_files_stop_the_start_naming_the_flag_and_the_file() {
    let fx = Fixture::new();
    assert_unusable_tls_flags_refused(&Pki::new(), |extra| run_to_refusal(&with(&fx, extra)));
}
