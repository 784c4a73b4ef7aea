//! The approximate index (`--index ann`) in a real student-svc process: built in the
//! background while the exact scan serves, reported by `Info`, answering like the exact scan
//! when every list is probed, rebuilt for a hot-reloaded version before it is swapped in, and
//! bad index flags refused at start-up.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, Server, args, run_to_refusal, user_request};
use rankdistill_core::artifact::load;
use rankdistill_core::topk::top_k;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{SearchIndex, StudentInfoRequest};
use rankdistill_student::kernel::Kernel;
use rankdistill_student::model::{QueryInput, StudentModel};
use tonic::transport::Channel;

async fn index_of(client: &mut StudentServiceClient<Channel>) -> (String, SearchIndex) {
    let info = client
        .info(StudentInfoRequest {})
        .await
        .expect("Info")
        .into_inner();
    (
        info.model.expect("model").version,
        info.index.expect("index"),
    )
}

/// Polls `Info` until the served version `version` reports the approximate index.
async fn wait_for_index(client: &mut StudentServiceClient<Channel>, version: &str) -> SearchIndex {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (served, index) = index_of(client).await;
        if served == version && index.kind == "ivf-flat" {
            return index;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} with the index never served (now {served}, {index:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An MF student over a 3,000-item synthetic catalog, in its own folder.
fn mf_student(fx: &Fixture, seed: u64) -> (std::path::PathBuf, String) {
    let dir = fx.root.join("mf");
    let version = fx.write_mf(&dir, 8, seed).version;
    (dir, version)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_probed_answers_like_the_exact_scan_and_reloads_keep_the_index() {
    let fx = Fixture::with_items(3000);
    let (dir, v1) = mf_student(&fx, 1);
    let server = Server::start_serving(&args(
        &dir,
        &[
            "--index",
            "ann",
            "--ann-lists",
            "16",
            "--ann-probes",
            "16",
            "--watch-interval-ms",
            "50",
        ],
    ))
    .await;
    let mut client = server.client().await;
    let index = wait_for_index(&mut client, &v1).await;
    assert_eq!((index.lists, index.probes), (16, 16));
    assert_eq!(index.recall_at_10, 1.0);
    assert!(index.tuning_queries > 0 && index.build_seconds > 0.0);
    assert_eq!(index.scanned_fraction, 1.0);

    let exact = StudentModel::from_artifact(load(&dir, None).unwrap(), Kernel::Scalar).unwrap();
    for u in [0u32, 3, 8, 21] {
        let got = client
            .recommend(user_request(&fx.user(u), 7))
            .await
            .unwrap()
            .into_inner();
        let scores = exact.score_all(&[QueryInput {
            user: Some(u),
            inputs: vec![],
        }]);
        let want = top_k(&scores[0], 7, |_| false);
        assert_eq!(got.items.len(), 7);
        for (g, (i, s)) in got.items.iter().zip(&want) {
            assert_eq!(g.item_id, fx.item(*i));
            assert!((g.score - s).abs() < 1e-5, "{} vs {s}", g.score);
        }
    }

    // A hot reload builds the new version's index before the swap: the first answer of the
    // new version already comes from it.
    let (_, v2) = mf_student(&fx, 2);
    let index = wait_for_index(&mut client, &v2).await;
    assert_eq!(index.lists, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_keeps_the_exact_scan_for_small_catalogs_and_tunes_probes_to_the_target() {
    let fx = Fixture::with_items(3000);
    let (dir, version) = mf_student(&fx, 3);
    let server = Server::start_serving(&args(&dir, &[])).await;
    let mut client = server.client().await;
    let (_, index) = index_of(&mut client).await;
    assert_eq!(
        (index.kind.as_str(), index.scan.as_str()),
        ("exact", "int8-rescore")
    );
    drop(server);

    let server = Server::start_serving(&args(
        &dir,
        &["--index", "ann", "--ann-target-recall", "0.9"],
    ))
    .await;
    let mut client = server.client().await;
    let index = wait_for_index(&mut client, &version).await;
    assert!(index.recall_at_10 >= 0.9, "{index:?}");
    assert!(
        index.probes >= 1 && index.probes <= index.lists,
        "{index:?}"
    );
}

#[test]
fn bad_index_flags_are_refused() {
    let fx = Fixture::new();
    for (flag, value, needle) in [
        ("--ann-target-recall", "1.5", "outside (0, 1]"),
        ("--ann-target-recall", "0", "outside (0, 1]"),
        ("--index", "hnsw", "possible values: auto, exact, ann"),
        ("--ann-lists", "many", "--ann-lists"),
    ] {
        let (status, stderr) = run_to_refusal(&args(&fx.model, &[flag, value]));
        assert!(!status.success(), "{flag} {value} started");
        assert!(stderr.contains(needle), "{flag} {value}: {stderr}");
    }
}
