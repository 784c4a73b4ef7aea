//! The bad-input matrix of teacher-svc, table-driven against the real binary: Rank,
//! StreamRankings and Info with unknown ids, k out of range, empty, over-long and duplicated
//! lists, shard index >= count, cursors past the end, oversized ids and messages above the
//! 4 MiB decode limit; and broken checkpoints at start-up (wrong shape, missing tensor,
//! truncated weights, NaN weights, damaged manifest). Each row names the status (or exit and
//! stderr) it must get and the words that say what to fix; nothing may panic.

mod common;

use std::collections::HashSet;
use std::path::Path;

use common::{Fixture, Server, args, run_to_refusal};
use rankdistill_core::artifact::{MANIFEST_FILE, WEIGHTS_FILE, weights_version};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{InfoRequest, Query, QueryList, RankRequest, StreamRankingsRequest};
use rankdistill_testkit::table::{
    BadIds, Row, assert_no_failures, error, missing, ok, run_rpc_rows,
};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

const MAX_K: i32 = 50;

type Client = TeacherServiceClient<Channel>;

fn query(user: &str, recent: &[String]) -> Option<Query> {
    Some(Query {
        user_id: user.to_string(),
        recent_items: recent.to_vec(),
    })
}

fn rank(user: &str, recent: &[String], k: i32) -> RankRequest {
    RankRequest {
        query: query(user, recent),
        k,
        ..Default::default()
    }
}

fn stream(k: i32) -> StreamRankingsRequest {
    StreamRankingsRequest {
        k,
        ..Default::default()
    }
}

enum Call {
    Rank(RankRequest),
    Stream(StreamRankingsRequest),
    Info,
}

