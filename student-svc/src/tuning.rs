//! The queries the approximate index is tuned and measured on at build time: a seeded sample
//! of the known users with even dense index (so a benchmark can hold out the odd ones; random
//! inputs without a user when the model knows no users), each
//! with its last L training items when the dataset is loaded, else L items drawn uniformly
//! (SASRec ignores users, so it needs real-looking inputs).

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankdistill_core::instances::PAD;

use crate::catalog::Catalog;
use crate::model::QueryInput;

/// Up to `n` tuning queries for a model of `users` users, `items` items and input length `l`.
pub fn tuning_queries(
    catalog: &Catalog,
    users: usize,
    items: usize,
    l: usize,
    n: usize,
    seed: u64,
) -> Vec<QueryInput> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let even = users.div_ceil(2);
    let mut picked: Vec<Option<u32>> = if even > 0 {
        sample(&mut rng, even, n.min(even))
            .into_iter()
            .map(|j| Some((2 * j) as u32))
            .collect()
    } else {
        vec![None; n]
    };
    picked.sort_unstable();
    picked
        .into_iter()
        .map(|user| {
            let window = user.and_then(|u| catalog.training_window(u));
            let inputs = window.unwrap_or_else(|| {
                (0..l)
                    .map(|_| {
                        if items == 0 {
                            PAD
                        } else {
                            rng.random_range(1..=items as u32)
                        }
                    })
                    .collect()
            });
            QueryInput { user, inputs }
        })
        .collect()
}
