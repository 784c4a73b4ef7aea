//! The sweep coordinate of a `--group` label: `SERIES @ AXIS=VALUE=DIR[,DIR...]`.
//!
//! Label rule: a `--group` flag is first split as always, at its last `=` (NAME=DIRS). Only when
//! that NAME contains ` @ ` is the flag a sweep label; it is then split again from the left:
//! SERIES is the text before the first ` @ ` (it may contain `=`), AXIS runs to the next `=`,
//! VALUE (a number) to the `=` after it, and the rest is the directory list.

use serde::Serialize;

/// The syntax of a sweep label, for error messages.
const SYNTAX: &str = "SERIES @ AXIS=VALUE=DIR[,DIR...]";

/// The sweep coordinate of a group label: `SERIES @ AXIS=VALUE`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepPoint {
    /// The line the group belongs to (e.g. "student alone").
    pub series: String,
    /// The swept setting (e.g. "d").
    pub axis: String,
    /// Its value for this group.
    pub value: f64,
}

/// Splits a `--group` flag `SERIES @ AXIS=VALUE=DIR[,DIR...]` into its label, its point and the
/// directory list; `None` when the flag is not a sweep label (its NAME has no ` @ `).
pub fn split_sweep_flag(flag: &str) -> Option<Result<(String, SweepPoint, &str), String>> {
    let (name, _) = flag.rsplit_once('=')?;
    let (series, _) = name.split_once(" @ ")?;
    let start = series.len() + " @ ".len();
    Some(parse_coordinate(flag, series, &flag[start..]))
}

/// Parses `AXIS=VALUE=DIRS` after the ` @ ` of `flag`.
fn parse_coordinate<'a>(
    flag: &'a str,
    series: &str,
    rest: &'a str,
) -> Result<(String, SweepPoint, &'a str), String> {
    let bad = |why: &str| format!("--group '{flag}': {why} (expected {SYNTAX})");
    let series = series.trim();
    if series.is_empty() {
        return Err(bad("the SERIES before ` @ ` is empty"));
    }
    let (axis, rest) = rest
        .split_once('=')
        .ok_or_else(|| bad("no AXIS=VALUE after ` @ `"))?;
    let (value_text, dirs) = rest
        .split_once('=')
        .ok_or_else(|| bad("no directory list after AXIS=VALUE"))?;
    let axis = axis.trim();
    if axis.is_empty() {
        return Err(bad("the AXIS after ` @ ` is empty"));
    }
    let value = value_text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| {
            bad(&format!(
                "the sweep VALUE '{value_text}' of axis '{axis}' is not a number"
            ))
        })?;
    let label_len = flag.len() - dirs.len() - 1;
    Ok((
        flag[..label_len].to_string(),
        SweepPoint {
            series: series.to_string(),
            axis: axis.to_string(),
            value,
        },
        dirs,
    ))
}
