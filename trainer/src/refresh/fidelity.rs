//! Offline fidelity of a student to its teacher: for a seeded sample of users, the student's
//! top k for the user's last training query against the teacher's cached top k for the same
//! query (same input window, same exclusions: the query's own targets, and the user's other
//! training items when the rankings were pulled with `exclude_seen`). The figures are
//! `core::fidelity`'s, the ones student-svc computes live from shadow queries.

use rand::SeedableRng;
use rand::seq::index::sample;
use rankdistill_core::fidelity::{FidelitySummary, QueryFidelity};
use rankdistill_core::instances::Instances;
use rankdistill_core::topk::top_k;
use rankdistill_models::{Model, ids_tensor};
use tch::Device;

use crate::pull::Rankings;

/// Queries scored per forward pass.
const CHUNK: usize = 256;

/// The training query of each of `n` users drawn with `seed` among the users with at least
/// one instance: the user's last instance. Sorted by query index, so the result does not
/// depend on the draw order.
pub fn sample_queries(instances: &Instances, n: usize, seed: u64) -> Vec<usize> {
    let mut last: Vec<usize> = Vec::new();
    for (q, &user) in instances.users.iter().enumerate() {
        match last.last_mut() {
            Some(prev) if instances.users[*prev] == user => *prev = q,
            _ => last.push(q),
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut chosen: Vec<usize> = sample(&mut rng, last.len(), n.min(last.len()))
        .into_iter()
        .map(|i| last[i])
        .collect();
    chosen.sort_unstable();
    chosen
}

/// What the student is compared on.
pub struct FidelityProbe<'a> {
    /// The training instances the rankings were pulled for.
    pub instances: &'a Instances,
    /// The teacher's top K of every instance.
    pub rankings: &'a Rankings,
    /// Every user's training items (for `exclude_seen`).
    pub train: &'a [Vec<u32>],
    /// Whether the teacher's rankings excluded the user's other training items.
    pub exclude_seen: bool,
    /// Number of items the models rank.
    pub num_items: usize,
    /// The queries to compare on (see [`sample_queries`]).
    pub queries: &'a [usize],
    /// Cut-off k (at most the rankings' K).
    pub k: usize,
}

impl FidelityProbe<'_> {
    /// The student's mean fidelity over the queries. The model must read the same input
    /// length as the instances.
    pub fn measure(&self, model: &Model, device: Device) -> FidelitySummary {
        let _guard = tch::no_grad_guard();
        let l = self.instances.config.sequence_length;
        let big_k = self.rankings.k;
        let mut summary = FidelitySummary::default();
        let mut scores = Vec::new();
        for chunk in self.queries.chunks(CHUNK) {
            let users: Vec<u32> = chunk.iter().map(|&q| self.instances.users[q]).collect();
            let inputs: Vec<u32> = chunk
                .iter()
                .flat_map(|&q| self.instances.input(q).iter().copied())
                .collect();
            let b = chunk.len() as i64;
            let out = model
                .score_all(
                    &ids_tensor(&users, &[b], device),
                    &ids_tensor(&inputs, &[b, l as i64], device),
                    false,
                )
                .to_kind(tch::Kind::Float)
                .to_device(Device::Cpu)
                .contiguous();
            let len = chunk.len() * self.num_items;
            scores.resize(len, 0.0f32);
            out.copy_data(&mut scores, len);
            for (row, &q) in scores.chunks(self.num_items).zip(chunk) {
                let targets = self.instances.target(q);
                let seen = &self.train[self.instances.users[q] as usize];
                let student: Vec<u32> = top_k(row, self.k, |item| {
                    targets.contains(&item) || (self.exclude_seen && seen.contains(&item))
                })
                .into_iter()
                .map(|(item, _)| item)
                .collect();
                let teacher = &self.rankings.items[q * big_k..q * big_k + self.k.min(big_k)];
                summary.add(QueryFidelity::measure(&student, teacher, self.k));
            }
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::instances::WindowConfig;

    #[test]
    fn the_sample_takes_each_users_last_query_and_is_seeded() {
        let train = vec![vec![0, 1, 2, 3], vec![], vec![4, 5], vec![1, 2, 3]];
        let window = WindowConfig {
            sequence_length: 2,
            target_length: 1,
            ..Default::default()
        };
        let instances = Instances::build(&train, window);
        // User 0: queries 0, 1; user 2: query 2; user 3: query 3.
        assert_eq!(instances.users, vec![0, 0, 2, 3]);
        assert_eq!(sample_queries(&instances, 10, 1), vec![1, 2, 3]);
        let two = sample_queries(&instances, 2, 7);
        assert_eq!(two.len(), 2);
        assert_eq!(two, sample_queries(&instances, 2, 7));
        assert!(two.iter().all(|q| [1, 2, 3].contains(q)));
        assert!(sample_queries(&instances, 0, 1).is_empty());
    }
}
