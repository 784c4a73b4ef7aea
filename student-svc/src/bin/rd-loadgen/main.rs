//! rd-loadgen: a closed-loop gRPC load generator for student-svc `Recommend` and teacher-svc
//! `Rank`. Each of `--concurrency` workers has its own connection and sends one request after
//! another (users drawn with a seed from the prepared dataset's users) for `--duration-s`
//! seconds or `--requests` requests in all, after a warm-up. Prints (and optionally writes) a
//! JSON report: QPS, latency percentiles, a latency histogram (log-spaced buckets, for
//! `trainer report`), errors by code. `https://` addresses connect over TLS (`--tls-ca`, and
//! `--tls-cert`/`--tls-key` for servers that require mutual TLS).
//!
//! `--addr` may list several replicas (comma-separated): requests then go round robin to the
//! replicas whose health check says SERVING (see `rotation`), and the report counts the
//! answers of each replica.

mod rotation;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_proto::v1::{Query, RankRequest, RecommendRequest};
use rankdistill_serving::limits::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES,
};
use rankdistill_serving::tls::ClientTlsFiles;
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

/// Which service to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Target {
    /// student-svc `StudentService/Recommend`.
    Student,
    /// teacher-svc `TeacherService/Rank`.
    Teacher,
}

/// rd-loadgen: closed-loop load for student-svc Recommend or teacher-svc Rank.
#[derive(Debug, Clone, Parser)]
#[command(name = "rd-loadgen", version, about)]
struct Args {
    /// Service to load.
    #[arg(long, env = "LOADGEN_TARGET", value_enum, default_value_t = Target::Student)]
    target: Target,
    /// Server address, or several replicas' addresses separated by commas (balanced by health).
    #[arg(long, env = "LOADGEN_ADDR", default_value = "http://127.0.0.1:50061")]
    addr: String,
    /// With several --addr replicas: how often each one's health is checked.
    #[arg(long, env = "LOADGEN_HEALTH_INTERVAL_MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(10..))]
    health_interval_ms: u64,
    /// Prepared dataset folder: requests use its raw user ids.
    #[arg(long, env = "LOADGEN_DATA")]
    data: PathBuf,
    /// Concurrent workers (one connection and one outstanding request each).
    #[arg(long, env = "LOADGEN_CONCURRENCY", default_value_t = 1)]
    concurrency: usize,
    /// Measured seconds (ignored when --requests is given).
    #[arg(long, env = "LOADGEN_DURATION_S", default_value_t = 10.0)]
    duration_s: f64,
    /// Measured requests in all, instead of a duration.
    #[arg(long, env = "LOADGEN_REQUESTS")]
    requests: Option<u64>,
    /// Unmeasured warm-up seconds.
    #[arg(long, env = "LOADGEN_WARMUP_S", default_value_t = 1.0)]
    warmup_s: f64,
    /// Items per answer.
    #[arg(long, env = "LOADGEN_K", default_value_t = 10)]
    k: i32,
    /// Seed of the user draw.
    #[arg(long, env = "LOADGEN_SEED", default_value_t = 0)]
    seed: u64,
    /// Also write the JSON report here.
    #[arg(long, env = "LOADGEN_OUT")]
    out: Option<PathBuf>,
    /// Largest gRPC message sent or received, in bytes.
    #[arg(long, env = "LOADGEN_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u32).range(MIN_MAX_MESSAGE_BYTES as i64..=MAX_MAX_MESSAGE_BYTES as i64))]
    max_message_bytes: u32,
    /// CA certificate (PEM) the server's certificate must chain to; needs an https:// --addr.
    #[arg(long, env = "LOADGEN_TLS_CA")]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for servers that require mutual TLS; needs --tls-key.
    #[arg(long, env = "LOADGEN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "LOADGEN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Name the server's certificate must carry, instead of the --addr host.
    #[arg(long, env = "LOADGEN_TLS_DOMAIN")]
    tls_domain: Option<String>,
}

impl Args {
    /// The replicas --addr lists.
    fn addrs(&self) -> Vec<String> {
        self.addr
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The endpoint for one --addr replica with the TLS settings.
    fn endpoint(&self, addr: &str) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::from_shared(addr.to_string())
            .with_context(|| format!("invalid --addr {addr}"))?
            .tcp_nodelay(true);
        let files = ClientTlsFiles {
            ca: self.tls_ca.clone(),
            cert: self.tls_cert.clone(),
            key: self.tls_key.clone(),
            domain: self.tls_domain.clone(),
        };
        let https = addr.starts_with("https://");
        match (https, files.any()) {
            (true, _) => Ok(endpoint.tls_config(files.load()?)?),
            (false, true) => anyhow::bail!("--tls-* options need an https:// --addr (got {addr})"),
            (false, false) => Ok(endpoint),
        }
    }
}

#[derive(Debug, Serialize)]
struct Latency {
    mean: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

/// Buckets per power of ten of the latency histogram.
const BUCKETS_PER_DECADE: u32 = 20;
/// Decades of microseconds covered by finite buckets: 1 µs to 100 s.
const DECADES: u32 = 8;

/// One histogram bucket: latencies in `[lo, hi)` milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Bucket {
    lo: f64,
    hi: f64,
    count: u64,
}

