//! Command-line and environment configuration of teacher-svc. Every flag has an environment
//! variable and a default that works on a laptop.

use std::path::PathBuf;

use clap::Parser;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use rankdistill_models::{DeviceChoice, TorchThreads};
use rankdistill_serving::args::ServerFlags;

rankdistill_serving::service_profile! {
    /// The shared server flags as teacher-svc names them: `TEACHER_*` variables, ports 50051
    /// (gRPC) and 9464 (metrics).
    TeacherProfile, env = "TEACHER_", addr = "127.0.0.1:50051", metrics = "127.0.0.1:9464"
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

    /// Most queries in one ScoreItems call.
    #[arg(long, env = "TEACHER_MAX_SCORE_QUERIES", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_score_queries: u32,

    /// Concurrent StreamRankings calls; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "TEACHER_MAX_STREAMS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams: u32,

    /// Messages a stream computes ahead of a slow client (backpressure beyond that).
    #[arg(long, env = "TEACHER_STREAM_BUFFER", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub stream_buffer: u32,

    /// LibTorch intra-op CPU threads of the model thread: `auto` (one per CPU the process may
    /// use that other work leaves free, adapted as the load changes), a fixed count, or 0
    /// (LibTorch's default, one per core whatever else runs).
    #[arg(long, env = "TEACHER_TORCH_THREADS", default_value_t = TorchThreads::Auto,
          value_parser = |value: &str| value.parse::<TorchThreads>())]
    pub torch_threads: TorchThreads,

    /// The flags every server shares: ports, TLS, message limit, drain, logging.
    #[command(flatten)]
    pub server: ServerFlags<TeacherProfile>,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use rankdistill_serving::args::check_env_vars;

    #[test]
    fn cli_is_consistent_and_every_flag_has_an_env_var() {
        Config::command().debug_assert();
        assert_eq!(check_env_vars(&Config::command(), "TEACHER_"), Ok(()));
    }

    #[test]
    fn defaults_work_with_only_data_and_model() {
        let config = Config::for_paths("d".into(), "m".into());
        assert_eq!(config.server.addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.server.metrics_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(config.max_batch, 256);
        assert_eq!(config.sequence_length, None);
        assert_eq!(config.device, DeviceChoice::Auto);
        assert_eq!(config.torch_threads, TorchThreads::Auto);
        assert_eq!(config.server.tls_files(), Ok(None));
        assert_eq!(config.server.max_message_bytes(), 4 << 20);
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
        let files = c.server.tls_files().unwrap().unwrap();
        assert_eq!(files.client_ca, Some(PathBuf::from("ca.pem")));
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--tls-client-ca", "ca.pem"],
            &["--max-message-bytes", "0"],
            &["--max-message-bytes", "2000000000"],
            &["--torch-threads", "many"],
            &["--torch-threads", "-1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
