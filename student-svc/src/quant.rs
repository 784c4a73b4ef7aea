//! An int8 copy of the scoring table for a first, approximate pass that is then made exact.
//!
//! Each row r is quantized symmetrically with its own scale (`r ~ s_r * c_r`, codes in
//! -127..=127), and so is each query (`q ~ s_q * c_q`). The approximate score
//! `a = s_r s_q (c_r . c_q) + b_r` differs from the exact `r . q + b_r` by at most
//!
//! ```text
//! |(r - s_r c_r) . q| + |s_r c_r . (q - s_q c_q)|  <=  |e_r| |q| + |s_r c_r| |e_q|
//! ```
//!
//! (Cauchy-Schwarz, `e_r`/`e_q` the quantization errors), plus a margin for the f32 rounding
//! of both the exact kernel and the approximate score. Every item whose upper bound `a + bound`
//! reaches the k-th best lower bound `a - bound` is a candidate, and the candidates are scored
//! exactly with the f32 rows: the top k of the candidates is the top k of the exact scan, ties
//! included (the k-th exact score is at least the k-th best lower bound, so every item scoring
//! at least that much is a candidate).
//!
//! Per item the first pass reads `padded_dim_i8(dim)` code bytes and 16 bytes of per-row
//! constants (plus the 4-byte bias), against `4 * padded_dim(dim)` bytes for the f32 scan.

use crate::kernel::padded_dim_i8;

/// Relative margin for f32 rounding in a dot product of `len` terms (the exact kernel's
/// own error is at most about `len * eps/2` of `sum |r_j q_j|`), with a factor 8 to spare.
fn rounding_margin(len: usize) -> f64 {
    8.0 * (len as f64 + 8.0) * f32::EPSILON as f64
}

/// Rounds a non-negative f64 up to an f32 that is not smaller.
fn up(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x { f.next_up() } else { f }
}

/// Per-row constants of the int8 table.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowMeta {
    /// Dequantization scale `s_r` (row ~ scale * codes).
    pub scale: f32,
    /// Coefficient of `|q|` in the error bound: `|e_r|` plus the rounding margin.
    pub err: f32,
    /// Coefficient of `|e_q|` in the error bound: `|s_r c_r|` plus the rounding margin.
    pub mag: f32,
    /// Constant part of the error bound (the rounding margin on the bias).
    pub base: f32,
}

/// The int8 table: `rows x stride` codes and the [`RowMeta`] constants per row, stored as
/// one array per field so the bounds of a block vectorise.
#[derive(Debug, Clone, Default)]
pub struct QuantTable {
    /// Row-major codes, zero-padded to `stride` bytes.
    pub codes: Vec<i8>,
    /// [`RowMeta::scale`] per row.
    pub scale: Vec<f32>,
    /// [`RowMeta::err`] per row.
    pub err: Vec<f32>,
    /// [`RowMeta::mag`] per row.
    pub mag: Vec<f32>,
    /// [`RowMeta::base`] per row.
    pub base: Vec<f32>,
    /// Bytes per row (`padded_dim_i8(dim)`).
    pub stride: usize,
}

