//! The int8 scan with exact rescoring ([`super::Scan::Int8`], see [`crate::quant`]): integer
//! dots over the int8 copy of the table bound every item's score; only the candidates that
//! cannot be ruled out are rescored in f32, so the answer is the f32 scan's exact top k.

use rankdistill_core::topk::top_k;
use rayon::prelude::*;

use super::scan::BLOCK_ITEMS;
use super::table::ScoringTable;
use crate::quant::{Candidates, QuantQuery};

/// The top k of each query vector in `q` (`nq x stride`), as [`super::f32_scan::top_k_f32`]
/// answers it; `None` when a query vector is not finite (the f32 scan then answers).
pub(super) fn top_k_int8(
    t: &ScoringTable,
    q: &[f32],
    k: usize,
    excludes: &[Vec<u32>],
) -> Option<Vec<Vec<(u32, f32)>>> {
    let n = t.num_items();
    let stride = t.stride;
    let nq = q.len() / stride;
    let qstride = t.quant.stride;
    let mut qcodes = vec![0i8; nq * qstride];
    let qq: Vec<QuantQuery> = q
        .chunks_exact(stride)
        .zip(qcodes.chunks_exact_mut(qstride))
        .map(|(qv, codes)| QuantQuery::new(qv, t.query_dim, codes))
        .collect::<Option<_>>()?;
    let blocks = n.div_ceil(BLOCK_ITEMS);
    // Each rayon task carries its queries' candidate states across the blocks it takes,
    // so the thresholds rise once and stay up; the tasks' states are merged at the end.
    let fresh = || -> Vec<Candidates> { (0..nq).map(|_| Candidates::new(k)).collect() };
    let scan_block = |mut state: Vec<Candidates>, b: usize| -> Vec<Candidates> {
        let start = b * BLOCK_ITEMS;
        let end = (start + BLOCK_ITEMS).min(n);
        let len = end - start;
        let mut dots = vec![0i32; nq * len];
        t.kernel.dot_i8_block(
            &t.quant.codes[start * qstride..end * qstride],
            qstride,
            &qcodes,
            &mut dots,
        );
        for (qi, cands) in state.iter_mut().enumerate() {
            let excl = excludes.get(qi).map(Vec::as_slice).unwrap_or(&[]);
            cands.scan(
                &qq[qi],
                &t.quant,
                start,
                &dots[qi * len..(qi + 1) * len],
                &t.bias[start..end],
                excl,
            );
        }
        state
    };
    let merge = |a: Vec<Candidates>, b: Vec<Candidates>| -> Vec<Candidates> {
        a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect()
    };
    let states = (0..blocks)
        .into_par_iter()
        .fold(fresh, scan_block)
        .reduce(fresh, merge);
    Some(
        states
            .into_iter()
            .enumerate()
            .map(|(qi, cands)| {
                let candidates = cands.finish();
                let query = &q[qi * stride..(qi + 1) * stride];
                let scores: Vec<f32> = candidates
                    .iter()
                    .map(|&(item, _)| t.score_one(item as usize, query))
                    .collect();
                top_k(&scores, k, |_| false)
                    .into_iter()
                    .map(|(c, s)| (candidates[c as usize].0, s))
                    .collect()
            })
            .collect(),
    )
}
