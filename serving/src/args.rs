//! The flags every server shares (ports, TLS files, message limit, drain, logging) as one
//! clap argument group, flattened into each service's `Config`. Each service names its own
//! environment variables (`TEACHER_ADDR`, `STUDENT_ADDR`, ...) and default ports through a
//! [`ServiceProfile`]; clap's derive cannot parametrise `env = ...`, so the group is built
//! with the builder API.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::EnumValueParser;
use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches};

use crate::limits::{DEFAULT_MAX_MESSAGE_BYTES, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES};
use crate::logging::LogFormat;
use crate::tls::ServerTlsFiles;

/// What differs between services in the shared flags: environment prefix and default ports.
pub trait ServiceProfile: Clone + fmt::Debug + Send + Sync + 'static {
    /// Prefix of every environment variable, e.g. `TEACHER_`.
    const ENV_PREFIX: &'static str;
    /// Default `--addr`.
    const DEFAULT_ADDR: &'static str;
    /// Default `--metrics-addr`.
    const DEFAULT_METRICS_ADDR: &'static str;
}

/// Declares a unit struct that implements [`ServiceProfile`], with its doc comment:
/// `service_profile! { /// doc  Name, env = "PREFIX_", addr = "host:port", metrics = "host:port" }`.
#[macro_export]
macro_rules! service_profile {
    ($(#[$meta:meta])* $name:ident, env = $prefix:literal, addr = $addr:literal, metrics = $metrics:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name;

        impl $crate::args::ServiceProfile for $name {
            const ENV_PREFIX: &'static str = $prefix;
            const DEFAULT_ADDR: &'static str = $addr;
            const DEFAULT_METRICS_ADDR: &'static str = $metrics;
        }
    };
}

/// The shared flags' values, for the parts of `serving` that use them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    /// `--addr`: the gRPC listen address.
    pub addr: SocketAddr,
    /// `--metrics-addr`: the Prometheus listen address.
    pub metrics_addr: SocketAddr,
    /// `--health-addr`: the plain-text health listen address, if any.
    pub health_addr: Option<SocketAddr>,
    /// `--tls-cert`: the server's certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`: the server's private key.
    pub tls_key: Option<PathBuf>,
    /// `--tls-client-ca`: the CA client certificates must chain to.
    pub tls_client_ca: Option<PathBuf>,
    /// `--tls-reload-interval-ms`: how often the TLS files are checked for rotation.
    pub tls_reload_interval_ms: u64,
    /// `--max-message-bytes`: the largest gRPC message, both ways.
    pub max_message_bytes: u32,
    /// `--drain-delay-ms`: time NOT_SERVING before the server stops accepting.
    pub drain_delay_ms: u64,
    /// `--drain-timeout-ms`: longest wait for in-flight calls at shutdown.
    pub drain_timeout_ms: u64,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--log-filter` (tracing `EnvFilter` syntax).
    pub log_filter: String,
}

impl ServerArgs {
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

    /// See `tls_reload_interval_ms`; `None` when rotation checks are off.
    pub fn tls_reload_interval(&self) -> Option<Duration> {
        (self.tls_reload_interval_ms > 0)
            .then(|| Duration::from_millis(self.tls_reload_interval_ms))
    }
}

/// The shared flags of the service `P`, to `#[command(flatten)]` into its `Config`;
/// dereferences to [`ServerArgs`].
pub struct ServerFlags<P> {
    args: ServerArgs,
    profile: PhantomData<fn() -> P>,
}

impl<P> ServerFlags<P> {
    /// The values.
    pub fn args(&self) -> &ServerArgs {
        &self.args
    }
}

impl<P> Clone for ServerFlags<P> {
    fn clone(&self) -> Self {
        ServerFlags {
            args: self.args.clone(),
            profile: PhantomData,
        }
    }
}

impl<P> fmt::Debug for ServerFlags<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.args.fmt(f)
    }
}

impl<P> Deref for ServerFlags<P> {
    type Target = ServerArgs;
    fn deref(&self) -> &ServerArgs {
        &self.args
    }
}

impl<P> DerefMut for ServerFlags<P> {
    fn deref_mut(&mut self) -> &mut ServerArgs {
        &mut self.args
    }
}

fn env<P: ServiceProfile>(name: &str) -> String {
    format!("{}{name}", P::ENV_PREFIX)
}

