//! The rankdistill gRPC contract: package `rankdistill.v1`, shared by every service and client.

/// Messages and services of `rankdistill.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("rankdistill.v1");
}

/// Encoded `FileDescriptorSet` of all rankdistill protos, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rankdistill_descriptor.bin"));

pub mod transport;

/// The caller's deadline as a `grpc-timeout` header carries it (`1-8 digits` and a unit
/// `H`, `M`, `S`, `m`, `u` or `n`, as the gRPC HTTP/2 protocol defines it); `None` when the
/// header is absent or malformed.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    parse_grpc_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)
}

/// Parses a `grpc-timeout` header value (see [`grpc_timeout`]).
pub fn parse_grpc_timeout(value: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
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

/// Longest client-supplied value an error message quotes in full, in bytes.
pub const QUOTE_LIMIT: usize = 64;

/// A client-supplied value as an error message quotes it: in full up to [`QUOTE_LIMIT`]
/// bytes, else its start and its length. Status messages travel in an HTTP/2 header, so
/// echoing a 1 MiB id whole would break the very answer that names it.
pub fn quote(value: &str) -> std::borrow::Cow<'_, str> {
    if value.len() <= QUOTE_LIMIT {
        return value.into();
    }
    let mut end = QUOTE_LIMIT;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &value[..end], value.len()).into()
}

#[cfg(test)]
mod tests {
    use super::{parse_grpc_timeout, quote};

    #[test]
    fn long_values_are_quoted_by_their_start_and_length() {
        assert_eq!(quote("u42"), "u42");
        let long = "é".repeat(100);
        let quoted = quote(&long);
        assert!(quoted.starts_with(&"é".repeat(32)), "{quoted}");
        assert!(quoted.ends_with("... (200 bytes)"), "{quoted}");
    }
    use std::time::Duration;

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
}
