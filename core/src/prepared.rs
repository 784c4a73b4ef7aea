//! The prepared dataset on disk: a folder with a JSON manifest, the id maps and the
//! per-user train/valid/test sequences in dense ids. The manifest carries a content
//! fingerprint that every downstream artifact (checkpoints, caches, students) refers to.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic::replace_dir_atomic;
use crate::dataset::{Format, ReadError, read_interactions};
use crate::split::{
    HeldOutPart, Split, SplitConfig, SplitProtocol, SplitStats, held_out_history, split,
};

/// Version of the on-disk layout of a prepared dataset.
pub const PREPARED_FORMAT_VERSION: u32 = 1;

/// The manifest of a prepared dataset (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetManifest {
    /// Layout version; see [`PREPARED_FORMAT_VERSION`].
    pub format_version: u32,
    /// Content fingerprint (blake3 of ids and sequences), hex.
    pub fingerprint: String,
    /// Where the interactions came from: the input file, or for a pre-split import its files
    /// as `train=FILE valid=FILE test=FILE` (each file also in [`DatasetManifest::origin`]).
    pub source: String,
    /// Format of the source file (of every file of a pre-split import).
    pub source_format: Format,
    /// The fractions of a temporal re-split; `None` for a pre-split import, where the files
    /// give the split, and for a leave-one-out re-split, which has no fractions.
    pub split: Option<SplitConfig>,
    /// How the split was made. Manifests written before pre-split imports existed have no
    /// such key: they are temporal re-splits.
    #[serde(default)]
    pub origin: SplitOrigin,
    /// Row counts.
    pub stats: SplitStats,
}

/// How a prepared dataset's split was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SplitOrigin {
    /// One interaction file split by `protocol`: [`split`] with the manifest's settings, or
    /// [`crate::split::split_leave_one_out`].
    Resplit {
        /// The split protocol; manifests written before there was a choice have no such key
        /// and are temporal.
        #[serde(default)]
        protocol: SplitProtocol,
    },
    /// A pre-split import ([`crate::split::from_presplit`]): the parts come from these files.
    Presplit {
        /// The training file.
        train: String,
        /// The validation file, if any.
        valid: Option<String>,
        /// The test file.
        test: String,
    },
}

impl Default for SplitOrigin {
    /// A temporal re-split: what manifests without an `origin` key are.
    fn default() -> Self {
        SplitOrigin::Resplit {
            protocol: SplitProtocol::Temporal,
        }
    }
}

impl SplitOrigin {
    /// The protocol of a re-split; `None` for a pre-split import.
    pub fn protocol(&self) -> Option<SplitProtocol> {
        match *self {
            SplitOrigin::Resplit { protocol } => Some(protocol),
            SplitOrigin::Presplit { .. } => None,
        }
    }

