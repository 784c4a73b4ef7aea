//! The case budget of the property tests: a fixed budget in CI, raised by `PROPTEST_CASES`
//! (`scripts/fuzz.sh`), with failing seeds kept beside the test file and replayed first.

use proptest::test_runner::{Config, FileFailurePersistence};

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
