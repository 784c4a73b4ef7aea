//! rd-loadgen against real student-svc replicas: with several `--addr` replicas it balances by
//! health, so a replica that drains after SIGTERM (NOT_SERVING while it still answers for
//! `--drain-delay-ms`) leaves the rotation before it closes, and no request fails.

mod common;

use std::time::Duration;

use common::{Fixture, Server, args};
use rankdistill_testkit::health::ServingStatus;
use rankdistill_testkit::path_arg as path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_drained_under_balanced_load_fails_no_request() {
    let fx = Fixture::new();
    let extra = ["--drain-delay-ms", "2000"];
    let first = Server::start(&args(&fx.model, &extra));
    let second = Server::start(&args(&fx.model, &extra));
    first.wait_for_health(ServingStatus::Serving).await;
    second.wait_for_health(ServingStatus::Serving).await;
    let mut loadgen = common::loadgen();
    let child = loadgen
        .args(["--addr", &format!("{},{}", first.url(), second.url())])
        .args(["--data", &path(&fx.data)])
        .args(["--duration-s", "6", "--warmup-s", "0", "--concurrency", "2"])
        .args(["--health-interval-ms", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start rd-loadgen");
    // Let both replicas take load, then drain the first while the load goes on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.sigterm();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("rd-loadgen output");
    let report = common::loadgen_report(&out);
    assert_eq!(report["errors"], 0, "{report}");
    let by_addr = &report["ok_by_addr"];
    assert!(by_addr[first.url()].as_u64().unwrap() > 0, "{report}");
    assert!(by_addr[second.url()].as_u64().unwrap() > 0, "{report}");
    assert!(
        by_addr[second.url()].as_u64() > by_addr[first.url()].as_u64(),
        "the drained replica left the rotation: {report}"
    );
}
