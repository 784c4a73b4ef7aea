//! Reading interaction files: MovieLens `u.data`, the RD/Caser text format and the SASRec
//! format. Raw ids are kept as strings here; `split` maps them to dense indices.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One line of an interaction file.
#[derive(Debug, Clone, PartialEq)]
pub struct RawInteraction {
    /// The user's raw id.
    pub user: String,
    /// The item's raw id.
    pub item: String,
    /// Timestamp, when the format has one; `None` means file order is chronological.
    pub timestamp: Option<i64>,
}

/// The supported interaction file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MovieLens `u.data`: `user item rating timestamp`, tab or space separated.
    Movielens,
    /// RD/Caser text: `user item rating` per line, chronological per user.
    Caser,
    /// SASRec: `user item` per line, chronological per user.
    Sasrec,
}

impl Format {
    /// Number of whitespace-separated fields a line of this format has.
    pub fn fields(self) -> usize {
        match self {
            Format::Movielens => 4,
            Format::Caser => 3,
            Format::Sasrec => 2,
        }
    }

    /// Guesses the format from the field count of the first non-empty line.
    pub fn detect(first_line: &str) -> Option<Format> {
        match first_line.split_whitespace().count() {
            4 => Some(Format::Movielens),
            3 => Some(Format::Caser),
            2 => Some(Format::Sasrec),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Movielens => "movielens",
            Format::Caser => "caser",
            Format::Sasrec => "sasrec",
        })
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "movielens" | "ml" | "udata" => Ok(Format::Movielens),
            "caser" | "rd" => Ok(Format::Caser),
            "sasrec" => Ok(Format::Sasrec),
            other => Err(format!(
                "unknown format '{other}': use movielens, caser or sasrec"
            )),
        }
    }
}

/// Errors while reading interaction files.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A line does not match the format.
    #[error("{path}:{line}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// The file holds no interactions.
    #[error("{path}: no interactions found")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The format could not be detected.
    #[error(
        "{path}:{line}: cannot detect the format from {fields} fields; pass --format movielens|caser|sasrec"
    )]
    Undetectable {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Fields found.
        fields: usize,
    },
}

/// Reads an interaction file; `format` of `None` detects it from the first line.
pub fn read_interactions(
    path: &Path,
    format: Option<Format>,
) -> Result<(Format, Vec<RawInteraction>), ReadError> {
    let bytes = fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Refuse rather than replace invalid bytes: a lossy decoding would map distinct raw ids
    // (say Latin-1 "caf\xe9" and "caf\xe8") to the same string and merge their histories.
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))?;
    parse_interactions(path, &text, format)
}

/// The error for a file that is not UTF-8: the line and column of the first bad byte.
fn not_utf8(path: &Path, bytes: &[u8], error: std::str::Utf8Error) -> ReadError {
    let at = error.valid_up_to();
    let line_start = bytes[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    ReadError::Malformed {
        path: path.to_path_buf(),
        line: bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1,
        reason: format!(
            "not valid UTF-8 (byte 0x{:02X} at column {}); convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`",
            bytes[at],
            at - line_start + 1
        ),
    }
}

/// Parses interaction text; `path` only labels errors.
pub fn parse_interactions(
    path: &Path,
    text: &str,
    format: Option<Format>,
) -> Result<(Format, Vec<RawInteraction>), ReadError> {
    let malformed = |line: usize, reason: String| ReadError::Malformed {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut format = format;
    let mut rows = Vec::new();
    // A byte-order mark would otherwise become part of the first user's id.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fmt = match format {
            Some(f) => f,
            None => {
                let detected = Format::detect(trimmed).ok_or_else(|| ReadError::Undetectable {
                    path: path.to_path_buf(),
                    line: line_no,
                    fields: trimmed.split_whitespace().count(),
                })?;
                format = Some(detected);
                detected
            }
        };
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() != fmt.fields() {
            return Err(malformed(
                line_no,
                format!(
                    "expected {} fields for the {fmt} format, found {}",
                    fmt.fields(),
                    fields.len()
                ),
            ));
        }
        if fmt != Format::Sasrec {
            fields[2].parse::<f64>().map_err(|_| {
                malformed(line_no, format!("rating '{}' is not a number", fields[2]))
            })?;
        }
        let timestamp = if fmt == Format::Movielens {
            Some(fields[3].parse::<i64>().map_err(|_| {
                malformed(
                    line_no,
                    format!("timestamp '{}' is not an integer", fields[3]),
                )
            })?)
        } else {
            None
        };
        rows.push(RawInteraction {
            user: fields[0].to_string(),
            item: fields[1].to_string(),
            timestamp,
        });
    }
    match format {
        Some(f) if !rows.is_empty() => Ok((f, rows)),
        _ => Err(ReadError::Empty {
            path: path.to_path_buf(),
        }),
    }
}

