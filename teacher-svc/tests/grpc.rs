//! The teacher-svc binary serving a native checkpoint, called through the generated clients:
//! Info, Rank, StreamRankings (shards, resume, parity with Rank), ScoreItems (parity with the
//! stream), precise errors, metrics, reflection, and refusing data it was not trained on.

mod common;

use std::collections::HashSet;

use common::{Fixture, L, SERVICE, Server, args, assert_same_ranking, run_to_refusal};
use rankdistill_core::instances::{Instances, PAD, QuerySet, WindowConfig};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{
    InfoRequest, Query, QueryItems, QueryList, QueryRanking, RankRequest, RankingBatch,
    ScoreItemsRequest, StreamRankingsRequest, TrainingQuerySet,
};
use rankdistill_testkit::reflection::list_services_v1alpha;
use tonic::Code;
use tonic::transport::Channel;

type Client = TeacherServiceClient<Channel>;

fn query(user: String, recent: Vec<String>) -> Option<Query> {
    Some(Query {
        user_id: user,
        recent_items: recent,
    })
}

async fn rank(
    client: &mut Client,
    request: RankRequest,
) -> Result<Vec<(String, f32)>, tonic::Status> {
    let response = client.rank(request).await?.into_inner();
    Ok(response
        .items
        .into_iter()
        .map(|item| (item.item_id, item.score))
        .collect())
}

async fn stream(
    client: &mut Client,
    request: StreamRankingsRequest,
) -> Result<Vec<RankingBatch>, tonic::Status> {
    let mut stream = client.stream_rankings(request).await?.into_inner();
    let mut batches = Vec::new();
    while let Some(batch) = stream.message().await? {
        batches.push(batch);
    }
    Ok(batches)
}

fn flatten(batches: &[RankingBatch]) -> Vec<QueryRanking> {
    batches.iter().flat_map(|b| b.rankings.clone()).collect()
}

/// A dense ranking with items as strings, for `assert_same_ranking`.
fn dense(r: &QueryRanking) -> Vec<(String, f32)> {
    r.items
        .iter()
        .map(|i| i.to_string())
        .zip(r.scores.iter().copied())
        .collect()
}

fn assert_same_rankings(a: &[QueryRanking], b: &[QueryRanking], context: &str) {
    assert_eq!(a.len(), b.len(), "{context}: query counts differ");
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.query_index, y.query_index, "{context}");
        assert_same_ranking(
            &dense(x),
            &dense(y),
            &format!("{context}, query {}", x.query_index),
        );
    }
}

fn expect_code<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, needle: &str) {
    let status = result.expect_err("expected an error status");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(needle),
        "message {:?} should mention {needle:?}",
        status.message()
    );
}

/// Asserts that `Rank` for training query `i`'s user on `recent` (raw ids), its target
/// excluded, gives the streamed ranking `streamed` (same length).
async fn assert_rank_agrees(
    client: &mut Client,
    fx: &Fixture,
    instances: &Instances,
    i: usize,
    recent: Vec<String>,
    streamed: &QueryRanking,
    context: &str,
) {
    let ranked = rank(
        client,
        RankRequest {
            query: query(fx.user(instances.users[i]), recent),
            k: streamed.items.len() as i32,
            exclude_items: vec![fx.item(instances.target(i)[0])],
            exclude_seen: false,
        },
    )
    .await
    .unwrap();
    let got: Vec<(String, f32)> = streamed
        .items
        .iter()
        .map(|&item| fx.item(item))
        .zip(streamed.scores.iter().copied())
        .collect();
    assert_same_ranking(&ranked, &got, context);
}

