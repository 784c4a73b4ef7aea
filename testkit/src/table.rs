//! The table runner of the bad-input matrices: a row is a call (an RPC request, or a command
//! line), the status it must get and the words its message must hold. Every row runs; the
//! test then fails once, listing every row that did not get what it should.

use std::future::Future;

use tonic::Code;

/// The ranked item ids of each answer of a successful call.
pub type Answer = Vec<Vec<String>>;

/// Checks a successful answer (panics when wrong).
pub type Check = Box<dyn Fn(&[Vec<String>])>;

/// What a row must get.
pub enum Expect {
    /// An error status with this code whose message contains every needle.
    Error(Code, Vec<String>),
    /// Success; the closure checks the answer.
    Ok(Check),
}

/// An error with `code` whose message holds every one of `needles`.
pub fn error(code: Code, needles: &[&str]) -> Expect {
    Expect::Error(code, needles.iter().map(|s| s.to_string()).collect())
}

/// Success, checked by `check`.
pub fn ok(check: impl Fn(&[Vec<String>]) + 'static) -> Expect {
    Expect::Ok(Box::new(check))
}

/// One row of an RPC matrix: a name for the report, the call, and what it must get.
pub struct Row<C> {
    /// The row's name in the failure report.
    pub name: &'static str,
    /// The call (a service-specific enum of requests).
    pub call: C,
    /// What it must get.
    pub expect: Expect,
}

/// The needles `text` does not contain.
pub fn missing<'a, S: AsRef<str>>(text: &str, needles: &'a [S]) -> Vec<&'a str> {
    needles
        .iter()
        .map(AsRef::as_ref)
        .filter(|n| !text.contains(n))
        .collect()
}

/// `s` cut to 300 bytes (on a character boundary) with its full length, for reports.
pub fn shorten(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let mut end = 300;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}... ({} bytes)", &s[..end], s.len())
    }
}

/// Panics with every failure of a table of `total` rows, when there is any.
pub fn assert_no_failures(failures: &[String], total: usize, separator: &str) {
    assert!(
        failures.is_empty(),
        "{} of {total} rows failed:\n{}",
        failures.len(),
        failures.join(separator)
    );
}

/// What went wrong with one row given its outcome, or `None` when it got what it should.
fn judge(name: &str, expect: Expect, result: Result<Answer, tonic::Status>) -> Option<String> {
    match (expect, result) {
        (Expect::Error(code, needles), Err(status)) => {
            let missing = missing(status.message(), &needles);
            (status.code() != code || !missing.is_empty()).then(|| {
                format!(
                    "{name}: expected {code:?} mentioning {missing:?}, got {:?}: {}",
                    status.code(),
                    shorten(status.message())
                )
            })
        }
        (Expect::Error(code, _), Ok(answer)) => Some(format!(
            "{name}: expected {code:?}, got an answer {:?}",
            answer.iter().map(Vec::len).collect::<Vec<_>>()
        )),
        (Expect::Ok(check), Ok(answer)) => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&answer)))
                .err()
                .map(|panic| format!("{name}: wrong answer: {panic:?}"))
        }
        (Expect::Ok(_), Err(status)) => Some(format!(
            "{name}: expected success, got {:?}: {}",
            status.code(),
            shorten(status.message())
        )),
    }
}

/// Runs every row through `call` (one row at a time, in order) and panics with all the rows
/// that did not get what they should.
pub async fn run_rpc_rows<C, F, Fut>(rows: Vec<Row<C>>, mut call: F)
where
    F: FnMut(C) -> Fut,
    Fut: Future<Output = Result<Answer, tonic::Status>>,
{
    let total = rows.len();
    let mut failures = Vec::new();
    for row in rows {
        let result = call(row.call).await;
        failures.extend(judge(row.name, row.expect, result));
    }
    assert_no_failures(&failures, total, "\n");
}

/// tonic's default decode limit, which both servers keep by default.
pub const MESSAGE_LIMIT: usize = 4 << 20;

/// The id lists the services' matrices are built from, over the served items.
pub struct BadIds {
    /// Every served item id, in dense order.
    pub all_items: Vec<String>,
    /// A 1 MiB id.
    pub long_id: String,
    /// Over-long but valid: 200,000 known ids (about 0.5 MiB) of which only the last L count.
    pub long_recent: Vec<String>,
    /// `long_recent` starting with an unknown id.
    pub long_recent_bad_start: Vec<String>,
    /// Above the decode limit: 5 MiB of (known) item ids.
    pub too_big: Vec<String>,
}

impl BadIds {
    /// The lists over `all_items` (not empty).
    pub fn new(all_items: Vec<String>) -> BadIds {
        let n = all_items.len();
        let long_recent: Vec<String> = (0..200_000).map(|i| all_items[i % n].clone()).collect();
        let mut long_recent_bad_start = long_recent.clone();
        long_recent_bad_start[0] = "ghost-item".into();
        let too_big = (0..(5 * MESSAGE_LIMIT / 4 / 3))
            .map(|i| all_items[i % n].clone())
            .collect();
        BadIds {
            long_id: "u".repeat(1 << 20),
            long_recent,
            long_recent_bad_start,
            too_big,
            all_items,
        }
    }
}
