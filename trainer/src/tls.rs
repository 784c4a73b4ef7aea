//! How the trainer reaches teacher-svc: plain text, TLS (`https://` endpoints, `--tls-ca`) or
//! mutual TLS (`--tls-cert`/`--tls-key`), with an explicit message size limit. The PEM files
//! are read once, up front, so a bad file fails the command before any pull starts.

use std::time::Duration;

use anyhow::{Context, bail};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_serving::limits::DEFAULT_MAX_MESSAGE_BYTES;
use rankdistill_serving::tls::ClientTlsFiles;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

/// How often an HTTP/2 ping checks a teacher connection that has not received anything.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// How long a ping may go unanswered before the connection counts as dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 stream window of a rate-capped pull (`--pull-rate`): how far, in bytes, a teacher
/// may stream ahead of what the trainer has consumed. Without it the teacher would compute and
/// send a whole stream at full speed into the client's default window (megabytes), and the cap
/// would limit only the trainer.
pub const THROTTLED_STREAM_WINDOW: u32 = 64 * 1024;

/// How to reach the teachers: the TLS files (none: plain text) and the message size limit.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// CA, client certificate and key, and the name the teachers' certificates must carry.
    pub files: ClientTlsFiles,
    /// Largest gRPC message sent to or received from a teacher, in bytes.
    pub max_message_bytes: u32,
}

impl Default for TlsSettings {
    /// Plain text, the default message limit.
    fn default() -> Self {
        TlsSettings {
            files: ClientTlsFiles::default(),
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// The settings every teacher connection uses.
#[derive(Debug, Clone)]
pub struct TeacherTransport {
    tls: Option<ClientTlsConfig>,
    max_message_bytes: usize,
    stream_window: Option<u32>,
}

impl Default for TeacherTransport {
    /// Plain text, the default message limit.
    fn default() -> Self {
        TeacherTransport {
            tls: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES as usize,
            stream_window: None,
        }
    }
}

impl TeacherTransport {
    /// Reads and checks the TLS files of `settings` (TLS when any file or name is given).
    pub fn new(settings: &TlsSettings) -> anyhow::Result<TeacherTransport> {
        let files = &settings.files;
        let tls = if files.any() {
            Some(files.load().context("teacher TLS")?)
        } else {
            None
        };
        Ok(TeacherTransport {
            tls,
            max_message_bytes: settings.max_message_bytes as usize,
            stream_window: None,
        })
    }

    /// The same transport with [`THROTTLED_STREAM_WINDOW`], for rate-capped pulls.
    pub fn throttled(mut self) -> TeacherTransport {
        self.stream_window = Some(THROTTLED_STREAM_WINDOW);
        self
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

    /// Connects to one teacher (`url` from `endpoint_url`). HTTP/2 keep-alive pings detect a
    /// teacher that vanished without closing the connection (a network partition, a node that
    /// died): a stream waiting on it fails within about `KEEPALIVE_INTERVAL + KEEPALIVE_TIMEOUT`
    /// and the pull retries, instead of waiting for TCP to give up (minutes).
    pub async fn connect(&self, url: &str) -> anyhow::Result<TeacherServiceClient<Channel>> {
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .with_context(|| format!("invalid teacher endpoint '{url}'"))?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .initial_stream_window_size(self.stream_window);
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
}
