//! The prepared dataset on disk: a folder with a JSON manifest, the id maps and the
//! per-user train/valid/test sequences in dense ids. The manifest carries a content
//! fingerprint that every downstream artifact (checkpoints, caches, students) refers to.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::replace_dir_atomic;
use crate::dataset::{Format, ReadError, read_interactions};
use crate::split::{Split, SplitConfig, SplitStats, split};

/// Version of the on-disk layout of a prepared dataset.
pub const PREPARED_FORMAT_VERSION: u32 = 1;

/// The manifest of a prepared dataset (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Layout version; see [`PREPARED_FORMAT_VERSION`].
    pub format_version: u32,
    /// Content fingerprint (blake3 of ids and sequences), hex.
    pub fingerprint: String,
    /// Where the interactions came from.
    pub source: String,
    /// Format of the source file.
    pub source_format: Format,
    /// The split settings.
    pub split: SplitConfig,
    /// Row counts.
    pub stats: SplitStats,
}

/// A prepared dataset in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedDataset {
    /// The manifest.
    pub manifest: DatasetManifest,
    /// The split itself.
    pub split: Split,
}

/// Errors of loading a prepared dataset.
#[derive(Debug, thiserror::Error)]
pub enum PreparedError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The content is not what the manifest says.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PreparedError + '_ {
    move |source| PreparedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Computes the content fingerprint of a split: blake3 over ids and sequences.
pub fn fingerprint(split: &Split) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut put_ids = |tag: &[u8], ids: &[String]| {
        hasher.update(tag);
        hasher.update(&(ids.len() as u64).to_le_bytes());
        for id in ids {
            hasher.update(&(id.len() as u64).to_le_bytes());
            hasher.update(id.as_bytes());
        }
    };
    put_ids(b"users", &split.users);
    put_ids(b"items", &split.items);
    for (tag, seqs) in [
        (&b"train"[..], &split.train),
        (b"valid", &split.valid),
        (b"test", &split.test),
    ] {
        hasher.update(tag);
        for seq in seqs {
            hasher.update(&(seq.len() as u64).to_le_bytes());
            for item in seq {
                hasher.update(&item.to_le_bytes());
            }
        }
    }
    hasher.finalize().to_hex()[..32].to_string()
}

impl PreparedDataset {
    /// Wraps a split with its manifest and fingerprint.
    pub fn new(split: Split, source: String, source_format: Format, config: SplitConfig) -> Self {
        let manifest = DatasetManifest {
            format_version: PREPARED_FORMAT_VERSION,
            fingerprint: fingerprint(&split),
            source,
            source_format,
            split: config,
            stats: split.stats,
        };
        PreparedDataset { manifest, split }
    }

    /// Reads an interaction file (its format detected), splits it with `config` and wraps the
    /// split: what `trainer prepare` does, without writing anything.
    pub fn read(path: &Path, config: SplitConfig) -> Result<Self, ReadError> {
        let (format, rows) = read_interactions(path, None)?;
        Ok(PreparedDataset::new(
            split(&rows, config),
            path.display().to_string(),
            format,
            config,
        ))
    }

    /// Number of users.
    pub fn num_users(&self) -> usize {
        self.split.users.len()
    }

    /// Number of items.
    pub fn num_items(&self) -> usize {
        self.split.items.len()
    }

    /// Writes the dataset folder atomically: a reader sees the old folder or the new one. A
    /// split without training rows (no items to model) is refused and nothing is written.
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        if self.split.items.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the split left no training rows ({} users, every interaction went to test or validation); lower --test-fraction / --valid-fraction or use users with more interactions; nothing was written",
                    self.num_users()
                ),
            ));
        }
        replace_dir_atomic(dir, |staging| {
            let manifest = serde_json::to_vec_pretty(&self.manifest).map_err(io::Error::other)?;
            fs::write(staging.join("manifest.json"), manifest)?;
            write_lines(&staging.join("users.txt"), &self.split.users)?;
            write_lines(&staging.join("items.txt"), &self.split.items)?;
            write_sequences(&staging.join("train.txt"), &self.split.train)?;
            write_sequences(&staging.join("valid.txt"), &self.split.valid)?;
            write_sequences(&staging.join("test.txt"), &self.split.test)?;
            Ok(())
        })
    }

    /// Loads a dataset folder and checks it against its manifest and fingerprint.
    pub fn load(dir: &Path) -> Result<Self, PreparedError> {
        let manifest_path = dir.join("manifest.json");
        let bytes = fs::read(&manifest_path).map_err(io_err(&manifest_path))?;
        let manifest: DatasetManifest =
            serde_json::from_slice(&bytes).map_err(|e| PreparedError::Invalid {
                path: manifest_path.clone(),
                reason: format!("not a prepared-dataset manifest: {e}"),
            })?;
        if manifest.format_version != PREPARED_FORMAT_VERSION {
            return Err(PreparedError::Invalid {
                path: manifest_path,
                reason: format!(
                    "format version {} is not supported (this build reads {}); re-run `trainer prepare`",
                    manifest.format_version, PREPARED_FORMAT_VERSION
                ),
            });
        }
        let users = read_lines(&dir.join("users.txt"))?;
        let items = read_lines(&dir.join("items.txt"))?;
        let n_items = items.len();
        let train = read_sequences(&dir.join("train.txt"), users.len(), n_items)?;
        let valid = read_sequences(&dir.join("valid.txt"), users.len(), n_items)?;
        let test = read_sequences(&dir.join("test.txt"), users.len(), n_items)?;
        let split = Split {
            users,
            items,
            train,
            valid,
            test,
            stats: manifest.stats,
        };
        let actual = fingerprint(&split);
        if actual != manifest.fingerprint {
            return Err(PreparedError::Invalid {
                path: dir.to_path_buf(),
                reason: format!(
                    "content fingerprint {actual} does not match the manifest's {}; the folder was modified or is incomplete, re-run `trainer prepare`",
                    manifest.fingerprint
                ),
            });
        }
        Ok(PreparedDataset { manifest, split })
    }
}

