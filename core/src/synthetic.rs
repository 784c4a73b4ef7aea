//! A seeded generator of sequential implicit feedback with real structure: power-law item
//! popularity, item clusters that users prefer, and per-item successor transitions, so that a
//! sequence model beats popularity and popularity beats random. It is the demo's default data.

use std::io::{self, Write};
use std::path::Path;

use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic_with;

/// Settings of the synthetic generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    /// Number of users.
    pub users: usize,
    /// Number of items.
    pub items: usize,
    /// Number of item clusters (topics).
    pub clusters: usize,
    /// Mean interactions per user.
    pub mean_length: usize,
    /// Minimum interactions per user.
    pub min_length: usize,
    /// Exponent of the power-law popularity (weight of the r-th most popular item is r^-a).
    pub popularity_exponent: f64,
    /// Probability that the next item is a successor of the previous one.
    pub transition_prob: f64,
    /// Successors each item has.
    pub successors: usize,
    /// Random seed.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            users: 2000,
            items: 1000,
            clusters: 20,
            mean_length: 40,
            min_length: 10,
            popularity_exponent: 0.8,
            transition_prob: 0.5,
            successors: 3,
            seed: 42,
        }
    }
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    /// A setting is out of range.
    #[error("invalid synthetic config: {0}")]
    Config(String),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: io::Error,
    },
}

/// One generated interaction, with 0-based ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// User, 0-based.
    pub user: u32,
    /// Item, 0-based.
    pub item: u32,
    /// Timestamp, increasing per user.
    pub timestamp: i64,
}

impl SyntheticConfig {
    fn validate(&self) -> Result<(), SyntheticError> {
        let bad = |m: &str| Err(SyntheticError::Config(m.to_string()));
        if self.users == 0 || self.items < 2 {
            return bad("need at least 1 user and 2 items");
        }
        if self.items > u32::MAX as usize || self.users > u32::MAX as usize {
            return bad("users and items must fit in u32");
        }
        if self.clusters == 0 || self.clusters > self.items {
            return bad("clusters must be between 1 and items");
        }
        if self.min_length == 0 || self.mean_length < self.min_length {
            return bad("need 1 <= min_length <= mean_length");
        }
        if !(0.0..=1.0).contains(&self.transition_prob) {
            return bad("transition_prob must be in [0, 1]");
        }
        if self.successors == 0 {
            return bad("successors must be at least 1");
        }
        Ok(())
    }

