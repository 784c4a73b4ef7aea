//! `trainer distill`: pull the teacher's rankings (or read them from the cache), train the
//! student with Ranking Distillation, and export the student artifact atomically.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_teacher::checkpoint::{self, CheckpointManifest};
use tch::Tensor;

use crate::cli::DistillArgs;
use crate::distill::RdConfig;
use crate::evaluate::HeldOut;
use crate::pull::{PullConfig, Rankings, agreed_identity, endpoint_url, pull_rankings};
use crate::ranking_cache::{self, CacheKey};
use crate::train::{Distillation, model_config, optim_config, train_model};

/// Where the rankings came from, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PullReport {
    /// "cache" or "teacher".
    pub source: &'static str,
    /// Seconds spent pulling (or reading the cache).
    pub seconds: f64,
    /// Retries the pull needed.
    pub retries: u32,
    /// Number of queries.
    pub queries: u64,
    /// Cache file.
    pub cache_file: String,
}

/// Gets the rankings for every training instance: from the cache when valid, else from the
/// teachers (then cached).
pub fn obtain_rankings(
    args: &DistillArgs,
    data: &PreparedDataset,
    window: WindowConfig,
    num_queries: u64,
    rd: &RdConfig,
) -> anyhow::Result<(Rankings, crate::pull::TeacherIdentity, PullReport)> {
    let endpoints: Vec<String> = args.teacher.iter().map(|e| endpoint_url(e)).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let identity = runtime.block_on(agreed_identity(&endpoints, &data.manifest.fingerprint))?;
    if identity.sequence_length as usize != window.sequence_length {
        bail!(
            "the teacher reads L = {} items but the student was asked for --seq-len {}; they must match so both see the same training queries",
            identity.sequence_length,
            window.sequence_length
        );
    }
    let key = CacheKey {
        teacher: identity.clone(),
        data_fingerprint: data.manifest.fingerprint.clone(),
        k: rd.k,
        sequence_length: window.sequence_length,
        target_length: window.target_length,
        exclude_seen: rd.exclude_seen,
        num_queries,
    };
    let cache_file = key.path(&args.cache_dir).display().to_string();
    let start = Instant::now();
    match ranking_cache::load(&args.cache_dir, &key) {
        Ok(Some(rankings)) => {
            tracing::info!(file = %cache_file, "teacher rankings read from the cache");
            let report = PullReport {
                source: "cache",
                seconds: start.elapsed().as_secs_f64(),
                retries: 0,
                queries: num_queries,
                cache_file,
            };
            return Ok((rankings, identity, report));
        }
        Ok(None) => {}
        Err(reason) => tracing::warn!(%reason, "ignoring an invalid rankings cache; pulling again"),
    }
    let config = PullConfig {
        endpoints,
        k: rd.k,
        target_length: window.target_length,
        exclude_seen: rd.exclude_seen,
        streams_per_endpoint: args.streams_per_teacher,
        batch_size: args.stream_batch,
        max_retries: args.max_retries,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(5),
        max_rate: args.pull_rate,
    };
    let (rankings, retries) = runtime.block_on(pull_rankings(&config, &identity, num_queries))?;
    let seconds = start.elapsed().as_secs_f64();
    ranking_cache::store(&args.cache_dir, &key, &rankings)
        .with_context(|| format!("cannot write the rankings cache {cache_file}"))?;
    tracing::info!(queries = num_queries, seconds, retries, file = %cache_file, "teacher rankings pulled and cached");
    Ok((
        rankings,
        identity,
        PullReport {
            source: "teacher",
            seconds,
            retries,
            queries: num_queries,
            cache_file,
        },
    ))
}

/// Runs `trainer distill`.
pub fn run_distill(args: &DistillArgs) -> anyhow::Result<CheckpointManifest> {
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let held_out: HeldOut = args.optim.eval_split.parse()?;
    let device = args.optim.device.device()?;
    let config = model_config(&args.model, &data, 50);
    let window = WindowConfig {
        sequence_length: args.model.sequence_length,
        target_length: args.model.target_length,
    };
    let rd = args.rd.config();
    rd.validate().map_err(anyhow::Error::msg)?;
    let num_queries = Instances::build(&data.split.train, window).len() as u64;
    let (rankings, teacher, pull) = obtain_rankings(args, &data, window, num_queries, &rd)?;
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
    println!(
        "rankings: {} queries from the {} in {:.2}s ({} retries)",
        pull.queries, pull.source, pull.seconds, pull.retries
    );
    println!(
        "distilled {} d={} ({} parameters; teacher {} d={} has {}) for {} epochs in {:.1}s",
        written.model.kind,
        written.model.dim,
        written.num_parameters,
        teacher.model_kind,
        teacher.dim,
        teacher.num_parameters,
        optim.epochs,
        trained.train_seconds
    );
    print!("{}", metrics.table());
    println!(
        "wrote student {} (version {})",
        args.out.display(),
        written.version
    );
    Ok(written)
}
