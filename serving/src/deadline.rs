//! The caller's deadline: the `grpc-timeout` header, and the [`Deadline`] the per-RPC layer
//! (`rpc`) derives from it and hands to handlers in the request's extensions.

use std::time::{Duration, Instant};

/// The caller's deadline as a `grpc-timeout` header carries it (`1-8 digits` and a unit
/// `H`, `M`, `S`, `m`, `u` or `n`, as the gRPC HTTP/2 protocol defines it); `None` when the
/// header is absent or malformed.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

/// [`grpc_timeout`] from raw HTTP headers.
pub fn grpc_timeout_header(headers: &tonic::codegen::http::HeaderMap) -> Option<Duration> {
    parse_grpc_timeout(headers.get("grpc-timeout")?.to_str().ok()?)
}

/// Parses a `grpc-timeout` header value (see [`grpc_timeout`]).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let split = value.len().checked_sub(1)?;
    let (digits, unit) = (value.get(..split)?, value.get(split..)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// When a call must be answered: its arrival plus the caller's `grpc-timeout`. The per-RPC
/// layer answers DEADLINE_EXCEEDED itself when a handler has not answered by then; handlers
/// that outlive their answer (server streams, queued work) read it with [`Deadline::of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// The deadline of a call, when the caller set one.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Instant> {
        request.extensions().get::<Deadline>().map(|d| d.0)
    }

    /// The message of a call answered DEADLINE_EXCEEDED after `elapsed`.
    pub fn exceeded_message(elapsed: Duration) -> String {
        format!(
            "the deadline passed after {} ms; the work was dropped, retry with a longer deadline",
            elapsed.as_millis()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_values() {
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "123456789m", "-1S", "1x", "1.5S", "1é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_deadline_travels_in_the_extensions() {
        let mut request = tonic::Request::new(());
        assert_eq!(Deadline::of(&request), None);
        let at = Instant::now();
        request.extensions_mut().insert(Deadline(at));
        assert_eq!(Deadline::of(&request), Some(at));
    }
}
