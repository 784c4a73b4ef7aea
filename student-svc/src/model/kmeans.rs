//! Seeded Lloyd k-means in L2 over padded f32 rows, for the coarse lists of the approximate
//! index ([`super::ivf`]). The nearest centroid of a point `x` is the one that maximises
//! `x . c - |c|^2 / 2`, so one assignment pass is the scoring kernel with the centroids as
//! rows and `-|c|^2 / 2` as their bias: the same SIMD code that serves.

use rand::Rng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::kernel::Kernel;

/// Points assigned per kernel call (a `POINT_BATCH x lists` score buffer per task).
const POINT_BATCH: usize = 256;

/// Centroids (`k x stride`, row-major) and the kernel bias that ranks them by L2 distance.
#[derive(Debug, Clone)]
pub(super) struct Centroids {
    /// `k x stride` floats.
    pub(super) rows: Vec<f32>,
    /// `-|c|^2 / 2` per centroid.
    pub(super) bias: Vec<f32>,
    /// Floats per row.
    pub(super) stride: usize,
}

impl Centroids {
    fn from_rows(rows: Vec<f32>, stride: usize) -> Centroids {
        let bias = rows
            .chunks_exact(stride)
            .map(|c| -0.5 * c.iter().map(|v| v * v).sum::<f32>())
            .collect();
        Centroids { rows, bias, stride }
    }

    /// Number of centroids.
    pub(super) fn len(&self) -> usize {
        self.bias.len()
    }

    /// The nearest centroid of every point of `points` (`n x stride`), in parallel.
    pub(super) fn assign(&self, kernel: Kernel, points: &[f32]) -> Vec<u32> {
        let k = self.len();
        points
            .par_chunks(POINT_BATCH * self.stride)
            .flat_map_iter(|batch| {
                let nb = batch.len() / self.stride;
                let mut scores = vec![0f32; nb * k];
                kernel.score_block(&self.rows, &self.bias, self.stride, batch, &mut scores);
                scores
                    .chunks_exact(k)
                    .map(argmax)
                    .collect::<Vec<_>>()
                    .into_iter()
            })
            .collect()
    }
}

/// Index of the largest value (the first of equals; NaN never wins).
fn argmax(values: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &v) in values.iter().enumerate() {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best as u32
}

