//! On-disk cache of teacher rankings, keyed by the teacher's identity, the data fingerprint
//! and the query settings, so a re-run of distillation skips the teacher. Written atomically;
//! validated (magic, header, size, checksum) when read, and ignored with a warning when not
//! valid.
//!
//! A pull split over Indexed Job workers writes one *shard file* per worker (`trainer pull
//! --shard-index I --shard-count N`): the rankings of the queries with `index % N == I`, with
//! the full key and the shard in its header. The file is named by the query settings and the
//! shard, not by the teacher, so a new pull replaces the previous one in place and a set mixed
//! from two teachers is refused when merged.

use std::path::{Path, PathBuf};

use rankdistill_core::atomic::write_atomic_with;
use rankdistill_core::instances::{QuerySet, WindowConfig};
use serde::{Deserialize, Serialize};

use crate::pull::{Rankings, Shard, TeacherIdentity};

/// Version 2 files carry scores; version 1 files (items only) are refused as not valid, so
/// the rankings are pulled again.
const MAGIC: &[u8; 8] = b"RDRANK02";
const SHARD_MAGIC: &[u8; 8] = b"RDSHRD02";

/// Which training queries were ranked and how: everything but the teacher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuerySettings {
    /// Fingerprint of the prepared dataset.
    pub data_fingerprint: String,
    /// Ranking length.
    pub k: usize,
    /// Window length L.
    pub sequence_length: usize,
    /// Targets per window T.
    pub target_length: usize,
    /// Windows or positions (absent from caches written before it: windows).
    #[serde(default, skip_serializing_if = "QuerySet::is_windows")]
    pub query_set: QuerySet,
    /// Whether the user's other training items were excluded.
    pub exclude_seen: bool,
    /// Number of queries.
    pub num_queries: u64,
}

/// Everything the cached rankings depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The teacher.
    pub teacher: TeacherIdentity,
    /// The queries.
    #[serde(flatten)]
    pub settings: QuerySettings,
}

fn short_hash(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).unwrap_or_default();
    blake3::hash(&json).to_hex()[..20].to_string()
}

impl QuerySettings {
    /// The training queries these settings rank.
    pub fn window(&self) -> WindowConfig {
        WindowConfig {
            sequence_length: self.sequence_length,
            target_length: self.target_length,
            query_set: self.query_set,
        }
    }

    /// Short hash of the settings, naming shard files.
    pub fn digest(&self) -> String {
        short_hash(self)
    }

    /// The file of `shard` under `dir`.
    pub fn shard_path(&self, dir: &Path, shard: Shard) -> PathBuf {
        dir.join(format!(
            "rankings-{}.shard-{}-of-{}.bin",
            self.digest(),
            shard.index,
            shard.count
        ))
    }
}

impl CacheKey {
    /// Short hash naming the cache file.
    pub fn digest(&self) -> String {
        short_hash(self)
    }

    /// The cache file for this key under `dir`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("rankings-{}.bin", self.digest()))
    }
}

/// The header of a shard file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardHeader {
    /// The teacher and the queries of the whole pull.
    pub key: CacheKey,
    /// Which part of the queries the file holds.
    pub shard: Shard,
}

/// Writes magic, header length, JSON header, items (u32 LE), scores (f16 LE), blake3 of
/// everything before it.
fn write_file(
    path: &Path,
    magic: &[u8; 8],
    header: &[u8],
    rankings: &Rankings,
) -> std::io::Result<()> {
    let mut body = Vec::with_capacity(16 + header.len() + rankings.items.len() * 6);
    body.extend_from_slice(magic);
    body.extend_from_slice(&(header.len() as u64).to_le_bytes());
    body.extend_from_slice(header);
    for item in &rankings.items {
        body.extend_from_slice(&item.to_le_bytes());
    }
    for &score in &rankings.scores {
        body.extend_from_slice(&half::f16::from_f32(score).to_le_bytes());
    }
    let checksum = blake3::hash(&body);
    write_atomic_with(path, |w| {
        use std::io::Write;
        w.write_all(&body)?;
        w.write_all(checksum.as_bytes())
    })
}

/// A file's JSON header bytes, its items and their scores.
type FileContent = (Vec<u8>, Vec<u32>, Vec<f32>);

