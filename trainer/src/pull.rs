//! Pulls the teacher's top-K ranking of every training query over gRPC (StreamRankings),
//! sharded over all teacher endpoints in parallel, retrying with backoff and resuming from the
//! cursor after a dropped stream or a restarted teacher.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rankdistill_core::instances::{QuerySet, WindowConfig};
use rankdistill_proto::v1::{InfoRequest, ModelInfo, StreamRankingsRequest, TrainingQuerySet};
use serde::{Deserialize, Serialize};

use crate::tls::TeacherTransport;

/// Who produced a set of rankings: enough to tell whether a cache is still valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeacherIdentity {
    /// Model kind ("caser", "mf", "torchscript").
    pub model_kind: String,
    /// Model version (content hash of the weights).
    pub version: String,
    /// Fingerprint of the data it serves.
    pub data_fingerprint: String,
    /// Embedding dimension.
    pub dim: u32,
    /// Items it ranks.
    pub num_items: u32,
    /// Input length L.
    pub sequence_length: u32,
    /// Learnable parameters.
    pub num_parameters: u64,
}

impl From<ModelInfo> for TeacherIdentity {
    fn from(info: ModelInfo) -> Self {
        TeacherIdentity {
            model_kind: info.model_kind,
            version: info.version,
            data_fingerprint: info.data_fingerprint,
            dim: info.dim,
            num_items: info.num_items,
            sequence_length: info.sequence_length,
            num_parameters: info.num_parameters,
        }
    }
}

/// The wire value of a query set.
pub fn training_query_set(set: QuerySet) -> TrainingQuerySet {
    match set {
        QuerySet::Windows => TrainingQuerySet::Windows,
        QuerySet::Positions => TrainingQuerySet::Positions,
    }
}

/// What to pull and how.
#[derive(Debug, Clone)]
pub struct PullConfig {
    /// Teacher endpoints, e.g. `http://127.0.0.1:50051`.
    pub endpoints: Vec<String>,
    /// Ranking length K.
    pub k: usize,
    /// The training queries (the teacher builds the same ones, each input of its own L).
    pub window: WindowConfig,
    /// Also exclude each query's other training items.
    pub exclude_seen: bool,
    /// Parallel streams per endpoint.
    pub streams_per_endpoint: usize,
    /// Queries per streamed message.
    pub batch_size: u32,
    /// Attempts per shard without progress before giving up.
    pub max_retries: u32,
    /// First retry delay; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// Optional cap on queries per second per stream (protects shared teachers).
    pub max_rate: Option<f64>,
    /// TLS and message limit of the connections.
    pub transport: TeacherTransport,
}

