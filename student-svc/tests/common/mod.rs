//! Shared fixtures of the integration tests: a small prepared dataset and artifacts written
//! directly as safetensors (no LibTorch), and the real `student-svc` binary started on
//! ephemeral ports.
#![allow(dead_code)] // each test file uses a different subset

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankdistill_core::artifact::{
    self, ArtifactManifest, DataRef, MANIFEST_FILE, ModelConfig, WEIGHTS_FILE,
};
use rankdistill_core::atomic::replace_dir_atomic;
use rankdistill_core::dataset::read_interactions;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{SplitConfig, split};
use rankdistill_core::synthetic::SyntheticConfig;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The gRPC service name health checks use.
pub const SERVICE: &str = "rankdistill.v1.StudentService";

/// Writes an artifact folder atomically (staging folder + rename, as `trainer` does) with
/// seeded uniform weights; returns its manifest.
pub fn write_artifact(
    dir: &Path,
    config: &ModelConfig,
    seed: u64,
    users: &[String],
    items: &[String],
    fingerprint: &str,
) -> ArtifactManifest {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = config
        .expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let len: usize = shape.iter().product();
            let bytes = (0..len)
                .flat_map(|_| rng.random_range(-0.5f32..0.5).to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("tensor view"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).expect("serialize");
    let mut manifest = ArtifactManifest::new(
        config.clone(),
        DataRef {
            path: "test".into(),
            fingerprint: fingerprint.into(),
        },
    );
    manifest.version = artifact::weights_version(&bytes);
    manifest.num_parameters = config.num_parameters() as i64;
    manifest.users = users.to_vec();
    manifest.items = items.to_vec();
    replace_dir_atomic(dir, |staging| {
        std::fs::write(staging.join(WEIGHTS_FILE), &bytes)?;
        std::fs::write(
            staging.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
        )
    })
    .expect("write artifact");
    manifest
}

/// Replaces `dir` with a copy of `source` whose weights file is corrupted (the manifest's
/// version no longer matches the weights hash).
pub fn write_corrupt_copy(source: &Path, dir: &Path) {
    replace_dir_atomic(dir, |staging| {
        std::fs::copy(source.join(MANIFEST_FILE), staging.join(MANIFEST_FILE))?;
        let mut weights = std::fs::read(source.join(WEIGHTS_FILE))?;
        let n = weights.len();
        weights[n - 4..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        // Name another version so the watcher tries it.
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(source.join(MANIFEST_FILE))?)
                .map_err(std::io::Error::other)?;
        manifest["version"] = serde_json::Value::String("corrupt000000000".into());
        std::fs::write(
            staging.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(staging.join(WEIGHTS_FILE), weights)
    })
    .expect("write corrupt artifact");
}

/// A prepared dataset and a Caser artifact (random weights) trained "on" it.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The temp folder.
    pub root: PathBuf,
    /// Prepared dataset folder.
    pub data: PathBuf,
    /// Artifact folder.
    pub model: PathBuf,
    /// The dataset in memory.
    pub dataset: PreparedDataset,
    /// The artifact's model shape.
    pub config: ModelConfig,
    /// The artifact's manifest.
    pub manifest: ArtifactManifest,
}

impl Fixture {
    /// Synthetic data and a Caser d=8, L=3.
    pub fn new() -> Fixture {
        Fixture::with_items(60)
    }

    /// Synthetic data over `items` items and a Caser d=8, L=3.
    pub fn with_items(items: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let udata = root.join("u.data");
        SyntheticConfig {
            users: 50,
            items,
            clusters: 4,
            mean_length: 12,
            min_length: 4,
            seed: 11,
            ..SyntheticConfig::default()
        }
        .write_udata(&udata)
        .expect("synthetic data");
        let (format, rows) = read_interactions(&udata, None).expect("read");
        let split_config = SplitConfig::default();
        let dataset = PreparedDataset::new(
            split(&rows, split_config),
            udata.display().to_string(),
            format,
            split_config,
        );
        let data = root.join("prepared");
        dataset.save(&data).expect("save dataset");
        let mut config =
            ModelConfig::caser(8, dataset.num_users() as i64, dataset.num_items() as i64);
        config.sequence_length = 3;
        config.nh = 4;
        let model = root.join("student");
        let manifest = write_artifact(
            &model,
            &config,
            1,
            &dataset.split.users,
            &dataset.split.items,
            &dataset.manifest.fingerprint,
        );
        Fixture {
            _dir: dir,
            root,
            data,
            model,
            dataset,
            config,
            manifest,
        }
    }

    /// Writes a new version (other seed) into the served folder; returns its version.
    pub fn publish(&self, seed: u64) -> String {
        write_artifact(
            &self.model,
            &self.config,
            seed,
            &self.dataset.split.users,
            &self.dataset.split.items,
            &self.dataset.manifest.fingerprint,
        )
        .version
    }

    /// Raw id of dense item `i`.
    pub fn item(&self, i: u32) -> String {
        self.dataset.split.items[i as usize].clone()
    }

    /// Raw id of dense user `u`.
    pub fn user(&self, u: u32) -> String {
        self.dataset.split.users[u as usize].clone()
    }
}

/// Arguments for a server on ephemeral ports.
pub fn args(model: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "--model".into(),
        model.into(),
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ];
    out.extend(extra.iter().map(OsString::from));
    out
}

