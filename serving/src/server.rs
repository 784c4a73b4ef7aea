//! The gRPC server both services run: the service behind the per-RPC layer, health
//! (NOT_SERVING until the service says it is ready, and again while draining), reflection
//! (v1 and v1alpha), the metrics port, the optional plain-text health port, TLS with
//! rotation, and the drain at shutdown. Every service limits messages to
//! `--max-message-bytes` both ways.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntGauge, Registry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};
use tonic_health::ServingStatus;
use tower_layer::Layer;
use tracing::{info, warn};

use crate::args::ServerArgs;
use crate::error::ServeError;
use crate::health::{Health, spawn_plain_health};
use crate::listeners::Listeners;
use crate::metrics::RpcMetrics;
use crate::metrics_server::serve_metrics;
use crate::rpc::{MethodLimit, RpcLayer};
use crate::tls_reload::{RotatingTls, tls_incoming};

/// What the server publishes about itself: the registry the metrics port serves (the
/// service registers its own metrics in it too), the base RPC metrics, and the gauge that is
/// 1 while the server is SERVING.
#[derive(Debug, Clone)]
pub struct ServerTelemetry {
    /// Every metric of the service.
    pub registry: Registry,
    /// `<prefix>_requests_total` and `<prefix>_request_duration_seconds`.
    pub rpc: RpcMetrics,
    /// `<prefix>_ready`.
    pub ready: IntGauge,
}

impl ServerTelemetry {
    /// A new registry with the base metrics named `<prefix>_...`, latency `buckets`, and the
    /// ready gauge described by `ready_help`.
    pub fn new(
        prefix: &str,
        buckets: Vec<f64>,
        ready_help: &str,
    ) -> prometheus::Result<ServerTelemetry> {
        let registry = Registry::new();
        let rpc = RpcMetrics::register(&registry, prefix, buckets)?;
        let ready = IntGauge::new(format!("{prefix}_ready"), ready_help)?;
        registry.register(Box::new(ready.clone()))?;
        Ok(ServerTelemetry {
            registry,
            rpc,
            ready,
        })
    }

    /// Registers one of the service's own metrics, given as its definition, and returns it.
    /// Definitions are static: an invalid or duplicate one is a programming error (a panic
    /// that the services' unit tests catch), never a request-path failure.
    pub fn registered<C>(&self, definition: prometheus::Result<C>) -> C
    where
        C: prometheus::core::Collector + Clone + 'static,
    {
        let collector = crate::metrics::must(definition);
        crate::metrics::must(self.registry.register(Box::new(collector.clone())));
        collector
    }

    /// Every metric in Prometheus text format.
    pub fn render(&self) -> String {
        crate::metrics_server::render(&self.registry)
    }
}

type ServerTask = JoinHandle<Result<(), tonic::transport::Error>>;

/// A running server (see the module doc). Health stays NOT_SERVING until
/// [`Serving::set_serving`]; [`Serving::run`] waits for the shutdown and drains.
#[derive(Debug)]
pub struct Serving {
    health: Health,
    ready: IntGauge,
    draining: CancellationToken,
    background: CancellationToken,
    server: ServerTask,
    metrics_task: JoinHandle<()>,
    health_task: Option<JoinHandle<()>>,
    drain_delay: Duration,
    drain_timeout: Duration,
    drain_timeout_ms: u64,
}

fn serve<I, IO, IE>(router: Router, incoming: I, draining: &CancellationToken) -> ServerTask
where
    I: tokio_stream::Stream<Item = Result<IO, IE>> + Send + 'static,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    tokio::spawn(router.serve_with_incoming_shutdown(incoming, draining.clone().cancelled_owned()))
}

