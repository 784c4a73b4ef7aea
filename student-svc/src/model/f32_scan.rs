//! The exact f32 scan ([`super::Scan::F32`], and the int8 scan's fallback): every item scored
//! by the SIMD kernel over cache-sized blocks, in parallel on the current rayon pool, all
//! queries sharing each pass over a block, with a bounded top k per block merged at the end.

use rankdistill_core::topk::{ranking_order, top_k};
use rayon::prelude::*;

use super::scan::BLOCK_ITEMS;
use super::table::ScoringTable;

/// The top k (dense item, score) of each query vector in `q` (`nq x stride`), best first,
/// skipping each query's sorted `excludes`.
pub(super) fn top_k_f32(
    t: &ScoringTable,
    q: &[f32],
    k: usize,
    excludes: &[Vec<u32>],
) -> Vec<Vec<(u32, f32)>> {
    let n = t.num_items();
    let stride = t.stride;
    let nq = q.len() / stride;
    let blocks = n.div_ceil(BLOCK_ITEMS);
    let per_block = |b: usize| -> Vec<Vec<(u32, f32)>> {
        let start = b * BLOCK_ITEMS;
        let end = (start + BLOCK_ITEMS).min(n);
        let len = end - start;
        let mut scores = vec![0.0f32; nq * len];
        t.kernel.score_block(
            &t.table[start * stride..end * stride],
            &t.bias[start..end],
            stride,
            q,
            &mut scores,
        );
        (0..nq)
            .map(|qi| {
                let excl = excludes.get(qi).map(Vec::as_slice).unwrap_or(&[]);
                top_k(&scores[qi * len..(qi + 1) * len], k, |i| {
                    excl.binary_search(&t.item_at(start + i as usize)).is_ok()
                })
                .into_iter()
                .map(|(i, s)| (t.item_at(start + i as usize), s))
                .collect()
            })
            .collect()
    };
    let merge = |mut a: Vec<Vec<(u32, f32)>>, b: Vec<Vec<(u32, f32)>>| {
        for (x, y) in a.iter_mut().zip(b) {
            x.extend(y);
            x.sort_unstable_by(|p, q| ranking_order(*p, *q));
            x.truncate(k);
        }
        a
    };
    (0..blocks)
        .into_par_iter()
        .map(per_block)
        .reduce(|| vec![Vec::new(); nq], merge)
}