/// A running student-svc process.
pub struct Server {
    child: Child,
    /// gRPC address.
    pub addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// Plain-text health address (`--health-addr`), printed before the metrics address.
    pub health_addr: Option<SocketAddr>,
}

fn command(args: &[OsString]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_student-svc"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STUDENT_") {
            command.env_remove(key);
        }
    }
    command
}

fn parse_addr(line: &str, prefix: &str) -> Option<SocketAddr> {
    line.strip_prefix(prefix)?.trim().parse().ok()
}

impl Server {
    /// Starts the binary and waits for its `listening on` / `metrics on` lines.
    pub fn start(args: &[OsString]) -> Server {
        let mut child = command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn student-svc");
        let stdout = child.stdout.take().expect("stdout");
        let (lines_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    // Keep draining so the server never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut addr, mut metrics_addr, mut health_addr) = (None, None, None);
        while addr.is_none() || metrics_addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    addr = addr.or(parse_addr(&line, "listening on "));
                    health_addr = health_addr.or(parse_addr(&line, "health on "));
                    metrics_addr = metrics_addr.or(parse_addr(&line, "metrics on "));
                }
                Err(e) => {
                    let _ = child.kill();
                    panic!("student-svc did not print its addresses: {e}");
                }
            }
        }
        Server {
            child,
            addr: addr.expect("addr"),
            metrics_addr: metrics_addr.expect("metrics addr"),
            health_addr,
        }
    }

    /// Starts the binary and waits until health says SERVING.
    pub async fn start_serving(args: &[OsString]) -> Server {
        let server = Server::start(args);
        server.wait_for_health(ServingStatus::Serving).await;
        server
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A connected channel.
    pub async fn channel(&self) -> Result<Channel, tonic::Status> {
        tonic::transport::Endpoint::from_shared(self.url())
            .map_err(|e| tonic::Status::internal(e.to_string()))?
            .connect()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))
    }

    /// A StudentService client.
    pub async fn client(&self) -> StudentServiceClient<Channel> {
        StudentServiceClient::connect(self.url())
            .await
            .expect("connect")
    }

    /// Health of `service` ("" = the whole server).
    pub async fn health(&self, service: &str) -> Result<ServingStatus, tonic::Status> {
        let mut client = HealthClient::new(self.channel().await?);
        let response = client
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?
            .into_inner();
        ServingStatus::try_from(response.status).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Polls health of both "" and the service until both report `status`.
    pub async fn wait_for_health(&self, status: ServingStatus) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = self.health("").await.ok() == Some(status)
                && self.health(SERVICE).await.ok() == Some(status);
            if all {
                return;
            }
            assert!(Instant::now() < deadline, "health never became {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until new connections are refused (the server stopped accepting).
    pub async fn wait_until_unreachable(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.health("").await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the server kept accepting connections"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "student-svc did not exit in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET /metrics.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.metrics_addr)
            .await
            .expect("connect metrics");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Sends a signal by name (TERM, HUP).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// The value of a metric line (exact name with labels), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    }
}

/// Runs the binary expecting it to refuse to start; returns its exit status and stderr.
pub fn run_to_refusal(args: &[OsString]) -> (ExitStatus, String) {
    let output = command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run student-svc");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
