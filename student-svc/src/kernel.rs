//! Inner-product kernels for maximum-inner-product scoring: `score = row . query + bias` for a
//! block of item rows against up to [`QUERY_GROUP`] queries at once, so each item row is read
//! from memory once per group. The fastest kernel the CPU supports is picked at run time
//! (AVX-512 VNNI for the int8 pass, else AVX2/FMA, else scalar); the scalar kernel is the
//! reference every other kernel is tested against.
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

/// Inputs a kernel refuses (instead of reading past a slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The two operands of a dot product differ in length.
    #[error("dot product of slices of different lengths ({left} and {right})")]
    LengthMismatch {
        /// Length of the first operand.
        left: usize,
        /// Length of the second operand.
        right: usize,
    },
}

/// Which implementation scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable loops; the reference.
    Scalar,
    /// x86-64 AVX2 with fused multiply-add.
    Avx2Fma,
    /// [`Kernel::Avx2Fma`] for f32, with the int8 pass on AVX-512 VNNI (`vpdpbusd` on
    /// 256-bit registers: one instruction per 32 byte products instead of three).
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel, fastest first.
    pub const ALL: [Kernel; 3] = [Kernel::Avx512Vnni, Kernel::Avx2Fma, Kernel::Scalar];

    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        Kernel::ALL
            .into_iter()
            .find(|k| k.is_supported())
            .unwrap_or(Kernel::Scalar)
    }

    /// The kernels this CPU supports, fastest first (what the tests compare).
    pub fn supported() -> Vec<Kernel> {
        Kernel::ALL
            .into_iter()
            .filter(|k| k.is_supported())
            .collect()
    }

    /// True when this CPU can run the kernel.
    pub fn is_supported(self) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Avx2Fma => avx2_fma_available(),
            Kernel::Avx512Vnni => avx2_fma_available() && vnni_available(),
        }
    }

    /// Short name, as logs, metrics and `Info` show it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::Avx2Fma => "avx2-fma",
            Kernel::Avx512Vnni => "avx512-vnni",
        }
    }

    /// True when the f32 paths of this kernel run on AVX2/FMA (checked again per call).
    fn f32_simd(self) -> bool {
        matches!(self, Kernel::Avx2Fma | Kernel::Avx512Vnni) && avx2_fma_available()
    }

    /// Dot product of two equally long slices (any length; [`LANES`]-multiples are fastest).
    /// Slices of different lengths are refused, never read past.
    pub fn dot(self, a: &[f32], b: &[f32]) -> Result<f32, KernelError> {
        if a.len() != b.len() {
            return Err(KernelError::LengthMismatch {
                left: a.len(),
                right: b.len(),
            });
        }
        Ok(match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the CPU supports AVX2 and FMA (the guard checks), the kernel's only
            // precondition (it reads through bounds-checked slices; the lengths, checked
            // above, only matter for the answer).
            _ if self.f32_simd() => unsafe { avx2::dot(a, b) },
            _ => scalar_dot(a, b),
        })
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
        // These checks are what the SIMD kernels' bounds rely on: real asserts (a caller's
        // layout bug panics), with products that cannot wrap.
        assert_eq!(
            Some(rows.len()),
            n.checked_mul(stride),
            "rows do not match the bias length"
        );
        assert_eq!(
            Some(queries.len()),
            nq.checked_mul(stride),
            "queries are not whole rows"
        );
        assert_eq!(
            Some(out.len()),
            nq.checked_mul(n),
            "output has the wrong length"
        );
        let mut q0 = 0;
        while q0 < nq {
            let group = (nq - q0).min(QUERY_GROUP);
            let qs = &queries[q0 * stride..(q0 + group) * stride];
            let outs = &mut out[q0 * n..(q0 + group) * n];
            match self {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: the CPU supports AVX2 and FMA (the guard checks), the kernel's only
                // precondition (it reads through bounds-checked slices).
                _ if self.f32_simd() => unsafe {
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
        // As in `score_block`: real asserts the SIMD kernels' bounds rely on.
        assert_eq!(rows.len(), n * stride, "rows are not whole rows");
        assert_eq!(queries.len(), nq * stride, "queries are not whole rows");
        assert_eq!(
            Some(out.len()),
            nq.checked_mul(n),
            "output has the wrong length"
        );
        // Queries go in groups (four with AVX-512's 32 registers, else pairs): each group
        // reads a row block once (rows four at a time); the next group re-reads it from cache.
        let max_group = if self == Kernel::Avx512Vnni { 4 } else { 2 };
        let mut q0 = 0;
        while q0 < nq {
            let group = (nq - q0).min(max_group);
            let qs = &queries[q0 * stride..(q0 + group) * stride];
            let outs = &mut out[q0 * n..(q0 + group) * n];
            match self {
                #[cfg(target_arch = "x86_64")]
                Kernel::Avx512Vnni if self.is_supported() => {
                    let kernel: I8GroupKernel = match group {
                        1 => avx2::dot_i8_vnni::<1>,
                        2 => avx2::dot_i8_vnni::<2>,
                        3 => avx2::dot_i8_vnni::<3>,
                        _ => avx2::dot_i8_vnni::<4>,
                    };
                    // SAFETY: the CPU supports AVX-512 VNNI/VL and AVX2 (the guard checks),
                    // the kernel's only precondition (it reads through bounds-checked slices).
                    unsafe { kernel(rows, stride, qs, outs) }
                }
                #[cfg(target_arch = "x86_64")]
                _ if self.f32_simd() => {
                    let kernel: I8GroupKernel = match group {
                        1 => avx2::dot_i8_avx2::<1>,
                        _ => avx2::dot_i8_avx2::<2>,
                    };
                    // SAFETY: the CPU supports AVX2 (the guard checks), the kernel's only
                    // precondition (it reads through bounds-checked slices).
                    unsafe { kernel(rows, stride, qs, outs) }
                }
                _ => scalar_dot_i8_group(rows, stride, qs, group, outs),
            }
            q0 += group;
        }
    }
}

/// An int8 group kernel of [`avx2`]: safe to call once the CPU has its target features.
#[cfg(target_arch = "x86_64")]
type I8GroupKernel = unsafe fn(&[i8], usize, &[i8], &mut [i32]);

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

fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
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
    //! The x86-64 kernels. Every function here is safe to call once the CPU supports its
    //! target features (the callers check that): the vectors are read and written only through
    //! references to fixed-size arrays (`load_*`, `store_*`), so a wrong length panics on a
    //! slice bound instead of reading past it.

    use super::LANES;
    use std::arch::x86_64::*;

    /// Loads [`LANES`] floats (no alignment needed).
    #[inline]
    #[target_feature(enable = "avx")]
    fn load_ps(v: &[f32; LANES]) -> __m256 {
        // SAFETY: `v` is LANES = 8 initialised floats, exactly what one unaligned 256-bit load
        // reads.
        unsafe { _mm256_loadu_ps(v.as_ptr()) }
    }

    /// Loads 32 bytes (no alignment needed).
    #[inline]
    #[target_feature(enable = "avx")]
    fn load_si256(v: &[i8; 32]) -> __m256i {
        // SAFETY: `v` is 32 initialised bytes, exactly what one unaligned 256-bit load reads.
        unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
    }

    /// Loads 16 bytes (no alignment needed; SSE2 is part of x86-64).
    #[inline]
    fn load_si128(v: &[i8; 16]) -> __m128i {
        // SAFETY: `v` is 16 initialised bytes, exactly what one unaligned 128-bit load reads.
        unsafe { _mm_loadu_si128(v.as_ptr().cast()) }
    }

    /// Stores four i32 lanes (no alignment needed; SSE2 is part of x86-64).
    #[inline]
    fn store_si128(dst: &mut [i32; 4], v: __m128i) {
        // SAFETY: `dst` is 16 writable bytes, exactly what one unaligned 128-bit store writes.
        unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), v) }
    }

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

    /// Dot product: whole [`LANES`]-chunks with FMA (two accumulators), the tail (if any) in
    /// scalar code. The caller passes equal lengths (`Kernel::dot` checks); with unequal ones
    /// the answer is meaningless but nothing is read past either slice.
    #[target_feature(enable = "avx2,fma")]
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let (ca, ta) = a.as_chunks::<LANES>();
        let (cb, tb) = b.as_chunks::<LANES>();
        let (pairs_a, rest_a) = ca.as_chunks::<2>();
        let (pairs_b, rest_b) = cb.as_chunks::<2>();
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        for (x, y) in pairs_a.iter().zip(pairs_b) {
            acc0 = _mm256_fmadd_ps(load_ps(&x[0]), load_ps(&y[0]), acc0);
            acc1 = _mm256_fmadd_ps(load_ps(&x[1]), load_ps(&y[1]), acc1);
        }
        for (x, y) in rest_a.iter().zip(rest_b) {
            acc0 = _mm256_fmadd_ps(load_ps(x), load_ps(y), acc0);
        }
        hsum(_mm256_add_ps(acc0, acc1)) + super::scalar_dot(ta, tb)
    }

    /// Scores every row against `group` (1..=4) queries; each row chunk is loaded once and
    /// multiplied into one accumulator per query. Lengths as `Kernel::score_block` asserts
    /// (`stride` a non-zero multiple of [`LANES`], `queries.len() == group * stride`,
    /// `out.len() == group * bias.len()`); a violation panics on a slice bound.
    #[target_feature(enable = "avx2,fma")]
    pub fn score_group(
        rows: &[f32],
        bias: &[f32],
        stride: usize,
        queries: &[f32],
        group: usize,
        out: &mut [f32],
    ) {
        let n = bias.len();
        let chunks = stride / LANES;
        // Queries past `group` alias query 0: computed, never stored.
        let query = |i: usize| {
            let i = if i < group { i } else { 0 };
            &queries[i * stride..(i + 1) * stride].as_chunks::<LANES>().0[..chunks]
        };
        let (q0, q1, q2, q3) = (query(0), query(1), query(2), query(3));
        for (r, row) in rows.chunks_exact(stride).enumerate() {
            let row = &row.as_chunks::<LANES>().0[..chunks];
            let mut a0 = _mm256_setzero_ps();
            let mut a1 = _mm256_setzero_ps();
            let mut a2 = _mm256_setzero_ps();
            let mut a3 = _mm256_setzero_ps();
            for c in 0..chunks {
                let x = load_ps(&row[c]);
                a0 = _mm256_fmadd_ps(x, load_ps(&q0[c]), a0);
                a1 = _mm256_fmadd_ps(x, load_ps(&q1[c]), a1);
                a2 = _mm256_fmadd_ps(x, load_ps(&q2[c]), a2);
                a3 = _mm256_fmadd_ps(x, load_ps(&q3[c]), a3);
            }
            let b = bias[r];
            let sums = [hsum(a0), hsum(a1), hsum(a2), hsum(a3)];
            for (i, s) in sums.iter().enumerate().take(group) {
                out[i * n + r] = s + b;
            }
        }
    }

    /// `acc + sum of byte products` per i32 lane (AVX2: `maddubs` to i16 pairs, which never
    /// saturate for magnitudes <= 127, then `madd` with ones to i32).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn madd_u8i8_avx2(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        let p = _mm256_maddubs_epi16(a, b);
        _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)))
    }

    /// [`madd_u8i8_avx2`] on 16 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn madd_u8i8_avx2_128(acc: __m128i, a: __m128i, b: __m128i) -> __m128i {
        let p = _mm_maddubs_epi16(a, b);
        _mm_add_epi32(acc, _mm_madd_epi16(p, _mm_set1_epi16(1)))
    }

    /// `acc + sum of byte products` per i32 lane in one VNNI instruction.
    #[inline]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    fn madd_u8i8_vnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, a, b)
    }

    /// [`madd_u8i8_vnni`] on 16 bytes.
    #[inline]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    fn madd_u8i8_vnni_128(acc: __m128i, a: __m128i, b: __m128i) -> __m128i {
        _mm_dpbusd_epi32(acc, a, b)
    }

    /// One int8 row (or query) of `stride` bytes: its whole 32-byte chunks (`full` of them)
    /// and the 16-byte tail when `stride % 32 == 16`.
    type I8Row<'a> = (&'a [[i8; 32]], Option<&'a [i8; 16]>);

    /// Splits an int8 row into exactly `full` 32-byte chunks and its 16-byte tail (panics
    /// when the row is shorter).
    #[inline]
    fn split_row(row: &[i8], full: usize) -> I8Row<'_> {
        let (chunks, tail) = row.as_chunks::<32>();
        (&chunks[..full], tail.first_chunk::<16>())
    }

    /// Int8 dot products of every row against `G` (1 to 4) queries, four rows per step.
    /// Signed x signed products go through unsigned x signed ones as |q| x sign(r, q)
    /// (magnitudes <= 127): exact in i32. The four rows' accumulators are reduced together
    /// (three `hadd`s), so the horizontal sums cost a quarter of what one row at a time costs.
    macro_rules! dot_i8_rows4 {
        ($(#[$doc:meta])* $name:ident, $features:literal, $madd:ident, $madd128:ident) => {
            $(#[$doc])*
            ///
            /// Lengths as `Kernel::dot_i8_block` asserts: `stride % 16 == 0`,
            /// `queries.len() == G * stride`, `rows.len()` a multiple of `stride`,
            /// `out.len() == G * rows.len() / stride`; a violation panics on a slice bound.
            #[target_feature(enable = $features)]
            pub fn $name<const G: usize>(
                rows: &[i8],
                stride: usize,
                queries: &[i8],
                out: &mut [i32],
            ) {
                let n = rows.len() / stride;
                let full = stride / 32;
                let abs: Vec<i8> = queries.iter().map(|q| q.wrapping_abs()).collect();
                let q: [I8Row<'_>; G] =
                    std::array::from_fn(|g| split_row(&queries[g * stride..(g + 1) * stride], full));
                let u: [I8Row<'_>; G] =
                    std::array::from_fn(|g| split_row(&abs[g * stride..(g + 1) * stride], full));
                let n4 = n / 4 * 4;
                for (step, block) in rows.chunks_exact(4 * stride).enumerate() {
                    let r = step * 4;
                    let x: [I8Row<'_>; 4] =
                        std::array::from_fn(|i| split_row(&block[i * stride..(i + 1) * stride], full));
                    let mut acc = [[_mm256_setzero_si256(); 4]; G];
                    for c in 0..full {
                        let xc = [
                            load_si256(&x[0].0[c]),
                            load_si256(&x[1].0[c]),
                            load_si256(&x[2].0[c]),
                            load_si256(&x[3].0[c]),
                        ];
                        for (g, a) in acc.iter_mut().enumerate() {
                            let qc = load_si256(&q[g].0[c]);
                            let uc = load_si256(&u[g].0[c]);
                            for i in 0..4 {
                                a[i] = $madd(a[i], uc, _mm256_sign_epi8(xc[i], qc));
                            }
                        }
                    }
                    if let [Some(t0), Some(t1), Some(t2), Some(t3)] = x.map(|row| row.1) {
                        let xt = [load_si128(t0), load_si128(t1), load_si128(t2), load_si128(t3)];
                        for (g, a) in acc.iter_mut().enumerate() {
                            let (Some(qt), Some(ut)) = (q[g].1, u[g].1) else {
                                continue;
                            };
                            let (qt, ut) = (load_si128(qt), load_si128(ut));
                            for i in 0..4 {
                                let t = $madd128(_mm_setzero_si128(), ut, _mm_sign_epi8(xt[i], qt));
                                a[i] = _mm256_add_epi32(a[i], _mm256_zextsi128_si256(t));
                            }
                        }
                    }
                    for (g, a) in acc.iter().enumerate() {
                        let t0 = _mm256_hadd_epi32(a[0], a[1]);
                        let t1 = _mm256_hadd_epi32(a[2], a[3]);
                        let t = _mm256_hadd_epi32(t0, t1);
                        let s = _mm_add_epi32(
                            _mm256_castsi256_si128(t),
                            _mm256_extracti128_si256(t, 1),
                        );
                        let mut four = [0i32; 4];
                        store_si128(&mut four, s);
                        out[g * n + r..g * n + r + 4].copy_from_slice(&four);
                    }
                }
                for r in n4..n {
                    let row = &rows[r * stride..(r + 1) * stride];
                    for g in 0..G {
                        out[g * n + r] =
                            super::scalar_dot_i8(row, &queries[g * stride..(g + 1) * stride]);
                    }
                }
            }
        };
    }

    dot_i8_rows4!(
        /// The AVX2 int8 kernel.
        dot_i8_avx2, "avx2", madd_u8i8_avx2, madd_u8i8_avx2_128
    );
    dot_i8_rows4!(
        /// The AVX-512 VNNI int8 kernel (256-bit registers).
        dot_i8_vnni, "avx2,avx512vnni,avx512vl", madd_u8i8_vnni, madd_u8i8_vnni_128
    );
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
            for kernel in Kernel::supported() {
                let got = kernel.dot(a, &b).unwrap();
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
            for kernel in Kernel::supported() {
                let mut got = vec![0.0; nq * n];
                kernel.score_block(&rows, &bias, stride, &queries, &mut got);
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!(close(*g, *w, dim as f32), "{}: {g} vs {w}", kernel.name());
                }
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
            for kernel in Kernel::supported() {
                let mut got = vec![0; nq * n];
                kernel.dot_i8_block(&rows, stride, &queries, &mut got);
                prop_assert_eq!(&got, &want, "{}", kernel.name());
            }
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
        // Nine rows: two four-row steps and one left over, against two query pairs + one.
        let stride = 112;
        let rows = vec![-127i8; 9 * stride];
        let queries = vec![127i8; 5 * stride];
        for kernel in Kernel::supported() {
            let mut out = [0; 45];
            kernel.dot_i8_block(&rows, stride, &queries, &mut out);
            assert!(
                out.iter().all(|&d| d == -127 * 127 * stride as i32),
                "{}",
                kernel.name()
            );
        }
    }

    proptest! {
        /// Lengths that are not a multiple of LANES: the SIMD kernels finish the tail in
        /// scalar code.
        #[test]
        fn dot_handles_any_equal_length(
            values in proptest::collection::vec(-2.0f32..2.0, 0..90),
        ) {
            let b: Vec<f32> = values.iter().map(|x| 0.5 - x * 0.3).collect();
            let want = scalar_dot(&values, &b);
            let scale: f32 = values.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            for kernel in Kernel::supported() {
                let got = kernel.dot(&values, &b).unwrap();
                prop_assert!(close(got, want, scale), "{}: {got} vs {want}", kernel.name());
            }
        }
    }

    #[test]
    fn dot_refuses_mismatched_lengths() {
        // A short right operand: the AVX2 kernel would read past it; every kernel refuses.
        let a = vec![1.0f32; 4 * LANES];
        let b = vec![1.0f32; LANES];
        for kernel in Kernel::supported() {
            assert_eq!(
                kernel.dot(&a, &b),
                Err(KernelError::LengthMismatch {
                    left: 4 * LANES,
                    right: LANES
                }),
                "{}",
                kernel.name()
            );
            assert_eq!(
                kernel.dot(&b, &a),
                Err(KernelError::LengthMismatch {
                    left: LANES,
                    right: 4 * LANES
                })
            );
            assert_eq!(kernel.dot(&[], &[]), Ok(0.0));
        }
        let message = Kernel::Scalar.dot(&a, &b).unwrap_err().to_string();
        assert!(
            message.contains("different lengths (32 and 8)"),
            "{message}"
        );
    }

    #[test]
    #[should_panic(expected = "rows do not match the bias length")]
    fn score_block_refuses_short_rows() {
        let mut out = vec![0.0; 2];
        Kernel::detect().score_block(&[0.0; LANES], &[0.0, 0.0], LANES, &[0.0; LANES], &mut out);
    }

    #[test]
    #[should_panic(expected = "output has the wrong length")]
    fn dot_i8_block_refuses_a_short_output() {
        let mut out = vec![0; 1];
        Kernel::detect().dot_i8_block(&[0; 2 * I8_LANES], I8_LANES, &[0; I8_LANES], &mut out);
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
            assert_ne!(Kernel::detect(), Kernel::Scalar);
            assert!(Kernel::supported().contains(&Kernel::Avx2Fma));
        }
        assert_eq!(Kernel::supported().last(), Some(&Kernel::Scalar));
    }
}
