//! The teachers behind `--teacher`: connected, asked who they are (they must agree and serve
//! the same data), and pulled from.

use std::path::PathBuf;
use std::time::Duration;

use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::prepared::PreparedDataset;

use crate::pull::{PullConfig, Rankings, Shard, TeacherIdentity, agreed_identity, pull_rankings};
use crate::ranking_cache::QuerySettings;
use crate::tls::{TeacherTransport, TlsSettings};

/// Where the teacher rankings come from (`distill` and `pull`).
#[derive(Debug, Clone)]
pub struct TeacherSource {
    /// Teacher endpoints (host:port, http:// or https://host:port).
    pub teacher: Vec<String>,
    /// Folder of the teacher-rankings cache (and of the shards of `pull`).
    pub cache_dir: PathBuf,
    /// Parallel streams per teacher endpoint.
    pub streams_per_teacher: usize,
    /// Queries per streamed message.
    pub stream_batch: u32,
    /// Attempts per shard without progress before giving up.
    pub max_retries: u32,
    /// Cap on queries per second per stream.
    pub pull_rate: Option<f64>,
    /// Shards the pull is split into.
    pub shard_count: u32,
    /// TLS to the teachers and the message size limit.
    pub tls: TlsSettings,
}

/// The teachers behind `--teacher`, asked for who they are.
pub struct Teachers {
    /// The runtime the gRPC clients run on.
    pub(crate) runtime: tokio::runtime::Runtime,
    /// Endpoint URLs.
    pub endpoints: Vec<String>,
    /// Who they are (they agree).
    pub identity: TeacherIdentity,
    /// TLS and message limits.
    pub(crate) transport: TeacherTransport,
}

impl Teachers {
    /// Asks every endpoint for `Info`; they must agree and serve `data`. Their L may differ
    /// from the student's: each ranks the student's queries from its own last L items.
    pub fn connect(args: &TeacherSource, data: &PreparedDataset) -> anyhow::Result<Teachers> {
        let transport = TeacherTransport::new(&args.tls)?;
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
        Ok(Teachers {
            runtime,
            endpoints,
            identity,
            transport,
        })
    }

    /// Pulls the rankings of `shard`'s queries.
    pub fn pull(
        &self,
        args: &TeacherSource,
        settings: &QuerySettings,
        shard: Shard,
    ) -> anyhow::Result<(Rankings, u32)> {
        let config = PullConfig {
            endpoints: self.endpoints.clone(),
            k: settings.k,
            window: settings.window(),
            exclude_seen: settings.exclude_seen,
            streams_per_endpoint: args.streams_per_teacher,
            batch_size: args.stream_batch,
            max_retries: args.max_retries,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            max_rate: args.pull_rate,
            transport: match args.pull_rate {
                Some(_) => self.transport.clone().throttled(),
                None => self.transport.clone(),
            },
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
pub fn query_settings(
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
        query_set: window.query_set,
        exclude_seen,
        num_queries: Instances::of(&data.split.train, window).len() as u64,
    }
}
