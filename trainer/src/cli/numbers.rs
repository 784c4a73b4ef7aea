//! Parsers of the numeric flags: each refuses NaN, infinities (but see `learning_rate`) and
//! values outside the flag's range while the command line is parsed, with a message that names
//! the flag and the range, so nothing downstream (LibTorch above all) sees such a value.
//!
//! A value outside its range is a [`FlagError::OutOfRange`]; the binary exits with status 1 for
//! it, as it did when the library refused these values, and with clap's usual 2 for text that is
//! not a number at all.

/// Why a numeric flag was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlagError {
    /// The text is not a number.
    #[error("not a number: {0}")]
    NotANumber(#[from] std::num::ParseFloatError),
    /// A number outside the flag's range, with what to fix.
    #[error("{0}")]
    OutOfRange(String),
}

/// A parser of one numeric flag, for clap's `value_parser`.
pub trait NumberParser: Fn(&str) -> Result<f64, FlagError> + Clone + Send + Sync + 'static {}

impl<F> NumberParser for F where
    F: Fn(&str) -> Result<f64, FlagError> + Clone + Send + Sync + 'static
{
}

/// A parser that accepts the numbers for which `ok` holds, else says `{flag} must be {what},
/// got {value}`.
fn checked(flag: &'static str, what: &'static str, ok: fn(f64) -> bool) -> impl NumberParser {
    move |text: &str| {
        let value: f64 = text.trim().parse()?;
        if ok(value) {
            Ok(value)
        } else {
            Err(FlagError::OutOfRange(format!(
                "{flag} must be {what}, got {value}"
            )))
        }
    }
}

/// A number in [-1, 1]: a change of a figure that lies in [0, 1] (`--max-map-drop`).
pub fn signed_unit(flag: &'static str) -> impl NumberParser {
    checked(flag, "in [-1, 1]", |v| (-1.0..=1.0).contains(&v))
}

/// A fraction in [0, 1) (held-out fractions, dropout).
pub fn fraction(flag: &'static str) -> impl NumberParser {
    checked(flag, "in [0, 1)", |v| (0.0..1.0).contains(&v))
}

/// A probability in [0, 1].
pub fn unit_interval(flag: &'static str) -> impl NumberParser {
    checked(flag, "in [0, 1]", |v| (0.0..=1.0).contains(&v))
}

/// A finite number above 0.
pub fn positive(flag: &'static str) -> impl NumberParser {
    checked(flag, "positive and finite", |v| v.is_finite() && v > 0.0)
}

/// A finite number of at least 0.
pub fn non_negative(flag: &'static str) -> impl NumberParser {
    checked(flag, "non-negative and finite", |v| {
        v.is_finite() && v >= 0.0
    })
}

/// The Adam learning rate: a number above 0. `inf` is let through on purpose: it is the
/// documented way to make a run diverge (the training then stops with an error and writes
/// nothing), and the bad-input tests drive that path with it.
pub fn learning_rate(flag: &'static str) -> impl NumberParser {
    checked(flag, "a number above 0 (the Adam learning rate)", |v| {
        v > 0.0
    })
}

/// True when `error` is a numeric flag out of its range (the binary exits with 1 for it).
pub fn is_out_of_range(error: &clap::Error) -> bool {
    let source = std::error::Error::source(error);
    matches!(
        source.and_then(|s| s.downcast_ref::<FlagError>()),
        Some(FlagError::OutOfRange(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_refuse_nan_infinity_and_the_ends() {
        let p = fraction("--test-fraction");
        assert_eq!(p("0.2"), Ok(0.2));
        assert_eq!(p("0"), Ok(0.0));
        for bad in ["1", "1.5", "-0.1", "NaN", "nan", "inf", "-inf"] {
            let e = p(bad).unwrap_err();
            assert!(matches!(e, FlagError::OutOfRange(_)), "{bad}: {e}");
            assert!(
                e.to_string()
                    .starts_with("--test-fraction must be in [0, 1), got "),
                "{e}"
            );
        }
        assert_eq!(
            p("NaN").unwrap_err().to_string(),
            "--test-fraction must be in [0, 1), got NaN"
        );
        assert!(matches!(p("a fifth"), Err(FlagError::NotANumber(_))));
    }

    #[test]
    fn ranges_of_the_other_kinds() {
        let u = unit_interval("--transition-prob");
        assert_eq!(u("1"), Ok(1.0));
        assert!(u("1.01").is_err() && u("NaN").is_err());
        let p = positive("--lambda");
        assert_eq!(p("0.5"), Ok(0.5));
        for bad in ["0", "-1", "NaN", "inf"] {
            assert!(
                p(bad)
                    .unwrap_err()
                    .to_string()
                    .contains("--lambda must be positive")
            );
        }
        let n = non_negative("--mu");
        assert_eq!(n("0"), Ok(0.0));
        for bad in ["-0.5", "NaN", "inf", "-inf"] {
            assert!(n(bad).is_err(), "{bad}");
        }
        let d = signed_unit("--max-map-drop");
        assert_eq!(d("-1"), Ok(-1.0));
        assert_eq!(d("0.005"), Ok(0.005));
        for bad in ["-1.01", "2", "NaN", "inf"] {
            assert!(
                d(bad).unwrap_err().to_string().contains("in [-1, 1]"),
                "{bad}"
            );
        }
        let lr = learning_rate("--lr");
        assert_eq!(lr("0.001"), Ok(0.001));
        assert!(lr("inf").is_ok());
        for bad in ["0", "-1e-3", "NaN", "-inf"] {
            let e = lr(bad).unwrap_err().to_string();
            assert!(e.contains("--lr") && e.contains("learning rate"), "{e}");
        }
    }
}
