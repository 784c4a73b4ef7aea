//! The standard `grpc.health.v1` check over a channel, and in plain text on an address.

use std::net::SocketAddr;

use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

pub use tonic_health::pb::health_check_response::ServingStatus;

/// A connected plain-text channel to `url`; connection errors come back as `UNAVAILABLE`.
pub async fn connect(url: String) -> Result<Channel, tonic::Status> {
    tonic::transport::Endpoint::from_shared(url)
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))
}

/// Health of `service` ("" = the whole server) over `channel`.
pub async fn check(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner();
    ServingStatus::try_from(response.status).map_err(|e| tonic::Status::internal(e.to_string()))
}

/// Health of `service` in plain text (a gRPC port, or a `--health-addr` port).
pub async fn plain_health(addr: SocketAddr, service: &str) -> Result<ServingStatus, tonic::Status> {
    check(connect(format!("http://{addr}")).await?, service).await
}

/// Asserts that the plain-text health port `addr` says SERVING for `service`; returns a
/// channel to it, to check that it answers nothing but health.
pub async fn assert_plain_health_serving(addr: SocketAddr, service: &str) -> Channel {
    assert_eq!(
        plain_health(addr, service).await.unwrap(),
        ServingStatus::Serving
    );
    connect(format!("http://{addr}")).await.unwrap()
}
