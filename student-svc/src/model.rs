//! The student's inference in pure Rust, for every model kind of the artifact. A query (a user
//! and the last L input ids) becomes a query vector (Caser forward, SASRec forward, or the MF
//! user vector: [`query`], [`caser`], [`sasrec`]), then every item is scored as
//! `table[i] . query + bias[i]` by the SIMD kernel ([`table`]) over cache-sized blocks of
//! items, in parallel on the current rayon pool, several queries per pass, with a bounded
//! top-k per block merged at the end. By default ([`Scan::Int8`]) the pass reads an int8 copy
//! of the table with per-row error bounds and only the candidates it cannot rule out are
//! rescored in f32 ([`int8_scan`], see [`crate::quant`]); the answer is the same exact top k
//! as the f32 scan ([`Scan::F32`], [`f32_scan`]).
//!
//! This module assembles the parts from an artifact ([`weights`]) and is the only public face
//! of them: the parts never name [`StudentModel`].

mod caser;
mod embeddings;
mod f32_scan;
mod int8_scan;
mod ivf;
#[cfg(test)]
mod ivf_tests;
mod kmeans;
mod query;
mod sasrec;
mod scan;
mod table;
#[cfg(test)]
mod tests;
mod weights;

use rankdistill_core::artifact::{Artifact, ModelConfig, ModelKind};

use crate::kernel::Kernel;
use caser::CaserLayers;
use embeddings::Embeddings;
use f32_scan::top_k_f32;
use int8_scan::top_k_int8;
use ivf::IvfIndex;
use query::{Layers, QueryEncoder};
use sasrec::SasRecLayers;
use table::ScoringTable;
use weights::take;

pub use ivf::{IndexReport, IndexSettings, RECALL_AT, default_lists};
pub use query::QueryInput;
pub use scan::{BLOCK_ITEMS, Scan};
pub use weights::ModelError;

/// A loaded student, ready to score.
#[derive(Debug)]
pub struct StudentModel {
    /// Shape and hyper-parameters from the manifest.
    pub config: ModelConfig,
    /// Number of known users.
    num_users: usize,
    /// Query side: embeddings and the model kind's layers.
    encoder: QueryEncoder,
    /// Item side: the scoring table, bias, kernel and int8 copy.
    items: ScoringTable,
    scan: Scan,
    /// The approximate index, when built (the table is then stored list by list).
    index: Option<IvfIndex>,
}

impl StudentModel {
    /// Builds the model from a validated artifact (consumes its weights).
    pub fn from_artifact(mut artifact: Artifact, kernel: Kernel) -> Result<Self, ModelError> {
        let config = artifact.manifest.model.clone();
        let u = |x: i64| x.max(0) as usize;
        let (d, l, users, items) = (
            u(config.dim),
            u(config.sequence_length),
            u(config.num_users),
            u(config.num_items),
        );
        let rows = items + 1;
        // SASRec has no user table and scores with the input item table itself, no bias.
        let (user_embeddings, item_embeddings) = match config.kind {
            ModelKind::SasRec => (
                Vec::new(),
                take(&mut artifact, "item_embeddings.weight", rows * d)?,
            ),
            ModelKind::Mf | ModelKind::Caser => (
                take(&mut artifact, "user_embeddings.weight", users * d)?,
                take(&mut artifact, "item_embeddings.weight", rows * d)?,
            ),
        };
        let (layers, query_dim, table_values, bias_values) = match config.kind {
            ModelKind::Mf => {
                let bias = take(&mut artifact, "item_bias.weight", rows)?;
                (Layers::Mf, d, None, bias)
            }
            ModelKind::SasRec => {
                let layers = SasRecLayers::take(&mut artifact, &config, kernel)?;
                (Layers::SasRec(layers), d, None, vec![0.0; rows])
            }
            ModelKind::Caser => {
                let layers = CaserLayers::take(&mut artifact, &config)?;
                let w2 = take(&mut artifact, "W2.weight", rows * 2 * d)?;
                let b2 = take(&mut artifact, "b2.weight", rows)?;
                (Layers::Caser(layers), 2 * d, Some(w2), b2)
            }
        };
        let items = ScoringTable::new(
            table_values.as_deref().unwrap_or(&item_embeddings),
            query_dim,
            &bias_values,
            kernel,
        );
        Ok(StudentModel {
            config,
            num_users: users,
            encoder: QueryEncoder {
                embeddings: Embeddings {
                    dim: d,
                    users: user_embeddings,
                    items: item_embeddings,
                },
                layers,
                sequence_length: l,
            },
            items,
            scan: Scan::default(),
            index: None,
        })
    }

    /// Number of rankable items.
    pub fn num_items(&self) -> usize {
        self.items.num_items()
    }

    /// Number of known users (from the config: SASRec knows them but has no user table).
    pub fn num_users(&self) -> usize {
        self.num_users
    }

