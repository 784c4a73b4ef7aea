//! Client-supplied values as error messages quote them.

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
    use super::quote;

    #[test]
    fn long_values_are_quoted_by_their_start_and_length() {
        assert_eq!(quote("u42"), "u42");
        let long = "é".repeat(100);
        let quoted = quote(&long);
        assert!(quoted.starts_with(&"é".repeat(32)), "{quoted}");
        assert!(quoted.ends_with("... (200 bytes)"), "{quoted}");
    }
}
