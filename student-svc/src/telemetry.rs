//! Observability: Prometheus metrics (own registry, served on their own port by a small
//! hyper server) and `tracing` log set-up.

use std::convert::Infallible;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder, exponential_buckets,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::config::LogFormat;

/// The service's metrics, registered in their own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Finished RPCs by method and status code.
    pub requests: IntCounterVec,
    /// RPC latency by method and status code.
    pub request_duration: HistogramVec,
    /// Time a job waited for a scoring thread.
    pub queue_wait: Histogram,
    /// Duration of one scoring job (query vectors, scan, top-k).
    pub scoring_duration: Histogram,
    /// Queries per pass over the item table (dynamic batching).
    pub batch_size: Histogram,
    /// Jobs admitted and not finished.
    pub inflight: IntGauge,
    /// Queries and jobs dropped unscored: the caller's deadline passed or it went away.
    pub abandoned: IntCounter,
    /// Always 1, labelled with the served model's identity.
    pub model_info: IntGaugeVec,
    /// Items the served model ranks.
    pub model_items: IntGauge,
    /// When the served version was loaded (Unix seconds).
    pub model_loaded_at: Gauge,
    /// Successful reloads (a new version swapped in).
    pub reloads: IntCounter,
    /// Refused reloads (corrupt or inconsistent artifact; the old model kept serving).
    pub reload_failures: IntCounter,
    /// 1 when a model is loaded and warmed up and the server is not draining.
    pub ready: IntGauge,
}

fn must<T>(result: prometheus::Result<T>) -> T {
    // Metric definitions are static; failure is a programming error caught by the tests.
    result.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let buckets = must(exponential_buckets(0.000_025, 2.0, 20));
        let histogram = |name: &str, help: &str| {
            must(Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(buckets.clone()),
            ))
        };
        let metrics = Metrics {
            requests: must(IntCounterVec::new(
                Opts::new(
                    "student_requests_total",
                    "Finished RPCs by method and status code.",
                ),
                &["method", "code"],
            )),
            request_duration: must(HistogramVec::new(
                HistogramOpts::new(
                    "student_request_duration_seconds",
                    "RPC latency by method and status code.",
                )
                .buckets(buckets.clone()),
                &["method", "code"],
            )),
            queue_wait: histogram(
                "student_queue_wait_seconds",
                "Time a job waited for a scoring thread.",
            ),
            scoring_duration: histogram(
                "student_scoring_duration_seconds",
                "One scoring job: query vectors, SIMD scan, top-k.",
            ),
            batch_size: must(Histogram::with_opts(
                HistogramOpts::new(
                    "student_batch_size",
                    "Queries scored per pass over the item table.",
                )
                .buckets(must(exponential_buckets(1.0, 2.0, 10))),
            )),
            inflight: must(IntGauge::new(
                "student_inflight_jobs",
                "Scoring jobs admitted and not finished.",
            )),
            abandoned: must(IntCounter::new(
                "student_abandoned_total",
                "Queries and jobs dropped unscored: the caller's deadline passed or it went away.",
            )),
            model_info: must(IntGaugeVec::new(
                Opts::new("student_model_info", "The served model (value 1)."),
                &["kind", "version", "data_fingerprint", "kernel"],
            )),
            model_items: must(IntGauge::new(
                "student_model_items",
                "Items the served model ranks.",
            )),
            model_loaded_at: must(Gauge::new(
                "student_model_loaded_timestamp_seconds",
                "When the served version was loaded (Unix seconds).",
            )),
            reloads: must(IntCounter::new(
                "student_reloads_total",
                "Reloads that swapped in a new model version.",
            )),
            reload_failures: must(IntCounter::new(
                "student_reload_failures_total",
                "Refused reloads (corrupt or inconsistent artifact); the old model kept serving.",
            )),
            ready: must(IntGauge::new(
                "student_ready",
                "1 when a model is loaded and warmed up and the server is not draining.",
            )),
            registry,
        };
        for collector in metrics.collectors() {
            must(metrics.registry.register(collector));
        }
        metrics
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.queue_wait.clone()),
            Box::new(self.scoring_duration.clone()),
            Box::new(self.batch_size.clone()),
            Box::new(self.inflight.clone()),
            Box::new(self.abandoned.clone()),
            Box::new(self.model_info.clone()),
            Box::new(self.model_items.clone()),
            Box::new(self.model_loaded_at.clone()),
            Box::new(self.reloads.clone()),
            Box::new(self.reload_failures.clone()),
            Box::new(self.ready.clone()),
        ]
    }

    /// Records one finished RPC.
    pub fn observe_request(&self, method: &str, code: tonic::Code, elapsed: Duration) {
        let code = code_name(code);
        self.requests.with_label_values(&[method, code]).inc();
        self.request_duration
            .with_label_values(&[method, code])
            .observe(elapsed.as_secs_f64());
    }

    /// Publishes the served model's identity (replacing the previous one).
    pub fn set_model(&self, labels: [&str; 4], items: usize, loaded_at_unix_s: f64) {
        self.model_info.reset();
        self.model_info.with_label_values(&labels).set(1);
        self.model_items.set(items as i64);
        self.model_loaded_at.set(loaded_at_unix_s);
    }

    /// The metrics in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            warn!(error = %e, "encoding metrics failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The canonical name of a gRPC status code, as gRPC's own metrics label it.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve_metrics(listener: TcpListener, metrics: Metrics, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move { Ok::<_, Infallible>(metrics_response(&request, &metrics)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        debug!(error = %e, "metrics connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}

fn metrics_response<B>(request: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, content_type, body) =
        if request.method() == Method::GET && request.uri().path() == "/metrics" {
            (
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found; metrics are at GET /metrics\n".to_string(),
            )
        };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// Installs the global `tracing` subscriber (logs go to stderr; stdout carries only the
/// `listening on` / `metrics on` lines).
pub fn init_tracing(format: LogFormat, filter: &str) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("invalid log filter '{filter}': {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_and_render() {
        let metrics = Metrics::new();
        metrics.observe_request("Recommend", tonic::Code::NotFound, Duration::from_millis(3));
        metrics.set_model(["caser", "v1", "fp", "scalar"], 10, 1.0);
        metrics.set_model(["caser", "v2", "fp", "scalar"], 10, 2.0);
        let text = metrics.render();
        assert!(
            text.contains(r#"student_requests_total{code="NOT_FOUND",method="Recommend"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"version="v1""#), "{text}");
        assert!(text.contains(r#"version="v2""#), "{text}");
    }
}