    /// Generates the events, user by user, each user's in time order.
    pub fn generate(&self) -> Result<Vec<Event>, SyntheticError> {
        self.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // Popularity: a random permutation gives each item its popularity rank.
        let mut order: Vec<usize> = (0..self.items).collect();
        order.shuffle(&mut rng);
        let mut weight = vec![0f64; self.items];
        for (rank, &item) in order.iter().enumerate() {
            weight[item] = ((rank + 1) as f64).powf(-self.popularity_exponent);
        }
        let cluster_of: Vec<usize> = (0..self.items).map(|i| i % self.clusters).collect();
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.clusters];
        for (item, &c) in cluster_of.iter().enumerate() {
            members[c].push(item);
        }
        let in_cluster: Vec<WeightedIndex<f64>> = members
            .iter()
            .map(|m| WeightedIndex::new(m.iter().map(|&i| weight[i])))
            .collect::<Result<_, _>>()
            .map_err(|e| SyntheticError::Config(e.to_string()))?;
        let global =
            WeightedIndex::new(&weight).map_err(|e| SyntheticError::Config(e.to_string()))?;
        // Successors: popular items of the same cluster, fixed per item.
        let successors: Vec<Vec<u32>> = (0..self.items)
            .map(|item| {
                let c = cluster_of[item];
                (0..self.successors)
                    .map(|_| members[c][in_cluster[c].sample(&mut rng)] as u32)
                    .collect()
            })
            .collect();
        let extra_mean = (self.mean_length - self.min_length) as f64;
        let mut events = Vec::with_capacity(self.users * self.mean_length);
        let mut clock: i64 = 1_000_000_000;
        for user in 0..self.users {
            // A user likes two or three clusters, one of them most.
            let n_pref = rng
                .random_range(2..=3.min(self.clusters).max(2))
                .min(self.clusters);
            let prefs: Vec<usize> = (0..n_pref)
                .map(|_| rng.random_range(0..self.clusters))
                .collect();
            let pref_weights: Vec<f64> = (0..n_pref)
                .map(|i| if i == 0 { 3.0 } else { 1.0 })
                .collect();
            let pref_dist = WeightedIndex::new(&pref_weights)
                .map_err(|e| SyntheticError::Config(e.to_string()))?;
            let extra = if extra_mean > 0.0 {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                (-u.ln() * extra_mean) as usize
            } else {
                0
            };
            let length = self.min_length + extra.min(self.mean_length * 8);
            let mut previous: Option<u32> = None;
            for _ in 0..length {
                let roll: f64 = rng.random();
                let item = match previous {
                    Some(prev) if roll < self.transition_prob => {
                        *successors[prev as usize].choose(&mut rng).unwrap_or(&prev)
                    }
                    _ if roll < self.transition_prob + 0.1 => global.sample(&mut rng) as u32,
                    _ => {
                        let c = prefs[pref_dist.sample(&mut rng)];
                        members[c][in_cluster[c].sample(&mut rng)] as u32
                    }
                };
                clock += rng.random_range(1..600);
                events.push(Event {
                    user: user as u32,
                    item,
                    timestamp: clock,
                });
                previous = Some(item);
            }
        }
        Ok(events)
    }

    /// Generates the data and writes it atomically in MovieLens `u.data` form (1-based ids,
    /// rating 1). Returns the number of interactions.
    pub fn write_udata(&self, path: &Path) -> Result<usize, SyntheticError> {
        let events = self.generate()?;
        write_atomic_with(path, |w| {
            for e in &events {
                writeln!(w, "{}\t{}\t1\t{}", e.user + 1, e.item + 1, e.timestamp)?;
            }
            Ok(())
        })
        .map_err(|source| SyntheticError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(events.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::RawInteraction;
    use crate::metrics::{EvalSet, evaluate};
    use crate::split::{SplitConfig, split};

    fn small() -> SyntheticConfig {
        SyntheticConfig {
            users: 600,
            items: 300,
            clusters: 10,
            mean_length: 30,
            ..SyntheticConfig::default()
        }
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let a = small().generate().unwrap();
        assert_eq!(a, small().generate().unwrap());
        let other = SyntheticConfig { seed: 7, ..small() }.generate().unwrap();
        assert_ne!(a, other);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = SyntheticConfig {
            items: 1,
            ..small()
        };
        assert!(bad.generate().unwrap_err().to_string().contains("2 items"));
        let bad = SyntheticConfig {
            transition_prob: 1.5,
            ..small()
        };
        assert!(bad.generate().is_err());
    }

    /// Popularity must beat random, and a first-order transition model must beat popularity.
    #[test]
    fn has_popularity_and_sequential_structure() {
        let events = small().generate().unwrap();
        let rows: Vec<RawInteraction> = events
            .iter()
            .map(|e| RawInteraction {
                user: e.user.to_string(),
                item: e.item.to_string(),
                timestamp: Some(e.timestamp),
            })
            .collect();
        let s = split(&rows, SplitConfig::default());
        let n = s.items.len();
        let mut pop = vec![0f32; n];
        let mut trans = vec![0f32; n * n];
        for seq in &s.train {
            for &i in seq {
                pop[i as usize] += 1.0;
            }
            for w in seq.windows(2) {
                trans[w[0] as usize * n + w[1] as usize] += 1.0;
            }
        }
        let set = EvalSet {
            exclude: &s.train,
            exclude_extra: None,
            targets: &s.test,
            num_items: n,
        };
        let ks = [10];
        let random = evaluate(&set, &ks, |users, out| {
            for (r, &u) in users.iter().enumerate() {
                for i in 0..n {
                    let h = (u as u64 * 2_654_435_761 + i as u64 * 40_503) % 10_007;
                    out[r * n + i] = h as f32;
                }
            }
        });
        let popularity = evaluate(&set, &ks, |users, out| {
            for r in 0..users.len() {
                out[r * n..(r + 1) * n].copy_from_slice(&pop);
            }
        });
        let markov = evaluate(&set, &ks, |users, out| {
            for (r, &u) in users.iter().enumerate() {
                let last = *s.train[u as usize].last().unwrap() as usize;
                for i in 0..n {
                    out[r * n + i] = trans[last * n + i] + 1e-3 * pop[i];
                }
            }
        });
        let (r, p, m) = (random.map, popularity.map, markov.map);
        assert!(p > 1.5 * r, "POP MAP {p} should beat random {r}");
        assert!(m > 1.2 * p, "transition MAP {m} should beat POP {p}");
    }
}
