//! SASRec's self-attention blocks and their forward pass in pure Rust: the query vector of the
//! last L input items, as `teacher-svc` computes it at inference (dropout off). Weights are
//! transposed at load and every matrix product (the linear layers, the attention scores and
//! their sum of values) runs through one register-tiled loop over contiguous rows
//! ([`Product`]); padding positions are skipped (they are masked as keys and zeroed after
//! every block, so they never reach a real position), the last block computes only the last
//! position, and the buffers are reused per thread. The AVX2 build runs the same operations
//! in the same order as the portable one: both give the same bits.

use std::cell::RefCell;

use rankdistill_core::artifact::{Artifact, ModelConfig};

use super::embeddings::Embeddings;
use super::weights::{ModelError, take};
use crate::kernel::Kernel;

/// Output columns per accumulator of a [`Product`] (one 256-bit vector of f32).
const LANES: usize = 8;

/// Rows of a row-major matrix held in a slice: row r starts at `r * stride`.
#[derive(Debug, Clone, Copy)]
struct Rows<'a> {
    /// The floats.
    data: &'a [f32],
    /// Floats from one row's start to the next's.
    stride: usize,
}

impl<'a> Rows<'a> {
    /// The first `len` floats of row `r`.
    #[inline(always)]
    fn row(self, r: usize, len: usize) -> &'a [f32] {
        &self.data[r * self.stride..r * self.stride + len]
    }

    /// The [`LANES`] floats of row `r` from column `c`.
    #[inline(always)]
    fn lanes(self, r: usize, c: usize) -> &'a [f32; LANES] {
        let at = r * self.stride + c;
        self.data[at..at + LANES]
            .first_chunk()
            .unwrap_or(&[0.0; LANES])
    }
}

/// The matrix product `x M` of `k`-float rows of `x` and the `k` rows of `M` (the first
/// `width` floats of each), added into rows of an output.
#[derive(Debug, Clone, Copy)]
struct Product<'a> {
    /// The inner dimension.
    k: usize,
    /// Output columns.
    width: usize,
    /// The left rows.
    x: Rows<'a>,
    /// The right matrix.
    m: Rows<'a>,
}

impl Product<'_> {
    /// Adds the product of the first `n` rows of `x` into the first `n` rows of `y` (rows
    /// `y_stride` apart), four rows at a time.
    #[inline(always)]
    fn add_to(self, n: usize, y: &mut [f32], y_stride: usize) {
        let mut r = 0;
        while r + 4 <= n {
            self.add_rows::<4>(r, y, y_stride);
            r += 4;
        }
        while r < n {
            self.add_rows::<1>(r, y, y_stride);
            r += 1;
        }
    }

    /// [`Product::add_to`] for rows `r0..r0 + R`: [`LANES`] columns of each row held in a
    /// register accumulator while the inner dimension is summed in order (each load of M
    /// serves R independent accumulators; no reassociation).
    #[inline(always)]
    fn add_rows<const R: usize>(self, r0: usize, y: &mut [f32], y_stride: usize) {
        let x: [&[f32]; R] = std::array::from_fn(|r| self.x.row(r0 + r, self.k));
        let at = |r: usize, c: usize| (r0 + r) * y_stride + c;
        let full = self.width / LANES * LANES;
        for c in (0..full).step_by(LANES) {
            let mut acc = [[0.0f32; LANES]; R];
            for (r, a) in acc.iter_mut().enumerate() {
                a.copy_from_slice(&y[at(r, c)..at(r, c) + LANES]);
            }
            for i in 0..self.k {
                let w = self.m.lanes(i, c);
                for (a, xr) in acc.iter_mut().zip(&x) {
                    let xi = xr[i];
                    for (a, w) in a.iter_mut().zip(w) {
                        *a += xi * w;
                    }
                }
            }
            for (r, a) in acc.iter().enumerate() {
                y[at(r, c)..at(r, c) + LANES].copy_from_slice(a);
            }
        }
        for c in full..self.width {
            let mut acc: [f32; R] = std::array::from_fn(|r| y[at(r, c)]);
            for i in 0..self.k {
                let w = self.m.data[i * self.m.stride + c];
                for (a, xr) in acc.iter_mut().zip(&x) {
                    *a += xr[i] * w;
                }
            }
            for (r, a) in acc.into_iter().enumerate() {
                y[at(r, c)] = a;
            }
        }
    }
}

