//! Client deadlines on teacher-svc streams, against the real binary: a StreamRankings call
//! whose deadline passes mid-stream ends with DEADLINE_EXCEEDED at a message boundary, names
//! the cursor to resume from, frees its stream slot and stops computing; resuming from that
//! cursor yields exactly the rest (nothing lost, nothing twice).
//!
//! A teacher killed mid-stream and restarted is `trainer/tests/distill.rs`; SIGTERM while a
//! stream is open is `tests/lifecycle.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, Server, args};
use rankdistill_proto::v1::StreamRankingsRequest;
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use tonic::Code;
use tonic::transport::Endpoint;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_past_its_deadline_stops_and_resumes_without_loss() {
    let fx = Fixture::new();
    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend([
        "--max-streams".into(),
        "1".into(),
        "--stream-buffer".into(),
        "1".into(),
    ]);
    let server = Server::start_serving(&a).await;
    // A slow reader: a small HTTP/2 window keeps the server from running ahead.
    let channel = Endpoint::from_shared(server.url())
        .unwrap()
        .initial_stream_window_size(Some(2048))
        .connect()
        .await
        .unwrap();
    let mut client = TeacherServiceClient::new(channel);
    let request = StreamRankingsRequest {
        k: 30,
        batch_size: 1,
        ..Default::default()
    };
    let timeout = Duration::from_millis(800);
    let mut call = tonic::Request::new(request.clone());
    call.set_timeout(timeout);
    let started = Instant::now();
    let mut stream = client.stream_rankings(call).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let total = first.total_queries;
    assert!(total > 100, "the fixture needs a long stream, has {total}");
    let mut seen: Vec<u64> = first.rankings.iter().map(|r| r.query_index).collect();
    let mut last_cursor = first.next_cursor;
    // Let the deadline pass without reading, then drain what was already on its way.
    tokio::time::sleep(timeout.saturating_sub(started.elapsed()) + Duration::from_millis(300))
        .await;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.message())
            .await
            .expect("the stream hung after its deadline")
        {
            Ok(Some(batch)) => {
                seen.extend(batch.rankings.iter().map(|r| r.query_index));
                last_cursor = batch.next_cursor;
            }
            Ok(None) => panic!("the stream ran to the end ({total}) despite its deadline"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::DeadlineExceeded, "{end:?}");
    assert!(
        end.message()
            .contains(&format!("resume with cursor {last_cursor}")),
        "{end:?}"
    );
    assert!(last_cursor < total);

    // The slot is free again (--max-streams 1) and the rest streams from the cursor.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rest = loop {
        match server
            .client()
            .await
            .stream_rankings(StreamRankingsRequest {
                cursor: last_cursor,
                ..request.clone()
            })
            .await
        {
            Ok(stream) => break stream.into_inner(),
            Err(s) if s.code() == Code::ResourceExhausted && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(s) => panic!("cannot resume: {s:?}"),
        }
    };
    while let Some(batch) = rest.message().await.unwrap() {
        seen.extend(batch.rankings.iter().map(|r| r.query_index));
    }
    assert_eq!(
        seen,
        (0..total).collect::<Vec<_>>(),
        "every query exactly once"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(
            r#"teacher_requests_total{code="DEADLINE_EXCEEDED",method="StreamRankings"} 1"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains("teacher_active_streams 0"), "{metrics}");
}
