//! `trainer pull`: pulls one shard of the teacher rankings into the cache folder (an Indexed
//! Job worker), or the whole cache with one shard.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use rankdistill_core::instances::WindowConfig;
use rankdistill_core::prepared::PreparedDataset;

use crate::output::Output;
use crate::pull::Shard;
use crate::ranking_cache::{self, CacheKey, ShardFile};
use crate::rd_loss::RdConfig;
use crate::teachers::{TeacherSource, Teachers, query_settings};

/// Settings of `trainer pull`.
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// Prepared dataset folder (the teachers must serve the same fingerprint).
    pub data: PathBuf,
    /// Teachers, cache and shards.
    pub source: TeacherSource,
    /// The shard to pull (`None`: `JOB_COMPLETION_INDEX`, else 0 with one shard).
    pub shard_index: Option<u32>,
    /// Training windows (as the student will use them).
    pub window: WindowConfig,
    /// Length K of the teacher rankings.
    pub k: usize,
    /// Teacher rankings also exclude the user's other training items.
    pub exclude_seen: bool,
}

/// What `trainer pull` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullOutcome {
    /// The shard pulled.
    pub shard: Shard,
    /// Its queries.
    pub queries: u64,
    /// Queries of the whole pull.
    pub total_queries: u64,
    /// "teacher", or "cache" when a valid file for this teacher was already there.
    pub source: &'static str,
    /// Seconds spent.
    pub seconds: f64,
    /// Retries the pull needed.
    pub retries: u32,
    /// Teacher endpoints.
    pub teachers: usize,
    /// The teacher's model version.
    pub teacher_version: String,
    /// The file written (or found).
    pub file: String,
}

/// The shard `trainer pull` works on: `--shard-index`, else `JOB_COMPLETION_INDEX` (Kubernetes
/// Indexed Jobs), else 0 when there is one shard.
fn shard_of(args: &PullSettings) -> anyhow::Result<Shard> {
    let count = args.source.shard_count;
    let index = match args.shard_index {
        Some(index) => index,
        None => match std::env::var("JOB_COMPLETION_INDEX") {
            Ok(value) => value.trim().parse().map_err(|_| {
                anyhow::anyhow!("JOB_COMPLETION_INDEX={value:?} is not a shard index")
            })?,
            Err(_) if count == 1 => 0,
            Err(_) => bail!(
                "give --shard-index (RD_SHARD_INDEX) with --shard-count {count}, or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)"
            ),
        },
    };
    Shard::new(index, count)
}

/// Runs `trainer pull`: pulls one shard of the teacher rankings into the cache folder (the
/// whole cache with `--shard-count 1`), unless a valid file for this teacher is already there.
pub fn run_pull(args: &PullSettings, out: &Output) -> anyhow::Result<PullOutcome> {
    let shard = shard_of(args)?;
    if args.source.teacher.is_empty() {
        bail!("no teacher: pass --teacher HOST:PORT[,...] (RD_TEACHER)");
    }
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let window = args.window;
    RdConfig {
        k: args.k,
        ..RdConfig::default()
    }
    .validate()
    .map_err(anyhow::Error::msg)?;
    let settings = query_settings(&data, window, args.k, args.exclude_seen);
    let teachers = Teachers::connect(&args.source, &data)?;
    let key = CacheKey {
        teacher: teachers.identity.clone(),
        settings: settings.clone(),
    };
    let dir = &args.source.cache_dir;
    let start = Instant::now();
    let cached = if shard == Shard::ALL {
        matches!(ranking_cache::load(dir, &key), Ok(Some(_))).then(|| key.path(dir))
    } else {
        match ranking_cache::load_shard(dir, &settings, shard) {
            ShardFile::Valid { path, teacher, .. } if teacher == key.teacher => Some(path),
            _ => None,
        }
    };
    let (source, retries, path) = match cached {
        Some(path) => ("cache", 0, path),
        None => {
            let (rankings, retries) = teachers.pull(&args.source, &settings, shard)?;
            let written = if shard == Shard::ALL {
                ranking_cache::store(dir, &key, &rankings)
            } else {
                ranking_cache::store_shard(dir, &key, shard, &rankings)
            };
            let path =
                written.with_context(|| format!("cannot write {shard} to {}", dir.display()))?;
            ("teacher", retries, path)
        }
    };
    let outcome = PullOutcome {
        shard,
        queries: shard.len(settings.num_queries),
        total_queries: settings.num_queries,
        source,
        seconds: start.elapsed().as_secs_f64(),
        retries,
        teachers: teachers.endpoints.len(),
        teacher_version: key.teacher.version.clone(),
        file: path.display().to_string(),
    };
    out.say(match source {
        "cache" => format!(
            "{shard}: {} of {} queries already in {} (teacher version {})",
            outcome.queries, outcome.total_queries, outcome.file, outcome.teacher_version
        ),
        _ => format!(
            "pulled {shard}: {} of {} queries from {} teacher(s) in {:.2}s ({} retries); wrote {}",
            outcome.queries,
            outcome.total_queries,
            outcome.teachers,
            outcome.seconds,
            outcome.retries,
            outcome.file
        ),
    });
    out.summary(format!(
        "pull: {shard}, {} queries from the {source} in {} ({} retries, {:.0} queries/s) -> {}",
        crate::output::thousands(outcome.queries as usize),
        crate::output::seconds(outcome.seconds),
        outcome.retries,
        outcome.queries as f64 / outcome.seconds.max(1e-9),
        outcome.file
    ));
    let mut json = serde_json::to_value(&outcome)?;
    json["command"] = "pull".into();
    out.json(&json)?;
    Ok(outcome)
}