/// Queries attended together (their weights share each pass over the keys and values).
const QUERY_ROWS: usize = 8;

/// Added to the variance in every layer norm.
const NORM_EPS: f32 = 1e-8;

/// A layer norm over the d features: `(v - mean) / sqrt(var + eps) * weight + bias`.
#[derive(Debug)]
struct LayerNorm {
    /// Scale, `[d]`.
    weight: Vec<f32>,
    /// Shift, `[d]`.
    bias: Vec<f32>,
}

impl LayerNorm {
    /// Takes `{prefix}.weight` and `{prefix}.bias` out of the artifact.
    fn take(artifact: &mut Artifact, prefix: &str, d: usize) -> Result<Self, ModelError> {
        Ok(LayerNorm {
            weight: take(artifact, &format!("{prefix}.weight"), d)?,
            bias: take(artifact, &format!("{prefix}.bias"), d)?,
        })
    }

    /// Writes the normalised `x` into `out` (both d floats; biased variance).
    #[inline(always)]
    fn apply(&self, x: &[f32], out: &mut [f32]) {
        let n = x.len().max(1) as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + NORM_EPS).sqrt();
        for ((o, v), (w, b)) in out
            .iter_mut()
            .zip(x)
            .zip(self.weight.iter().zip(&self.bias))
        {
            *o = (v - mean) * inv * w + b;
        }
    }

    /// Normalises each d-float row of `x` into the same row of `out`.
    #[inline(always)]
    fn apply_rows(&self, x: &[f32], out: &mut [f32]) {
        let d = self.bias.len().max(1);
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            self.apply(xr, or);
        }
    }
}

/// A `[d, d]` linear layer `y = W x + b`, its weight kept transposed (`[in, out]`).
#[derive(Debug)]
struct Linear {
    /// `W^T`: row i holds the weights input feature i sends to every output.
    weight_t: Vec<f32>,
    /// `[d]`.
    bias: Vec<f32>,
}

impl Linear {
    /// Takes `{prefix}.weight` (torch layout `[out, in]`) and `{prefix}.bias`, transposing.
    fn take(artifact: &mut Artifact, prefix: &str, d: usize) -> Result<Self, ModelError> {
        let weight = take(artifact, &format!("{prefix}.weight"), d * d)?;
        let mut weight_t = vec![0.0; d * d];
        for (o, row) in weight.chunks_exact(d.max(1)).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                weight_t[i * d + o] = w;
            }
        }
        Ok(Linear {
            weight_t,
            bias: take(artifact, &format!("{prefix}.bias"), d)?,
        })
    }

    /// Writes `W x + b` of each d-float row of `x` into the same row of `y`.
    #[inline(always)]
    fn apply_rows(&self, x: &[f32], y: &mut [f32]) {
        let d = self.bias.len().max(1);
        for row in y.chunks_exact_mut(d) {
            row.copy_from_slice(&self.bias);
        }
        Product {
            k: d,
            width: d,
            x: Rows { data: x, stride: d },
            m: Rows {
                data: &self.weight_t,
                stride: d,
            },
        }
        .add_to(x.len() / d, y, d);
    }
}

/// One self-attention block: layer norm, causal multi-head attention, layer norm and the
/// point-wise feed-forward.
#[derive(Debug)]
struct Block {
    /// Normalises the queries.
    attention_norm: LayerNorm,
    /// Q from the normalised states.
    query: Linear,
    /// K from the raw states.
    key: Linear,
    /// V from the raw states.
    value: Linear,
    /// Normalises the feed-forward's input.
    feed_forward_norm: LayerNorm,
    /// First feed-forward layer (ReLU after it).
    ff1: Linear,
    /// Second feed-forward layer.
    ff2: Linear,
}

