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
        let l = self.config.sequence_length;
        let item_embs = self.item_embeddings.forward(inputs); // [B,L,d]
        let user_emb = self.user_embeddings.forward(users); // [B,d]
        let mut parts = Vec::with_capacity(2);
        // The convolutions as the matrix products they are (one LibTorch call each instead of
        // a small GEMM per instance): the same sums, in another order.
        if let Some(conv_v) = &self.conv_v {
            // Filter f over time: out[b, f, j] = sum_t w[f, t] e[b, t, j] + bias[f].
            let w = conv_v.ws.view([self.config.nv, l]);
            let mut out = item_embs.transpose(1, 2).matmul(&w.tr()); // [B,d,nv]
            if let Some(bias) = &conv_v.bs {
                out += bias;
            }
            parts.push(out.transpose(1, 2).reshape([-1, self.config.nv * d]));
        }
        if !self.conv_h.is_empty() {
            let pooled: Vec<Tensor> = self
                .conv_h
                .iter()
                .zip(1..=l)
                .map(|(conv, h)| {
                    // The h consecutive embeddings at each start, side by side: [B,L-h+1,h*d].
                    let windows = Tensor::cat(
                        &(0..h)
                            .map(|i| item_embs.narrow(1, i, l - h + 1))
                            .collect::<Vec<_>>(),
                        2,
                    );
                    let w = conv.ws.view([self.config.nh, h * d]);
                    let out = match &conv.bs {
                        Some(bias) => windows.matmul(&w.tr()) + bias,
                        None => windows.matmul(&w.tr()),
                    }; // [B,L-h+1,nh]
                    activate(self.config.conv_activation, &out).amax([1], false) // max-pool over time
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// The query side as the reference computes it, with LibTorch's 2-D convolutions.
    fn query_with_conv2d(m: &Caser, users: &Tensor, inputs: &Tensor) -> Tensor {
        let d = m.config.dim;
        let item_embs = m.item_embeddings.forward(inputs).unsqueeze(1);
        let mut parts = Vec::new();
        if let Some(conv_v) = &m.conv_v {
            parts.push(item_embs.apply(conv_v).view([-1, m.config.nv * d]));
        }
        let pooled: Vec<Tensor> = m
            .conv_h
            .iter()
            .map(|conv| {
                activate(
                    m.config.conv_activation,
                    &item_embs.apply(conv).squeeze_dim(3),
                )
                .amax([2], false)
            })
            .collect();
        parts.push(Tensor::cat(&pooled, 1));
        let z = activate(
            m.config.fc_activation,
            &Tensor::cat(&parts, 1).apply(&m.fc1),
        );
        Tensor::cat(&[z, m.user_embeddings.forward(users)], 1)
    }

    #[test]
    fn the_convolutions_as_products_agree_with_conv2d() {
        tch::manual_seed(3);
        for activation in [Activation::Identity, Activation::Relu] {
            let mut config = ModelConfig::caser(8, 4, 20);
            config.conv_activation = activation;
            let vs = nn::VarStore::new(Device::Cpu);
            let m = Caser::new(&vs.root(), &config);
            let users = Tensor::from_slice(&[0i64, 3, 2]);
            let inputs = Tensor::randint(21, [3, 5], (Kind::Int64, Device::Cpu));
            let ours = m.query(&users, &inputs, false);
            let reference = query_with_conv2d(&m, &users, &inputs);
            assert_eq!(ours.size(), vec![3, 16]);
            assert!(
                ours.allclose(&reference, 1e-5, 1e-6, false),
                "{activation:?}"
            );
        }
    }
}
