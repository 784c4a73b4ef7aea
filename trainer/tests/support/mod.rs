//! Harness for the trainer tests that need servers: teacher-svc (and student-svc) as real
//! processes on ephemeral loopback ports, and the trainer binary with a chosen environment.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A binary of the workspace built beside the test executable (`cargo test --workspace`
/// builds every binary).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --workspace --bins` (the workspace test run does)",
        bin.display()
    );
    bin
}

/// The path as a string argument.
pub fn p(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_string()
}

/// The trainer binary with `args`, quiet logs and no inherited shard environment.
pub fn trainer_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("RD_SHARD_INDEX")
        .env_remove("RD_SHARD_COUNT")
        .env_remove("RD_JSON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the trainer to the end; panics with its stderr when it fails.
pub fn trainer_ok(args: &[&str]) -> String {
    let out = trainer_command(args).output().expect("run trainer");
    assert!(
        out.status.success(),
        "trainer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stdout and stderr of a finished process.
pub fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A synthetic dataset prepared in `dir/data`, and a Caser teacher of `dim` trained on it for
/// `epochs` in `dir/teacher` (extra flags appended to `train`).
pub fn dataset_and_teacher(dir: &Path, users: &str, items: &str, seed: &str, train: &[&str]) {
    let udata = dir.join("u.data");
    trainer_ok(&[
        "gen-synthetic",
        "--out",
        &p(&udata),
        "--users",
        users,
        "--items",
        items,
        "--seed",
        seed,
    ]);
    trainer_ok(&[
        "prepare",
        "--input",
        &p(&udata),
        "--out",
        &p(&dir.join("data")),
    ]);
    let mut args = vec![
        "train".to_string(),
        "--data".into(),
        p(&dir.join("data")),
        "--out".into(),
        p(&dir.join("teacher")),
    ];
    args.extend(train.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    trainer_ok(&args);
}

/// A server process that printed `listening on ADDR` (and `metrics on ADDR`); killed on drop.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its gRPC address.
    pub addr: String,
    /// Its metrics address.
    pub metrics: String,
}

impl Server {
    /// Starts `bin` with `args` and waits for both addresses.
    pub fn start(bin: &Path, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(args)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            assert!(
                Instant::now() < deadline,
                "{} did not report its addresses",
                bin.display()
            );
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{} exited", bin.display()))
                .expect("read line");
            if let Some(a) = line.strip_prefix("listening on ") {
                addr = Some(a.trim().to_string());
            } else if let Some(a) = line.strip_prefix("metrics on ") {
                metrics = Some(a.trim().to_string());
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr: addr.unwrap_or_default(),
            metrics: metrics.unwrap_or_default(),
        }
    }

    /// teacher-svc on `data` and `model`, on an ephemeral port, on the CPU.
    pub fn teacher(data: &Path, model: &Path) -> Server {
        Server::start(
            &workspace_bin("teacher-svc"),
            &[
                "--data",
                &p(data),
                "--model",
                &p(model),
                "--addr",
                "127.0.0.1:0",
                "--device",
                "cpu",
            ],
        )
    }

    /// student-svc serving the artifact `model` with the users of `data`.
    pub fn student(data: &Path, model: &Path) -> Server {
        Server::start(
            &workspace_bin("student-svc"),
            &[
                "--data",
                &p(data),
                "--model",
                &p(model),
                "--addr",
                "127.0.0.1:0",
            ],
        )
    }

    /// Waits until the gRPC health service answers SERVING for `service`.
    pub fn wait_serving(&self, service: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let deadline = Instant::now() + Duration::from_secs(120);
        runtime.block_on(async {
            loop {
                assert!(Instant::now() < deadline, "{service} never became SERVING");
                let url = format!("http://{}", self.addr);
                if let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
                    .expect("url")
                    .connect()
                    .await
                {
                    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                    let request = tonic_health::pb::HealthCheckRequest {
                        service: service.to_string(),
                    };
                    if let Ok(r) = health.check(request).await
                        && r.into_inner().status
                            == tonic_health::pb::health_check_response::ServingStatus::Serving
                                as i32
                    {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
