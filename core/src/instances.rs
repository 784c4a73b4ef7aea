//! Training instances as the reference builds them: every window of L+T consecutive items of a
//! user's training sequence (stride 1); the first L are the input, the last T the targets. A
//! sequence shorter than L+T gives one window, left-padded with the padding item.

use serde::{Deserialize, Serialize};

/// The padding input id. Real item `i` has input id `i + 1`.
pub const PAD: u32 = 0;

/// Window shape: which training queries, with L inputs and T targets each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowConfig {
    /// Input length L.
    pub sequence_length: usize,
    /// Targets per instance T.
    pub target_length: usize,
    /// Sliding windows or SASRec's positions (absent from settings written before it: windows).
    #[serde(default, skip_serializing_if = "QuerySet::is_windows")]
    pub query_set: QuerySet,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            sequence_length: 5,
            target_length: 1,
            query_set: QuerySet::Windows,
        }
    }
}

/// All training instances of a dataset, stored flat.
#[derive(Debug, Clone, PartialEq)]
pub struct Instances {
    /// The window shape.
    pub config: WindowConfig,
    /// User of each instance.
    pub users: Vec<u32>,
    /// Inputs, `len x L`, as input ids (0 = padding, item i = i + 1).
    pub inputs: Vec<u32>,
    /// Targets, `len x T`, as dense item indices.
    pub targets: Vec<u32>,
    /// Where each instance's input ends in its user's training sequence: the input is the
    /// last L items before this position (so a model with another L can build its own).
    pub ends: Vec<u32>,
}

/// Which training queries a dataset gives a model: the sliding windows of L + T items
/// (Caser's instances, the default) or every position of the last L + 1 items of each user
/// (SASRec's training positions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuerySet {
    /// [`Instances::build`].
    #[default]
    Windows,
    /// [`Instances::positions`].
    Positions,
}

impl QuerySet {
    /// True for the sliding windows (the default, left out of serialised settings).
    pub fn is_windows(&self) -> bool {
        *self == QuerySet::Windows
    }

    /// The flag value naming this set.
    pub fn name(self) -> &'static str {
        match self {
            QuerySet::Windows => "windows",
            QuerySet::Positions => "positions",
        }
    }
}

impl Instances {
    /// Builds the instances of every user's training sequence, users in index order, windows
    /// in time order. Users with fewer than T training items give no instance.
    pub fn build(train: &[Vec<u32>], config: WindowConfig) -> Instances {
        let (l, t) = (config.sequence_length, config.target_length);
        let mut out = Instances {
            config,
            users: Vec::new(),
            inputs: Vec::new(),
            targets: Vec::new(),
            ends: Vec::new(),
        };
        for (user, seq) in train.iter().enumerate() {
            if seq.len() < t.max(1) {
                continue;
            }
            if seq.len() >= l + t {
                for (start, window) in seq.windows(l + t).enumerate() {
                    out.users.push(user as u32);
                    out.inputs.extend(window[..l].iter().map(|&i| i + 1));
                    out.targets.extend_from_slice(&window[l..]);
                    out.ends.push((start + l) as u32);
                }
            } else {
                let (input, target) = seq.split_at(seq.len() - t);
                out.users.push(user as u32);
                out.inputs.extend(std::iter::repeat_n(PAD, l - input.len()));
                out.inputs.extend(input.iter().map(|&i| i + 1));
                out.targets.extend_from_slice(target);
                out.ends.push(input.len() as u32);
            }
        }
        out
    }

    /// SASRec's training queries (kang205/SASRec `sampler.py`): for every user with at least
    /// two training items, each of the last min(n - 1, L) positions p of the sequence, in
    /// order: the input is the last L items before p (left-padded), the target item p.
    pub fn positions(train: &[Vec<u32>], sequence_length: usize) -> Instances {
        let mut out = Instances {
            config: WindowConfig {
                sequence_length,
                target_length: 1,
                query_set: QuerySet::Positions,
            },
            users: Vec::new(),
            inputs: Vec::new(),
            targets: Vec::new(),
            ends: Vec::new(),
        };
        for (user, seq) in train.iter().enumerate() {
            let n = seq.len();
            if n < 2 {
                continue;
            }
            for p in n - (n - 1).min(sequence_length)..n {
                out.users.push(user as u32);
                out.inputs.extend(last_window(&seq[..p], sequence_length));
                out.targets.push(seq[p]);
                out.ends.push(p as u32);
            }
        }
        out
    }

