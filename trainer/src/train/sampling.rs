//! The training inputs: sliding-window instances as tensors, and seeded sampling of items a
//! user has not interacted with (negatives, and the RD rank-estimate samples).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::prepared::PreparedDataset;
use tch::Tensor;

/// The training instances of a dataset as tensors on the CPU.
pub struct InstanceTensors {
    /// Users, [N].
    pub users: Tensor,
    /// Input ids, [N, L].
    pub inputs: Tensor,
    /// Targets (dense items), [N, T].
    pub targets: Tensor,
    /// The instances themselves.
    pub instances: Instances,
}

impl InstanceTensors {
    /// Builds the training queries `window` names of `data`.
    pub fn new(data: &PreparedDataset, window: WindowConfig) -> InstanceTensors {
        let instances = Instances::of(&data.split.train, window);
        let to_tensor =
            |v: &[u32]| Tensor::from_slice(&v.iter().map(|&x| x as i64).collect::<Vec<_>>());
        let n = instances.len() as i64;
        InstanceTensors {
            users: to_tensor(&instances.users),
            inputs: to_tensor(&instances.inputs).view([n, window.sequence_length as i64]),
            targets: to_tensor(&instances.targets).view([n, window.target_length as i64]),
            instances,
        }
    }
}

/// Samples `per_instance` items for every instance uniformly among the items its user has not
/// interacted with in training. Returns [N, per_instance] as int64.
pub fn sample_unobserved(
    users: &[u32],
    train: &[Vec<u32>],
    num_items: usize,
    per_instance: usize,
    rng: &mut ChaCha8Rng,
) -> Tensor {
    // One bit per (user, item): a constant-time test per draw.
    let words = num_items.div_ceil(64);
    let mut seen = vec![0u64; train.len() * words];
    let mut distinct = vec![0usize; train.len()];
    for (u, items) in train.iter().enumerate() {
        let row = &mut seen[u * words..(u + 1) * words];
        for &i in items.iter().filter(|&&i| (i as usize) < num_items) {
            let (word, bit) = (i as usize / 64, 1u64 << (i % 64));
            if row[word] & bit == 0 {
                row[word] |= bit;
                distinct[u] += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(users.len() * per_instance);
    for &u in users {
        let u = u as usize;
        let seen_u = &seen[u * words..(u + 1) * words];
        let fallback = distinct[u] >= num_items;
        for _ in 0..per_instance {
            let item = loop {
                let candidate = rng.random_range(0..num_items as u32);
                let c = candidate as usize;
                if fallback || seen_u[c / 64] & (1u64 << (c % 64)) == 0 {
                    break candidate;
                }
            };
            out.push(item as i64);
        }
    }
    Tensor::from_slice(&out).view([users.len() as i64, per_instance as i64])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn negatives_avoid_the_users_training_items_and_are_seeded() {
        let train = vec![vec![0, 1, 2], vec![3]];
        let users = vec![0u32; 50]
            .into_iter()
            .chain(vec![1u32; 50])
            .collect::<Vec<_>>();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let a = sample_unobserved(&users, &train, 5, 3, &mut rng);
        assert_eq!(a.size(), vec![100, 3]);
        let values: Vec<i64> = Vec::try_from(a.view([-1])).unwrap();
        for (row, chunk) in values.chunks(3).enumerate() {
            for &item in chunk {
                assert!(!train[users[row] as usize].contains(&(item as u32)));
                assert!((0..5).contains(&item));
            }
        }
        let b = sample_unobserved(&users, &train, 5, 3, &mut ChaCha8Rng::seed_from_u64(9));
        assert!(a.equal(&b));
    }
}
