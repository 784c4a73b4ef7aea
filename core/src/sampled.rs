//! Sampled ranking metrics: the evaluation of SASRec (kang205/SASRec `evaluate` and
//! `evaluate_valid`). Each evaluated user's one held-out target is ranked among N negatives
//! drawn uniformly from the catalogue, and HR@k and NDCG@k are averaged over the users.
//!
//! Sampled metrics over few negatives overstate quality and can order models differently from
//! the full ranking (Krichene and Rendle, KDD 2020, "On Sampled Metrics for Item
//! Recommendation"): they are reported beside the full-ranking metrics of [`crate::metrics`],
//! to compare with papers that use them, never instead of them.
//!
//! What is computed, and where it departs from the reference:
//! - Negatives: drawn uniformly from the catalogue with replacement (as the reference), each
//!   re-drawn while it is one of the user's training items *or the target*. The reference
//!   re-draws training items only, so it can draw the target itself as a negative; here it
//!   cannot. Other held-out items (the validation item when the test part is evaluated) can be
//!   drawn, as in the reference.
//! - Seeding: ChaCha8, seeded per user from the seed and the user index ([`negatives_rng`]),
//!   so the draws do not depend on how users are batched.
//! - Rank: the 0-based rank of the target is the number of negatives that score strictly
//!   higher, so ties count in the target's favour; a NaN score ranks lowest.
//!   HR@k = mean of [rank < k], NDCG@k = mean of 1 / log2(rank + 2) when rank < k.
//! - Users: every user with a target is evaluated (the reference samples 10,000 users when
//!   there are more).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::topk::score_key;

/// The ChaCha8 stream of the negatives, apart from the stream 0 that other per-user draws of
/// the same seed use (the random model's scores), so the two are independent.
const NEGATIVES_STREAM: u64 = 0x5A5E_D0E6;

/// The generator of user `user`'s negatives under `seed`: seeded from both alone, so a user's
/// draws do not depend on which users are scored with it.
pub fn negatives_rng(seed: u64, user: u32) -> ChaCha8Rng {
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    rng.set_stream(NEGATIVES_STREAM);
    rng
}

/// Draws `n` negatives from items `0..num_items`, uniformly and with replacement, each re-drawn
/// while it is in `seen_sorted` (ascending, without repeats: the user's training items) or
/// equal to `target`. `None` when `n > 0` and no item is left to draw.
pub fn draw_negatives<R: Rng>(
    rng: &mut R,
    num_items: usize,
    seen_sorted: &[u32],
    target: u32,
    n: usize,
) -> Option<Vec<u32>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let seen_in_range = seen_sorted.partition_point(|&i| (i as usize) < num_items);
    let target_blocks =
        (target as usize) < num_items && seen_sorted.binary_search(&target).is_err();
    if seen_in_range + usize::from(target_blocks) >= num_items {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let item = rng.random_range(0..num_items as u32);
        if item != target && seen_sorted.binary_search(&item).is_err() {
            out.push(item);
        }
    }
    Some(out)
}

/// The 0-based rank of a target among its candidates: the number of negatives that score
/// strictly higher (ties count in the target's favour; NaN ranks lowest).
pub fn sampled_rank(target_score: f32, negative_scores: &[f32]) -> usize {
    let target = score_key(target_score);
    negative_scores
        .iter()
        .filter(|&&s| score_key(s) > target)
        .count()
}

/// Sampled metrics at one cut-off k.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampledAtK {
    /// The cut-off.
    pub k: usize,
    /// HR@k: the fraction of users whose target ranks in the top k of its candidates.
    pub hr: f64,
    /// NDCG@k: the mean of 1 / log2(rank + 2) over users whose target ranks in the top k.
    pub ndcg: f64,
}

/// Averaged sampled metrics of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledMetrics {
    /// Negatives per user (the candidates are the target and these).
    pub negatives: usize,
    /// The seed of the draws.
    pub seed: u64,
    /// Users evaluated (those with a target).
    pub users: usize,
    /// Metrics per cut-off, in the order asked.
    pub at: Vec<SampledAtK>,
}

impl SampledMetrics {
    /// The metrics at cut-off `k`, if it was computed.
    pub fn at_k(&self, k: usize) -> Option<&SampledAtK> {
        self.at.iter().find(|a| a.k == k)
    }

    /// A plain-text table in the layout of [`crate::metrics::Metrics::table`].
    pub fn table(&self) -> String {
        let rows: [crate::metrics::MetricRow<SampledAtK>; 2] =
            [("HR", |a| a.hr), ("NDCG", |a| a.ndcg)];
        let mut out = crate::metrics::metric_rows(&self.at, |a| a.k, &rows);
        out.push_str(&format!("{:<12}{:>10}\n", "users", self.users));
        out
    }
}

