//! SASRec's training batches as its reference samples them (kang205/SASRec `sampler.py`): each
//! batch draws users uniformly, with replacement, among those with at least two training
//! items; a user's window is the last L + 1 of them, the first L the input (left-padded) and,
//! at each position, the next item the target. Every position with a target is one training
//! query of [`Instances::positions`] (same numbering), so teacher rankings and a method's
//! items are looked up by query index.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::instances::Instances;
use tch::Tensor;

/// Each trainable user's input window and the query index at each of its positions.
pub struct UserWindows {
    /// Input length L.
    length: usize,
    /// Per trainable user (at least two training items), L input ids (left-padded).
    inputs: Vec<Vec<i64>>,
    /// Per trainable user, L query indices (`None` where the position has no target).
    queries: Vec<Vec<Option<i64>>>,
}

/// One batch: the windows' inputs and, for every position with a target, its flat position
/// in the batch (`b * L + j`) and its query index.
pub struct WindowBatch {
    /// Inputs, [B, L].
    pub inputs: Tensor,
    /// Flat positions with a target, [P].
    pub positions: Tensor,
    /// Their query indices, [P].
    pub queries: Tensor,
    /// P.
    pub rows: usize,
}

impl UserWindows {
    /// The windows of `instances`, which must come from [`Instances::positions`].
    pub fn new(instances: &Instances) -> UserWindows {
        let l = instances.config.sequence_length;
        let mut out = UserWindows {
            length: l,
            inputs: Vec::new(),
            queries: Vec::new(),
        };
        let mut i = 0;
        while i < instances.len() {
            let user = instances.users[i];
            let start = i;
            while i < instances.len() && instances.users[i] == user {
                i += 1;
            }
            // The user's last query's input is the whole window's input: position j's prefix
            // ends at input j, whose target is the query's at position j.
            let last = i - 1;
            let window: Vec<i64> = instances.input(last).iter().map(|&x| x as i64).collect();
            let count = i - start;
            let mut queries = vec![None; l];
            for (offset, q) in (start..i).enumerate() {
                queries[l - count + offset] = Some(q as i64);
            }
            out.inputs.push(window);
            out.queries.push(queries);
        }
        out
    }

    /// Draws a batch of `size` users (uniformly, with replacement); there must be at least one
    /// trainable user (the caller refuses a dataset without training queries).
    pub fn sample(&self, size: usize, rng: &mut ChaCha8Rng) -> WindowBatch {
        let l = self.length;
        let mut inputs = Vec::with_capacity(size * l);
        let (mut positions, mut queries) = (Vec::new(), Vec::new());
        for b in 0..size {
            let u = rng.random_range(0..self.inputs.len());
            inputs.extend_from_slice(&self.inputs[u]);
            for (j, q) in self.queries[u].iter().enumerate() {
                if let Some(q) = q {
                    positions.push((b * l + j) as i64);
                    queries.push(*q);
                }
            }
        }
        WindowBatch {
            inputs: Tensor::from_slice(&inputs).view([size as i64, l as i64]),
            rows: positions.len(),
            positions: Tensor::from_slice(&positions),
            queries: Tensor::from_slice(&queries),
        }
    }
}
