//! The evaluation split of method.md: per user, stable sort by time, the last ceil(20%) to
//! test, the rest to train; test items never seen in train are dropped. Validation is cut from
//! the tail of train the same way. Raw ids become dense indices here.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::dataset::{RawInteraction, compare_raw_ids};

/// How to split interactions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitConfig {
    /// Fraction of each user's interactions (the tail) that goes to test.
    pub test_fraction: f64,
    /// Fraction of each user's remaining training interactions (the tail) that goes to
    /// validation; 0 disables validation.
    pub valid_fraction: f64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            test_fraction: 0.2,
            valid_fraction: 0.0,
        }
    }
}

/// The split, in dense indices. Users and items are numbered in raw-id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Dense user index to raw id.
    pub users: Vec<String>,
    /// Dense item index to raw id; exactly the items of the training rows.
    pub items: Vec<String>,
    /// Per user, training items in chronological order.
    pub train: Vec<Vec<u32>>,
    /// Per user, validation items in chronological order (empty without validation).
    pub valid: Vec<Vec<u32>>,
    /// Per user, test items in chronological order.
    pub test: Vec<Vec<u32>>,
    /// Counts for reports.
    pub stats: SplitStats,
}

impl Split {
    /// Per user, the training items sorted and without repeats: the items a user has already
    /// seen, as the services look them up (binary search) to exclude them.
    pub fn seen_sets(&self) -> Vec<Vec<u32>> {
        self.train
            .iter()
            .map(|items| {
                let mut items = items.clone();
                items.sort_unstable();
                items.dedup();
                items
            })
            .collect()
    }
}

/// Row counts of a split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitStats {
    /// Users with at least one interaction.
    pub users: usize,
    /// Distinct items in the training rows.
    pub train_items: usize,
    /// Training rows.
    pub train_rows: usize,
    /// Validation rows kept.
    pub valid_rows: usize,
    /// Test rows kept.
    pub test_rows: usize,
    /// Validation rows dropped because their item never occurs in train.
    pub valid_dropped: usize,
    /// Test rows dropped because their item never occurs in train.
    pub test_dropped: usize,
}

/// Number of tail rows that `fraction` of `n` rows takes: ceil(fraction * n), guarded against
/// floating-point error so that e.g. 0.2 * 25 gives exactly 5.
pub fn tail_len(n: usize, fraction: f64) -> usize {
    if fraction <= 0.0 {
        return 0;
    }
    let raw = fraction * n as f64;
    let rounded = raw.round();
    let len = if (raw - rounded).abs() < 1e-9 {
        rounded
    } else {
        raw.ceil()
    };
    (len as usize).min(n)
}