/// Reads a file written by [`write_file`]: `Ok(None)` when it does not exist, else the header
/// bytes and the items, or why the file is not valid.
fn read_file(path: &Path, magic: &[u8; 8]) -> Result<Option<FileContent>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |why: &str| Err(format!("{}: {why}", path.display()));
    if bytes.len() < 16 + 32 || &bytes[..8] != magic {
        return bad("not a rankings cache file");
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != checksum {
        return bad("checksum mismatch (truncated or corrupted)");
    }
    let header_len = u64::from_le_bytes(body[8..16].try_into().unwrap_or_default()) as usize;
    let Some(header) = body.get(16..16usize.saturating_add(header_len)) else {
        return bad("header runs past the end of the file");
    };
    let payload = &body[16 + header_len..];
    if payload.len() % 6 != 0 {
        return bad("the items and scores are not whole u32 and f16 values");
    }
    let (items_bytes, scores_bytes) = payload.split_at(payload.len() / 6 * 4);
    let items = items_bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let scores: Vec<f32> = scores_bytes
        .chunks_exact(2)
        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
        .collect();
    if scores.iter().any(|s| s.is_nan()) {
        return bad("a score is NaN");
    }
    Ok(Some((header.to_vec(), items, scores)))
}

/// Checks that `items` hold `rows` rankings of `k` items below `num_items`, with one score
/// each.
fn check_items(
    items: &[u32],
    scores: &[f32],
    rows: u64,
    k: usize,
    num_items: u32,
) -> Result<(), String> {
    let expected = rows as usize * k;
    if scores.len() != items.len() {
        return Err(format!("{} scores for {} items", scores.len(), items.len()));
    }
    if items.len() != expected {
        return Err(format!("{} items, expected {expected}", items.len()));
    }
    if let Some(bad_item) = items.iter().find(|&&i| i >= num_items) {
        return Err(format!("item {bad_item} is out of range"));
    }
    Ok(())
}

/// Writes rankings atomically: magic, header length, JSON header, items (u32 LE), scores (f16
/// LE), blake3 of everything before it.
pub fn store(dir: &Path, key: &CacheKey, rankings: &Rankings) -> std::io::Result<PathBuf> {
    let path = key.path(dir);
    let header = serde_json::to_vec(key).map_err(std::io::Error::other)?;
    write_file(&path, MAGIC, &header, rankings)?;
    Ok(path)
}

/// Reads the rankings for `key` from `dir`. `Ok(None)` when there is no cache file;
/// `Err(reason)` when a file is there but not valid for this key.
pub fn load(dir: &Path, key: &CacheKey) -> Result<Option<Rankings>, String> {
    let path = key.path(dir);
    let Some((header, items, scores)) = read_file(&path, MAGIC)? else {
        return Ok(None);
    };
    let bad = |why: &str| Err(format!("{}: {why}", path.display()));
    let stored: CacheKey = match serde_json::from_slice(&header) {
        Ok(k) => k,
        Err(e) => return bad(&format!("unreadable header: {e}")),
    };
    if &stored != key {
        return bad("written for another teacher, dataset or setting");
    }
    let s = &key.settings;
    if let Err(why) = check_items(&items, &scores, s.num_queries, s.k, key.teacher.num_items) {
        return bad(&why);
    }
    Ok(Some(Rankings {
        k: s.k,
        items,
        scores,
    }))
}

/// Writes the rankings of one shard atomically (same layout as [`store`], with a
/// [`ShardHeader`]). Returns the file.
pub fn store_shard(
    dir: &Path,
    key: &CacheKey,
    shard: Shard,
    rankings: &Rankings,
) -> std::io::Result<PathBuf> {
    let path = key.settings.shard_path(dir, shard);
    let header = serde_json::to_vec(&ShardHeader {
        key: key.clone(),
        shard,
    })
    .map_err(std::io::Error::other)?;
    write_file(&path, SHARD_MAGIC, &header, rankings)?;
    Ok(path)
}

/// What is on disk for one shard.
#[derive(Debug, Clone, PartialEq)]
pub enum ShardFile {
    /// No file.
    Missing(PathBuf),
    /// A file that cannot be used, and why.
    Invalid(PathBuf, String),
    /// A file for these settings and this shard, pulled from `teacher`.
    Valid {
        /// The file.
        path: PathBuf,
        /// The teacher that ranked it.
        teacher: TeacherIdentity,
        /// Its rankings, in query order.
        rankings: Rankings,
    },
}

/// Reads the file of `shard` for `settings` from `dir` and validates it (checksum, header,
/// size, item range). The teacher is returned, not checked: see [`merge_shards`].
pub fn load_shard(dir: &Path, settings: &QuerySettings, shard: Shard) -> ShardFile {
    let path = settings.shard_path(dir, shard);
    let (header, items, scores) = match read_file(&path, SHARD_MAGIC) {
        Ok(Some(found)) => found,
        Ok(None) => return ShardFile::Missing(path),
        Err(why) => return ShardFile::Invalid(path, why),
    };
    let header: ShardHeader = match serde_json::from_slice(&header) {
        Ok(h) => h,
        Err(e) => return ShardFile::Invalid(path, format!("unreadable header: {e}")),
    };
    if &header.key.settings != settings {
        return ShardFile::Invalid(
            path,
            format!(
                "written for other data or settings ({:?})",
                header.key.settings
            ),
        );
    }
    if header.shard != shard {
        return ShardFile::Invalid(path, format!("holds {}, not {shard}", header.shard));
    }
    let rows = shard.len(settings.num_queries);
    if let Err(why) = check_items(
        &items,
        &scores,
        rows,
        settings.k,
        header.key.teacher.num_items,
    ) {
        return ShardFile::Invalid(path, why);
    }
    ShardFile::Valid {
        path,
        teacher: header.key.teacher,
        rankings: Rankings {
            k: settings.k,
            items,
            scores,
        },
    }
}

