//! Command-line and environment configuration of student-svc. Every flag has an environment
//! variable and a default that works on a laptop.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use rankdistill_serving::args::ServerFlags;

use crate::admin::{AdminAccess, Secret};
use crate::index::{IndexMode, IndexPolicy};
use crate::kernel::Kernel;
use crate::model::IndexSettings;
use crate::probation::{ProbationSettings, Thresholds};
use crate::shadow::ShadowSettings;

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

/// Which top-k search serves (see `crate::index`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IndexChoice {
    /// The exact scan below 50,000 items, the approximate index from there on.
    Auto,
    /// Always the exact scan (`--scan`).
    Exact,
    /// Always the approximate index (an inverted file with exact scores).
    Ann,
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

    /// Top-k search: the exact scan (`--scan`), or an approximate inverted-file index over
    /// the scoring table with exact f32 scores (recall measured at build, `Info` reports it);
    /// `auto` uses the index from 50,000 items on. The index is built at load, off the
    /// request path: at start-up the exact scan serves until it is ready.
    #[arg(long, env = "STUDENT_INDEX", value_enum, default_value_t = IndexChoice::Auto)]
    pub index: IndexChoice,

    /// Lists of the approximate index (k-means centroids); 0 = about 2 sqrt(items).
    #[arg(long, env = "STUDENT_ANN_LISTS", default_value_t = 0)]
    pub ann_lists: usize,

    /// Lists scanned per query; 0 = the fewest that reach --ann-target-recall on the
    /// tuning queries. More probes: higher recall, slower queries.
    #[arg(long, env = "STUDENT_ANN_PROBES", default_value_t = 0)]
    pub ann_probes: usize,

    /// Recall@10 against the exact scan that the automatic probe count aims for.
    #[arg(long, env = "STUDENT_ANN_TARGET_RECALL", default_value_t = 0.97, value_parser = parse_recall)]
    pub ann_target_recall: f64,

    /// Queries the index is tuned and measured on at build time (sampled users with even
    /// dense index); 0 = none (recall is then unknown and 0 probes means all lists).
    #[arg(long, env = "STUDENT_ANN_TUNING_QUERIES", default_value_t = 1000)]
    pub ann_tuning_queries: usize,

    /// Seed of the index build (k-means sample and starts, tuning queries).
    #[arg(long, env = "STUDENT_ANN_SEED", default_value_t = 0)]
    pub ann_seed: u64,

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

    /// teacher-svc endpoint (http://HOST:PORT, plain text) to re-ask a sampled fraction of
    /// Recommend queries (off the request path) and measure the live fidelity of each model
    /// version against it. Needs --data (the teacher's dataset). Unset: shadowing off.
    #[arg(long, env = "STUDENT_SHADOW_TEACHER", requires = "data")]
    pub shadow_teacher: Option<String>,

    /// Share of the eligible Recommend queries re-asked of the --shadow-teacher, in [0, 1]
    /// (eligible: a known user and a model answer of at least 10 items).
    #[arg(long, env = "STUDENT_SHADOW_FRACTION", default_value_t = 0.0, value_parser = parse_fraction, requires = "shadow_teacher")]
    pub shadow_fraction: f64,

    /// Sampled queries waiting for the teacher at most; more are dropped (counted as
    /// outcome="dropped").
    #[arg(long, env = "STUDENT_SHADOW_QUEUE", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub shadow_queue: u32,

    /// Longest a shadow call to the teacher may take; past it the call counts as failed.
    #[arg(long, env = "STUDENT_SHADOW_TIMEOUT_MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub shadow_timeout_ms: u64,

    /// Shadow calls to the teacher in flight at most.
    #[arg(long, env = "STUDENT_SHADOW_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub shadow_concurrency: u32,

    /// Seed of the shadow sampler (the same seed samples the same query numbers).
    #[arg(long, env = "STUDENT_SHADOW_SEED", default_value_t = 0)]
    pub shadow_seed: u64,

    /// After a hot reload, keep the previous version in memory this long and roll back to it
    /// when the new version breaches the --rollback-* thresholds; 0 = off.
    #[arg(long, env = "STUDENT_PROBATION_SECS", default_value_t = 0.0, value_parser = parse_non_negative)]
    pub probation_secs: f64,

    /// Samples (shadow queries measured; Recommend answers timed) a figure needs before the
    /// probation judges it.
    #[arg(long, env = "STUDENT_PROBATION_MIN_QUERIES", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub probation_min_queries: u64,

    /// Roll back when the new version's mean overlap@10 is below the previous version's by
    /// more than this.
    #[arg(long, env = "STUDENT_ROLLBACK_MAX_OVERLAP_DROP", default_value_t = 0.2, value_parser = parse_fraction)]
    pub rollback_max_overlap_drop: f64,

    /// Roll back when the new version's mean overlap@10 is below this (0 = off).
    #[arg(long, env = "STUDENT_ROLLBACK_MIN_OVERLAP", default_value_t = 0.0, value_parser = parse_fraction)]
    pub rollback_min_overlap: f64,

    /// Roll back when the new version's Recommend p99 exceeds this many times the previous
    /// version's.
    #[arg(long, env = "STUDENT_ROLLBACK_MAX_P99_RATIO", default_value_t = 3.0, value_parser = parse_ratio)]
    pub rollback_max_p99_ratio: f64,

    /// The flags every server shares: ports, TLS, message limit, drain, logging.
    #[command(flatten)]
    pub server: ServerFlags<StudentProfile>,
}

