//! SASRec (Kang and McAuley, ICDM 2018), as its authors' code builds it (kang205/SASRec
//! `model.py`, `modules.py`): item embeddings scaled by sqrt(d) plus learned positions, then
//! blocks of causal self-attention and a point-wise feed-forward network, each reading a layer
//! norm of its input with a residual connection to that norm, and a final layer norm. The
//! output of position t scores items against the input item table itself.

use rankdistill_core::artifact::ModelConfig;
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::init::{glorot_linear, glorot_uniform};

/// The reference's layer-norm epsilon (`modules.py`, `normalize`).
const LAYER_NORM_EPS: f64 = 1e-8;
/// The score given to masked attention entries before the softmax (`modules.py`: -2^32 + 1).
pub const MASKED_SCORE: f64 = -4_294_967_295.0;

/// One self-attention block.
#[derive(Debug)]
struct Block {
    attention_norm: nn::LayerNorm,
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    feed_forward_norm: nn::LayerNorm,
    ff1: nn::Linear,
    ff2: nn::Linear,
}

fn layer_norm(path: nn::Path, dim: i64) -> nn::LayerNorm {
    nn::layer_norm(
        path,
        vec![dim],
        nn::LayerNormConfig {
            eps: LAYER_NORM_EPS,
            ..Default::default()
        },
    )
}

impl Block {
    fn new(path: nn::Path, d: i64) -> Block {
        Block {
            attention_norm: layer_norm(&path / "attention_norm", d),
            query: glorot_linear(&path / "query", d, d),
            key: glorot_linear(&path / "key", d, d),
            value: glorot_linear(&path / "value", d, d),
            feed_forward_norm: layer_norm(&path / "feed_forward_norm", d),
            ff1: glorot_linear(&path / "ff1", d, d),
            ff2: glorot_linear(&path / "ff2", d, d),
        }
    }
}

/// SASRec's layers.
#[derive(Debug)]
pub struct SasRec {
    config: ModelConfig,
    item_embeddings: nn::Embedding,
    position_embeddings: Tensor,
    blocks: Vec<Block>,
    final_norm: nn::LayerNorm,
    /// The output table's bias: zeros (SASRec has none), not a variable.
    zero_bias: Tensor,
}

impl SasRec {
    /// Builds SASRec's variables under `path`, initialised as the reference's TensorFlow
    /// defaults: glorot-uniform tables and kernels, zero biases, unit layer-norm gains, the
    /// padding row of the item table at zero.
    pub fn new(path: &nn::Path, config: &ModelConfig) -> SasRec {
        let (d, l) = (config.dim, config.sequence_length);
        let rows = config.num_items + 1;
        let item_embeddings = nn::embedding(
            path / "item_embeddings",
            rows,
            d,
            nn::EmbeddingConfig {
                ws_init: glorot_uniform(rows, d),
                padding_idx: 0,
                ..Default::default()
            },
        );
        tch::no_grad(|| {
            let _ = item_embeddings.ws.get(0).zero_();
        });
        let position_embeddings =
            (path / "position_embeddings").var("weight", &[l, d], glorot_uniform(l, d));
        let blocks = (0..config.num_blocks)
            .map(|b| Block::new(path / "blocks" / b, d))
            .collect();
        SasRec {
            config: config.clone(),
            item_embeddings,
            position_embeddings,
            blocks,
            final_norm: layer_norm(path / "final_norm", d),
            zero_bias: Tensor::zeros([rows, 1], (Kind::Float, path.device())),
        }
    }

