//! A server binary of the workspace run as a real process: started on the ephemeral ports its
//! arguments name, its `listening on` / `health on` / `metrics on` lines parsed, health
//! polled, signalled, and killed on drop.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use crate::health::{self, ServingStatus};
use crate::metrics;

/// How long a process may take to print its addresses or reach a health status, by default.
const DEFAULT_STARTUP: Duration = Duration::from_secs(60);

/// Which binary to start and how: the environment it must not inherit, the variables and
/// trailing arguments it always gets, and the gRPC service name its health reports.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    binary: PathBuf,
    service: &'static str,
    env_prefix: Option<&'static str>,
    envs: Vec<(String, String)>,
    trailing_args: Vec<OsString>,
    show_stderr: bool,
    startup: Duration,
}

impl ServerSpec {
    /// `binary` serving the gRPC service `service`; its stderr goes to the test's output.
    pub fn new(binary: impl Into<PathBuf>, service: &'static str) -> ServerSpec {
        ServerSpec {
            binary: binary.into(),
            service,
            env_prefix: None,
            envs: Vec::new(),
            trailing_args: Vec::new(),
            show_stderr: true,
            startup: DEFAULT_STARTUP,
        }
    }

    /// Removes every inherited variable starting with `prefix` (the binary's own flags), so a
    /// test does not depend on the caller's environment.
    pub fn without_env_prefix(mut self, prefix: &'static str) -> ServerSpec {
        self.env_prefix = Some(prefix);
        self
    }

    /// Sets an environment variable of the process.
    pub fn env(mut self, key: &str, value: &str) -> ServerSpec {
        self.envs.push((key.to_string(), value.to_string()));
        self
    }

    /// Appends these arguments after every command line.
    pub fn trailing_args(mut self, args: &[&str]) -> ServerSpec {
        self.trailing_args.extend(args.iter().map(OsString::from));
        self
    }

    /// Discards the process's stderr.
    pub fn quiet(mut self) -> ServerSpec {
        self.show_stderr = false;
        self
    }

    /// How long start-up (addresses, then health) may take.
    pub fn startup_timeout(mut self, timeout: Duration) -> ServerSpec {
        self.startup = timeout;
        self
    }

    /// The gRPC service name health checks use.
    pub fn service(&self) -> &'static str {
        self.service
    }

    /// The binary's file name, for messages.
    pub fn name(&self) -> String {
        self.binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The command line of the binary with `args`, before stdio is chosen.
    pub fn command<A: AsRef<std::ffi::OsStr>>(&self, args: &[A]) -> Command {
        let mut command = Command::new(&self.binary);
        command.args(args).args(&self.trailing_args);
        if let Some(prefix) = self.env_prefix {
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with(prefix) {
                    command.env_remove(key);
                }
            }
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    /// Starts the binary and waits for its `listening on` / `metrics on` lines.
    pub fn start<A: AsRef<std::ffi::OsStr>>(&self, args: &[A]) -> ServerProcess {
        ServerProcess::start(self, args)
    }

    /// Starts the binary and waits until health says SERVING.
    pub async fn start_serving<A: AsRef<std::ffi::OsStr>>(&self, args: &[A]) -> ServerProcess {
        let server = ServerProcess::start(self, args);
        server.wait_for_health(ServingStatus::Serving).await;
        server
    }

    /// Runs the binary expecting it to refuse to start: its exit status and stderr, or `None`
    /// when it was still running after the start-up timeout (it accepted its input and was
    /// killed).
    pub fn refusal<A: AsRef<std::ffi::OsStr>>(&self, args: &[A]) -> (Option<ExitStatus>, String) {
        let mut child = self
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name()));
        let mut stderr = child.stderr.take().expect("stderr");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + self.startup;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, reader.join().unwrap_or_default())
    }

    /// Runs the binary expecting it to refuse to start; returns its exit status and stderr,
    /// and panics when it did not exit within the start-up timeout.
    pub fn run_to_refusal<A: AsRef<std::ffi::OsStr>>(&self, args: &[A]) -> (ExitStatus, String) {
        match self.refusal(args) {
            (Some(status), stderr) => (status, stderr),
            (None, stderr) => panic!("{} did not refuse to start; stderr:\n{stderr}", self.name()),
        }
    }
}

/// A running server process; killed on drop if still running.
pub struct ServerProcess {
    child: Child,
    name: String,
    service: &'static str,
    startup: Duration,
    /// Stdout lines printed after the addresses (read on demand with [`Self::output`]).
    lines: Mutex<mpsc::Receiver<String>>,
    /// gRPC address.
    pub addr: SocketAddr,
    /// Metrics address.
    pub metrics_addr: SocketAddr,
    /// Plain-text health address (`--health-addr`), printed before the metrics address.
    pub health_addr: Option<SocketAddr>,
}

fn parse_addr(line: &str, prefix: &str) -> Option<SocketAddr> {
    line.strip_prefix(prefix)?.trim().parse().ok()
}

