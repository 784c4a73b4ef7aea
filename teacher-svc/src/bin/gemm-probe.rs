//! This machine's f32 GEMM peak as LibTorch reaches it: `x [m, k] . W^T` with W [n, k]
//! row-major (the layout of a model's item table), timed over a few large shapes and the
//! teacher's scoring shapes; the best of the repeats counts. Prints JSON:
//! `{threads, shapes: [{m, n, k, gflops}], peak_gflops}` (peak: the best of all shapes).
//!
//! Run: `gemm-probe [--threads N] [--shape MxNxK ...] [--seconds S]`.

use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tch::{Device, Kind, Tensor};

/// Times LibTorch f32 matmuls and prints the machine's GEMM peak as JSON.
#[derive(Debug, Parser)]
#[command(name = "gemm-probe")]
struct Args {
    /// LibTorch threads (0: LibTorch's default).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Extra shapes `MxNxK` (queries x items x query width) timed besides the standard ones.
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// Seconds spent on each shape, at least.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

/// The large shapes the peak is taken over (m, n, k).
const STANDARD: [(i64, i64, i64); 3] = [(1024, 4096, 1024), (512, 8192, 512), (256, 8192, 200)];

fn parse_shape(text: &str) -> anyhow::Result<(i64, i64, i64)> {
    let parts: Vec<i64> = text
        .split('x')
        .map(|p| p.parse::<i64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--shape {text}: expected MxNxK, e.g. 256x1613x200"))?;
    match parts[..] {
        [m, n, k] if m > 0 && n > 0 && k > 0 => Ok((m, n, k)),
        _ => bail!("--shape {text}: expected three positive sizes MxNxK"),
    }
}

/// The best GFLOP/s of `x.matmul(w.tr())` over at least `seconds`.
fn probe((m, n, k): (i64, i64, i64), seconds: f64) -> f64 {
    let x = Tensor::randn([m, k], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([n, k], (Kind::Float, Device::Cpu));
    let flops = 2.0 * (m * n * k) as f64;
    let _ = x.matmul(&w.tr());
    let started = Instant::now();
    let mut best = f64::INFINITY;
    while started.elapsed().as_secs_f64() < seconds || best.is_infinite() {
        let t = Instant::now();
        let _ = x.matmul(&w.tr());
        best = best.min(t.elapsed().as_secs_f64());
    }
    flops / best / 1e9
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    let _guard = tch::no_grad_guard();
    let mut shapes: Vec<(i64, i64, i64)> = STANDARD.to_vec();
    for text in &args.shapes {
        shapes.push(parse_shape(text)?);
    }
    let mut results = Vec::new();
    let mut peak: f64 = 0.0;
    for shape in shapes {
        let gflops = probe(shape, args.seconds);
        peak = peak.max(gflops);
        results.push(json!({"m": shape.0, "n": shape.1, "k": shape.2, "gflops": gflops}));
    }
    let report = json!({
        "threads": tch::get_num_threads(),
        "shapes": results,
        "peak_gflops": peak,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
