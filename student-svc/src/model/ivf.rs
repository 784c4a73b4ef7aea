//! The approximate index (`--index ann`): an inverted file over the scoring table with exact
//! f32 scores for every item it looks at.
//!
//! A served score is `row . q + bias`, a maximum inner product. Every item becomes the
//! augmented point `a = [row, bias, sqrt(M^2 - |row|^2 - bias^2)]` (`M` the largest norm of
//! `[row, bias]`), so all points lie on the sphere of radius `M`, and the query becomes `[q, 1,
//! 0]` scaled to norm `M`. Then `|a - q'|^2 = 2 M^2 - 2 (M / |[q, 1]|) (row . q + bias)`: the
//! nearest points are exactly the best-scoring items (Bachrach et al., RecSys 2014). Seeded
//! k-means ([`super::kmeans`]) splits the points into lists; the table's rows are stored list
//! by list ([`super::table::Order`]); a query scores the centroids, then scans its `probes`
//! nearest lists with the serving kernel, so the scores it returns are the exact scores of
//! the exact scan. Recall is lost only on items in lists it does not probe.
//!
//! The build measures recall@10 against the exact scan on tuning queries, and with
//! `probes = 0` picks the fewest probes that reach the target recall on them.

use std::time::Instant;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::topk::{ranking_order, top_k};
use rayon::prelude::*;

use super::f32_scan::top_k_f32;
use super::kmeans::{Centroids, kmeans};
use super::table::{Order, ScoringTable};
use crate::kernel::padded_dim;

/// Lloyd iterations of the build.
const KMEANS_ITERATIONS: usize = 10;
/// Training points per list for k-means (faiss warns below 39).
const POINTS_PER_LIST: usize = 40;
/// Items per kernel call when the build assigns every item to its list.
const ASSIGN_BATCH: usize = 256;
/// Rows one query scans on its own thread; more are split over the pool.
const PARALLEL_ROWS: usize = 32_768;
/// The cut-off recall is measured at.
pub const RECALL_AT: usize = 10;

/// How the approximate index is built and searched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexSettings {
    /// Lists (k-means centroids); 0 = about 2 sqrt(items).
    pub lists: usize,
    /// Lists scanned per query; 0 = the fewest that reach `target_recall` on the tuning
    /// queries.
    pub probes: usize,
    /// Recall@10 the automatic probe count aims for, in (0, 1].
    pub target_recall: f64,
    /// Tuning queries (recall is measured on them against the exact scan).
    pub tuning_queries: usize,
    /// Seed of the k-means sample and starting centroids.
    pub seed: u64,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            lists: 0,
            probes: 0,
            target_recall: 0.97,
            tuning_queries: 1000,
            seed: 0,
        }
    }
}

/// What a built index reports (`Info`, logs).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexReport {
    /// Lists.
    pub lists: usize,
    /// Lists scanned per query.
    pub probes: usize,
    /// Recall@10 against the exact scan on the tuning queries, at `probes`.
    pub recall_at_10: f64,
    /// Tuning queries recall was measured on.
    pub tuning_queries: usize,
    /// Mean share of the items a query scans (`probes` lists of their mean size).
    pub scanned_fraction: f64,
    /// Seconds the build took (k-means, assignment, tuning).
    pub build_seconds: f64,
    /// Recall@10 on the tuning queries with 1, 2, ... probes (at most 64 entries).
    pub recall_by_probes: Vec<f64>,
}

/// The lists: augmented centroids and where each list's rows start in the ordered table.
#[derive(Debug)]
pub(super) struct IvfIndex {
    centroids: Centroids,
    /// `lists + 1` row offsets into the ordered table.
    offsets: Vec<usize>,
    /// `M`: the norm every augmented point has.
    radius: f32,
    /// Length of a query vector before padding.
    query_dim: usize,
    /// Lists scanned per query.
    probes: usize,
    /// Build figures.
    pub(super) report: IndexReport,
}

/// The default number of lists for `n` items: about `2 sqrt(n)`, at least 1.
pub fn default_lists(n: usize) -> usize {
    ((2.0 * (n as f64).sqrt()).round() as usize).clamp(1, n.max(1))
}

/// Writes the augmented point of row `r` of `t` into `out` (`cstride` floats).
fn augment(t: &ScoringTable, r: usize, radius_sq: f64, out: &mut [f32]) {
    let qd = t.query_dim;
    let row = &t.table[r * t.stride..r * t.stride + qd];
    let b = t.bias[r];
    out.fill(0.0);
    out[..qd].copy_from_slice(row);
    out[qd] = b;
    let norm_sq = row_norm_sq(row, b);
    out[qd + 1] = (radius_sq - norm_sq).max(0.0).sqrt() as f32;
}

fn row_norm_sq(row: &[f32], bias: f32) -> f64 {
    row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() + bias as f64 * bias as f64
}

