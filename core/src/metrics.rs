//! Ranking metrics over all items: Prec@k, Recall@k, nDCG@k (standard and the reference
//! variant) and MAP over the full ranking, averaged over test users.
//!
//! Each user's targets are located in the full ranking by counting, for every other item,
//! which targets it outranks (a binary search over the few targets). That is O(|D| log |T|)
//! per user, gives exact full-ranking positions for MAP, and never sorts all items.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::topk::score_key;

/// The cut-offs method.md reports.
pub const DEFAULT_KS: [usize; 3] = [3, 5, 10];

/// Metrics at one cut-off k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AtK {
    /// The cut-off.
    pub k: usize,
    /// Precision@k: hits in the top k, over k.
    pub precision: f64,
    /// Recall@k: hits in the top k, over the number of targets.
    pub recall: f64,
    /// Standard nDCG@k: DCG over the top k, ideal DCG over min(|T|, k).
    pub ndcg: f64,
    /// Reference-code nDCG@k: the ranking is also truncated at min(|T|, k).
    pub ndcg_ref: f64,
}

/// Averaged metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Users with at least one target, over which metrics are averaged.
    pub users: usize,
    /// Metrics per cut-off, in the order asked.
    pub at: Vec<AtK>,
    /// Mean average precision over the full ranking.
    pub map: f64,
}

impl Metrics {
    /// The metrics at cut-off `k`, if it was computed.
    pub fn at_k(&self, k: usize) -> Option<&AtK> {
        self.at.iter().find(|a| a.k == k)
    }

    /// A plain-text table: one row per metric, one column per k.
    pub fn table(&self) -> String {
        let rows: [MetricRow<AtK>; 4] = [
            ("Prec", |a| a.precision),
            ("Recall", |a| a.recall),
            ("nDCG", |a| a.ndcg),
            ("nDCG(ref)", |a| a.ndcg_ref),
        ];
        let mut out = metric_rows(&self.at, |a| a.k, &rows);
        out.push_str(&format!("{:<12}{:>10.4}\n", "MAP", self.map));
        out.push_str(&format!("{:<12}{:>10}\n", "users", self.users));
        out
    }
}

/// One row of a metrics table: its name and how to read its value at a cut-off.
pub type MetricRow<'a, T> = (&'a str, fn(&T) -> f64);

/// The rows of a plain-text metrics table: a header of the cut-offs (`k` of each entry of
/// `at`), then one row per named metric with its value at each cut-off.
pub fn metric_rows<T>(at: &[T], k: fn(&T) -> usize, rows: &[MetricRow<'_, T>]) -> String {
    let mut out = format!("{:<12}", "metric");
    for a in at {
        out.push_str(&format!("{:>10}", format!("@{}", k(a))));
    }
    out.push('\n');
    for (name, pick) in rows {
        out.push_str(&format!("{name:<12}"));
        for a in at {
            out.push_str(&format!("{:>10.4}", pick(a)));
        }
        out.push('\n');
    }
    out
}

/// Metrics of one user, before averaging.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMetrics {
    /// Per k: (precision, recall, ndcg, ndcg_ref).
    pub at: Vec<(f64, f64, f64, f64)>,
    /// Average precision over the full ranking.
    pub ap: f64,
}