fn stream_request(k: i32, batch_size: u32) -> StreamRankingsRequest {
    StreamRankingsRequest {
        k,
        batch_size,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_rank_errors_and_metrics() {
    let fx = Fixture::new();
    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend(["--max-k".into(), "50".into()]);
    let server = Server::start_serving(&a).await;
    let mut client = server.client().await;

    let info = client.info(InfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.model_kind, "caser");
    assert_eq!(info.dim, 8);
    assert_eq!(info.num_items as usize, fx.dataset.num_items());
    assert_eq!(info.num_users as usize, fx.dataset.num_users());
    assert_eq!(info.sequence_length as usize, L);
    assert_eq!(info.version, fx.manifest.version);
    assert_eq!(info.data_fingerprint, fx.dataset.manifest.fingerprint);
    assert_eq!(info.num_parameters, fx.manifest.num_parameters as u64);
    assert_eq!(info.device, "cpu");

    let user = fx.user(3);
    let plain = RankRequest {
        query: query(user.clone(), vec![]),
        k: 10,
        ..Default::default()
    };
    let mut ok_ranks = 0;
    let top = rank(&mut client, plain.clone()).await.unwrap();
    ok_ranks += 1;
    assert_eq!(top.len(), 10);
    assert!(
        top.windows(2).all(|w| w[0].1 >= w[1].1),
        "best first: {top:?}"
    );
    let distinct: HashSet<&String> = top.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 10);
    let response = client.rank(plain.clone()).await.unwrap().into_inner();
    ok_ranks += 1;
    assert_eq!(response.model_version, fx.manifest.version);

    // Empty recent_items means the user's last L training items.
    let train = &fx.dataset.split.train[3];
    let last: Vec<String> = train[train.len().saturating_sub(L)..]
        .iter()
        .map(|&i| fx.item(i))
        .collect();
    let explicit = rank(
        &mut client,
        RankRequest {
            query: query(user.clone(), last),
            ..plain.clone()
        },
    )
    .await
    .unwrap();
    ok_ranks += 1;
    assert_same_ranking(
        &top,
        &explicit,
        "empty recent_items = last L training items",
    );

    // Longer recent_items: only the last L count.
    let recent: Vec<String> = (0..8).map(|i| fx.item(i)).collect();
    let long = rank(
        &mut client,
        RankRequest {
            query: query(user.clone(), recent.clone()),
            ..plain.clone()
        },
    )
    .await
    .unwrap();
    let short = rank(
        &mut client,
        RankRequest {
            query: query(user.clone(), recent[8 - L..].to_vec()),
            ..plain.clone()
        },
    )
    .await
    .unwrap();
    ok_ranks += 2;
    assert_same_ranking(&long, &short, "recent_items beyond L are ignored");

    // Exclusions.
    let seen: HashSet<String> = train.iter().map(|&i| fx.item(i)).collect();
    let unseen = rank(
        &mut client,
        RankRequest {
            exclude_seen: true,
            ..plain.clone()
        },
    )
    .await
    .unwrap();
    ok_ranks += 1;
    assert_eq!(unseen.len(), 10);
    assert!(
        unseen.iter().all(|(id, _)| !seen.contains(id)),
        "{unseen:?}"
    );
    let excluded: Vec<String> = top[..3].iter().map(|(id, _)| id.clone()).collect();
    let rest = rank(
        &mut client,
        RankRequest {
            exclude_items: excluded.clone(),
            ..plain.clone()
        },
    )
    .await
    .unwrap();
    ok_ranks += 1;
    assert!(rest.iter().all(|(id, _)| !excluded.contains(id)));
    assert_eq!(rest[0], top[3]);

    // Precise errors.
    expect_code(
        rank(
            &mut client,
            RankRequest {
                query: query("nobody".into(), vec![]),
                ..plain.clone()
            },
        )
        .await,
        Code::NotFound,
        "'nobody'",
    );
    for k in [0, -3, 51] {
        expect_code(
            rank(&mut client, RankRequest { k, ..plain.clone() }).await,
            Code::InvalidArgument,
            "between 1 and 50",
        );
    }
    expect_code(
        rank(
            &mut client,
            RankRequest {
                query: query(user.clone(), vec![fx.item(0), "no-such-item".into()]),
                ..plain.clone()
            },
        )
        .await,
        Code::InvalidArgument,
        "'no-such-item'",
    );
    expect_code(
        rank(
            &mut client,
            RankRequest {
                exclude_items: vec!["ghost".into()],
                ..plain.clone()
            },
        )
        .await,
        Code::InvalidArgument,
        "exclude_items: unknown item id 'ghost'",
    );
    expect_code(
        rank(
            &mut client,
            RankRequest {
                query: None,
                ..plain.clone()
            },
        )
        .await,
        Code::InvalidArgument,
        "query is required",
    );
    expect_code(
        stream(
            &mut client,
            StreamRankingsRequest {
                shard_index: 3,
                shard_count: 3,
                ..stream_request(5, 0)
            },
        )
        .await,
        Code::InvalidArgument,
        "shard_index 3",
    );
    expect_code(
        stream(&mut client, stream_request(0, 0)).await,
        Code::InvalidArgument,
        "k must be",
    );
    expect_code(
        stream(&mut client, stream_request(5, 1_000_000)).await,
        Code::InvalidArgument,
        "batch_size",
    );
    expect_code(
        stream(
            &mut client,
            StreamRankingsRequest {
                expected_data_fingerprint: "deadbeef".into(),
                ..stream_request(5, 0)
            },
        )
        .await,
        Code::FailedPrecondition,
        "deadbeef",
    );
    expect_code(
        stream(
            &mut client,
            StreamRankingsRequest {
                explicit: Some(QueryList {
                    queries: vec![
                        Query {
                            user_id: user.clone(),
                            recent_items: vec![],
                        },
                        Query {
                            user_id: "ghost-user".into(),
                            recent_items: vec![],
                        },
                    ],
                }),
                ..stream_request(5, 0)
            },
        )
        .await,
        Code::NotFound,
        "explicit.queries[1]: unknown user id 'ghost-user'",
    );

    // Metrics count what happened, by method and code.
    let metrics = server.metrics().await;
    let counter = |labels: &str| -> u64 {
        let prefix = format!("teacher_requests_total{{{labels}}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(counter(r#"code="OK",method="Rank""#), ok_ranks);
    assert_eq!(counter(r#"code="NOT_FOUND",method="Rank""#), 1);
    assert_eq!(counter(r#"code="INVALID_ARGUMENT",method="Rank""#), 6);
    assert_eq!(counter(r#"code="OK",method="Info""#), 1);
    assert_eq!(
        counter(r#"code="FAILED_PRECONDITION",method="StreamRankings""#),
        1
    );
    for needle in [
        "teacher_request_duration_seconds_bucket",
        "teacher_queue_wait_seconds_count",
        "teacher_batch_size_count",
        &format!("version=\"{}\"", fx.manifest.version),
        &format!("teacher_model_items {}", fx.dataset.num_items()),
        "teacher_ready 1",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_shards_resume_and_parity_with_rank() {
    let fx = Fixture::new();
    let server = Server::start_serving(&args(&fx.data, &fx.checkpoint)).await;
    let mut client = server.client().await;
    let k = 10;
    let batch_size = 7;
    let train = &fx.dataset.split.train;
    let instances = Instances::build(
        train,
        WindowConfig {
            sequence_length: L,
            target_length: 1,
            ..Default::default()
        },
    );
    let n = instances.len();

    let full_batches = stream(&mut client, stream_request(k, batch_size))
        .await
        .unwrap();
    let full = flatten(&full_batches);
    assert_eq!(
        full.iter().map(|r| r.query_index).collect::<Vec<_>>(),
        (0..n as u64).collect::<Vec<_>>(),
        "every training query, in Instances::build order"
    );
    for batch in &full_batches {
        assert_eq!(batch.total_queries, n as u64);
        assert!(batch.rankings.len() <= batch_size as usize);
        assert_eq!(
            batch.next_cursor,
            batch.rankings.last().unwrap().query_index + 1
        );
    }
    for r in &full {
        let i = r.query_index as usize;
        assert_eq!(r.items.len(), k as usize);
        assert!(
            !r.items.contains(&instances.target(i)[0]),
            "query {i} ranks its own target"
        );
        assert!(r.scores.windows(2).all(|w| w[0] >= w[1]));
    }

    // Three shards cover the stream exactly once.
    let mut union = Vec::new();
    for shard in 0..3u32 {
        let part = flatten(
            &stream(
                &mut client,
                StreamRankingsRequest {
                    shard_index: shard,
                    shard_count: 3,
                    ..stream_request(k, batch_size)
                },
            )
            .await
            .unwrap(),
        );
        assert!(part.iter().all(|r| r.query_index % 3 == shard as u64));
        union.extend(part);
    }
    union.sort_by_key(|r| r.query_index);
    assert_same_rankings(&union, &full, "union of 3 shards");

    // A stream cut after 3 messages, resumed from next_cursor, gives the same rankings.
    let mut cut = client
        .stream_rankings(stream_request(k, batch_size))
        .await
        .unwrap()
        .into_inner();
    let mut head = Vec::new();
    for _ in 0..3 {
        head.push(cut.message().await.unwrap().unwrap());
    }
    drop(cut);
    let cursor = head.last().unwrap().next_cursor;
    let tail = stream(
        &mut client,
        StreamRankingsRequest {
            cursor,
            ..stream_request(k, batch_size)
        },
    )
    .await
    .unwrap();
    let mut resumed = flatten(&head);
    resumed.extend(flatten(&tail));
    assert_same_rankings(&resumed, &full, "cut and resumed");

    // The same on a shard.
    let shard = |cursor| StreamRankingsRequest {
        shard_index: 1,
        shard_count: 3,
        cursor,
        ..stream_request(k, batch_size)
    };
    let whole_shard = flatten(&stream(&mut client, shard(0)).await.unwrap());
    let mut cut = client.stream_rankings(shard(0)).await.unwrap().into_inner();
    let mut head = Vec::new();
    for _ in 0..2 {
        head.push(cut.message().await.unwrap().unwrap());
    }
    drop(cut);
    let tail = stream(&mut client, shard(head[1].next_cursor))
        .await
        .unwrap();
    let mut resumed = flatten(&head);
    resumed.extend(flatten(&tail));
    assert_same_rankings(&resumed, &whole_shard, "shard cut and resumed");

    // Rank with the same query (window as recent_items, target excluded) agrees with the
    // stream, including a left-padded window.
    let padded = (0..n)
        .find(|&i| instances.input(i)[0] == PAD)
        .expect("the fixture has short users");
    for i in [0, padded, n / 2, n - 1] {
        let recent: Vec<String> = instances
            .input(i)
            .iter()
            .filter(|&&id| id != PAD)
            .map(|&id| fx.item(id - 1))
            .collect();
        let context = format!("Rank vs stream, query {i}");
        assert_rank_agrees(&mut client, &fx, &instances, i, recent, &full[i], &context).await;
    }

    // exclude_seen: no training item of the user.
    let unseen = flatten(
        &stream(
            &mut client,
            StreamRankingsRequest {
                exclude_seen: true,
                ..stream_request(k, 64)
            },
        )
        .await
        .unwrap(),
    );
    assert_eq!(unseen.len(), n);
    for r in &unseen {
        let user = instances.users[r.query_index as usize] as usize;
        assert!(r.items.iter().all(|item| !train[user].contains(item)));
    }

    // T = 2: the windows of L + 2, both targets excluded.
    let t2 = Instances::build(
        train,
        WindowConfig {
            sequence_length: L,
            target_length: 2,
            ..Default::default()
        },
    );
    let batches = stream(
        &mut client,
        StreamRankingsRequest {
            target_length: 2,
            ..stream_request(k, 0)
        },
    )
    .await
    .unwrap();
    assert_eq!(batches[0].total_queries, t2.len() as u64);
    let rankings = flatten(&batches);
    assert_eq!(rankings.len(), t2.len());
    for r in &rankings {
        let targets = t2.target(r.query_index as usize);
        assert!(r.items.iter().all(|item| !targets.contains(item)));
    }

    // An explicit list: query_index is the position; rankings equal Rank's.
    let queries = vec![
        Query {
            user_id: fx.user(0),
            recent_items: vec![],
        },
        Query {
            user_id: fx.user(1),
            recent_items: vec![fx.item(4), fx.item(2), fx.item(9)],
        },
    ];
    let explicit = flatten(
        &stream(
            &mut client,
            StreamRankingsRequest {
                explicit: Some(QueryList {
                    queries: queries.clone(),
                }),
                ..stream_request(k, 0)
            },
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        explicit.iter().map(|r| r.query_index).collect::<Vec<_>>(),
        vec![0, 1]
    );
    for (q, r) in queries.into_iter().zip(&explicit) {
        let ranked = rank(
            &mut client,
            RankRequest {
                query: Some(q),
                k,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let streamed: Vec<(String, f32)> = r
            .items
            .iter()
            .map(|&item| fx.item(item))
            .zip(r.scores.iter().copied())
            .collect();
        assert_same_ranking(&ranked, &streamed, "explicit query vs Rank");
    }
}

/// A stream whose batches could encode above --max-message-bytes is refused up front with the
/// batch size that fits (not cut off later with OUT_OF_RANGE); one that fits streams whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_batches_must_fit_the_message_limit() {
    let fx = Fixture::new();
    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend(["--max-message-bytes".into(), "16384".into()]);
    let server = Server::start_serving(&a).await;
    let mut client = server.client().await;
    // 25 + 9 * 10 = 115 bytes per ranking at most: 142 rankings fit in 16384 - 22 bytes.
    expect_code(
        stream(&mut client, stream_request(10, 4096)).await,
        Code::InvalidArgument,
        "batch_size 4096 with k 10 can encode to 471062 bytes, above the message limit of 16384 bytes (--max-message-bytes): ask for batch_size 142 or less",
    );
    let batches = stream(&mut client, stream_request(10, 142)).await.unwrap();
    assert!(batches.iter().all(|b| b.rankings.len() <= 142));
    let total = batches[0].total_queries as usize;
    assert_eq!(flatten(&batches).len(), total);
}

/// ScoreItems gives the scores the stream gave for the same training queries and items, in the
/// order asked (not the ranked order), for any subset of queries; bad requests get precise
/// statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_items_agrees_with_the_stream_and_refuses_bad_requests() {
    let fx = Fixture::new();
    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend(["--max-score-queries".into(), "16".into()]);
    let server = Server::start_serving(&a).await;
    let mut client = server.client().await;
    let ranked = flatten(&stream(&mut client, stream_request(6, 32)).await.unwrap());
    let total = ranked.len() as u64;
    // Every third query, its ranked items reversed, with one item asked twice.
    let picked: Vec<&QueryRanking> = ranked.iter().step_by(3).take(16).collect();
    let request = ScoreItemsRequest {
        queries: picked
            .iter()
            .map(|r| {
                let mut items: Vec<u32> = r.items.iter().rev().copied().collect();
                items.push(r.items[0]);
                QueryItems {
                    query_index: r.query_index,
                    items,
                }
            })
            .collect(),
        target_length: 1,
        expected_data_fingerprint: fx.dataset.manifest.fingerprint.clone(),
        ..Default::default()
    };
    let answer = client
        .score_items(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.model_version, fx.manifest.version);
    assert_eq!(answer.queries.len(), picked.len());
    for (got, want) in answer.queries.iter().zip(&picked) {
        assert_eq!(got.query_index, want.query_index);
        let mut expected: Vec<f32> = want.scores.iter().rev().copied().collect();
        expected.push(want.scores[0]);
        assert_eq!(got.scores.len(), expected.len());
        for (g, w) in got.scores.iter().zip(&expected) {
            assert!(
                (g - w).abs() < 1e-5,
                "query {}: {g} vs {w}",
                want.query_index
            );
        }
    }
    let num_items = fx.dataset.num_items() as u32;
    let with = |f: &dyn Fn(&mut ScoreItemsRequest)| {
        let mut r = request.clone();
        f(&mut r);
        r
    };
    let cases: Vec<(ScoreItemsRequest, Code, String)> = vec![
        (
            with(&|r| r.queries.clear()),
            Code::InvalidArgument,
            "queries is empty".into(),
        ),
        (
            with(&|r| r.queries[2].query_index = total),
            Code::InvalidArgument,
            format!("queries[2]: query_index {total} is past the end of the training queries"),
        ),
        (
            with(&|r| r.queries[1].items[0] = num_items),
            Code::InvalidArgument,
            format!("queries[1]: item {num_items} is beyond the model's {num_items} items"),
        ),
        (
            with(&|r| r.queries[0].items.clear()),
            Code::InvalidArgument,
            "has no items to score".into(),
        ),
        (
            with(&|r| {
                let extra = r.queries[0].clone();
                r.queries.push(extra)
            }),
            Code::InvalidArgument,
            "17 queries in one ScoreItems call, above the server's limit 16 (--max-score-queries)"
                .into(),
        ),
        (
            with(&|r| r.expected_data_fingerprint = "other".into()),
            Code::FailedPrecondition,
            "fingerprint".into(),
        ),
    ];
    for (bad, code, needle) in cases {
        expect_code(client.score_items(bad).await, code, &needle);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha() {
    use tonic_reflection::pb::v1;
    let fx = Fixture::new();
    let server = Server::start_serving(&args(&fx.data, &fx.checkpoint)).await;

    let mut client =
        v1::server_reflection_client::ServerReflectionClient::new(server.channel().await.unwrap());
    let requests = vec![
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            )),
        },
        v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                v1::server_reflection_request::MessageRequest::FileContainingSymbol(SERVICE.into()),
            ),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.unwrap().unwrap();
    match first.message_response {
        Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) => {
            let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            assert!(names.contains(&SERVICE.to_string()), "{names:?}");
            assert!(
                names.contains(&"grpc.health.v1.Health".to_string()),
                "{names:?}"
            );
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }
    let second = responses.message().await.unwrap().unwrap();
    match second.message_response {
        Some(v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files)) => {
            assert!(!files.file_descriptor_proto.is_empty());
        }
        other => panic!("unexpected reflection answer {other:?}"),
    }

    let names = list_services_v1alpha(server.channel().await.unwrap()).await;
    assert!(names.iter().any(|s| s == SERVICE));
}

#[test]
fn refuses_to_start_on_other_data_or_wrong_sequence_length() {
    let fx = Fixture::new();
    let other = fx.checkpoint_for_other_data();
    let (status, stderr) = run_to_refusal(&args(&fx.data, &other));
    assert!(!status.success());
    assert!(
        stderr.contains("00000000000000000000000000000000")
            && stderr.contains(&fx.dataset.manifest.fingerprint),
        "the error names both fingerprints:\n{stderr}"
    );

    let mut a = args(&fx.data, &fx.checkpoint);
    a.extend(["--sequence-length".into(), "3".into()]);
    let (status, stderr) = run_to_refusal(&a);
    assert!(!status.success());
    assert!(stderr.contains("--sequence-length 3"), "{stderr}");

    let (status, stderr) = run_to_refusal(&args(&fx.data, &fx.root.join("missing")));
    assert!(!status.success());
    assert!(stderr.contains("no such checkpoint"), "{stderr}");
}

/// A student's queries of another L, and SASRec's positions, are ranked from the model's own
/// last L items before each query's target: each equals Rank on that prefix with the target
/// excluded, and ScoreItems numbers them the same way. Bad shapes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_of_another_length_and_positions_use_the_models_own_inputs() {
    let fx = Fixture::new();
    let server = Server::start_serving(&args(&fx.data, &fx.checkpoint)).await;
    let mut client = server.client().await;
    let (k, train) = (8, &fx.dataset.split.train);
    for (set, length) in [
        (TrainingQuerySet::Windows, 2usize),
        (TrainingQuerySet::Positions, 7),
    ] {
        let window = WindowConfig {
            sequence_length: length,
            target_length: 1,
            query_set: match set {
                TrainingQuerySet::Windows => QuerySet::Windows,
                TrainingQuerySet::Positions => QuerySet::Positions,
            },
        };
        let instances = Instances::of(train, window);
        let request = StreamRankingsRequest {
            query_length: length as u32,
            query_set: set as i32,
            ..stream_request(k, 64)
        };
        let streamed = flatten(&stream(&mut client, request).await.unwrap());
        assert_eq!(streamed.len(), instances.len(), "{set:?}");
        // Rank reads an empty recent list as the whole history: only non-empty prefixes.
        let nonempty: Vec<usize> = (0..instances.len())
            .filter(|&i| instances.ends[i] > 0)
            .collect();
        let n = nonempty.len();
        for i in [nonempty[0], nonempty[1], nonempty[n / 3], nonempty[n - 1]] {
            // The prefix before the query's end, the model reading its own last L of it.
            let user = instances.users[i] as usize;
            let prefix = &train[user][..instances.ends[i] as usize];
            let recent: Vec<String> = prefix.iter().map(|&item| fx.item(item)).collect();
            let context = format!("{set:?} L={length} query {i}");
            assert_rank_agrees(
                &mut client,
                &fx,
                &instances,
                i,
                recent,
                &streamed[i],
                &context,
            )
            .await;
            // ScoreItems of the same query numbering gives the streamed scores.
            let scored = client
                .score_items(ScoreItemsRequest {
                    queries: vec![QueryItems {
                        query_index: i as u64,
                        items: streamed[i].items.clone(),
                    }],
                    query_length: length as u32,
                    query_set: set as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for (a, b) in scored.queries[0].scores.iter().zip(&streamed[i].scores) {
                assert!((a - b).abs() < 1e-5, "{set:?} query {i}: {a} vs {b}");
            }
        }
    }
    for (request, message) in [
        (
            StreamRankingsRequest {
                query_set: 7,
                ..stream_request(k, 64)
            },
            "query_set 7 is not a TrainingQuerySet",
        ),
        (
            StreamRankingsRequest {
                query_set: TrainingQuerySet::Positions as i32,
                target_length: 2,
                ..stream_request(k, 64)
            },
            "positions have one target each",
        ),
        (
            StreamRankingsRequest {
                query_length: 5000,
                ..stream_request(k, 64)
            },
            "query_length 5000 is above 4096",
        ),
    ] {
        expect_code(
            stream(&mut client, request).await,
            Code::InvalidArgument,
            message,
        );
    }
}
