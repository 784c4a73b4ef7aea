//! The evaluation split of method.md: per user, stable sort by time, the last ceil(20%) to
//! test, the rest to train; test items never seen in train are dropped. Validation is cut from
//! the tail of train the same way. Raw ids become dense indices here.
//!
//! A pre-split import ([`from_presplit`]) takes the parts as given instead: users and items are
//! numbered from the training rows only, and held-out rows of a user or item never seen in
//! train are dropped and counted.

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
    /// Validation rows dropped because their item (or, in a pre-split import, their user)
    /// never occurs in train.
    pub valid_dropped: usize,
    /// Test rows dropped because their item (or, in a pre-split import, their user) never
    /// occurs in train.
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

/// One user's raw items per part, in time order.
struct UserParts<'a> {
    train: Vec<&'a str>,
    valid: Vec<&'a str>,
    test: Vec<&'a str>,
}

/// Groups `rows` by user, each user's rows stably sorted by time (ties, and formats without
/// timestamps, keep file order).
fn by_user(rows: &[RawInteraction]) -> HashMap<&str, Vec<&str>> {
    let mut indices: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, row) in rows.iter().enumerate() {
        indices.entry(row.user.as_str()).or_default().push(index);
    }
    indices
        .into_iter()
        .map(|(user, mut indices)| {
            indices.sort_by_key(|&i| rows[i].timestamp.unwrap_or(0));
            (
                user,
                indices.iter().map(|&i| rows[i].item.as_str()).collect(),
            )
        })
        .collect()
}

/// Users in raw-id order.
fn sorted_users<'a>(users: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut users: Vec<&str> = users.collect();
    users.sort_by(|a, b| compare_raw_ids(a, b));
    users
}