fn parse_number(value: &str) -> Result<f64, String> {
    let x: f64 = value
        .parse()
        .map_err(|_| format!("'{value}' is not a number"))?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("'{value}' is not a finite number"))
    }
}

fn parse_fraction(value: &str) -> Result<f64, String> {
    let x = parse_number(value)?;
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is outside [0, 1]"))
    }
}

fn parse_recall(value: &str) -> Result<f64, String> {
    let x = parse_number(value)?;
    if x > 0.0 && x <= 1.0 {
        Ok(x)
    } else {
        Err(format!("{x} is outside (0, 1]"))
    }
}

fn parse_non_negative(value: &str) -> Result<f64, String> {
    let x = parse_number(value)?;
    if x >= 0.0 {
        Ok(x)
    } else {
        Err(format!("{x} is negative"))
    }
}

fn parse_ratio(value: &str) -> Result<f64, String> {
    let x = parse_number(value)?;
    if x >= 1.0 {
        Ok(x)
    } else {
        Err(format!(
            "{x} is below 1 (the ratio of the new p99 to the previous one)"
        ))
    }
}

impl Config {
    /// When and how the approximate index is built.
    pub fn index_policy(&self) -> IndexPolicy {
        IndexPolicy {
            mode: match self.index {
                IndexChoice::Auto => IndexMode::Auto,
                IndexChoice::Exact => IndexMode::Exact,
                IndexChoice::Ann => IndexMode::Ann,
            },
            settings: IndexSettings {
                lists: self.ann_lists,
                probes: self.ann_probes,
                target_recall: self.ann_target_recall,
                tuning_queries: self.ann_tuning_queries,
                seed: self.ann_seed,
            },
        }
    }

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

    /// The shadow settings, when `--shadow-teacher` is given.
    pub fn shadow(&self) -> Option<ShadowSettings> {
        Some(ShadowSettings {
            teacher: self.shadow_teacher.clone()?,
            fraction: self.shadow_fraction,
            queue: self.shadow_queue as usize,
            timeout: Duration::from_millis(self.shadow_timeout_ms),
            concurrency: self.shadow_concurrency as usize,
            seed: self.shadow_seed,
        })
    }

    /// The probation settings, when `--probation-secs` is above 0.
    pub fn probation(&self) -> Option<ProbationSettings> {
        (self.probation_secs > 0.0).then(|| ProbationSettings {
            window: Duration::from_secs_f64(self.probation_secs),
            thresholds: Thresholds {
                min_queries: self.probation_min_queries,
                max_overlap_drop: self.rollback_max_overlap_drop,
                min_overlap: self.rollback_min_overlap,
                max_p99_ratio: self.rollback_max_p99_ratio,
            },
        })
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
        assert_eq!((c.shadow(), c.probation()), (None, None));
    }

    #[test]
    fn shadow_and_probation_flags() {
        let parse = |extra: &[&str]| {
            Config::try_parse_from([&["student-svc", "--model", "m"], extra].concat())
        };
        let c = parse(&[
            "--data",
            "d",
            "--shadow-teacher",
            "http://127.0.0.1:50051",
            "--shadow-fraction",
            "0.25",
            "--probation-secs",
            "1.5",
            "--rollback-min-overlap",
            "0.3",
        ])
        .unwrap();
        let shadow = c.shadow().unwrap();
        assert_eq!(shadow.fraction, 0.25);
        assert_eq!(
            (shadow.queue, shadow.timeout, shadow.concurrency),
            (1024, Duration::from_millis(500), 8)
        );
        let probation = c.probation().unwrap();
        assert_eq!(probation.window, Duration::from_millis(1500));
        assert_eq!(
            probation.thresholds,
            Thresholds {
                min_queries: 50,
                max_overlap_drop: 0.2,
                min_overlap: 0.3,
                max_p99_ratio: 3.0
            }
        );
        for (bad, says) in [
            (&["--shadow-teacher", "http://t:1"][..], "--data"),
            (&["--shadow-fraction", "1.5"], "outside [0, 1]"),
            (&["--shadow-fraction", "0.5"], "--shadow-teacher"),
            (&["--shadow-fraction", "NaN"], "not a finite number"),
            (&["--shadow-queue", "0"], "0"),
            (&["--probation-secs=-1"], "negative"),
            (&["--rollback-max-p99-ratio", "0.5"], "below 1"),
        ] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad:?}: {e}");
        }
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
