//! `trainer distill`: pull the teacher's rankings (or read them from the cache), train the
//! student with Ranking Distillation, and export the student artifact atomically.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint::{self, CheckpointManifest};
use tch::Tensor;

use crate::cli::{DistillArgs, PullArgs, TeacherArgs};
use crate::distill::RdConfig;
use crate::evaluate::HeldOut;
use crate::output::Output;
use crate::pull::{PullConfig, Rankings, Shard, TeacherIdentity, agreed_identity, pull_rankings};
use crate::ranking_cache::{self, CacheKey, QuerySettings, ShardFile};
use crate::train::{Distillation, model_config, optim_config, train_model};

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

/// The teachers behind `--teacher`, asked for who they are.
struct Teachers {
    runtime: tokio::runtime::Runtime,
    endpoints: Vec<String>,
    identity: TeacherIdentity,
    transport: crate::tls::TeacherTransport,
}

impl Teachers {
    /// Asks every endpoint for `Info`; they must agree, serve `data`, and read L items as
    /// `window` does.
    fn connect(
        args: &TeacherArgs,
        data: &PreparedDataset,
        window: WindowConfig,
    ) -> anyhow::Result<Teachers> {
        let transport = crate::tls::TeacherTransport::from_args(&args.tls)?;
        let endpoints = (args.teacher.iter())
            .map(|e| transport.endpoint_url(e))
            .collect::<anyhow::Result<Vec<String>>>()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let identity = runtime.block_on(agreed_identity(
            &endpoints,
            &transport,
            &data.manifest.fingerprint,
        ))?;
        if identity.sequence_length as usize != window.sequence_length {
            bail!(
                "the teacher reads L = {} items but the student was asked for --seq-len {}; they must match so both see the same training queries",
                identity.sequence_length,
                window.sequence_length
            );
        }
        Ok(Teachers {
            runtime,
            endpoints,
            identity,
            transport,
        })
    }

    /// Pulls the rankings of `shard`'s queries.
    fn pull(
        &self,
        args: &TeacherArgs,
        settings: &QuerySettings,
        shard: Shard,
    ) -> anyhow::Result<(Rankings, u32)> {
        let config = PullConfig {
            endpoints: self.endpoints.clone(),
            k: settings.k,
            target_length: settings.target_length,
            exclude_seen: settings.exclude_seen,
            streams_per_endpoint: args.streams_per_teacher,
            batch_size: args.stream_batch,
            max_retries: args.max_retries,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_rate: args.pull_rate,
            transport: self.transport.clone(),
        };
        let bar = crate::output::progress_bar(shard.len(settings.num_queries), "pull");
        let pulled = self.runtime.block_on(pull_rankings(
            &config,
            &self.identity,
            settings.num_queries,
            shard,
            &bar,
        ));
        bar.finish_and_clear();
        pulled
    }
}

/// The query settings of a pull over `data`'s training windows.
fn query_settings(
    data: &PreparedDataset,
    window: WindowConfig,
    k: usize,
    exclude_seen: bool,
) -> QuerySettings {
    QuerySettings {
        data_fingerprint: data.manifest.fingerprint.clone(),
        k,
        sequence_length: window.sequence_length,
        target_length: window.target_length,
        exclude_seen,
        num_queries: Instances::build(&data.split.train, window).len() as u64,
    }
}

