//! Benchmark of StreamRankings end to end through gRPC, against the same work done by calling
//! the model in-process (same batch size: score all items, mask, top-k), on ML-100K and on a
//! synthetic set with 20k items. Caser d=100 (random init), L=5, T=1, K=10.
//!
//! Run: `cargo run --release -p rankdistill-teacher --bin teacher-bench`. Env: `RD_ML100K`
//! (u.data; default `../shared/data/ml-100k/u.data`), `RD_BENCH_OUT` (default
//! `runs/bench/teacher.json`), `RD_BENCH_DEVICE` (cpu|cuda|auto, default cpu),
//! `RD_BENCH_SYNTH_USERS` (default 20000), `RD_BENCH_REPEATS` (default 3; gRPC and
//! in-process alternate, the median counts). Writes JSON atomically and prints it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::SplitConfig;
use rankdistill_core::synthetic::SyntheticConfig;
use rankdistill_models::checkpoint::{self, CheckpointManifest, DataRef};
use rankdistill_models::{DeviceChoice, Model, ModelConfig};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{InfoRequest, StreamRankingsRequest};
use rankdistill_serving::listeners::Listeners;
use rankdistill_teacher::backend::{Backend, DataShape, LoadSpec, Scorer};
use rankdistill_teacher::catalog::{Catalog, ScoringQuery, TrainingShape};
use rankdistill_teacher::config::Config;
use rankdistill_teacher::engine::rank_batch;
use rankdistill_teacher::server;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const K: usize = 10;
const BATCH: usize = 256;
const DIM: i64 = 100;
const TARGET_LENGTH: usize = 1;

struct Case {
    name: &'static str,
    data: PathBuf,
    checkpoint: PathBuf,
    dataset: PreparedDataset,
}

fn prepare(name: &'static str, udata: &Path, work: &Path) -> anyhow::Result<Case> {
    let dataset = PreparedDataset::read(udata, SplitConfig::default())
        .with_context(|| format!("reading {}", udata.display()))?;
    let data = work.join(format!("{name}-prepared"));
    dataset.save(&data)?;
    tch::manual_seed(0);
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let model_config =
        ModelConfig::caser(DIM, dataset.num_users() as i64, dataset.num_items() as i64);
    let _model = Model::new(&vs.root(), &model_config);
    let checkpoint = work.join(format!("{name}-caser"));
    checkpoint::save(
        &checkpoint,
        &vs,
        CheckpointManifest::new(
            model_config,
            DataRef {
                path: data.display().to_string(),
                fingerprint: dataset.manifest.fingerprint.clone(),
            },
        ),
    )?;
    Ok(Case {
        name,
        data,
        checkpoint,
        dataset,
    })
}

fn device_choice() -> anyhow::Result<DeviceChoice> {
    let raw = std::env::var("RD_BENCH_DEVICE").unwrap_or_else(|_| "cpu".into());
    raw.to_ascii_lowercase()
        .parse::<DeviceChoice>()
        .map_err(|e| anyhow::anyhow!("RD_BENCH_DEVICE: {e}"))
}

/// A server started in-process on an ephemeral port, with a connected client.
struct GrpcBench {
    runtime: tokio::runtime::Runtime,
    client: TeacherServiceClient<tonic::transport::Channel>,
    server: tokio::task::JoinHandle<Result<(), rankdistill_teacher::error::StartupError>>,
    shutdown: CancellationToken,
}

