//! teacher-svc's Prometheus metrics, in their own registry: the base RPC metrics
//! (`teacher_requests_total`, `teacher_request_duration_seconds`, recorded by the serving
//! layer) and the model's. `rankdistill-serving` serves them on their own port.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, exponential_buckets,
};
use rankdistill_serving::metrics::must;
use rankdistill_serving::server::ServerTelemetry;

use crate::backend::ModelDescription;

/// The service's metrics, registered in their own registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// The registry, the RPC metrics and the ready gauge (see `rankdistill-serving`).
    pub server: ServerTelemetry,
    /// Time a job waited in the model queue.
    pub queue_wait: Histogram,
    /// Queries per forward pass.
    pub batch_size: Histogram,
    /// Duration of one forward pass with masking and top-k.
    pub forward_duration: Histogram,
    /// Rankings sent by StreamRankings.
    pub streamed_rankings: IntCounter,
    /// Open StreamRankings calls.
    pub active_streams: IntGauge,
    /// Always 1, labelled with the served model's identity.
    pub model_info: IntGaugeVec,
    /// Items the model ranks.
    pub model_items: IntGauge,
}

/// Latency buckets of the teacher's histograms: 250 µs, doubling, up to about 33 s.
fn latency_buckets() -> Vec<f64> {
    must(exponential_buckets(0.000_25, 2.0, 18))
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let server = must(ServerTelemetry::new(
            "teacher",
            latency_buckets(),
            "1 when the model is loaded and warmed up.",
        ));
        let queue_wait = server.registered(Histogram::with_opts(
            HistogramOpts::new(
                "teacher_queue_wait_seconds",
                "Time a job waited in the model queue before its forward pass.",
            )
            .buckets(latency_buckets()),
        ));
        let batch_size = server.registered(Histogram::with_opts(
            HistogramOpts::new("teacher_batch_size", "Queries per forward pass.")
                .buckets(must(exponential_buckets(1.0, 2.0, 14))),
        ));
        let forward_duration = server.registered(Histogram::with_opts(
            HistogramOpts::new(
                "teacher_forward_duration_seconds",
                "One forward pass with masking and top-k.",
            )
            .buckets(latency_buckets()),
        ));
        let streamed_rankings = server.registered(IntCounter::new(
            "teacher_streamed_rankings_total",
            "Rankings sent by StreamRankings.",
        ));
        let active_streams = server.registered(IntGauge::new(
            "teacher_active_streams",
            "Open StreamRankings calls.",
        ));
        let model_info = server.registered(IntGaugeVec::new(
            Opts::new("teacher_model_info", "The served model (value 1)."),
            &["kind", "version", "data_fingerprint", "device"],
        ));
        let model_items = server.registered(IntGauge::new(
            "teacher_model_items",
            "Items the served model ranks.",
        ));
        Metrics {
            server,
            queue_wait,
            batch_size,
            forward_duration,
            streamed_rankings,
            active_streams,
            model_info,
            model_items,
        }
    }

    /// Publishes the served model's identity.
    pub fn set_model(&self, model: &ModelDescription, data_fingerprint: &str) {
        self.model_info
            .with_label_values(&[
                model.kind.as_str(),
                model.version.as_str(),
                data_fingerprint,
                model.device.as_str(),
            ])
            .set(1);
        self.model_items.set(model.num_items as i64);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn metrics_register_and_render() {
        let metrics = Metrics::new();
        metrics
            .server
            .rpc
            .observe("Rank", tonic::Code::NotFound, Duration::from_millis(3));
        metrics.batch_size.observe(4.0);
        let text = metrics.server.render();
        assert!(
            text.contains(r#"teacher_requests_total{code="NOT_FOUND",method="Rank"} 1"#),
            "{text}"
        );
        assert!(text.contains("teacher_batch_size_bucket"), "{text}");
    }
}