impl ServerProcess {
    /// Starts `spec`'s binary with `args` and waits for its `listening on` / `metrics on` lines.
    pub fn start<A: AsRef<std::ffi::OsStr>>(spec: &ServerSpec, args: &[A]) -> ServerProcess {
        let name = spec.name();
        let stderr = if spec.show_stderr {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let mut child = spec
            .command(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
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
        let deadline = Instant::now() + spec.startup;
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
                    let _ = child.wait();
                    panic!("{name} did not print its addresses: {e}");
                }
            }
        }
        ServerProcess {
            child,
            name,
            service: spec.service,
            startup: spec.startup,
            lines: Mutex::new(lines),
            addr: addr.expect("addr"),
            metrics_addr: metrics_addr.expect("metrics addr"),
            health_addr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The stdout lines printed since the addresses (or since the last call).
    pub fn output(&self) -> Vec<String> {
        self.lines
            .lock()
            .map(|lines| lines.try_iter().collect())
            .unwrap_or_default()
    }

    /// A connected plain-text channel.
    pub async fn channel(&self) -> Result<Channel, tonic::Status> {
        health::connect(self.url()).await
    }

    /// Health of `service` ("" = the whole server).
    pub async fn health(&self, service: &str) -> Result<ServingStatus, tonic::Status> {
        health::check(self.channel().await?, service).await
    }

    /// Polls health of both "" and the service until both report `status`.
    pub async fn wait_for_health(&self, status: ServingStatus) {
        let deadline = Instant::now() + self.startup;
        loop {
            let all = self.health("").await.ok() == Some(status)
                && self.health(self.service).await.ok() == Some(status);
            if all {
                return;
            }
            assert!(Instant::now() < deadline, "health never became {status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Self::wait_for_health`] SERVING from synchronous code (on its own small runtime).
    pub fn wait_serving_blocking(&self) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(self.wait_for_health(ServingStatus::Serving));
    }

    /// Polls until new connections are refused (the server stopped accepting).
    pub async fn wait_until_unreachable(&self) {
        let deadline = Instant::now() + self.startup;
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
        self.signal("TERM");
    }

    /// Sends a signal by name (TERM, HUP).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the process now and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
                "{} did not exit in time",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET /metrics (headers and body); asserts a 200.
    pub async fn metrics(&self) -> String {
        metrics::scrape(self.metrics_addr).await
    }

    /// The value of a metric line (exact name with labels), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        metrics::value(&self.metrics().await, name)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A gRPC server binary of the workspace as the tests see it: how to start it and the client
/// its API is called with. Implemented in the binary's own test crate, where
/// `env!("CARGO_BIN_EXE_...")` names the binary.
pub trait Service {
    /// The generated client of its API.
    type Client;
    /// How to start the binary.
    fn spec() -> ServerSpec;
    /// The client over a connected channel.
    fn client(channel: Channel) -> Self::Client;
    /// `client` sending and accepting messages up to `bytes` (both directions).
    fn message_limit(client: Self::Client, bytes: usize) -> Self::Client;
}

/// A running server of service `S`: the process (through `Deref`) and its typed client.
pub struct Server<S: Service> {
    process: ServerProcess,
    service: std::marker::PhantomData<S>,
}

impl<S: Service> Server<S> {
    /// Starts the binary and waits for its `listening on` / `metrics on` lines.
    pub fn start<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> Server<S> {
        Server {
            process: S::spec().start(args),
            service: std::marker::PhantomData,
        }
    }

    /// Starts the binary and waits until health says SERVING.
    pub async fn start_serving<A: AsRef<std::ffi::OsStr>>(args: &[A]) -> Server<S> {
        let server = Server::start(args);
        server.wait_for_health(ServingStatus::Serving).await;
        server
    }

    /// A connected client of the service.
    pub async fn client(&self) -> S::Client {
        S::client(self.channel().await.expect("connect"))
    }

    /// A connected client sending and accepting messages up to `bytes`.
    pub async fn client_with_limit(&self, bytes: usize) -> S::Client {
        S::message_limit(self.client().await, bytes)
    }
}

impl<S: Service> std::ops::Deref for Server<S> {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl<S: Service> std::ops::DerefMut for Server<S> {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

/// Declares `$name`, the [`Service`] of the workspace binary `$bin` of the calling test's own
/// package (found with `env!("CARGO_BIN_EXE_<bin>")`), serving the health name `$service`,
/// started without the caller's `$env_prefix*` variables, called with the generated client
/// `$client`.
#[macro_export]
macro_rules! grpc_service {
    ($(#[$doc:meta])* $name:ident, $client:ident, $bin:literal, $service:expr, $env_prefix:literal) => {
        $(#[$doc])*
        pub enum $name {}

        impl $crate::Service for $name {
            type Client = $client<$crate::Channel>;

            fn spec() -> $crate::ServerSpec {
                $crate::ServerSpec::new(env!(concat!("CARGO_BIN_EXE_", $bin)), $service)
                    .without_env_prefix($env_prefix)
            }

            fn client(channel: $crate::Channel) -> Self::Client {
                $client::new(channel)
            }

            fn message_limit(client: Self::Client, bytes: usize) -> Self::Client {
                client
                    .max_encoding_message_size(bytes)
                    .max_decoding_message_size(bytes)
            }
        }
    };
}
