//! teacher-svc's server: the TeacherService on the shared serving machinery
//! (`rankdistill-serving`: listeners, TLS, health, reflection, metrics port, per-RPC layer,
//! drain), health NOT_SERVING until the model is warm. `run` is what `main` calls and what
//! tests and the benchmark call in-process.

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_proto::v1::teacher_service_server::TeacherServiceServer;
use rankdistill_serving::listeners::Listeners;
use rankdistill_serving::server::Serving;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tracing::{info, warn};

use crate::backend::{Backend, DataShape, LoadSpec};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::engine::{Engine, EngineSettings};
use crate::error::StartupError;
use crate::service::{Ready, ServiceLimits, TeacherApi};
use crate::telemetry::Metrics;

/// The gRPC service name, as health checks must name it.
pub const SERVICE_NAME: &str = <TeacherServiceServer<TeacherApi> as NamedService>::NAME;

/// How long to wait for the model thread to finish its last job at exit.
const MODEL_THREAD_JOIN_TIMEOUT: Duration = Duration::from_secs(10);

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
        torch_threads: config.torch_threads,
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
    let limit = config.server.max_message_bytes();
    let metrics = Metrics::new();
    let state = Arc::new(OnceLock::new());
    let draining = CancellationToken::new();
    let limits = ServiceLimits {
        max_k: config.max_k,
        default_stream_batch: config.stream_batch_size,
        max_stream_batch: config.max_stream_batch_size,
        stream_buffer: config.stream_buffer as usize,
        max_streams: config.max_streams as usize,
        max_message_bytes: limit,
        max_score_queries: config.max_score_queries as usize,
    };
    let api = TeacherApi::new(state.clone(), limits, metrics.clone(), draining.clone());
    let service = TeacherServiceServer::new(api)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let serving = Serving::start(
        config.server.args(),
        listeners,
        metrics.server.clone(),
        draining,
        service,
        &[],
    )
    .await?;

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
            serving.set_serving().await;
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
            serving.abort().await;
            return Err(e);
        }
        None => {}
    }

    let result = serving.run(&shutdown).await;
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
    info!("stopped");
    Ok(result?)
}