/// Writes the augmented, rescaled query `[q, 1, 0] * M / |[q, 1]|` into `out`.
fn augment_query(q: &[f32], query_dim: usize, radius: f32, out: &mut [f32]) {
    out.fill(0.0);
    out[..query_dim].copy_from_slice(&q[..query_dim]);
    out[query_dim] = 1.0;
    let norm = row_norm_sq(&q[..query_dim], 1.0).sqrt();
    if norm > 0.0 && norm.is_finite() && radius > 0.0 {
        let scale = (radius as f64 / norm) as f32;
        out.iter_mut().for_each(|v| *v *= scale);
    }
}

impl IvfIndex {
    /// Builds the index over `t` (in item order) and returns it with the list order of the
    /// rows (the caller reorders the table). `tuning` holds query vectors (`m x stride`).
    pub(super) fn build(
        t: &ScoringTable,
        settings: &IndexSettings,
        tuning: &[f32],
    ) -> (IvfIndex, Order) {
        let started = Instant::now();
        let n = t.num_items();
        let qd = t.query_dim;
        let cstride = padded_dim(qd + 2);
        let radius_sq = (0..n)
            .map(|r| row_norm_sq(&t.table[r * t.stride..r * t.stride + qd], t.bias[r]))
            .fold(0f64, f64::max);
        let lists = if settings.lists == 0 {
            default_lists(n)
        } else {
            settings.lists.min(n.max(1))
        };
        // k-means on a seeded sample of the augmented points.
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let sample_size = (POINTS_PER_LIST * lists).min(n);
        let mut points = vec![0f32; sample_size * cstride];
        for (p, r) in sample(&mut rng, n, sample_size).into_iter().enumerate() {
            augment(t, r, radius_sq, &mut points[p * cstride..(p + 1) * cstride]);
        }
        let centroids = kmeans(
            t.kernel,
            &points,
            cstride,
            lists,
            KMEANS_ITERATIONS,
            &mut rng,
        );
        drop(points);
        // Every item to its nearest centroid, in batches built on the fly.
        let list_of: Vec<u32> = (0..n.div_ceil(ASSIGN_BATCH))
            .into_par_iter()
            .flat_map_iter(|b| {
                let start = b * ASSIGN_BATCH;
                let end = (start + ASSIGN_BATCH).min(n);
                let mut batch = vec![0f32; (end - start) * cstride];
                for (r, out) in (start..end).zip(batch.chunks_exact_mut(cstride)) {
                    augment(t, r, radius_sq, out);
                }
                centroids.assign(t.kernel, &batch).into_iter()
            })
            .collect();
        // Rows list by list, items ascending within a list.
        let mut offsets = vec![0usize; lists + 1];
        for &l in &list_of {
            offsets[l as usize + 1] += 1;
        }
        for l in 0..lists {
            offsets[l + 1] += offsets[l];
        }
        let mut next = offsets.clone();
        let mut ids = vec![0u32; n];
        for (item, &l) in list_of.iter().enumerate() {
            ids[next[l as usize]] = item as u32;
            next[l as usize] += 1;
        }
        let mut index = IvfIndex {
            centroids,
            offsets,
            radius: radius_sq.sqrt() as f32,
            query_dim: qd,
            probes: settings.probes.min(lists),
            report: IndexReport {
                lists,
                probes: 0,
                recall_at_10: f64::NAN,
                tuning_queries: 0,
                scanned_fraction: 0.0,
                build_seconds: 0.0,
                recall_by_probes: Vec::new(),
            },
        };
        let curve = index.recall_curve(t, tuning, &list_of);
        if index.probes == 0 {
            index.probes = curve
                .iter()
                .position(|&r| r >= settings.target_recall)
                .map_or(lists, |p| p + 1);
        }
        index.report = IndexReport {
            lists,
            probes: index.probes,
            recall_at_10: curve.get(index.probes - 1).copied().unwrap_or(f64::NAN),
            tuning_queries: tuning.len() / t.stride,
            scanned_fraction: index.probes as f64 / lists as f64,
            build_seconds: started.elapsed().as_secs_f64(),
            recall_by_probes: curve.iter().take(64).copied().collect(),
        };
        (index, Order::new(ids))
    }

    /// Recall@10 at every probe count `p = 1..=lists` (element `p - 1`), over the tuning
    /// queries: the share of each query's exact top 10 that lies in its `p` nearest lists.
    /// Empty when there are no tuning queries.
    fn recall_curve(&self, t: &ScoringTable, tuning: &[f32], list_of: &[u32]) -> Vec<f64> {
        let lists = self.centroids.len();
        let m = tuning.len() / t.stride;
        if m == 0 {
            return Vec::new();
        }
        let exact = top_k_f32(t, tuning, RECALL_AT, &[]);
        // For each (query, true item): the rank of the item's list in the query's probe order.
        let ranks: Vec<Vec<usize>> = tuning
            .par_chunks_exact(t.stride)
            .zip(&exact)
            .map(|(q, truth)| {
                let order = self.probe_order(t, q, lists);
                let mut rank_of = vec![0usize; lists];
                for (rank, &l) in order.iter().enumerate() {
                    rank_of[l as usize] = rank;
                }
                truth
                    .iter()
                    .map(|&(item, _)| rank_of[list_of[item as usize] as usize])
                    .collect()
            })
            .collect();
        let total: usize = ranks.iter().map(Vec::len).sum();
        let mut found_at = vec![0usize; lists];
        for r in ranks.iter().flatten() {
            found_at[*r] += 1;
        }
        let mut found = 0usize;
        found_at
            .iter()
            .map(|&f| {
                found += f;
                if total == 0 {
                    1.0
                } else {
                    found as f64 / total as f64
                }
            })
            .collect()
    }

