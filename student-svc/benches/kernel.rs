//! Scoring kernel microbenchmark: SIMD (run-time detected) vs scalar over a 100k-item table at
//! the student's Caser d=50 shape (query 2d = 100 floats, stride 104), one query and a batch
//! of 4; and a read-bandwidth probe over a buffer of the same size, the roofline the kernel
//! is compared against (criterion reports both as bytes/s: ratio = kernel / probe).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rankdistill_student::kernel::{Kernel, padded_dim};

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
        for kernel in [Kernel::detect(), Kernel::Scalar] {
            group.bench_function(format!("{}_{}q", kernel.name(), nq), |b| {
                b.iter(|| {
                    kernel.score_block(&rows, &bias, stride, black_box(&queries), &mut out);
                    black_box(out[0])
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