/// Merges the shards written by `trainer pull`, waiting up to `wait` for a complete, valid set.
fn merge_shards(
    args: &DistillArgs,
    settings: &QuerySettings,
    teacher: Option<&TeacherIdentity>,
) -> anyhow::Result<ranking_cache::Merged> {
    let count = args.source.shard_count;
    let deadline = Instant::now() + Duration::from_secs(args.shard_wait_s);
    let mut last_problem = String::new();
    loop {
        match ranking_cache::merge_shards(&args.source.cache_dir, settings, count, teacher) {
            Ok(merged) => return Ok(merged),
            Err(problem) => {
                let now = Instant::now();
                if now >= deadline {
                    let waited = if args.shard_wait_s > 0 {
                        format!(" after waiting {} s (--shard-wait-s)", args.shard_wait_s)
                    } else {
                        String::new()
                    };
                    bail!(
                        "cannot merge the {count} shards of the teacher rankings in {}{waited}: {problem}",
                        args.source.cache_dir.display()
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
    args: &DistillArgs,
    data: &PreparedDataset,
    window: WindowConfig,
    rd: &RdConfig,
) -> anyhow::Result<(Rankings, TeacherIdentity, PullReport)> {
    let count = args.source.shard_count;
    Shard::new(0, count)?;
    let settings = query_settings(data, window, rd.k, rd.exclude_seen);
    let teachers = if args.source.teacher.is_empty() {
        None
    } else {
        Some(Teachers::connect(&args.source, data, window)?)
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
        match ranking_cache::load(&args.source.cache_dir, &key) {
            Ok(Some(rankings)) => {
                let path = key.path(&args.source.cache_dir);
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
        let merged = merge_shards(args, &settings, teachers.as_ref().map(|t| &t.identity))?;
        tracing::info!(shards = count, teacher = %merged.teacher.version, "teacher rankings merged from the shards");
        let report = report("shards", 0, merged.files);
        return Ok((merged.rankings, merged.teacher, report));
    }
    let Some(teachers) = teachers else {
        bail!(
            "no teacher: pass --teacher HOST:PORT[,...] (RD_TEACHER), or merge the shards of `trainer pull` with --shard-count N"
        );
    };
    let (rankings, retries) = teachers.pull(&args.source, &settings, Shard::ALL)?;
    let key = CacheKey {
        teacher: teachers.identity.clone(),
        settings: settings.clone(),
    };
    let path =
        ranking_cache::store(&args.source.cache_dir, &key, &rankings).with_context(|| {
            format!(
                "cannot write the rankings cache {}",
                key.path(&args.source.cache_dir).display()
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
fn shard_of(args: &PullArgs) -> anyhow::Result<Shard> {
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
pub fn run_pull(args: &PullArgs, out: &Output) -> anyhow::Result<PullOutcome> {
    let shard = shard_of(args)?;
    if args.source.teacher.is_empty() {
        bail!("no teacher: pass --teacher HOST:PORT[,...] (RD_TEACHER)");
    }
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let window = args.window.config();
    RdConfig {
        k: args.rankings.k,
        ..RdConfig::default()
    }
    .validate()
    .map_err(anyhow::Error::msg)?;
    let settings = query_settings(&data, window, args.rankings.k, args.rankings.exclude_seen);
    let teachers = Teachers::connect(&args.source, &data, window)?;
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
        crate::prepare::thousands(outcome.queries as usize),
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

/// Runs `trainer distill`.
pub fn run_distill(args: &DistillArgs, out: &Output) -> anyhow::Result<CheckpointManifest> {
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let held_out: HeldOut = args.optim.eval_split.parse()?;
    let device = args.optim.device.resolve()?;
    let config = model_config(&args.model, &data, 50);
    let window = args.model.window.config();
    let rd = args.rd.config();
    rd.validate().map_err(anyhow::Error::msg)?;
    let (rankings, teacher, pull) = obtain_rankings(args, &data, window, &rd)?;
    let num_queries = pull.queries;
    let optim = optim_config(&args.optim);
    let distillation = Distillation {
        rankings: Tensor::from_slice(&rankings.items.iter().map(|&i| i as i64).collect::<Vec<_>>())
            .view([num_queries as i64, rd.k as i64]),
        config: rd.clone(),
    };
    tracing::info!(model = %config.kind, dim = config.dim, teacher = %teacher.version, weighting = ?rd.weighting, "distilling");
    let trained = train_model(
        &data,
        &config,
        window,
        &optim,
        device,
        held_out,
        Some(&distillation),
    )?;
    let (mut manifest, metrics) = trained.manifest(
        config,
        &data,
        &args.data,
        &args.optim.eval_split,
        serde_json::json!({
            "method": "ranking-distillation",
            "window": window,
            "optim": optim,
            "rd": rd,
            "pull": pull,
        }),
    )?;
    manifest.teacher = Some(serde_json::to_value(&teacher)?);
    let written = checkpoint::save(&args.out, &trained.vs, manifest)?;
    out.say(format!(
        "rankings: {} queries from the {} in {:.2}s ({} retries)",
        pull.queries,
        match pull.source {
            "shards" => format!("{} shards", pull.shards),
            other => other.to_string(),
        },
        pull.seconds,
        pull.retries
    ));
    out.say(format!(
        "distilled {} d={} ({} parameters; teacher {} d={} has {}) for {} epochs in {:.1}s",
        written.model.kind,
        written.model.dim,
        written.num_parameters,
        teacher.model_kind,
        teacher.dim,
        teacher.num_parameters,
        optim.epochs,
        trained.train_seconds
    ));
    out.say(metrics.table());
    out.say(format!(
        "wrote student {} (version {})",
        args.out.display(),
        written.version
    ));
    out.summary(crate::train::run_summary(
        "distill", &args.out, &written, &trained, &metrics,
    ));
    let mut json = crate::train::run_json("distill", &args.out, &written, &trained, &metrics);
    json["teacher"] = serde_json::to_value(&teacher)?;
    json["pull"] = serde_json::to_value(&pull)?;
    json["rd"] = serde_json::to_value(&rd)?;
    out.json(&json)?;
    Ok(written)
}