impl Serving {
    /// Starts serving `service` behind the per-RPC layer (with the server-side `limits`) on
    /// `listeners`, health NOT_SERVING. `draining` is cancelled when the server stops
    /// accepting calls (services end their streams on it). Fails, naming the flag and the
    /// file, when the TLS files are unusable.
    pub async fn start<S>(
        args: &ServerArgs,
        listeners: Listeners,
        telemetry: ServerTelemetry,
        draining: CancellationToken,
        service: S,
        limits: &[MethodLimit],
    ) -> Result<Serving, ServeError>
    where
        S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let limit = args.max_message_bytes();
        let tls = match args.tls_files().map_err(ServeError::Security)? {
            Some(files) => {
                let tls = RotatingTls::load(files.clone())
                    .map_err(|e| ServeError::Security(e.to_string()))?;
                info!(mode = %files.describe(), "gRPC over TLS");
                Some(Arc::new(tls))
            }
            None => {
                info!("gRPC in plain text (no --tls-cert)");
                None
            }
        };
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health_service = health_service
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let health = Health::new(reporter, S::NAME);
        health.set(ServingStatus::NotServing).await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(rankdistill_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| ServeError::Reflection(e.to_string()))?
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| ServeError::Reflection(e.to_string()))?
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit);

        let background = CancellationToken::new();
        let metrics_task = tokio::spawn(serve_metrics(
            listeners.metrics,
            telemetry.registry.clone(),
            background.clone(),
        ));
        let health_task = listeners.health.map(|listener| {
            spawn_plain_health(
                listener,
                health_service.clone(),
                draining.clone().cancelled_owned(),
            )
        });
        let router = Server::builder()
            .tcp_nodelay(true)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(RpcLayer::new(telemetry.rpc.clone(), limits).layer(service));
        let server = match tls {
            Some(tls) => {
                if let Some(interval) = args.tls_reload_interval() {
                    tokio::spawn(tls.clone().watch(interval, background.clone()));
                }
                let incoming = tls_incoming(listeners.grpc, tls, draining.clone());
                serve(router, incoming, &draining)
            }
            None => serve(router, TcpIncoming::from(listeners.grpc), &draining),
        };
        Ok(Serving {
            health,
            ready: telemetry.ready,
            draining,
            background,
            server,
            metrics_task,
            health_task,
            drain_delay: args.drain_delay(),
            drain_timeout: args.drain_timeout(),
            drain_timeout_ms: args.drain_timeout_ms,
        })
    }

    /// Cancelled when the server stops: for the service's background tasks.
    pub fn background(&self) -> CancellationToken {
        self.background.clone()
    }

    /// The model is loaded and warm: health SERVING, the ready gauge 1.
    pub async fn set_serving(&self) {
        self.health.set(ServingStatus::Serving).await;
        self.ready.set(1);
    }

    /// Stops at once (start-up failed after the server started): the server, the metrics
    /// port and the background tasks.
    pub async fn abort(self) {
        self.draining.cancel();
        self.background.cancel();
        let _ = self.server.await;
        let _ = self.metrics_task.await;
    }

    /// Serves until `shutdown` is cancelled, then drains: health turns NOT_SERVING, the
    /// server keeps answering for `--drain-delay-ms`, then stops accepting and waits for
    /// in-flight calls (at most `--drain-timeout-ms`). Returns early, with its error, when
    /// the server stops by itself.
    pub async fn run(mut self, shutdown: &CancellationToken) -> Result<(), ServeError> {
        let stopped = tokio::select! {
            _ = shutdown.cancelled() => None,
            joined = &mut self.server => Some(joined),
        };
        if let Some(joined) = stopped {
            // The server stopped without a shutdown request: report why.
            self.draining.cancel();
            self.background.cancel();
            return match joined {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(ServeError::Io {
                    context: "gRPC server task".into(),
                    cause: std::io::Error::other(e.to_string()),
                }),
            };
        }
        info!(
            drain_delay_ms = self.drain_delay.as_millis() as u64,
            "shutdown requested: health NOT_SERVING, draining"
        );
        self.health.set(ServingStatus::NotServing).await;
        self.ready.set(0);
        tokio::time::sleep(self.drain_delay).await;
        self.draining.cancel();
        let mut result = Ok(());
        match tokio::time::timeout(self.drain_timeout, &mut self.server).await {
            Ok(Ok(Ok(()))) => info!("in-flight requests drained"),
            Ok(Ok(Err(e))) => result = Err(e.into()),
            Ok(Err(e)) => warn!(error = %e, "gRPC server task failed"),
            Err(_) => {
                warn!(
                    drain_timeout_ms = self.drain_timeout_ms,
                    "drain timeout: cutting the remaining requests"
                );
                self.server.abort();
            }
        }
        self.background.cancel();
        let _ = self.metrics_task.await;
        if let Some(task) = self.health_task.take() {
            let _ = task.await;
        }
        result
    }
}
