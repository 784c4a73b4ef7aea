//! Fidelity of a student's top-k list to the teacher's for the same query: how much of the
//! teacher's answer the student gives back, and in what order. student-svc computes it live
//! (shadow queries) and `trainer` offline (cached teacher rankings); both use these functions,
//! so the two figures agree by construction on the same lists.
//!
//! Three figures per query, each in [0, 1] except the correlation (in [-1, 1]):
//! - **overlap@k**: |S_k ∩ T_k| / k, the share of the teacher's top k that the student's top k
//!   contains (order ignored).
//! - **NDCG@k against the teacher**: the teacher's list is the ideal ranking, with graded gains
//!   `k - p` for the item at teacher position p (0-based), so the teacher's first item counts
//!   most; an item outside the teacher's top k gains 0. DCG uses `1 / log2(i + 2)` discounts
//!   over the student's positions i; the teacher's own list scores 1.
//! - **rank correlation**: Kendall's tau over the items both top-k lists contain (concordant
//!   minus discordant pairs over all pairs). `None` when fewer than two items are shared.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The two lists of raw item ids as small integers, equal ids mapping to equal integers (the
/// figures only compare items), for lists as the services return them.
pub fn interned(student: &[String], teacher: &[String]) -> (Vec<u32>, Vec<u32>) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut out = [Vec::new(), Vec::new()];
    for (list, side) in [student, teacher].into_iter().zip(out.iter_mut()) {
        for id in list {
            let next = ids.len() as u32;
            side.push(*ids.entry(id.as_str()).or_insert(next));
        }
    }
    let [s, t] = out;
    (s, t)
}

/// Share of the teacher's top `k` that the student's top `k` contains, in [0, 1].
/// Lists shorter than `k` count as given; `k = 0` gives 0.
pub fn overlap_at_k(student: &[u32], teacher: &[u32], k: usize) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let teacher = &teacher[..teacher.len().min(k)];
    let student = &student[..student.len().min(k)];
    let shared = student.iter().filter(|item| teacher.contains(item)).count();
    shared as f64 / k as f64
}

/// NDCG@k of the student's list with the teacher's top `k` as the ideal ranking (graded gains
/// `k - teacher position`). 0 when the teacher's list is empty.
pub fn ndcg_against_teacher(student: &[u32], teacher: &[u32], k: usize) -> f64 {
    let teacher = &teacher[..teacher.len().min(k)];
    let gain = |item: &u32| {
        teacher
            .iter()
            .position(|t| t == item)
            .map_or(0.0, |p| (k - p) as f64)
    };
    let discount = |i: usize| 1.0 / ((i + 2) as f64).log2();
    let ideal: f64 = teacher
        .iter()
        .enumerate()
        .map(|(i, t)| gain(t) * discount(i))
        .sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = student
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, s)| gain(s) * discount(i))
        .sum();
    dcg / ideal
}

/// Kendall's tau between the two lists' orders of the items both top-`k` lists contain;
/// `None` when fewer than two are shared.
pub fn rank_correlation(student: &[u32], teacher: &[u32], k: usize) -> Option<f64> {
    let teacher = &teacher[..teacher.len().min(k)];
    // Teacher positions of the shared items, in the student's order.
    let positions: Vec<usize> = student
        .iter()
        .take(k)
        .filter_map(|s| teacher.iter().position(|t| t == s))
        .collect();
    let n = positions.len();
    if n < 2 {
        return None;
    }
    let mut score = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            score += if positions[i] < positions[j] { 1 } else { -1 };
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    Some(score as f64 / pairs)
}

/// The three figures of one query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryFidelity {
    /// overlap@k.
    pub overlap: f64,
    /// NDCG@k against the teacher's list.
    pub ndcg: f64,
    /// Kendall's tau over the shared items, when at least two are shared.
    pub rank_correlation: Option<f64>,
}

impl QueryFidelity {
    /// The figures of the student's list against the teacher's at cut-off `k`.
    pub fn measure(student: &[u32], teacher: &[u32], k: usize) -> Self {
        Self {
            overlap: overlap_at_k(student, teacher, k),
            ndcg: ndcg_against_teacher(student, teacher, k),
            rank_correlation: rank_correlation(student, teacher, k),
        }
    }
}

