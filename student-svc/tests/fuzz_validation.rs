//! Property-based fuzzing of student-svc's request validation: the catalog that resolves a
//! request (raw ids, recent items, exclusions, fallback) in-process, and whole Recommend and
//! RecommendBatch requests against the real binary. Whatever the request, the answer is a
//! valid ranking or INVALID_ARGUMENT / NOT_FOUND with a short message, never INTERNAL, never
//! a dead server. A fixed case budget runs in CI; `PROPTEST_CASES=N` raises it
//! (`scripts/fuzz.sh`).

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Fixture, Server, args};
use proptest::prelude::*;
use rankdistill_proto::v1::{RecommendBatchRequest, RecommendRequest};
use rankdistill_student::catalog::{Catalog, History, RecommendSpec};
use rankdistill_student::config::UnknownUser;
use rankdistill_testkit::fuzz::{config, query};
use tonic::Code;

/// Raw ids: the fixture's users and items, near misses and nasty strings.
fn raw_id(fx: &Fixture) -> impl Strategy<Value = String> + use<> {
    let users = fx.dataset.split.users.clone();
    let items = fx.dataset.split.items.clone();
    prop_oneof![
        3 => proptest::sample::select(users),
        3 => proptest::sample::select(items),
        1 => Just(String::new()),
        1 => "[0-9]{1,4}",
        1 => "0[0-9]{1,3}",
        1 => "\\PC{1,12}",
        1 => "[\\x00-\\x1f]{1,3}",
        1 => (1usize..3000).prop_map(|n| "9".repeat(n)),
    ]
}

fn ids(fx: &Fixture, max: usize) -> impl Strategy<Value = Vec<String>> + use<> {
    proptest::collection::vec(raw_id(fx), 0..max)
}

fn spec(fx: &Fixture) -> impl Strategy<Value = RecommendSpec> + use<> {
    (raw_id(fx), ids(fx, 12), ids(fx, 12), any::<bool>()).prop_map(
        |(user_id, recent_items, exclude_items, exclude_seen)| RecommendSpec {
            user_id,
            recent_items,
            exclude_items,
            exclude_seen,
        },
    )
}

/// In-process: every resolution, by each of the four catalog set-ups (with and without
/// `--data`, both unknown-user policies), is a well-formed query or a precise, short error.
#[test]
fn the_catalog_resolves_any_request_or_refuses_it() {
    let fx = Fixture::new();
    let history = Arc::new(History::load(&fx.data).unwrap());
    let bias = vec![0.0; fx.dataset.num_items()];
    let mut catalogs = Vec::new();
    for policy in [UnknownUser::NotFound, UnknownUser::Popularity] {
        for h in [Some(history.clone()), None] {
            catalogs.push(Catalog::new(&fx.manifest, h, &bias, policy));
        }
    }
    let (l, n_items) = (
        fx.config.sequence_length as usize,
        fx.dataset.num_items() as u32,
    );
    let mut runner = proptest::test_runner::TestRunner::new(config(512));
    runner
        .run(&spec(&fx), |spec| {
            for catalog in &catalogs {
                match catalog.resolve(&spec) {
                    Ok(r) => {
                        prop_assert_eq!(r.query.inputs.len(), l);
                        prop_assert!(r.query.inputs.iter().all(|&i| i <= n_items));
                        prop_assert!(r.exclude.windows(2).all(|w| w[0] < w[1]));
                        prop_assert!(r.exclude.iter().all(|&i| i < n_items));
                        if r.fallback {
                            prop_assert!(r.query.user.is_none());
                        }
                    }
                    Err(e) => {
                        prop_assert!(
                            matches!(e.code(), Code::InvalidArgument | Code::NotFound),
                            "{e}"
                        );
                        prop_assert!(e.to_string().len() < 400, "{e}");
                    }
                }
            }
            Ok(())
        })
        .unwrap();
}

fn request(fx: &Fixture) -> impl Strategy<Value = RecommendRequest> + use<> {
    (
        query(raw_id(fx), ids(fx, 8)),
        prop_oneof![
            4 => 1i32..60,
            1 => any::<i32>(),
            1 => Just(0),
            1 => Just(i32::MIN),
        ],
        ids(fx, 8),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(query, k, exclude_items, exclude_seen)| RecommendRequest {
            query,
            k,
            exclude_items,
            exclude_seen,
        })
}

/// Checks one answer against its request.
fn check(request: &RecommendRequest, answer: &rankdistill_proto::v1::RecommendResponse) {
    let items: Vec<&String> = answer.items.iter().map(|i| &i.item_id).collect();
    assert!(
        items.len() <= request.k.max(0) as usize,
        "more than k: {items:?}"
    );
    assert_eq!(
        items.iter().collect::<HashSet<_>>().len(),
        items.len(),
        "duplicates"
    );
    for excluded in &request.exclude_items {
        assert!(!items.contains(&excluded), "returned excluded {excluded}");
    }
    assert!(
        answer.items.windows(2).all(|w| w[0].score >= w[1].score),
        "not best first"
    );
}

#[test]
fn the_server_answers_any_request_precisely() {
    let fx = Fixture::new();
    let runtime = rankdistill_testkit::runtime::runtime();
    let data = fx.data.to_string_lossy().into_owned();
    let server = runtime.block_on(Server::start_serving(&args(
        &fx.model,
        &["--data", &data, "--max-k", "50", "--max-batch", "4"],
    )));
    let client = runtime.block_on(server.client());
    let mut runner = proptest::test_runner::TestRunner::new(config(128));
    let strategy = (request(&fx), proptest::collection::vec(request(&fx), 0..6));
    runner
        .run(&strategy, |(single, batch)| {
            let mut c = client.clone();
            let outcome = runtime.block_on(c.recommend(single.clone()));
            match outcome {
                Ok(answer) => check(&single, answer.get_ref()),
                Err(s) => prop_assert!(
                    matches!(s.code(), Code::InvalidArgument | Code::NotFound)
                        && s.message().len() < 400,
                    "{s:?}"
                ),
            }
            let outcome = runtime.block_on(c.recommend_batch(RecommendBatchRequest {
                requests: batch.clone(),
            }));
            match outcome {
                Ok(answer) => {
                    let answer = answer.into_inner();
                    prop_assert_eq!(answer.responses.len(), batch.len());
                    for (r, a) in batch.iter().zip(&answer.responses) {
                        check(r, a);
                    }
                }
                Err(s) => prop_assert!(
                    matches!(s.code(), Code::InvalidArgument | Code::NotFound)
                        && s.message().len() < 400,
                    "{s:?}"
                ),
            }
            Ok(())
        })
        .unwrap();
    let text = runtime.block_on(server.metrics());
    assert!(!text.contains(r#"code="INTERNAL""#), "{text}");
    assert!(!text.contains(r#"code="UNKNOWN""#), "{text}");
}
