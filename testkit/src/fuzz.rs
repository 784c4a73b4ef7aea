//! The case budget of the property tests: a fixed budget in CI, raised by `PROPTEST_CASES`
//! (`scripts/fuzz.sh`), with failing seeds kept beside the test file and replayed first.

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, FileFailurePersistence};
use rankdistill_proto::v1::Query;

/// Cases per property: `PROPTEST_CASES` when set, else the CI budget `ci`.
pub fn cases(ci: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}

/// The proptest configuration for a CI budget of `ci` cases.
pub fn config(ci: u32) -> Config {
    Config {
        cases: cases(ci),
        // Failing seeds are kept beside the test file and replayed first.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

/// An optional query (user id, recent items) from strategies of raw ids and of id lists.
pub fn query(
    raw_id: impl Strategy<Value = String>,
    ids: impl Strategy<Value = Vec<String>>,
) -> impl Strategy<Value = Option<Query>> {
    proptest::option::of((raw_id, ids)).prop_map(|query| {
        query.map(|(user_id, recent_items)| Query {
            user_id,
            recent_items,
        })
    })
}
