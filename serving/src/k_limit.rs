//! The `k` of a ranking request (how many items to answer), checked against the server's
//! `--max-k` the same way by both services.

/// A k outside `1..=max` (the server's `--max-k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("k must be between 1 and {max} (the server's --max-k), got {k}")]
pub struct InvalidK {
    /// The k the request asked for.
    pub k: i64,
    /// The largest k the server answers (`--max-k`).
    pub max: u32,
}

/// `k` as a count when it is within `1..=max_k`.
pub fn check_k(k: i32, max_k: u32) -> Result<usize, InvalidK> {
    match u32::try_from(k) {
        Ok(n) if n >= 1 && n <= max_k => Ok(n as usize),
        _ => Err(InvalidK {
            k: i64::from(k),
            max: max_k,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::{InvalidK, check_k};

    #[test]
    fn k_is_checked_against_one_and_the_maximum() {
        assert_eq!(check_k(1, 10), Ok(1));
        assert_eq!(check_k(10, 10), Ok(10));
        for k in [0, -1, 11, i32::MIN, i32::MAX] {
            assert_eq!(
                check_k(k, 10),
                Err(InvalidK {
                    k: i64::from(k),
                    max: 10
                })
            );
        }
        assert_eq!(
            check_k(0, 10).unwrap_err().to_string(),
            "k must be between 1 and 10 (the server's --max-k), got 0"
        );
    }
}