async fn run(mut client: Client, call: Call) -> Result<Vec<Vec<String>>, tonic::Status> {
    match call {
        Call::Rank(r) => Ok(vec![
            client
                .rank(r)
                .await?
                .into_inner()
                .items
                .into_iter()
                .map(|i| i.item_id)
                .collect(),
        ]),
        Call::Stream(r) => {
            let mut stream = client.stream_rankings(r).await?.into_inner();
            let mut out = Vec::new();
            while let Some(batch) = stream.message().await? {
                for ranking in batch.rankings {
                    out.push(ranking.items.iter().map(|i| i.to_string()).collect());
                }
            }
            Ok(out)
        }
        Call::Info => {
            let info = client.info(InfoRequest {}).await?.into_inner();
            Ok(vec![vec![info.version]])
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_refuses_bad_input_with_a_precise_status() {
    let fx = Fixture::new();
    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend(["--max-k".into(), MAX_K.to_string().into()]);
    let server = Server::start_serving(&a).await;
    let mut client = server.client_with_limit(64 << 20).await;

    let user = fx.user(3);
    let ids = BadIds::new(fx.dataset.split.items.clone());
    let (all_items, item) = (ids.all_items.clone(), ids.all_items[0].clone());
    let excluded = all_items[..5].to_vec();
    let excluded_check = excluded.clone();
    let total = rankdistill_core::instances::Instances::build(
        &fx.dataset.split.train,
        rankdistill_core::instances::WindowConfig {
            sequence_length: common::L,
            target_length: 1,
            ..Default::default()
        },
    )
    .len() as u64;
    let explicit = |queries: Vec<Query>| StreamRankingsRequest {
        explicit: Some(QueryList { queries }),
        ..stream(5)
    };
    let q = |user: &str, recent: &[String]| query(user, recent).unwrap();

    let rows = vec![
        // --- Rank: ids ---
        Row {
            name: "unknown user",
            call: Call::Rank(rank("nobody", &[], 10)),
            expect: error(Code::NotFound, &["unknown user id 'nobody'"]),
        },
        Row {
            name: "empty user id",
            call: Call::Rank(rank("", std::slice::from_ref(&item), 10)),
            expect: error(Code::InvalidArgument, &["query.user_id is required"]),
        },
        Row {
            name: "no query",
            call: Call::Rank(RankRequest {
                query: None,
                ..rank(&user, &[], 10)
            }),
            expect: error(Code::InvalidArgument, &["query is required"]),
        },
        Row {
            name: "unknown recent item",
            call: Call::Rank(rank(&user, &[item.clone(), "no-such-item".into()], 10)),
            expect: error(
                Code::InvalidArgument,
                &["query.recent_items: unknown item id 'no-such-item'"],
            ),
        },
        Row {
            name: "unknown excluded item",
            call: Call::Rank(RankRequest {
                exclude_items: vec!["ghost".into()],
                ..rank(&user, &[], 10)
            }),
            expect: error(
                Code::InvalidArgument,
                &["exclude_items: unknown item id 'ghost'"],
            ),
        },
        Row {
            name: "user id of 1 MiB: quoted by its start and length",
            call: Call::Rank(rank(&ids.long_id, &[], 10)),
            expect: error(
                Code::NotFound,
                &["unknown user id 'uuuuuuuu", "(1048576 bytes)"],
            ),
        },
        Row {
            name: "excluded id of 1 MiB",
            call: Call::Rank(RankRequest {
                exclude_items: vec![ids.long_id.clone()],
                ..rank(&user, &[], 10)
            }),
            expect: error(
                Code::InvalidArgument,
                &["exclude_items: unknown item id 'uuu", "(1048576 bytes)"],
            ),
        },
        // --- Rank: k ---
        Row {
            name: "k = 0",
            call: Call::Rank(rank(&user, &[], 0)),
            expect: error(
                Code::InvalidArgument,
                &["k must be between 1 and 50 (the server's --max-k), got 0"],
            ),
        },
        Row {
            name: "k negative",
            call: Call::Rank(rank(&user, &[], -3)),
            expect: error(Code::InvalidArgument, &["got -3"]),
        },
        Row {
            name: "k = i32::MIN",
            call: Call::Rank(rank(&user, &[], i32::MIN)),
            expect: error(Code::InvalidArgument, &["got -2147483648"]),
        },
        Row {
            name: "k one above --max-k",
            call: Call::Rank(rank(&user, &[], MAX_K + 1)),
            expect: error(Code::InvalidArgument, &["got 51"]),
        },
        Row {
            name: "k = i32::MAX",
            call: Call::Rank(rank(&user, &[], i32::MAX)),
            expect: error(Code::InvalidArgument, &["got 2147483647"]),
        },
        Row {
            name: "k = --max-k is served",
            call: Call::Rank(rank(&user, &[], MAX_K)),
            expect: ok(|r| assert_eq!(r[0].len(), MAX_K as usize)),
        },
        // --- Rank: lists ---
        Row {
            name: "empty recent items: the user's last L training items",
            call: Call::Rank(rank(&user, &[], 10)),
            expect: ok(|r| assert_eq!(r[0].len(), 10)),
        },
        Row {
            name: "over-long recent items (200,000 ids): the last L count",
            call: Call::Rank(rank(&user, &ids.long_recent, 10)),
            expect: ok(|r| assert_eq!(r[0].len(), 10)),
        },
        Row {
            name: "over-long recent items with an unknown id far back",
            call: Call::Rank(rank(&user, &ids.long_recent_bad_start, 10)),
            expect: error(Code::InvalidArgument, &["unknown item id 'ghost-item'"]),
        },
        Row {
            name: "duplicate excludes",
            call: Call::Rank(RankRequest {
                exclude_items: excluded
                    .iter()
                    .chain(&excluded)
                    .chain(&excluded)
                    .cloned()
                    .collect(),
                ..rank(&user, &[], 10)
            }),
            expect: ok(move |r| {
                assert_eq!(r[0].len(), 10);
                assert_eq!(r[0].iter().collect::<HashSet<_>>().len(), 10, "{:?}", r[0]);
                assert!(
                    r[0].iter().all(|i| !excluded_check.contains(i)),
                    "{:?}",
                    r[0]
                );
            }),
        },
        Row {
            name: "every item excluded: an empty ranking, never an excluded item",
            call: Call::Rank(RankRequest {
                exclude_items: all_items.clone(),
                ..rank(&user, &[], 10)
            }),
            expect: ok(|r| assert!(r[0].is_empty(), "{:?}", r[0])),
        },
        Row {
            name: "message above the 4 MiB decode limit",
            call: Call::Rank(rank(&user, &ids.too_big, 10)),
            expect: error(
                Code::OutOfRange,
                &["message length too large", "the limit is: 4194304 bytes"],
            ),
        },
        // --- StreamRankings ---
        Row {
            name: "shard index = count",
            call: Call::Stream(StreamRankingsRequest {
                shard_index: 3,
                shard_count: 3,
                ..stream(5)
            }),
            expect: error(
                Code::InvalidArgument,
                &["shard_index 3 must be below shard_count 3"],
            ),
        },
        Row {
            name: "shard index with shard count 0 (= 1)",
            call: Call::Stream(StreamRankingsRequest {
                shard_index: 1,
                ..stream(5)
            }),
            expect: error(
                Code::InvalidArgument,
                &["shard_index 1 must be below shard_count 1"],
            ),
        },
        Row {
            name: "shard index u32::MAX",
            call: Call::Stream(StreamRankingsRequest {
                shard_index: u32::MAX,
                shard_count: u32::MAX,
                ..stream(5)
            }),
            expect: error(Code::InvalidArgument, &["shard_index 4294967295"]),
        },
        Row {
            name: "shard count u32::MAX: one query in shard 0",
            call: Call::Stream(StreamRankingsRequest {
                shard_index: 0,
                shard_count: u32::MAX,
                ..stream(5)
            }),
            expect: ok(|r| assert_eq!(r.len(), 1)),
        },
        Row {
            name: "stream k = 0",
            call: Call::Stream(stream(0)),
            expect: error(Code::InvalidArgument, &["k must be between 1 and 50"]),
        },
        Row {
            name: "stream k negative",
            call: Call::Stream(stream(-5)),
            expect: error(Code::InvalidArgument, &["got -5"]),
        },
        Row {
            name: "stream k above --max-k",
            call: Call::Stream(stream(1000)),
            expect: error(Code::InvalidArgument, &["got 1000"]),
        },
        Row {
            name: "batch size above the limit",
            call: Call::Stream(StreamRankingsRequest {
                batch_size: 4097,
                ..stream(5)
            }),
            expect: error(
                Code::InvalidArgument,
                &["batch_size 4097 is above the server's limit 4096"],
            ),
        },
        Row {
            name: "cursor past the end",
            call: Call::Stream(StreamRankingsRequest {
                cursor: total + 1,
                ..stream(5)
            }),
            expect: error(
                Code::InvalidArgument,
                &[
                    "is past the end of the query space",
                    "resume from a next_cursor",
                ],
            ),
        },
        Row {
            name: "cursor u64::MAX",
            call: Call::Stream(StreamRankingsRequest {
                cursor: u64::MAX,
                ..stream(5)
            }),
            expect: error(Code::InvalidArgument, &["cursor 18446744073709551615"]),
        },
        Row {
            name: "cursor at the end: nothing left",
            call: Call::Stream(StreamRankingsRequest {
                cursor: total,
                ..stream(5)
            }),
            expect: ok(|r| assert!(r.is_empty())),
        },
        Row {
            name: "target length above the limit",
            call: Call::Stream(StreamRankingsRequest {
                target_length: 257,
                ..stream(5)
            }),
            expect: error(Code::InvalidArgument, &["target_length 257 is above 256"]),
        },
        Row {
            name: "target length u32::MAX",
            call: Call::Stream(StreamRankingsRequest {
                target_length: u32::MAX,
                ..stream(5)
            }),
            expect: error(Code::InvalidArgument, &["target_length 4294967295"]),
        },
        Row {
            name: "other data fingerprint",
            call: Call::Stream(StreamRankingsRequest {
                expected_data_fingerprint: "deadbeef".into(),
                ..stream(5)
            }),
            expect: error(Code::FailedPrecondition, &["the request expects deadbeef"]),
        },
        Row {
            name: "fingerprint of 1 MiB",
            call: Call::Stream(StreamRankingsRequest {
                expected_data_fingerprint: ids.long_id.clone(),
                ..stream(5)
            }),
            expect: error(Code::FailedPrecondition, &["(1048576 bytes)"]),
        },
        Row {
            name: "explicit empty list: nothing to stream",
            call: Call::Stream(explicit(vec![])),
            expect: ok(|r| assert!(r.is_empty())),
        },
        Row {
            name: "explicit list with an unknown user",
            call: Call::Stream(explicit(vec![q(&user, &[]), q("ghost-user", &[])])),
            expect: error(
                Code::NotFound,
                &["explicit.queries[1]: unknown user id 'ghost-user'"],
            ),
        },
        Row {
            name: "explicit list with an unknown item",
            call: Call::Stream(explicit(vec![q(&user, &["nope".into()])])),
            expect: error(
                Code::InvalidArgument,
                &["explicit.queries[0]: query.recent_items: unknown item id 'nope'"],
            ),
        },
        Row {
            name: "explicit list with an empty user id",
            call: Call::Stream(explicit(vec![q(&user, &[]), q(&user, &[]), q("", &[])])),
            expect: error(
                Code::InvalidArgument,
                &["explicit.queries[2]: query.user_id is required"],
            ),
        },
        Row {
            name: "explicit list with duplicate queries",
            call: Call::Stream(explicit(vec![q(&user, &[]); 4])),
            expect: ok(|r| {
                assert_eq!(r.len(), 4);
                assert!(r.iter().all(|x| x == &r[0] && x.len() == 5));
            }),
        },
        Row {
            name: "explicit list with a cursor past its end",
            call: Call::Stream(StreamRankingsRequest {
                cursor: 3,
                ..explicit(vec![q(&user, &[])])
            }),
            expect: error(
                Code::InvalidArgument,
                &["cursor 3 is past the end", "(1 queries)"],
            ),
        },
        Row {
            name: "explicit list above the 4 MiB decode limit",
            call: Call::Stream(explicit(vec![q(&user, &ids.too_big)])),
            expect: error(Code::OutOfRange, &["the limit is: 4194304 bytes"]),
        },
        // --- Info (no input) ---
        Row {
            name: "info",
            call: Call::Info,
            expect: ok(|r| assert!(!r[0][0].is_empty())),
        },
    ];

    run_rpc_rows(rows, |call| run(client.clone(), call)).await;
    let answer = client.rank(rank(&user, &[], 3)).await.unwrap().into_inner();
    assert_eq!(answer.items.len(), 3);
}

/// Copies the fixture checkpoint to `dest` and breaks it.
fn broken_copy(fx: &Fixture, dest: &Path, edit: impl FnOnce(&mut Value, &mut Vec<u8>, &Path)) {
    std::fs::create_dir_all(dest).unwrap();
    let mut manifest: Value =
        serde_json::from_slice(&std::fs::read(fx.checkpoint.join(MANIFEST_FILE)).unwrap()).unwrap();
    let mut weights = std::fs::read(fx.checkpoint.join(WEIGHTS_FILE)).unwrap();
    edit(&mut manifest, &mut weights, dest);
    std::fs::write(dest.join(WEIGHTS_FILE), &weights).unwrap();
    std::fs::write(
        dest.join(MANIFEST_FILE),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
}

/// Rewrites the safetensors file through `edit` (name, shape, f32 values), rehashing.
fn edit_tensors(
    manifest: &mut Value,
    weights: &mut Vec<u8>,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>),
) {
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> =
        rankdistill_testkit::weights::deserialize(weights)
            .into_iter()
            .map(|(name, _, shape, bytes)| {
                let values = bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                (name, shape, values)
            })
            .collect();
    edit(&mut tensors);
    *weights = rankdistill_testkit::weights::serialize_f32(
        tensors
            .into_iter()
            .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
            .collect(),
    );
    manifest["version"] = json!(weights_version(weights));
}

/// A way to break a checkpoint and what the refusal must say.
type Breakage = (
    &'static str,
    Box<dyn FnOnce(&mut Value, &mut Vec<u8>, &Path)>,
    &'static [&'static str],
);

#[test]
fn broken_checkpoints_are_refused_at_start_up_with_the_reason() {
    let fx = Fixture::new();
    let cases: Vec<Breakage> = vec![
        (
            "wrong shape (manifest dim 9, weights of dim 8)",
            Box::new(|m, _, _| m["model"]["dim"] = json!(9)),
            &["weights do not fit the manifest's model"],
        ),
        (
            "missing tensor",
            Box::new(|m, w, _| edit_tensors(m, w, |t| t.retain(|x| x.0 != "fc1.bias"))),
            &["weights do not fit the manifest's model", "fc1.bias"],
        ),
        (
            "mis-shaped tensor",
            Box::new(|m, w, _| {
                edit_tensors(m, w, |t| {
                    let b = t.iter_mut().find(|x| x.0 == "b2.weight").unwrap();
                    b.1 = vec![b.1[0] - 1, 1];
                    b.2.pop();
                })
            }),
            &["weights do not fit the manifest's model"],
        ),
        (
            "NaN weights",
            Box::new(|m, w, _| {
                edit_tensors(m, w, |t| {
                    t.iter_mut().find(|x| x.0 == "W2.weight").unwrap().2[7] = f32::NAN
                })
            }),
            &["tensor 'W2.weight' holds NaN or infinite values", "retrain"],
        ),
        (
            "infinite weights",
            Box::new(|m, w, _| {
                edit_tensors(m, w, |t| {
                    t.iter_mut()
                        .find(|x| x.0 == "user_embeddings.weight")
                        .unwrap()
                        .2[0] = f32::NEG_INFINITY
                })
            }),
            &["tensor 'user_embeddings.weight' holds NaN or infinite values"],
        ),
        (
            "truncated weights (the manifest names the full file)",
            Box::new(|_, w, _| w.truncate(w.len() / 2)),
            &["does not match the manifest's version", "corrupt"],
        ),
        (
            "truncated weights (hashed after truncation)",
            Box::new(|m, w, _| {
                w.truncate(w.len() - 3);
                m["version"] = json!(weights_version(w));
            }),
            &["weights do not fit the manifest's model"],
        ),
        (
            "manifest format version 2",
            Box::new(|m, _, _| m["format_version"] = json!(2)),
            &["format version 2 is not supported"],
        ),
        (
            "manifest with an astronomical item count",
            Box::new(|m, _, _| m["model"]["num_items"] = json!(i64::MAX)),
            &["num_items 9223372036854775807 is too large"],
        ),
        (
            "manifest for other data",
            Box::new(|m, _, _| m["data"]["fingerprint"] = json!("0000")),
            &[
                "fingerprint 0000",
                "serve it with the dataset it was trained on",
            ],
        ),
        (
            "manifest truncated",
            Box::new(|m, _, dir| {
                *m = json!({});
                std::fs::write(dir.join("marker"), b"").unwrap();
            }),
            &["not an artifact manifest", "missing field"],
        ),
    ];
    let n = cases.len();
    let mut failures = Vec::new();
    for (i, (name, edit, needles)) in cases.into_iter().enumerate() {
        let dir = fx.root.join(format!("broken-{i}"));
        broken_copy(&fx, &dir, edit);
        let (status, stderr) = run_to_refusal(&args(&fx.data, &dir));
        assert!(!stderr.contains("panicked"), "{name}: panicked:\n{stderr}");
        let missing = missing(&stderr, needles);
        if status.success() || !missing.is_empty() {
            failures.push(format!(
                "{name}: exit {status:?}, missing {missing:?} in:\n{stderr}"
            ));
        }
    }
    assert_no_failures(&failures, n, "\n\n");
}
