//! MF: matrix factorisation, a user embedding dotted with item embeddings plus an item bias.

use rankdistill_core::artifact::ModelConfig;
use tch::Tensor;
use tch::nn::{self, Module};

use crate::init::{normal_embedding, zero_embedding};

/// MF's layers.
#[derive(Debug)]
pub struct Mf {
    user_embeddings: nn::Embedding,
    item_embeddings: nn::Embedding,
    item_bias: nn::Embedding,
}

impl Mf {
    /// Builds MF's variables under `path`.
    pub fn new(path: &nn::Path, config: &ModelConfig) -> Mf {
        let rows = config.num_items + 1;
        Mf {
            user_embeddings: normal_embedding(
                path / "user_embeddings",
                config.num_users,
                config.dim,
            ),
            item_embeddings: normal_embedding(path / "item_embeddings", rows, config.dim),
            item_bias: zero_embedding(path / "item_bias", rows, 1),
        }
    }

    /// The query representation: the users' embeddings, shape [B, d].
    pub fn query(&self, users: &Tensor) -> Tensor {
        self.user_embeddings.forward(users)
    }

    /// The output item table [rows, d] and its bias [rows, 1] (row 0 is padding).
    pub fn output_table(&self) -> (&Tensor, &Tensor) {
        (&self.item_embeddings.ws, &self.item_bias.ws)
    }
}
