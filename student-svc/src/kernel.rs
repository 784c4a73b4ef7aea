//! Inner-product kernels for maximum-inner-product scoring: `score = row . query + bias` for a
//! block of item rows against up to [`QUERY_GROUP`] queries at once, so each item row is read
//! from memory once per group. The AVX2/FMA kernel is picked at run time when the CPU has it;
//! the scalar kernel is the reference every other kernel is tested against.
//!
//! Rows and queries are padded with zeros to a multiple of [`LANES`] floats (see
//! [`padded_dim`]), so no kernel has a tail loop.

/// Floats per SIMD register (AVX2: 8 x f32). Row strides are multiples of this.
pub const LANES: usize = 8;
/// Queries scored together per pass over a row.
pub const QUERY_GROUP: usize = 4;

/// The row stride for a dimension: `dim` rounded up to a multiple of [`LANES`].
pub fn padded_dim(dim: usize) -> usize {
    dim.div_ceil(LANES) * LANES
}

/// Row stride granularity of int8 tables and queries (bytes): a multiple of 16, so the AVX2
/// kernel reads whole 32-byte chunks and at most one 16-byte tail.
pub const I8_LANES: usize = 16;

/// The int8 row stride for a dimension: `dim` rounded up to a multiple of [`I8_LANES`].
pub fn padded_dim_i8(dim: usize) -> usize {
    dim.div_ceil(I8_LANES) * I8_LANES
}

/// Which implementation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable loops; the reference.
    Scalar,
    /// x86-64 AVX2 with fused multiply-add.
    Avx2Fma,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        if Kernel::Avx2Fma.is_supported() {
            Kernel::Avx2Fma
        } else {
            Kernel::Scalar
        }
    }

    /// True when this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Avx2Fma => avx2_fma_available(),
        }
    }

    /// Short name, as logs, metrics and `Info` show it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2Fma => "avx2-fma",
        }
    }

    /// Dot product of two equally long slices whose length is a multiple of [`LANES`].
    pub fn dot(self, a: &[f32], b: &[f32]) -> f32 {
        debug_assert_eq!(a.len(), b.len());
        debug_assert_eq!(a.len() % LANES, 0);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: Avx2Fma is only constructed/selected after `is_supported` (see
            // `Kernel::checked`), and the lengths are checked by the callers' layout.
            Kernel::Avx2Fma if avx2_fma_available() => unsafe { avx2::dot(a, b) },
            _ => scalar_dot(a, b),
        }
    }

    /// Scores `rows` (row-major, `stride` floats per row, `stride % LANES == 0`) against
    /// `queries` (`nq` rows of `stride` floats): `out[q * n + r] = rows[r] . queries[q] +
    /// bias[r]`, with `n = bias.len()` rows.
    pub fn score_block(
        self,
        rows: &[f32],
        bias: &[f32],
        stride: usize,
        queries: &[f32],
        out: &mut [f32],
    ) {
        let n = bias.len();
        let nq = queries.len() / stride.max(1);
        assert!(
            stride > 0 && stride.is_multiple_of(LANES),
            "bad stride {stride}"
        );
        assert_eq!(rows.len(), n * stride, "rows do not match the bias length");
        assert_eq!(queries.len(), nq * stride, "queries are not whole rows");
        assert_eq!(out.len(), nq * n, "output has the wrong length");
        let mut q0 = 0;
        while q0 < nq {
            let group = (nq - q0).min(QUERY_GROUP);
            let qs = &queries[q0 * stride..(q0 + group) * stride];
            let outs = &mut out[q0 * n..(q0 + group) * n];
            match self {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU supports AVX2 and FMA (checked here) and the slice lengths
                // were asserted above.
                Kernel::Avx2Fma if avx2_fma_available() => unsafe {
                    avx2::score_group(rows, bias, stride, qs, group, outs)
                },
                _ => scalar_score_group(rows, bias, stride, qs, group, outs),
            }
            q0 += group;
        }
    }

    /// Integer dot products of int8 `rows` (`stride` bytes per row, `stride % I8_LANES ==
    /// 0`, values in -127..=127) against int8 `queries` (`nq` rows of `stride` bytes, values
    /// in -127..=127): `out[q * n + r] = rows[r] . queries[q]`, exact in i32. `n` is
    /// `out.len() / nq`.
    pub fn dot_i8_block(self, rows: &[i8], stride: usize, queries: &[i8], out: &mut [i32]) {
        assert!(
            stride > 0 && stride.is_multiple_of(I8_LANES),
            "bad int8 stride {stride}"
        );
        let n = rows.len() / stride;
        let nq = queries.len() / stride;
        assert_eq!(rows.len(), n * stride, "rows are not whole rows");
        assert_eq!(queries.len(), nq * stride, "queries are not whole rows");
        assert_eq!(out.len(), nq * n, "output has the wrong length");
        let mut q0 = 0;
        while q0 < nq {
            let group = (nq - q0).min(QUERY_GROUP);
            let qs = &queries[q0 * stride..(q0 + group) * stride];
            let outs = &mut out[q0 * n..(q0 + group) * n];
            match self {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU supports AVX2 (checked here) and the slice lengths were
                // asserted above.
                Kernel::Avx2Fma if avx2_fma_available() => unsafe {
                    match group {
                        1 => avx2::dot_i8_group::<1>(rows, stride, qs, outs),
                        2 => avx2::dot_i8_group::<2>(rows, stride, qs, outs),
                        3 => avx2::dot_i8_group::<3>(rows, stride, qs, outs),
                        _ => avx2::dot_i8_group::<4>(rows, stride, qs, outs),
                    }
                },
                _ => scalar_dot_i8_group(rows, stride, qs, group, outs),
            }
            q0 += group;
        }
    }
}

