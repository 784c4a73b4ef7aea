//! Scoring kernel microbenchmark: SIMD (run-time detected) vs scalar over a 100k-item table at
//! the student's Caser d=50 shape (query 2d = 100 floats, stride 104), one query and a batch
//! of 4; and a read-bandwidth probe over a buffer of the same size, the roofline the kernel
//! is compared against (criterion reports both as bytes/s of the f32 table: ratio = kernel /
//! probe).
//!
//! The int8 first pass (`int8_*`: integer dots, approximate scores, their bounds and the
//! candidate filter for k = 10 over the 100k items, stride 112 bytes + 16 bytes of row
//! constants + bias) reads ~3.2x fewer bytes; its roofline is the probe's time scaled by that ratio. `topk10_*` is the whole
//! `top_k_batch` for k = 10 on a random Caser d=50 student of 100k items: the int8 scan with
//! exact rescoring vs the f32 scan.
//!
//! `sasrec_query_l50_d50_2blocks` times SASRec's query encoding alone (`query_vector`, the
//! forward pass before the scan) at the reference shape (L = 50, d = 50, 2 blocks, 1 head)
//! with 10, 25 and 50 real items in the window (the rest left padding): the build for the
//! detected kernel's CPU features, and the portable one.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use rankdistill_core::artifact::{Artifact, ArtifactManifest, DataRef, ModelConfig, Weights};
use rankdistill_student::kernel::{Kernel, padded_dim};
use rankdistill_student::model::{QueryInput, Scan, StudentModel};
use rankdistill_student::quant::{Candidates, QuantQuery, QuantTable};

const ITEMS: usize = 100_000;
const QUERY_DIM: usize = 100;

fn table(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) - 0.5
        })
        .collect()
}

/// Streams the buffer once with 8 independent lanes (vectorised by the compiler): how fast
/// this machine can read the bytes a scan reads.
fn read_all(data: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    for chunk in data.chunks_exact(8) {
        for (a, x) in acc.iter_mut().zip(chunk) {
            *a += x;
        }
    }
    acc.iter().sum()
}

fn bench(c: &mut Criterion) {
    let stride = padded_dim(QUERY_DIM);
    let rows = table(ITEMS * stride, 1);
    let bias = table(ITEMS, 2);
    let bytes = ((rows.len() + bias.len()) * 4) as u64;
    let mut group = c.benchmark_group("scan_100k_items_2d100");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(30);
    group.bench_function("read_bandwidth_probe", |b| {
        b.iter(|| black_box(read_all(black_box(&rows))) + black_box(bias[0]))
    });
    for nq in [1usize, 4] {
        let queries = table(nq * stride, 3 + nq as u32);
        let mut out = vec![0f32; nq * ITEMS];
        for kernel in Kernel::supported() {
            group.bench_function(format!("{}_{}q", kernel.name(), nq), |b| {
                b.iter(|| {
                    kernel.score_block(&rows, &bias, stride, black_box(&queries), &mut out);
                    black_box(out[0])
                })
            });
        }
    }
    let qt = QuantTable::build(&rows, stride, QUERY_DIM, &bias);
    for nq in [1usize, 4] {
        let queries = table(nq * stride, 3 + nq as u32);
        let mut qcodes = vec![0i8; nq * qt.stride];
        let qq: Vec<QuantQuery> = queries
            .chunks_exact(stride)
            .zip(qcodes.chunks_exact_mut(qt.stride))
            .map(|(q, c)| QuantQuery::new(q, QUERY_DIM, c).unwrap())
            .collect();
        let mut dots = vec![0i32; nq * ITEMS];
        for kernel in Kernel::supported() {
            group.bench_function(format!("int8_{}_{}q", kernel.name(), nq), |b| {
                b.iter(|| {
                    kernel.dot_i8_block(&qt.codes, qt.stride, black_box(&qcodes), &mut dots);
                    // The bounds and the candidate filter for k = 10, as the scan runs them.
                    let mut kept = 0;
                    for (qi, q) in qq.iter().enumerate() {
                        let dq = &dots[qi * ITEMS..(qi + 1) * ITEMS];
                        let mut cands = Candidates::new(10);
                        cands.scan(q, &qt, 0, dq, &bias, &[]);
                        kept += cands.finish().len();
                    }
                    black_box(kept)
                })
            });
        }
    }
    group.finish();

    let mut topk = c.benchmark_group("topk10_100k_items_caser_d50");
    topk.sample_size(30);
    let caser = || random_student(ModelConfig::caser(50, 16, ITEMS as i64));
    let model = StudentModel::from_artifact(caser(), Kernel::detect()).unwrap();
    let queries: Vec<QueryInput> = (0..4u32)
        .map(|u| QueryInput {
            user: Some(u),
            inputs: (0..5)
                .map(|t| 1 + (u * 7919 + t * 104_729) % ITEMS as u32)
                .collect(),
        })
        .collect();
    let model_f32 = StudentModel::from_artifact(caser(), Kernel::detect())
        .unwrap()
        .with_scan(Scan::F32);
    for nq in [1usize, 4] {
        let excludes = vec![Vec::new(); nq];
        for (name, m) in [("int8_rescore", &model), ("f32", &model_f32)] {
            topk.bench_function(format!("{name}_{nq}q"), |b| {
                b.iter(|| black_box(m.top_k_batch(black_box(&queries[..nq]), 10, &excludes)))
            });
        }
    }
    topk.finish();

    let mut sasrec = c.benchmark_group("sasrec_query_l50_d50_2blocks");
    sasrec.sample_size(50);
    let items = 10_000u32;
    for kernel in [Kernel::detect(), Kernel::Scalar] {
        let model = StudentModel::from_artifact(
            random_student(ModelConfig::sasrec(50, 16, i64::from(items))),
            kernel,
        )
        .unwrap();
        let l = model.sequence_length();
        let mut out = vec![0f32; model.stride()];
        for real in [10usize, 25, 50] {
            let mut inputs = vec![0u32; l - real];
            inputs.extend((0..real as u32).map(|t| 1 + (t * 7919 + 17) % items));
            let query = QueryInput { user: None, inputs };
            sasrec.bench_function(format!("{}_{real}_real_items", kernel.name()), |b| {
                b.iter(|| {
                    model.query_vector(black_box(&query), &mut out);
                    black_box(out[0])
                })
            });
        }
        if kernel == Kernel::Scalar {
            break;
        }
    }
    sasrec.finish();
}

/// A student of shape `config` with uniform random weights in [-0.5, 0.5).
fn random_student(config: ModelConfig) -> Artifact {
    let mut seed = 11u32;
    let tensors = config
        .expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            seed += 1;
            let values = table(shape.iter().product(), seed);
            (name, (shape, values))
        })
        .collect();
    Artifact {
        manifest: ArtifactManifest::new(
            config,
            DataRef {
                path: "bench".into(),
                fingerprint: "bench".into(),
            },
        ),
        weights: Weights { tensors },
    }
}

/// The criterion group, in a private module: the `pub fn` the macro generates is not part of
/// any public API (so `missing_docs` does not ask for a doc it cannot carry).
mod group {
    use super::bench;
    use criterion::criterion_group;

    criterion_group!(benches, bench);
}

criterion_main!(group::benches);