/// Averages HR@k and NDCG@k over the users' 0-based target ranks, in the given order.
pub fn sampled_metrics(
    ranks: &[usize],
    ks: &[usize],
    negatives: usize,
    seed: u64,
) -> SampledMetrics {
    let n = ranks.len().max(1) as f64;
    let at = ks
        .iter()
        .map(|&k| {
            let hits = ranks.iter().filter(|&&r| r < k);
            SampledAtK {
                k,
                hr: hits.clone().count() as f64 / n,
                ndcg: hits.map(|&r| 1.0 / ((r + 2) as f64).log2()).sum::<f64>() / n,
            }
        })
        .collect();
    SampledMetrics {
        negatives,
        seed,
        users: ranks.len(),
        at,
    }
}

/// Why sampled metrics cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SampledError {
    /// Some evaluated user has more than one held-out item of the part.
    #[error(
        "sampled metrics need exactly one held-out item per evaluated user, but {several} of the {users} users with held-out items have more (user index {first_user} has {first_count})"
    )]
    SeveralTargets {
        /// Users with at least one held-out item.
        users: usize,
        /// Of those, users with more than one.
        several: usize,
        /// The first such user (dense index).
        first_user: u32,
        /// Its number of held-out items.
        first_count: usize,
    },
    /// Every item of the catalogue is a training item of the user or its target.
    #[error(
        "user index {user}: every item of the catalogue is one of its training items or its target, so no negative can be drawn"
    )]
    NoNegative {
        /// The user (dense index).
        user: u32,
    },
}

/// Checks that every user with targets has exactly one.
pub fn check_one_target(targets: &[Vec<u32>]) -> Result<(), SampledError> {
    let users = targets.iter().filter(|t| !t.is_empty()).count();
    let mut several = targets.iter().enumerate().filter(|(_, t)| t.len() > 1);
    match several.next() {
        None => Ok(()),
        Some((first_user, first)) => Err(SampledError::SeveralTargets {
            users,
            several: 1 + several.count(),
            first_user: first_user as u32,
            first_count: first.len(),
        }),
    }
}

/// What to evaluate with sampled negatives.
pub struct SampledSet<'a> {
    /// Per user, items never drawn as negatives (the training items), any order.
    pub seen: &'a [Vec<u32>],
    /// Per user, the held-out items: none (the user is skipped) or exactly one.
    pub targets: &'a [Vec<u32>],
    /// Number of items in the catalogue.
    pub num_items: usize,
}

