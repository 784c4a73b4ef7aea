//! Bounded top-k selection in the ranking order every part of rankdistill uses: higher score
//! first, ties to the smaller item index, NaN last. Never sorts all items.

use std::cmp::Ordering;

/// Sort key of a score: NaN ranks below everything.
#[inline]
pub fn score_key(score: f32) -> f32 {
    if score.is_nan() {
        f32::NEG_INFINITY
    } else {
        score
    }
}

/// Ranking order of two (item, score) pairs: `Less` means `a` ranks before `b`.
#[inline]
pub fn ranking_order(a: (u32, f32), b: (u32, f32)) -> Ordering {
    score_key(b.1)
        .partial_cmp(&score_key(a.1))
        .unwrap_or(Ordering::Equal)
        .then(a.0.cmp(&b.0))
}

/// Returns the k best (item, score) pairs of `scores`, best first, skipping items for which
/// `excluded` is true. Runs in O(n + k log k) with a 2k buffer pruned by `select_nth_unstable`.
pub fn top_k<E>(scores: &[f32], k: usize, excluded: E) -> Vec<(u32, f32)>
where
    E: Fn(u32) -> bool,
{
    if k == 0 {
        return Vec::new();
    }
    // Allocation is bounded by the input, whatever k a caller asks for.
    let cap = k.saturating_mul(2).max(k + 1);
    let mut buf: Vec<(u32, f32)> = Vec::with_capacity(cap.min(scores.len()));
    let mut threshold: Option<(u32, f32)> = None;
    for (i, &s) in scores.iter().enumerate() {
        let item = i as u32;
        if let Some(t) = threshold
            && ranking_order((item, s), t) != Ordering::Less
        {
            continue;
        }
        if excluded(item) {
            continue;
        }
        buf.push((item, s));
        if buf.len() >= cap {
            buf.select_nth_unstable_by(k - 1, |a, b| ranking_order(*a, *b));
            buf.truncate(k);
            threshold = buf.iter().copied().max_by(|a, b| ranking_order(*a, *b));
        }
    }
    buf.sort_unstable_by(|a, b| ranking_order(*a, *b));
    buf.truncate(k);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn brute(scores: &[f32], k: usize, excluded: &[u32]) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .filter(|(i, _)| !excluded.contains(i))
            .collect();
        all.sort_by(|a, b| ranking_order(*a, *b));
        all.truncate(k);
        all
    }

    #[test]
    fn ties_go_to_the_smaller_index_and_nan_ranks_last() {
        let scores = [1.0, f32::NAN, 2.0, 2.0, 0.5];
        let got = top_k(&scores, 5, |_| false);
        let items: Vec<u32> = got.iter().map(|p| p.0).collect();
        assert_eq!(items, vec![2, 3, 0, 4, 1]);
        assert_eq!(top_k(&scores, 2, |i| i == 2)[0].0, 3);
        assert!(top_k(&scores, 0, |_| false).is_empty());
    }

    proptest! {
        #[test]
        fn equals_a_full_sort(
            scores in proptest::collection::vec(prop_oneof![(-5i8..5).prop_map(|x| x as f32), Just(f32::NAN)], 0..300),
            k in 1usize..40,
            excluded in proptest::collection::vec(0u32..300, 0..20),
        ) {
            let got = top_k(&scores, k, |i| excluded.contains(&i));
            let want = brute(&scores, k, &excluded);
            let g: Vec<u32> = got.iter().map(|p| p.0).collect();
            let w: Vec<u32> = want.iter().map(|p| p.0).collect();
            prop_assert_eq!(g, w);
        }
    }
}
