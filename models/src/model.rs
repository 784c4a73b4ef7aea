//! The native ranking model: Caser, MF or SASRec behind one type. Each scores a query (a user plus the
//! last L items) against items; serving scores all items and takes the top k on the model's
//! device.

use tch::{Tensor, nn};

pub use rankdistill_core::artifact::{Activation, ModelConfig, ModelKind};

use crate::caser::Caser;
use crate::mf::Mf;
use crate::sasrec::SasRec;

/// A native model: Caser, MF or SASRec. Items passed in and returned are dense indices (0-based real
/// items); internally row `i + 1` holds item `i` and row 0 is padding, which is never scored.
#[derive(Debug)]
pub enum Model {
    /// Caser (boxed: far larger than MF).
    Caser(Box<Caser>),
    /// MF.
    Mf(Mf),
    /// SASRec (boxed, like Caser).
    SasRec(Box<SasRec>),
}

impl Model {
    /// Builds a model's variables under `path`.
    pub fn new(path: &nn::Path, config: &ModelConfig) -> Model {
        match config.kind {
            ModelKind::Caser => Model::Caser(Box::new(Caser::new(path, config))),
            ModelKind::Mf => Model::Mf(Mf::new(path, config)),
            ModelKind::SasRec => Model::SasRec(Box::new(SasRec::new(path, config))),
        }
    }

    /// The query vector and the output item table (weights with a trailing bias column
    /// appended to the query side), so score = [x; 1] . [W; b].
    pub(crate) fn query_and_table(
        &self,
        users: &Tensor,
        inputs: &Tensor,
        train: bool,
    ) -> (Tensor, &Tensor, &Tensor) {
        match self {
            Model::Caser(m) => {
                let (table, bias) = m.output_table();
                (m.query(users, inputs, train), table, bias)
            }
            Model::Mf(m) => {
                let (table, bias) = m.output_table();
                (m.query(users), table, bias)
            }
            Model::SasRec(m) => {
                let (table, bias) = m.output_table();
                (m.query(inputs, train), table, bias)
            }
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
        score_rows(&x, table, bias, items)
    }

    /// The query vectors of users [B] and inputs [B, L] -> [B, e] (one forward pass of the
    /// query side: with `train`, its dropout draw), to score with `score_query_items`.
    pub fn query_vectors(&self, users: &Tensor, inputs: &Tensor, train: bool) -> Tensor {
        self.query_and_table(users, inputs, train).0
    }

    /// SASRec only (`None` for the others): the output vectors at chosen positions of whole
    /// input windows, inputs [B, L] and positions [P] (flat indices `b * L + j`) -> [P, e].
    pub fn position_vectors(
        &self,
        inputs: &Tensor,
        positions: &Tensor,
        train: bool,
    ) -> Option<Tensor> {
        let Model::SasRec(m) = self else {
            return None;
        };
        let hidden = m.hidden(inputs, train);
        let d = hidden.size()[2];
        Some(hidden.view([-1, d]).index_select(0, positions))
    }

    /// Scores rows of items with one query vector each (from `query_vectors` or
    /// `position_vectors`): x [B, e], items [B, M] (dense) -> [B, M]. `score_items` is
    /// `query_vectors` followed by this.
    pub fn score_query_items(&self, x: &Tensor, items: &Tensor) -> Tensor {
        let (table, bias) = self.output_table();
        score_rows(x, table, bias, items)
    }

    /// `score_query_items` outside the autograd graph (x is detached), for scores that only
    /// steer the loss (RD's rank-estimate samples). With at most `FULL_TABLE_RATIO` table rows
    /// per item scored in a row, one product with the whole table and a gather is cheaper
    /// than gathering B x M rows of the table; the scores are the same sums.
    pub fn score_query_items_detached(&self, x: &Tensor, items: &Tensor) -> Tensor {
        let (table, bias) = self.output_table();
        tch::no_grad(|| {
            let x = x.detach();
            if table.size()[0] <= FULL_TABLE_RATIO * items.size()[1] {
                let all = x.matmul(&table.tr()) + bias.view([1, -1]);
                all.gather(1, &(items + 1), false)
            } else {
                score_rows(&x, table, bias, items)
            }
        })
    }

    /// The output item table and its bias (row i + 1 holds item i).
    fn output_table(&self) -> (&Tensor, &Tensor) {
        match self {
            Model::Caser(m) => m.output_table(),
            Model::Mf(m) => m.output_table(),
            Model::SasRec(m) => m.output_table(),
        }
    }

    /// SASRec only (`None` for the others): scores items at chosen positions of whole input
    /// windows, as SASRec trains: inputs [B, L], positions [P] (flat indices `b * L + j`),
    /// items [P, M] -> [P, M], position j's output scoring its row of items.
    pub fn score_positions(
        &self,
        inputs: &Tensor,
        positions: &Tensor,
        items: &Tensor,
        train: bool,
    ) -> Option<Tensor> {
        let x = self.position_vectors(inputs, positions, train)?;
        Some(self.score_query_items(&x, items))
    }
    /// Scores every real item: users [B], inputs [B, L] -> [B, num_items].
    pub fn score_all(&self, users: &Tensor, inputs: &Tensor, train: bool) -> Tensor {
        let (x, table, bias) = self.query_and_table(users, inputs, train);
        let w = table.narrow(0, 1, table.size()[0] - 1);
        let b = bias.narrow(0, 1, bias.size()[0] - 1).view([1, -1]);
        // In place: the same sums as `x.matmul(..) + b`, without a second [B, items] matrix.
        let mut scores = x.matmul(&w.tr());
        scores += b;
        scores
    }
}

/// Table rows per scored item up to which `Model::score_query_items_detached` multiplies by
/// the whole table (measured on ML-100K: 1,614 rows, 100 items a row).
const FULL_TABLE_RATIO: i64 = 32;

/// Scores rows of items with one query vector each: x [B, e], items [B, M] (dense) against
/// the output table and bias (row i + 1 holds item i) -> [B, M].
fn score_rows(x: &Tensor, table: &Tensor, bias: &Tensor, items: &Tensor) -> Tensor {
    let rows = items + 1;
    let w = table
        .index_select(0, &rows.view([-1]))
        .view([rows.size()[0], rows.size()[1], -1]);
    let b = bias
        .index_select(0, &rows.view([-1]))
        .view(rows.size().as_slice());
    w.matmul(&x.unsqueeze(2)).squeeze_dim(2) + b
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
    use crate::tensor::ids_tensor;
    use tch::Device;

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
        for kind in [ModelKind::Caser, ModelKind::Mf, ModelKind::SasRec] {
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
    fn detached_scores_are_the_scores_on_both_paths() {
        let (_vs, model, _) = tiny(ModelKind::Caser);
        let users = ids_tensor(&[0, 3], &[2], Device::Cpu);
        let inputs = ids_tensor(&[0, 1, 2, 4, 5, 6], &[2, 3], Device::Cpu);
        let x = model.query_vectors(&users, &inputs, false);
        // 11 table rows for one item a row: the whole-table product; the row gather is
        // `score_rows` itself.
        let items = ids_tensor(&[9, 0], &[2, 1], Device::Cpu);
        let want = model.score_query_items(&x, &items);
        let got = model.score_query_items_detached(&x, &items);
        assert!(!got.requires_grad());
        assert!(got.allclose(&want, 1e-5, 1e-6, false));
        let (table, bias) = model.output_table();
        let gathered = tch::no_grad(|| score_rows(&x, table, bias, &items));
        assert!(gathered.allclose(&want, 1e-5, 1e-6, false));
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
