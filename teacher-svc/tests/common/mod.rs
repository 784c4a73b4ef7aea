//! Shared fixtures of the integration tests: a small prepared dataset and a random-init
//! checkpoint in a temporary folder, and the real `teacher-svc` binary started on ephemeral
//! ports.
#![allow(dead_code)] // each test file uses a different subset

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rankdistill_core::dataset::read_interactions;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{SplitConfig, split};
use rankdistill_core::synthetic::SyntheticConfig;
use rankdistill_models::checkpoint::{self, CheckpointManifest, DataRef};
use rankdistill_models::model::{Model, ModelConfig};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use tch::{Device, nn};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// The gRPC service name health checks use.
pub const SERVICE: &str = "rankdistill.v1.TeacherService";
/// L of the fixture checkpoint.
pub const L: usize = 5;

/// A prepared dataset and a checkpoint trained on it (random init), in a temp folder.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The temp folder.
    pub root: PathBuf,
    /// Prepared dataset folder.
    pub data: PathBuf,
    /// Checkpoint folder.
    pub checkpoint: PathBuf,
    /// The dataset in memory.
    pub dataset: PreparedDataset,
    /// The checkpoint's manifest.
    pub manifest: CheckpointManifest,
}

impl Fixture {
    /// Synthetic data (some users short enough for padded windows) and a Caser d=8.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let udata = root.join("u.data");
        SyntheticConfig {
            users: 50,
            items: 60,
            clusters: 4,
            mean_length: 12,
            min_length: 4,
            seed: 11,
            ..SyntheticConfig::default()
        }
        .write_udata(&udata)
        .expect("synthetic data");
        let (format, rows) = read_interactions(&udata, None).expect("read");
        let config = SplitConfig::default();
        let dataset = PreparedDataset::new(
            split(&rows, config),
            udata.display().to_string(),
            format,
            config,
        );
        let data = root.join("prepared");
        dataset.save(&data).expect("save dataset");
        let checkpoint = root.join("checkpoint");
        let fingerprint = dataset.manifest.fingerprint.clone();
        let manifest = save_checkpoint(&dataset, &checkpoint, &fingerprint);
        Fixture {
            _dir: dir,
            root,
            data,
            checkpoint,
            dataset,
            manifest,
        }
    }

    /// A checkpoint like the fixture's but claiming another data fingerprint.
    pub fn checkpoint_for_other_data(&self) -> PathBuf {
        let path = self.root.join("checkpoint-other-data");
        save_checkpoint(&self.dataset, &path, "00000000000000000000000000000000");
        path
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

fn save_checkpoint(dataset: &PreparedDataset, dir: &Path, fingerprint: &str) -> CheckpointManifest {
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ModelConfig::caser(8, dataset.num_users() as i64, dataset.num_items() as i64);
    let _model = Model::new(&vs.root(), &config);
    checkpoint::save(
        dir,
        &vs,
        CheckpointManifest::new(
            config,
            DataRef {
                path: dir.display().to_string(),
                fingerprint: fingerprint.to_string(),
            },
        ),
    )
    .expect("save checkpoint")
}

/// A running `teacher-svc` process; killed on drop if still running.
pub struct Server {
    child: Child,
    /// gRPC address.
    pub addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// Plain-text health address (`--health-addr`), printed before the metrics address.
    pub health_addr: Option<SocketAddr>,
}

/// The binary's command line for a dataset and a model, on ephemeral ports, CPU.
pub fn args(data: &Path, model: &Path) -> Vec<OsString> {
    [
        "--data".into(),
        data.as_os_str().to_owned(),
        "--model".into(),
        model.as_os_str().to_owned(),
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--device".into(),
        "cpu".into(),
        "--torch-threads".into(),
        "1".into(),
        "--log-filter".into(),
        "info".into(),
    ]
    .to_vec()
}

fn command(args: &[OsString]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_teacher-svc"));
    command.args(args);
    // Keep the test independent of the caller's environment.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TEACHER_") {
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
            .expect("spawn teacher-svc");
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
                    panic!("teacher-svc did not print its addresses: {e}");
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

    /// A TeacherService client.
    pub async fn client(&self) -> TeacherServiceClient<Channel> {
        TeacherServiceClient::connect(self.url())
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
                "teacher-svc did not exit in time"
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

/// Runs the binary expecting it to refuse to start; returns its exit status and stderr.
pub fn run_to_refusal(args: &[OsString]) -> (ExitStatus, String) {
    let mut child = command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn teacher-svc");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("teacher-svc did not refuse to start; stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts two rankings agree: same length, same scores (tolerance) and the same items except
/// where two neighbours are tied within the tolerance and may swap.
pub fn assert_same_ranking(a: &[(String, f32)], b: &[(String, f32)], context: &str) {
    const TOL: f32 = 1e-4;
    assert_eq!(
        a.len(),
        b.len(),
        "{context}: lengths differ: {a:?} vs {b:?}"
    );
    for (i, ((ia, sa), (ib, sb))) in a.iter().zip(b).enumerate() {
        assert!(
            (sa - sb).abs() <= TOL,
            "{context}: score {i} differs: {a:?} vs {b:?}"
        );
        if ia != ib {
            let tied = |j: usize| j < a.len() && (a[j].1 - a[i].1).abs() <= TOL;
            assert!(
                (i > 0 && tied(i - 1)) || tied(i + 1),
                "{context}: item {i} differs without a tie: {a:?} vs {b:?}"
            );
        }
    }
}
