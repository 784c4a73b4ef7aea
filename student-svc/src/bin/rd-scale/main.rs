//! rd-scale: the scale benchmark's two measurements that need the artifact itself
//! (`scripts/bench-scale.sh`), for an MF student (a query is a user's vector).
//!
//! - `vectors`: loads a student artifact, draws held-out queries (users with odd dense index,
//!   which the index's build-time tuning never uses), computes their exact top 10 with the
//!   exact f32 scan, and writes what the faiss baseline and the recall check read: the
//!   augmented item vectors `[row, bias]` and query vectors `[q, 1]` (raw little-endian f32,
//!   whose inner products are the served scores), the exact top 10 (dense ids, u32), the held-out
//!   users (dense, u32; raw ids in `users.txt`, for `rd-loadgen --data`) and `vectors.json`.
//! - `search`: the index in process on one thread, as student-svc builds it: recall@10 and
//!   single-query latency of the held-out queries (the like-for-like comparison with faiss).
//! - `recall`: asks a running student-svc for the top 10 of every held-out user over gRPC and
//!   prints recall@10 against the exact answers as JSON.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::artifact::{self, ModelKind};
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{Query, RecommendRequest};
use rankdistill_student::catalog::{Catalog, UnknownUser};
use rankdistill_student::kernel::Kernel;
use rankdistill_student::model::{IndexSettings, QueryInput, RECALL_AT, Scan, StudentModel};
use rankdistill_student::tuning::tuning_queries;
use serde_json::json;