/// Evaluates a model on sampled candidates: per user with a target, the target followed by
/// `negatives` draws of [`draw_negatives`] from [`negatives_rng`]`(seed, user)`.
/// `score(users, candidates, out)` fills `out` with the scores of `candidates`; both are
/// row-major, `users.len() x (1 + negatives)`, a row per user. Users are scored in chunks on
/// the calling thread; the draws run in parallel with rayon.
pub fn evaluate_sampled<F>(
    set: &SampledSet<'_>,
    ks: &[usize],
    negatives: usize,
    seed: u64,
    mut score: F,
) -> Result<SampledMetrics, SampledError>
where
    F: FnMut(&[u32], &[u32], &mut [f32]),
{
    check_one_target(set.targets)?;
    let users: Vec<u32> = (0..set.targets.len() as u32)
        .filter(|&u| !set.targets[u as usize].is_empty())
        .collect();
    let width = negatives + 1;
    let chunk = (4_000_000 / width).clamp(1, 1024);
    let mut ranks = Vec::with_capacity(users.len());
    let mut scores = Vec::new();
    for batch in users.chunks(chunk) {
        let rows = batch
            .par_iter()
            .map(|&u| {
                let mut seen = set.seen[u as usize].clone();
                seen.sort_unstable();
                seen.dedup();
                let target = set.targets[u as usize][0];
                let mut rng = negatives_rng(seed, u);
                let drawn = draw_negatives(&mut rng, set.num_items, &seen, target, negatives)
                    .ok_or(SampledError::NoNegative { user: u })?;
                let mut row = Vec::with_capacity(width);
                row.push(target);
                row.extend(drawn);
                Ok(row)
            })
            .collect::<Result<Vec<Vec<u32>>, SampledError>>()?;
        let candidates = rows.concat();
        scores.clear();
        scores.resize(candidates.len(), 0f32);
        score(batch, &candidates, &mut scores);
        ranks.extend(
            scores
                .chunks(width)
                .map(|row| sampled_rank(row[0], &row[1..])),
        );
    }
    Ok(sampled_metrics(&ranks, ks, negatives, seed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ranks_count_strictly_higher_negatives() {
        assert_eq!(sampled_rank(0.5, &[0.7, 0.5, 0.2, f32::NAN, 0.9]), 2);
        assert_eq!(sampled_rank(0.5, &[]), 0);
        // A NaN target ranks below every number, level with NaN negatives.
        assert_eq!(
            sampled_rank(f32::NAN, &[f32::NAN, -1e30, f32::NEG_INFINITY]),
            1
        );
    }

    #[test]
    fn hand_computed_metrics() {
        // Ranks 0, 3 and 12 over three users.
        let m = sampled_metrics(&[0, 3, 12], &[1, 5, 10], 100, 7);
        assert_eq!((m.users, m.negatives, m.seed), (3, 100, 7));
        let at = |k| *m.at_k(k).unwrap();
        assert!(close(at(1).hr, 1.0 / 3.0) && close(at(1).ndcg, 1.0 / 3.0));
        // Rank 3: gain 1 / log2(5).
        let gain3 = 1.0 / 5f64.log2();
        assert!(close(at(5).hr, 2.0 / 3.0) && close(at(5).ndcg, (1.0 + gain3) / 3.0));
        assert!(close(at(10).hr, 2.0 / 3.0) && close(at(10).ndcg, (1.0 + gain3) / 3.0));
        assert_eq!(m.at.iter().map(|a| a.k).collect::<Vec<_>>(), vec![1, 5, 10]);
        // No users: zeros, not NaN.
        let empty = sampled_metrics(&[], &[10], 100, 0);
        assert_eq!(
            (empty.at[0].hr, empty.at[0].ndcg, empty.users),
            (0.0, 0.0, 0)
        );
    }

    #[test]
    fn evaluate_scores_the_target_against_its_negatives() {
        // Score = item index. User 0's target is the best item, user 1's the worst; user 2
        // has no target and is skipped.
        let seen = vec![vec![3, 1], vec![5], vec![]];
        let targets = vec![vec![19], vec![0], vec![]];
        let set = SampledSet {
            seen: &seen,
            targets: &targets,
            num_items: 20,
        };
        let mut calls = Vec::new();
        let m = evaluate_sampled(&set, &[1, 10], 10, 3, |users, candidates, out| {
            calls.push((users.to_vec(), candidates.to_vec()));
            for (o, &c) in out.iter_mut().zip(candidates) {
                *o = c as f32;
            }
        })
        .unwrap();
        assert_eq!(m.users, 2);
        // User 0: rank 0, gain 1. User 1: every negative differs from item 0 and scores
        // higher, so rank 10: no hit at 10.
        assert!(close(m.at[0].hr, 0.5) && close(m.at[0].ndcg, 0.5));
        assert!(close(m.at[1].hr, 0.5) && close(m.at[1].ndcg, 0.5));
        assert_eq!(calls.len(), 1);
        let (users, candidates) = &calls[0];
        assert_eq!(users, &vec![0, 1]);
        assert_eq!(candidates.len(), 22);
        // Each row: the target, then the user's own draws.
        for (row, &u) in candidates.chunks(11).zip(users) {
            assert_eq!(row[0], targets[u as usize][0]);
            let mut seen = seen[u as usize].clone();
            seen.sort_unstable();
            let mut rng = negatives_rng(3, u);
            assert_eq!(
                draw_negatives(&mut rng, 20, &seen, row[0], 10).unwrap(),
                row[1..]
            );
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_negatives_and_another_seed_others() {
        let draw =
            |seed, user| draw_negatives(&mut negatives_rng(seed, user), 1000, &[1, 2], 0, 100);
        assert_eq!(draw(42, 5), draw(42, 5));
        assert_ne!(draw(42, 5), draw(43, 5));
        assert_ne!(draw(42, 5), draw(42, 6));
        // Independent of the random model's per-user stream of the same seed.
        let mut plain = ChaCha8Rng::seed_from_u64(42 ^ 5u64.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut ours = negatives_rng(42, 5);
        assert_ne!(plain.random::<u64>(), ours.random::<u64>());
    }

    #[test]
    fn results_do_not_depend_on_the_chunking_of_users() {
        // 2,500 users at 3,999 negatives: chunks of 1,000 users. Each user's rank is the same
        // when it is scored alone.
        let n_users = 2_500u32;
        let seen: Vec<Vec<u32>> = (0..n_users).map(|u| vec![u % 50, (u * 7) % 50]).collect();
        let targets: Vec<Vec<u32>> = (0..n_users).map(|u| vec![(u * 3 + 1) % 50]).collect();
        let ranks_of = |targets: &[Vec<u32>]| {
            let set = SampledSet {
                seen: &seen,
                targets,
                num_items: 50,
            };
            let mut ranks = Vec::new();
            let mut chunks = 0;
            let metrics = evaluate_sampled(&set, &[5, 10], 3_999, 9, |users, candidates, out| {
                chunks += 1;
                for (o, &c) in out.iter_mut().zip(candidates) {
                    *o = ((c * 37) % 50) as f32;
                }
                for (row, &u) in out.chunks(4_000).zip(users) {
                    ranks.push((u, sampled_rank(row[0], &row[1..])));
                }
            })
            .unwrap();
            (ranks, chunks, metrics)
        };
        let (whole, chunks, metrics) = ranks_of(&targets);
        assert_eq!((whole.len(), chunks, metrics.users), (2_500, 3, 2_500));
        let just_ranks: Vec<usize> = whole.iter().map(|p| p.1).collect();
        assert_eq!(metrics, sampled_metrics(&just_ranks, &[5, 10], 3_999, 9));
        for u in [0u32, 999, 1_000, 1_001, 2_499] {
            let mut alone = vec![Vec::new(); n_users as usize];
            alone[u as usize] = targets[u as usize].clone();
            let (ranks, chunks, _) = ranks_of(&alone);
            assert_eq!((ranks, chunks), (vec![whole[u as usize]], 1));
        }
    }

    #[test]
    fn several_targets_or_no_negatives_are_errors() {
        let seen = vec![vec![0], vec![], vec![1]];
        let targets = vec![vec![1], vec![0, 2], vec![0, 2, 3]];
        let set = SampledSet {
            seen: &seen,
            targets: &targets,
            num_items: 4,
        };
        let err = evaluate_sampled(&set, &[1], 2, 0, |_, _, _| {}).unwrap_err();
        assert_eq!(
            err,
            SampledError::SeveralTargets {
                users: 3,
                several: 2,
                first_user: 1,
                first_count: 2
            }
        );
        assert!(
            err.to_string().contains("exactly one held-out item"),
            "{err}"
        );
        // User 0 has seen every item but its target.
        let seen = vec![vec![0, 1, 2]];
        let targets = vec![vec![3]];
        let set = SampledSet {
            seen: &seen,
            targets: &targets,
            num_items: 4,
        };
        let err = evaluate_sampled(&set, &[1], 2, 0, |_, _, _| {}).unwrap_err();
        assert_eq!(err, SampledError::NoNegative { user: 0 });
        // No negatives asked: every target ranks first.
        let m = evaluate_sampled(&set, &[1], 0, 0, |_, _, _| {}).unwrap();
        assert_eq!(m.at[0].hr, 1.0);
    }

    proptest! {
        #[test]
        fn negatives_are_never_seen_nor_the_target(
            num_items in 2usize..60,
            seen in proptest::collection::vec(0u32..70, 0..40),
            target in 0u32..60,
            n in 0usize..200,
            seed in 0u64..1000,
            user in 0u32..100,
        ) {
            let target = target % num_items as u32;
            let mut seen = seen;
            seen.sort_unstable();
            seen.dedup();
            let free = (0..num_items as u32)
                .filter(|&i| i != target && seen.binary_search(&i).is_err())
                .count();
            let drawn = draw_negatives(&mut negatives_rng(seed, user), num_items, &seen, target, n);
            if free == 0 && n > 0 {
                prop_assert_eq!(drawn, None);
            } else {
                let drawn = drawn.unwrap();
                prop_assert_eq!(drawn.len(), n);
                for item in drawn {
                    prop_assert!((item as usize) < num_items);
                    prop_assert!(item != target);
                    prop_assert!(seen.binary_search(&item).is_err());
                }
            }
        }

        #[test]
        fn metrics_are_bounded_and_hr_grows_with_k(
            ranks in proptest::collection::vec(0usize..120, 0..50),
        ) {
            let m = sampled_metrics(&ranks, &[1, 5, 10, 50, 200], 100, 0);
            for pair in m.at.windows(2) {
                prop_assert!(pair[0].hr <= pair[1].hr && pair[0].ndcg <= pair[1].ndcg + 1e-12);
            }
            for a in &m.at {
                prop_assert!((0.0..=1.0).contains(&a.hr) && (0.0..=1.0 + 1e-12).contains(&a.ndcg));
                prop_assert!(a.ndcg <= a.hr + 1e-12);
            }
            if !ranks.is_empty() {
                prop_assert!((m.at[4].hr - 1.0).abs() < 1e-12);
            }
        }
    }
}