    /// The `count` lists nearest the query vector `q`, nearest first.
    fn probe_order(&self, t: &ScoringTable, q: &[f32], count: usize) -> Vec<u32> {
        let cstride = self.centroids.stride;
        let mut qa = vec![0f32; cstride];
        augment_query(q, self.query_dim, self.radius, &mut qa);
        let lists = self.centroids.len();
        let mut scores = vec![0f32; lists];
        t.kernel.score_block(
            &self.centroids.rows,
            &self.centroids.bias,
            cstride,
            &qa,
            &mut scores,
        );
        let mut order: Vec<u32> = (0..lists as u32).collect();
        let by_score =
            |a: &u32, b: &u32| ranking_order((*a, scores[*a as usize]), (*b, scores[*b as usize]));
        let count = count.min(lists);
        if count < lists && count > 0 {
            order.select_nth_unstable_by(count - 1, by_score);
            order.truncate(count);
        }
        order.sort_unstable_by(by_score);
        order
    }

    /// The top k (item, exact score) of each query vector in `q` (`nq x stride`) among the
    /// items of its `probes` nearest lists (more, nearest first, when those hold fewer than k
    /// items besides the excluded ones), skipping each query's sorted `excludes`. `t` must be
    /// in this index's list order.
    pub(super) fn top_k(
        &self,
        t: &ScoringTable,
        q: &[f32],
        k: usize,
        excludes: &[Vec<u32>],
    ) -> Vec<Vec<(u32, f32)>> {
        let stride = t.stride;
        q.par_chunks_exact(stride)
            .enumerate()
            .map(|(qi, query)| {
                let excl = excludes.get(qi).map(Vec::as_slice).unwrap_or(&[]);
                let mut lists = self.probe_order(t, query, self.probes);
                // Short lists: probe further, in order, until k answers can be found.
                let need = k.saturating_add(excl.len());
                if self.rows_in(&lists) < need && lists.len() < self.centroids.len() {
                    let order = self.probe_order(t, query, self.centroids.len());
                    let mut rows = 0;
                    let enough = order
                        .iter()
                        .position(|&l| {
                            rows += self.rows_in(&[l]);
                            rows >= need
                        })
                        .map_or(order.len(), |p| p + 1);
                    lists = order[..enough.max(lists.len())].to_vec();
                }
                lists.sort_unstable();
                self.scan_lists(t, query, &lists, k, excl)
            })
            .collect()
    }

    /// Rows held by `lists`.
    fn rows_in(&self, lists: &[u32]) -> usize {
        lists
            .iter()
            .map(|&l| self.offsets[l as usize + 1] - self.offsets[l as usize])
            .sum()
    }

    /// The top k of one query over `lists`, in parallel over the lists.
    fn scan_lists(
        &self,
        t: &ScoringTable,
        query: &[f32],
        lists: &[u32],
        k: usize,
        excl: &[u32],
    ) -> Vec<(u32, f32)> {
        let merge = |mut a: Vec<(u32, f32)>, b: Vec<(u32, f32)>| {
            a.extend(b);
            a.sort_unstable_by(|x, y| ranking_order(*x, *y));
            a.truncate(k);
            a
        };
        let scan = |(mut scores, best): (Vec<f32>, Vec<(u32, f32)>), &l: &u32| {
            let found = self.scan_list(t, query, l as usize, k, excl, &mut scores);
            (scores, merge(best, found))
        };
        if self.rows_in(lists) < PARALLEL_ROWS {
            // A few thousand rows: one thread, no hand-over.
            return lists.iter().fold((Vec::new(), Vec::new()), scan).1;
        }
        lists
            .par_iter()
            .with_min_len(4)
            .fold(|| (Vec::new(), Vec::new()), scan)
            .map(|(_, best)| best)
            .reduce(Vec::new, merge)
    }

    /// The top k of one query in list `l` (its rows hold ascending items, so ties go to the
    /// smaller item as in the exact scan); `scores` is a reusable buffer.
    fn scan_list(
        &self,
        t: &ScoringTable,
        query: &[f32],
        l: usize,
        k: usize,
        excl: &[u32],
        scores: &mut Vec<f32>,
    ) -> Vec<(u32, f32)> {
        let stride = t.stride;
        let (start, end) = (self.offsets[l], self.offsets[l + 1]);
        scores.clear();
        scores.resize(end - start, 0.0);
        t.kernel.score_block(
            &t.table[start * stride..end * stride],
            &t.bias[start..end],
            stride,
            query,
            scores,
        );
        top_k(scores, k, |i| {
            excl.binary_search(&t.item_at(start + i as usize)).is_ok()
        })
        .into_iter()
        .map(|(i, s)| (t.item_at(start + i as usize), s))
        .collect()
    }
}
