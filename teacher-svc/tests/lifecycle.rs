//! Life cycle of the teacher-svc process: health NOT_SERVING while the model loads, SERVING
//! after warm-up, admission control on streams, and on SIGTERM: NOT_SERVING while draining,
//! the open stream ends at a message boundary with its resume cursor, exit status 0.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use common::{Fixture, SERVICE, Server, args};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{InfoRequest, StreamRankingsRequest};
use tonic::Code;
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_loading_and_sigterm_drains_then_exits_zero() {
    let fx = Fixture::new();
    // A checkpoint whose manifest is a FIFO: loading blocks until the test feeds it, so the
    // NOT_SERVING phase is observed deterministically (as with a slow model store).
    let slow = fx.root.join("slow-checkpoint");
    std::fs::create_dir(&slow).unwrap();
    for entry in std::fs::read_dir(&fx.checkpoint).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), slow.join(entry.file_name())).unwrap();
    }
    let manifest = slow.join("manifest.json");
    let manifest_bytes = std::fs::read(&manifest).unwrap();
    std::fs::remove_file(&manifest).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&manifest)
            .status()
            .unwrap()
            .success()
    );

    let mut a = args(&fx.data, &slow);
    a.extend([
        "--drain-delay-ms".into(),
        "500".into(),
        "--max-streams".into(),
        "1".into(),
        "--stream-buffer".into(),
        "1".into(),
    ]);
    let mut server = Server::start(&a);
    assert_eq!(server.health("").await.unwrap(), ServingStatus::NotServing);
    assert_eq!(
        server.health(SERVICE).await.unwrap(),
        ServingStatus::NotServing
    );
    let status = server
        .client()
        .await
        .info(InfoRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // Feed the manifest (opening blocks until the server reads) and wait for SERVING.
    std::thread::spawn(move || {
        if let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&manifest) {
            let _ = fifo.write_all(&manifest_bytes);
        }
    });
    server.wait_for_health(ServingStatus::Serving).await;

    // A stream read slowly: a small HTTP/2 window keeps the server from running ahead.
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
    let mut stream = client
        .stream_rankings(request.clone())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    let total = first.total_queries;
    assert!(total > 100, "the fixture needs a long stream, has {total}");

    // Admission control: --max-streams 1.
    let refused = server
        .client()
        .await
        .stream_rankings(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");

    // SIGTERM: NOT_SERVING first, still answering for the drain delay; then the listener
    // closes and the open stream is cut at a message boundary.
    server.sigterm();
    server.wait_for_health(ServingStatus::NotServing).await;
    server.wait_until_unreachable().await;

    let mut last_cursor = first.next_cursor;
    let end = loop {
        match stream.message().await {
            Ok(Some(batch)) => last_cursor = batch.next_cursor,
            Ok(None) => {
                panic!("the stream ended as if complete at cursor {last_cursor} of {total}")
            }
            Err(status) => break status,
        }
    };
    assert!(last_cursor < total);
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(
        end.message()
            .contains(&format!("resume with cursor {last_cursor}")),
        "{end:?}"
    );
    let exit = server.wait_exit(Duration::from_secs(30));
    assert!(exit.success(), "exit status {exit:?}");
}
