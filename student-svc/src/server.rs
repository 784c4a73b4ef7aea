//! Builds and runs the gRPC server: health (NOT_SERVING until the model is loaded and warm,
//! and again while draining), reflection (v1 and v1alpha), the StudentService, the metrics
//! port, the artifact watcher and SIGHUP reloads. gRPC is plain text, or TLS / mutual TLS with
//! `--tls-*`; every service limits messages to `--max-message-bytes` both ways; the admin
//! RPC (`Reload`) is gated (`admin`). The metrics port is always plain HTTP. `run` is what
//! `main` calls.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rankdistill_proto::transport::spawn_plain_health;
use rankdistill_proto::v1::student_service_server::StudentServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::admin::{AdminAccess, AdminGate};
use crate::catalog::History;
use crate::config::Config;
use crate::engine::{Batcher, Scorer};
use crate::error::{LoadError, StartupError};
use crate::reload::{Loader, Reloader, watch};
use crate::service::{ServiceLimits, StudentApi};
use crate::telemetry::{Metrics, serve_metrics};

/// The gRPC service name, as health checks must name it.
pub const SERVICE_NAME: &str = <StudentServiceServer<StudentApi> as NamedService>::NAME;

/// The server's sockets, bound before `run` so callers can learn ephemeral ports.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// Prometheus metrics.
    pub metrics: TcpListener,
    /// Plain-text health only (`--health-addr`).
    pub health: Option<TcpListener>,
}