impl GrpcBench {
    fn start(case: &Case, device: DeviceChoice) -> anyhow::Result<GrpcBench> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let (client, server, shutdown) = runtime.block_on(async {
            let mut config = Config::for_paths(case.data.clone(), case.checkpoint.clone());
            config.server.addr = "127.0.0.1:0".parse()?;
            config.server.metrics_addr = "127.0.0.1:0".parse()?;
            config.device = device;
            config.max_batch = BATCH as u32;
            let listeners = Listeners::bind(&config.server).await?;
            let url = format!("http://{}", listeners.grpc_addr()?);
            let shutdown = CancellationToken::new();
            let server = tokio::spawn(server::run(config, listeners, shutdown.clone()));
            loop {
                if server.is_finished() {
                    bail!("the server stopped during start-up");
                }
                if let Ok(mut client) = TeacherServiceClient::connect(url.clone()).await
                    && client.info(InfoRequest {}).await.is_ok()
                {
                    return Ok((client, server, shutdown));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })?;
        Ok(GrpcBench {
            runtime,
            client,
            server,
            shutdown,
        })
    }

    /// Streams every `shard_count`-th training query; returns (queries, seconds).
    fn stream(&mut self, shard_count: u32) -> anyhow::Result<(u64, f64)> {
        let client = &mut self.client;
        self.runtime.block_on(async {
            let started = Instant::now();
            let mut stream = client
                .stream_rankings(StreamRankingsRequest {
                    k: K as i32,
                    batch_size: BATCH as u32,
                    target_length: TARGET_LENGTH as u32,
                    shard_count,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let mut queries = 0u64;
            while let Some(batch) = stream.message().await? {
                queries += batch.rankings.len() as u64;
            }
            Ok((queries, started.elapsed().as_secs_f64()))
        })
    }

    fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.runtime.block_on(self.server)??;
        Ok(())
    }
}

/// The same work without gRPC: build each chunk's queries, forward, mask, top-k.
struct InProcessBench {
    backend: Backend,
    catalog: Catalog,
    instances: Arc<rankdistill_core::instances::Instances>,
}

impl InProcessBench {
    fn load(case: &Case, device: DeviceChoice) -> anyhow::Result<InProcessBench> {
        let device = device.resolve().map_err(anyhow::Error::msg)?;
        let shape = DataShape {
            path: case.data.clone(),
            fingerprint: case.dataset.manifest.fingerprint.clone(),
            num_users: case.dataset.num_users(),
            num_items: case.dataset.num_items(),
        };
        let backend = Backend::load(
            &LoadSpec {
                model: case.checkpoint.clone(),
                device,
                sequence_length: None,
            },
            &shape,
        )?;
        let catalog = Catalog::new(case.dataset.clone(), backend.description().sequence_length);
        let instances = catalog.training_queries(TrainingShape::windows(TARGET_LENGTH));
        Ok(InProcessBench {
            backend,
            catalog,
            instances,
        })
    }

    /// Ranks every `stride`-th training query; returns (queries, seconds).
    fn run(&self, stride: usize) -> anyhow::Result<(u64, f64)> {
        let _no_grad = tch::no_grad_guard();
        let started = Instant::now();
        let mut ranked = 0u64;
        let indices: Vec<usize> = (0..self.instances.len()).step_by(stride.max(1)).collect();
        for chunk in indices.chunks(BATCH) {
            let queries: Vec<ScoringQuery> = chunk
                .iter()
                .map(|&i| self.catalog.training_query(&self.instances, i, false))
                .collect();
            let refs: Vec<&ScoringQuery> = queries.iter().collect();
            ranked += rank_batch(&self.backend, &refs, K, BATCH, None)?.len() as u64;
        }
        Ok((ranked, started.elapsed().as_secs_f64()))
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn bench(case: &Case, device: DeviceChoice, repeats: usize) -> anyhow::Result<Value> {
    eprintln!(
        "{}: {} users, {} items",
        case.name,
        case.dataset.num_users(),
        case.dataset.num_items()
    );
    let mut grpc = GrpcBench::start(case, device)?;
    let local = InProcessBench::load(case, device)?;
    let queries = local.instances.len() as u64;
    // Warm both paths on about 8 full batches.
    let warm_stride = (queries as usize / (8 * BATCH)).max(1);
    grpc.stream(warm_stride as u32)?;
    local.run(warm_stride)?;
    let (mut grpc_seconds, mut local_seconds) = (Vec::new(), Vec::new());
    for repeat in 0..repeats {
        let (streamed, seconds) = grpc.stream(1)?;
        if streamed != queries {
            bail!("streamed {streamed} of {queries} queries");
        }
        grpc_seconds.push(seconds);
        let (ranked, seconds) = local.run(1)?;
        if ranked != queries {
            bail!("ranked {ranked} of {queries} queries in-process");
        }
        local_seconds.push(seconds);
        eprintln!(
            "  repeat {repeat}: gRPC {:.2} s, in-process {:.2} s",
            grpc_seconds[repeat], local_seconds[repeat]
        );
    }
    grpc.stop()?;
    let grpc_qps = queries as f64 / median(grpc_seconds.clone());
    let local_qps = queries as f64 / median(local_seconds.clone());
    let result = json!({
        "dataset": case.name,
        "users": case.dataset.num_users(),
        "items": case.dataset.num_items(),
        "queries": queries,
        "device": local.backend.description().device,
        "grpc": {"seconds": grpc_seconds, "queries_per_second": grpc_qps},
        "in_process": {"seconds": local_seconds, "queries_per_second": local_qps},
        "grpc_over_in_process_throughput": grpc_qps / local_qps,
    });
    eprintln!("{}", serde_json::to_string_pretty(&result)?);
    Ok(result)
}

struct WorkDir(PathBuf);

impl WorkDir {
    fn create() -> anyhow::Result<WorkDir> {
        let path = std::env::temp_dir().join(format!("teacher-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(WorkDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let device = device_choice()?;
    // Scratch space for the prepared data and checkpoints, removed at the end.
    let work = WorkDir::create()?;
    let mut cases = Vec::new();
    let ml = std::env::var_os("RD_ML100K")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/ml-100k/u.data"));
    if ml.exists() {
        cases.push(prepare("ml-100k", &ml, work.path())?);
    } else {
        eprintln!("{} not found: skipping ML-100K", ml.display());
    }
    let users = std::env::var("RD_BENCH_SYNTH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let synthetic = SyntheticConfig {
        users,
        items: 20_000,
        clusters: 200,
        mean_length: 20,
        min_length: 10,
        seed: 42,
        ..SyntheticConfig::default()
    };
    let udata = work.path().join("synthetic.data");
    synthetic.write_udata(&udata)?;
    cases.push(prepare("synthetic-20k", &udata, work.path())?);

    let repeats = std::env::var("RD_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let mut results = Vec::new();
    for case in &cases {
        results.push(bench(case, device, repeats)?);
    }
    let out = std::env::var_os("RD_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("runs/bench/teacher.json"));
    let report = json!({
        "benchmark": "teacher-svc StreamRankings: gRPC end to end vs in-process",
        "model": format!("caser d={DIM} random init"),
        "k": K,
        "batch_size": BATCH,
        "sequence_length": 5,
        "target_length": TARGET_LENGTH,
        "repeats": repeats,
        "statistic": "queries_per_second from the median of the repeats; seconds lists every repeat",
        "torch_threads": tch::get_num_threads(),
        "cpu_cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "results": results,
    });
    let text = serde_json::to_string_pretty(&report)?;
    rankdistill_core::atomic::write_atomic(&out, text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    println!("{text}");
    eprintln!("wrote {}", out.display());
    Ok(())
}