/// Latency histogram with log-spaced buckets.
#[derive(Debug, Serialize)]
struct Histogram {
    /// Unit of the bucket bounds.
    unit: &'static str,
    /// Buckets per power of ten.
    buckets_per_decade: u32,
    /// The buckets from the first to the last non-empty one (empty ones in between kept).
    buckets: Vec<Bucket>,
}

/// Bucket upper bounds in microseconds: 10^(i / BUCKETS_PER_DECADE) for i in 0..=DECADES*B.
fn bucket_bounds_us() -> Vec<f64> {
    (0..=BUCKETS_PER_DECADE * DECADES)
        .map(|i| 10f64.powf(i as f64 / BUCKETS_PER_DECADE as f64))
        .collect()
}

/// The histogram of latencies (microseconds): bucket 0 is [0, 1 µs), bucket i >= 1 is
/// [bound[i-1], bound[i]), the last one is open-ended (its `hi` is the largest latency).
fn histogram(latencies_us: &[u64]) -> Histogram {
    let bounds = bucket_bounds_us();
    let mut counts = vec![0u64; bounds.len() + 1];
    for &us in latencies_us {
        counts[bounds.partition_point(|&b| b <= us as f64)] += 1;
    }
    let max_ms = latencies_us.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
    let buckets = match (
        counts.iter().position(|&c| c > 0),
        counts.iter().rposition(|&c| c > 0),
    ) {
        (Some(first), Some(last)) => (first..=last)
            .map(|i| Bucket {
                lo: if i == 0 { 0.0 } else { bounds[i - 1] / 1000.0 },
                hi: bounds.get(i).map_or(max_ms, |b| b / 1000.0),
                count: counts[i],
            })
            .collect(),
        _ => Vec::new(),
    };
    Histogram {
        unit: "ms",
        buckets_per_decade: BUCKETS_PER_DECADE,
        buckets,
    }
}

#[derive(Debug, Serialize)]
struct Report {
    target: Target,
    addr: String,
    concurrency: usize,
    k: i32,
    seconds: f64,
    requests: u64,
    ok: u64,
    errors: u64,
    errors_by_code: BTreeMap<String, u64>,
    ok_by_addr: BTreeMap<String, u64>,
    qps: f64,
    latency_ms: Latency,
    histogram: Histogram,
}

enum Client {
    Student(StudentServiceClient<Channel>),
    Teacher(TeacherServiceClient<Channel>),
}

impl Client {
    async fn call(&mut self, user: &str, k: i32) -> Result<(), tonic::Status> {
        let query = Some(Query {
            user_id: user.to_string(),
            recent_items: vec![],
        });
        match self {
            Client::Student(c) => c
                .recommend(RecommendRequest {
                    query,
                    k,
                    exclude_items: vec![],
                    exclude_seen: Some(true),
                })
                .await
                .map(|_| ()),
            Client::Teacher(c) => c
                .rank(RankRequest {
                    query,
                    k,
                    exclude_items: vec![],
                    exclude_seen: true,
                })
                .await
                .map(|_| ()),
        }
    }
}

