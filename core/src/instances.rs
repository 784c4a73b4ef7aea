//! Training instances as the reference builds them: every window of L+T consecutive items of a
//! user's training sequence (stride 1); the first L are the input, the last T the targets. A
//! sequence shorter than L+T gives one window, left-padded with the padding item.

use serde::{Deserialize, Serialize};

/// The padding input id. Real item `i` has input id `i + 1`.
pub const PAD: u32 = 0;

/// Window shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowConfig {
    /// Input length L.
    pub sequence_length: usize,
    /// Targets per instance T.
    pub target_length: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            sequence_length: 5,
            target_length: 1,
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
        };
        for (user, seq) in train.iter().enumerate() {
            if seq.len() < t.max(1) {
                continue;
            }
            if seq.len() >= l + t {
                for window in seq.windows(l + t) {
                    out.users.push(user as u32);
                    out.inputs.extend(window[..l].iter().map(|&i| i + 1));
                    out.targets.extend_from_slice(&window[l..]);
                }
            } else {
                let (input, target) = seq.split_at(seq.len() - t);
                out.users.push(user as u32);
                out.inputs.extend(std::iter::repeat_n(PAD, l - input.len()));
                out.inputs.extend(input.iter().map(|&i| i + 1));
                out.targets.extend_from_slice(target);
            }
        }
        out
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
    fn count_is_sum_of_len_minus_window_plus_one() {
        let train: Vec<Vec<u32>> = (0..20).map(|u| (0..(6 + u)).collect()).collect();
        let inst = Instances::build(&train, WindowConfig::default());
        let expected: usize = train.iter().map(|s| s.len() - 6 + 1).sum();
        assert_eq!(inst.len(), expected);
    }
}
