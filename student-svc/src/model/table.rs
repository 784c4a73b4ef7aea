//! The item side of the model: the scoring table (`num_items x stride`, zero-padded columns,
//! without the padding row), the per-item bias, the kernel that scores them, and the int8
//! copy for [`super::Scan::Int8`].

use crate::kernel::{Kernel, padded_dim};
use crate::quant::QuantTable;

/// Scoring table, bias and their int8 copy: `score(i) = table[i] . query + bias[i]`.
#[derive(Debug)]
pub(super) struct ScoringTable {
    /// Scoring table without the padding row, `num_items x stride`, zero-padded columns.
    pub(super) table: Vec<f32>,
    /// Per-item bias, `num_items`.
    pub(super) bias: Vec<f32>,
    /// Length of a query vector before padding.
    pub(super) query_dim: usize,
    /// Row stride of the table and of query vectors (floats).
    pub(super) stride: usize,
    /// The kernel that scores.
    pub(super) kernel: Kernel,
    /// The int8 copy of `table` (empty when the f32 scan is selected).
    pub(super) quant: QuantTable,
    /// The row order when the approximate index stores the rows list by list; `None` when
    /// row `r` is item `r`.
    pub(super) order: Option<Order>,
}

/// A permutation of the table's rows: which item each row holds, and where each item is.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Order {
    /// Item of each row.
    items: Vec<u32>,
    /// Row of each item.
    rows: Vec<u32>,
}

impl Order {
    /// The order that puts item `items[r]` in row `r` (`items` a permutation of 0..n).
    pub(super) fn new(items: Vec<u32>) -> Order {
        let mut rows = vec![0u32; items.len()];
        for (r, &item) in items.iter().enumerate() {
            rows[item as usize] = r as u32;
        }
        Order { items, rows }
    }
}

/// Copies rows 1.. of a `[rows, cols]` table into a `[rows - 1, stride]` zero-padded table.
fn padded_rows(values: &[f32], cols: usize, stride: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let mut out = vec![0.0; rows.saturating_sub(1) * stride];
    for (r, row) in values.chunks_exact(cols).skip(1).enumerate() {
        out[r * stride..r * stride + cols].copy_from_slice(row);
    }
    out
}

impl ScoringTable {
    /// The table from `[items + 1, query_dim]` rows and `[items + 1]` biases (row 0, the
    /// padding id, dropped), with its int8 copy.
    pub(super) fn new(rows: &[f32], query_dim: usize, bias: &[f32], kernel: Kernel) -> Self {
        let stride = padded_dim(query_dim);
        let table = padded_rows(rows, query_dim, stride);
        let bias = bias[1..].to_vec();
        let quant = QuantTable::build(&table, stride, query_dim, &bias);
        ScoringTable {
            table,
            bias,
            query_dim,
            stride,
            kernel,
            quant,
            order: None,
        }
    }

    /// The item in row `row`.
    #[inline]
    pub(super) fn item_at(&self, row: usize) -> u32 {
        match &self.order {
            Some(o) => o.items[row],
            None => row as u32,
        }
    }

    /// The row holding item `item`.
    #[inline]
    pub(super) fn row_of(&self, item: usize) -> usize {
        match &self.order {
            Some(o) => o.rows[item] as usize,
            None => item,
        }
    }

    /// The first `query_dim` floats of item `item`'s row.
    pub(super) fn item_row(&self, item: usize) -> &[f32] {
        let r = self.row_of(item);
        &self.table[r * self.stride..r * self.stride + self.query_dim]
    }

    /// The per-item bias in item order.
    pub(super) fn bias_by_item(&self) -> Vec<f32> {
        (0..self.num_items())
            .map(|item| self.bias[self.row_of(item)])
            .collect()
    }

    /// Stores the rows (and biases) in `order` and drops the int8 copy (the scans it serves
    /// read the rows in item order).
    pub(super) fn reorder(&mut self, order: Order) {
        assert!(self.order.is_none(), "the table is already reordered");
        let stride = self.stride;
        let mut table = vec![0f32; self.table.len()];
        for (r, out) in table.chunks_exact_mut(stride).enumerate() {
            let item = order.items[r] as usize;
            out.copy_from_slice(&self.table[item * stride..(item + 1) * stride]);
        }
        self.bias = order.items.iter().map(|&i| self.bias[i as usize]).collect();
        self.table = table;
        self.quant = QuantTable::default();
        self.order = Some(order);
    }

    /// Number of rankable items.
    pub(super) fn num_items(&self) -> usize {
        self.bias.len()
    }

    /// Keeps the int8 copy only when `int8` is wanted (building it if it was dropped).
    pub(super) fn keep_int8(&mut self, int8: bool) {
        if !int8 || self.order.is_some() {
            self.quant = QuantTable::default();
        } else if self.quant.rows() != self.num_items() {
            self.quant = QuantTable::build(&self.table, self.stride, self.query_dim, &self.bias);
        }
    }

    /// Scores every item for each of the query vectors `q` (`nq x stride`): `[nq * items]`.
    pub(super) fn score_all(&self, q: &[f32]) -> Vec<f32> {
        let nq = q.len() / self.stride;
        let mut out = vec![0.0; nq * self.num_items()];
        self.kernel
            .score_block(&self.table, &self.bias, self.stride, q, &mut out);
        if self.order.is_some() {
            let n = self.num_items();
            for scores in out.chunks_exact_mut(n.max(1)) {
                let by_row = scores.to_vec();
                for (item, s) in scores.iter_mut().enumerate() {
                    *s = by_row[self.row_of(item)];
                }
            }
        }
        out
    }

    /// The exact score of item `item` for the query vector `query` (`stride` floats).
    pub(super) fn score_one(&self, item: usize, query: &[f32]) -> f32 {
        let stride = self.stride;
        let i = self.row_of(item);
        let mut out = [0f32];
        self.kernel.score_block(
            &self.table[i * stride..(i + 1) * stride],
            &self.bias[i..i + 1],
            stride,
            query,
            &mut out,
        );
        out[0]
    }
}
