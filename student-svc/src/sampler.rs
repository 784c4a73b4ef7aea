//! The shadow sampler: which live queries are re-asked of the teacher. A seeded, lock-free
//! Bernoulli draw per query: query number `n` (a counter) is sampled when the SplitMix64 hash
//! of `seed` and `n` falls below `fraction * 2^64`. The same seed and fraction sample the same
//! query numbers in every run; fraction 0 samples nothing, 1 everything.

use std::sync::atomic::{AtomicU64, Ordering};

/// SplitMix64's output function: a well-mixed 64-bit hash of `x`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The draw threshold of a fraction in [0, 1]: a hash strictly below it is sampled; `None`
/// means every query (fraction 1).
pub fn threshold(fraction: f64) -> Option<u64> {
    if fraction >= 1.0 {
        return None;
    }
    // 2^64 * fraction, computed in f64 (53 bits are plenty for a sampling rate).
    Some((fraction.max(0.0) * 18_446_744_073_709_551_616.0) as u64)
}

/// Whether query number `n` is sampled under `seed` and `threshold` (see [`threshold`]).
pub fn sampled(seed: u64, n: u64, threshold: Option<u64>) -> bool {
    match threshold {
        None => true,
        Some(0) => false,
        Some(t) => splitmix64(seed ^ splitmix64(n)) < t,
    }
}

/// Draws for successive queries (thread-safe, lock-free).
#[derive(Debug)]
pub struct Sampler {
    seed: u64,
    threshold: Option<u64>,
    next: AtomicU64,
}

impl Sampler {
    /// A sampler of `fraction` (clamped to [0, 1]) of the queries, seeded with `seed`.
    pub fn new(fraction: f64, seed: u64) -> Sampler {
        Sampler {
            seed,
            threshold: threshold(fraction),
            next: AtomicU64::new(0),
        }
    }

    /// Whether the next query is sampled.
    pub fn draw(&self) -> bool {
        if self.threshold == Some(0) {
            return false;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        sampled(self.seed, n, self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(fraction: f64, seed: u64, n: u64) -> f64 {
        let t = threshold(fraction);
        (0..n).filter(|&i| sampled(seed, i, t)).count() as f64 / n as f64
    }

    #[test]
    fn zero_and_one_are_exact() {
        let none = Sampler::new(0.0, 7);
        let all = Sampler::new(1.0, 7);
        for _ in 0..10_000 {
            assert!(!none.draw());
            assert!(all.draw());
        }
        assert!(!Sampler::new(-0.5, 1).draw());
        assert!(Sampler::new(1.5, 1).draw());
    }

    #[test]
    fn the_sampled_share_is_the_fraction() {
        // 200k draws: the binomial standard error at p = 0.1 is 0.00067; allow 5 of them.
        for fraction in [0.01, 0.1, 0.5] {
            let got = share(fraction, 42, 200_000);
            let tolerance = 5.0 * (fraction * (1.0 - fraction) / 200_000.0).sqrt();
            assert!((got - fraction).abs() < tolerance, "{fraction}: {got}");
        }
    }

    #[test]
    fn the_seed_fixes_the_draws() {
        let draws = |seed| {
            let s = Sampler::new(0.3, seed);
            (0..1000).map(|_| s.draw()).collect::<Vec<_>>()
        };
        assert_eq!(draws(5), draws(5));
        assert_ne!(draws(5), draws(6));
    }
}
