//! Caser, the reference sequential model: horizontal and vertical convolutions over the
//! embeddings of the last L items, concatenated with the user's embedding.

use rankdistill_core::artifact::{Activation, ModelConfig};
use tch::Tensor;
use tch::nn::{self, Module};

use crate::init::{conv2d, linear, normal_embedding, zero_embedding};

fn activate(activation: Activation, xs: &Tensor) -> Tensor {
    match activation {
        Activation::Identity => xs.shallow_clone(),
        Activation::Relu => xs.relu(),
        Activation::Tanh => xs.tanh(),
        Activation::Sigmoid => xs.sigmoid(),
    }
}

/// Caser's layers.
#[derive(Debug)]
pub struct Caser {
    config: ModelConfig,
    user_embeddings: nn::Embedding,
    item_embeddings: nn::Embedding,
    conv_v: Option<nn::Conv2D>,
    conv_h: Vec<nn::Conv2D>,
    fc1: nn::Linear,
    w2: nn::Embedding,
    b2: nn::Embedding,
}

impl Caser {
    /// Builds Caser's variables under `path`, initialised as the reference does.
    pub fn new(path: &nn::Path, config: &ModelConfig) -> Caser {
        let (d, l) = (config.dim, config.sequence_length);
        let rows = config.num_items + 1;
        let conv_v = (config.nv > 0).then(|| conv2d(path / "conv_v", config.nv, [l, 1]));
        let conv_h = (1..=l)
            .filter(|_| config.nh > 0)
            .map(|h| conv2d(path / "conv_h" / (h - 1), config.nh, [h, d]))
            .collect();
        let fc_in = config.nv * d + config.nh * l;
        Caser {
            config: config.clone(),
            user_embeddings: normal_embedding(path / "user_embeddings", config.num_users, d),
            item_embeddings: normal_embedding(path / "item_embeddings", rows, d),
            conv_v,
            conv_h,
            fc1: linear(path / "fc1", fc_in, d),
            w2: normal_embedding(path / "W2", rows, 2 * d),
            b2: zero_embedding(path / "b2", rows, 1),
        }
    }

    /// The query representation x = [z; P_u], shape [B, 2d].
    pub fn query(&self, users: &Tensor, inputs: &Tensor, train: bool) -> Tensor {
        let d = self.config.dim;
        let item_embs = self.item_embeddings.forward(inputs).unsqueeze(1); // [B,1,L,d]
        let user_emb = self.user_embeddings.forward(users); // [B,d]
        let mut parts = Vec::with_capacity(2);
        if let Some(conv_v) = &self.conv_v {
            parts.push(item_embs.apply(conv_v).view([-1, self.config.nv * d]));
        }
        if !self.conv_h.is_empty() {
            let pooled: Vec<Tensor> = self
                .conv_h
                .iter()
                .map(|conv| {
                    let out = activate(
                        self.config.conv_activation,
                        &item_embs.apply(conv).squeeze_dim(3),
                    ); // [B,nh,L-h+1]
                    out.amax([2], false) // max-pool over time
                })
                .collect();
            parts.push(Tensor::cat(&pooled, 1));
        }
        let out = Tensor::cat(&parts, 1).dropout(self.config.dropout, train);
        let z = activate(self.config.fc_activation, &out.apply(&self.fc1));
        Tensor::cat(&[z, user_emb], 1)
    }

    /// The output item table W2 [rows, 2d] and its bias b2 [rows, 1] (row 0 is padding).
    pub fn output_table(&self) -> (&Tensor, &Tensor) {
        (&self.w2.ws, &self.b2.ws)
    }
}
