//! student-svc's Prometheus metrics, in their own registry: the base RPC metrics
//! (`student_requests_total`, `student_request_duration_seconds`, recorded by the serving
//! layer) and the model's. `rankdistill-serving` serves them on their own port.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, exponential_buckets,
};
use rankdistill_serving::metrics::must;
use rankdistill_serving::server::ServerTelemetry;

/// The service's metrics, registered in their own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry, the RPC metrics and the ready gauge (see `rankdistill-serving`).
    pub server: ServerTelemetry,
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
    /// Shadow calls to the teacher by version and outcome (ok, dropped, failed).
    pub shadow_calls: IntCounterVec,
    /// Running mean overlap@10 against the teacher, by version.
    pub fidelity_overlap: GaugeVec,
    /// Running mean NDCG@10 against the teacher, by version.
    pub fidelity_ndcg: GaugeVec,
    /// Running mean Kendall's tau against the teacher, by version.
    pub fidelity_rank_correlation: GaugeVec,
    /// Queries measured against the teacher, by version.
    pub fidelity_queries: IntCounterVec,
    /// Versions rolled back after a breached probation.
    pub rollbacks: IntCounter,
    /// 1 while a hot-reloaded version is on probation.
    pub probation_active: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let buckets = must(exponential_buckets(0.000_025, 2.0, 20));
        let server = must(ServerTelemetry::new(
            "student",
            buckets.clone(),
            "1 when a model is loaded and warmed up and the server is not draining.",
        ));
        let histogram = |name: &str, help: &str| {
            server.registered(Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(buckets.clone()),
            ))
        };
        Metrics {
            queue_wait: histogram(
                "student_queue_wait_seconds",
                "Time a job waited for a scoring thread.",
            ),
            scoring_duration: histogram(
                "student_scoring_duration_seconds",
                "One scoring job: query vectors, SIMD scan, top-k.",
            ),
            batch_size: server.registered(Histogram::with_opts(
                HistogramOpts::new(
                    "student_batch_size",
                    "Queries scored per pass over the item table.",
                )
                .buckets(must(exponential_buckets(1.0, 2.0, 10))),
            )),
            inflight: server.registered(IntGauge::new(
                "student_inflight_jobs",
                "Scoring jobs admitted and not finished.",
            )),
            abandoned: server.registered(IntCounter::new(
                "student_abandoned_total",
                "Queries and jobs dropped unscored: the caller's deadline passed or it went away.",
            )),
            model_info: server.registered(IntGaugeVec::new(
                Opts::new("student_model_info", "The served model (value 1)."),
                &["kind", "version", "data_fingerprint", "kernel"],
            )),
            model_items: server.registered(IntGauge::new(
                "student_model_items",
                "Items the served model ranks.",
            )),
            model_loaded_at: server.registered(Gauge::new(
                "student_model_loaded_timestamp_seconds",
                "When the served version was loaded (Unix seconds).",
            )),
            reloads: server.registered(IntCounter::new(
                "student_reloads_total",
                "Reloads that swapped in a new model version.",
            )),
            reload_failures: server.registered(IntCounter::new(
                "student_reload_failures_total",
                "Refused reloads (corrupt or inconsistent artifact); the old model kept serving.",
            )),
            shadow_calls: server.registered(IntCounterVec::new(
                Opts::new(
                    "student_shadow_calls_total",
                    "Sampled Recommend queries re-asked of the teacher, by outcome: ok, dropped (shadow queue full), failed (teacher error, timeout or unreachable).",
                ),
                &["version", "outcome"],
            )),
            fidelity_overlap: fidelity_gauge(
                &server,
                "student_fidelity_overlap",
                "Mean overlap@10 of the version's answers with the teacher's (shadow queries).",
            ),
            fidelity_ndcg: fidelity_gauge(
                &server,
                "student_fidelity_ndcg",
                "Mean NDCG@10 of the version's answers against the teacher's (shadow queries).",
            ),
            fidelity_rank_correlation: fidelity_gauge(
                &server,
                "student_fidelity_rank_correlation",
                "Mean Kendall's tau of the version's answers against the teacher's, over shared items.",
            ),
            fidelity_queries: server.registered(IntCounterVec::new(
                Opts::new(
                    "student_fidelity_queries_total",
                    "Shadow queries measured against the teacher.",
                ),
                &["version"],
            )),
            rollbacks: server.registered(IntCounter::new(
                "student_rollbacks_total",
                "New versions rolled back to the previous one after a breached probation.",
            )),
            probation_active: server.registered(IntGauge::new(
                "student_probation_active",
                "1 while a hot-reloaded version is on probation (the previous version kept in memory).",
            )),
            server,
        }
    }

    /// Publishes the served model's identity (replacing the previous one).
    pub fn set_model(&self, labels: [&str; 4], items: usize, loaded_at_unix_s: f64) {
        self.model_info.reset();
        self.model_info.with_label_values(&labels).set(1);
        self.model_items.set(items as i64);
        self.model_loaded_at.set(loaded_at_unix_s);
    }
}

fn fidelity_gauge(server: &ServerTelemetry, name: &str, help: &str) -> GaugeVec {
    server.registered(GaugeVec::new(Opts::new(name, help), &["version"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_register_and_render() {
        let metrics = Metrics::new();
        metrics.set_model(["caser", "v1", "fp", "scalar"], 10, 1.0);
        metrics.set_model(["caser", "v2", "fp", "scalar"], 10, 2.0);
        let elapsed = std::time::Duration::from_millis(3);
        let rpc = &metrics.server.rpc;
        rpc.observe("Recommend", tonic::Code::NotFound, elapsed);
        let text = metrics.server.render();
        assert!(
            text.contains(r#"student_requests_total{code="NOT_FOUND",method="Recommend"} 1"#),
            "{text}"
        );
        assert!(!text.contains(r#"version="v1""#), "{text}");
        assert!(text.contains(r#"version="v2""#), "{text}");
    }
}
