//! One-line rendering of an error and its causes, for errors whose `Display` is terse.

/// The error and its causes on one line (`a: b: c`); a cause whose text already ends the
/// line is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