/// Reused buffers of one forward pass (rows are real positions only).
#[derive(Debug, Default)]
struct Scratch {
    /// Hidden states s, `[n, d]`.
    states: Vec<f32>,
    /// Normalised queries q (then the states after attention), `[n, d]`.
    normed: Vec<f32>,
    /// Projected queries Q scaled by 1/sqrt(dh), `[n, d]`.
    queries: Vec<f32>,
    /// Projected keys K, `[n, d]`.
    keys: Vec<f32>,
    /// K transposed, `[d, n]`: a head's scores are contiguous passes over it.
    keys_t: Vec<f32>,
    /// Projected values V, `[n, d]`.
    values: Vec<f32>,
    /// One head's attention weights of up to [`QUERY_ROWS`] queries, `[rows, keys]`.
    scores: Vec<f32>,
    /// Feed-forward input f, `[n, d]`.
    ff_in: Vec<f32>,
    /// Feed-forward hidden layer, `[n, d]`.
    ff_hidden: Vec<f32>,
    /// The last position's state through the last block, `[d]`.
    row: Vec<f32>,
}

thread_local! {
    /// Each scoring thread's buffers, so a request allocates nothing once they have grown.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Resizes `v` to `len` floats (contents are overwritten before being read).
#[inline(always)]
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    &mut v[..len]
}

impl Block {
    /// Takes block `b`'s tensors (`blocks.{b}.*`) out of the artifact.
    fn take(artifact: &mut Artifact, b: usize, d: usize) -> Result<Self, ModelError> {
        let p = |layer: &str| format!("blocks.{b}.{layer}");
        Ok(Block {
            attention_norm: LayerNorm::take(artifact, &p("attention_norm"), d)?,
            query: Linear::take(artifact, &p("query"), d)?,
            key: Linear::take(artifact, &p("key"), d)?,
            value: Linear::take(artifact, &p("value"), d)?,
            feed_forward_norm: LayerNorm::take(artifact, &p("feed_forward_norm"), d)?,
            ff1: Linear::take(artifact, &p("ff1"), d)?,
            ff2: Linear::take(artifact, &p("ff2"), d)?,
        })
    }

    /// K and V of the n states, K also transposed.
    #[inline(always)]
    fn keys_values(&self, sc: &mut Scratch, n: usize, d: usize) {
        let states = &sc.states[..n * d];
        self.key.apply_rows(states, sized(&mut sc.keys, n * d));
        self.value.apply_rows(states, sized(&mut sc.values, n * d));
        let keys_t = sized(&mut sc.keys_t, d * n);
        for (j, row) in sc.keys.chunks_exact(d).take(n).enumerate() {
            for (f, &k) in row.iter().enumerate() {
                keys_t[f * n + j] = k;
            }
        }
    }

    /// Adds to the `count` rows of `out` (d floats apart) the causal attention of the scaled
    /// queries `queries` (d floats apart) at positions `first..first + count`, each over the
    /// keys and values of positions 0 to its own, head by head.
    #[inline(always)]
    fn attend(
        sc: &mut Scratch,
        queries: &[f32],
        first: usize,
        count: usize,
        n: usize,
        heads: usize,
        out: &mut [f32],
    ) {
        let d = sc.values.len() / n.max(1);
        let dh = d / heads.max(1);
        let keys = first + count;
        let scores = sized(&mut sc.scores, count * keys);
        for h in 0..heads {
            // a[i, j] = Q_i . K_j over the head's features (Q pre-scaled by 1/sqrt(dh)).
            scores.fill(0.0);
            Product {
                k: dh,
                width: keys,
                x: Rows {
                    data: &queries[h * dh..],
                    stride: d,
                },
                m: Rows {
                    data: &sc.keys_t[h * dh * n..],
                    stride: n,
                },
            }
            .add_to(count, scores, keys);
            // Softmax over the allowed keys j <= i; the later ones get weight 0.
            for (r, row) in scores.chunks_exact_mut(keys).enumerate() {
                let (allowed, later) = row.split_at_mut(first + r + 1);
                let max = allowed.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                let mut total = 0.0;
                for a in allowed.iter_mut() {
                    *a = (*a - max).exp();
                    total += *a;
                }
                let inv = 1.0 / total;
                allowed.iter_mut().for_each(|a| *a *= inv);
                later.fill(0.0);
            }
            // out_i += sum_j p_ij V_j over the head's features.
            Product {
                k: keys,
                width: dh,
                x: Rows {
                    data: scores,
                    stride: keys,
                },
                m: Rows {
                    data: &sc.values[h * dh..],
                    stride: d,
                },
            }
            .add_to(count, &mut out[h * dh..], d);
        }
    }

