//! From a query (a user and the last L input ids) to the query vector the item table is
//! scored against: the Caser forward `[z; user]`, the SASRec forward (users ignored), or the
//! MF user vector (folded in from the input items for an unknown user).

use rankdistill_core::instances::PAD;

use super::caser::CaserLayers;
use super::embeddings::Embeddings;
use super::sasrec::SasRecLayers;
use super::table::ScoringTable;

/// One query in dense form.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryInput {
    /// Dense user index; `None` for a user the model does not know (the user part of the
    /// query is then zero for Caser, and the mean of the input items' embeddings for MF).
    /// SASRec ignores it.
    pub user: Option<u32>,
    /// L input ids, oldest first, left-padded (0 = padding, dense item i = i + 1).
    pub inputs: Vec<u32>,
}

/// The layers between the embeddings and the query vector, by model kind.
#[derive(Debug)]
pub(super) enum Layers {
    /// MF: none (the user vector is the query).
    Mf,
    /// Caser's convolutions and fc layer.
    Caser(CaserLayers),
    /// SASRec's positions, self-attention blocks and final norm.
    SasRec(SasRecLayers),
}

/// The query side of the model: embeddings, and the model kind's layers.
#[derive(Debug)]
pub(super) struct QueryEncoder {
    /// User and input-item embeddings.
    pub(super) embeddings: Embeddings,
    /// The model kind's layers.
    pub(super) layers: Layers,
    /// Input length L.
    pub(super) sequence_length: usize,
}

impl QueryEncoder {
    /// Writes the query vector of `query` into `out` (padding stays zero). Input ids and
    /// users out of range are treated as padding and unknown. MF without its own item
    /// embeddings (dropped with the approximate index) folds in from the scoring table.
    pub(super) fn query_vector(&self, query: &QueryInput, table: &ScoringTable, out: &mut [f32]) {
        out.fill(0.0);
        let emb = &self.embeddings;
        let d = emb.dim;
        match &self.layers {
            Layers::Mf => match emb.user_row(query.user) {
                Some(user) => out[..d].copy_from_slice(user),
                None => {
                    // Fold-in for an unknown user: the mean of the input items' embeddings.
                    let n_items = table.num_items();
                    let real: Vec<u32> = query
                        .inputs
                        .iter()
                        .copied()
                        .filter(|&i| i != PAD && (i as usize) <= n_items)
                        .collect();
                    for &i in &real {
                        let row = if emb.items.is_empty() {
                            table.item_row(i as usize - 1)
                        } else {
                            emb.item_row(i)
                        };
                        for (o, v) in out[..d].iter_mut().zip(row) {
                            *o += v;
                        }
                    }
                    if !real.is_empty() {
                        let n = real.len() as f32;
                        out[..d].iter_mut().for_each(|o| *o /= n);
                    }
                }
            },
            Layers::Caser(caser) => {
                let z = caser.forward(emb, self.sequence_length, &query.inputs);
                out[..d].copy_from_slice(&z);
                if let Some(user) = emb.user_row(query.user) {
                    out[d..2 * d].copy_from_slice(user);
                }
            }
            Layers::SasRec(sasrec) => {
                sasrec.forward(emb, self.sequence_length, &query.inputs, &mut out[..d]);
            }
        }
    }
}