    /// The output of every position, [B, L, d], for inputs [B, L] (input ids, left-padded).
    pub fn hidden(&self, inputs: &Tensor, train: bool) -> Tensor {
        let (d, p) = (self.config.dim, self.config.dropout);
        let l = inputs.size()[1];
        let heads = self.config.num_heads;
        let dh = d / heads;
        let valid = inputs.ne(0); // [B, L]
        let mask = valid.unsqueeze(-1).to_kind(Kind::Float); // [B, L, 1]
        let positions = self
            .position_embeddings
            .narrow(0, self.config.sequence_length - l, l)
            .unsqueeze(0);
        let mut s = (self.item_embeddings.forward(inputs) * (d as f64).sqrt() + positions)
            .dropout(p, train)
            * &mask;
        // Entry (i, j) may attend when j <= i and input j is a real item: [B, 1, L, L].
        let causal = Tensor::ones([l, l], (Kind::Bool, inputs.device())).tril(0);
        let blocked = causal
            .unsqueeze(0)
            .logical_and(&valid.unsqueeze(1))
            .logical_not()
            .unsqueeze(1);
        let b = inputs.size()[0];
        let split = |t: Tensor| t.view([b, l, heads, dh]).transpose(1, 2); // [B, h, L, dh]
        for block in &self.blocks {
            let q = s.apply(&block.attention_norm);
            let (queries, keys, values) = (
                split(q.apply(&block.query)),
                split(s.apply(&block.key)),
                split(s.apply(&block.value)),
            );
            let weights = (queries.matmul(&keys.transpose(-1, -2)) / (dh as f64).sqrt())
                .masked_fill(&blocked, MASKED_SCORE)
                .softmax(-1, Kind::Float)
                .dropout(p, train);
            let attended = weights.matmul(&values).transpose(1, 2).reshape([b, l, d]);
            s = q + attended;
            let f = s.apply(&block.feed_forward_norm);
            let ff = f
                .apply(&block.ff1)
                .relu()
                .dropout(p, train)
                .apply(&block.ff2)
                .dropout(p, train);
            s = (f + ff) * &mask;
        }
        s.apply(&self.final_norm)
    }

    /// The query representation: the last position's output, [B, d].
    pub fn query(&self, inputs: &Tensor, train: bool) -> Tensor {
        let l = inputs.size()[1];
        self.hidden(inputs, train).select(1, l - 1)
    }

    /// The output item table (the input item table, row 0 padding) and its zero bias.
    pub fn output_table(&self) -> (&Tensor, &Tensor) {
        (&self.item_embeddings.ws, &self.zero_bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::ids_tensor;
    use tch::Device;

    fn tiny(heads: i64) -> (nn::VarStore, SasRec, ModelConfig) {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut config = ModelConfig::sasrec(8, 4, 20);
        config.sequence_length = 6;
        config.num_heads = heads;
        let model = SasRec::new(&vs.root(), &config);
        (vs, model, config)
    }

    #[test]
    fn the_shape_matches_the_manifest_and_the_padding_row_is_zero() {
        let (vs, model, config) = tiny(2);
        let parameters: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(parameters as usize, config.num_parameters());
        let mut names: Vec<String> = vs.variables().into_keys().collect();
        names.sort();
        let mut expected: Vec<String> =
            config.expected_tensors().into_iter().map(|t| t.0).collect();
        expected.sort();
        assert_eq!(names, expected);
        let (table, bias) = model.output_table();
        assert_eq!(table.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert_eq!(bias.abs().sum(Kind::Float).double_value(&[]), 0.0);
    }

    #[test]
    fn positions_see_only_the_past_and_padding_is_ignored() {
        for heads in [1, 2] {
            let (_vs, model, _) = tiny(heads);
            let a = ids_tensor(&[0, 0, 3, 4, 5, 6], &[1, 6], Device::Cpu);
            let b = ids_tensor(&[0, 0, 3, 4, 5, 9], &[1, 6], Device::Cpu);
            let (ha, hb) = (model.hidden(&a, false), model.hidden(&b, false));
            // The first five positions cannot see the last input.
            assert!(
                ha.narrow(1, 0, 5)
                    .allclose(&hb.narrow(1, 0, 5), 1e-6, 1e-6, false)
            );
            assert!(
                !ha.select(1, 5)
                    .allclose(&hb.select(1, 5), 1e-4, 1e-4, false)
            );
            // Nothing of the padding row reaches a real position.
            let _ = tch::no_grad(|| model.item_embeddings.ws.get(0).fill_(5.0));
            let hc = model.hidden(&a, false);
            assert!(
                ha.narrow(1, 2, 4)
                    .allclose(&hc.narrow(1, 2, 4), 1e-6, 1e-6, false)
            );
        }
    }

    #[test]
    fn the_padding_row_gets_no_gradient() {
        let (vs, model, _) = tiny(1);
        let inputs = ids_tensor(&[0, 0, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5], &[2, 6], Device::Cpu);
        let loss = model.hidden(&inputs, true).sum(Kind::Float);
        loss.backward();
        let grad = model.item_embeddings.ws.grad();
        assert_eq!(grad.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
        assert!(grad.get(3).abs().sum(Kind::Float).double_value(&[]) > 0.0);
        drop(vs);
    }
}
