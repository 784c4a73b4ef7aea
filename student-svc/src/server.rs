//! student-svc's server: the StudentService (its admin RPC gated by `admin`) on the shared
//! serving machinery (`rankdistill-serving`: listeners, TLS, health, reflection, metrics
//! port, per-RPC layer, drain), health NOT_SERVING until the first artifact is loaded and
//! warm, then the artifact watcher and SIGHUP reloads, the shadow worker (`--shadow-teacher`)
//! and the probation reviewer (`--probation-secs`). `run` is what `main` calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rankdistill_proto::v1::student_service_server::StudentServiceServer;
use rankdistill_serving::listeners::Listeners;
use rankdistill_serving::rpc::MethodLimit;
use rankdistill_serving::server::Serving;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tracing::{info, warn};

use crate::admin::{AdminAccess, AdminGate};
use crate::batcher::Batcher;
use crate::catalog::History;
use crate::config::Config;
use crate::engine::Scorer;
use crate::error::{LoadError, StartupError};
use crate::reload::{Loader, Reloader, watch, watch_probation};
use crate::service::{ServiceLimits, StudentApi};
use crate::telemetry::Metrics;
use crate::version_stats::StatsBook;

/// The gRPC service name, as health checks must name it.
pub const SERVICE_NAME: &str = <StudentServiceServer<StudentApi> as NamedService>::NAME;

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
    let admin = config.admin_access().map_err(StartupError::Security)?;
    match admin {
        AdminAccess::Open => warn!(
            "admin RPC (Reload) enabled without credentials: anyone who reaches the port may reload"
        ),
        _ => info!(admin = admin.describe(), "admin RPC (Reload)"),
    }
    let limit = config.server.max_message_bytes();
    let shadow_settings = config.shadow();
    // The shadow worker first: a bad --shadow-teacher is refused before anything loads.
    let stop_shadow = CancellationToken::new();
    let _stop_shadow_on_exit = stop_shadow.clone().drop_guard();
    let shadow = shadow_settings
        .as_ref()
        .map(|settings| crate::shadow::start(settings, stop_shadow.clone()))
        .transpose()
        .map_err(StartupError::Shadow)?;
    let metrics = Metrics::new();
    let kernel = config.kernel.resolve().map_err(StartupError::Kernel)?;
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
        index: config.index_policy(),
        stats: Arc::new(StatsBook::new(
            shadow_settings.is_some().then(|| metrics.clone()),
        )),
    };
    let mut reloader = Reloader::new(loader, scorer.clone(), metrics.clone());
    if let Some(probation) = config.probation() {
        reloader = reloader.with_probation(probation);
    }
    let reloader = Arc::new(reloader);
    let limits = ServiceLimits {
        max_k: config.max_k,
        max_batch: config.max_batch,
    };
    let batcher = Batcher::start(
        &scorer,
        config.queue_capacity as usize,
        config.max_batch as usize,
    )?;
    let mut api = StudentApi::new(reloader.clone(), scorer.clone(), batcher, limits);
    if let Some(queue) = shadow {
        api = api.with_shadow(queue);
    }
    let student_service = StudentServiceServer::new(api)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    let reload_limit = MethodLimit {
        method: "Reload",
        max: config.reload_timeout(),
        flag: "--reload-timeout-ms",
    };
    let serving = Serving::start(
        config.server.args(),
        listeners,
        metrics.server.clone(),
        CancellationToken::new(),
        AdminGate::new(student_service, admin),
        &[reload_limit],
    )
    .await?;

    let loaded = tokio::select! {
        loaded = reloader.initial_load() => Some(loaded),
        _ = shutdown.cancelled() => None,
    };
    match loaded {
        Some(Ok(served)) => {
            serving.set_serving().await;
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
            serving.abort().await;
            return Err(e.into());
        }
        None => {}
    }

    let background = serving.background();
    if reloader.index_pending() {
        let reloader = reloader.clone();
        let stop = background.clone();
        info!("building the approximate index in the background; the exact scan serves meanwhile");
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = reloader.index_in_background() => {}
            }
        });
    }
    if config.watch_interval_ms > 0 {
        tokio::spawn(watch(
            reloader.clone(),
            Duration::from_millis(config.watch_interval_ms),
            background.clone(),
        ));
    }
    if let Some(probation) = reloader.probation() {
        let tick =
            (probation.window / 20).clamp(Duration::from_millis(10), Duration::from_millis(250));
        info!(
            window_s = probation.window.as_secs_f64(),
            min_queries = probation.thresholds.min_queries,
            max_overlap_drop = probation.thresholds.max_overlap_drop,
            min_overlap = probation.thresholds.min_overlap,
            max_p99_ratio = probation.thresholds.max_p99_ratio,
            "hot-reloaded versions go on probation"
        );
        tokio::spawn(watch_probation(reloader.clone(), tick, background.clone()));
    }
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hangups) => {
            let reloader = reloader.clone();
            let stop = background.clone();
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

    let result = serving.run(&shutdown).await;
    info!("stopped");
    Ok(result?)
}
