//! The base RPC metrics every server exports, `<prefix>_requests_total` and
//! `<prefix>_request_duration_seconds` by method and status code, recorded by the per-RPC
//! layer (`rpc`); and the status-code names gRPC's own metrics use as labels.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Unwraps a metric definition. Definitions are static; a failure is a programming error
/// that the services' unit tests catch.
pub fn must<T>(result: prometheus::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("invalid metric definition: {e}"))
}

/// Finished RPCs and their latency by method and status code.
#[derive(Debug, Clone)]
pub struct RpcMetrics {
    /// `<prefix>_requests_total{method, code}`.
    pub requests: IntCounterVec,
    /// `<prefix>_request_duration_seconds{method, code}` (a stream: its whole duration).
    pub request_duration: HistogramVec,
}

impl RpcMetrics {
    /// Creates the metrics named `<prefix>_...` with latency `buckets`, and registers them.
    pub fn register(
        registry: &Registry,
        prefix: &str,
        buckets: Vec<f64>,
    ) -> prometheus::Result<RpcMetrics> {
        let requests = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_requests_total"),
                "Finished RPCs by method and status code.",
            ),
            &["method", "code"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                format!("{prefix}_request_duration_seconds"),
                "RPC latency by method and status code (streams: whole duration).",
            )
            .buckets(buckets),
            &["method", "code"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        Ok(RpcMetrics {
            requests,
            request_duration,
        })
    }

    /// Records one finished RPC.
    pub fn observe(&self, method: &str, code: tonic::Code, elapsed: Duration) {
        let code = code_name(code);
        self.requests.with_label_values(&[method, code]).inc();
        self.request_duration
            .with_label_values(&[method, code])
            .observe(elapsed.as_secs_f64());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_metrics_are_named_by_the_prefix() {
        let registry = Registry::new();
        let rpc = RpcMetrics::register(&registry, "demo", vec![0.001, 0.1]).unwrap();
        rpc.observe("Rank", tonic::Code::NotFound, Duration::from_millis(3));
        let text = crate::metrics_server::render(&registry);
        assert!(
            text.contains(r#"demo_requests_total{code="NOT_FOUND",method="Rank"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("demo_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(RpcMetrics::register(&registry, "demo", vec![1.0]).is_err());
    }
}