/// Running means of the per-query figures (sums kept in f64, added in call order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FidelitySummary {
    /// Queries measured.
    pub queries: u64,
    /// Mean overlap@k.
    pub overlap: f64,
    /// Mean NDCG@k against the teacher.
    pub ndcg: f64,
    /// Mean rank correlation over the queries where it is defined.
    pub rank_correlation: f64,
    /// Queries where the rank correlation is defined.
    pub correlated_queries: u64,
}

impl FidelitySummary {
    /// Adds one query's figures to the means.
    pub fn add(&mut self, query: QueryFidelity) {
        self.queries += 1;
        let n = self.queries as f64;
        self.overlap += (query.overlap - self.overlap) / n;
        self.ndcg += (query.ndcg - self.ndcg) / n;
        if let Some(tau) = query.rank_correlation {
            self.correlated_queries += 1;
            let m = self.correlated_queries as f64;
            self.rank_correlation += (tau - self.rank_correlation) / m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_compared_by_id() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (a, b) = interned(&s(&["7", "3", "9"]), &s(&["3", "12", "7"]));
        assert_eq!(a, vec![0, 1, 2]);
        assert_eq!(b, vec![1, 3, 0]);
        let f = QueryFidelity::measure(&a, &b, 3);
        assert!((f.overlap - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn identical_lists_are_fully_faithful() {
        let list = [4, 8, 15, 16, 23];
        let f = QueryFidelity::measure(&list, &list, 5);
        assert_eq!(f.overlap, 1.0);
        assert!((f.ndcg - 1.0).abs() < 1e-12);
        assert_eq!(f.rank_correlation, Some(1.0));
    }

    #[test]
    fn disjoint_lists_share_nothing() {
        let f = QueryFidelity::measure(&[1, 2, 3], &[4, 5, 6], 3);
        assert_eq!(f.overlap, 0.0);
        assert_eq!(f.ndcg, 0.0);
        assert_eq!(f.rank_correlation, None);
    }

    #[test]
    fn a_hand_computed_case() {
        // Teacher [1, 2, 3], student [2, 9, 1] at k = 3.
        // overlap: {1, 2} shared -> 2/3.
        // gains: item 1 -> 3, item 2 -> 2, item 3 -> 1.
        // ideal = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.2618595 + 0.5 = 4.7618595
        // dcg   = 2/log2(2) + 0 + 3/log2(4) = 2 + 1.5 = 3.5 -> 0.7350...
        // tau over shared items in student order: teacher positions [1, 0] -> one discordant pair.
        let f = QueryFidelity::measure(&[2, 9, 1], &[1, 2, 3], 3);
        assert!((f.overlap - 2.0 / 3.0).abs() < 1e-12);
        let ideal = 3.0 + 2.0 / 3f64.log2() + 0.5;
        assert!((f.ndcg - 3.5 / ideal).abs() < 1e-12, "{}", f.ndcg);
        assert_eq!(f.rank_correlation, Some(-1.0));
    }

    #[test]
    fn only_the_top_k_of_each_list_counts() {
        // Item 7 is in both lists but below the cut-off in the student's.
        assert_eq!(overlap_at_k(&[1, 2, 7], &[7, 8], 2), 0.0);
        assert_eq!(overlap_at_k(&[1, 2], &[7], 0), 0.0);
    }

    #[test]
    fn the_summary_averages_queries() {
        let mut s = FidelitySummary::default();
        s.add(QueryFidelity::measure(&[1, 2], &[1, 2], 2));
        s.add(QueryFidelity::measure(&[3, 4], &[1, 2], 2));
        assert_eq!(s.queries, 2);
        assert!((s.overlap - 0.5).abs() < 1e-12);
        assert!((s.ndcg - 0.5).abs() < 1e-12);
        assert_eq!(s.correlated_queries, 1);
        assert_eq!(s.rank_correlation, 1.0);
    }
}