/// Asks a teacher who it is. A teacher that is still starting (not reachable, or not yet
/// serving) is asked again with backoff for up to about a minute.
pub async fn identity(url: &str, transport: &TeacherTransport) -> anyhow::Result<TeacherIdentity> {
    // A malformed address is not a starting teacher: refuse it at once.
    tonic::transport::Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid teacher endpoint '{url}'"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            let mut client = transport.connect(url).await?;
            let info = client
                .info(InfoRequest {})
                .await
                .with_context(|| format!("Info from teacher {url}"))?
                .into_inner();
            Ok::<_, anyhow::Error>(info.into())
        }
        .await;
        match attempt {
            Ok(id) => return Ok(id),
            Err(e) if Instant::now() + backoff < deadline && is_transient(&e) => {
                tracing::info!(url, error = %e, "teacher not ready yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// True for errors that a starting, restarting or vanishing server gives: no connection,
/// UNAVAILABLE, or a call cut off with its connection (CANCELLED, or UNKNOWN carrying the
/// transport's error).
pub(crate) fn is_transient(error: &anyhow::Error) -> bool {
    if crate::tls::is_tls_failure(error) {
        return false;
    }
    match error.downcast_ref::<tonic::Status>() {
        Some(status) => match status.code() {
            tonic::Code::Unavailable | tonic::Code::Cancelled => true,
            tonic::Code::Unknown => std::error::Error::source(status).is_some(),
            _ => false,
        },
        None => error.downcast_ref::<tonic::transport::Error>().is_some(),
    }
}

/// Asks every endpoint who it is and checks that they all serve the same model on the same
/// data as `expected_fingerprint`.
pub async fn agreed_identity(
    endpoints: &[String],
    transport: &TeacherTransport,
    expected_fingerprint: &str,
) -> anyhow::Result<TeacherIdentity> {
    let mut agreed: Option<TeacherIdentity> = None;
    for url in endpoints {
        let id = identity(url, transport).await?;
        if id.data_fingerprint != expected_fingerprint {
            bail!(
                "teacher {url} serves data {} but the prepared dataset has fingerprint {expected_fingerprint}",
                id.data_fingerprint
            );
        }
        match &agreed {
            Some(first) if first != &id => bail!(
                "teachers disagree: {url} serves model version {} but another serves {}",
                id.version,
                first.version
            ),
            _ => agreed = Some(id),
        }
    }
    agreed.ok_or_else(|| anyhow::anyhow!("no teacher endpoint given"))
}

/// One shard of the training queries: those with `index % count == shard index`. The whole
/// set is shard 0 of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Which shard, `0..count`.
    pub index: u32,
    /// How many shards.
    pub count: u32,
}

impl Shard {
    /// Every query.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; refuses an empty split or an index out of range.
    pub fn new(index: u32, count: u32) -> anyhow::Result<Shard> {
        if count == 0 {
            bail!("--shard-count must be at least 1");
        }
        if index >= count {
            bail!(
                "--shard-index {index} is out of range: shards are 0..{count} (--shard-count {count})"
            );
        }
        Ok(Shard { index, count })
    }

    /// True when query `q` belongs to this shard.
    pub fn contains(&self, q: u64) -> bool {
        q % self.count as u64 == self.index as u64
    }

    /// Queries of this shard among `num_queries`.
    pub fn len(&self, num_queries: u64) -> u64 {
        num_queries
            .saturating_sub(self.index as u64)
            .div_ceil(self.count as u64)
    }

    /// Row of query `q` (which must belong to the shard) in the shard's rankings.
    pub fn row(&self, q: u64) -> usize {
        ((q - self.index as u64) / self.count as u64) as usize
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shard {} of {}", self.index, self.count)
    }
}

/// Rankings of a shard's queries (every query for [`Shard::ALL`]) in query order,
/// `rows x k` dense item ids and the teacher's scores of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Rankings {
    /// Ranking length.
    pub k: usize,
    /// Row-major items.
    pub items: Vec<u32>,
    /// Row-major scores, parallel to `items`.
    pub scores: Vec<f32>,
}

impl Rankings {
    /// Number of ranked queries.
    pub fn rows(&self) -> usize {
        self.items.len() / self.k.max(1)
    }

    /// Interleaves the rankings of shards `0..parts.len()` of `parts.len()` back into query
    /// order: row `r` of shard `i` is query `i + r * parts.len()`.
    pub fn merge(parts: &[Rankings], num_queries: u64) -> anyhow::Result<Rankings> {
        let count = parts.len() as u32;
        let k = parts.first().map_or(0, |p| p.k);
        let mut items = vec![0u32; num_queries as usize * k];
        let mut scores = vec![0f32; num_queries as usize * k];
        for (index, part) in parts.iter().enumerate() {
            let shard = Shard::new(index as u32, count)?;
            if part.k != k || part.rows() as u64 != shard.len(num_queries) {
                bail!(
                    "{shard} has {} rankings of {} items, expected {} of {k}",
                    part.rows(),
                    part.k,
                    shard.len(num_queries)
                );
            }
            for (row, (ranking, ranking_scores)) in part
                .items
                .chunks_exact(k.max(1))
                .zip(part.scores.chunks_exact(k.max(1)))
                .enumerate()
            {
                let q = index + row * count as usize;
                items[q * k..(q + 1) * k].copy_from_slice(ranking);
                scores[q * k..(q + 1) * k].copy_from_slice(ranking_scores);
            }
        }
        Ok(Rankings { k, items, scores })
    }
}

struct ShardResult {
    rows: Vec<(u64, Vec<u32>, Vec<f32>)>,
    retries: u32,
}

async fn pull_shard(
    config: &PullConfig,
    identity: &TeacherIdentity,
    url: &str,
    shard_index: u32,
    shard_count: u32,
    num_queries: u64,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ShardResult> {
    let expected_rows = Shard {
        index: shard_index,
        count: shard_count,
    }
    .len(num_queries) as usize;
    let mut rows: Vec<(u64, Vec<u32>, Vec<f32>)> = Vec::with_capacity(expected_rows);
    let mut cursor = 0u64;
    let mut failures = 0u32;
    let mut retries = 0u32;
    let mut cursor_at_failure = 0u64;
    let mut backoff = config.initial_backoff;
    loop {
        let attempt = async {
            let mut client = config.transport.connect(url).await?;
            // A restarted teacher must still be the same model.
            let now: TeacherIdentity = client.info(InfoRequest {}).await?.into_inner().into();
            if &now != identity {
                return Ok::<_, anyhow::Error>(Some(anyhow::anyhow!(
                    "teacher {url} changed from model version {} to {} during the pull",
                    identity.version,
                    now.version
                )));
            }
            let request = StreamRankingsRequest {
                k: config.k as i32,
                shard_index,
                shard_count,
                cursor,
                batch_size: config.batch_size,
                expected_data_fingerprint: identity.data_fingerprint.clone(),
                exclude_seen: config.exclude_seen,
                explicit: None,
                target_length: config.window.target_length as u32,
                query_length: config.window.sequence_length as u32,
                query_set: training_query_set(config.window.query_set) as i32,
            };
            let mut stream = client.stream_rankings(request).await?.into_inner();
            let started = Instant::now();
            let mut streamed = 0usize;
            while let Some(batch) = stream.message().await? {
                for ranking in batch.rankings {
                    let q = ranking.query_index;
                    if q >= num_queries || q % shard_count as u64 != shard_index as u64 || q < cursor
                    {
                        return Ok(Some(anyhow::anyhow!(
                            "teacher {url} sent query {q}, outside shard {shard_index}/{shard_count} after cursor {cursor}"
                        )));
                    }
                    if ranking.items.len() != config.k {
                        return Ok(Some(anyhow::anyhow!(
                            "teacher {url} ranked only {} items for query {q}, need K = {}",
                            ranking.items.len(),
                            config.k
                        )));
                    }
                    if ranking.scores.len() != config.k {
                        return Ok(Some(anyhow::anyhow!(
                            "teacher {url} sent {} scores for the {} items of query {q}",
                            ranking.scores.len(),
                            config.k
                        )));
                    }
                    if let Some(bad) = ranking.items.iter().find(|&&i| i >= identity.num_items) {
                        return Ok(Some(anyhow::anyhow!(
                            "teacher {url} sent item {bad} for query {q}, beyond its {} items",
                            identity.num_items
                        )));
                    }
                    rows.push((q, ranking.items, ranking.scores));
                    streamed += 1;
                    progress.inc(1);
                }
                cursor = cursor.max(batch.next_cursor);
                if let Some(rate) = config.max_rate {
                    let due = Duration::from_secs_f64(streamed as f64 / rate);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            Ok(None)
        }
        .await;
        match attempt {
            Ok(None) => break,
            Ok(Some(fatal)) => return Err(fatal),
            Err(e) => {
                // Progress since the last failure resets the retry budget.
                if cursor > cursor_at_failure {
                    failures = 0;
                    backoff = config.initial_backoff;
                }
                cursor_at_failure = cursor;
                failures += 1;
                retries += 1;
                if failures > config.max_retries {
                    return Err(e.context(format!(
                        "shard {shard_index}/{shard_count} from {url}: giving up after {} attempts",
                        failures
                    )));
                }
                tracing::warn!(url, shard_index, cursor, attempt = failures, error = %e, "teacher stream failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
    if rows.len() != expected_rows {
        bail!(
            "shard {shard_index}/{shard_count} from {url} ended with {} of {expected_rows} queries",
            rows.len()
        );
    }
    Ok(ShardResult { rows, retries })
}

/// Pulls the rankings of the training queries of `part` (every query for [`Shard::ALL`]): the
/// part is split into one stream per endpoint x `streams_per_endpoint`, spread over the
/// endpoints (stream `j` asks the teacher for shard `part.index + j * part.count` of
/// `part.count * streams`, whose queries all lie in `part`). `progress` counts the queries
/// received. Returns the part's rankings in query order and the number of retries.
pub async fn pull_rankings(
    config: &PullConfig,
    identity: &TeacherIdentity,
    num_queries: u64,
    part: Shard,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(Rankings, u32)> {
    if config.endpoints.is_empty() {
        bail!("no teacher endpoint given: pass --teacher URL[,URL...]");
    }
    let streams = (config.endpoints.len() * config.streams_per_endpoint.max(1)) as u32;
    let shard_count = part
        .count
        .checked_mul(streams)
        .ok_or_else(|| anyhow::anyhow!("--shard-count x streams overflows"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for stream in 0..streams {
        let url = config.endpoints[stream as usize % config.endpoints.len()].clone();
        let config = config.clone();
        let identity = identity.clone();
        let shard = part.index + stream * part.count;
        let progress = progress.clone();
        tasks.spawn(async move {
            pull_shard(
                &config,
                &identity,
                &url,
                shard,
                shard_count,
                num_queries,
                &progress,
            )
            .await
        });
    }
    let rows = part.len(num_queries) as usize;
    let mut items = vec![u32::MAX; rows * config.k];
    let mut scores = vec![0f32; rows * config.k];
    let mut retries = 0;
    while let Some(joined) = tasks.join_next().await {
        let shard = joined.context("a pull task panicked")??;
        retries += shard.retries;
        for (q, ranking, ranking_scores) in shard.rows {
            let row = part.row(q);
            items[row * config.k..(row + 1) * config.k].copy_from_slice(&ranking);
            scores[row * config.k..(row + 1) * config.k].copy_from_slice(&ranking_scores);
        }
    }
    if items.contains(&u32::MAX) {
        bail!("some queries of {part} have no ranking after the pull");
    }
    Ok((
        Rankings {
            k: config.k,
            items,
            scores,
        },
        retries,
    ))
}