    /// The feed-forward of each row of `rows` in place: `f + W2 relu(W1 f + b1) + b2`,
    /// f = LN_ff(row).
    #[inline(always)]
    fn feed_forward(&self, rows: &mut [f32], ff_in: &mut Vec<f32>, ff_hidden: &mut Vec<f32>) {
        let len = rows.len();
        let f = sized(ff_in, len);
        self.feed_forward_norm.apply_rows(rows, f);
        let hidden = sized(ff_hidden, len);
        self.ff1.apply_rows(f, hidden);
        hidden.iter_mut().for_each(|x| *x = x.max(0.0));
        self.ff2.apply_rows(hidden, rows);
        for (r, x) in rows.iter_mut().zip(f.iter()) {
            *r += x;
        }
    }

    /// The block on all n states (real positions, oldest first), in place.
    #[inline(always)]
    fn forward_all(&self, sc: &mut Scratch, n: usize, d: usize, heads: usize) {
        let scale = 1.0 / ((d / heads) as f32).sqrt();
        self.keys_values(sc, n, d);
        let normed = sized(&mut sc.normed, n * d);
        self.attention_norm.apply_rows(&sc.states[..n * d], normed);
        let queries = sized(&mut sc.queries, n * d);
        self.query.apply_rows(normed, queries);
        queries.iter_mut().for_each(|x| *x *= scale);
        // s_i = q_i + attention of Q_i over keys 0..=i: accumulated into `normed` in place.
        let mut normed = std::mem::take(&mut sc.normed);
        let queries = std::mem::take(&mut sc.queries);
        for first in (0..n).step_by(QUERY_ROWS) {
            let count = QUERY_ROWS.min(n - first);
            let rows = &mut normed[first * d..(first + count) * d];
            Self::attend(sc, &queries[first * d..], first, count, n, heads, rows);
        }
        sc.queries = queries;
        self.feed_forward(&mut normed[..n * d], &mut sc.ff_in, &mut sc.ff_hidden);
        std::mem::swap(&mut sc.states, &mut normed);
        sc.normed = normed;
    }

    /// The block's output at the last of the n states only (its attention reads every state's
    /// K and V), into `out` (d floats).
    #[inline(always)]
    fn forward_last(&self, sc: &mut Scratch, n: usize, d: usize, heads: usize, out: &mut [f32]) {
        let scale = 1.0 / ((d / heads) as f32).sqrt();
        self.keys_values(sc, n, d);
        self.attention_norm
            .apply(&sc.states[(n - 1) * d..n * d], out);
        let mut query = std::mem::take(&mut sc.queries);
        let q = sized(&mut query, d);
        self.query.apply_rows(out, q);
        q.iter_mut().for_each(|x| *x *= scale);
        Self::attend(sc, q, n - 1, 1, n, heads, out);
        sc.queries = query;
        self.feed_forward(out, &mut sc.ff_in, &mut sc.ff_hidden);
    }
}

/// SASRec's positions, blocks and final norm (the item table is shared, in [`Embeddings`]).
#[derive(Debug)]
pub(super) struct SasRecLayers {
    /// Attention heads h (d is a multiple).
    heads: usize,
    /// Run the AVX2 build of the forward pass (the kernel is a SIMD one).
    simd: bool,
    /// Learned positions, `[L, d]`.
    positions: Vec<f32>,
    /// The self-attention blocks, in order.
    blocks: Vec<Block>,
    /// The last layer norm, giving the query vector.
    final_norm: LayerNorm,
}

