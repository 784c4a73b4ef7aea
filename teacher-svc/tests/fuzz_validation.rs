//! Property-based fuzzing of teacher-svc's request validation against the real binary: random
//! Rank requests and StreamRankings requests (shards, cursors, batch sizes, target lengths,
//! explicit lists) get a valid answer or INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION
//! with a short message, never INTERNAL, and the server stays up. A fixed case budget runs in
//! CI; `PROPTEST_CASES=N` raises it (`scripts/fuzz.sh`).

mod common;

use std::collections::HashSet;

use common::{Fixture, Server, args};
use proptest::prelude::*;
use rankdistill_proto::v1::{Query, QueryList, RankRequest, StreamRankingsRequest};
use rankdistill_testkit::fuzz::{config, query};
use tonic::Code;

fn raw_id(fx: &Fixture) -> impl Strategy<Value = String> + use<> {
    prop_oneof![
        3 => proptest::sample::select(fx.dataset.split.users.clone()),
        3 => proptest::sample::select(fx.dataset.split.items.clone()),
        1 => Just(String::new()),
        1 => "[0-9]{1,4}",
        1 => "\\PC{1,12}",
        1 => (1usize..3000).prop_map(|n| "7".repeat(n)),
    ]
}

fn ids(fx: &Fixture, max: usize) -> impl Strategy<Value = Vec<String>> + use<> {
    proptest::collection::vec(raw_id(fx), 0..max)
}

fn k() -> impl Strategy<Value = i32> {
    prop_oneof![4 => 1i32..60, 1 => any::<i32>(), 1 => Just(0)]
}

fn rank(fx: &Fixture) -> impl Strategy<Value = RankRequest> + use<> {
    (
        query(raw_id(fx), ids(fx, 8)),
        k(),
        ids(fx, 8),
        any::<bool>(),
    )
        .prop_map(|(query, k, exclude_items, exclude_seen)| RankRequest {
            query,
            k,
            exclude_items,
            exclude_seen,
        })
}

fn stream(fx: &Fixture) -> impl Strategy<Value = StreamRankingsRequest> + use<> {
    let small = |hi: u32| prop_oneof![3 => 0..hi, 1 => any::<u32>()];
    (
        k(),
        (small(4), small(4)),
        prop_oneof![3 => 0u64..400, 1 => any::<u64>()],
        small(64),
        prop_oneof![
            Just(String::new()),
            Just(fx.dataset.manifest.fingerprint.clone()),
            "[0-9a-f]{0,40}"
        ],
        any::<bool>(),
        proptest::option::of(proptest::collection::vec((raw_id(fx), ids(fx, 6)), 0..6)),
        small(4),
    )
        .prop_map(
            |(
                k,
                (shard_index, shard_count),
                cursor,
                batch_size,
                fingerprint,
                exclude_seen,
                explicit,
                target_length,
            )| {
                StreamRankingsRequest {
                    k,
                    shard_index,
                    shard_count,
                    cursor,
                    batch_size,
                    expected_data_fingerprint: fingerprint,
                    exclude_seen,
                    explicit: explicit.map(|qs| QueryList {
                        queries: qs
                            .into_iter()
                            .map(|(user_id, recent_items)| Query {
                                user_id,
                                recent_items,
                            })
                            .collect(),
                    }),
                    target_length,
                    ..Default::default()
                }
            },
        )
}

fn refused_precisely(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition
    ) && s.message().len() < 400
}

#[test]
fn the_server_answers_any_request_precisely() {
    let fx = Fixture::new();
    let runtime = rankdistill_testkit::runtime::runtime();
    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend(["--max-k".into(), "50".into()]);
    let server = runtime.block_on(Server::start_serving(&a));
    let client = runtime.block_on(server.client());
    let mut runner = proptest::test_runner::TestRunner::new(config(96));
    runner
        .run(&(rank(&fx), stream(&fx)), |(r, s)| {
            let mut c = client.clone();
            match runtime.block_on(c.rank(r.clone())) {
                Ok(answer) => {
                    let items: Vec<String> = answer
                        .into_inner()
                        .items
                        .into_iter()
                        .map(|i| i.item_id)
                        .collect();
                    prop_assert!(items.len() <= r.k as usize);
                    prop_assert_eq!(items.iter().collect::<HashSet<_>>().len(), items.len());
                    prop_assert!(items.iter().all(|i| !r.exclude_items.contains(i)));
                }
                Err(status) => prop_assert!(refused_precisely(&status), "{status:?}"),
            }
            let outcome = runtime.block_on(async {
                let mut stream = c.stream_rankings(s.clone()).await?.into_inner();
                let mut batches = Vec::new();
                while let Some(batch) = stream.message().await? {
                    batches.push(batch);
                }
                Ok::<_, tonic::Status>(batches)
            });
            match outcome {
                Ok(batches) => {
                    let count = s.shard_count.max(1) as u64;
                    let mut indices = Vec::new();
                    for batch in batches {
                        prop_assert!(batch.next_cursor <= batch.total_queries);
                        for ranking in batch.rankings {
                            prop_assert!(ranking.items.len() <= s.k as usize);
                            prop_assert_eq!(ranking.items.len(), ranking.scores.len());
                            indices.push(ranking.query_index);
                        }
                    }
                    prop_assert!(indices.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(
                        indices
                            .iter()
                            .all(|&i| i % count == s.shard_index as u64 && i >= s.cursor)
                    );
                }
                Err(status) => prop_assert!(refused_precisely(&status), "{status:?}"),
            }
            Ok(())
        })
        .unwrap();
    let text = runtime.block_on(server.metrics());
    assert!(!text.contains(r#"code="INTERNAL""#), "{text}");
    assert!(!text.contains(r#"code="UNKNOWN""#), "{text}");
}
