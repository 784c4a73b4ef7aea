//! What student-svc measures per model version while it serves: live fidelity to the teacher
//! (shadow calls: the running means of `core::fidelity` and the ok / dropped / failed counts)
//! and the latency of its Recommend answers. One [`VersionStats`] per version string, kept in
//! the [`StatsBook`] for the life of the process (a version served again later continues its
//! figures); each update also moves the version's Prometheus series.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{Gauge, IntCounter};
use rankdistill_core::fidelity::{FidelitySummary, QueryFidelity};

use crate::latency::LatencyHistogram;
use crate::telemetry::Metrics;

/// How a shadow call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOutcome {
    /// The teacher answered; the query was measured.
    Ok,
    /// The shadow queue was full; the query was not asked.
    Dropped,
    /// The teacher failed, timed out or was unreachable.
    Failed,
}

impl ShadowOutcome {
    /// The `outcome` label.
    pub fn label(self) -> &'static str {
        match self {
            ShadowOutcome::Ok => "ok",
            ShadowOutcome::Dropped => "dropped",
            ShadowOutcome::Failed => "failed",
        }
    }
}

/// A version's fidelity and shadow counts at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FidelitySnapshot {
    /// Running means of the measured queries.
    pub summary: FidelitySummary,
    /// Shadow calls the teacher answered.
    pub ok: u64,
    /// Sampled queries dropped (queue full).
    pub dropped: u64,
    /// Shadow calls that failed.
    pub failed: u64,
}

/// The version's Prometheus series, resolved once.
#[derive(Debug)]
struct Series {
    calls: [IntCounter; 3],
    overlap: Gauge,
    ndcg: Gauge,
    rank_correlation: Gauge,
    queries: IntCounter,
}

impl Series {
    fn new(metrics: &Metrics, version: &str) -> Series {
        let call = |o: ShadowOutcome| {
            metrics
                .shadow_calls
                .with_label_values(&[version, o.label()])
        };
        Series {
            calls: [
                call(ShadowOutcome::Ok),
                call(ShadowOutcome::Dropped),
                call(ShadowOutcome::Failed),
            ],
            overlap: metrics.fidelity_overlap.with_label_values(&[version]),
            ndcg: metrics.fidelity_ndcg.with_label_values(&[version]),
            rank_correlation: metrics
                .fidelity_rank_correlation
                .with_label_values(&[version]),
            queries: metrics.fidelity_queries.with_label_values(&[version]),
        }
    }
}

/// Live figures of one model version.
#[derive(Debug)]
pub struct VersionStats {
    version: String,
    fidelity: Mutex<FidelitySummary>,
    outcomes: [AtomicU64; 3],
    /// Latencies of the version's successful Recommend answers.
    pub latency: LatencyHistogram,
    series: Option<Series>,
}

impl VersionStats {
    /// Figures of `version`, exported through `metrics` when given (shadowing on).
    pub fn new(version: &str, metrics: Option<&Metrics>) -> VersionStats {
        VersionStats {
            version: version.to_string(),
            fidelity: Mutex::new(FidelitySummary::default()),
            outcomes: Default::default(),
            latency: LatencyHistogram::default(),
            series: metrics.map(|m| Series::new(m, version)),
        }
    }

    /// The version these figures are of.
    pub fn version(&self) -> &str {
        &self.version
    }

    fn count(&self, outcome: ShadowOutcome) {
        let i = outcome as usize;
        self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        if let Some(s) = &self.series {
            s.calls[i].inc();
        }
    }

    /// A shadow call the teacher answered, with the query's figures.
    pub fn record_ok(&self, query: QueryFidelity) {
        let summary = {
            let mut fidelity = self.fidelity.lock().unwrap_or_else(PoisonError::into_inner);
            fidelity.add(query);
            fidelity.clone()
        };
        self.count(ShadowOutcome::Ok);
        if let Some(s) = &self.series {
            s.overlap.set(summary.overlap);
            s.ndcg.set(summary.ndcg);
            s.rank_correlation.set(summary.rank_correlation);
            s.queries.inc();
        }
    }

    /// A sampled query not asked: the shadow queue was full.
    pub fn record_dropped(&self) {
        self.count(ShadowOutcome::Dropped);
    }

    /// A shadow call that failed.
    pub fn record_failed(&self) {
        self.count(ShadowOutcome::Failed);
    }

    /// The fidelity means and the shadow counts now.
    pub fn fidelity(&self) -> FidelitySnapshot {
        let get = |o: ShadowOutcome| self.outcomes[o as usize].load(Ordering::Relaxed);
        FidelitySnapshot {
            summary: self
                .fidelity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            ok: get(ShadowOutcome::Ok),
            dropped: get(ShadowOutcome::Dropped),
            failed: get(ShadowOutcome::Failed),
        }
    }
}

/// Every version's figures, by version string.
#[derive(Debug, Default)]
pub struct StatsBook {
    metrics: Option<Metrics>,
    versions: Mutex<HashMap<String, Arc<VersionStats>>>,
}

impl StatsBook {
    /// A book whose versions export fidelity series through `metrics` (None: shadowing off,
    /// no fidelity series).
    pub fn new(metrics: Option<Metrics>) -> StatsBook {
        StatsBook {
            metrics,
            versions: Mutex::default(),
        }
    }

    /// The figures of `version`, created on first use.
    pub fn get(&self, version: &str) -> Arc<VersionStats> {
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        versions
            .entry(version.to_string())
            .or_insert_with(|| Arc::new(VersionStats::new(version, self.metrics.as_ref())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_and_means_are_kept_and_exported_per_version() {
        let metrics = Metrics::new();
        let book = StatsBook::new(Some(metrics.clone()));
        let v1 = book.get("v1");
        assert!(Arc::ptr_eq(&v1, &book.get("v1")));
        v1.record_ok(QueryFidelity::measure(&[1, 2], &[1, 2], 2));
        v1.record_ok(QueryFidelity::measure(&[3, 4], &[1, 2], 2));
        v1.record_dropped();
        v1.record_failed();
        v1.record_failed();
        book.get("v2").record_dropped();
        let snapshot = v1.fidelity();
        assert_eq!((snapshot.ok, snapshot.dropped, snapshot.failed), (2, 1, 2));
        assert_eq!(snapshot.summary.queries, 2);
        assert!((snapshot.summary.overlap - 0.5).abs() < 1e-12);
        let text = metrics.server.render();
        for line in [
            r#"student_shadow_calls_total{outcome="ok",version="v1"} 2"#,
            r#"student_shadow_calls_total{outcome="dropped",version="v1"} 1"#,
            r#"student_shadow_calls_total{outcome="failed",version="v1"} 2"#,
            r#"student_shadow_calls_total{outcome="dropped",version="v2"} 1"#,
            r#"student_fidelity_overlap{version="v1"} 0.5"#,
            r#"student_fidelity_queries_total{version="v1"} 2"#,
            r#"student_fidelity_queries_total{version="v2"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn without_metrics_the_figures_are_still_kept() {
        let book = StatsBook::new(None);
        book.get("v").record_failed();
        assert_eq!(book.get("v").fidelity().failed, 1);
    }
}
