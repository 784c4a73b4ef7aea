//! What the teacher serves once loaded and warmed up: the model thread and the dataset
//! lookups.

use std::sync::Arc;

use crate::catalog::Catalog;
use crate::engine::Engine;

/// The loaded model and dataset; set once, when warm-up is done.
#[derive(Debug)]
pub struct Ready {
    /// The model thread.
    pub engine: Engine,
    /// The dataset lookups.
    pub catalog: Arc<Catalog>,
}