fn avx2_fma_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Reference dot product.
pub fn scalar_dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn scalar_score_group(
    rows: &[f32],
    bias: &[f32],
    stride: usize,
    queries: &[f32],
    group: usize,
    out: &mut [f32],
) {
    let n = bias.len();
    for (r, row) in rows.chunks_exact(stride).enumerate() {
        for q in 0..group {
            out[q * n + r] = scalar_dot(row, &queries[q * stride..(q + 1) * stride]) + bias[r];
        }
    }
}

/// Reference int8 dot product (exact in i32).
pub fn scalar_dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

fn scalar_dot_i8_group(rows: &[i8], stride: usize, queries: &[i8], group: usize, out: &mut [i32]) {
    let n = rows.len() / stride;
    for (r, row) in rows.chunks_exact(stride).enumerate() {
        for q in 0..group {
            out[q * n + r] = scalar_dot_i8(row, &queries[q * stride..(q + 1) * stride]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::LANES;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; `a.len() == b.len()`, a multiple of `LANES`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let chunks = a.len() / LANES;
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut c = 0;
        // SAFETY: every load reads LANES floats at offset c * LANES < len.
        unsafe {
            while c + 1 < chunks {
                acc0 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(c * LANES)),
                    _mm256_loadu_ps(pb.add(c * LANES)),
                    acc0,
                );
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add((c + 1) * LANES)),
                    _mm256_loadu_ps(pb.add((c + 1) * LANES)),
                    acc1,
                );
                c += 2;
            }
            if c < chunks {
                acc0 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(c * LANES)),
                    _mm256_loadu_ps(pb.add(c * LANES)),
                    acc0,
                );
            }
        }
        hsum(_mm256_add_ps(acc0, acc1))
    }

    /// Scores every row against `group` (1..=4) queries; each row chunk is loaded once and
    /// multiplied into one accumulator per query.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; lengths as `Kernel::score_block` asserts.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn score_group(
        rows: &[f32],
        bias: &[f32],
        stride: usize,
        queries: &[f32],
        group: usize,
        out: &mut [f32],
    ) {
        let n = bias.len();
        let chunks = stride / LANES;
        let qp = queries.as_ptr();
        // Queries past `group` alias query 0: computed, never stored.
        let q = |i: usize| if i < group { i } else { 0 };
        let (q1, q2, q3) = (q(1) * stride, q(2) * stride, q(3) * stride);
        for (r, row) in rows.chunks_exact(stride).enumerate() {
            let rp = row.as_ptr();
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            let mut a2 = _mm256_setzero_ps();
            let mut a3 = _mm256_setzero_ps();
            // SAFETY: offsets stay below `stride` within a row and within each query.
            unsafe {
                for c in 0..chunks {
                    let off = c * LANES;
                    let x = _mm256_loadu_ps(rp.add(off));
                    a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(qp.add(off)), a0);
                    a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(qp.add(q1 + off)), a1);
                    a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(qp.add(q2 + off)), a2);
                    a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(qp.add(q3 + off)), a3);
                }
            }
            let b = bias[r];
            let sums = [hsum(a0), hsum(a1), hsum(a2), hsum(a3)];
            for (i, s) in sums.iter().enumerate().take(group) {
                out[i * n + r] = s + b;
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum_i32(v: __m256i, tail: __m128i) -> i32 {
        let lo = _mm256_castsi256_si128(v);
        let hi = _mm256_extracti128_si256(v, 1);
        let s = _mm_add_epi32(_mm_add_epi32(lo, hi), tail);
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// Int8 dot products of every row against `G` (1..=4) queries. Signed x signed products
    /// go through `maddubs` as |q| x sign(r, q) (values within -127..=127, so pairs never
    /// saturate i16), then `madd` with ones widens to i32: exact.
    ///
    /// # Safety
    /// The CPU must support AVX2; `stride % 16 == 0`, `queries.len() == G * stride`,
    /// `rows.len()` a multiple of `stride`, `out.len() == G * rows.len() / stride`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn dot_i8_group<const G: usize>(
        rows: &[i8],
        stride: usize,
        queries: &[i8],
        out: &mut [i32],
    ) {
        let n = rows.len() / stride;
        let full = stride / 32;
        let tail = !stride.is_multiple_of(32);
        let qp = queries.as_ptr();
        let ones = _mm256_set1_epi16(1);
        let ones128 = _mm_set1_epi16(1);
        for r in 0..n {
            // SAFETY: offsets stay below `stride` within the row and within each query.
            unsafe {
                let rp = rows.as_ptr().add(r * stride);
                let mut acc = [_mm256_setzero_si256(); G];
                let mut acc_t = [_mm_setzero_si128(); G];
                for c in 0..full {
                    let x = _mm256_loadu_si256(rp.add(c * 32) as *const __m256i);
                    for (g, a) in acc.iter_mut().enumerate() {
                        let q = _mm256_loadu_si256(qp.add(g * stride + c * 32) as *const __m256i);
                        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(x, q));
                        *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, ones));
                    }
                }
                if tail {
                    let off = full * 32;
                    let x = _mm_loadu_si128(rp.add(off) as *const __m128i);
                    for (g, a) in acc_t.iter_mut().enumerate() {
                        let q = _mm_loadu_si128(qp.add(g * stride + off) as *const __m128i);
                        let p = _mm_maddubs_epi16(_mm_abs_epi8(q), _mm_sign_epi8(x, q));
                        *a = _mm_add_epi32(*a, _mm_madd_epi16(p, ones128));
                    }
                }
                for g in 0..G {
                    out[g * n + r] = hsum_i32(acc[g], acc_t[g]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f32, b: f32, scale: f32) -> bool {
        (a - b).abs() <= 1e-5 * scale.max(1.0)
    }

    proptest! {
        #[test]
        fn every_kernel_matches_scalar_dot(
            chunks in 1usize..20,
            seed in proptest::collection::vec(-2.0f32..2.0, 320),
        ) {
            let len = chunks * LANES;
            let a = &seed[..len];
            let b: Vec<f32> = seed[..len].iter().rev().map(|x| x * 0.7 - 0.1).collect();
            let want = scalar_dot(a, &b);
            let scale: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            for kernel in [Kernel::Scalar, Kernel::detect()] {
                let got = kernel.dot(a, &b);
                prop_assert!(close(got, want, scale), "{}: {got} vs {want}", kernel.name());
            }
        }

        #[test]
        fn score_block_matches_scalar_for_any_query_count(
            dim in 1usize..40,
            n in 1usize..30,
            nq in 1usize..10,
            values in proptest::collection::vec(-1.0f32..1.0, 4000),
        ) {
            let stride = padded_dim(dim);
            let mut rows = vec![0.0; n * stride];
            let mut queries = vec![0.0; nq * stride];
            let mut it = values.iter().cycle();
            for r in 0..n { for j in 0..dim { rows[r * stride + j] = *it.next().unwrap(); } }
            for q in 0..nq { for j in 0..dim { queries[q * stride + j] = *it.next().unwrap(); } }
            let bias: Vec<f32> = (0..n).map(|r| r as f32 * 0.01).collect();
            let mut want = vec![0.0; nq * n];
            Kernel::Scalar.score_block(&rows, &bias, stride, &queries, &mut want);
            let mut got = vec![0.0; nq * n];
            Kernel::detect().score_block(&rows, &bias, stride, &queries, &mut got);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!(close(*g, *w, dim as f32), "{g} vs {w}");
            }
            // The reference itself: one query at a time with plain dots.
            for q in 0..nq {
                for r in 0..n {
                    let d = scalar_dot(&rows[r * stride..(r + 1) * stride], &queries[q * stride..(q + 1) * stride]) + bias[r];
                    prop_assert!(close(want[q * n + r], d, dim as f32));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn int8_dots_match_scalar_exactly(
            dim in 1usize..120,
            n in 1usize..20,
            nq in 1usize..10,
            values in proptest::collection::vec(-127i8..=127, 4000),
        ) {
            let stride = padded_dim_i8(dim);
            let mut rows = vec![0i8; n * stride];
            let mut queries = vec![0i8; nq * stride];
            let mut it = values.iter().cycle();
            for r in 0..n { for j in 0..dim { rows[r * stride + j] = *it.next().unwrap(); } }
            for q in 0..nq { for j in 0..dim { queries[q * stride + j] = *it.next().unwrap(); } }
            // The extremes, where maddubs could saturate if the sign trick were wrong.
            rows[0] = 127;
            queries[0] = -127;
            let mut want = vec![0; nq * n];
            Kernel::Scalar.dot_i8_block(&rows, stride, &queries, &mut want);
            let mut got = vec![0; nq * n];
            Kernel::detect().dot_i8_block(&rows, stride, &queries, &mut got);
            prop_assert_eq!(&got, &want);
            for q in 0..nq {
                for r in 0..n {
                    let d: i64 = (0..stride).map(|j| rows[r * stride + j] as i64 * queries[q * stride + j] as i64).sum();
                    prop_assert_eq!(want[q * n + r] as i64, d);
                }
            }
        }
    }

    #[test]
    fn int8_extremes_do_not_saturate() {
        let stride = 112;
        let rows = vec![-127i8; stride];
        let queries = vec![127i8; stride];
        for kernel in [Kernel::Scalar, Kernel::detect()] {
            let mut out = [0];
            kernel.dot_i8_block(&rows, stride, &queries, &mut out);
            assert_eq!(out[0], -127 * 127 * stride as i32, "{}", kernel.name());
        }
    }

    #[test]
    fn padding_and_detection() {
        assert_eq!(padded_dim(1), 8);
        assert_eq!(padded_dim(8), 8);
        assert_eq!(padded_dim(100), 104);
        assert_eq!(padded_dim_i8(100), 112);
        assert_eq!(padded_dim_i8(16), 16);
        assert!(Kernel::detect().is_supported());
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            assert_eq!(Kernel::detect(), Kernel::Avx2Fma);
        }
    }
}