    /// Input length L.
    pub fn sequence_length(&self) -> usize {
        self.encoder.sequence_length
    }

    /// The kernel that scores.
    pub fn kernel(&self) -> Kernel {
        self.items.kernel
    }

    /// The scan `top_k_batch` uses.
    pub fn scan(&self) -> Scan {
        self.scan
    }

    /// Selects the scan (the default is [`Scan::Int8`]); F32 drops the int8 copy.
    pub fn with_scan(mut self, scan: Scan) -> Self {
        self.scan = scan;
        self.items.keep_int8(scan == Scan::Int8);
        self
    }

    /// Per-item bias in item order (b2 for Caser, item_bias for MF, zero for SASRec): the
    /// popularity fallback's order when no dataset is given.
    pub fn item_bias(&self) -> Vec<f32> {
        self.items.bias_by_item()
    }

    /// Builds the approximate index (see [`ivf`]) and stores the table list by list; the
    /// int8 copy is dropped, and so is MF's second copy of the item embeddings (its fold-in
    /// then reads the scoring table). `tuning` are the queries recall is measured on.
    pub fn with_index(mut self, settings: &IndexSettings, tuning: &[QueryInput]) -> Self {
        let vectors = self.query_block(tuning);
        let (index, order) = IvfIndex::build(&self.items, settings, &vectors);
        self.items.reorder(order);
        if self.config.kind == ModelKind::Mf {
            self.encoder.embeddings.items = Vec::new();
        }
        self.index = Some(index);
        self
    }

    /// The scoring row of item `item` (its first `query_dim` floats, unpadded).
    pub fn item_vector(&self, item: usize) -> &[f32] {
        self.items.item_row(item)
    }

    /// The approximate index's figures, when it is built.
    pub fn index_report(&self) -> Option<&IndexReport> {
        self.index.as_ref().map(|i| &i.report)
    }

    /// Bytes of the scoring table and bias (what one full f32 scan reads).
    pub fn table_bytes(&self) -> usize {
        (self.items.table.len() + self.items.bias.len()) * std::mem::size_of::<f32>()
    }

    /// Bytes the first pass of the int8 scan reads (codes, row constants, bias); 0 for F32.
    pub fn quant_bytes(&self) -> usize {
        if self.items.quant.rows() == 0 {
            return 0;
        }
        self.items.quant.bytes() + self.items.bias.len() * std::mem::size_of::<f32>()
    }

    /// Length of a query vector before padding (2d for Caser, d for MF and SASRec).
    pub fn query_dim(&self) -> usize {
        self.items.query_dim
    }

    /// Row stride of the scoring table and query vectors (floats).
    pub fn stride(&self) -> usize {
        self.items.stride
    }

    /// Writes the query vector of `query` into `out` (`stride` floats; padding stays zero).
    /// Input ids and users out of range are treated as padding and unknown.
    pub fn query_vector(&self, query: &QueryInput, out: &mut [f32]) {
        self.encoder.query_vector(query, &self.items, out);
    }

    /// Scores every item for each query: `[nq][num_items]`. For tests and parity checks; serving
    /// uses [`StudentModel::top_k_batch`], which never materialises all scores.
    pub fn score_all(&self, queries: &[QueryInput]) -> Vec<Vec<f32>> {
        let q = self.query_block(queries);
        let n = self.num_items();
        let out = self.items.score_all(&q);
        out.chunks_exact(n.max(1)).map(<[f32]>::to_vec).collect()
    }

    fn query_block(&self, queries: &[QueryInput]) -> Vec<f32> {
        let stride = self.stride();
        let mut q = vec![0.0; queries.len() * stride];
        for (query, out) in queries.iter().zip(q.chunks_exact_mut(stride)) {
            self.query_vector(query, out);
        }
        q
    }

    /// The top k (dense item, score) of each query, best first (ties to the smaller item),
    /// skipping each query's `excludes` (sorted dense items). Blocks of items are scored in
    /// parallel on the current rayon pool; all queries share each pass over a block.
    pub fn top_k_batch(
        &self,
        queries: &[QueryInput],
        k: usize,
        excludes: &[Vec<u32>],
    ) -> Vec<Vec<(u32, f32)>> {
        let nq = queries.len();
        let n = self.num_items();
        if nq == 0 || k == 0 || n == 0 {
            return vec![Vec::new(); nq];
        }
        let q = self.query_block(queries);
        if let Some(index) = &self.index {
            return index.top_k(&self.items, &q, k, excludes);
        }
        if self.scan == Scan::Int8
            && self.items.quant.rows() == n
            && let Some(ranked) = top_k_int8(&self.items, &q, k, excludes)
        {
            return ranked;
        }
        top_k_f32(&self.items, &q, k, excludes)
    }
}
