//! The evaluation split of method.md ([`SplitProtocol::Temporal`], [`split`]): per user, stable
//! sort by time, the last ceil(20%) to test, the rest to train; test items never seen in train
//! are dropped. Validation is cut from the tail of train the same way. Raw ids become dense
//! indices here.
//!
//! SASRec's leave-one-out split ([`SplitProtocol::LeaveOneOut`], [`split_leave_one_out`]):
//! per user, the last item to test, the one before to validation, the rest to train; users with
//! fewer than 3 interactions keep them all in train. [`held_out_history`] gives the history a
//! model sees for a held-out part under either protocol.
//!
//! A pre-split import ([`from_presplit`]) takes the parts as given instead: users and items are
//! numbered from the training rows only, and held-out rows of a user or item never seen in
//! train are dropped and counted.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

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

/// How `trainer prepare --input` splits each user's interactions (stably sorted by time).
/// Manifests written before there was a choice are [`SplitProtocol::Temporal`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitProtocol {
    /// method.md's per-user temporal split by fractions ([`split`] with a [`SplitConfig`]): the
    /// most recent ceil(test_fraction * n) interactions to test, then ceil(valid_fraction * m)
    /// of the remaining m to validation. Every held-out query is the training sequence.
    #[default]
    Temporal,
    /// SASRec's leave-one-out split ([`split_leave_one_out`], `data_partition` of
    /// kang205/SASRec): the last interaction to test, the second-to-last to validation, the
    /// rest to train; a user with fewer than 3 interactions keeps them all in train. The test
    /// query is the training sequence followed by the validation item.
    LeaveOneOut,
}

impl SplitProtocol {
    /// The protocol's name, as `--protocol` and the manifest spell it.
    pub fn name(self) -> &'static str {
        match self {
            SplitProtocol::Temporal => "temporal",
            SplitProtocol::LeaveOneOut => "leave-one-out",
        }
    }
}

impl fmt::Display for SplitProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SplitProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "temporal" => Ok(SplitProtocol::Temporal),
            "leave-one-out" => Ok(SplitProtocol::LeaveOneOut),
            other => Err(format!(
                "unknown split protocol '{other}': use temporal or leave-one-out"
            )),
        }
    }
}

/// A held-out part of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeldOutPart {
    /// The validation rows.
    Valid,
    /// The test rows.
    Test,
}

