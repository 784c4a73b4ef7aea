//! The ranking models in LibTorch: Caser (the reference sequential model) and MF. Both score
//! a query (a user plus the last L items) against items; serving scores all items and takes
//! the top k on the model's device.

use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

pub use rankdistill_core::artifact::{Activation, ModelConfig, ModelKind};

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

fn normal_embedding(path: nn::Path, rows: i64, cols: i64) -> nn::Embedding {
    let std = 1.0 / cols as f64;
    nn::embedding(
        path,
        rows,
        cols,
        nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            ..Default::default()
        },
    )
}

fn zero_embedding(path: nn::Path, rows: i64, cols: i64) -> nn::Embedding {
    nn::embedding(
        path,
        rows,
        cols,
        nn::EmbeddingConfig {
            ws_init: nn::Init::Const(0.0),
            ..Default::default()
        },
    )
}

impl Caser {
    /// Builds Caser's variables under `path`, initialised as the reference does.
    pub fn new(path: &nn::Path, config: &ModelConfig) -> Caser {
        let (d, l) = (config.dim, config.sequence_length);
        let rows = config.num_items + 1;
        let conv_v = (config.nv > 0)
            .then(|| nn::conv(path / "conv_v", 1, config.nv, [l, 1], Default::default()));
        let conv_h = (1..=l)
            .filter(|_| config.nh > 0)
            .map(|h| {
                nn::conv(
                    path / "conv_h" / (h - 1),
                    1,
                    config.nh,
                    [h, d],
                    Default::default(),
                )
            })
            .collect();
        let fc_in = config.nv * d + config.nh * l;
        Caser {
            config: config.clone(),
            user_embeddings: normal_embedding(path / "user_embeddings", config.num_users, d),
            item_embeddings: normal_embedding(path / "item_embeddings", rows, d),
            conv_v,
            conv_h,
            fc1: nn::linear(path / "fc1", fc_in, d, Default::default()),
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
}

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
}

/// A native model: Caser or MF. Items passed in and returned are dense indices (0-based real
/// items); internally row `i + 1` holds item `i` and row 0 is padding, which is never scored.
#[derive(Debug)]
pub enum Model {
    /// Caser (boxed: far larger than MF).
    Caser(Box<Caser>),
    /// MF.
    Mf(Mf),
}

impl Model {
    /// Builds a model's variables under `path`.
    pub fn new(path: &nn::Path, config: &ModelConfig) -> Model {
        match config.kind {
            ModelKind::Caser => Model::Caser(Box::new(Caser::new(path, config))),
            ModelKind::Mf => Model::Mf(Mf::new(path, config)),
        }
    }

    /// The query vector and the output item table (weights with a trailing bias column
    /// appended to the query side), so score = [x; 1] . [W; b].
    fn query_and_table(
        &self,
        users: &Tensor,
        inputs: &Tensor,
        train: bool,
    ) -> (Tensor, &Tensor, &Tensor) {
        match self {
            Model::Caser(m) => (m.query(users, inputs, train), &m.w2.ws, &m.b2.ws),
            Model::Mf(m) => (
                m.user_embeddings.forward(users),
                &m.item_embeddings.ws,
                &m.item_bias.ws,
            ),
        }
    }

    /// Scores chosen items: users [B] (int64), inputs [B, L] (input ids), items [B, M] (dense
    /// item indices) -> [B, M].
    pub fn score_items(
        &self,
        users: &Tensor,
        inputs: &Tensor,
        items: &Tensor,
        train: bool,
    ) -> Tensor {
        let (x, table, bias) = self.query_and_table(users, inputs, train);
        let rows = items + 1;
        let w = table
            .index_select(0, &rows.view([-1]))
            .view([rows.size()[0], rows.size()[1], -1]);
        let b = bias
            .index_select(0, &rows.view([-1]))
            .view(rows.size().as_slice());
        w.matmul(&x.unsqueeze(2)).squeeze_dim(2) + b
    }

    /// Scores every real item: users [B], inputs [B, L] -> [B, num_items].
    pub fn score_all(&self, users: &Tensor, inputs: &Tensor, train: bool) -> Tensor {
        let (x, table, bias) = self.query_and_table(users, inputs, train);
        let w = table.narrow(0, 1, table.size()[0] - 1);
        let b = bias.narrow(0, 1, bias.size()[0] - 1).view([1, -1]);
        x.matmul(&w.tr()) + b
    }
}

/// Converts dense ids to an int64 tensor of the given shape on `device`.
pub fn ids_tensor(ids: &[u32], shape: &[i64], device: Device) -> Tensor {
    let data: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&data).view(shape).to_device(device)
}

