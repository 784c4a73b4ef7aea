//! One loaded, warmed model version as requests see it: the model, its id maps and its
//! identity. Requests hold an `Arc` of the version they started on; the reloader swaps in
//! new ones, and the scoring pool batches queries of the same version together.

use std::time::{SystemTime, UNIX_EPOCH};

use rankdistill_core::artifact::ModelKind;

use crate::catalog::Catalog;
use crate::model::StudentModel;

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
}

impl Served {
    /// Unix milliseconds of `loaded_at`.
    pub fn loaded_at_unix_ms(&self) -> i64 {
        self.loaded_at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}
