//! Command-line and environment configuration of teacher-svc. Every flag has an environment
//! variable and a default that works on a laptop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, ValueEnum};
use rankdistill_models::DeviceChoice;
use rankdistill_proto::transport::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES, ServerTlsFiles,
};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// teacher-svc: serves a LibTorch teacher over gRPC and streams its top-K rankings.
#[derive(Debug, Clone, Parser)]
#[command(name = "teacher-svc", version, about)]
pub struct Config {
    /// Prepared dataset folder (`trainer prepare`): id maps, user histories, training queries.
    #[arg(long, env = "TEACHER_DATA")]
    pub data: PathBuf,

    /// The model: a native checkpoint folder, or a TorchScript file (`.pt`).
    #[arg(long, env = "TEACHER_MODEL")]
    pub model: PathBuf,

    /// gRPC listen address; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, env = "TEACHER_ADDR", default_value = "127.0.0.1:50051")]
    pub addr: SocketAddr,

    /// Prometheus metrics listen address (`GET /metrics`); port 0 picks a free port.
    #[arg(long, env = "TEACHER_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,

    /// Device the model runs on.
    #[arg(long, env = "TEACHER_DEVICE", default_value_t = DeviceChoice::Auto,
          value_parser = PossibleValuesParser::new(DeviceChoice::NAMES).try_map(|name| name.parse::<DeviceChoice>()))]
    pub device: DeviceChoice,

    /// Input length L. TorchScript models: the L their `forward` expects (default 5).
    /// Native checkpoints carry L; when given it must match.
    #[arg(long, env = "TEACHER_SEQUENCE_LENGTH")]
    pub sequence_length: Option<usize>,

    /// Most queries scored in one forward pass (dynamic batching).
    #[arg(long, env = "TEACHER_MAX_BATCH", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_batch: u32,

    /// Requests waiting for the model thread before new ones get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TEACHER_QUEUE_CAPACITY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_capacity: u32,

    /// Largest k a caller may ask for.
    #[arg(long, env = "TEACHER_MAX_K", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_k: u32,

    /// Queries per StreamRankings message when the request leaves batch_size at 0.
    #[arg(long, env = "TEACHER_STREAM_BATCH_SIZE", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub stream_batch_size: u32,

    /// Largest batch_size a StreamRankings request may ask for.
    #[arg(long, env = "TEACHER_MAX_STREAM_BATCH_SIZE", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_stream_batch_size: u32,

    /// Concurrent StreamRankings calls; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TEACHER_MAX_STREAMS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// Messages a stream computes ahead of a slow client (backpressure beyond that).
    #[arg(long, env = "TEACHER_STREAM_BUFFER", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub stream_buffer: u32,

    /// LibTorch intra-op CPU threads; 0 keeps LibTorch's default.
    #[arg(long, env = "TEACHER_TORCH_THREADS", default_value_t = 0)]
    pub torch_threads: u32,

    /// On SIGTERM, keep serving this long with health NOT_SERVING so load balancers move
    /// traffic away before the server stops accepting requests.
    #[arg(long, env = "TEACHER_DRAIN_DELAY_MS", default_value_t = 0)]
    pub drain_delay_ms: u64,

    /// Longest wait for in-flight requests after shutdown starts; streams end earlier, at a
    /// message boundary, with UNAVAILABLE and the cursor to resume from.
    #[arg(long, env = "TEACHER_DRAIN_TIMEOUT_MS", default_value_t = 30_000)]
    pub drain_timeout_ms: u64,

    /// Serve gRPC over TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    /// Plain text without it. The metrics port stays plain HTTP.
    #[arg(long, env = "TEACHER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, env = "TEACHER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require mutual TLS: clients must present a certificate signed by this CA (PEM).
    #[arg(long, env = "TEACHER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Also serve `grpc.health.v1` (only health) in plain text on this address: for health
    /// checkers that cannot speak TLS, such as Kubernetes `grpc:` probes. Port 0 picks one
    /// (printed as `health on ADDR`).
    #[arg(long, env = "TEACHER_HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,

    /// Largest gRPC message received or sent, in bytes. A StreamRankings message carries
    /// batch_size x k (item, score) pairs: about 9 bytes per pair at most.
    #[arg(long, env = "TEACHER_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u32).range(MIN_MAX_MESSAGE_BYTES as i64..=MAX_MAX_MESSAGE_BYTES as i64))]
    pub max_message_bytes: u32,

    /// Log format.
    #[arg(long, env = "TEACHER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "TEACHER_LOG_FILTER", default_value = "info")]
    pub log_filter: String,
}

impl Config {
    /// A configuration with the defaults for a dataset and a model, as the tests and the
    /// benchmark start the server.
    pub fn for_paths(data: PathBuf, model: PathBuf) -> Config {
        let data = data.into_os_string();
        let model = model.into_os_string();
        let args: [&std::ffi::OsStr; 5] = [
            "teacher-svc".as_ref(),
            "--data".as_ref(),
            &data,
            "--model".as_ref(),
            &model,
        ];
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
    }

    #[test]
    fn defaults_work_with_only_data_and_model() {
        let config = Config::for_paths("d".into(), "m".into());
        assert_eq!(config.addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.max_batch, 256);
        assert_eq!(config.sequence_length, None);
        assert_eq!(config.device, DeviceChoice::Auto);
        assert_eq!(config.tls_files(), Ok(None));
        assert_eq!(config.max_message_bytes(), 4 << 20);
    }

    #[test]
    fn tls_flags_come_in_pairs_and_the_message_limit_is_bounded() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["teacher-svc", "--data", "d", "--model", "m"];
            args.extend(extra);
            Config::try_parse_from(args)
        };
        let c = parse(&[
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--tls-client-ca",
            "ca.pem",
        ])
        .unwrap();
        let files = c.tls_files().unwrap().unwrap();
        assert_eq!(files.client_ca, Some(PathBuf::from("ca.pem")));
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-client-ca", "ca.pem"],
            &["--max-message-bytes", "0"],
            &["--max-message-bytes", "2000000000"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
