//! Evaluation benchmark: times `metrics::evaluate` for POP and a dense dot-product model on
//! ML-100K (when present) and on a synthetic 50k-user x 20k-item set, and compares the
//! per-user cost with a naive full sort in the same run. Writes JSON.
//!
//! Run: `cargo bench -p rankdistill-core --bench evaluate` (env `RD_ML100K` points at u.data,
//! `RD_BENCH_OUT` at the JSON file; `RD_BENCH_QUICK=1` shrinks the synthetic set).

use std::path::PathBuf;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rankdistill_core::dataset::read_interactions;
use rankdistill_core::metrics::{EvalSet, evaluate, user_metrics};
use rankdistill_core::popularity::{fill_scores, popularity};
use rankdistill_core::split::{Split, SplitConfig, split};
use rankdistill_core::synthetic::SyntheticConfig;
use rankdistill_core::topk::ranking_order;
use rayon::prelude::*;
use serde_json::{Value, json};

const KS: [usize; 3] = [3, 5, 10];
const DIM: usize = 32;

fn factors(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n * DIM).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn dot_scores(users: &[u32], user_f: &[f32], item_f: &[f32], out: &mut [f32]) {
    let n_items = item_f.len() / DIM;
    out.par_chunks_mut(n_items)
        .zip(users.par_iter())
        .for_each(|(row, &u)| {
            let p = &user_f[u as usize * DIM..(u as usize + 1) * DIM];
            for (s, q) in row.iter_mut().zip(item_f.chunks_exact(DIM)) {
                *s = p.iter().zip(q).map(|(a, b)| a * b).sum();
            }
        });
}

/// The naive way: sort every item per user, then read metrics off the sorted list.
fn naive_user(scores: &[f32], exclude: &[u32], targets: &[u32]) -> f64 {
    let mut order: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .map(|(i, &s)| (i as u32, s))
        .filter(|(i, _)| !exclude.contains(i))
        .collect();
    order.sort_by(|a, b| ranking_order(*a, *b));
    let ranks: Vec<Option<usize>> = targets
        .iter()
        .map(|t| order.iter().position(|p| p.0 == *t))
        .collect();
    user_metrics(&ranks, &KS).ap
}

fn bench_split(name: &str, s: &Split) -> Value {
    let n_items = s.items.len();
    let set = EvalSet {
        exclude: &s.train,
        exclude_extra: None,
        targets: &s.test,
        num_items: n_items,
    };
    let pop = popularity(&s.train, n_items);
    let start = Instant::now();
    let pop_metrics = evaluate(&set, &KS, |users, out| fill_scores(&pop, users.len(), out));
    let pop_secs = start.elapsed().as_secs_f64();

    let user_f = factors(s.users.len(), 1);
    let item_f = factors(n_items, 2);
    let start = Instant::now();
    let dot_metrics = evaluate(&set, &KS, |users, out| {
        dot_scores(users, &user_f, &item_f, out)
    });
    let dot_secs = start.elapsed().as_secs_f64();

    // Per-user cost of the fast path against a full sort, on the same sample of users.
    let sample: Vec<u32> = (0..s.users.len() as u32)
        .filter(|&u| !s.test[u as usize].is_empty())
        .take(300)
        .collect();
    let mut scores = vec![0f32; sample.len() * n_items];
    dot_scores(&sample, &user_f, &item_f, &mut scores);
    let start = Instant::now();
    let mut fast_sum = 0.0;
    for (row, &u) in scores.chunks(n_items).zip(&sample) {
        let mut ex = s.train[u as usize].clone();
        ex.sort_unstable();
        ex.dedup();
        let mut tg = s.test[u as usize].clone();
        tg.sort_unstable();
        tg.dedup();
        fast_sum += user_metrics(&rankdistill_core::metrics::target_ranks(row, &ex, &tg), &KS).ap;
    }
    let fast_per_user = start.elapsed().as_secs_f64() / sample.len() as f64;
    let start = Instant::now();
    let mut naive_sum = 0.0;
    for (row, &u) in scores.chunks(n_items).zip(&sample) {
        let mut tg = s.test[u as usize].clone();
        tg.sort_unstable();
        tg.dedup();
        naive_sum += naive_user(row, &s.train[u as usize], &tg);
    }
    let naive_per_user = start.elapsed().as_secs_f64() / sample.len() as f64;
    assert!(
        (fast_sum - naive_sum).abs() < 1e-9,
        "fast and naive metrics differ"
    );

    let out = json!({
        "dataset": name,
        "users": s.users.len(),
        "items": n_items,
        "test_users": pop_metrics.users,
        "pop": { "seconds": pop_secs, "map": pop_metrics.map },
        "dot_d32": { "seconds": dot_secs, "map": dot_metrics.map },
        "per_user_metrics_seconds": { "fast": fast_per_user, "full_sort": naive_per_user,
            "speedup": naive_per_user / fast_per_user, "sample_users": sample.len() },
        "threads": rayon::current_num_threads(),
    });
    eprintln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    out
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let ml = std::env::var_os("RD_ML100K")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/data/ml-100k/u.data"));
    let mut results = Vec::new();
    if ml.exists() {
        let (_, rows) = read_interactions(&ml, None).expect("read ML-100K");
        results.push(bench_split(
            "ml-100k",
            &split(&rows, SplitConfig::default()),
        ));
    } else {
        eprintln!("{} not found: skipping ML-100K", ml.display());
    }
    let quick = std::env::var_os("RD_BENCH_QUICK").is_some();
    let config = SyntheticConfig {
        users: if quick { 5_000 } else { 50_000 },
        items: 20_000,
        clusters: 200,
        mean_length: 40,
        ..SyntheticConfig::default()
    };
    let start = Instant::now();
    let events = config.generate().expect("generate");
    let rows: Vec<_> = events
        .iter()
        .map(|e| rankdistill_core::dataset::RawInteraction {
            user: e.user.to_string(),
            item: e.item.to_string(),
            timestamp: Some(e.timestamp),
        })
        .collect();
    let s = split(&rows, SplitConfig::default());
    eprintln!(
        "synthetic: {} interactions generated and split in {:.1}s",
        rows.len(),
        start.elapsed().as_secs_f64()
    );
    results.push(bench_split("synthetic", &s));
    let out = std::env::var_os("RD_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("runs/bench/evaluate.json"));
    let text =
        serde_json::to_string_pretty(&json!({ "benchmark": "evaluate", "results": results }))
            .expect("json");
    rankdistill_core::atomic::write_atomic(&out, text.as_bytes()).expect("write bench json");
    println!("{text}");
    println!("wrote {}", out.display());
}
