//! The teacher rankings a distillation trains on: from the cache when valid; else merged from
//! the shards `trainer pull` wrote; else pulled from the teachers (then cached).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rankdistill_core::instances::WindowConfig;
use rankdistill_core::prepared::PreparedDataset;

use crate::pull::{Rankings, Shard, TeacherIdentity};
use crate::ranking_cache::{self, CacheKey, QuerySettings};
use crate::teachers::{TeacherSource, Teachers, query_settings};

/// Where the rankings came from, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullReport {
    /// "cache", "teacher" or "shards" (merged from the files of `trainer pull`).
    pub source: &'static str,
    /// Seconds spent pulling (or reading the cache or the shards).
    pub seconds: f64,
    /// Retries the pull needed.
    pub retries: u32,
    /// Number of queries.
    pub queries: u64,
    /// Shards the rankings were pulled in (1: one pull of every query).
    pub shards: u32,
    /// Cache files read or written.
    pub cache_files: Vec<String>,
}

/// Merges the shards written by `trainer pull`, waiting up to `wait` for a complete, valid set.
fn merge_shards(
    source: &TeacherSource,
    shard_wait_s: u64,
    settings: &QuerySettings,
    teacher: Option<&TeacherIdentity>,
) -> anyhow::Result<ranking_cache::Merged> {
    let count = source.shard_count;
    let deadline = Instant::now() + Duration::from_secs(shard_wait_s);
    let mut last_problem = String::new();
    loop {
        match ranking_cache::merge_shards(&source.cache_dir, settings, count, teacher) {
            Ok(merged) => return Ok(merged),
            Err(problem) => {
                let now = Instant::now();
                if now >= deadline {
                    let waited = if shard_wait_s > 0 {
                        format!(" after waiting {} s (--shard-wait-s)", shard_wait_s)
                    } else {
                        String::new()
                    };
                    bail!(
                        "cannot merge the {count} shards of the teacher rankings in {}{waited}: {problem}",
                        source.cache_dir.display()
                    );
                }
                if problem != last_problem {
                    tracing::info!(%problem, "waiting for the shards of the teacher rankings");
                    last_problem = problem;
                }
                std::thread::sleep((deadline - now).min(Duration::from_millis(500)));
            }
        }
    }
}

/// Gets the rankings for every training instance: from the cache when valid; else, with
/// `--shard-count N > 1`, by merging the N shards that `trainer pull` wrote; else from the
/// teachers (then cached).
pub fn obtain_rankings(
    source: &TeacherSource,
    shard_wait_s: u64,
    data: &PreparedDataset,
    window: WindowConfig,
    k: usize,
    exclude_seen: bool,
) -> anyhow::Result<(Rankings, TeacherIdentity, PullReport)> {
    let count = source.shard_count;
    Shard::new(0, count)?;
    let settings = query_settings(data, window, k, exclude_seen);
    let teachers = if source.teacher.is_empty() {
        None
    } else {
        Some(Teachers::connect(source, data)?)
    };
    let start = Instant::now();
    let report = |source, retries, files: Vec<std::path::PathBuf>| PullReport {
        source,
        seconds: start.elapsed().as_secs_f64(),
        retries,
        queries: settings.num_queries,
        shards: count,
        cache_files: files.iter().map(|f| f.display().to_string()).collect(),
    };
    if let Some(teachers) = &teachers {
        let key = CacheKey {
            teacher: teachers.identity.clone(),
            settings: settings.clone(),
        };
        match ranking_cache::load(&source.cache_dir, &key) {
            Ok(Some(rankings)) => {
                let path = key.path(&source.cache_dir);
                tracing::info!(file = %path.display(), "teacher rankings read from the cache");
                return Ok((rankings, key.teacher, report("cache", 0, vec![path])));
            }
            Ok(None) => {}
            Err(reason) if count == 1 => {
                tracing::warn!(%reason, "ignoring an invalid rankings cache; pulling again")
            }
            Err(reason) => tracing::warn!(%reason, "ignoring an invalid rankings cache"),
        }
    }
    if count > 1 {
        let merged = merge_shards(
            source,
            shard_wait_s,
            &settings,
            teachers.as_ref().map(|t| &t.identity),
        )?;
        tracing::info!(shards = count, teacher = %merged.teacher.version, "teacher rankings merged from the shards");
        let report = report("shards", 0, merged.files);
        return Ok((merged.rankings, merged.teacher, report));
    }
    let Some(teachers) = teachers else {
        bail!(
            "no teacher: pass --teacher HOST:PORT[,...] (RD_TEACHER), or merge the shards of `trainer pull` with --shard-count N"
        );
    };
    let (rankings, retries) = teachers.pull(source, &settings, Shard::ALL)?;
    let key = CacheKey {
        teacher: teachers.identity.clone(),
        settings: settings.clone(),
    };
    let path = ranking_cache::store(&source.cache_dir, &key, &rankings).with_context(|| {
        format!(
            "cannot write the rankings cache {}",
            key.path(&source.cache_dir).display()
        )
    })?;
    let report = report("teacher", retries, vec![path]);
    tracing::info!(
        queries = settings.num_queries,
        seconds = report.seconds,
        retries,
        "teacher rankings pulled and cached"
    );
    Ok((rankings, key.teacher, report))
}
