//! The student's inference in pure Rust, for both model kinds of the artifact. A query (a user
//! and the last L input ids) becomes a query vector (Caser forward, or the MF user vector),
//! then every item is scored as `table[i] . query + bias[i]` by the SIMD kernel over
//! cache-sized blocks of items, in parallel on the current rayon pool, several queries per
//! pass, with a bounded top-k per block merged at the end. By default ([`Scan::Int8`]) the
//! pass reads an int8 copy of the table with per-row error bounds and only the candidates it
//! cannot rule out are rescored in f32 (see [`crate::quant`]); the answer is the same exact
//! top k as the f32 scan ([`Scan::F32`]).

use rankdistill_core::artifact::{Activation, Artifact, ModelConfig, ModelKind};
use rankdistill_core::instances::PAD;
use rankdistill_core::topk::{ranking_order, top_k};
use rayon::prelude::*;

use crate::kernel::{Kernel, padded_dim};
use crate::quant::{Candidates, QuantQuery, QuantTable};

/// How `top_k_batch` scans the item table. Both answer the exact f32 top k.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scan {
    /// An int8 first pass with per-row error bounds (about 3x fewer bytes per item), then the
    /// candidates it cannot rule out rescored exactly in f32 (see [`crate::quant`]).
    #[default]
    Int8,
    /// Every item scored in f32.
    F32,
}

impl Scan {
    /// Short name, as logs and `Info` show it.
    pub fn name(self) -> &'static str {
        match self {
            Scan::Int8 => "int8-rescore",
            Scan::F32 => "f32",
        }
    }
}

/// Items per scoring block: a block of rows (at 2d = 100 floats, ~0.8 MB) stays in L2 while
/// every query of a batch is scored against it.
pub const BLOCK_ITEMS: usize = 2048;

/// Why an artifact cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor is missing or mis-shaped (the loader should have refused it).
    #[error("tensor '{0}' is missing or mis-shaped")]
    Tensor(String),
    /// Weights that are NaN or infinite.
    #[error("tensor '{0}' holds NaN or infinite values")]
    NotFinite(String),
}

/// One query in dense form.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryInput {
    /// Dense user index; `None` for a user the model does not know (the user part of the
    /// query is then zero for Caser, and the mean of the input items' embeddings for MF).
    pub user: Option<u32>,
    /// L input ids, oldest first, left-padded (0 = padding, dense item i = i + 1).
    pub inputs: Vec<u32>,
}

#[derive(Debug)]
struct CaserLayers {
    nv: usize,
    nh: usize,
    /// [nv, L]
    conv_v_weight: Vec<f32>,
    conv_v_bias: Vec<f32>,
    /// Per height h = 1..=L: weights [nh, h, d] and biases [nh].
    conv_h: Vec<(Vec<f32>, Vec<f32>)>,
    /// [d, nv d + nh L]
    fc1_weight: Vec<f32>,
    fc1_bias: Vec<f32>,
    conv_activation: Activation,
    fc_activation: Activation,
}

/// A loaded student, ready to score.
#[derive(Debug)]
pub struct StudentModel {
    /// Shape and hyper-parameters from the manifest.
    pub config: ModelConfig,
    dim: usize,
    sequence_length: usize,
    user_embeddings: Vec<f32>,
    item_embeddings: Vec<f32>,
    caser: Option<CaserLayers>,
    /// Scoring table without the padding row, `num_items x stride`, zero-padded columns.
    table: Vec<f32>,
    bias: Vec<f32>,
    query_dim: usize,
    stride: usize,
    kernel: Kernel,
    scan: Scan,
    /// The int8 copy of `table` for [`Scan::Int8`] (empty for [`Scan::F32`]).
    quant: QuantTable,
}

fn take(artifact: &mut Artifact, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let (_, values) = artifact
        .weights
        .tensors
        .remove(name)
        .ok_or_else(|| ModelError::Tensor(name.to_string()))?;
    if values.len() != len {
        return Err(ModelError::Tensor(name.to_string()));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::NotFinite(name.to_string()));
    }
    Ok(values)
}

/// Copies rows 1.. of a `[rows, cols]` table into a `[rows - 1, stride]` zero-padded table.
fn padded_rows(values: &[f32], cols: usize, stride: usize) -> Vec<f32> {
    let rows = values.len() / cols;
    let mut out = vec![0.0; rows.saturating_sub(1) * stride];
    for (r, row) in values.chunks_exact(cols).skip(1).enumerate() {
        out[r * stride..r * stride + cols].copy_from_slice(row);
    }
    out
}

