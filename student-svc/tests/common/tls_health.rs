//! Health checks over TLS for the TLS tests of teacher-svc and student-svc (included with
//! `#[path]` next to `pki.rs`).
#![allow(dead_code)] // each test file uses a different subset

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rankdistill_serving::tls::ClientTlsFiles;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::pki::tls_channel;

/// Health of `service` over TLS.
pub async fn tls_health(
    addr: SocketAddr,
    files: &ClientTlsFiles,
    service: &str,
) -> Result<ServingStatus, tonic::Status> {
    let mut client = HealthClient::new(tls_channel(addr, files).await?);
    let response = client
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner();
    ServingStatus::try_from(response.status).map_err(|e| tonic::Status::internal(e.to_string()))
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

/// Health of `service` in plain text (a `--health-addr` port).
pub async fn plain_health(addr: SocketAddr, service: &str) -> Result<ServingStatus, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner();
    ServingStatus::try_from(response.status).map_err(|e| tonic::Status::internal(e.to_string()))
}
