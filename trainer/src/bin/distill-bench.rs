//! Distillation speed benchmark, written as JSON: time to pull and cache every teacher ranking
//! through a real teacher-svc process, seconds per distillation epoch (position weights, and
//! hybrid weights with the sampled rank estimate every epoch), and the vectorised weight
//! computation against a per-position loop like the reference's, measured in the same run.
//!
//! Run: `cargo run -p rankdistill-trainer --bin distill-bench` (env `RD_ML100K` = u.data,
//! `RD_BENCH_OUT` = JSON path, default runs/bench/distill.json).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{SplitConfig, split};
use rankdistill_core::synthetic::SyntheticConfig;
use rankdistill_models::checkpoint::{self, CheckpointManifest, DataRef};
use rankdistill_models::model::{Model, ModelConfig};
use rankdistill_trainer::evaluate::HeldOut;
use rankdistill_trainer::pull::{PullConfig, Shard, agreed_identity, pull_rankings};
use rankdistill_trainer::rd_loss::{RdConfig, Weighting, position_weights, rd_weights};
use rankdistill_trainer::train::{
    Distillation, OptimConfig, Teaching, rankings_tensor, train_model,
};
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor, nn};

/// Stops the teacher process however the benchmark ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn teacher_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("exe");
    let bin = exe.parent().expect("dir").join("teacher-svc");
    assert!(
        bin.exists(),
        "build teacher-svc first: cargo build -p rankdistill-teacher"
    );
    bin
}

/// The reference's weight computation: one pass per teacher position.
fn per_position_weights(
    teacher: &Tensor,
    samples: &Tensor,
    num_items: i64,
    config: &RdConfig,
) -> Tensor {
    let n = samples.size()[1] as f64;
    let w_a = position_weights(config.k, config.lambda);
    let mut columns = Vec::with_capacity(config.k);
    for col in 0..config.k as i64 {
        let c = teacher.narrow(1, col, 1);
        let higher = samples
            .gt_tensor(&c)
            .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        let rank = (higher * ((num_items + 1) as f64 / n)).floor();
        columns.push(((rank - col as f64) * config.mu).clamp_min(0.0).tanh());
    }
    let w = Tensor::stack(&columns, 1) * w_a.unsqueeze(0);
    if !config.renormalise {
        return w.detach();
    }
    (&w / w
        .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
        .clamp_min(1e-12))
    .detach()
}

fn weights_ratio(num_items: i64) -> Value {
    tch::manual_seed(0);
    let config = RdConfig::default();
    let (b, k, n) = (512i64, config.k as i64, config.samples as i64);
    let teacher = Tensor::randn([b, k], (Kind::Float, Device::Cpu));
    let samples = Tensor::randn([b, n], (Kind::Float, Device::Cpu));
    let reps = 300;
    let time = |f: &dyn Fn() -> Tensor| {
        let _ = f();
        let start = Instant::now();
        for _ in 0..reps {
            let _ = f();
        }
        start.elapsed().as_secs_f64() / reps as f64
    };
    let vectorised = time(&|| {
        rd_weights(
            &config,
            b,
            Some((&teacher, &samples)),
            num_items,
            Device::Cpu,
        )
    });
    let looped = time(&|| per_position_weights(&teacher, &samples, num_items, &config));
    let same = rd_weights(
        &config,
        b,
        Some((&teacher, &samples)),
        num_items,
        Device::Cpu,
    )
    .allclose(
        &per_position_weights(&teacher, &samples, num_items, &config),
        1e-5,
        1e-6,
        false,
    );
    assert!(same, "vectorised and per-position weights differ");
    json!({ "batch": b, "k": k, "samples": n, "vectorised_seconds": vectorised,
            "per_position_seconds": looped, "speedup": looped / vectorised })
}

