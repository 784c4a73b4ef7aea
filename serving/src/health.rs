//! `grpc.health.v1`: the reporter that flips the whole server and the named service together,
//! and the plain-text health port (`--health-addr`) for probes that cannot speak TLS.

use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Reports one status for the server (`""`) and for the service named `service`.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    service: &'static str,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("service", &self.service)
            .finish()
    }
}

impl Health {
    /// A reporter for the server and `service` (the name health checks must use).
    pub fn new(reporter: HealthReporter, service: &'static str) -> Health {
        Health { reporter, service }
    }

    /// Sets the status of both.
    pub async fn set(&self, status: ServingStatus) {
        self.reporter.set_service_status("", status).await;
        self.reporter.set_service_status(self.service, status).await;
    }
}

/// Serves only `health` (the `grpc.health.v1` service) in plain text on `listener` until
/// `shutdown` resolves: the `--health-addr` port, for probes that cannot speak TLS.
pub fn spawn_plain_health<S>(
    listener: tokio::net::TcpListener,
    health: S,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    S: tonic::codegen::Service<
            tonic::codegen::http::Request<tonic::body::Body>,
            Response = tonic::codegen::http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + tonic::server::NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    tokio::spawn(async move {
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let served = Server::builder()
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the plain-text health server stopped");
        }
    })
}
