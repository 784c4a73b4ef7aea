//! Builds and runs the gRPC server: health (NOT_SERVING until the model is warm and again
//! while draining), reflection (v1 and v1alpha), the TeacherService, and the metrics port.
//! gRPC is plain text, or TLS / mutual TLS with `--tls-*`; every service limits messages to
//! `--max-message-bytes` both ways. The metrics port is always plain HTTP.
//! `run` is what `main` calls and what tests and the benchmark call in-process.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_proto::transport::spawn_plain_health;
use rankdistill_proto::v1::teacher_service_server::TeacherServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::{info, warn};

use crate::backend::{Backend, DataShape, LoadSpec};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::engine::{Engine, EngineSettings};
use crate::error::StartupError;
use crate::service::{Ready, ServiceLimits, TeacherApi};
use crate::telemetry::{Metrics, serve_metrics};

/// The gRPC service name, as health checks must name it.
pub const SERVICE_NAME: &str = <TeacherServiceServer<TeacherApi> as NamedService>::NAME;

/// How long to wait for the model thread to finish its last job at exit.
const MODEL_THREAD_JOIN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Loads the dataset and the model, starts and warms up the model thread.
async fn load(config: &Config, metrics: Metrics) -> Result<(Ready, JoinHandle<()>), StartupError> {
    let device = config.device.resolve().map_err(StartupError::Device)?;
    let data_dir = config.data.clone();
    let dataset = tokio::task::spawn_blocking(move || PreparedDataset::load(&data_dir))
        .await
        .map_err(|_| StartupError::EngineStopped)??;
    let shape = DataShape {
        path: config.data.clone(),
        fingerprint: dataset.manifest.fingerprint.clone(),
        num_users: dataset.num_users(),
        num_items: dataset.num_items(),
    };
    info!(
        data = %config.data.display(),
        fingerprint = %shape.fingerprint,
        users = shape.num_users,
        items = shape.num_items,
        "dataset loaded"
    );
    let spec = LoadSpec {
        model: config.model.clone(),
        device,
        sequence_length: config.sequence_length,
    };
    let settings = EngineSettings {
        max_batch: config.max_batch as usize,
        queue_capacity: config.queue_capacity as usize,
        torch_threads: config.torch_threads as usize,
    };
    let (engine, thread) =
        Engine::start(move || Backend::load(&spec, &shape), settings, metrics).await?;
    let sequence_length = engine.model().sequence_length;
    let catalog = tokio::task::spawn_blocking(move || Catalog::new(dataset, sequence_length))
        .await
        .map_err(|_| StartupError::EngineStopped)?;
    Ok((
        Ready {
            engine,
            catalog: Arc::new(catalog),
        },
        thread,
    ))
}

/// Runs the server on `listeners` until `shutdown` is cancelled, then drains: health turns
/// NOT_SERVING, the server keeps answering for `drain_delay`, streams end at a message
/// boundary (UNAVAILABLE with the resume cursor), unary calls finish (at most
/// `drain_timeout`), and the function returns. Fails when the dataset or model is refused.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), StartupError> {
    let mut transport = transport(&config)?;
    let limit = config.max_message_bytes();
    let metrics = Metrics::new();
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

    let state = Arc::new(OnceLock::new());
    let draining = CancellationToken::new();
    let limits = ServiceLimits {
        max_k: config.max_k,
        default_stream_batch: config.stream_batch_size,
        max_stream_batch: config.max_stream_batch_size,
        stream_buffer: config.stream_buffer as usize,
        max_streams: config.max_streams as usize,
        max_message_bytes: config.max_message_bytes(),
    };
    let api = TeacherApi::new(state.clone(), limits, metrics.clone(), draining.clone());

    let metrics_stop = CancellationToken::new();
    let metrics_task = tokio::spawn(serve_metrics(
        listeners.metrics,
        metrics.clone(),
        metrics_stop.clone(),
    ));
    let health_task = listeners.health.map(|listener| {
        spawn_plain_health(
            listener,
            health_service.clone(),
            draining.clone().cancelled_owned(),
        )
    });
    let mut server = tokio::spawn(
        transport
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                TeacherServiceServer::new(api)
                    .max_decoding_message_size(limit)
                    .max_encoding_message_size(limit),
            )
            .serve_with_incoming_shutdown(
                TcpIncoming::from(listeners.grpc),
                draining.clone().cancelled_owned(),
            ),
    );

    let loaded = tokio::select! {
        loaded = load(&config, metrics.clone()) => Some(loaded),
        _ = shutdown.cancelled() => None,
    };
    let mut model_thread = None;
    match loaded {
        Some(Ok((ready, thread))) => {
            metrics.set_model(ready.engine.model(), ready.catalog.fingerprint());
            let model = ready.engine.model().clone();
            let _ = state.set(Arc::new(ready));
            set_health(&reporter, ServingStatus::Serving).await;
            metrics.ready.set(1);
            info!(
                kind = %model.kind,
                version = %model.version,
                device = %model.device,
                items = model.num_items,
                sequence_length = model.sequence_length,
                "model ready: SERVING"
            );
            model_thread = Some(thread);
        }
        Some(Err(e)) => {
            draining.cancel();
            metrics_stop.cancel();
            let _ = server.await;
            let _ = metrics_task.await;
            return Err(e);
        }
        None => {}
    }

    let server_result = tokio::select! {
        _ = shutdown.cancelled() => None,
        joined = &mut server => Some(joined),
    };
    if let Some(joined) = server_result {
        draining.cancel();
        // The server stopped without a shutdown request: report why.
        metrics_stop.cancel();
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
    metrics_stop.cancel();
    let _ = metrics_task.await;
    drop(state);
    if let Some(thread) = model_thread {
        // The thread ends once the last engine handle (held by finished requests) is gone.
        let joined = tokio::time::timeout(
            MODEL_THREAD_JOIN_TIMEOUT,
            tokio::task::spawn_blocking(move || thread.join()),
        )
        .await;
        if joined.is_err() {
            warn!("the model thread did not stop in time");
        }
    }
    if let Some(task) = health_task {
        let _ = task.await;
    }
    info!("stopped");
    result
}
