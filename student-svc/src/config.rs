//! Command-line and environment configuration of student-svc. Every flag has an environment
//! variable and a default that works on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rankdistill_proto::transport::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES, ServerTlsFiles,
};

use crate::admin::Secret;
use crate::kernel::Kernel;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

pub use crate::catalog::UnknownUser;

/// `--unknown-user`: the catalog's policy, named on the command line (the domain type stays
/// free of clap).
impl ValueEnum for UnknownUser {
    fn value_variants<'a>() -> &'a [Self] {
        &[UnknownUser::NotFound, UnknownUser::Popularity]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        use clap::builder::PossibleValue;
        Some(match self {
            UnknownUser::NotFound => PossibleValue::new("not-found").help("Answer NOT_FOUND"),
            UnknownUser::Popularity => PossibleValue::new("popularity").help(
                "Answer the most popular items (training counts with --data, else the model's \
                 item bias order), flagged `fallback: true`",
            ),
        })
    }
}

/// Which dot-product kernel scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KernelChoice {
    /// The fastest this CPU supports.
    Auto,
    /// AVX2 with FMA (refuses to start without them).
    Avx2,
    /// The portable reference.
    Scalar,
}

/// How the item table is scanned for the top k (both exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanChoice {
    /// int8 first pass with per-row error bounds, candidates rescored exactly in f32.
    Int8,
    /// Every item scored in f32.
    F32,
}

impl ScanChoice {
    /// The model's scan.
    pub fn scan(self) -> crate::model::Scan {
        match self {
            ScanChoice::Int8 => crate::model::Scan::Int8,
            ScanChoice::F32 => crate::model::Scan::F32,
        }
    }
}

impl KernelChoice {
    /// Resolves the choice against this CPU.
    pub fn resolve(self) -> Result<Kernel, &'static str> {
        match self {
            KernelChoice::Auto => Ok(Kernel::detect()),
            KernelChoice::Scalar => Ok(Kernel::Scalar),
            KernelChoice::Avx2 if Kernel::Avx2Fma.is_supported() => Ok(Kernel::Avx2Fma),
            KernelChoice::Avx2 => Err("avx2"),
        }
    }
}

/// student-svc: serves the distilled student over gRPC in pure Rust, with hot reload.
#[derive(Debug, Clone, Parser)]
#[command(name = "student-svc", version, about)]
pub struct Config {
    /// Artifact folder (manifest.json + model.safetensors); watched for new versions.
    #[arg(long, env = "STUDENT_MODEL")]
    pub model: PathBuf,

    /// Optional prepared dataset folder (`trainer prepare`): user histories for queries
    /// without recent items and for exclude_seen, and popularity counts. Artifacts must have
    /// been trained on it (same fingerprint).
    #[arg(long, env = "STUDENT_DATA")]
    pub data: Option<PathBuf>,

    /// gRPC listen address; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, env = "STUDENT_ADDR", default_value = "127.0.0.1:50061")]
    pub addr: SocketAddr,

    /// Prometheus metrics listen address (`GET /metrics`); port 0 picks a free port.
    #[arg(long, env = "STUDENT_METRICS_ADDR", default_value = "127.0.0.1:9465")]
    pub metrics_addr: SocketAddr,

    /// Scoring threads (a dedicated pool, never the async runtime's); 0 = one per CPU.
    #[arg(long, env = "STUDENT_THREADS", default_value_t = 0)]
    pub threads: usize,

    /// Requests admitted at once (queued or scoring); more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "STUDENT_QUEUE_CAPACITY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,

    /// Largest k a caller may ask for.
    #[arg(long, env = "STUDENT_MAX_K", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_k: u32,

    /// Largest RecommendBatch.
    #[arg(long, env = "STUDENT_MAX_BATCH", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batch: u32,

    /// Poll the artifact's manifest this often for a new version; 0 disables watching
    /// (SIGHUP and the Reload RPC still reload).
    #[arg(long, env = "STUDENT_WATCH_INTERVAL_MS", default_value_t = 1000)]
    pub watch_interval_ms: u64,

    /// Unknown user without recent items: NOT_FOUND, or the popularity fallback.
    #[arg(long, env = "STUDENT_UNKNOWN_USER", value_enum, default_value_t = UnknownUser::NotFound)]
    pub unknown_user: UnknownUser,

    /// Dot-product kernel.
    #[arg(long, env = "STUDENT_KERNEL", value_enum, default_value_t = KernelChoice::Auto)]
    pub kernel: KernelChoice,

