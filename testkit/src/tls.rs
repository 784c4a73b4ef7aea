//! gRPC over TLS for the TLS tests: a channel with client TLS files, and health checks over
//! it. The one place of the harness that imports the serving transport.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};

pub use rankdistill_serving::error_chain::error_chain;
pub use rankdistill_serving::tls::ClientTlsFiles;

use crate::health::{self, ServingStatus};

/// A channel to `https://addr` with `files`. Connection and handshake errors come back as
/// `UNAVAILABLE` (with mutual TLS over TLS 1.3 a refused client certificate may only show on
/// the first call instead).
pub async fn tls_channel(
    addr: std::net::SocketAddr,
    files: &ClientTlsFiles,
) -> Result<Channel, tonic::Status> {
    let tls = files
        .load()
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Endpoint::from_shared(format!("https://{addr}"))
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .tls_config(tls)
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(error_chain(&e)))
}

/// Health of `service` over TLS.
pub async fn tls_health(
    addr: SocketAddr,
    files: &ClientTlsFiles,
    service: &str,
) -> Result<ServingStatus, tonic::Status> {
    health::check(tls_channel(addr, files).await?, service).await
}

/// Polls health over TLS until `service` is SERVING.
pub async fn wait_serving_tls(addr: SocketAddr, files: &ClientTlsFiles, service: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tls_health(addr, files, service).await {
            Ok(ServingStatus::Serving) => return,
            other => assert!(
                Instant::now() < deadline,
                "health over TLS never became SERVING: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asserts a refusal to start with the TLS flags `extra`: the process failed, its stderr holds
/// every one of `needles`, and no key material.
pub fn assert_tls_refusal<S: AsRef<str>>(
    extra: &dyn std::fmt::Debug,
    status: std::process::ExitStatus,
    stderr: &str,
    needles: &[S],
) {
    assert!(!status.success(), "{extra:?} started");
    for needle in needles {
        let needle = needle.as_ref();
        assert!(
            stderr.contains(needle),
            "{extra:?}: stderr lacks {needle:?}:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("PRIVATE KEY-----"),
        "key material in the error:\n{stderr}"
    );
}

/// Asserts that a call was refused for a message above the size limit, received or sent.
pub fn assert_too_large(status: &tonic::Status) {
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("message length too large"),
        "{status:?}"
    );
}