/// Orders raw ids: numerically when both are integers, otherwise as strings (numbers first).
/// Distinct ids never compare equal ("7" < "+7" < "07"), so the order, and with it the dense
/// indices and the fingerprint, does not depend on the order the ids were met in.
pub fn compare_raw_ids(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x
            .cmp(&y)
            .then_with(|| a.len().cmp(&b.len()))
            .then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(
        text: &str,
        format: Option<Format>,
    ) -> Result<(Format, Vec<RawInteraction>), ReadError> {
        parse_interactions(Path::new("mem.txt"), text, format)
    }

    #[test]
    fn reads_the_three_formats() {
        let (f, rows) = parse("1\t10\t5\t100\n2\t20\t3\t50\n", None).unwrap();
        assert_eq!(f, Format::Movielens);
        assert_eq!(rows[1].timestamp, Some(50));
        let (f, rows) = parse("u1 i1 1.0\nu1 i2 1\n", None).unwrap();
        assert_eq!(f, Format::Caser);
        assert_eq!(rows[1].item, "i2");
        assert_eq!(rows[1].timestamp, None);
        let (f, rows) = parse("\n1 2\n1 3\n", None).unwrap();
        assert_eq!(f, Format::Sasrec);
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        let err = parse("1\t10\t5\t100\n2\t20\t3\n", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mem.txt:2: expected 4 fields for the movielens format, found 3"
        );
        let err = parse("1 2 3 x\n", Some(Format::Movielens)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mem.txt:1: timestamp 'x' is not an integer"
        );
        let err = parse("1 2 bad\n", Some(Format::Caser)).unwrap_err();
        assert_eq!(err.to_string(), "mem.txt:1: rating 'bad' is not a number");
        let err = parse("1 2 3 4 5\n", None).unwrap_err();
        assert!(err.to_string().contains("mem.txt:1: cannot detect"));
        assert!(matches!(parse("\n\n", None), Err(ReadError::Empty { .. })));
    }

    #[test]
    fn raw_ids_order_numerically_then_lexically() {
        let mut ids = vec!["10", "9", "b", "a", "100"];
        ids.sort_by(|a, b| compare_raw_ids(a, b));
        assert_eq!(ids, vec!["9", "10", "100", "a", "b"]);
        // Numerically equal spellings still have one order, whatever order they come in.
        let mut ids = vec!["07", "7", "+7", "007"];
        ids.sort_by(|a, b| compare_raw_ids(a, b));
        assert_eq!(ids, vec!["7", "+7", "07", "007"]);
    }

    #[test]
    fn non_utf8_files_are_refused_at_the_bad_byte_and_a_bom_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.data");
        fs::write(&path, b"1 2 3 4\n1 caf\xe9 3 5\n").unwrap();
        let err = read_interactions(&path, None).unwrap_err().to_string();
        assert!(
            err.ends_with("latin1.data:2: not valid UTF-8 (byte 0xE9 at column 6); convert the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`"),
            "{err}"
        );
        let (_, rows) = parse("\u{feff}196 242 3 881250949\n", None).unwrap();
        assert_eq!(rows[0].user, "196");
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_round_trips_valid_rows(
            rows in proptest::collection::vec((0u32..50, 0u32..80, 1u8..6, 0i64..1_000_000), 1..40)
        ) {
            let text: String = rows.iter().map(|(u, i, r, t)| format!("{u}\t{i}\t{r}\t{t}\n")).collect();
            let (_, parsed) = parse(&text, None).unwrap();
            prop_assert_eq!(parsed.len(), rows.len());
            for (p, (u, i, _, t)) in parsed.iter().zip(&rows) {
                prop_assert_eq!(&p.user, &u.to_string());
                prop_assert_eq!(&p.item, &i.to_string());
                prop_assert_eq!(p.timestamp, Some(*t));
            }
        }

        #[test]
        fn arbitrary_text_gives_ok_or_error_never_panic(text in "\\PC{0,200}") {
            let _ = parse(&text, None);
        }
    }
}