/// Sets `scores[row, item] = -inf` for every listed exclusion, in place. `excludes[row]` holds
/// dense item indices; out-of-range ones must be rejected before.
pub fn mask_excluded(scores: &mut Tensor, excludes: &[Vec<u32>]) {
    let n_items = scores.size()[1];
    let flat: Vec<i64> = excludes
        .iter()
        .enumerate()
        .flat_map(|(row, items)| items.iter().map(move |&i| row as i64 * n_items + i as i64))
        .collect();
    if flat.is_empty() {
        return;
    }
    let index = Tensor::from_slice(&flat).to_device(scores.device());
    let _ = scores.view([-1]).index_fill_(0, &index, f64::NEG_INFINITY);
}

/// Top-k of each row of a [B, N] score tensor after masking, copied to the CPU as
/// (dense item, score) lists. Items scored -inf (excluded) are dropped.
pub fn top_k_rows(scores: &Tensor, k: i64) -> Vec<Vec<(u32, f32)>> {
    let k = k.min(scores.size()[1]);
    let (values, indices) = scores.topk(k, 1, true, true);
    let values = values
        .to_kind(Kind::Float)
        .to_device(Device::Cpu)
        .contiguous();
    let indices = indices.to_device(Device::Cpu).contiguous();
    let rows = values.size()[0] as usize;
    let v: Vec<f32> = Vec::try_from(values.view([-1])).unwrap_or_default();
    let ix: Vec<i64> = Vec::try_from(indices.view([-1])).unwrap_or_default();
    let k = k as usize;
    (0..rows)
        .map(|r| {
            (0..k)
                .map(|c| (ix[r * k + c] as u32, v[r * k + c]))
                .filter(|(_, s)| *s != f32::NEG_INFINITY)
                .collect()
        })
        .collect()
}

/// Number of trainable parameters in a var store.
pub fn num_parameters(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(kind: ModelKind) -> (nn::VarStore, Model, ModelConfig) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut config = ModelConfig::caser(8, 4, 10);
        config.kind = kind;
        config.sequence_length = 3;
        let model = Model::new(&vs.root(), &config);
        (vs, model, config)
    }

    #[test]
    fn score_items_agrees_with_score_all() {
        for kind in [ModelKind::Caser, ModelKind::Mf] {
            let (_vs, model, _) = tiny(kind);
            let users = ids_tensor(&[0, 3], &[2], Device::Cpu);
            let inputs = ids_tensor(&[0, 1, 2, 4, 5, 6], &[2, 3], Device::Cpu);
            let all = model.score_all(&users, &inputs, false);
            assert_eq!(all.size(), vec![2, 10]);
            let items = ids_tensor(&[9, 0, 3, 2, 2, 7], &[2, 3], Device::Cpu);
            let some = model.score_items(&users, &inputs, &items, false);
            let gathered = all.gather(1, &items, false);
            assert!(some.allclose(&gathered, 1e-5, 1e-6, false), "{kind}");
        }
    }

    #[test]
    fn masking_and_top_k() {
        let mut scores = Tensor::from_slice(&[0.1f32, 0.9, 0.5, 0.7, 0.3, 0.2]).view([2, 3]);
        mask_excluded(&mut scores, &[vec![1], vec![]]);
        let top = top_k_rows(&scores, 2);
        assert_eq!(top[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![2, 0]);
        assert_eq!(top[1].iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        // Everything excluded: the row comes back short rather than with -inf items.
        let mut scores = Tensor::from_slice(&[1.0f32, 2.0]).view([1, 2]);
        mask_excluded(&mut scores, &[vec![0, 1]]);
        assert!(top_k_rows(&scores, 2)[0].is_empty());
    }

    #[test]
    fn caser_parameter_count_matches_the_architecture() {
        let (vs, _, c) = tiny(ModelKind::Caser);
        let (d, l, rows) = (c.dim, c.sequence_length, c.num_items + 1);
        let conv_h: i64 = (1..=l).map(|h| c.nh * h * d + c.nh).sum();
        let expected = c.num_users * d
            + rows * d
            + (c.nv * l + c.nv)
            + conv_h
            + ((c.nv * d + c.nh * l) * d + d)
            + rows * 2 * d
            + rows;
        assert_eq!(num_parameters(&vs), expected);
    }
}