/// The history a model sees for `user` when it is evaluated on `part`, oldest first: the
/// user's training items, and under [`SplitProtocol::LeaveOneOut`] for the test part the
/// training items followed by the validation item (as SASRec's `evaluate` builds its query).
/// Under [`SplitProtocol::Temporal`] (and for a pre-split import) it is the training items for
/// both parts: there the validation rows are cut from the tail of train and are not part of
/// the test query. Queries take the last L items of this history.
pub fn held_out_history(
    split: &Split,
    protocol: SplitProtocol,
    user: usize,
    part: HeldOutPart,
) -> Cow<'_, [u32]> {
    let train = &split.train[user];
    match (protocol, part) {
        (SplitProtocol::LeaveOneOut, HeldOutPart::Test) if !split.valid[user].is_empty() => {
            let mut history = Vec::with_capacity(train.len() + split.valid[user].len());
            history.extend_from_slice(train);
            history.extend_from_slice(&split.valid[user]);
            Cow::Owned(history)
        }
        _ => Cow::Borrowed(train),
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

/// Splits raw interactions as method.md describes ([`SplitProtocol::Temporal`]).
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

/// Splits raw interactions as SASRec's `data_partition` does ([`SplitProtocol::LeaveOneOut`]):
/// per user, in time order (stable; file order without timestamps), a user with fewer than 3
/// interactions keeps them all in train; otherwise train is all but the last two, validation
/// the second-to-last and test the last. As in [`split`], items are numbered from the training
/// rows, so a held-out item that no user has in train is dropped and counted (SASRec numbers
/// every item of the file and keeps it).
pub fn split_leave_one_out(rows: &[RawInteraction]) -> Split {
    let mut grouped = by_user(rows);
    let users = sorted_users(grouped.keys().copied());
    let mut parts = Vec::with_capacity(users.len());
    for user in &users {
        let mut train = grouped.remove(user).unwrap_or_default();
        let (valid, test) = if train.len() < 3 {
            (Vec::new(), Vec::new())
        } else {
            let test = train.split_off(train.len() - 1);
            let valid = train.split_off(train.len() - 1);
            (valid, test)
        };
        parts.push(UserParts { train, valid, test });
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

    /// Users with 1, 2, 3 and 5 interactions, given out of time order (one tie at time 5).
    fn leave_one_out_rows() -> Vec<RawInteraction> {
        vec![
            row("1", "d", Some(4)),
            row("2", "b", Some(2)),
            row("2", "e", Some(1)),
            row("3", "c", Some(3)),
            row("3", "a", Some(1)),
            row("3", "b", Some(2)),
            row("5", "e", Some(9)),
            row("5", "a", Some(1)),
            row("5", "c", Some(5)),
            row("5", "d", Some(5)),
            row("5", "b", Some(3)),
        ]
    }

    #[test]
    fn leave_one_out_holds_out_the_last_two_items_of_users_with_three_or_more() {
        let s = split_leave_one_out(&leave_one_out_rows());
        assert_eq!(s.users, vec!["1", "2", "3", "5"]);
        // a=0 b=1 c=2 d=3 e=4.
        assert_eq!(s.items, vec!["a", "b", "c", "d", "e"]);
        // 1 item: train only. 2 items: train only, in time order (e then b).
        assert_eq!(s.train[0], vec![3]);
        assert_eq!(s.train[1], vec![4, 1]);
        // 3 items: a b | c is last. Time order a(1) b(2) c(3).
        assert_eq!(
            (&s.train[2], &s.valid[2], &s.test[2]),
            (&vec![0], &vec![1], &vec![2])
        );
        // 5 items: a(1) b(3) c(5) d(5, after c in the file) e(9).
        assert_eq!(
            (&s.train[3], &s.valid[3], &s.test[3]),
            (&vec![0, 1, 2], &vec![3], &vec![4])
        );
        for u in [0, 1] {
            assert!(s.valid[u].is_empty() && s.test[u].is_empty());
        }
        assert_eq!(
            s.stats,
            SplitStats {
                users: 4,
                train_items: 5,
                train_rows: 7,
                valid_rows: 2,
                test_rows: 2,
                valid_dropped: 0,
                test_dropped: 0,
            }
        );
    }

    #[test]
    fn leave_one_out_keeps_file_order_without_time_and_drops_unseen_held_out_items() {
        // No timestamps: file order. "x" and "y" occur in no training part.
        let rows = vec![
            row("u", "c", None),
            row("u", "a", None),
            row("u", "b", None),
            row("u", "x", None),
            row("u", "y", None),
            row("v", "a", None),
            row("v", "c", None),
            row("v", "b", None),
        ];
        let s = split_leave_one_out(&rows);
        assert_eq!(s.items, vec!["a", "b", "c"]);
        assert_eq!(s.train[0], vec![2, 0, 1]);
        assert!(s.valid[0].is_empty() && s.test[0].is_empty());
        assert_eq!((s.stats.valid_dropped, s.stats.test_dropped), (1, 1));
        assert_eq!(
            (&s.train[1], &s.valid[1], &s.test[1]),
            (&vec![0], &vec![2], &vec![1])
        );
    }

    #[test]
    fn held_out_history_adds_the_validation_item_to_leave_one_out_test_queries_only() {
        let s = split_leave_one_out(&leave_one_out_rows());
        let loo = SplitProtocol::LeaveOneOut;
        assert_eq!(
            &*held_out_history(&s, loo, 3, HeldOutPart::Test),
            &[0, 1, 2, 3]
        );
        assert_eq!(
            &*held_out_history(&s, loo, 3, HeldOutPart::Valid),
            &[0, 1, 2]
        );
        assert_eq!(&*held_out_history(&s, loo, 2, HeldOutPart::Test), &[0, 1]);
        // Without a validation item the history is the training sequence.
        assert_eq!(&*held_out_history(&s, loo, 1, HeldOutPart::Test), &[4, 1]);
        assert!(matches!(
            held_out_history(&s, loo, 1, HeldOutPart::Test),
            Cow::Borrowed(_)
        ));
        // Temporal: the training sequence for both parts, even with validation rows.
        let t = split(
            &leave_one_out_rows(),
            SplitConfig {
                test_fraction: 0.2,
                valid_fraction: 0.3,
            },
        );
        for u in 0..t.users.len() {
            for part in [HeldOutPart::Test, HeldOutPart::Valid] {
                assert_eq!(
                    &*held_out_history(&t, SplitProtocol::Temporal, u, part),
                    t.train[u].as_slice()
                );
            }
        }
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in [SplitProtocol::Temporal, SplitProtocol::LeaveOneOut] {
            assert_eq!(p.name().parse::<SplitProtocol>(), Ok(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::Value::from(p.name())
            );
        }
        assert_eq!(SplitProtocol::default(), SplitProtocol::Temporal);
        assert!("loo".parse::<SplitProtocol>().is_err());
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
        fn leave_one_out_puts_every_row_in_one_part_and_holds_out_at_most_one_each(
            rows in proptest::collection::vec((0u8..6, 0u8..20, 0i64..50), 1..200)
        ) {
            let raw: Vec<_> = rows.iter().map(|(u, i, t)| row(&u.to_string(), &i.to_string(), Some(*t))).collect();
            let s = split_leave_one_out(&raw);
            let st = s.stats;
            prop_assert_eq!(
                st.train_rows + st.valid_rows + st.valid_dropped + st.test_rows + st.test_dropped,
                raw.len()
            );
            for u in 0..s.users.len() {
                let n = raw.iter().filter(|r| r.user == s.users[u]).count();
                let held_out = if n < 3 { 0 } else { 1 };
                prop_assert_eq!(s.train[u].len(), n - 2 * held_out);
                prop_assert!(s.valid[u].len() <= held_out && s.test[u].len() <= held_out);
            }
        }

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