/// The merged rankings of a complete set of shards.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Every query's ranking, in query order.
    pub rankings: Rankings,
    /// The teacher all shards were pulled from.
    pub teacher: TeacherIdentity,
    /// The shard files.
    pub files: Vec<PathBuf>,
}

/// Reads shards `0..count` for `settings` and merges them, when every one is present and
/// valid, and all were pulled from the same teacher, which must be `teacher` when given.
/// Otherwise the error names every shard that is missing or not valid, and what to do.
pub fn merge_shards(
    dir: &Path,
    settings: &QuerySettings,
    count: u32,
    teacher: Option<&TeacherIdentity>,
) -> Result<Merged, String> {
    let mut problems = Vec::new();
    let mut parts = Vec::new();
    let mut files = Vec::new();
    // Who every shard must have been pulled from: the given teacher, else the first valid shard.
    let mut agreed: Option<(String, TeacherIdentity)> =
        teacher.map(|t| ("the teachers serve now".to_string(), t.clone()));
    for index in 0..count {
        let shard = Shard { index, count };
        match load_shard(dir, settings, shard) {
            ShardFile::Missing(path) => problems.push(format!(
                "{shard} is missing ({}): run `trainer pull --shard-index {index} --shard-count {count}` with the same settings",
                path.display()
            )),
            ShardFile::Invalid(path, why) => {
                problems.push(format!("{shard} is not valid ({}): {why}", path.display()))
            }
            ShardFile::Valid {
                path,
                teacher: from,
                rankings,
            } => match &agreed {
                Some((source, expected)) if expected != &from => problems.push(format!(
                    "{shard} ({}) was pulled from teacher model version {}, but {source} {}: pull it again",
                    path.display(),
                    from.version,
                    expected.version
                )),
                _ => {
                    if agreed.is_none() {
                        agreed = Some((format!("{shard} was pulled from"), from));
                    }
                    parts.push(rankings);
                    files.push(path);
                }
            },
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let (_, teacher) = agreed.ok_or_else(|| "no shards (--shard-count 0)".to_string())?;
    if parts.len() != count as usize {
        return Err(format!("{} of {count} shards read", parts.len()));
    }
    let rankings = Rankings::merge(&parts, settings.num_queries).map_err(|e| e.to_string())?;
    Ok(Merged {
        rankings,
        teacher,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey {
            teacher: TeacherIdentity {
                model_kind: "caser".into(),
                version: "v1".into(),
                data_fingerprint: "fp".into(),
                dim: 8,
                num_items: 50,
                sequence_length: 5,
                num_parameters: 100,
            },
            settings: QuerySettings {
                data_fingerprint: "fp".into(),
                k: 3,
                sequence_length: 5,
                target_length: 1,
                query_set: QuerySet::Windows,
                exclude_seen: false,
                num_queries: 4,
            },
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let rankings = Rankings {
            k: 3,
            items: (0..12).collect(),
            // Values f16 holds exactly.
            scores: (0..12).map(|i| i as f32 * 0.25 - 1.0).collect(),
        };
        assert_eq!(load(dir.path(), &key()), Ok(None));
        let path = store(dir.path(), &key(), &rankings).unwrap();
        assert_eq!(load(dir.path(), &key()), Ok(Some(rankings.clone())));
        // Any score comes back within f16's relative precision (2^-11).
        let rough = Rankings {
            scores: (0..12).map(|i| (i as f32 * 1.37).sin() * 9.3).collect(),
            ..rankings.clone()
        };
        store(dir.path(), &key(), &rough).unwrap();
        let back = load(dir.path(), &key()).unwrap().unwrap();
        for (got, want) in back.scores.iter().zip(&rough.scores) {
            assert!(
                (got - want).abs() <= want.abs() / 2048.0 + 1e-7,
                "{got} vs {want}"
            );
        }
        store(dir.path(), &key(), &rankings).unwrap();
        // A file of the first version (items only) is refused, so the rankings are pulled again.
        let mut v1 = std::fs::read(&path).unwrap();
        v1[..8].copy_from_slice(b"RDRANK01");
        std::fs::write(&path, &v1).unwrap();
        assert!(load(dir.path(), &key()).is_err());
        store(dir.path(), &key(), &rankings).unwrap();
        // Another teacher version has another file.
        let mut other = key();
        other.teacher.version = "v2".into();
        assert_eq!(load(dir.path(), &other), Ok(None));
        // Corruption is detected.
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert!(load(dir.path(), &key()).unwrap_err().contains("checksum"));
        bytes.truncate(10);
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            load(dir.path(), &key())
                .unwrap_err()
                .contains("not a rankings cache")
        );
    }

    #[test]
    fn the_key_serialises_as_before_the_settings_were_grouped() {
        // Cache files written before keep their names: the flattened settings serialise in
        // the same order as the former fields.
        let json = serde_json::to_string(&key()).unwrap();
        assert!(
            json.ends_with(
                r#"},"data_fingerprint":"fp","k":3,"sequence_length":5,"target_length":1,"exclude_seen":false,"num_queries":4}"#
            ),
            "{json}"
        );
        assert!(
            json.starts_with(r#"{"teacher":{"model_kind":"caser""#),
            "{json}"
        );
    }

    fn shard_rankings(full: &Rankings, shard: Shard, num_queries: u64) -> Rankings {
        let k = full.k;
        let rows = |v: &[u32]| -> Vec<u32> {
            (0..num_queries)
                .filter(|&q| shard.contains(q))
                .flat_map(|q| v[q as usize * k..(q as usize + 1) * k].to_vec())
                .collect()
        };
        let scores = rows(&full.scores.iter().map(|s| s.to_bits()).collect::<Vec<_>>())
            .into_iter()
            .map(f32::from_bits)
            .collect();
        Rankings {
            k,
            items: rows(&full.items),
            scores,
        }
    }

    #[test]
    fn shards_merge_into_the_full_rankings_and_bad_sets_are_refused() {
        let mut key = key();
        key.settings.num_queries = 7;
        let full = Rankings {
            k: 3,
            items: (0..21).map(|i| (i * 7) % 50).collect(),
            scores: (0..21).map(|i| 10.0 - i as f32 * 0.5).collect(),
        };
        let dir = tempfile::tempdir().unwrap();
        let settings = key.settings.clone();
        let merge =
            |teacher: Option<&TeacherIdentity>| merge_shards(dir.path(), &settings, 3, teacher);
        // Nothing there: every shard is named.
        let err = merge(None).unwrap_err();
        for i in 0..3 {
            assert!(err.contains(&format!("shard {i} of 3 is missing")), "{err}");
        }
        for i in [0, 2] {
            let shard = Shard::new(i, 3).unwrap();
            store_shard(dir.path(), &key, shard, &shard_rankings(&full, shard, 7)).unwrap();
        }
        let err = merge(None).unwrap_err();
        assert!(
            err.contains("shard 1 of 3 is missing") && !err.contains("shard 0"),
            "{err}"
        );
        let one = Shard::new(1, 3).unwrap();
        let path = store_shard(dir.path(), &key, one, &shard_rankings(&full, one, 7)).unwrap();
        let merged = merge(None).unwrap();
        assert_eq!(merged.rankings, full);
        assert_eq!(merged.teacher, key.teacher);
        assert_eq!(merged.files.len(), 3);
        assert_eq!(merge(Some(&key.teacher)).unwrap().rankings, full);
        // The teachers now serve another version: every shard is stale.
        let mut newer = key.teacher.clone();
        newer.version = "v2".into();
        let err = merge(Some(&newer)).unwrap_err();
        assert!(
            err.contains("shard 2 of 3") && err.contains("the teachers serve now v2"),
            "{err}"
        );
        // One shard re-pulled from another teacher: the set is mixed.
        let mut other = key.clone();
        other.teacher = newer;
        store_shard(dir.path(), &other, one, &shard_rankings(&full, one, 7)).unwrap();
        let err = merge(None).unwrap_err();
        assert!(
            err.contains("shard 1 of 3")
                && err.contains("version v2, but shard 0 of 3 was pulled from v1"),
            "{err}"
        );
        // A damaged shard is named with the reason.
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = merge(None).unwrap_err();
        assert!(
            err.contains("shard 1 of 3 is not valid") && err.contains("checksum"),
            "{err}"
        );
        // A shard file renamed into another shard's place is refused.
        std::fs::copy(
            settings.shard_path(dir.path(), Shard::new(0, 3).unwrap()),
            &path,
        )
        .unwrap();
        let err = merge(None).unwrap_err();
        assert!(
            err.contains("holds shard 0 of 3, not shard 1 of 3"),
            "{err}"
        );
        // Other settings are other files.
        let mut k5 = settings.clone();
        k5.k = 5;
        assert!(matches!(
            load_shard(dir.path(), &k5, one),
            ShardFile::Missing(_)
        ));
    }
}
