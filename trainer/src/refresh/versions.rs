//! The folder student-svc serves (`--publish DIR`) and the versions kept beside it in
//! `DIR.versions/<version>/` for rollbacks. Every write is a staging folder renamed into place
//! (`core::atomic`), the kept copy first: a crash at any point leaves the served folder either
//! the previous student or the new one, whole.
//!
//! Each kept folder holds the artifact's two files and `published.json` (its publication
//! record: a sequence number that orders publications, the time, the teacher version).
//! Publishing or rolling back gives the version the next sequence number, so "the newest N"
//! are the last N publications, and `--keep N` prunes the rest.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rankdistill_core::artifact::{self, ArtifactManifest, MANIFEST_FILE, WEIGHTS_FILE};
use rankdistill_core::atomic::{replace_dir_atomic, write_atomic};
use serde::{Deserialize, Serialize};

/// File of the publication record inside a kept version's folder.
pub const RECORD_FILE: &str = "published.json";

/// When and how a kept version was (last) published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishRecord {
    /// The artifact's version (content hash of its weights).
    pub version: String,
    /// Order of publications: the highest is the latest.
    pub sequence: u64,
    /// Seconds since the Unix epoch.
    pub published_at_unix: u64,
    /// The teacher the student was distilled from, when its manifest names one.
    pub teacher_version: Option<String>,
}

/// A version kept in the versions folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptVersion {
    /// Its folder.
    pub dir: PathBuf,
    /// Its publication record.
    pub record: PublishRecord,
}

/// The served folder and its versions folder.
#[derive(Debug, Clone)]
pub struct Published {
    /// The folder student-svc serves.
    pub dir: PathBuf,
    /// `DIR.versions`, beside it.
    pub versions_dir: PathBuf,
}

/// The teacher version a student manifest records, if any.
pub fn teacher_version(manifest: &ArtifactManifest) -> Option<String> {
    manifest
        .teacher
        .as_ref()?
        .get("version")?
        .as_str()
        .map(str::to_string)
}