/// Runs `iterations` Lloyd steps of k-means with `k` centroids over `points` (`n x stride`,
/// `n >= k`), starting from `k` distinct points drawn with `rng`. A centroid left empty is
/// moved to a point of the largest cluster, nudged, so every list ends up used. (The caller
/// passes the generator it drew the points with, so the starts are not drawn by the same
/// random numbers as the sample itself.)
pub(super) fn kmeans(
    kernel: Kernel,
    points: &[f32],
    stride: usize,
    k: usize,
    iterations: usize,
    rng: &mut ChaCha8Rng,
) -> Centroids {
    let n = points.len() / stride;
    assert!(
        k >= 1 && n >= k,
        "k-means needs at least k = {k} points, has {n}"
    );
    let mut rows = vec![0f32; k * stride];
    for (c, p) in sample(rng, n, k).into_iter().enumerate() {
        rows[c * stride..(c + 1) * stride].copy_from_slice(&points[p * stride..(p + 1) * stride]);
    }
    let mut centroids = Centroids::from_rows(rows, stride);
    for _ in 0..iterations {
        let assignment = centroids.assign(kernel, points);
        let mut sums = vec![0f64; k * stride];
        let mut counts = vec![0usize; k];
        for (p, &c) in assignment.iter().enumerate() {
            let c = c as usize;
            counts[c] += 1;
            let sum = &mut sums[c * stride..(c + 1) * stride];
            for (s, &v) in sum.iter_mut().zip(&points[p * stride..(p + 1) * stride]) {
                *s += v as f64;
            }
        }
        let mut rows = vec![0f32; k * stride];
        for c in 0..k {
            if counts[c] > 0 {
                let inv = 1.0 / counts[c] as f64;
                for (r, s) in rows[c * stride..(c + 1) * stride]
                    .iter_mut()
                    .zip(&sums[c * stride..(c + 1) * stride])
                {
                    *r = (s * inv) as f32;
                }
            }
        }
        // Empty centroids: split the largest cluster (a random member, nudged).
        for c in 0..k {
            if counts[c] > 0 {
                continue;
            }
            let largest = (0..k).max_by_key(|&j| counts[j]).unwrap_or(0);
            let members: Vec<usize> = assignment
                .iter()
                .enumerate()
                .filter(|&(_, &a)| a as usize == largest)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                continue;
            }
            let p = members[rng.random_range(0..members.len())];
            for j in 0..stride {
                let v = points[p * stride + j];
                rows[c * stride + j] = v * (1.0 + 1e-3 * (rng.random::<f32>() - 0.5));
            }
            counts[largest] -= members.len() / 2;
            counts[c] = members.len() / 2;
        }
        centroids = Centroids::from_rows(rows, stride);
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn points(n: usize, stride: usize, seed: u64) -> Vec<f32> {
        // Clustered points: 5 centres, small noise, in the first 6 of `stride` dims.
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..5 * 6).map(|_| rng.random::<f32>() * 8.0).collect();
        let mut out = vec![0f32; n * stride];
        for (p, row) in out.chunks_exact_mut(stride).enumerate() {
            let c = p % 5;
            for j in 0..6 {
                row[j] = centres[c * 6 + j] + rng.random::<f32>() - 0.5;
            }
        }
        out
    }

    fn squared_error(points: &[f32], c: &Centroids, assigned: &[u32]) -> f64 {
        points
            .chunks_exact(c.stride)
            .zip(assigned)
            .map(|(p, &a)| {
                let row = &c.rows[a as usize * c.stride..(a as usize + 1) * c.stride];
                p.iter()
                    .zip(row)
                    .map(|(x, y)| ((x - y) as f64).powi(2))
                    .sum::<f64>()
            })
            .sum()
    }

    #[test]
    fn points_go_to_their_nearest_centroid_and_iterations_never_hurt() {
        let stride = 8;
        let pts = points(600, stride, 1);
        let one = kmeans(
            Kernel::detect(),
            &pts,
            stride,
            7,
            1,
            &mut ChaCha8Rng::seed_from_u64(7),
        );
        let ten = kmeans(
            Kernel::detect(),
            &pts,
            stride,
            7,
            10,
            &mut ChaCha8Rng::seed_from_u64(7),
        );
        for c in [&one, &ten] {
            let assigned = c.assign(Kernel::detect(), &pts);
            for (p, &a) in pts.chunks_exact(stride).zip(&assigned) {
                let dist = |k: usize| -> f64 {
                    let row = &c.rows[k * stride..(k + 1) * stride];
                    p.iter()
                        .zip(row)
                        .map(|(x, y)| ((x - y) as f64).powi(2))
                        .sum()
                };
                let best = (0..c.len()).map(dist).fold(f64::INFINITY, f64::min);
                assert!(dist(a as usize) <= best + 1e-3, "not the nearest centroid");
            }
        }
        let err = |c: &Centroids| squared_error(&pts, c, &c.assign(Kernel::Scalar, &pts));
        assert!(err(&ten) <= err(&one), "{} > {}", err(&ten), err(&one));
        assert_eq!(ten.len(), 7);
    }

    #[test]
    fn the_same_seed_gives_the_same_centroids() {
        let stride = 8;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let points: Vec<f32> = (0..400 * stride).map(|_| rng.random::<f32>()).collect();
        let a = kmeans(
            Kernel::detect(),
            &points,
            stride,
            16,
            5,
            &mut ChaCha8Rng::seed_from_u64(11),
        );
        let b = kmeans(
            Kernel::detect(),
            &points,
            stride,
            16,
            5,
            &mut ChaCha8Rng::seed_from_u64(11),
        );
        assert_eq!(a.rows, b.rows);
        let c = kmeans(
            Kernel::detect(),
            &points,
            stride,
            16,
            5,
            &mut ChaCha8Rng::seed_from_u64(12),
        );
        assert_ne!(a.rows, c.rows);
    }

    #[test]
    fn argmax_takes_the_first_of_equals_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 2.0]), 1);
    }
}