/// 0-based positions of `targets` in the ranking of `scores` (higher first, ties to the smaller
/// index), where `excluded` items (sorted ascending) are removed from the ranking. Targets
/// that are excluded get `None`. The result is parallel to `targets`.
pub fn target_ranks(
    scores: &[f32],
    excluded_sorted: &[u32],
    targets: &[u32],
) -> Vec<Option<usize>> {
    let is_excluded = |item: u32| excluded_sorted.binary_search(&item).is_ok();
    // Live targets in ranking order.
    let mut live: Vec<(f32, u32)> = targets
        .iter()
        .copied()
        .filter(|&t| (t as usize) < scores.len() && !is_excluded(t))
        .map(|t| (score_key(scores[t as usize]), t))
        .collect();
    live.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    live.dedup_by_key(|p| p.1);
    let mut beaten_from = vec![0usize; live.len() + 1];
    if let Some(&(worst_key, _)) = live.last() {
        // Items that leave the ranking or are ordered among the targets below.
        let mut skip = vec![0u64; scores.len().div_ceil(64)];
        for &item in excluded_sorted.iter().chain(live.iter().map(|p| &p.1)) {
            if let Some(word) = skip.get_mut(item as usize / 64) {
                *word |= 1 << (item % 64);
            }
        }
        for (j, &s) in scores.iter().enumerate() {
            let key = score_key(s);
            // Fast path: strictly below the worst target, it outranks no target.
            if key < worst_key {
                continue;
            }
            // First target position that item j outranks; it outranks that whole suffix.
            let j = j as u32;
            let p = live.partition_point(|&(ts, t)| !(key > ts || (key == ts && j < t)));
            if p == live.len() || skip[j as usize / 64] & (1 << (j % 64)) != 0 {
                continue;
            }
            beaten_from[p] += 1;
        }
    }
    let mut rank_of = std::collections::HashMap::with_capacity(live.len());
    let mut outrankers = 0usize;
    for (q, &(_, t)) in live.iter().enumerate() {
        outrankers += beaten_from[q];
        rank_of.insert(t, q + outrankers);
    }
    targets.iter().map(|t| rank_of.get(t).copied()).collect()
}

/// Metrics of one user from the 0-based positions of its (distinct) targets.
pub fn user_metrics(ranks: &[Option<usize>], ks: &[usize]) -> UserMetrics {
    let n_targets = ranks.len();
    let mut live: Vec<usize> = ranks.iter().flatten().copied().collect();
    live.sort_unstable();
    let gain = |r: usize| 1.0 / ((r + 2) as f64).log2();
    let at = ks
        .iter()
        .map(|&k| {
            let hits = live.iter().filter(|&&r| r < k).count() as f64;
            let ideal_len = n_targets.min(k);
            let idcg: f64 = (0..ideal_len).map(gain).sum();
            let dcg: f64 = live.iter().filter(|&&r| r < k).map(|&r| gain(r)).sum();
            let dcg_ref: f64 = live
                .iter()
                .filter(|&&r| r < ideal_len)
                .map(|&r| gain(r))
                .sum();
            let (ndcg, ndcg_ref) = if idcg > 0.0 {
                (dcg / idcg, dcg_ref / idcg)
            } else {
                (0.0, 0.0)
            };
            (hits / k as f64, hits / n_targets as f64, ndcg, ndcg_ref)
        })
        .collect();
    let ap = live
        .iter()
        .enumerate()
        .map(|(i, &r)| (i + 1) as f64 / (r + 1) as f64)
        .sum::<f64>()
        / n_targets as f64;
    UserMetrics { at, ap }
}

/// Averages per-user metrics in the given order (deterministic summation).
pub fn average(users: &[UserMetrics], ks: &[usize]) -> Metrics {
    let n = users.len().max(1) as f64;
    let at = ks
        .iter()
        .enumerate()
        .map(|(ki, &k)| {
            let sum = |f: fn(&(f64, f64, f64, f64)) -> f64| {
                users.iter().map(|u| f(&u.at[ki])).sum::<f64>() / n
            };
            AtK {
                k,
                precision: sum(|x| x.0),
                recall: sum(|x| x.1),
                ndcg: sum(|x| x.2),
                ndcg_ref: sum(|x| x.3),
            }
        })
        .collect();
    Metrics {
        users: users.len(),
        at,
        map: users.iter().map(|u| u.ap).sum::<f64>() / n,
    }
}

/// What to evaluate: per user, the items to remove from its ranking and its targets.
pub struct EvalSet<'a> {
    /// Per user, items excluded from the ranking (e.g. training items), any order.
    pub exclude: &'a [Vec<u32>],
    /// Optional second exclusion list per user (e.g. validation items).
    pub exclude_extra: Option<&'a [Vec<u32>]>,
    /// Per user, target items (e.g. test items).
    pub targets: &'a [Vec<u32>],
    /// Number of items every ranking covers.
    pub num_items: usize,
}

