//! A small lock-free latency histogram per model version, for the probation's p99: 20
//! log-spaced buckets per decade from 1 µs to 100 s (each about 12% wide), one atomic count
//! each. A quantile is the upper bound of the bucket holding it, so it overstates by less
//! than one bucket's width.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets per decade.
const PER_DECADE: usize = 20;
/// Decades above 1 µs.
const DECADES: usize = 8;
/// Buckets, the last one open-ended.
const BUCKETS: usize = PER_DECADE * DECADES + 1;

/// Upper bound in seconds of bucket `i`.
fn upper_bound_s(i: usize) -> f64 {
    1e-6 * 10f64.powf((i + 1) as f64 / PER_DECADE as f64)
}

/// The bucket of a latency in seconds.
fn bucket(seconds: f64) -> usize {
    if seconds <= 1e-6 {
        return 0;
    }
    let position = (seconds / 1e-6).log10() * PER_DECADE as f64;
    // The bucket whose upper bound is the first at or above `seconds`.
    (position.ceil() as usize)
        .saturating_sub(1)
        .min(BUCKETS - 1)
}

/// Latencies of one version's Recommend answers.
#[derive(Debug)]
pub struct LatencyHistogram {
    counts: Vec<AtomicU64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl LatencyHistogram {
    /// Records one latency.
    pub fn observe(&self, latency: Duration) {
        self.counts[bucket(latency.as_secs_f64())].fetch_add(1, Ordering::Relaxed);
    }

    /// Latencies recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The `q` quantile (0 < q <= 1) in seconds, as its bucket's upper bound; `None` before
    /// any latency is recorded.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_bound_s(i));
            }
        }
        Some(upper_bound_s(BUCKETS - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_latency_lands_in_the_bucket_that_bounds_it() {
        for us in [0.5, 1.0, 1.2, 7.0, 100.0, 999.0, 1234.5, 5e5, 9.9e7, 5e9] {
            let s = us * 1e-6;
            let i = bucket(s);
            assert!(
                s <= upper_bound_s(i) * (1.0 + 1e-12) || i == BUCKETS - 1,
                "{us}"
            );
            assert!(i == 0 || s > upper_bound_s(i - 1) * (1.0 - 1e-12), "{us}");
        }
    }

    #[test]
    fn quantiles_are_bucket_bounds_of_the_ranked_latency() {
        let h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.99), None);
        for _ in 0..99 {
            h.observe(Duration::from_micros(100));
        }
        h.observe(Duration::from_millis(50));
        assert_eq!(h.count(), 100);
        let p50 = h.quantile(0.5).unwrap();
        assert!((99e-6..113e-6).contains(&p50), "{p50}");
        let p99 = h.quantile(0.99).unwrap();
        assert_eq!(p99, p50, "99 of 100 latencies are 100 µs");
        let max = h.quantile(1.0).unwrap();
        assert!((49e-3..57e-3).contains(&max), "{max}");
    }
}