/// Splits raw interactions as method.md describes.
pub fn split(rows: &[RawInteraction], config: SplitConfig) -> Split {
    // Group by user, keeping file order within a user.
    let mut by_user: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        by_user.entry(row.user.as_str()).or_default().push(index);
    }
    let mut users: Vec<&str> = by_user.keys().copied().collect();
    users.sort_by(|a, b| compare_raw_ids(a, b));

    struct UserParts<'a> {
        train: Vec<&'a str>,
        valid: Vec<&'a str>,
        test: Vec<&'a str>,
    }
    let mut parts = Vec::with_capacity(users.len());
    for user in &users {
        let mut indices = by_user.remove(user).unwrap_or_default();
        // Stable: ties (and formats without timestamps) keep file order.
        indices.sort_by_key(|&i| rows[i].timestamp.unwrap_or(0));
        let items: Vec<&str> = indices.iter().map(|&i| rows[i].item.as_str()).collect();
        let n_test = tail_len(items.len(), config.test_fraction);
        let (rest, test) = items.split_at(items.len() - n_test);
        let n_valid = tail_len(rest.len(), config.valid_fraction);
        let (train, valid) = rest.split_at(rest.len() - n_valid);
        parts.push(UserParts {
            train: train.to_vec(),
            valid: valid.to_vec(),
            test: test.to_vec(),
        });
    }

    let mut item_set: HashSet<&str> = HashSet::new();
    for part in &parts {
        item_set.extend(part.train.iter().copied());
    }
    let mut items: Vec<&str> = item_set.into_iter().collect();
    items.sort_by(|a, b| compare_raw_ids(a, b));
    let item_index: HashMap<&str, u32> = items
        .iter()
        .enumerate()
        .map(|(i, &raw)| (raw, i as u32))
        .collect();

    let mut stats = SplitStats {
        users: users.len(),
        train_items: items.len(),
        ..SplitStats::default()
    };
    let mut train = Vec::with_capacity(parts.len());
    let mut valid = Vec::with_capacity(parts.len());
    let mut test = Vec::with_capacity(parts.len());
    for part in &parts {
        let t: Vec<u32> = part.train.iter().map(|i| item_index[i]).collect();
        stats.train_rows += t.len();
        train.push(t);
        let v: Vec<u32> = part
            .valid
            .iter()
            .filter_map(|i| item_index.get(i).copied())
            .collect();
        stats.valid_dropped += part.valid.len() - v.len();
        stats.valid_rows += v.len();
        valid.push(v);
        let s: Vec<u32> = part
            .test
            .iter()
            .filter_map(|i| item_index.get(i).copied())
            .collect();
        stats.test_dropped += part.test.len() - s.len();
        stats.test_rows += s.len();
        test.push(s);
    }
    Split {
        users: users.into_iter().map(str::to_string).collect(),
        items: items.into_iter().map(str::to_string).collect(),
        train,
        valid,
        test,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(user: &str, item: &str, ts: Option<i64>) -> RawInteraction {
        RawInteraction {
            user: user.into(),
            item: item.into(),
            timestamp: ts,
        }
    }

    #[test]
    fn seen_sets_are_sorted_and_without_repeats() {
        let split = Split {
            users: vec!["a".into(), "b".into()],
            items: (0..4).map(|i| i.to_string()).collect(),
            train: vec![vec![3, 1, 3, 0], vec![]],
            valid: vec![vec![], vec![]],
            test: vec![vec![2], vec![]],
            stats: SplitStats::default(),
        };
        assert_eq!(split.seen_sets(), vec![vec![0, 1, 3], vec![]]);
    }

    #[test]
    fn tail_len_is_an_exact_ceiling() {
        assert_eq!(tail_len(25, 0.2), 5);
        assert_eq!(tail_len(26, 0.2), 6);
        assert_eq!(tail_len(1, 0.2), 1);
        assert_eq!(tail_len(0, 0.2), 0);
        assert_eq!(tail_len(10, 0.0), 0);
        for n in 0..10_000 {
            assert_eq!(tail_len(n, 0.2), n.div_ceil(5), "n = {n}");
        }
    }

    #[test]
    fn sorts_stably_by_time_and_drops_unseen_test_items() {
        // User 1: times 3,1,1,2,5 -> order b(1) c(1) d(2) a(3) e(5); ceil(1.0)=1 test: e.
        let rows = vec![
            row("1", "a", Some(3)),
            row("1", "b", Some(1)),
            row("1", "c", Some(1)),
            row("1", "d", Some(2)),
            row("1", "e", Some(5)),
            row("2", "a", Some(1)),
            row("2", "b", Some(2)),
        ];
        let s = split(&rows, SplitConfig::default());
        assert_eq!(s.users, vec!["1", "2"]);
        assert_eq!(s.items, vec!["a", "b", "c", "d"]);
        // b c d a in dense ids (a=0, b=1, c=2, d=3).
        assert_eq!(s.train[0], vec![1, 2, 3, 0]);
        assert!(s.test[0].is_empty());
        assert_eq!(s.stats.test_dropped, 1);
        assert_eq!(s.train[1], vec![0]);
        assert_eq!(s.test[1], vec![1]);
        assert_eq!(s.stats.train_rows, 5);
        assert_eq!(s.stats.test_rows, 1);
    }

    #[test]
    fn formats_without_time_keep_file_order_and_validation_cuts_train_tail() {
        let rows: Vec<_> = (0..10).map(|i| row("u", &i.to_string(), None)).collect();
        let s = split(
            &rows,
            SplitConfig {
                test_fraction: 0.2,
                valid_fraction: 0.25,
            },
        );
        assert_eq!(s.test[0], Vec::<u32>::new()); // items 8, 9 are unseen in train
        assert_eq!(s.stats.test_dropped, 2);
        assert_eq!(s.train[0], vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(s.stats.valid_dropped, 2);
    }

    proptest! {
        #[test]
        fn every_row_lands_in_exactly_one_part(
            rows in proptest::collection::vec((0u8..6, 0u8..20, 0i64..50), 1..200)
        ) {
            let raw: Vec<_> = rows.iter().map(|(u, i, t)| row(&u.to_string(), &i.to_string(), Some(*t))).collect();
            let s = split(&raw, SplitConfig::default());
            let st = s.stats;
            prop_assert_eq!(st.train_rows + st.test_rows + st.test_dropped, raw.len());
            for u in 0..s.users.len() {
                let n = s.train[u].len() + s.test[u].len();
                prop_assert!(n <= raw.iter().filter(|r| r.user == s.users[u]).count());
                for &i in &s.test[u] { prop_assert!((i as usize) < s.items.len()); }
            }
        }
    }
}