struct WorkerResult {
    latencies_us: Vec<u64>,
    errors: BTreeMap<String, u64>,
    ok_by_endpoint: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    mut clients: Vec<Client>,
    rotation: Arc<rotation::Rotation>,
    users: Arc<Vec<String>>,
    args: Arc<Args>,
    seed: u64,
    measure_from: Instant,
    until: Option<Instant>,
    budget: Arc<AtomicU64>,
) -> WorkerResult {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut result = WorkerResult {
        latencies_us: Vec::new(),
        errors: BTreeMap::new(),
        ok_by_endpoint: vec![0; clients.len()],
    };
    loop {
        let now = Instant::now();
        let measured = now >= measure_from;
        if let Some(until) = until
            && now >= until
        {
            break;
        }
        let Some(endpoint) = rotation.pick() else {
            // No replica is serving: wait for one, as a client behind a Service would.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if measured
            && until.is_none()
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .is_err()
        {
            break;
        }
        let user = &users[rng.random_range(0..users.len())];
        let started = Instant::now();
        let outcome = clients[endpoint].call(user, args.k).await;
        let elapsed = started.elapsed();
        if !measured {
            continue;
        }
        match outcome {
            Ok(()) => {
                result.latencies_us.push(elapsed.as_micros() as u64);
                result.ok_by_endpoint[endpoint] += 1;
            }
            Err(status) => {
                *result
                    .errors
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1
            }
        }
    }
    result
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

async fn run(args: Args) -> anyhow::Result<Report> {
    let users = rankdistill_core::prepared::read_users(&args.data)?;
    anyhow::ensure!(
        !users.is_empty(),
        "{} lists no users",
        args.data.join("users.txt").display()
    );
    let users = Arc::new(users);
    let args = Arc::new(args);
    let addrs = args.addrs();
    anyhow::ensure!(!addrs.is_empty(), "--addr lists no address");
    let endpoints = addrs
        .iter()
        .map(|a| args.endpoint(a))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let balanced = endpoints.len() > 1;
    // One replica: always in rotation, and a refused connection is an error at once. Several:
    // connections are lazy and the health watchers decide which replicas take requests.
    let rotation = Arc::new(rotation::Rotation::new(endpoints.len(), !balanced));
    if balanced {
        let service = match args.target {
            Target::Student => "rankdistill.v1.StudentService",
            Target::Teacher => "rankdistill.v1.TeacherService",
        };
        let interval = Duration::from_millis(args.health_interval_ms);
        for (i, endpoint) in endpoints.iter().enumerate() {
            tokio::spawn(rotation::watch(
                rotation.clone(),
                i,
                endpoint.connect_lazy(),
                service,
                interval,
            ));
        }
    }
    let limit = args.max_message_bytes as usize;
    let warmup = Duration::from_secs_f64(args.warmup_s.max(0.0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = match args.requests {
        Some(_) => None,
        None => Some(measure_from + Duration::from_secs_f64(args.duration_s)),
    };
    let budget = Arc::new(AtomicU64::new(args.requests.unwrap_or(0)));
    let mut tasks = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let mut clients = Vec::with_capacity(endpoints.len());
        for (endpoint, addr) in endpoints.iter().zip(&addrs) {
            let channel = if balanced {
                endpoint.connect_lazy()
            } else {
                endpoint
                    .connect()
                    .await
                    .with_context(|| format!("connecting to {addr}"))?
            };
            clients.push(match args.target {
                Target::Student => Client::Student(
                    StudentServiceClient::new(channel)
                        .max_decoding_message_size(limit)
                        .max_encoding_message_size(limit),
                ),
                Target::Teacher => Client::Teacher(
                    TeacherServiceClient::new(channel)
                        .max_decoding_message_size(limit)
                        .max_encoding_message_size(limit),
                ),
            });
        }
        tasks.push(tokio::spawn(worker(
            clients,
            rotation.clone(),
            users.clone(),
            args.clone(),
            args.seed.wrapping_add(w as u64),
            measure_from,
            until,
            budget.clone(),
        )));
    }
    let mut latencies = Vec::new();
    let mut errors_by_code: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok_by_addr: BTreeMap<String, u64> = addrs.iter().map(|a| (a.clone(), 0)).collect();
    for task in tasks {
        let r = task.await?;
        latencies.extend(r.latencies_us);
        for (addr, n) in addrs.iter().zip(r.ok_by_endpoint) {
            *ok_by_addr.entry(addr.clone()).or_default() += n;
        }
        for (code, n) in r.errors {
            *errors_by_code.entry(code).or_default() += n;
        }
    }
    let seconds = measure_from.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let errors: u64 = errors_by_code.values().sum();
    let mean = if ok > 0 {
        latencies.iter().sum::<u64>() as f64 / ok as f64 / 1000.0
    } else {
        0.0
    };
    Ok(Report {
        target: args.target,
        addr: args.addr.clone(),
        concurrency: args.concurrency.max(1),
        k: args.k,
        seconds,
        requests: ok + errors,
        ok,
        errors,
        errors_by_code,
        ok_by_addr,
        qps: ok as f64 / seconds.max(1e-9),
        latency_ms: Latency {
            mean,
            p50: percentile(&latencies, 0.50),
            p90: percentile(&latencies, 0.90),
            p99: percentile(&latencies, 0.99),
            p999: percentile(&latencies, 0.999),
            max: latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        },
        histogram: histogram(&latencies),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out = args.out.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(args))?;
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(path) = out {
        rankdistill_core::atomic::write_atomic(&path, json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_hold_every_latency_in_its_bounds() {
        let latencies: Vec<u64> = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            950,
            1000,
            1001,
            25_000,
            400_000_000,
        ];
        let h = histogram(&latencies);
        assert_eq!(
            h.buckets.iter().map(|b| b.count).sum::<u64>(),
            latencies.len() as u64
        );
        assert_eq!(h.buckets[0].lo, 0.0);
        for pair in h.buckets.windows(2) {
            assert_eq!(pair[0].hi, pair[1].lo, "contiguous");
            assert!(pair[0].lo < pair[0].hi);
        }
        for &us in &latencies {
            let ms = us as f64 / 1000.0;
            let inside = h
                .buckets
                .iter()
                .filter(|b| {
                    b.lo <= ms
                        && (ms < b.hi || (b.hi == h.buckets.last().unwrap().hi && ms == b.hi))
                })
                .count();
            assert_eq!(inside, 1, "{us} us falls in exactly one bucket");
        }
        // 20 buckets per decade: 100 us and 101 us share a bucket, 100 us and 99 us do not.
        let find = |us: u64| {
            let ms = us as f64 / 1000.0;
            h.buckets.iter().position(|b| b.lo <= ms && ms < b.hi)
        };
        assert_eq!(find(100), find(101));
        assert_ne!(find(99), find(100));
        // Beyond the last finite bound: one open bucket ending at the largest latency.
        assert_eq!(h.buckets.last().unwrap().hi, 400_000.0);
        assert!(histogram(&[]).buckets.is_empty());
    }
}