fn write_lines(path: &Path, lines: &[String]) -> io::Result<()> {
    let mut w = io::BufWriter::new(fs::File::create(path)?);
    for line in lines {
        writeln!(w, "{line}")?;
    }
    w.flush()?;
    w.get_ref().sync_all()
}

fn write_sequences(path: &Path, seqs: &[Vec<u32>]) -> io::Result<()> {
    let mut w = io::BufWriter::new(fs::File::create(path)?);
    for seq in seqs {
        let mut first = true;
        for item in seq {
            if !first {
                w.write_all(b" ")?;
            }
            first = false;
            write!(w, "{item}")?;
        }
        w.write_all(b"\n")?;
    }
    w.flush()?;
    w.get_ref().sync_all()
}

/// Reads a text file of the folder; bytes that are not UTF-8 mean the folder was damaged
/// (`save` writes UTF-8 only).
fn read_text(path: &Path) -> Result<String, PreparedError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    String::from_utf8(bytes).map_err(|e| PreparedError::Invalid {
        path: path.to_path_buf(),
        reason: format!(
            "not valid UTF-8 (first bad byte at offset {}); the folder was modified or damaged, re-run `trainer prepare`",
            e.utf8_error().valid_up_to()
        ),
    })
}

fn read_lines(path: &Path) -> Result<Vec<String>, PreparedError> {
    Ok(read_text(path)?.lines().map(str::to_string).collect())
}

fn read_sequences(
    path: &Path,
    n_users: usize,
    n_items: usize,
) -> Result<Vec<Vec<u32>>, PreparedError> {
    let text = read_text(path)?;
    let mut seqs = Vec::with_capacity(n_users);
    for (line_no, line) in text.lines().enumerate() {
        let mut seq = Vec::new();
        for token in line.split_ascii_whitespace() {
            let item: u32 = token.parse().map_err(|_| PreparedError::Invalid {
                path: path.to_path_buf(),
                reason: format!("line {}: '{token}' is not an item index", line_no + 1),
            })?;
            if item as usize >= n_items {
                return Err(PreparedError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!(
                        "line {}: item index {item} is out of range (dataset has {n_items} items)",
                        line_no + 1
                    ),
                });
            }
            seq.push(item);
        }
        seqs.push(seq);
    }
    if seqs.len() != n_users {
        return Err(PreparedError::Invalid {
            path: path.to_path_buf(),
            reason: format!("{} user lines, expected {n_users}", seqs.len()),
        });
    }
    Ok(seqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::RawInteraction;
    use crate::split::split;

    fn sample() -> PreparedDataset {
        let rows: Vec<RawInteraction> = (0..30)
            .map(|i| RawInteraction {
                user: (i % 3).to_string(),
                item: (i % 7).to_string(),
                timestamp: Some(i),
            })
            .collect();
        let config = SplitConfig {
            test_fraction: 0.2,
            valid_fraction: 0.1,
        };
        PreparedDataset::new(
            split(&rows, config),
            "mem".into(),
            Format::Movielens,
            config,
        )
    }

    #[test]
    fn save_load_round_trips_and_fingerprint_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample();
        data.save(&dir.path().join("p")).unwrap();
        let back = PreparedDataset::load(&dir.path().join("p")).unwrap();
        assert_eq!(back, data);
        assert_eq!(sample().manifest.fingerprint, data.manifest.fingerprint);
    }

    #[test]
    fn a_split_without_training_rows_is_not_written() {
        let rows: Vec<RawInteraction> = (0..3)
            .map(|u| RawInteraction {
                user: u.to_string(),
                item: "7".into(),
                timestamp: Some(0),
            })
            .collect();
        let config = SplitConfig::default();
        let data = PreparedDataset::new(
            split(&rows, config),
            "mem".into(),
            Format::Movielens,
            config,
        );
        let dir = tempfile::tempdir().unwrap();
        let err = data.save(&dir.path().join("p")).unwrap_err().to_string();
        assert!(
            err.contains("the split left no training rows (3 users"),
            "{err}"
        );
        assert!(!dir.path().join("p").exists());
    }

    #[test]
    fn tampered_content_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        sample().save(&p).unwrap();
        let train = fs::read_to_string(p.join("train.txt")).unwrap();
        fs::write(p.join("train.txt"), train.replacen('1', "2", 1)).unwrap();
        let err = PreparedDataset::load(&p).unwrap_err().to_string();
        assert!(err.contains("does not match the manifest"), "{err}");
        fs::write(p.join("train.txt"), "99\n").unwrap();
        let err = PreparedDataset::load(&p).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{err}");
    }
}