fn bench(name: &str, data: PreparedDataset, dir: &Path) -> Value {
    let data_dir = dir.join(format!("{name}-data"));
    data.save(&data_dir).expect("save data");
    // A random-init Caser d=100 teacher: speed does not depend on its quality.
    tch::manual_seed(1);
    let config = ModelConfig::caser(100, data.num_users() as i64, data.num_items() as i64);
    let vs = nn::VarStore::new(Device::Cpu);
    let _teacher = Model::new(&vs.root(), &config);
    let ck = dir.join(format!("{name}-teacher"));
    let manifest = CheckpointManifest::new(
        config,
        DataRef {
            path: data_dir.display().to_string(),
            fingerprint: data.manifest.fingerprint.clone(),
        },
    );
    checkpoint::save(&ck, &vs, manifest).expect("save teacher");
    let child = Command::new(teacher_bin())
        .args([
            "--data",
            data_dir.to_str().unwrap(),
            "--model",
            ck.to_str().unwrap(),
        ])
        .args([
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--device",
            "cpu",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start teacher-svc");
    let mut child = KillOnDrop(child);
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("teacher-svc exited").expect("line");
        if let Some(a) = line.strip_prefix("listening on ") {
            break format!("http://{}", a.trim());
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let window = WindowConfig::default();
    let queries = Instances::build(&data.split.train, window).len() as u64;
    let rd = RdConfig::default();
    let pull = PullConfig {
        endpoints: vec![addr],
        k: rd.k,
        window: WindowConfig::default(),
        exclude_seen: false,
        streams_per_endpoint: 2,
        batch_size: 256,
        max_retries: 3,
        initial_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_secs(2),
        max_rate: None,
        transport: rankdistill_trainer::tls::TeacherTransport::default(),
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let ready = Instant::now();
    let identity = runtime
        .block_on(agreed_identity(
            &pull.endpoints,
            &pull.transport,
            &data.manifest.fingerprint,
        ))
        .expect("identity");
    let teacher_ready_seconds = ready.elapsed().as_secs_f64();
    let start = Instant::now();
    let (rankings, _) = runtime
        .block_on(pull_rankings(
            &pull,
            &identity,
            queries,
            Shard::ALL,
            &indicatif::ProgressBar::hidden(),
        ))
        .expect("pull");
    let key = rankdistill_trainer::ranking_cache::CacheKey {
        teacher: identity,
        settings: rankdistill_trainer::ranking_cache::QuerySettings {
            data_fingerprint: data.manifest.fingerprint.clone(),
            k: rd.k,
            sequence_length: 5,
            target_length: 1,
            query_set: Default::default(),
            exclude_seen: false,
            num_queries: queries,
        },
    };
    rankdistill_trainer::ranking_cache::store(&dir.join("cache"), &key, &rankings).expect("cache");
    let pull_seconds = start.elapsed().as_secs_f64();
    drop(child);

    let student = ModelConfig::caser(50, data.num_users() as i64, data.num_items() as i64);
    let optim = OptimConfig {
        epochs: 1,
        ..OptimConfig::default()
    };
    let tensor = rankings_tensor(&rankings);
    let mut epochs = serde_json::Map::new();
    let mut phases = serde_json::Map::new();
    for (label, weighting) in [
        ("position", Weighting::Position),
        ("hybrid_dynamic", Weighting::Hybrid),
    ] {
        let distillation = Distillation {
            rankings: tensor.shallow_clone(),
            config: RdConfig {
                weighting,
                dynamic_start_epoch: 0, // dynamic from the first epoch
                ..rd.clone()
            },
        };
        let trained = train_model(
            &data,
            &student,
            window,
            &optim,
            Device::Cpu,
            HeldOut::Test,
            Teaching::Rd(&distillation),
        )
        .expect("distill");
        epochs.insert(label.into(), json!(trained.train_seconds));
        phases.insert(label.into(), json!(trained.epoch_phases.first()));
    }
    let out = json!({
        "dataset": name, "users": data.num_users(), "items": data.num_items(),
        "training_instances": queries,
        "teacher_ready_seconds": teacher_ready_seconds,
        "pull_and_cache_seconds": pull_seconds, "pull_queries_per_second": queries as f64 / pull_seconds,
        "seconds_per_epoch": epochs,
        "phase_seconds": phases,
        "instances_per_second_hybrid": queries as f64 / epochs["hybrid_dynamic"].as_f64().unwrap_or(f64::NAN),
        "weights_vectorised_vs_per_position": weights_ratio(data.num_items() as i64),
    });
    eprintln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ml = std::env::var_os("RD_ML100K")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/ml-100k/u.data"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results = Vec::new();
    if ml.exists() {
        let data = PreparedDataset::read(&ml, SplitConfig::default()).expect("read ML-100K");
        results.push(bench("ml-100k", data, dir.path()));
    } else {
        eprintln!("{} not found: skipping ML-100K", ml.display());
    }
    let synth = SyntheticConfig {
        users: 10_000,
        items: 20_000,
        clusters: 200,
        mean_length: 25,
        ..SyntheticConfig::default()
    };
    let rows: Vec<_> = synth
        .generate()
        .expect("generate")
        .iter()
        .map(|e| rankdistill_core::dataset::RawInteraction {
            user: e.user.to_string(),
            item: e.item.to_string(),
            timestamp: Some(e.timestamp),
        })
        .collect();
    let config = SplitConfig::default();
    let data = PreparedDataset::new(
        split(&rows, config),
        "synthetic".into(),
        rankdistill_core::dataset::Format::Movielens,
        config,
    );
    results.push(bench("synthetic-20k-items", data, dir.path()));
    let out = std::env::var_os("RD_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("runs/bench/distill.json"));
    let text = serde_json::to_string_pretty(&json!({
        "benchmark": "distill", "threads": tch::get_num_threads(), "results": results,
        "reference_seconds_per_epoch_note": "the reference spends about 120 s per epoch on a 60k-instance set on this kind of machine (issue text)",
    }))
    .expect("json");
    rankdistill_core::atomic::write_atomic(&out, text.as_bytes()).expect("write");
    println!("{text}\nwrote {}", out.display());
}