/// Evaluates a model given as a batch scorer: `score(users, out)` fills `out` (row-major,
/// `users.len() x num_items`). Users without targets are skipped. Scoring runs on the calling
/// thread chunk by chunk; the per-user metrics run in parallel with rayon.
pub fn evaluate<F>(set: &EvalSet<'_>, ks: &[usize], mut score: F) -> Metrics
where
    F: FnMut(&[u32], &mut [f32]),
{
    let users: Vec<u32> = (0..set.targets.len() as u32)
        .filter(|&u| !set.targets[u as usize].is_empty())
        .collect();
    let chunk = (8_000_000 / set.num_items.max(1)).clamp(1, 4096);
    let mut buffer = vec![0f32; chunk.min(users.len().max(1)) * set.num_items];
    let mut per_user = Vec::with_capacity(users.len());
    for batch in users.chunks(chunk) {
        let scores = &mut buffer[..batch.len() * set.num_items];
        score(batch, scores);
        let results: Vec<UserMetrics> = batch
            .par_iter()
            .zip(scores.par_chunks(set.num_items))
            .map(|(&u, row)| {
                let mut excluded = set.exclude[u as usize].clone();
                if let Some(extra) = set.exclude_extra {
                    excluded.extend_from_slice(&extra[u as usize]);
                }
                excluded.sort_unstable();
                excluded.dedup();
                let mut targets = set.targets[u as usize].clone();
                targets.sort_unstable();
                targets.dedup();
                user_metrics(&target_ranks(row, &excluded, &targets), ks)
            })
            .collect();
        per_user.extend(results);
    }
    average(&per_user, ks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topk::ranking_order;
    use proptest::prelude::*;

    fn full_sort_ranks(scores: &[f32], excluded: &[u32], targets: &[u32]) -> Vec<Option<usize>> {
        let mut order: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .filter(|(i, _)| !excluded.contains(i))
            .collect();
        order.sort_by(|a, b| ranking_order(*a, *b));
        targets
            .iter()
            .map(|t| order.iter().position(|p| p.0 == *t))
            .collect()
    }

    #[test]
    fn hand_computed_case() {
        // Ranking: 4 3 2 1 0 (scores ascending with index). Targets {3, 0}; exclude {4}.
        let scores = [0.0, 1.0, 2.0, 3.0, 4.0];
        let ranks = target_ranks(&scores, &[4], &[0, 3]);
        assert_eq!(ranks, vec![Some(3), Some(0)]);
        let m = user_metrics(&ranks, &[3]);
        let (p, r, ndcg, ndcg_ref) = m.at[0];
        assert!((p - 1.0 / 3.0).abs() < 1e-12);
        assert!((r - 0.5).abs() < 1e-12);
        // DCG@3 = 1/log2(2) = 1; IDCG@3 over 2 targets = 1 + 1/log2(3).
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((ndcg - 1.0 / idcg).abs() < 1e-12);
        assert!((ndcg_ref - 1.0 / idcg).abs() < 1e-12);
        // AP = (1/1 + 2/4) / 2 = 0.75.
        assert!((m.ap - 0.75).abs() < 1e-12);
    }

    #[test]
    fn reference_ndcg_truncates_at_the_number_of_targets() {
        // One target at 0-based rank 2: standard nDCG@5 = (1/log2 4) / 1 = 0.5; reference
        // truncates the ranking at min(1, 5) = 1, so it is 0.
        let m = user_metrics(&[Some(2)], &[5]);
        assert!((m.at[0].2 - 0.5).abs() < 1e-12);
        assert_eq!(m.at[0].3, 0.0);
    }

    #[test]
    fn a_ranking_that_never_hits_scores_zero_and_excluded_targets_count() {
        let scores = [5.0, 4.0, 3.0, 0.0, -1.0];
        let ranks = target_ranks(&scores, &[], &[4]);
        let m = user_metrics(&ranks, &[3]);
        assert_eq!(m.at[0], (0.0, 0.0, 0.0, 0.0));
        let ranks = target_ranks(&scores, &[0], &[0]);
        assert_eq!(ranks, vec![None]);
        let m = user_metrics(&ranks, &[3]);
        assert_eq!(m.ap, 0.0);
    }

    #[test]
    fn evaluate_averages_over_users_with_targets() {
        let exclude = vec![vec![], vec![0], vec![]];
        let targets = vec![vec![2], vec![1], vec![]];
        let set = EvalSet {
            exclude: &exclude,
            exclude_extra: None,
            targets: &targets,
            num_items: 3,
        };
        // Everyone ranks 0 > 1 > 2.
        let m = evaluate(&set, &[1], |users, out| {
            for row in out.chunks_mut(3).take(users.len()) {
                row.copy_from_slice(&[3.0, 2.0, 1.0]);
            }
        });
        assert_eq!(m.users, 2);
        // User 0: target at rank 2 -> P@1 0. User 1: 0 excluded, target 1 at rank 0 -> 1.
        assert!((m.at[0].precision - 0.5).abs() < 1e-12);
        assert!((m.map - (1.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn ranks_match_a_full_sort(
            scores in proptest::collection::vec(prop_oneof![(-4i8..4).prop_map(|x| x as f32), Just(f32::NAN)], 1..120),
            excluded in proptest::collection::vec(0u32..120, 0..15),
            targets in proptest::collection::vec(0u32..120, 1..10),
        ) {
            let mut ex = excluded.clone();
            ex.sort_unstable(); ex.dedup();
            let mut tg: Vec<u32> = targets.into_iter().filter(|&t| (t as usize) < scores.len()).collect();
            tg.sort_unstable(); tg.dedup();
            prop_assert_eq!(target_ranks(&scores, &ex, &tg), full_sort_ranks(&scores, &ex, &tg));
        }

        #[test]
        fn metrics_are_bounded_and_perfect_rankings_score_one(
            n_items in 5usize..80, n_targets in 1usize..5, seed in 0u64..1000,
        ) {
            use rand::{SeedableRng, seq::SliceRandom};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut items: Vec<u32> = (0..n_items as u32).collect();
            items.shuffle(&mut rng);
            let targets: Vec<u32> = items[..n_targets.min(n_items)].to_vec();
            let mut scores = vec![0f32; n_items];
            for (pos, &i) in items.iter().enumerate() { scores[i as usize] = -(pos as f32); }
            let ks = [1, 3, 10];
            let mut sorted = targets.clone(); sorted.sort_unstable();
            let m = user_metrics(&target_ranks(&scores, &[], &sorted), &ks);
            prop_assert!((m.ap - 1.0).abs() < 1e-12);
            for (ki, &k) in ks.iter().enumerate() {
                let (p, r, n, nr) = m.at[ki];
                prop_assert!((n - 1.0).abs() < 1e-12 && (nr - 1.0).abs() < 1e-12);
                prop_assert!((p - (n_targets.min(k) as f64 / k as f64)).abs() < 1e-12);
                prop_assert!((r - (n_targets.min(k) as f64 / n_targets as f64)).abs() < 1e-12);
            }
            // Any shuffled ranking stays within [0, 1].
            items.shuffle(&mut rng);
            for (pos, &i) in items.iter().enumerate() { scores[i as usize] = pos as f32; }
            let m = user_metrics(&target_ranks(&scores, &[], &sorted), &ks);
            prop_assert!((0.0..=1.0).contains(&m.ap));
            for x in &m.at { prop_assert!([x.0, x.1, x.2, x.3].iter().all(|v| (0.0..=1.0 + 1e-12).contains(v))); }
        }

        #[test]
        fn target_order_does_not_matter(seed in 0u64..500) {
            use rand::{Rng, SeedableRng, seq::SliceRandom};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let scores: Vec<f32> = (0..50).map(|_| rng.random_range(0..10) as f32).collect();
            let mut targets: Vec<u32> = (0..50).filter(|_| rng.random_bool(0.2)).collect();
            if targets.is_empty() { targets.push(7); }
            let a = user_metrics(&target_ranks(&scores, &[1, 2], &targets), &[3, 5]);
            targets.shuffle(&mut rng);
            let b = user_metrics(&target_ranks(&scores, &[1, 2], &targets), &[3, 5]);
            prop_assert_eq!(a, b);
        }
    }
}
