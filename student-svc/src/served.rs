//! One loaded, warmed model version as requests see it: the model, its id maps and its
//! identity. Requests hold an `Arc` of the version they started on; the reloader swaps in
//! new ones, and the scoring pool batches queries of the same version together. Each version
//! carries its live figures (fidelity, latency) for metrics, `Info` and the probation.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rankdistill_core::artifact::ModelKind;

use crate::catalog::Catalog;
use crate::model::StudentModel;
use crate::probation::Figures;
use crate::version_stats::VersionStats;

/// What `Info` reports about a version.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// Model kind.
    pub kind: ModelKind,
    /// Embedding dimension d.
    pub dim: usize,
    /// Items.
    pub num_items: usize,
    /// Users.
    pub num_users: usize,
    /// Input length L.
    pub sequence_length: usize,
    /// Weights hash.
    pub version: String,
    /// Fingerprint of the training data.
    pub data_fingerprint: String,
    /// Learnable parameters.
    pub num_parameters: u64,
    /// The teacher's identity for a distilled student, as JSON ("" if none).
    pub teacher_json: String,
}

/// One loaded, warmed model version with its id maps.
#[derive(Debug)]
pub struct Served {
    /// The scorer.
    pub model: StudentModel,
    /// Raw ids and histories.
    pub catalog: Catalog,
    /// Identity.
    pub summary: ModelSummary,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    /// Its live figures (shared by every load of the same version).
    pub stats: Arc<VersionStats>,
}

impl Served {
    /// Unix milliseconds of `loaded_at`.
    pub fn loaded_at_unix_ms(&self) -> i64 {
        self.loaded_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// Its live figures for the probation: fidelity means and the Recommend p99.
    pub fn figures(&self) -> Figures {
        let fidelity = self.stats.fidelity();
        Figures {
            queries: fidelity.summary.queries,
            overlap: fidelity.summary.overlap,
            answers: self.stats.latency.count(),
            p99_s: self.stats.latency.quantile(0.99),
        }
    }
}