    /// The files of a pre-split import as one line: `train=FILE [valid=FILE] test=FILE`;
    /// `None` for a re-split.
    pub fn presplit_source(&self) -> Option<String> {
        match self {
            SplitOrigin::Resplit { .. } => None,
            SplitOrigin::Presplit { train, valid, test } => Some(match valid {
                Some(valid) => format!("train={train} valid={valid} test={test}"),
                None => format!("train={train} test={test}"),
            }),
        }
    }
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

/// Computes the content fingerprint of a temporal re-split or a pre-split import: blake3 over
/// ids and sequences. [`fingerprint_of`] covers every protocol.
pub fn fingerprint(split: &Split) -> String {
    fingerprint_of(split, SplitProtocol::Temporal)
}

/// Computes the content fingerprint of a split made with `protocol`: blake3 over ids and
/// sequences, and for a protocol other than [`SplitProtocol::Temporal`] its name after them,
/// so that the fingerprints of temporal datasets (and of pre-split imports) are those of the
/// builds before there was a choice, while a leave-one-out split never shares one with a
/// temporal split of the same content (their held-out queries differ, see
/// [`held_out_history`]).
pub fn fingerprint_of(split: &Split, protocol: SplitProtocol) -> String {
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
    if protocol != SplitProtocol::Temporal {
        let name = protocol.name();
        hasher.update(b"protocol");
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

impl PreparedDataset {
    /// Wraps a temporal split of one file (made by [`split`] with `config`) with its manifest
    /// and fingerprint.
    pub fn new(split: Split, source: String, source_format: Format, config: SplitConfig) -> Self {
        Self::wrap(
            split,
            source,
            source_format,
            Some(config),
            SplitOrigin::Resplit {
                protocol: SplitProtocol::Temporal,
            },
        )
    }

    /// Wraps a leave-one-out split of one file (made by
    /// [`crate::split::split_leave_one_out`]) with its manifest and fingerprint.
    pub fn new_leave_one_out(split: Split, source: String, source_format: Format) -> Self {
        Self::wrap(
            split,
            source,
            source_format,
            None,
            SplitOrigin::Resplit {
                protocol: SplitProtocol::LeaveOneOut,
            },
        )
    }

    /// Wraps the split of a pre-split import ([`crate::split::from_presplit`]) of the files
    /// `train`, `valid` and `test`, all of `source_format`, with its manifest and fingerprint.
    pub fn new_presplit(
        split: Split,
        source_format: Format,
        train: String,
        valid: Option<String>,
        test: String,
    ) -> Self {
        let origin = SplitOrigin::Presplit { train, valid, test };
        let source = origin.presplit_source().unwrap_or_default();
        Self::wrap(split, source, source_format, None, origin)
    }

    fn wrap(
        split: Split,
        source: String,
        source_format: Format,
        config: Option<SplitConfig>,
        origin: SplitOrigin,
    ) -> Self {
        let manifest = DatasetManifest {
            format_version: PREPARED_FORMAT_VERSION,
            fingerprint: fingerprint_of(&split, origin.protocol().unwrap_or_default()),
            source,
            source_format,
            split: config,
            origin,
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

    /// The split protocol of a re-split; `None` for a pre-split import.
    pub fn protocol(&self) -> Option<SplitProtocol> {
        self.manifest.origin.protocol()
    }

    /// The history a model sees for `user` when it is evaluated on `part`
    /// ([`held_out_history`] under this dataset's protocol; a pre-split import's queries are
    /// its training sequences, as under the temporal protocol).
    pub fn history(&self, user: usize, part: HeldOutPart) -> std::borrow::Cow<'_, [u32]> {
        held_out_history(&self.split, self.protocol().unwrap_or_default(), user, part)
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
                    "{}; nothing was written",
                    match self.manifest.origin {
                        SplitOrigin::Resplit {
                            protocol: SplitProtocol::LeaveOneOut,
                        } => format!(
                            "the split left no training rows ({} users); the input has no interactions",
                            self.num_users()
                        ),
                        SplitOrigin::Resplit {
                            protocol: SplitProtocol::Temporal,
                        } => format!(
                            "the split left no training rows ({} users, every interaction went to test or validation); lower --test-fraction / --valid-fraction or use users with more interactions",
                            self.num_users()
                        ),
                        SplitOrigin::Presplit { ref train, .. } => format!(
                            "the training file {train} has no interactions; give a --train file with rows"
                        ),
                    }
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
        let actual = fingerprint_of(&split, manifest.origin.protocol().unwrap_or_default());
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

/// The raw user ids of a prepared dataset folder (its `users.txt`), without loading the rest;
/// for clients that only need to name users (load generators, fidelity checks).
pub fn read_users(dir: &Path) -> Result<Vec<String>, PreparedError> {
    read_lines(&dir.join("users.txt"))
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
    use crate::dataset::{RawInteraction, parse_interactions};
    use crate::split::{from_presplit, split, split_leave_one_out};

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
    fn temporal_fingerprints_are_those_of_the_builds_before_protocols() {
        // The value the trainer built from b7fe06d (before `--protocol`) wrote for these rows
        // (`prepare --test-fraction 0.2 --valid-fraction 0.1`): checkpoints, caches and
        // students are keyed on it.
        let data = sample();
        assert_eq!(
            data.manifest.fingerprint,
            "43b4e9809e83dba15eb57bd90e405057"
        );
        assert_eq!(fingerprint(&data.split), data.manifest.fingerprint);
        assert_eq!(
            fingerprint_of(&data.split, SplitProtocol::Temporal),
            data.manifest.fingerprint
        );
        assert_eq!(data.protocol(), Some(SplitProtocol::Temporal));
        // The same content under leave-one-out has another fingerprint.
        assert_ne!(
            fingerprint_of(&data.split, SplitProtocol::LeaveOneOut),
            data.manifest.fingerprint
        );
    }

    fn leave_one_out_sample() -> PreparedDataset {
        let rows: Vec<RawInteraction> = (0..30)
            .map(|i| RawInteraction {
                user: (i % 3).to_string(),
                item: (i % 7).to_string(),
                timestamp: Some(i),
            })
            .collect();
        PreparedDataset::new_leave_one_out(
            split_leave_one_out(&rows),
            "mem".into(),
            Format::Movielens,
        )
    }

    #[test]
    fn a_leave_one_out_dataset_records_its_protocol_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        let data = leave_one_out_sample();
        assert_eq!(data.protocol(), Some(SplitProtocol::LeaveOneOut));
        assert_eq!(data.manifest.split, None);
        assert!(data.split.valid.iter().all(|v| v.len() == 1));
        assert!(data.split.test.iter().all(|t| t.len() == 1));
        data.save(&p).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(p.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(json["origin"]["kind"], "resplit");
        assert_eq!(json["origin"]["protocol"], "leave-one-out");
        assert!(json["split"].is_null());
        let back = PreparedDataset::load(&p).unwrap();
        assert_eq!(back, data);
        // Histories: the test query continues with the validation item.
        let u = 0;
        let mut expected = data.split.train[u].clone();
        expected.extend_from_slice(&data.split.valid[u]);
        assert_eq!(&*back.history(u, HeldOutPart::Test), expected.as_slice());
        assert_eq!(
            &*back.history(u, HeldOutPart::Valid),
            data.split.train[u].as_slice()
        );
        // The protocol is part of the fingerprint: relabelled temporal, the folder is refused.
        let mut json = json;
        json["origin"]["protocol"] = "temporal".into();
        fs::write(p.join("manifest.json"), serde_json::to_vec(&json).unwrap()).unwrap();
        let err = PreparedDataset::load(&p).unwrap_err().to_string();
        assert!(err.contains("does not match the manifest"), "{err}");
    }

    #[test]
    fn temporal_histories_are_the_training_sequences() {
        let data = sample();
        for u in 0..data.num_users() {
            assert!(!data.split.valid[u].is_empty());
            for part in [HeldOutPart::Test, HeldOutPart::Valid] {
                assert_eq!(&*data.history(u, part), data.split.train[u].as_slice());
            }
        }
        let imported = presplit("1 10\n1 11\n2 10\n", "1 11\n2 11\n");
        assert_eq!(imported.protocol(), None);
        assert_eq!(
            &*imported.history(0, HeldOutPart::Test),
            imported.split.train[0].as_slice()
        );
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

    fn presplit(train: &str, test: &str) -> PreparedDataset {
        let (format, train) = parse_interactions(Path::new("train"), train, None).unwrap();
        let (_, test) = parse_interactions(Path::new("test"), test, None).unwrap();
        PreparedDataset::new_presplit(
            from_presplit(&train, &[], &test),
            format,
            "t.txt".into(),
            None,
            "s.txt".into(),
        )
    }

    #[test]
    fn a_manifest_written_before_presplit_imports_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        let data = sample();
        data.save(&p).unwrap();
        // The manifest as builds before pre-split imports wrote it: no `origin` key, the
        // split settings as an object.
        let mut json: serde_json::Value =
            serde_json::from_slice(&fs::read(p.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(json["origin"]["protocol"], "temporal");
        let origin = json.as_object_mut().unwrap().remove("origin").unwrap();
        assert!(json["split"]["test_fraction"].is_f64());
        fs::write(p.join("manifest.json"), serde_json::to_vec(&json).unwrap()).unwrap();
        let back = PreparedDataset::load(&p).unwrap();
        assert_eq!(back.manifest.origin, SplitOrigin::default());
        assert_eq!(back, data);
        // Nor the key `protocol`, as builds before protocols wrote it: temporal.
        let mut origin = origin;
        origin.as_object_mut().unwrap().remove("protocol").unwrap();
        assert_eq!(origin, serde_json::json!({"kind": "resplit"}));
        json["origin"] = origin;
        fs::write(p.join("manifest.json"), serde_json::to_vec(&json).unwrap()).unwrap();
        let back = PreparedDataset::load(&p).unwrap();
        assert_eq!(back.manifest.origin, SplitOrigin::default());
        assert_eq!(back.protocol(), Some(SplitProtocol::Temporal));
        assert_eq!(back, data);
    }

    #[test]
    fn a_presplit_import_round_trips_and_records_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p");
        let data = presplit("1 10 5\n1 11 4\n2 10 3\n", "1 12 5\n2 11 1\n3 10 2\n");
        assert_eq!(data.manifest.split, None);
        assert_eq!(data.manifest.source, "train=t.txt test=s.txt");
        assert_eq!(data.manifest.stats.test_dropped, 2);
        data.save(&p).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&fs::read(p.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(json["origin"]["kind"], "presplit");
        assert_eq!(json["origin"]["train"], "t.txt");
        assert_eq!(json["origin"]["test"], "s.txt");
        assert!(json["split"].is_null());
        assert_eq!(PreparedDataset::load(&p).unwrap(), data);
    }

    #[test]
    fn presplit_fingerprint_ignores_crlf_and_bom() {
        let plain = presplit("1 10\n1 11\n2 10\n", "1 11\n2 11\n");
        let windows = presplit("\u{feff}1 10\r\n1 11\r\n2 10\r\n", "1 11\r\n2 11");
        assert_eq!(plain.manifest.fingerprint, windows.manifest.fingerprint);
        let other = presplit("1 10\n1 11\n2 10\n", "2 11\n1 11\n2 10\n");
        assert_ne!(plain.manifest.fingerprint, other.manifest.fingerprint);
    }
}