    /// The training queries `config` names: [`Instances::build`] or [`Instances::positions`]
    /// (which reads L only; T is 1).
    pub fn of(train: &[Vec<u32>], config: WindowConfig) -> Instances {
        match config.query_set {
            QuerySet::Windows => Instances::build(train, config),
            QuerySet::Positions => Instances::positions(train, config.sequence_length),
        }
    }

    /// Instance `i`'s input for a model reading `length` items: the last `length` training
    /// items of its user before its end, left-padded (its own input when `length` is L).
    pub fn input_of_length(&self, train: &[Vec<u32>], i: usize, length: usize) -> Vec<u32> {
        if length == self.config.sequence_length {
            return self.input(i).to_vec();
        }
        let seq = &train[self.users[i] as usize];
        last_window(&seq[..(self.ends[i] as usize).min(seq.len())], length)
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// True when there are no instances.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Input ids of instance `i`.
    pub fn input(&self, i: usize) -> &[u32] {
        let l = self.config.sequence_length;
        &self.inputs[i * l..(i + 1) * l]
    }

    /// Targets of instance `i`.
    pub fn target(&self, i: usize) -> &[u32] {
        let t = self.config.target_length;
        &self.targets[i * t..(i + 1) * t]
    }
}

/// The query a model ranks for at test time: the user's last L training items as input ids,
/// left-padded.
pub fn last_window(train_sequence: &[u32], sequence_length: usize) -> Vec<u32> {
    let start = train_sequence.len().saturating_sub(sequence_length);
    let tail = &train_sequence[start..];
    let mut out = vec![PAD; sequence_length - tail.len()];
    out.extend(tail.iter().map(|&i| i + 1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_windows_and_padding() {
        let train = vec![vec![0, 1, 2, 3], vec![4, 5], vec![]];
        let inst = Instances::build(
            &train,
            WindowConfig {
                sequence_length: 2,
                target_length: 1,
                ..WindowConfig::default()
            },
        );
        assert_eq!(inst.users, vec![0, 0, 1]);
        assert_eq!(inst.input(0), &[1, 2]);
        assert_eq!(inst.target(0), &[2]);
        assert_eq!(inst.input(1), &[2, 3]);
        assert_eq!(inst.target(1), &[3]);
        // User 1 has 2 < L+T items: one padded window.
        assert_eq!(inst.input(2), &[PAD, 5]);
        assert_eq!(inst.target(2), &[5]);
        assert_eq!(last_window(&train[0], 3), vec![2, 3, 4]);
        assert_eq!(last_window(&train[1], 3), vec![PAD, 5, 6]);
    }

    #[test]
    fn positions_are_the_last_l_targets_of_each_user_with_their_prefixes() {
        let train = vec![vec![0, 1, 2, 3, 4], vec![7], vec![5, 6]];
        let inst = Instances::positions(&train, 3);
        // User 0: the last three positions (2, 3, 4); user 1 has one item: none; user 2: 1.
        assert_eq!(inst.users, vec![0, 0, 0, 2]);
        assert_eq!(inst.targets, vec![2, 3, 4, 6]);
        assert_eq!(inst.ends, vec![2, 3, 4, 1]);
        assert_eq!(inst.input(0), &[PAD, 1, 2]);
        assert_eq!(inst.input(2), &[2, 3, 4]);
        assert_eq!(inst.input(3), &[PAD, PAD, 6]);
        // Another model's L rebuilds its own input from the same prefix.
        assert_eq!(inst.input_of_length(&train, 2, 5), vec![PAD, 1, 2, 3, 4]);
        assert_eq!(inst.input_of_length(&train, 2, 1), vec![4]);
        let windows = Instances::of(&train, WindowConfig::default());
        for i in 0..windows.len() {
            assert_eq!(
                windows.input_of_length(&train, i, 7)[2..],
                *windows.input(i)
            );
        }
    }

    #[test]
    fn count_is_sum_of_len_minus_window_plus_one() {
        let train: Vec<Vec<u32>> = (0..20).map(|u| (0..(6 + u)).collect()).collect();
        let inst = Instances::build(&train, WindowConfig::default());
        let expected: usize = train.iter().map(|s| s.len() - 6 + 1).sum();
        assert_eq!(inst.len(), expected);
    }
}