/// Symmetric int8 codes of `values` into `codes` (same length or longer, rest left zero);
/// returns the scale. All-zero input gets scale 0.
fn quantize_into(values: &[f32], codes: &mut [i8]) -> f32 {
    let max = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        codes.iter_mut().for_each(|c| *c = 0);
        return 0.0;
    }
    let scale = max / 127.0;
    let inv = 127.0 / max;
    for (c, v) in codes.iter_mut().zip(values) {
        *c = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Euclidean norm of `values` and of their quantization error `values - scale * codes`, in
/// f64.
fn norms(values: &[f32], codes: &[i8], scale: f32) -> (f64, f64, f64) {
    let (mut v2, mut e2, mut q2) = (0f64, 0f64, 0f64);
    for (&v, &c) in values.iter().zip(codes) {
        let deq = scale as f64 * c as f64;
        v2 += (v as f64) * (v as f64);
        e2 += (v as f64 - deq) * (v as f64 - deq);
        q2 += deq * deq;
    }
    (v2.sqrt(), e2.sqrt(), q2.sqrt())
}

impl QuantTable {
    /// Quantizes a `rows x fstride` f32 table whose first `dim` columns hold values (the rest
    /// zero), with the per-row `bias`.
    pub fn build(table: &[f32], fstride: usize, dim: usize, bias: &[f32]) -> QuantTable {
        let stride = padded_dim_i8(dim);
        let rows = bias.len();
        let mut codes = vec![0i8; rows * stride];
        let mut meta: Vec<RowMeta> = Vec::with_capacity(rows);
        let margin = rounding_margin(fstride.max(stride));
        for (r, row) in table.chunks_exact(fstride).enumerate().take(rows) {
            let values = &row[..dim];
            let c = &mut codes[r * stride..r * stride + dim];
            let scale = quantize_into(values, c);
            let (norm, err, mag) = norms(values, c, scale);
            let slack = margin * (norm + mag);
            meta.push(RowMeta {
                scale,
                err: up((err + slack) * (1.0 + 1e-6)),
                mag: up((mag + slack) * (1.0 + 1e-6)),
                base: up(2.0 * margin * bias[r].abs() as f64 + f32::MIN_POSITIVE as f64),
            });
        }
        QuantTable {
            codes,
            scale: meta.iter().map(|m| m.scale).collect(),
            err: meta.iter().map(|m| m.err).collect(),
            mag: meta.iter().map(|m| m.mag).collect(),
            base: meta.iter().map(|m| m.base).collect(),
            stride,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.scale.len()
    }

    /// The constants of row `r`.
    pub fn meta(&self, r: usize) -> RowMeta {
        RowMeta {
            scale: self.scale[r],
            err: self.err[r],
            mag: self.mag[r],
            base: self.base[r],
        }
    }

    /// Bytes one approximate pass reads (codes and per-row constants; the bias is shared
    /// with the f32 table).
    pub fn bytes(&self) -> usize {
        self.codes.len() + self.rows() * std::mem::size_of::<RowMeta>()
    }
}

/// A query in int8 form with the norms the error bound needs.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantQuery {
    /// Dequantization scale `s_q`.
    pub scale: f32,
    /// `|q|`, rounded up.
    pub norm: f32,
    /// `|q - s_q c_q|`, rounded up.
    pub err: f32,
}

impl QuantQuery {
    /// Quantizes the first `dim` values of `query` into `codes` (`padded_dim_i8(dim)` bytes).
    /// `None` when the query is not finite (the caller then scans in f32).
    pub fn new(query: &[f32], dim: usize, codes: &mut [i8]) -> Option<QuantQuery> {
        let values = &query[..dim];
        if values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        codes.iter_mut().for_each(|c| *c = 0);
        let scale = quantize_into(values, &mut codes[..dim]);
        let (norm, err, _) = norms(values, codes, scale);
        Some(QuantQuery {
            scale,
            norm: up(norm * (1.0 + 1e-6)),
            err: up(err * (1.0 + 1e-6)),
        })
    }

    /// Approximate score and its error bound for a row with integer dot `dot`.
    #[inline]
    pub fn approx(&self, dot: i32, meta: &RowMeta, bias: f32) -> (f32, f32) {
        let a = dot as f32 * (meta.scale * self.scale) + bias;
        let bound = meta.err * self.norm + meta.mag * self.err + meta.base;
        // Rounding of `a` itself is far inside the margin already in `err` and `mag`.
        (a, bound * (1.0 + 1e-5))
    }

    /// [`QuantQuery::approx`] for rows `start..start + dots.len()` of `table` at once (a loop
    /// the compiler vectorises), into `lower` and `upper` (score minus and plus its bound).
    pub fn bounds_block(
        &self,
        table: &QuantTable,
        start: usize,
        dots: &[i32],
        bias: &[f32],
        lower: &mut [f32],
        upper: &mut [f32],
    ) {
        let n = dots.len();
        let end = start + n;
        let (scale, err, mag, base) = (
            &table.scale[start..end],
            &table.err[start..end],
            &table.mag[start..end],
            &table.base[start..end],
        );
        let (bias, lower, upper) = (&bias[..n], &mut lower[..n], &mut upper[..n]);
        for i in 0..n {
            let a = dots[i] as f32 * (scale[i] * self.scale) + bias[i];
            let bound = (err[i] * self.norm + mag[i] * self.err + base[i]) * (1.0 + 1e-5);
            lower[i] = a - bound;
            upper[i] = a + bound;
        }
    }
}

/// The k-th largest value of `values` (reordered so that the k largest come first), or
/// negative infinity when there are fewer than k.
pub(crate) fn kth_largest(values: &mut [f32], k: usize) -> f32 {
    if k == 0 || values.len() < k {
        return f32::NEG_INFINITY;
    }
    let (_, kth, _) = values.select_nth_unstable_by(k - 1, |x, y| y.total_cmp(x));
    *kth
}

/// The running state of the int8 pass for one query: every item seen so far whose upper bound
/// reaches `threshold`, the k-th best lower bound seen so far. The threshold only rises, and an
/// item whose upper bound is below it can be neither among the k best nor tied with them, so
/// it is dropped at once; most items are, after the first few blocks.
#[derive(Debug, Clone)]
pub struct Candidates {
    k: usize,
    /// (item, lower, upper) of the items kept.
    buf: Vec<(u32, f32, f32)>,
    lows: Vec<f32>,
    /// Buffer length at which the threshold is recomputed.
    compact_at: usize,
    /// The k-th best lower bound so far (negative infinity before k items).
    pub threshold: f32,
}

impl Candidates {
    /// An empty state for the top `k`.
    pub fn new(k: usize) -> Candidates {
        Candidates {
            k,
            buf: Vec::with_capacity(2 * k + 16),
            lows: Vec::new(),
            compact_at: 2 * k + 16,
            threshold: f32::NEG_INFINITY,
        }
    }

    /// Offers an item with its bounds.
    #[inline]
    pub fn push(&mut self, item: u32, lower: f32, upper: f32) {
        if upper < self.threshold {
            return;
        }
        self.buf.push((item, lower, upper));
        if self.buf.len() >= self.compact_at {
            self.compact();
        }
    }

    /// Raises the threshold to the k-th best lower bound kept and drops the items below it.
    fn compact(&mut self) {
        self.lows.clear();
        self.lows.extend(self.buf.iter().map(|c| c.1));
        self.threshold = self.threshold.max(kth_largest(&mut self.lows, self.k));
        let t = self.threshold;
        self.buf.retain(|c| c.2 >= t);
        // Wide bounds can keep many items: grow the buffer instead of compacting per push.
        self.compact_at = (2 * self.k + 16).max(2 * self.buf.len());
    }

    /// The union of two states over disjoint items.
    pub fn merge(mut self, other: Candidates) -> Candidates {
        self.threshold = self.threshold.max(other.threshold);
        let t = self.threshold;
        self.buf.extend(other.buf.into_iter().filter(|c| c.2 >= t));
        self.compact();
        self
    }

    /// The items to score exactly, with their upper bounds, in item order: the exact top k is
    /// among them.
    pub fn finish(mut self) -> Vec<(u32, f32)> {
        self.compact();
        let mut out: Vec<(u32, f32)> = self.buf.into_iter().map(|c| (c.0, c.2)).collect();
        out.sort_unstable_by_key(|c| c.0);
        out
    }

    /// Offers rows `start..start + dots.len()` of `table` for `query`, whose integer dots are
    /// `dots`, skipping the sorted dense items `exclude`. The bounds are those of
    /// [`QuantQuery::bounds_block`], computed eight rows at a time (a loop the compiler
    /// vectorises); a group of eight whose upper bounds all fall below the threshold costs a
    /// compare and no branch per row.
    pub fn scan(
        &mut self,
        query: &QuantQuery,
        table: &QuantTable,
        start: usize,
        dots: &[i32],
        bias: &[f32],
        exclude: &[u32],
    ) {
        const W: usize = 8;
        let n = dots.len();
        let end = start + n;
        let (scale, err, mag, base) = (
            &table.scale[start..end],
            &table.err[start..end],
            &table.mag[start..end],
            &table.base[start..end],
        );
        let bias = &bias[..n];
        let bounds = |r: usize| {
            let a = dots[r] as f32 * (scale[r] * query.scale) + bias[r];
            let bound = (err[r] * query.norm + mag[r] * query.err + base[r]) * (1.0 + 1e-5);
            (a - bound, a + bound)
        };
        let full = n / W * W;
        let mut i = 0;
        while i < full {
            // Fixed-width loops over whole groups: vectorised, no branch per row.
            let (mut lo, mut up) = ([0f32; W], [0f32; W]);
            for j in 0..W {
                (lo[j], up[j]) = bounds(i + j);
            }
            let t = self.threshold;
            if up.iter().fold(false, |any, &u| any | (u >= t)) {
                for j in 0..W {
                    self.offer((start + i + j) as u32, lo[j], up[j], exclude);
                }
            }
            i += W;
        }
        for r in full..n {
            let (lo, up) = bounds(r);
            self.offer((start + r) as u32, lo, up, exclude);
        }
    }

    /// [`Candidates::push`] unless the item is excluded.
    #[inline]
    fn offer(&mut self, item: u32, lower: f32, upper: f32, exclude: &[u32]) {
        if upper >= self.threshold && (exclude.is_empty() || exclude.binary_search(&item).is_err())
        {
            self.push(item, lower, upper);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Kernel, padded_dim};
    use proptest::prelude::*;

    proptest! {
        /// The bound holds against the f32 kernel's score for any row and query.
        #[test]
        fn the_bound_covers_the_exact_f32_score(
            dim in 1usize..120,
            rows in 1usize..12,
            values in proptest::collection::vec(-3.0f32..3.0, 2000),
            qscale in 0.001f32..100.0,
            bias_scale in 0.0f32..50.0,
        ) {
            let fstride = padded_dim(dim);
            let mut table = vec![0f32; rows * fstride];
            let mut it = values.iter().cycle();
            for r in 0..rows { for j in 0..dim { table[r * fstride + j] = *it.next().unwrap() * (r as f32 + 0.5); } }
            let bias: Vec<f32> = (0..rows).map(|r| (r as f32 - 3.0) * bias_scale).collect();
            let mut q = vec![0f32; fstride];
            for v in q.iter_mut().take(dim) { *v = *it.next().unwrap() * qscale; }
            let qt = QuantTable::build(&table, fstride, dim, &bias);
            let mut qc = vec![0i8; qt.stride];
            let qq = QuantQuery::new(&q, dim, &mut qc).unwrap();
            for kernel in Kernel::supported() {
                let mut exact = vec![0f32; rows];
                kernel.score_block(&table, &bias, fstride, &q, &mut exact);
                let mut dots = vec![0i32; rows];
                kernel.dot_i8_block(&qt.codes, qt.stride, &qc, &mut dots);
                for r in 0..rows {
                    let (a, b) = qq.approx(dots[r], &qt.meta(r), bias[r]);
                    let (mut lo, mut hi) = ([0f32], [0f32]);
                    qq.bounds_block(&qt, r, &dots[r..r + 1], &bias[r..r + 1], &mut lo, &mut hi);
                    prop_assert!(lo[0] <= exact[r] && exact[r] <= hi[0]);
                    prop_assert!(a - b <= exact[r] && exact[r] <= a + b,
                        "row {r}: exact {} approx {a} bound {b}", exact[r]);
                    // And the bound is useful: well under the scale of the score.
                    let scale = qq.norm * (qt.mag[r] + qt.err[r]) + bias[r].abs();
                    prop_assert!(b <= 0.05 * scale + 1e-6, "bound {b} vs scale {scale}");
                }
            }
        }
    }

    proptest! {
        /// Whatever the order and however the items are split between states, the candidates
        /// are exactly the items whose upper bound reaches the k-th best lower bound of all.
        #[test]
        fn candidates_are_exactly_the_items_reaching_the_kth_lower_bound(
            pairs in proptest::collection::vec((-10.0f32..10.0, 0.0f32..3.0), 1..400),
            k in 1usize..30,
            split in 0usize..400,
        ) {
            let mut lows: Vec<f32> = pairs.iter().map(|p| p.0).collect();
            let t = kth_largest(&mut lows, k);
            let want: Vec<u32> = (0..pairs.len() as u32)
                .filter(|&i| pairs[i as usize].0 + pairs[i as usize].1 >= t)
                .collect();
            let split = split.min(pairs.len());
            let (mut a, mut b) = (Candidates::new(k), Candidates::new(k));
            for (i, &(lo, w)) in pairs.iter().enumerate() {
                let c = if i < split { &mut a } else { &mut b };
                c.push(i as u32, lo, lo + w);
            }
            let got: Vec<u32> = a.merge(b).finish().into_iter().map(|c| c.0).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn zero_rows_and_queries() {
        let table = vec![0f32; 16];
        let qt = QuantTable::build(&table, 8, 5, &[1.0, -2.0]);
        assert_eq!(qt.stride, 16);
        assert_eq!(qt.scale[0], 0.0);
        let mut qc = vec![0i8; 16];
        let qq = QuantQuery::new(&[0.0; 8], 5, &mut qc).unwrap();
        let (a, b) = qq.approx(0, &qt.meta(1), -2.0);
        assert_eq!(a, -2.0);
        assert!((0.0..1e-3).contains(&b));
        assert!(QuantQuery::new(&[f32::NAN; 8], 5, &mut qc).is_none());
    }
}