/// rd-scale: held-out queries, exact answers and recall for the scale benchmark.
#[derive(Debug, Parser)]
#[command(name = "rd-scale", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Writes item and query vectors, exact top 10s and held-out users into --out.
    Vectors {
        /// Student artifact folder.
        #[arg(long)]
        model: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Held-out queries (users with odd dense index).
        #[arg(long, default_value_t = 10_000)]
        queries: usize,
        /// Seed of the user draw.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The index in process, one thread: builds it as student-svc does (same settings),
    /// then answers the held-out queries of --dir one at a time; prints recall@10 against the
    /// exact answers and single-query latency as JSON (the like-for-like comparison with
    /// faiss's single-query figures).
    Search {
        /// Student artifact folder.
        #[arg(long)]
        model: PathBuf,
        /// The folder `vectors` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// Lists scanned per query (0 = tuned to --target-recall, as student-svc).
        #[arg(long, default_value_t = 0)]
        probes: usize,
        /// Recall the tuning aims for.
        #[arg(long, default_value_t = 0.97)]
        target_recall: f64,
    },
    /// Recall@10 of a running student-svc on the held-out users of --dir.
    Recall {
        /// student-svc address.
        #[arg(long)]
        addr: String,
        /// The folder `vectors` wrote.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn write_f32(path: &Path, values: &[f32]) -> anyhow::Result<()> {
    let mut bytes = Vec::with_capacity(values.len() * 4);
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn vectors(model_dir: &Path, out: &Path, n: usize, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(out)?;
    let loaded = artifact::load(model_dir, None)
        .with_context(|| format!("cannot load {}", model_dir.display()))?;
    let manifest = loaded.manifest.clone();
    if manifest.model.kind != ModelKind::Mf {
        bail!(
            "rd-scale needs an MF student (its held-out queries are users alone), not {}",
            manifest.model.kind
        );
    }
    let model = StudentModel::from_artifact(loaded, Kernel::detect())?.with_scan(Scan::F32);
    let (items, users, qd) = (model.num_items(), model.num_users(), model.query_dim());
    let odd = users / 2;
    if odd == 0 {
        bail!("the model knows fewer than 2 users: no held-out users");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked: Vec<usize> = sample(&mut rng, odd, n.min(odd))
        .into_iter()
        .map(|j| 2 * j + 1)
        .collect();
    picked.sort_unstable();
    let queries: Vec<QueryInput> = picked
        .iter()
        .map(|&u| QueryInput {
            user: Some(u as u32),
            inputs: vec![0; model.sequence_length()],
        })
        .collect();
    // Augmented vectors: <[row, bias], [q, 1]> is the served score.
    let mut q = vec![0f32; model.stride()];
    let mut query_vectors = Vec::with_capacity(queries.len() * (qd + 1));
    for query in &queries {
        model.query_vector(query, &mut q);
        query_vectors.extend_from_slice(&q[..qd]);
        query_vectors.push(1.0);
    }
    write_f32(&out.join("queries.f32"), &query_vectors)?;
    let bias = model.item_bias();
    let mut item_vectors = Vec::with_capacity(items * (qd + 1));
    for (i, b) in bias.iter().enumerate() {
        item_vectors.extend_from_slice(model.item_vector(i));
        item_vectors.push(*b);
    }
    write_f32(&out.join("items.f32"), &item_vectors)?;
    drop(item_vectors);
    let started = Instant::now();
    let none = vec![Vec::new(); queries.len()];
    let mut truth = Vec::with_capacity(queries.len() * RECALL_AT);
    for (chunk, excl) in queries.chunks(256).zip(none.chunks(256)) {
        for answer in model.top_k_batch(chunk, RECALL_AT, excl) {
            truth.extend(answer.iter().map(|&(item, _)| item));
        }
    }
    let exact_s = started.elapsed().as_secs_f64();
    let bytes: Vec<u8> = truth.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out.join("truth.u32"), bytes)?;
    let bytes: Vec<u8> = picked
        .iter()
        .flat_map(|&u| (u as u32).to_le_bytes())
        .collect();
    std::fs::write(out.join("held_out.u32"), bytes)?;
    let raw_user = |u: usize| manifest.users.get(u).cloned().unwrap_or(u.to_string());
    let raw_item = |i: u32| {
        manifest
            .items
            .get(i as usize)
            .cloned()
            .unwrap_or(i.to_string())
    };
    let mut users_file = std::fs::File::create(out.join("users.txt"))?;
    let mut truth_file = std::fs::File::create(out.join("truth.txt"))?;
    for (qi, &u) in picked.iter().enumerate() {
        writeln!(users_file, "{}", raw_user(u))?;
        let line: Vec<String> = truth[qi * RECALL_AT..(qi + 1) * RECALL_AT]
            .iter()
            .map(|&i| raw_item(i))
            .collect();
        writeln!(truth_file, "{}", line.join(" "))?;
    }
    let meta = json!({
        "items": items,
        "dim": qd + 1,
        "queries": queries.len(),
        "k": RECALL_AT,
        "f32_table_bytes": items * qd * 4,
        "exact_scan_seconds": exact_s,
        "exact_scan_queries_per_s": queries.len() as f64 / exact_s,
    });
    std::fs::write(out.join("vectors.json"), serde_json::to_vec_pretty(&meta)?)?;
    println!("{meta}");
    Ok(())
}

async fn recall(addr: &str, dir: &Path) -> anyhow::Result<()> {
    let users = std::fs::read_to_string(dir.join("users.txt"))?;
    let truth = std::fs::read_to_string(dir.join("truth.txt"))?;
    let mut client = StudentServiceClient::connect(addr.to_string())
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let (mut hits, mut asked) = (0usize, 0usize);
    for (user, want) in users.lines().zip(truth.lines()) {
        let want: Vec<&str> = want.split(' ').collect();
        let answer = client
            .recommend(RecommendRequest {
                query: Some(Query {
                    user_id: user.to_string(),
                    recent_items: vec![],
                }),
                k: RECALL_AT as i32,
                exclude_items: vec![],
                exclude_seen: Some(false),
            })
            .await
            .with_context(|| format!("Recommend for user {user}"))?
            .into_inner();
        hits += answer
            .items
            .iter()
            .filter(|s| want.contains(&s.item_id.as_str()))
            .count();
        asked += want.len();
    }
    let report = json!({
        "queries": users.lines().count(),
        "recall_at_10": hits as f64 / asked.max(1) as f64,
    });
    println!("{report}");
    Ok(())
}

fn read_u32(path: &Path) -> anyhow::Result<Vec<u32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn search(model_dir: &Path, dir: &Path, probes: usize, target: f64) -> anyhow::Result<()> {
    let loaded = artifact::load(model_dir, None)?;
    let manifest = loaded.manifest.clone();
    let model = StudentModel::from_artifact(loaded, Kernel::detect())?;
    let users = model.num_users();
    let settings = IndexSettings {
        probes,
        target_recall: target,
        ..IndexSettings::default()
    };
    // The tuning queries student-svc draws without --data.
    let catalog = Catalog::new(&manifest, None, &[], UnknownUser::NotFound);
    let tuning = tuning_queries(
        &catalog,
        users,
        model.num_items(),
        model.sequence_length(),
        settings.tuning_queries,
        settings.seed,
    );
    let model = model.with_index(&settings, &tuning);
    let report = model.index_report().cloned().context("no index built")?;
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("vectors.json"))?)?;
    let n = meta["queries"].as_u64().unwrap_or(0) as usize;
    let truth = read_u32(&dir.join("truth.u32"))?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let queries: Vec<QueryInput> = read_u32(&dir.join("held_out.u32"))?
        .into_iter()
        .take(n)
        .map(|u| QueryInput {
            user: Some(u),
            inputs: vec![0; model.sequence_length()],
        })
        .collect();
    let none = [Vec::new()];
    let mut latency = Vec::with_capacity(n);
    let mut hits = 0usize;
    pool.install(|| {
        for (qi, query) in queries.iter().enumerate() {
            let started = Instant::now();
            let answer = model.top_k_batch(std::slice::from_ref(query), RECALL_AT, &none);
            latency.push(started.elapsed().as_secs_f64());
            let want = &truth[qi * RECALL_AT..(qi + 1) * RECALL_AT];
            hits += answer[0].iter().filter(|(i, _)| want.contains(i)).count();
        }
    });
    latency.sort_by(f64::total_cmp);
    let pct = |p: f64| latency[((latency.len() as f64 * p) as usize).min(latency.len() - 1)];
    let out = json!({
        "lists": report.lists,
        "probes": report.probes,
        "build_seconds": report.build_seconds,
        "tuning_recall_at_10": report.recall_at_10,
        "recall_by_probes": report.recall_by_probes,
        "queries": queries.len(),
        "recall_at_10": hits as f64 / (RECALL_AT * queries.len()).max(1) as f64,
        "p50_ms": pct(0.5) * 1e3,
        "p99_ms": pct(0.99) * 1e3,
        "qps_per_core": queries.len() as f64 / latency.iter().sum::<f64>(),
    });
    println!("{out}");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Vectors {
            model,
            out,
            queries,
            seed,
        } => vectors(&model, &out, queries, seed),
        Command::Search {
            model,
            dir,
            probes,
            target_recall,
        } => search(&model, &dir, probes, target_recall),
        Command::Recall { addr, dir } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(recall(&addr, &dir)),
    }
}
