//! Command-line and environment configuration of student-svc. Every flag has an environment
//! variable and a default that works on a laptop.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rankdistill_serving::args::ServerFlags;

use crate::admin::{AdminAccess, Secret};
use crate::kernel::Kernel;

rankdistill_serving::service_profile! {
    /// The shared server flags as student-svc names them: `STUDENT_*` variables, ports 50061
    /// (gRPC) and 9465 (metrics).
    StudentProfile, env = "STUDENT_", addr = "127.0.0.1:50061", metrics = "127.0.0.1:9465"
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

    /// Longest a Reload call may take (read, check and warm up the new artifact); past it,
    /// or past the caller's deadline, it answers DEADLINE_EXCEEDED and the old model keeps
    /// serving (the artifact watch and SIGHUP retry).
    #[arg(long, env = "STUDENT_RELOAD_TIMEOUT_MS", default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub reload_timeout_ms: u64,

    /// The flags every server shares: ports, TLS, message limit, drain, logging.
    #[command(flatten)]
    pub server: ServerFlags<StudentProfile>,
}

impl Config {
    /// A configuration with the defaults for an artifact folder.
    pub fn for_model(model: PathBuf) -> Config {
        let model = model.into_os_string();
        let args: [&std::ffi::OsStr; 3] = ["student-svc".as_ref(), "--model".as_ref(), &model];
        Config::parse_from(args)
    }

    /// Who may call the admin RPC: reads `--admin-token-file`; refuses a token that is too
    /// short, too long or not visible ASCII (without echoing it).
    pub fn admin_access(&self) -> Result<AdminAccess, String> {
        AdminAccess::from_flags(
            self.enable_admin,
            self.admin_token.as_ref(),
            self.admin_token_file.as_deref(),
        )
    }

    /// See `reload_timeout_ms`.
    pub fn reload_timeout(&self) -> Duration {
        Duration::from_millis(self.reload_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent_and_every_flag_has_an_env_var() {
        let c = Config::for_model("m".into());
        let command = <Config as clap::CommandFactory>::command();
        command.clone().debug_assert();
        let checked = rankdistill_serving::args::check_env_vars(&command, "STUDENT_");
        assert_eq!(checked, Ok(()));
        assert_eq!(c.unknown_user, UnknownUser::NotFound);
        assert_eq!(c.watch_interval_ms, 1000);
        assert!(KernelChoice::Auto.resolve().is_ok());
        assert_eq!(c.server.tls_files(), Ok(None));
        assert_eq!(c.server.max_message_bytes(), 4 << 20);
        assert_eq!(c.server.addr.to_string(), "127.0.0.1:50061");
        assert_eq!(c.server.metrics_addr.to_string(), "127.0.0.1:9465");
        assert_eq!(c.reload_timeout(), Duration::from_secs(60));
        assert!(!c.enable_admin);
        assert!(c.admin_token.is_none());
    }

    #[test]
    fn security_flags() {
        let parse = |extra: &[&str]| {
            Config::try_parse_from([&["student-svc", "--model", "m"], extra].concat())
        };
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        let c = parse(&[&tls[..], &["--enable-admin"]].concat()).unwrap();
        assert!(c.server.tls_files().unwrap().is_some());
        assert!(c.enable_admin);
        let c = parse(&["--admin-token", "0123456789abcdef-secret"]).unwrap();
        let token = c.admin_token.clone().expect("token");
        assert_eq!(token.expose(), "0123456789abcdef-secret");
        assert!(!format!("{c:?}").contains("0123456789abcdef-secret"));
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-client-ca", "ca.pem"],
            &["--max-message-bytes", "100"],
            &["--reload-timeout-ms", "0"],
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

    const TOKEN: &str = "s3cr3t-token-0123456789";

    #[test]
    fn the_token_file_is_read_with_its_trailing_newline_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
        let mut config = Config::for_model("m".into());
        assert_eq!(config.admin_access().unwrap(), AdminAccess::Disabled);
        config.enable_admin = true;
        assert_eq!(config.admin_access().unwrap(), AdminAccess::Open);
        config.admin_token_file = Some(file.clone());
        assert_eq!(
            config.admin_access().unwrap(),
            AdminAccess::Token(Secret::parse(TOKEN).unwrap())
        );
        config.admin_token_file = Some(dir.path().join("missing"));
        let e = config.admin_access().unwrap_err();
        assert!(
            e.contains("--admin-token-file") && e.contains("cannot read"),
            "{e}"
        );
    }
}