impl Listeners {
    /// Binds `config.addr` and `config.metrics_addr`.
    pub async fn bind(config: &Config) -> Result<Listeners, StartupError> {
        let bind = |addr: SocketAddr, what: &'static str| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|cause| StartupError::Io {
                    context: format!("cannot bind the {what} address {addr}"),
                    cause,
                })
        };
        let health = match config.health_addr {
            Some(addr) => Some(bind(addr, "health").await?),
            None => None,
        };
        Ok(Listeners {
            grpc: bind(config.addr, "gRPC").await?,
            metrics: bind(config.metrics_addr, "metrics").await?,
            health,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }

    /// The bound plain-text health address, when `--health-addr` is set.
    pub fn health_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.health.as_ref().map(TcpListener::local_addr)
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// A server builder with the configured transport security: plain text, TLS, or mutual TLS.
/// Fails, naming the flag and the file, when a PEM file is unreadable or refused.
fn transport(config: &Config) -> Result<Server, StartupError> {
    let builder = Server::builder().tcp_nodelay(true);
    let Some(files) = config.tls_files().map_err(StartupError::Security)? else {
        info!("gRPC in plain text (no --tls-cert)");
        return Ok(builder);
    };
    let builder = files
        .apply(builder)
        .map_err(|e| StartupError::Security(e.to_string()))?;
    info!(mode = %files.describe(), "gRPC over TLS");
    Ok(builder)
}

async fn load_history(config: &Config) -> Result<Option<Arc<History>>, LoadError> {
    let Some(dir) = config.data.clone() else {
        return Ok(None);
    };
    let history = tokio::task::spawn_blocking(move || History::load(&dir))
        .await
        .map_err(|e| LoadError::Thread(e.to_string()))??;
    Ok(Some(Arc::new(history)))
}

/// Runs the server on `listeners` until `shutdown` is cancelled, then drains: health turns
/// NOT_SERVING, the server keeps answering for `drain_delay`, in-flight calls finish (at
/// most `drain_timeout`), and the function returns. Fails when the first artifact is refused.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    let started = Instant::now();
    let mut transport = transport(&config)?;
    let admin = AdminAccess::from_config(&config).map_err(StartupError::Security)?;
    match admin {
        AdminAccess::Open => warn!(
            "admin RPC (Reload) enabled without credentials: anyone who reaches the port may reload"
        ),
        _ => info!(admin = admin.describe(), "admin RPC (Reload)"),
    }
    let limit = config.max_message_bytes();
    let metrics = Metrics::new();
    let kernel = config.kernel.resolve().map_err(StartupError::Kernel)?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health_service = health_service
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    set_health(&reporter, ServingStatus::NotServing).await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rankdistill_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| StartupError::Reflection(e.to_string()))?
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| StartupError::Reflection(e.to_string()))?
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);

    let scorer = Scorer::new(
        config.threads,
        config.queue_capacity as usize,
        metrics.clone(),
    )?;
    let history = tokio::select! {
        history = load_history(&config) => history?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let loader = Loader {
        dir: config.model.clone(),
        history,
        kernel,
        scan: config.scan.scan(),
        unknown_user: config.unknown_user,
    };
    let reloader = Arc::new(Reloader::new(loader, scorer.clone(), metrics.clone()));
    let limits = ServiceLimits {
        max_k: config.max_k,
        max_batch: config.max_batch,
    };
    let batcher = Batcher::start(
        &scorer,
        config.queue_capacity as usize,
        config.max_batch as usize,
    )?;
    let api = StudentApi::new(
        reloader.clone(),
        scorer.clone(),
        batcher,
        limits,
        metrics.clone(),
    );

    let stop_background = CancellationToken::new();
    let metrics_task = tokio::spawn(serve_metrics(
        listeners.metrics,
        metrics.clone(),
        stop_background.clone(),
    ));
    let draining = CancellationToken::new();
    let health_task = listeners.health.map(|listener| {
        spawn_plain_health(
            listener,
            health_service.clone(),
            draining.clone().cancelled_owned(),
        )
    });
    let student_service = StudentServiceServer::new(api)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let mut server = tokio::spawn(
        transport
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(AdminGate::new(student_service, admin, metrics.clone()))
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listeners.grpc),
                draining.clone().cancelled_owned(),
            ),
    );

    let loaded = tokio::select! {
        loaded = reloader.initial_load() => Some(loaded),
        _ = shutdown.cancelled() => None,
    };
    match loaded {
        Some(Ok(served)) => {
            set_health(&reporter, ServingStatus::Serving).await;
            metrics.ready.set(1);
            info!(
                kind = %served.summary.kind,
                version = %served.summary.version,
                items = served.summary.num_items,
                dim = served.summary.dim,
                kernel = served.model.kernel().name(),
                scan = served.model.scan().name(),
                threads = scorer.threads(),
                startup_ms = started.elapsed().as_millis() as u64,
                "model ready: SERVING"
            );
        }
        Some(Err(e)) => {
            draining.cancel();
            stop_background.cancel();
            let _ = server.await;
            let _ = metrics_task.await;
            return Err(e.into());
        }
        None => {}
    }

    if config.watch_interval_ms > 0 {
        tokio::spawn(watch(
            reloader.clone(),
            Duration::from_millis(config.watch_interval_ms),
            stop_background.clone(),
        ));
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            let reloader = reloader.clone();
            let stop = stop_background.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        got = hangups.recv() => if got.is_none() { return },
                    }
                    info!("SIGHUP received: reloading");
                    let _ = reloader.reload_if_changed("sighup").await;
                }
            });
        }
        Err(e) => warn!(error = %e, "cannot install the SIGHUP handler; reload by watch or RPC"),
    }

    let server_result = tokio::select! {
        _ = shutdown.cancelled() => None,
        joined = &mut server => Some(joined),
    };
    if let Some(joined) = server_result {
        draining.cancel();
        stop_background.cancel();
        return match joined {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(e) => Err(StartupError::Io {
                context: "gRPC server task".into(),
                cause: std::io::Error::other(e.to_string()),
            }),
        };
    }

    info!(
        drain_delay_ms = config.drain_delay_ms,
        "shutdown requested: health NOT_SERVING, draining"
    );
    set_health(&reporter, ServingStatus::NotServing).await;
    metrics.ready.set(0);
    tokio::time::sleep(config.drain_delay()).await;
    draining.cancel();
    let mut result = Ok(());
    match tokio::time::timeout(config.drain_timeout(), &mut server).await {
        Ok(Ok(Ok(()))) => info!("in-flight requests drained"),
        Ok(Ok(Err(e))) => result = Err(e.into()),
        Ok(Err(e)) => warn!(error = %e, "gRPC server task failed"),
        Err(_) => {
            warn!(
                drain_timeout_ms = config.drain_timeout_ms,
                "drain timeout: cutting the remaining requests"
            );
            server.abort();
        }
    }
    stop_background.cancel();
    let _ = metrics_task.await;
    if let Some(task) = health_task {
        let _ = task.await;
    }
    info!("stopped");
    result
}
