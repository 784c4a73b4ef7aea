//! The top k of every item for a batch of queries, without the whole [B, items] score matrix:
//! the items are scored in blocks of [`ITEM_BLOCK`] (a [B, block] matrix stays in the cache),
//! each block's exclusions masked and its top k kept, and the blocks' candidates merged. Every
//! score is the one `Model::score_all` computes (the same matmul per element, the bias added
//! after it), so the rankings are those of scoring everything and taking the top k.

use tch::{Kind, Tensor};

use crate::model::Model;
use crate::tensor::{mask_excluded, top_k_rows};

/// Items scored at once: 256 queries x 4096 items of f32 are 4 MiB.
pub const ITEM_BLOCK: i64 = 4096;

impl Model {
    /// Ranks every real item for users [B] and inputs [B, L]: the top `k` (dense item, score)
    /// of each query, best first, without the items in `excludes[row]` (dense, in range).
    pub fn rank_all(
        &self,
        users: &Tensor,
        inputs: &Tensor,
        excludes: &[Vec<u32>],
        k: i64,
    ) -> Vec<Vec<(u32, f32)>> {
        let (x, table, bias) = self.query_and_table(users, inputs, false);
        let items = table.size()[0] - 1;
        let rows = x.size()[0];
        if items <= ITEM_BLOCK {
            let mut scores = self.block_scores(&x, table, bias, 0, items);
            mask_excluded(&mut scores, excludes);
            return top_k_rows(&scores, k);
        }
        let k = k.min(items);
        let mut values = Vec::new();
        let mut indices = Vec::new();
        let mut start = 0;
        while start < items {
            let len = ITEM_BLOCK.min(items - start);
            let mut scores = self.block_scores(&x, table, bias, start, len);
            let block_excludes: Vec<Vec<u32>> = excludes
                .iter()
                .map(|row| {
                    row.iter()
                        .filter(|&&i| (start..start + len).contains(&(i as i64)))
                        .map(|&i| i - start as u32)
                        .collect()
                })
                .collect();
            mask_excluded(&mut scores, &block_excludes);
            let (v, i) = scores.topk(k.min(len), 1, true, true);
            values.push(v);
            indices.push(i + start);
            start += len;
        }
        let values = Tensor::cat(&values, 1);
        let indices = Tensor::cat(&indices, 1);
        let (best, at) = values.topk(k, 1, true, true);
        let best_items = indices.gather(1, &at, false);
        debug_assert_eq!(best.size()[0], rows);
        rows_of(&best, &best_items)
    }

    /// Scores of items `start..start + len` for the query vectors x: x . W^T, then + b.
    fn block_scores(
        &self,
        x: &Tensor,
        table: &Tensor,
        bias: &Tensor,
        start: i64,
        len: i64,
    ) -> Tensor {
        let w = table.narrow(0, 1 + start, len);
        let b = bias.narrow(0, 1 + start, len).view([1, -1]);
        let mut scores = x.matmul(&w.tr());
        scores += b;
        scores
    }
}

/// (dense item, score) rows of [B, k] values and item indices, dropping -inf (excluded).
fn rows_of(values: &Tensor, items: &Tensor) -> Vec<Vec<(u32, f32)>> {
    let k = values.size()[1] as usize;
    let values = values
        .to_kind(Kind::Float)
        .to_device(tch::Device::Cpu)
        .contiguous();
    let items = items.to_device(tch::Device::Cpu).contiguous();
    let v: Vec<f32> = Vec::try_from(values.view([-1])).unwrap_or_default();
    let ix: Vec<i64> = Vec::try_from(items.view([-1])).unwrap_or_default();
    v.chunks(k.max(1))
        .zip(ix.chunks(k.max(1)))
        .map(|(v, ix)| {
            ix.iter()
                .zip(v)
                .filter(|(_, s)| **s != f32::NEG_INFINITY)
                .map(|(&i, &s)| (i as u32, s))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelConfig;
    use crate::tensor::ids_tensor;
    use tch::{Device, nn};

    #[test]
    fn blocked_ranking_equals_scoring_everything() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let items = 2 * ITEM_BLOCK + 123;
        let mut config = ModelConfig::caser(8, 4, items);
        config.sequence_length = 3;
        let model = Model::new(&vs.root(), &config);
        let _guard = tch::no_grad_guard();
        let users = ids_tensor(&[0, 3, 1], &[3], Device::Cpu);
        let inputs = ids_tensor(&[0, 1, 2, 4, 5, 6, 9, 9, 9], &[3, 3], Device::Cpu);
        let mut scores = model.score_all(&users, &inputs, false);
        let top = |s: &Tensor| top_k_rows(s, 20)[0][0].0;
        // Exclude each query's best item and one in the last block.
        let excludes: Vec<Vec<u32>> = (0..3)
            .map(|r| vec![top(&scores.get(r).view([1, -1])), (items - 1) as u32])
            .collect();
        mask_excluded(&mut scores, &excludes);
        let expected = top_k_rows(&scores, 20);
        assert_eq!(model.rank_all(&users, &inputs, &excludes, 20), expected);
        assert_eq!(expected[0].len(), 20);
    }
}
