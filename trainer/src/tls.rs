//! How the trainer reaches teacher-svc: plain text, TLS (`https://` endpoints, `--tls-ca`) or
//! mutual TLS (`--tls-cert`/`--tls-key`), with an explicit message size limit. The PEM files
//! are read once, up front, so a bad file fails the command before any pull starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_serving::limits::{
    DEFAULT_MAX_MESSAGE_BYTES, MAX_MAX_MESSAGE_BYTES, MIN_MAX_MESSAGE_BYTES,
};
use rankdistill_serving::tls::ClientTlsFiles;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// Transport flags for the teacher connections (`distill`, `pull`).
#[derive(Debug, Clone, Args)]
pub struct TeacherTlsArgs {
    /// CA certificate(s) (PEM) the teachers' certificates must chain to. Turns on TLS:
    /// endpoints without a scheme become https://.
    #[arg(long, env = "RD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for teachers that require mutual TLS; needs --tls-key.
    #[arg(long, env = "RD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "RD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Name the teachers' certificates must carry, instead of the endpoint's host (e.g. when
    /// endpoints are pod IPs).
    #[arg(long, env = "RD_TLS_DOMAIN")]
    pub tls_domain: Option<String>,
    /// Largest gRPC message sent to or received from a teacher, in bytes (a streamed message
    /// holds --stream-batch x K rankings; at most 9 bytes per ranked item).
    #[arg(long, env = "RD_MAX_MESSAGE_BYTES", default_value_t = DEFAULT_MAX_MESSAGE_BYTES,
          value_parser = clap::value_parser!(u32).range(MIN_MAX_MESSAGE_BYTES as i64..=MAX_MAX_MESSAGE_BYTES as i64))]
    pub max_message_bytes: u32,
}

/// The settings every teacher connection uses.
#[derive(Debug, Clone)]
pub struct TeacherTransport {
    tls: Option<ClientTlsConfig>,
    max_message_bytes: usize,
}

impl Default for TeacherTransport {
    /// Plain text, the default message limit.
    fn default() -> Self {
        TeacherTransport {
            tls: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES as usize,
        }
    }
}

impl TeacherTransport {
    /// Reads and checks the TLS files of `args` (TLS when any TLS flag is given).
    pub fn from_args(args: &TeacherTlsArgs) -> anyhow::Result<TeacherTransport> {
        let files = ClientTlsFiles {
            ca: args.tls_ca.clone(),
            cert: args.tls_cert.clone(),
            key: args.tls_key.clone(),
            domain: args.tls_domain.clone(),
        };
        let tls = if files.any() {
            Some(files.load().context("teacher TLS")?)
        } else {
            None
        };
        Ok(TeacherTransport {
            tls,
            max_message_bytes: args.max_message_bytes as usize,
        })
    }

    /// True when the teachers are reached over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Normalises an endpoint: no scheme gets `https://` with TLS, `http://` without; a scheme
    /// that contradicts the TLS settings is refused.
    pub fn endpoint_url(&self, raw: &str) -> anyhow::Result<String> {
        let raw = raw.trim();
        match (
            raw.split_once("://").map(|(scheme, _)| scheme),
            self.is_tls(),
        ) {
            (None, true) => Ok(format!("https://{raw}")),
            (None, false) => Ok(format!("http://{raw}")),
            (Some("https"), true) | (Some("http"), false) => Ok(raw.to_string()),
            (Some("https"), false) => bail!(
                "teacher endpoint {raw} is https:// but no --tls-ca was given (the CA certificate that signed the teacher's certificate)"
            ),
            (Some("http"), true) => bail!(
                "teacher endpoint {raw} is http:// but TLS flags were given: use https:// or drop the --tls-* flags"
            ),
            (Some(other), _) => {
                bail!("teacher endpoint {raw}: unknown scheme '{other}' (use http:// or https://)")
            }
        }
    }

    /// Connects to one teacher (`url` from `endpoint_url`).
    pub async fn connect(&self, url: &str) -> anyhow::Result<TeacherServiceClient<Channel>> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .with_context(|| format!("invalid teacher endpoint '{url}'"))?
            .connect_timeout(Duration::from_secs(5));
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .with_context(|| format!("TLS settings for teacher {url}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("cannot connect to teacher {url}"))?;
        Ok(TeacherServiceClient::new(channel)
            .max_decoding_message_size(self.max_message_bytes)
            .max_encoding_message_size(self.max_message_bytes))
    }
}

/// True when `error` is a TLS failure (certificate, protocol): not worth retrying.
pub fn is_tls_failure(error: &anyhow::Error) -> bool {
    error.chain().any(rankdistill_serving::tls::is_tls_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Result<TeacherTlsArgs, clap::Error> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            tls: TeacherTlsArgs,
        }
        let mut argv = vec!["t"];
        argv.extend(extra);
        <Cli as clap::Parser>::try_parse_from(argv).map(|c| c.tls)
    }

    #[test]
    fn endpoints_follow_the_tls_settings() {
        let plain = TeacherTransport::default();
        assert_eq!(plain.endpoint_url("h:1").unwrap(), "http://h:1");
        assert_eq!(plain.endpoint_url("http://h:1").unwrap(), "http://h:1");
        let e = plain.endpoint_url("https://h:1").unwrap_err();
        assert!(e.to_string().contains("--tls-ca"), "{e}");
        let tls = TeacherTransport {
            tls: Some(ClientTlsConfig::new()),
            ..TeacherTransport::default()
        };
        assert_eq!(
            tls.endpoint_url("10.0.0.1:1").unwrap(),
            "https://10.0.0.1:1"
        );
        assert_eq!(tls.endpoint_url("https://h:1").unwrap(), "https://h:1");
        assert!(tls.endpoint_url("http://h:1").is_err());
        assert!(tls.endpoint_url("ftp://h:1").is_err());
    }

    #[test]
    fn flags_and_their_errors() {
        let a = args(&[]).unwrap();
        assert_eq!(a.max_message_bytes, 4 << 20);
        assert!(!TeacherTransport::from_args(&a).unwrap().is_tls());
        assert!(args(&["--tls-cert", "c.pem"]).is_err());
        assert!(args(&["--max-message-bytes", "0"]).is_err());
        // A client identity without a CA: the CA is what is missing.
        let a = args(&["--tls-cert", "c.pem", "--tls-key", "k.pem"]).unwrap();
        let e = TeacherTransport::from_args(&a).unwrap_err();
        assert!(format!("{e:#}").contains("--tls-ca"), "{e:#}");
        let a = args(&["--tls-ca", "/nonexistent/ca.pem"]).unwrap();
        let e = TeacherTransport::from_args(&a).unwrap_err();
        assert!(
            format!("{e:#}").contains("--tls-ca /nonexistent/ca.pem: cannot read the file"),
            "{e:#}"
        );
    }
}