impl StudentModel {
    /// Builds the model from a validated artifact (consumes its weights).
    pub fn from_artifact(mut artifact: Artifact, kernel: Kernel) -> Result<Self, ModelError> {
        let config = artifact.manifest.model.clone();
        let u = |x: i64| x.max(0) as usize;
        let (d, l, users, items) = (
            u(config.dim),
            u(config.sequence_length),
            u(config.num_users),
            u(config.num_items),
        );
        let rows = items + 1;
        let user_embeddings = take(&mut artifact, "user_embeddings.weight", users * d)?;
        let item_embeddings = take(&mut artifact, "item_embeddings.weight", rows * d)?;
        let (caser, query_dim, table_values, bias_values) = match config.kind {
            ModelKind::Mf => {
                let bias = take(&mut artifact, "item_bias.weight", rows)?;
                (None, d, None, bias)
            }
            ModelKind::Caser => {
                let (nv, nh) = (u(config.nv), u(config.nh));
                let (conv_v_weight, conv_v_bias) = if nv > 0 {
                    (
                        take(&mut artifact, "conv_v.weight", nv * l)?,
                        take(&mut artifact, "conv_v.bias", nv)?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                };
                let mut conv_h = Vec::new();
                if nh > 0 {
                    for h in 1..=l {
                        conv_h.push((
                            take(
                                &mut artifact,
                                &format!("conv_h.{}.weight", h - 1),
                                nh * h * d,
                            )?,
                            take(&mut artifact, &format!("conv_h.{}.bias", h - 1), nh)?,
                        ));
                    }
                }
                let fc_in = nv * d + nh * l;
                let layers = CaserLayers {
                    nv,
                    nh,
                    conv_v_weight,
                    conv_v_bias,
                    conv_h,
                    fc1_weight: take(&mut artifact, "fc1.weight", d * fc_in)?,
                    fc1_bias: take(&mut artifact, "fc1.bias", d)?,
                    conv_activation: config.conv_activation,
                    fc_activation: config.fc_activation,
                };
                let w2 = take(&mut artifact, "W2.weight", rows * 2 * d)?;
                let b2 = take(&mut artifact, "b2.weight", rows)?;
                (Some(layers), 2 * d, Some(w2), b2)
            }
        };
        let stride = padded_dim(query_dim);
        let table = match &table_values {
            Some(w2) => padded_rows(w2, query_dim, stride),
            None => padded_rows(&item_embeddings, d, stride),
        };
        let bias = bias_values[1..].to_vec();
        let quant = QuantTable::build(&table, stride, query_dim, &bias);
        Ok(StudentModel {
            config,
            dim: d,
            sequence_length: l,
            user_embeddings,
            item_embeddings,
            caser,
            table,
            bias,
            query_dim,
            stride,
            kernel,
            scan: Scan::default(),
            quant,
        })
    }

    /// Number of rankable items.
    pub fn num_items(&self) -> usize {
        self.bias.len()
    }

    /// Number of known users.
    pub fn num_users(&self) -> usize {
        self.user_embeddings.len() / self.dim.max(1)
    }

    /// Input length L.
    pub fn sequence_length(&self) -> usize {
        self.sequence_length
    }

    /// The kernel that scores.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The scan `top_k_batch` uses.
    pub fn scan(&self) -> Scan {
        self.scan
    }

    /// Selects the scan (the default is [`Scan::Int8`]); F32 drops the int8 copy.
    pub fn with_scan(mut self, scan: Scan) -> Self {
        self.scan = scan;
        if scan == Scan::F32 {
            self.quant = QuantTable::default();
        } else if self.quant.rows() != self.num_items() {
            self.quant = QuantTable::build(&self.table, self.stride, self.query_dim, &self.bias);
        }
        self
    }

    /// Per-item bias (b2 for Caser, item_bias for MF): the popularity fallback's order when
    /// no dataset is given.
    pub fn item_bias(&self) -> &[f32] {
        &self.bias
    }

    /// Bytes of the scoring table and bias (what one full f32 scan reads).
    pub fn table_bytes(&self) -> usize {
        (self.table.len() + self.bias.len()) * std::mem::size_of::<f32>()
    }

    /// Bytes the first pass of the int8 scan reads (codes, row constants, bias); 0 for F32.
    pub fn quant_bytes(&self) -> usize {
        if self.quant.rows() == 0 {
            return 0;
        }
        self.quant.bytes() + self.bias.len() * std::mem::size_of::<f32>()
    }

    /// Length of a query vector before padding (2d for Caser, d for MF).
    pub fn query_dim(&self) -> usize {
        self.query_dim
    }

    /// Row stride of the scoring table and query vectors (floats).
    pub fn stride(&self) -> usize {
        self.stride
    }

    fn item_row(&self, input_id: u32) -> &[f32] {
        let d = self.dim;
        let i = input_id as usize;
        self.item_embeddings
            .get(i * d..(i + 1) * d)
            .unwrap_or(&self.item_embeddings[0..d])
    }

    fn user_row(&self, user: Option<u32>) -> Option<&[f32]> {
        let d = self.dim;
        user.and_then(|u| {
            self.user_embeddings
                .get(u as usize * d..(u as usize + 1) * d)
        })
    }

    /// Writes the query vector of `query` into `out` (`stride` floats; padding stays zero).
    /// Input ids and users out of range are treated as padding and unknown.
    pub fn query_vector(&self, query: &QueryInput, out: &mut [f32]) {
        out.fill(0.0);
        let d = self.dim;
        match &self.caser {
            None => match self.user_row(query.user) {
                Some(user) => out[..d].copy_from_slice(user),
                None => {
                    // Fold-in for an unknown user: the mean of the input items' embeddings.
                    let real: Vec<u32> =
                        query.inputs.iter().copied().filter(|&i| i != PAD).collect();
                    for &i in &real {
                        for (o, v) in out[..d].iter_mut().zip(self.item_row(i)) {
                            *o += v;
                        }
                    }
                    if !real.is_empty() {
                        let n = real.len() as f32;
                        out[..d].iter_mut().for_each(|o| *o /= n);
                    }
                }
            },
            Some(caser) => {
                let z = self.caser_z(caser, &query.inputs);
                out[..d].copy_from_slice(&z);
                if let Some(user) = self.user_row(query.user) {
                    out[d..2 * d].copy_from_slice(user);
                }
            }
        }
    }

    /// Caser's sequence representation z (length d), as `teacher-svc/src/model.rs` computes it
    /// at inference (dropout off).
    fn caser_z(&self, c: &CaserLayers, inputs: &[u32]) -> Vec<f32> {
        let (d, l) = (self.dim, self.sequence_length);
        // E: L x d, the last L input ids (left-padded when fewer are given).
        let mut e = vec![0.0f32; l * d];
        let start = inputs.len().saturating_sub(l);
        let given = &inputs[start..];
        let offset = l - given.len();
        for (t, &id) in given.iter().enumerate() {
            e[(offset + t) * d..(offset + t + 1) * d].copy_from_slice(self.item_row(id));
        }
        for t in 0..offset {
            e[t * d..(t + 1) * d].copy_from_slice(self.item_row(PAD));
        }
        let mut x = Vec::with_capacity(c.nv * d + c.nh * l);
        // Vertical: out_v[f, j] = sum_t W[f, t] E[t, j] + b[f], f-major.
        for f in 0..c.nv {
            let w = &c.conv_v_weight[f * l..(f + 1) * l];
            for j in 0..d {
                let mut s = c.conv_v_bias[f];
                for t in 0..l {
                    s += w[t] * e[t * d + j];
                }
                x.push(s);
            }
        }
        // Horizontal: per height h, nh filters over windows, activation, max over time.
        for (hi, (w, b)) in c.conv_h.iter().enumerate() {
            let h = hi + 1;
            for f in 0..c.nh {
                let wf = &w[f * h * d..(f + 1) * h * d];
                let mut best = f32::NEG_INFINITY;
                for t in 0..=(l - h) {
                    let window = &e[t * d..(t + h) * d];
                    let s: f32 = wf.iter().zip(window).map(|(a, b)| a * b).sum::<f32>() + b[f];
                    let s = c.conv_activation.apply_scalar(s);
                    if s > best || best.is_nan() {
                        best = s;
                    }
                }
                x.push(best);
            }
        }
        let fc_in = x.len();
        (0..d)
            .map(|o| {
                let row = &c.fc1_weight[o * fc_in..(o + 1) * fc_in];
                let s: f32 = row.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>() + c.fc1_bias[o];
                c.fc_activation.apply_scalar(s)
            })
            .collect()
    }

    /// Scores every item for each query: `[nq][num_items]`. For tests and parity checks; serving
    /// uses [`StudentModel::top_k_batch`], which never materialises all scores.
    pub fn score_all(&self, queries: &[QueryInput]) -> Vec<Vec<f32>> {
        let q = self.query_block(queries);
        let n = self.num_items();
        let mut out = vec![0.0; queries.len() * n];
        self.kernel
            .score_block(&self.table, &self.bias, self.stride, &q, &mut out);
        out.chunks_exact(n.max(1)).map(<[f32]>::to_vec).collect()
    }

    fn query_block(&self, queries: &[QueryInput]) -> Vec<f32> {
        let mut q = vec![0.0; queries.len() * self.stride];
        for (query, out) in queries.iter().zip(q.chunks_exact_mut(self.stride)) {
            self.query_vector(query, out);
        }
        q
    }

    /// The top k (dense item, score) of each query, best first (ties to the smaller item),
    /// skipping each query's `excludes` (sorted dense items). Blocks of items are scored in
    /// parallel on the current rayon pool; all queries share each pass over a block.
    pub fn top_k_batch(
        &self,
        queries: &[QueryInput],
        k: usize,
        excludes: &[Vec<u32>],
    ) -> Vec<Vec<(u32, f32)>> {
        let nq = queries.len();
        let n = self.num_items();
        if nq == 0 || k == 0 || n == 0 {
            return vec![Vec::new(); nq];
        }
        let q = self.query_block(queries);
        if self.scan == Scan::Int8
            && self.quant.rows() == n
            && let Some(ranked) = self.top_k_int8(&q, k, excludes)
        {
            return ranked;
        }
        let stride = self.stride;
        let blocks = n.div_ceil(BLOCK_ITEMS);
        let per_block = |b: usize| -> Vec<Vec<(u32, f32)>> {
            let start = b * BLOCK_ITEMS;
            let end = (start + BLOCK_ITEMS).min(n);
            let len = end - start;
            let mut scores = vec![0.0f32; nq * len];
            self.kernel.score_block(
                &self.table[start * stride..end * stride],
                &self.bias[start..end],
                stride,
                &q,
                &mut scores,
            );
            (0..nq)
                .map(|qi| {
                    let excl = excludes.get(qi).map(Vec::as_slice).unwrap_or(&[]);
                    top_k(&scores[qi * len..(qi + 1) * len], k, |i| {
                        excl.binary_search(&(start as u32 + i)).is_ok()
                    })
                    .into_iter()
                    .map(|(i, s)| (start as u32 + i, s))
                    .collect()
                })
                .collect()
        };
        let merge = |mut a: Vec<Vec<(u32, f32)>>, b: Vec<Vec<(u32, f32)>>| {
            for (x, y) in a.iter_mut().zip(b) {
                x.extend(y);
                x.sort_unstable_by(|p, q| ranking_order(*p, *q));
                x.truncate(k);
            }
            a
        };
        (0..blocks)
            .into_par_iter()
            .map(per_block)
            .reduce(|| vec![Vec::new(); nq], merge)
    }

    /// The int8 scan with exact rescoring (see [`crate::quant`]): `None` when a query vector
    /// is not finite (the f32 scan then answers).
    fn top_k_int8(
        &self,
        q: &[f32],
        k: usize,
        excludes: &[Vec<u32>],
    ) -> Option<Vec<Vec<(u32, f32)>>> {
        let n = self.num_items();
        let stride = self.stride;
        let nq = q.len() / stride;
        let qstride = self.quant.stride;
        let mut qcodes = vec![0i8; nq * qstride];
        let qq: Vec<QuantQuery> = q
            .chunks_exact(stride)
            .zip(qcodes.chunks_exact_mut(qstride))
            .map(|(qv, codes)| QuantQuery::new(qv, self.query_dim, codes))
            .collect::<Option<_>>()?;
        let blocks = n.div_ceil(BLOCK_ITEMS);
        // Each rayon task carries its queries' candidate states across the blocks it takes,
        // so the thresholds rise once and stay up; the tasks' states are merged at the end.
        let fresh = || -> Vec<Candidates> { (0..nq).map(|_| Candidates::new(k)).collect() };
        let scan_block = |mut state: Vec<Candidates>, b: usize| -> Vec<Candidates> {
            let start = b * BLOCK_ITEMS;
            let end = (start + BLOCK_ITEMS).min(n);
            let len = end - start;
            let mut dots = vec![0i32; nq * len];
            self.kernel.dot_i8_block(
                &self.quant.codes[start * qstride..end * qstride],
                qstride,
                &qcodes,
                &mut dots,
            );
            for (qi, cands) in state.iter_mut().enumerate() {
                let excl = excludes.get(qi).map(Vec::as_slice).unwrap_or(&[]);
                cands.scan(
                    &qq[qi],
                    &self.quant,
                    start,
                    &dots[qi * len..(qi + 1) * len],
                    &self.bias[start..end],
                    excl,
                );
            }
            state
        };
        let merge = |a: Vec<Candidates>, b: Vec<Candidates>| -> Vec<Candidates> {
            a.into_iter().zip(b).map(|(x, y)| x.merge(y)).collect()
        };
        let states = (0..blocks)
            .into_par_iter()
            .fold(fresh, scan_block)
            .reduce(fresh, merge);
        Some(
            states
                .into_iter()
                .enumerate()
                .map(|(qi, cands)| {
                    let candidates = cands.finish();
                    let query = &q[qi * stride..(qi + 1) * stride];
                    let scores: Vec<f32> = candidates
                        .iter()
                        .map(|&(item, _)| {
                            let i = item as usize;
                            let mut out = [0f32];
                            self.kernel.score_block(
                                &self.table[i * stride..(i + 1) * stride],
                                &self.bias[i..i + 1],
                                stride,
                                query,
                                &mut out,
                            );
                            out[0]
                        })
                        .collect();
                    top_k(&scores, k, |_| false)
                        .into_iter()
                        .map(|(c, s)| (candidates[c as usize].0, s))
                        .collect()
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::artifact::{ArtifactManifest, DataRef, Weights};
    use std::collections::HashMap;

    /// A small artifact with deterministic pseudo-random weights.
    pub(crate) fn artifact(config: ModelConfig) -> Artifact {
        artifact_seeded(config, 12345)
    }

    /// [`artifact`] with another seed.
    fn artifact_seeded(config: ModelConfig, seed: u64) -> Artifact {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        };
        let tensors: HashMap<String, (Vec<usize>, Vec<f32>)> = config
            .expected_tensors()
            .into_iter()
            .map(|(name, shape)| {
                let len = shape.iter().product();
                let values = (0..len).map(|_| next()).collect();
                (name, (shape, values))
            })
            .collect();
        Artifact {
            manifest: ArtifactManifest::new(
                config,
                DataRef {
                    path: "d".into(),
                    fingerprint: "fp".into(),
                },
            ),
            weights: Weights { tensors },
        }
    }

    /// Caser written as directly from the description as possible, in f64.
    fn reference_caser(a: &Artifact, user: usize, inputs: &[u32]) -> Vec<f64> {
        let c = &a.manifest.model;
        let t = |n: &str| &a.weights.tensors[n].1;
        let (d, l, nv, nh) = (
            c.dim as usize,
            c.sequence_length as usize,
            c.nv as usize,
            c.nh as usize,
        );
        let emb = t("item_embeddings.weight");
        let e = |s: usize, j: usize| emb[inputs[s] as usize * d + j] as f64;
        let mut x = Vec::new();
        for f in 0..nv {
            for j in 0..d {
                let mut s = t("conv_v.bias")[f] as f64;
                for s_ in 0..l {
                    s += t("conv_v.weight")[f * l + s_] as f64 * e(s_, j);
                }
                x.push(s);
            }
        }
        for h in 1..=l {
            let w = t(&format!("conv_h.{}.weight", h - 1));
            let b = t(&format!("conv_h.{}.bias", h - 1));
            for f in 0..nh {
                let mut best = f64::NEG_INFINITY;
                for s_ in 0..=(l - h) {
                    let mut s = b[f] as f64;
                    for a_ in 0..h {
                        for j in 0..d {
                            s += w[((f * h) + a_) * d + j] as f64 * e(s_ + a_, j);
                        }
                    }
                    let s = c.conv_activation.apply_scalar(s as f32) as f64;
                    best = best.max(s);
                }
                x.push(best);
            }
        }
        let fc = t("fc1.weight");
        let mut q: Vec<f64> = (0..d)
            .map(|o| {
                let s: f64 = (0..x.len())
                    .map(|i| fc[o * x.len() + i] as f64 * x[i])
                    .sum::<f64>()
                    + t("fc1.bias")[o] as f64;
                c.fc_activation.apply_scalar(s as f32) as f64
            })
            .collect();
        q.extend((0..d).map(|j| t("user_embeddings.weight")[user * d + j] as f64));
        let (w2, b2) = (t("W2.weight"), t("b2.weight"));
        (1..=c.num_items as usize)
            .map(|i| {
                (0..2 * d)
                    .map(|j| w2[i * 2 * d + j] as f64 * q[j])
                    .sum::<f64>()
                    + b2[i] as f64
            })
            .collect()
    }

    #[test]
    fn caser_matches_a_direct_f64_reference() {
        let mut config = ModelConfig::caser(6, 3, 40);
        config.sequence_length = 4;
        config.nv = 3;
        config.nh = 5;
        config.conv_activation = Activation::Relu;
        let a = artifact(config);
        let reference = a.clone();
        let model = StudentModel::from_artifact(a, Kernel::detect()).unwrap();
        for (user, inputs) in [
            (0usize, vec![0, 0, 3, 7]),
            (2, vec![1, 2, 3, 4]),
            (1, vec![0, 0, 0, 0]),
        ] {
            let want = reference_caser(&reference, user, &inputs);
            let got = model.score_all(&[QueryInput {
                user: Some(user as u32),
                inputs: inputs.clone(),
            }]);
            for (g, w) in got[0].iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-5, "{g} vs {w}");
            }
        }
    }

    #[test]
    fn mf_scores_are_user_dot_item_plus_bias() {
        let a = artifact(ModelConfig::mf(5, 4, 30));
        let t = a.weights.tensors.clone();
        let model = StudentModel::from_artifact(a, Kernel::detect()).unwrap();
        let scores = model.score_all(&[QueryInput {
            user: Some(3),
            inputs: vec![],
        }]);
        let (p, q, b) = (
            &t["user_embeddings.weight"].1,
            &t["item_embeddings.weight"].1,
            &t["item_bias.weight"].1,
        );
        for i in 0..30 {
            let want: f32 = (0..5).map(|j| p[15 + j] * q[(i + 1) * 5 + j]).sum::<f32>() + b[i + 1];
            assert!((scores[0][i] - want).abs() < 1e-6);
        }
    }

    #[test]
    fn top_k_batch_equals_top_k_of_all_scores_across_blocks_and_kernels() {
        let a = artifact(ModelConfig::caser(8, 5, 5000));
        let model = StudentModel::from_artifact(a, Kernel::detect()).unwrap();
        let queries: Vec<QueryInput> = (0..6)
            .map(|u| QueryInput {
                user: Some(u % 5),
                inputs: vec![0, 1, 2 + u, 3, 4 + 2 * u, 9],
            })
            .collect();
        let excludes: Vec<Vec<u32>> = (0..6).map(|u| vec![u, 100, 4999]).collect();
        let all = model.score_all(&queries);
        let got = model.top_k_batch(&queries, 25, &excludes);
        for qi in 0..6 {
            let want = top_k(&all[qi], 25, |i| excludes[qi].binary_search(&i).is_ok());
            assert_eq!(got[qi], want);
        }
        let scalar =
            StudentModel::from_artifact(artifact(ModelConfig::caser(8, 5, 5000)), Kernel::Scalar)
                .unwrap();
        let s = scalar.top_k_batch(&queries, 25, &excludes);
        for (a, b) in s.iter().zip(&got) {
            for (x, y) in a.iter().zip(b) {
                assert!((x.1 - y.1).abs() < 1e-5);
            }
        }
        assert!(model.top_k_batch(&queries, 0, &excludes)[0].is_empty());
    }

    fn random_queries(model: &StudentModel, n: u32, seed: u32) -> Vec<QueryInput> {
        let items = model.num_items() as u32;
        let users = model.num_users().max(1) as u32;
        let l = model.sequence_length().max(1) as u32;
        (0..n)
            .map(|u| {
                let h = |x: u32| x.wrapping_mul(2654435761).wrapping_add(seed) % (items + 1);
                QueryInput {
                    user: if u % 5 == 4 {
                        None
                    } else {
                        Some((u + seed) % users)
                    },
                    inputs: (0..l).map(|t| h(u * 31 + t * 7 + seed)).collect(),
                }
            })
            .collect()
    }

    /// The int8 scan with rescoring returns exactly the f32 scan's top k: same items, same
    /// scores, same order, for both kernels, any k, with exclusions and duplicate rows (ties).
    #[test]
    fn int8_scan_equals_the_exact_f32_scan() {
        for (config, nq) in [
            (ModelConfig::caser(8, 5, 5000), 6u32),
            (ModelConfig::caser(50, 7, 3000), 1),
            (ModelConfig::mf(12, 9, 4500), 9),
            (ModelConfig::mf(3, 4, 40), 3),
        ] {
            let mut a = artifact(config.clone());
            // Duplicate rows: exact ties that must break to the smaller item in both scans.
            for name in ["W2.weight", "item_embeddings.weight"] {
                if config.kind == ModelKind::Caser && name == "item_embeddings.weight" {
                    continue;
                }
                if let Some((shape, v)) = a.weights.tensors.get_mut(name) {
                    let w = shape[1];
                    let row7: Vec<f32> = v[7 * w..8 * w].to_vec();
                    v[20 * w..21 * w].copy_from_slice(&row7);
                    v[21 * w..22 * w].copy_from_slice(&row7);
                }
            }
            for name in ["b2.weight", "item_bias.weight"] {
                if let Some((_, v)) = a.weights.tensors.get_mut(name) {
                    v[20] = v[7];
                    v[21] = v[7];
                }
            }
            for kernel in Kernel::supported() {
                let int8 = StudentModel::from_artifact(a.clone(), kernel).unwrap();
                assert_eq!(int8.scan(), Scan::Int8);
                let f32_scan = StudentModel::from_artifact(a.clone(), kernel)
                    .unwrap()
                    .with_scan(Scan::F32);
                let queries = random_queries(&int8, nq, 17);
                let excludes: Vec<Vec<u32>> = (0..nq).map(|u| vec![u, 6, 19 + u % 3]).collect();
                for k in [1usize, 3, 10, 25, 100, 100_000] {
                    let got = int8.top_k_batch(&queries, k, &excludes);
                    let want = f32_scan.top_k_batch(&queries, k, &excludes);
                    assert_eq!(got, want, "{:?} k={k} {}", config.kind, kernel.name());
                    let all = int8.score_all(&queries);
                    for (qi, g) in got.iter().enumerate() {
                        let w = top_k(&all[qi], k, |i| excludes[qi].binary_search(&i).is_ok());
                        assert_eq!(*g, w);
                    }
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Approximate + rescore == exact on random tables and queries, any k, with
        /// exclusions, both kernels.
        #[test]
        fn int8_scan_is_exact_on_random_models(
            seed in 0u64..u64::MAX,
            caser in proptest::bool::ANY,
            dim in 1i64..40,
            items in 1i64..3000,
            k in 1usize..40,
            nq in 1u32..6,
        ) {
            let config = if caser {
                ModelConfig::caser(dim, 7, items)
            } else {
                ModelConfig::mf(dim, 7, items)
            };
            let a = artifact_seeded(config, seed | 1);
            for kernel in Kernel::supported() {
                let int8 = StudentModel::from_artifact(a.clone(), kernel).unwrap();
                let exact = StudentModel::from_artifact(a.clone(), kernel)
                    .unwrap()
                    .with_scan(Scan::F32);
                let queries = random_queries(&int8, nq, seed as u32);
                let excludes: Vec<Vec<u32>> = (0..nq)
                    .map(|u| (0..items as u32).filter(|i| (i * 7 + u) % 11 == 0).collect())
                    .collect();
                proptest::prop_assert_eq!(
                    int8.top_k_batch(&queries, k, &excludes),
                    exact.top_k_batch(&queries, k, &excludes)
                );
            }
        }
    }

    #[test]
    fn int8_scan_reads_fewer_bytes() {
        let model =
            StudentModel::from_artifact(artifact(ModelConfig::caser(50, 3, 1000)), Kernel::Scalar)
                .unwrap();
        assert!(model.quant_bytes() * 3 < model.table_bytes());
        assert_eq!(model.with_scan(Scan::F32).quant_bytes(), 0);
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let mut a = artifact(ModelConfig::mf(4, 2, 3));
        if let Some((_, v)) = a.weights.tensors.get_mut("item_bias.weight") {
            v[2] = f32::NAN;
        }
        let err = StudentModel::from_artifact(a, Kernel::Scalar).unwrap_err();
        assert!(err.to_string().contains("item_bias.weight"), "{err}");
    }
}