/// Copies the artifact files of `from` into `to` (a staging folder).
fn copy_artifact(from: &Path, to: &Path) -> io::Result<()> {
    for file in [WEIGHTS_FILE, MANIFEST_FILE] {
        fs::copy(from.join(file), to.join(file))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", from.join(file).display())))?;
    }
    Ok(())
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Published {
    /// The served folder `dir`; its versions go to `DIR.versions` beside it.
    pub fn new(dir: &Path) -> anyhow::Result<Published> {
        let name = dir
            .file_name()
            .with_context(|| format!("--publish {} does not name a folder", dir.display()))?;
        let mut versions = name.to_os_string();
        versions.push(".versions");
        Ok(Published {
            dir: dir.to_path_buf(),
            versions_dir: dir.with_file_name(versions),
        })
    }

    /// The manifest of the served student: `Ok(None)` when nothing is published yet, an error
    /// when the folder holds something that is not a valid artifact manifest.
    pub fn current(&self) -> Result<Option<ArtifactManifest>, String> {
        if !self.dir.join(MANIFEST_FILE).exists() {
            return Ok(None);
        }
        artifact::read_manifest(&self.dir)
            .map(Some)
            .map_err(|e| e.to_string())
    }

    /// The kept versions, the latest publication first. Folders without a readable record
    /// (not written by `refresh`) are skipped, and never pruned.
    pub fn kept(&self) -> io::Result<Vec<KeptVersion>> {
        let entries = match fs::read_dir(&self.versions_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut kept = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') || !entry.file_type()?.is_dir() {
                continue;
            }
            let dir = entry.path();
            let record = fs::read(dir.join(RECORD_FILE))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<PublishRecord>(&bytes).ok());
            match record {
                Some(record) if record.version == name.to_string_lossy() => {
                    kept.push(KeptVersion { dir, record })
                }
                _ => tracing::warn!(folder = %dir.display(), "not a kept version; left alone"),
            }
        }
        kept.sort_by_key(|k| std::cmp::Reverse(k.record.sequence));
        Ok(kept)
    }

    /// Keeps a copy of the served student when the versions folder does not hold it yet (one
    /// published before `refresh`, e.g. by the distillation Job), so it can be rolled back to.
    /// A served folder that is not a valid artifact is not kept.
    fn keep_served(&self) -> anyhow::Result<()> {
        let Ok(Some(served)) = self.current() else {
            return Ok(());
        };
        let kept_dir = self.versions_dir.join(&served.version);
        if kept_dir.join(RECORD_FILE).exists() {
            return Ok(());
        }
        let record = self.next_record(&served)?;
        let json = serde_json::to_vec_pretty(&record)?;
        replace_dir_atomic(&kept_dir, |staging| {
            copy_artifact(&self.dir, staging)?;
            fs::write(staging.join(RECORD_FILE), &json)
        })
        .with_context(|| format!("cannot keep the served student in {}", kept_dir.display()))
    }

    /// Publishes the artifact in `artifact_dir`: keeps a copy in the versions folder with the
    /// next sequence number (after keeping the served student, if it is not kept yet), then
    /// replaces the served folder with it. Returns the record.
    pub fn publish(&self, artifact_dir: &Path) -> anyhow::Result<PublishRecord> {
        let manifest = artifact::read_manifest(artifact_dir)
            .with_context(|| format!("cannot publish {}", artifact_dir.display()))?;
        self.keep_served()?;
        let kept_dir = self.versions_dir.join(&manifest.version);
        let record = self.next_record(&manifest)?;
        let json = serde_json::to_vec_pretty(&record)?;
        if kept_dir != artifact_dir {
            replace_dir_atomic(&kept_dir, |staging| {
                copy_artifact(artifact_dir, staging)?;
                fs::write(staging.join(RECORD_FILE), &json)
            })
            .with_context(|| format!("cannot keep a copy in {}", kept_dir.display()))?;
        } else {
            write_atomic(&kept_dir.join(RECORD_FILE), &json)?;
        }
        replace_dir_atomic(&self.dir, |staging| copy_artifact(&kept_dir, staging))
            .with_context(|| format!("cannot publish into {}", self.dir.display()))?;
        Ok(record)
    }

    /// The record of publishing `manifest` now.
    fn next_record(&self, manifest: &ArtifactManifest) -> anyhow::Result<PublishRecord> {
        let kept = self
            .kept()
            .with_context(|| format!("cannot read {}", self.versions_dir.display()))?;
        Ok(PublishRecord {
            version: manifest.version.clone(),
            sequence: kept.first().map_or(1, |k| k.record.sequence + 1),
            published_at_unix: now_unix(),
            teacher_version: teacher_version(manifest),
        })
    }

    /// Removes all but the `keep` latest publications; returns the versions removed. Each is
    /// renamed aside before it is deleted, so no half-deleted version is ever listed.
    pub fn prune(&self, keep: usize) -> io::Result<Vec<String>> {
        let mut removed = Vec::new();
        for old in self.kept()?.into_iter().skip(keep.max(1)) {
            let aside = self
                .versions_dir
                .join(format!(".rankdistill-pruned-{}", old.record.version));
            fs::rename(&old.dir, &aside)?;
            fs::remove_dir_all(&aside)?;
            removed.push(old.record.version);
        }
        Ok(removed)
    }

    /// The kept version named by `version`, or by a prefix of it that names exactly one.
    pub fn find(&self, version: &str) -> anyhow::Result<KeptVersion> {
        let kept = self
            .kept()
            .with_context(|| format!("cannot read {}", self.versions_dir.display()))?;
        let names = || {
            let list: Vec<&str> = kept.iter().map(|k| k.record.version.as_str()).collect();
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        };
        if version.is_empty() {
            bail!("--rollback-to needs a version; kept: {}", names());
        }
        let matches: Vec<&KeptVersion> = kept
            .iter()
            .filter(|k| k.record.version.starts_with(version))
            .collect();
        match matches.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!(
                "version '{version}' is not kept in {} (kept, latest first: {})",
                self.versions_dir.display(),
                names()
            ),
            _ => bail!(
                "'{version}' names {} kept versions; give more of it (kept: {})",
                matches.len(),
                names()
            ),
        }
    }

    /// Publishes the kept `version` again (after checking its weights against its manifest).
    pub fn rollback_to(&self, version: &str) -> anyhow::Result<PublishRecord> {
        let kept = self.find(version)?;
        artifact::load(&kept.dir, None).with_context(|| {
            format!(
                "the kept version {} is damaged; nothing was published",
                kept.record.version
            )
        })?;
        self.publish(&kept.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::artifact::{DataRef, ModelConfig};

    /// A fake artifact (manifest and weights bytes; not loadable weights) of `version`.
    fn artifact(root: &Path, version: &str) -> PathBuf {
        let dir = root.join(format!("art-{version}"));
        fs::create_dir_all(&dir).unwrap();
        let mut manifest = ArtifactManifest::new(
            ModelConfig::mf(2, 1, 1),
            DataRef {
                path: "d".into(),
                fingerprint: "f".into(),
            },
        );
        manifest.version = version.into();
        manifest.teacher = Some(serde_json::json!({"version": format!("t-{version}")}));
        fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        fs::write(dir.join(WEIGHTS_FILE), version.as_bytes()).unwrap();
        dir
    }

    fn served_version(published: &Published) -> String {
        published.current().unwrap().unwrap().version
    }

    #[test]
    fn publish_keeps_copies_orders_them_and_prunes_the_oldest() {
        let root = tempfile::tempdir().unwrap();
        let published = Published::new(&root.path().join("student")).unwrap();
        assert_eq!(published.versions_dir, root.path().join("student.versions"));
        assert_eq!(published.current().unwrap(), None);
        for v in ["aaaa1111", "bbbb2222", "cccc3333"] {
            let record = published.publish(&artifact(root.path(), v)).unwrap();
            assert_eq!(record.teacher_version.as_deref(), Some(&*format!("t-{v}")));
            assert_eq!(served_version(&published), v);
        }
        let order: Vec<u64> = published
            .kept()
            .unwrap()
            .iter()
            .map(|k| k.record.sequence)
            .collect();
        assert_eq!(order, vec![3, 2, 1]);
        // The served folder holds the artifact only.
        let mut files: Vec<String> = fs::read_dir(&published.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files, vec![MANIFEST_FILE, WEIGHTS_FILE]);
        assert_eq!(published.prune(2).unwrap(), vec!["aaaa1111".to_string()]);
        let names: Vec<String> = published
            .kept()
            .unwrap()
            .into_iter()
            .map(|k| k.record.version)
            .collect();
        assert_eq!(names, vec!["cccc3333", "bbbb2222"]);
        // Nothing but the kept versions is left in the versions folder.
        assert_eq!(fs::read_dir(&published.versions_dir).unwrap().count(), 2);
    }

    #[test]
    fn find_takes_a_unique_prefix_and_names_the_kept_versions() {
        let root = tempfile::tempdir().unwrap();
        let published = Published::new(&root.path().join("student")).unwrap();
        let e = published.find("abc").unwrap_err().to_string();
        assert!(e.contains("(kept, latest first: none)"), "{e}");
        for v in ["abc111", "abc222", "def333"] {
            published.publish(&artifact(root.path(), v)).unwrap();
        }
        assert_eq!(published.find("def").unwrap().record.version, "def333");
        assert_eq!(published.find("abc111").unwrap().record.version, "abc111");
        let e = published.find("abc").unwrap_err().to_string();
        assert!(e.contains("names 2 kept versions"), "{e}");
        let e = published.find("zzz").unwrap_err().to_string();
        assert!(e.contains("def333, abc222, abc111"), "{e}");
    }

    #[test]
    fn republishing_a_kept_version_makes_it_the_latest() {
        let root = tempfile::tempdir().unwrap();
        let published = Published::new(&root.path().join("student")).unwrap();
        for v in ["v1", "v2"] {
            published.publish(&artifact(root.path(), v)).unwrap();
        }
        let kept = published.find("v1").unwrap();
        let record = published.publish(&kept.dir).unwrap();
        assert_eq!(record.sequence, 3);
        assert_eq!(served_version(&published), "v1");
        assert_eq!(published.prune(1).unwrap(), vec!["v2".to_string()]);
    }

    #[test]
    fn a_student_served_before_refresh_is_kept_when_another_is_published() {
        let root = tempfile::tempdir().unwrap();
        let published = Published::new(&root.path().join("student")).unwrap();
        let first = artifact(root.path(), "job0");
        replace_dir_atomic(&published.dir, |staging| copy_artifact(&first, staging)).unwrap();
        let record = published.publish(&artifact(root.path(), "new1")).unwrap();
        assert_eq!(record.sequence, 2);
        let kept: Vec<(String, u64)> = published
            .kept()
            .unwrap()
            .into_iter()
            .map(|k| (k.record.version, k.record.sequence))
            .collect();
        assert_eq!(kept, vec![("new1".into(), 2), ("job0".into(), 1)]);
        assert_eq!(published.find("job").unwrap().record.version, "job0");
    }

    #[test]
    fn a_damaged_served_folder_is_reported() {
        let root = tempfile::tempdir().unwrap();
        let published = Published::new(&root.path().join("student")).unwrap();
        fs::create_dir_all(&published.dir).unwrap();
        fs::write(published.dir.join(MANIFEST_FILE), b"{").unwrap();
        assert!(
            published
                .current()
                .unwrap_err()
                .contains("not an artifact manifest")
        );
    }
}