fn one<T: Clone + Send + Sync + 'static>(m: &ArgMatches, id: &str) -> Result<T, clap::Error> {
    m.get_one::<T>(id).cloned().ok_or_else(|| {
        clap::Error::raw(
            clap::error::ErrorKind::MissingRequiredArgument,
            format!("--{} is required\n", id.replace('_', "-")),
        )
    })
}

impl<P: ServiceProfile> FromArgMatches for ServerFlags<P> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(ServerFlags {
            args: ServerArgs {
                addr: one(m, "addr")?,
                metrics_addr: one(m, "metrics_addr")?,
                health_addr: m.get_one("health_addr").copied(),
                tls_cert: m.get_one("tls_cert").cloned(),
                tls_key: m.get_one("tls_key").cloned(),
                tls_client_ca: m.get_one("tls_client_ca").cloned(),
                tls_reload_interval_ms: one(m, "tls_reload_interval_ms")?,
                max_message_bytes: one(m, "max_message_bytes")?,
                drain_delay_ms: one(m, "drain_delay_ms")?,
                drain_timeout_ms: one(m, "drain_timeout_ms")?,
                log_format: one(m, "log_format")?,
                log_filter: one(m, "log_filter")?,
            },
            profile: PhantomData,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl<P: ServiceProfile> Args for ServerFlags<P> {
    fn augment_args(cmd: Command) -> Command {
        let path = || clap::value_parser!(PathBuf);
        cmd.arg(
            Arg::new("addr")
                .long("addr")
                .env(env::<P>("ADDR"))
                .value_name("ADDR")
                .default_value(P::DEFAULT_ADDR)
                .value_parser(clap::value_parser!(SocketAddr))
                .help("gRPC listen address; port 0 picks a free port (printed as `listening on ADDR`)"),
        )
        .arg(
            Arg::new("metrics_addr")
                .long("metrics-addr")
                .env(env::<P>("METRICS_ADDR"))
                .value_name("METRICS_ADDR")
                .default_value(P::DEFAULT_METRICS_ADDR)
                .value_parser(clap::value_parser!(SocketAddr))
                .help("Prometheus metrics listen address (`GET /metrics`); port 0 picks a free port"),
        )
        .arg(
            Arg::new("drain_delay_ms")
                .long("drain-delay-ms")
                .env(env::<P>("DRAIN_DELAY_MS"))
                .value_name("DRAIN_DELAY_MS")
                .default_value("0")
                .value_parser(clap::value_parser!(u64))
                .help("On SIGTERM, keep serving this long with health NOT_SERVING so load balancers move traffic away before the server stops accepting requests"),
        )
        .arg(
            Arg::new("drain_timeout_ms")
                .long("drain-timeout-ms")
                .env(env::<P>("DRAIN_TIMEOUT_MS"))
                .value_name("DRAIN_TIMEOUT_MS")
                .default_value("30000")
                .value_parser(clap::value_parser!(u64))
                .help("Longest wait for in-flight requests after shutdown starts (server streams end earlier, at a message boundary, with UNAVAILABLE and the cursor to resume from)"),
        )
        .arg(
            Arg::new("tls_cert")
                .long("tls-cert")
                .env(env::<P>("TLS_CERT"))
                .value_name("TLS_CERT")
                .requires("tls_key")
                .value_parser(path())
                .help("Serve gRPC over TLS with this certificate chain (PEM, leaf first); needs --tls-key. Plain text without it. The metrics port stays plain HTTP"),
        )
        .arg(
            Arg::new("tls_key")
                .long("tls-key")
                .env(env::<P>("TLS_KEY"))
                .value_name("TLS_KEY")
                .requires("tls_cert")
                .value_parser(path())
                .help("The private key of --tls-cert (PEM: PKCS#8, RSA or EC)"),
        )
        .arg(
            Arg::new("tls_client_ca")
                .long("tls-client-ca")
                .env(env::<P>("TLS_CLIENT_CA"))
                .value_name("TLS_CLIENT_CA")
                .requires("tls_cert")
                .value_parser(path())
                .help("Require mutual TLS: clients must present a certificate signed by this CA (PEM)"),
        )
        .arg(
            Arg::new("tls_reload_interval_ms")
                .long("tls-reload-interval-ms")
                .env(env::<P>("TLS_RELOAD_INTERVAL_MS"))
                .value_name("TLS_RELOAD_INTERVAL_MS")
                .default_value("5000")
                .value_parser(clap::value_parser!(u64))
                .help("Check the --tls-* files this often and serve new connections with the rotated certificate, key and client CA (existing connections keep theirs); 0 disables the check (a restart then picks up new files)"),
        )
        .arg(
            Arg::new("health_addr")
                .long("health-addr")
                .env(env::<P>("HEALTH_ADDR"))
                .value_name("HEALTH_ADDR")
                .value_parser(clap::value_parser!(SocketAddr))
                .help("Also serve `grpc.health.v1` (only health) in plain text on this address: for health checkers that cannot speak TLS, such as Kubernetes `grpc:` probes. Port 0 picks one (printed as `health on ADDR`)"),
        )
        .arg(
            Arg::new("max_message_bytes")
                .long("max-message-bytes")
                .env(env::<P>("MAX_MESSAGE_BYTES"))
                .value_name("MAX_MESSAGE_BYTES")
                .default_value(DEFAULT_MAX_MESSAGE_BYTES.to_string())
                .value_parser(
                    clap::value_parser!(u32)
                        .range(MIN_MAX_MESSAGE_BYTES as i64..=MAX_MAX_MESSAGE_BYTES as i64),
                )
                .help("Largest gRPC message received or sent, in bytes"),
        )
        .arg(
            Arg::new("log_format")
                .long("log-format")
                .env(env::<P>("LOG_FORMAT"))
                .value_name("LOG_FORMAT")
                .default_value("text")
                .value_parser(EnumValueParser::<LogFormat>::new())
                .help("Log format"),
        )
        .arg(
            Arg::new("log_filter")
                .long("log-filter")
                .env(env::<P>("LOG_FILTER"))
                .value_name("LOG_FILTER")
                .default_value("info")
                .action(ArgAction::Set)
                .help("Log filter (tracing `EnvFilter` syntax)"),
        )
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

/// Checks that every flag of `command` (but `--help` and `--version`) reads an environment
/// variable named with `prefix`; the error names the first that does not. For the services'
/// configuration tests.
pub fn check_env_vars(command: &Command, prefix: &str) -> Result<(), String> {
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        if !env.as_deref().is_some_and(|e| e.starts_with(prefix)) {
            return Err(format!("--{id} has no {prefix} env var: {env:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Clone)]
    struct Demo;

    impl ServiceProfile for Demo {
        const ENV_PREFIX: &'static str = "DEMO_";
        const DEFAULT_ADDR: &'static str = "127.0.0.1:1";
        const DEFAULT_METRICS_ADDR: &'static str = "127.0.0.1:2";
    }

    #[derive(Debug, Parser)]
    struct Config {
        #[arg(long, env = "DEMO_OWN")]
        own: Option<u32>,
        #[command(flatten)]
        server: ServerFlags<Demo>,
    }

    #[test]
    fn every_flag_has_the_profiles_env_var_and_a_default_that_works() {
        Config::command().debug_assert();
        assert_eq!(check_env_vars(&Config::command(), "DEMO_"), Ok(()));
        assert!(check_env_vars(&Config::command(), "OTHER_").is_err());
        let c = Config::try_parse_from(["demo"]).unwrap();
        assert_eq!(c.server.addr.to_string(), "127.0.0.1:1");
        assert_eq!(c.server.metrics_addr.to_string(), "127.0.0.1:2");
        assert_eq!(c.server.tls_files(), Ok(None));
        assert_eq!(c.server.max_message_bytes(), 4 << 20);
        assert_eq!(c.server.log_format, LogFormat::Text);
        assert_eq!(c.server.log_filter, "info");
        assert_eq!(c.server.drain_timeout(), Duration::from_secs(30));
        assert_eq!(c.own, None);
    }

    #[test]
    fn tls_flags_come_in_pairs_and_the_message_limit_is_bounded() {
        let all = "demo --tls-cert c.pem --tls-key k.pem --tls-client-ca ca.pem \
                   --log-format json --health-addr 127.0.0.1:0";
        let c = Config::try_parse_from(all.split_whitespace()).unwrap();
        let files = c.server.tls_files().unwrap().unwrap();
        assert_eq!(files.client_ca, Some(PathBuf::from("ca.pem")));
        assert_eq!(c.server.log_format, LogFormat::Json);
        assert!(c.server.health_addr.is_some());
        let refused = [
            "--tls-cert c.pem",
            "--tls-key k.pem",
            "--tls-client-ca ca.pem",
            "--max-message-bytes 0",
            "--max-message-bytes 2000000000",
            "--log-format xml",
        ];
        for extra in refused {
            let args = format!("demo {extra}");
            let parsed = Config::try_parse_from(args.split_whitespace());
            assert!(parsed.is_err(), "{extra} was accepted");
        }
    }
}