impl SasRecLayers {
    /// Takes the layers' tensors out of the artifact (positions, blocks in order, final norm);
    /// the forward pass uses SIMD when `kernel` does.
    pub(super) fn take(
        artifact: &mut Artifact,
        config: &ModelConfig,
        kernel: Kernel,
    ) -> Result<Self, ModelError> {
        let u = |x: i64| x.max(0) as usize;
        let (d, l, heads) = (
            u(config.dim),
            u(config.sequence_length),
            u(config.num_heads),
        );
        if d == 0 || heads == 0 || d % heads != 0 {
            return Err(ModelError::Config(format!(
                "SASRec needs dim ({d}) a positive multiple of the heads ({heads})"
            )));
        }
        let positions = take(artifact, "position_embeddings.weight", l * d)?;
        let blocks = (0..u(config.num_blocks))
            .map(|b| Block::take(artifact, b, d))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SasRecLayers {
            heads,
            simd: kernel != Kernel::Scalar,
            positions,
            blocks,
            final_norm: LayerNorm::take(artifact, "final_norm", d)?,
        })
    }

    /// Writes SASRec's query vector LN_final(s_{L-1}) of the last `l` of `inputs` (left-padded
    /// when fewer are given; ids out of range count as padding) into `out` (d floats).
    pub(super) fn forward(
        &self,
        embeddings: &Embeddings,
        l: usize,
        inputs: &[u32],
        out: &mut [f32],
    ) {
        let reused = SCRATCH.try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut sc) => {
                self.forward_on(&mut sc, embeddings, l, inputs, out);
                true
            }
            Err(_) => false,
        });
        // Fresh buffers when this thread's are unavailable (being torn down, or in use).
        if !matches!(reused, Ok(true)) {
            self.forward_on(&mut Scratch::default(), embeddings, l, inputs, out);
        }
    }

    /// [`SasRecLayers::forward`] on the given buffers, compiled for AVX2 when the kernel is a
    /// SIMD one and the CPU has it (same operations in the same order: the same answer).
    fn forward_on(
        &self,
        sc: &mut Scratch,
        embeddings: &Embeddings,
        l: usize,
        inputs: &[u32],
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.simd && std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above), the only precondition of
            // a `target_feature` function; the body is safe code.
            unsafe { self.forward_avx2(sc, embeddings, l, inputs, out) };
            return;
        }
        self.forward_with(sc, embeddings, l, inputs, out);
    }

    /// [`SasRecLayers::forward_with`] with 256-bit vectors for the contiguous loops.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn forward_avx2(
        &self,
        sc: &mut Scratch,
        embeddings: &Embeddings,
        l: usize,
        inputs: &[u32],
        out: &mut [f32],
    ) {
        self.forward_with(sc, embeddings, l, inputs, out);
    }

    /// [`SasRecLayers::forward`] on the given buffers.
    #[inline(always)]
    fn forward_with(
        &self,
        sc: &mut Scratch,
        embeddings: &Embeddings,
        l: usize,
        inputs: &[u32],
        out: &mut [f32],
    ) {
        let d = embeddings.dim;
        let given = &inputs[inputs.len().saturating_sub(l)..];
        let offset = l - given.len();
        let sqrt_d = (d as f32).sqrt();
        // s_t = E[x_t] sqrt(d) + P[t] for the real positions only, oldest first.
        sc.states.clear();
        let mut last_real = None;
        for (k, &id) in given.iter().enumerate() {
            if let Some(e) = embeddings.real_item(id) {
                let t = offset + k;
                let p = &self.positions[t * d..(t + 1) * d];
                sc.states
                    .extend(e.iter().zip(p).map(|(e, p)| e * sqrt_d + p));
                last_real = Some(t);
            }
        }
        // A padding last position is zeroed by every block (and by the embedding layer).
        if l == 0 || last_real != Some(l - 1) {
            out.copy_from_slice(&self.final_norm.bias);
            return;
        }
        let n = sc.states.len() / d;
        let (body, tail) = self.blocks.split_at(self.blocks.len().saturating_sub(1));
        for block in body {
            block.forward_all(sc, n, d, self.heads);
        }
        let mut row = std::mem::take(&mut sc.row);
        let last = sized(&mut row, d);
        match tail.first() {
            Some(block) => block.forward_last(sc, n, d, self.heads, last),
            None => last.copy_from_slice(&sc.states[(n - 1) * d..n * d]),
        }
        self.final_norm.apply(last, out);
        sc.row = row;
    }
}