/// Numbers the items of the training parts in raw-id order and maps every part to dense ids;
/// held-out items never seen in train are dropped, and `dropped` (valid, test) is added to
/// the counts.
fn assemble(users: Vec<&str>, parts: Vec<UserParts<'_>>, dropped: (usize, usize)) -> Split {
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
        valid_dropped: dropped.0,
        test_dropped: dropped.1,
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

/// Splits raw interactions as method.md describes.
pub fn split(rows: &[RawInteraction], config: SplitConfig) -> Split {
    let mut grouped = by_user(rows);
    let users = sorted_users(grouped.keys().copied());
    let mut parts = Vec::with_capacity(users.len());
    for user in &users {
        let items = grouped.remove(user).unwrap_or_default();
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
    assemble(users, parts, (0, 0))
}

/// A pre-split import: the parts as the files give them. Users are those of `train` and items
/// those of the training rows, both in raw-id order as [`split`] numbers them; each part of a
/// user is stably sorted by time (file order without timestamps). Validation and test rows
/// whose user or item never occurs in `train` are dropped and counted in the stats. `valid`
/// may be empty (no validation).
pub fn from_presplit(
    train: &[RawInteraction],
    valid: &[RawInteraction],
    test: &[RawInteraction],
) -> Split {
    let mut train = by_user(train);
    let mut valid = by_user(valid);
    let mut test = by_user(test);
    let users = sorted_users(train.keys().copied());
    let mut parts = Vec::with_capacity(users.len());
    for user in &users {
        parts.push(UserParts {
            train: train.remove(user).unwrap_or_default(),
            valid: valid.remove(user).unwrap_or_default(),
            test: test.remove(user).unwrap_or_default(),
        });
    }
    // What is left belongs to users without training rows.
    let unseen = |rest: HashMap<&str, Vec<&str>>| rest.values().map(Vec::len).sum::<usize>();
    assemble(users, parts, (unseen(valid), unseen(test)))
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

    #[test]
    fn presplit_numbers_users_and_items_from_train_only_and_counts_dropped_rows() {
        let train = vec![
            row("2", "b", None),
            row("10", "a", None),
            row("2", "c", None),
        ];
        // Test: user 99 is unseen (dropped), item z is unseen (dropped).
        let test = vec![
            row("2", "a", None),
            row("99", "a", None),
            row("10", "z", None),
            row("10", "b", None),
        ];
        let s = from_presplit(&train, &[], &test);
        // Numeric ids sort numerically; items only from train.
        assert_eq!(s.users, vec!["2", "10"]);
        assert_eq!(s.items, vec!["a", "b", "c"]);
        assert_eq!(s.train, vec![vec![1, 2], vec![0]]);
        assert_eq!(s.test, vec![vec![0], vec![1]]);
        assert_eq!(s.valid, vec![Vec::<u32>::new(), vec![]]);
        assert_eq!(
            s.stats,
            SplitStats {
                users: 2,
                train_items: 3,
                train_rows: 3,
                valid_rows: 0,
                test_rows: 2,
                valid_dropped: 0,
                test_dropped: 2,
            }
        );
    }

    #[test]
    fn presplit_users_only_in_test_do_not_become_users() {
        let train = vec![row("1", "a", None)];
        let test = vec![row("2", "a", None), row("2", "a", None)];
        let s = from_presplit(&train, &[], &test);
        assert_eq!(s.users, vec!["1"]);
        assert_eq!(s.stats.test_dropped, 2);
        assert_eq!(s.stats.test_rows, 0);
    }

    #[test]
    fn presplit_parts_sort_stably_by_time_or_keep_file_order() {
        let train = vec![
            row("u", "c", Some(3)),
            row("u", "a", Some(1)),
            row("u", "d", Some(1)),
            row("u", "b", Some(2)),
        ];
        let test = vec![row("u", "b", Some(9)), row("u", "a", Some(8))];
        let s = from_presplit(&train, &[], &test);
        // a=0 b=1 c=2 d=3; time order a(1) d(1) b(2) c(3), ties in file order.
        assert_eq!(s.train[0], vec![0, 3, 1, 2]);
        assert_eq!(s.test[0], vec![0, 1]);
        // Without timestamps, file order.
        let untimed = |rows: &[RawInteraction]| -> Vec<RawInteraction> {
            rows.iter().map(|r| row(&r.user, &r.item, None)).collect()
        };
        let s = from_presplit(&untimed(&train), &[], &untimed(&test));
        assert_eq!(s.train[0], vec![2, 0, 3, 1]);
        assert_eq!(s.test[0], vec![1, 0]);
    }

    #[test]
    fn presplit_validation_is_optional_and_filtered_like_test() {
        let train = vec![
            row("1", "a", None),
            row("1", "b", None),
            row("2", "a", None),
        ];
        let valid = vec![
            row("1", "b", None),
            row("1", "x", None),
            row("3", "a", None),
            row("2", "a", None),
        ];
        let test = vec![row("2", "b", None)];
        let s = from_presplit(&train, &valid, &test);
        assert_eq!(s.valid, vec![vec![1], vec![0]]);
        assert_eq!(s.stats.valid_rows, 2);
        assert_eq!(s.stats.valid_dropped, 2);
        assert_eq!(s.test, vec![vec![], vec![1]]);
        let without = from_presplit(&train, &[], &test);
        assert_eq!(without.train, s.train);
        assert_eq!(without.test, s.test);
        assert!(without.valid.iter().all(Vec::is_empty));
        assert_eq!(
            (without.stats.valid_rows, without.stats.valid_dropped),
            (0, 0)
        );
    }

    #[test]
    fn presplit_of_a_resplit_gives_the_same_split() {
        // Importing the parts that `split` made gives back the same ids and sequences when
        // every user keeps a training row.
        let rows: Vec<_> = (0..40)
            .map(|i| row(&(i % 4).to_string(), &(i % 9).to_string(), Some(i)))
            .collect();
        let s = split(&rows, SplitConfig::default());
        let part = |seqs: &[Vec<u32>]| -> Vec<RawInteraction> {
            let mut out = Vec::new();
            for (u, seq) in seqs.iter().enumerate() {
                for &i in seq {
                    out.push(row(&s.users[u], &s.items[i as usize], None));
                }
            }
            out
        };
        let again = from_presplit(&part(&s.train), &part(&s.valid), &part(&s.test));
        assert_eq!(again.users, s.users);
        assert_eq!(again.items, s.items);
        assert_eq!(again.train, s.train);
        assert_eq!(again.test, s.test);
        assert_eq!(again.stats.test_rows, s.stats.test_rows);
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