    /// Table scan: int8 with exact f32 rescoring of the candidates (~3x fewer bytes per
    /// item), or f32 throughout. Both give the exact top k.
    #[arg(long, env = "STUDENT_SCAN", value_enum, default_value_t = ScanChoice::Int8)]
    pub scan: ScanChoice,

    /// On SIGTERM, keep serving this long with health NOT_SERVING so load balancers move
    /// traffic away before the server stops accepting requests.
    #[arg(long, env = "STUDENT_DRAIN_DELAY_MS", default_value_t = 0)]
    pub drain_delay_ms: u64,

    /// Longest wait for in-flight requests after shutdown starts.
    #[arg(long, env = "STUDENT_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,

    /// Serve gRPC over TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// Plain text without it. The metrics port stays plain HTTP.
    #[arg(long, env = "STUDENT_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "STUDENT_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require mutual TLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, env = "STUDENT_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Also serve `grpc.health.v1` (only health) in plain text on this address: for health
    /// checkers that cannot speak TLS, such as Kubernetes `grpc:` probes. Port 0 picks one
    /// (printed as `health on ADDR`).
    #[arg(long, env = "STUDENT_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,

    /// Largest gRPC message received or sent, in bytes.
    #[arg(long, env = "STUDENT_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u32).range(MIN_MAX_MESSAGE_BYTES as i64..=MAX_MAX_MESSAGE_BYTES as i64))]
    pub max_message_bytes: u32,

    /// Enable the admin RPC (Reload). Alone it needs no credentials (for loopback or a
    /// network where every client is trusted, e.g. mutual TLS); with --admin-token(-file)
    /// callers must send `authorization: Bearer <token>`. Off by default: Reload answers
    /// PERMISSION_DENIED (the artifact watch and SIGHUP still reload).
    #[arg(long, env = "STUDENT_ENABLE_ADMIN", action = clap::ArgAction::SetTrue, value_parser = clap::builder::FalseyValueParser::new())]
    pub enable_admin: bool,

    /// Bearer token the admin RPC (Reload) requires; enables it. At least 16 visible ASCII
    /// characters. Prefer --admin-token-file: a command line is visible to other users.
    #[arg(long, env = "STUDENT_ADMIN_TOKEN", hide_env_values = true, conflicts_with = "admin_token_file", value_parser = Secret::parse)]
    pub admin_token: Option<Secret>,

    /// File holding the admin token (e.g. a mounted secret; one trailing newline is
    /// ignored); enables the admin RPC.
    #[arg(long, env = "STUDENT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "STUDENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "STUDENT_LOG_FILTER", default_value = "info")]
    pub log_filter: String,
}

impl Config {
    /// A configuration with the defaults for an artifact folder.
    pub fn for_model(model: PathBuf) -> Config {
        let model = model.into_os_string();
        let args: [&std::ffi::OsStr; 3] = ["student-svc".as_ref(), "--model".as_ref(), &model];
        Config::parse_from(args)
    }

    /// The TLS files, when --tls-cert/--tls-key are given.
    pub fn tls_files(&self) -> Result<Option<ServerTlsFiles>, String> {
        ServerTlsFiles::from_flags(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )
    }

    /// See `max_message_bytes`.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes as usize
    }

    /// See `drain_delay_ms`.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    /// See `drain_timeout_ms`.
    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent_and_every_flag_has_an_env_var() {
        Config::command().debug_assert();
        for arg in Config::command().get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{id} has no env var");
        }
        let c = Config::for_model("m".into());
        assert_eq!(c.unknown_user, UnknownUser::NotFound);
        assert_eq!(c.watch_interval_ms, 1000);
        assert!(KernelChoice::Auto.resolve().is_ok());
        assert_eq!(c.tls_files(), Ok(None));
        assert_eq!(c.max_message_bytes(), 4 << 20);
        assert!(!c.enable_admin);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn security_flags() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["student-svc", "--model", "m"];
            args.extend(extra);
            Config::try_parse_from(args)
        };
        let c = parse(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--enable-admin",
        ])
        .unwrap();
        assert!(c.tls_files().unwrap().is_some());
        assert!(c.enable_admin);
        let c = parse(&["--admin-token", "0123456789abcdef-secret"]).unwrap();
        let token = c.admin_token.clone().expect("token");
        assert_eq!(token.expose(), "0123456789abcdef-secret");
        assert!(!format!("{c:?}").contains("0123456789abcdef-secret"));
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-client-ca", "ca.pem"],
            &["--max-message-bytes", "100"],
            &[
                "--admin-token",
                "0123456789abcdef",
                "--admin-token-file",
                "f",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
