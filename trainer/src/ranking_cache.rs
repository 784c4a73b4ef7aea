//! On-disk cache of teacher rankings, keyed by the teacher's identity, the data fingerprint
//! and the query settings, so a re-run of distillation skips the teacher. Written atomically;
//! validated (magic, header, size, checksum) when read, and ignored with a warning when not
//! valid.

use std::path::{Path, PathBuf};

use rankdistill_core::atomic::write_atomic_with;
use serde::{Deserialize, Serialize};

use crate::pull::{Rankings, TeacherIdentity};

const MAGIC: &[u8; 8] = b"RDRANK01";

/// Everything the cached rankings depend on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The teacher.
    pub teacher: TeacherIdentity,
    /// Fingerprint of the prepared dataset.
    pub data_fingerprint: String,
    /// Ranking length.
    pub k: usize,
    /// Window length L.
    pub sequence_length: usize,
    /// Targets per window T.
    pub target_length: usize,
    /// Whether the user's other training items were excluded.
    pub exclude_seen: bool,
    /// Number of queries.
    pub num_queries: u64,
}

impl CacheKey {
    /// Short hash naming the cache file.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&json).to_hex()[..20].to_string()
    }

    /// The cache file for this key under `dir`.
    pub fn path(&self, dir: &Path) -> PathBuf {
        dir.join(format!("rankings-{}.bin", self.digest()))
    }
}

/// Writes rankings atomically: magic, header length, JSON header, items (u32 LE), blake3 of
/// everything before it.
pub fn store(dir: &Path, key: &CacheKey, rankings: &Rankings) -> std::io::Result<PathBuf> {
    let path = key.path(dir);
    let header = serde_json::to_vec(key).map_err(std::io::Error::other)?;
    let mut body = Vec::with_capacity(16 + header.len() + rankings.items.len() * 4);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&(header.len() as u64).to_le_bytes());
    body.extend_from_slice(&header);
    for item in &rankings.items {
        body.extend_from_slice(&item.to_le_bytes());
    }
    let checksum = blake3::hash(&body);
    write_atomic_with(&path, |w| {
        use std::io::Write;
        w.write_all(&body)?;
        w.write_all(checksum.as_bytes())
    })?;
    Ok(path)
}

/// Reads the rankings for `key` from `dir`. `Ok(None)` when there is no cache file;
/// `Err(reason)` when a file is there but not valid for this key.
pub fn load(dir: &Path, key: &CacheKey) -> Result<Option<Rankings>, String> {
    let path = key.path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let bad = |why: &str| Err(format!("{}: {why}", path.display()));
    if bytes.len() < 16 + 32 || &bytes[..8] != MAGIC {
        return bad("not a rankings cache file");
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != checksum {
        return bad("checksum mismatch (truncated or corrupted)");
    }
    let header_len = u64::from_le_bytes(body[8..16].try_into().unwrap_or_default()) as usize;
    let Some(header) = body.get(16..16 + header_len) else {
        return bad("header runs past the end of the file");
    };
    let stored: CacheKey = match serde_json::from_slice(header) {
        Ok(k) => k,
        Err(e) => return bad(&format!("unreadable header: {e}")),
    };
    if &stored != key {
        return bad("written for another teacher, dataset or setting");
    }
    let items_bytes = &body[16 + header_len..];
    let expected = key.num_queries as usize * key.k * 4;
    if items_bytes.len() != expected {
        return bad(&format!(
            "{} item bytes, expected {expected}",
            items_bytes.len()
        ));
    }
    let items: Vec<u32> = items_bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(bad_item) = items.iter().find(|&&i| i >= key.teacher.num_items) {
        return bad(&format!("item {bad_item} is out of range"));
    }
    Ok(Some(Rankings { k: key.k, items }))
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
            data_fingerprint: "fp".into(),
            k: 3,
            sequence_length: 5,
            target_length: 1,
            exclude_seen: false,
            num_queries: 4,
        }
    }

    #[test]
    fn round_trip_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let rankings = Rankings {
            k: 3,
            items: (0..12).collect(),
        };
        assert_eq!(load(dir.path(), &key()), Ok(None));
        let path = store(dir.path(), &key(), &rankings).unwrap();
        assert_eq!(load(dir.path(), &key()), Ok(Some(rankings)));
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
}
