//! End-to-end checks of [`StudentModel`]: Caser and SASRec against direct f64 references, MF,
//! and the int8 scan against the exact f32 scan.

use super::*;
use rankdistill_core::artifact::{Activation, ArtifactManifest, DataRef, Weights};
use rankdistill_core::instances::PAD;
use rankdistill_core::topk::top_k;
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

/// SASRec written as directly from the description as possible, in f64: the window of the
/// last L ids (left-padded), every one of the L positions through every block, no shortcuts;
/// returns the scores of every item.
fn reference_sasrec(a: &Artifact, inputs: &[u32]) -> Vec<f64> {
    let c = &a.manifest.model;
    let t = |n: &str| -> Vec<f64> { a.weights.tensors[n].1.iter().map(|&v| v as f64).collect() };
    let (d, l, h) = (
        c.dim as usize,
        c.sequence_length as usize,
        c.num_heads as usize,
    );
    let dh = d / h;
    let given = &inputs[inputs.len().saturating_sub(l)..];
    let mut x = vec![0u32; l - given.len()];
    x.extend_from_slice(given);
    let mask: Vec<f64> = x.iter().map(|&i| f64::from(u8::from(i != 0))).collect();
    let (e, p) = (t("item_embeddings.weight"), t("position_embeddings.weight"));
    let norm = |v: &[f64], prefix: &str| -> Vec<f64> {
        let (w, b) = (t(&format!("{prefix}.weight")), t(&format!("{prefix}.bias")));
        let mean = v.iter().sum::<f64>() / d as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d as f64;
        (0..d)
            .map(|k| (v[k] - mean) / (var + 1e-8).sqrt() * w[k] + b[k])
            .collect()
    };
    let linear = |v: &[f64], prefix: &str| -> Vec<f64> {
        let (w, b) = (t(&format!("{prefix}.weight")), t(&format!("{prefix}.bias")));
        (0..d)
            .map(|o| b[o] + (0..d).map(|i| w[o * d + i] * v[i]).sum::<f64>())
            .collect()
    };
    let mut s: Vec<Vec<f64>> = (0..l)
        .map(|i| {
            (0..d)
                .map(|k| (e[x[i] as usize * d + k] * (d as f64).sqrt() + p[i * d + k]) * mask[i])
                .collect()
        })
        .collect();
    for b in 0..c.num_blocks as usize {
        let name = |layer: &str| format!("blocks.{b}.{layer}");
        let q: Vec<Vec<f64>> = s.iter().map(|v| norm(v, &name("attention_norm"))).collect();
        let qs: Vec<Vec<f64>> = q.iter().map(|v| linear(v, &name("query"))).collect();
        let ks: Vec<Vec<f64>> = s.iter().map(|v| linear(v, &name("key"))).collect();
        let vs: Vec<Vec<f64>> = s.iter().map(|v| linear(v, &name("value"))).collect();
        s = (0..l)
            .map(|i| {
                let mut att = vec![0.0; d];
                for head in 0..h {
                    let features = head * dh..(head + 1) * dh;
                    let a: Vec<f64> = (0..l)
                        .map(|j| {
                            if j <= i && mask[j] != 0.0 {
                                features.clone().map(|k| qs[i][k] * ks[j][k]).sum::<f64>()
                                    / (dh as f64).sqrt()
                            } else {
                                -4294967295.0
                            }
                        })
                        .collect();
                    let max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = a.iter().map(|v| (v - max).exp()).sum();
                    for j in 0..l {
                        for k in features.clone() {
                            att[k] += (a[j] - max).exp() / z * vs[j][k];
                        }
                    }
                }
                let si: Vec<f64> = (0..d).map(|k| q[i][k] + att[k]).collect();
                let f = norm(&si, &name("feed_forward_norm"));
                let hidden: Vec<f64> = linear(&f, &name("ff1"))
                    .into_iter()
                    .map(|v| v.max(0.0))
                    .collect();
                let out = linear(&hidden, &name("ff2"));
                (0..d).map(|k| (f[k] + out[k]) * mask[i]).collect()
            })
            .collect();
    }
    let query = norm(&s[l - 1], "final_norm");
    (1..=c.num_items as usize)
        .map(|i| (0..d).map(|k| e[i * d + k] * query[k]).sum())
        .collect()
}

/// A SASRec config of a small shape.
fn sasrec(dim: i64, items: i64, l: i64, blocks: i64, heads: i64) -> ModelConfig {
    let mut config = ModelConfig::sasrec(dim, 4, items);
    config.sequence_length = l;
    config.num_blocks = blocks;
    config.num_heads = heads;
    config.validate().unwrap();
    config
}

/// Windows of every kind for a SASRec of input length `l` over `items` items.
fn sasrec_inputs(l: usize, items: u32) -> Vec<Vec<u32>> {
    let id = |t: usize| 1 + (t as u32 * 7919 + 13) % items;
    let full: Vec<u32> = (0..l).map(id).collect();
    let mut partly = full.clone();
    partly[..l / 2].fill(PAD);
    let mut single = vec![PAD; l];
    single[l - 1] = id(5);
    let mut holes = full.clone();
    for t in [1, l / 2] {
        if t + 1 < l {
            holes[t] = PAD;
        }
    }
    let mut last_padding = full.clone();
    last_padding[l - 1] = PAD;
    vec![
        full,
        partly,
        single,
        vec![PAD; l],
        (0..l + 3).map(|t| id(t + 100)).collect(),
        vec![id(3), id(4)],
        vec![id(9)],
        Vec::new(),
        holes,
        last_padding,
    ]
}

/// `got` within 1e-4 of `want`, relative or absolute.
fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (*g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
            "{what}: item {i}: {g} vs {w}"
        );
    }
}

#[test]
fn sasrec_matches_a_direct_f64_reference() {
    for (dim, l, blocks, heads) in [
        (8, 6, 1, 1),
        (8, 6, 2, 1),
        (8, 6, 1, 2),
        (8, 6, 2, 2),
        (6, 1, 2, 3),
        (12, 9, 3, 4),
        (50, 50, 2, 1),
        (50, 50, 2, 2),
    ] {
        let items = 60;
        let a = artifact(sasrec(dim, items, l, blocks, heads));
        let reference = a.clone();
        let mut first_kernel = None;
        for kernel in Kernel::supported() {
            let model = StudentModel::from_artifact(a.clone(), kernel).unwrap();
            assert_eq!(model.query_dim(), dim as usize);
            let mut vectors = Vec::new();
            for inputs in sasrec_inputs(l as usize, items as u32) {
                let want = reference_sasrec(&reference, &inputs);
                // The user is ignored: known, unknown and out of range all score the same.
                for user in [Some(0), None, Some(1_000_000)] {
                    let query = QueryInput {
                        user,
                        inputs: inputs.clone(),
                    };
                    let got = model.score_all(std::slice::from_ref(&query));
                    let what = format!("d={dim} L={l} blocks={blocks} heads={heads} {inputs:?}");
                    assert_close(&got[0], &want, &what);
                    let mut q = vec![0.0; model.stride()];
                    model.query_vector(&query, &mut q);
                    vectors.push(q);
                }
            }
            // The SIMD build of the forward pass runs the same operations in the same order.
            match &first_kernel {
                None => first_kernel = Some(vectors),
                Some(first) => assert_eq!(first, &vectors, "{}", kernel.name()),
            }
        }
    }
}

#[test]
fn sasrec_all_padding_scores_with_the_final_norm_bias() {
    let a = artifact(sasrec(8, 30, 5, 2, 2));
    let t = a.weights.tensors.clone();
    let model = StudentModel::from_artifact(a, Kernel::Scalar).unwrap();
    let mut q = vec![1.0; model.stride()];
    model.query_vector(
        &QueryInput {
            user: None,
            inputs: vec![PAD; 5],
        },
        &mut q,
    );
    assert_eq!(&q[..8], t["final_norm.bias"].1.as_slice());
    assert!(q[8..].iter().all(|&x| x == 0.0));
}

#[test]
fn sasrec_top_k_equals_sorting_the_reference_scores() {
    let config = sasrec(16, 2500, 12, 2, 2);
    let a = artifact(config);
    for scan in [Scan::Int8, Scan::F32] {
        for kernel in Kernel::supported() {
            let model = StudentModel::from_artifact(a.clone(), kernel)
                .unwrap()
                .with_scan(scan);
            let queries: Vec<QueryInput> = sasrec_inputs(12, 2500)
                .into_iter()
                .map(|inputs| QueryInput { user: None, inputs })
                .collect();
            let got = model.top_k_batch(&queries, 10, &vec![Vec::new(); queries.len()]);
            for (query, got) in queries.iter().zip(&got) {
                let want = reference_sasrec(&a, &query.inputs);
                let mut order: Vec<usize> = (0..want.len()).collect();
                order.sort_by(|&i, &j| want[j].total_cmp(&want[i]).then(i.cmp(&j)));
                let items: Vec<u32> = got.iter().map(|&(i, _)| i).collect();
                let expected: Vec<u32> = order[..10].iter().map(|&i| i as u32).collect();
                assert_eq!(
                    items,
                    expected,
                    "{scan:?} {} {:?}",
                    kernel.name(),
                    query.inputs
                );
                let scores: Vec<f32> = got.iter().map(|&(_, s)| s).collect();
                let want_scores: Vec<f64> = order[..10].iter().map(|&i| want[i]).collect();
                assert_close(&scores, &want_scores, "top 10 scores");
            }
        }
    }
}

#[test]
fn sasrec_padding_row_never_contributes() {
    let config = sasrec(8, 40, 6, 2, 2);
    let clean = artifact(config.clone());
    let mut dirty = clean.clone();
    if let Some((_, v)) = dirty.weights.tensors.get_mut("item_embeddings.weight") {
        v[..8].copy_from_slice(&[3.0, -2.0, 1.5, 0.7, -4.0, 2.5, 9.0, -1.0]);
    }
    let clean = StudentModel::from_artifact(clean, Kernel::Scalar).unwrap();
    let dirty = StudentModel::from_artifact(dirty, Kernel::Scalar).unwrap();
    let queries: Vec<QueryInput> = sasrec_inputs(6, 40)
        .into_iter()
        .map(|inputs| QueryInput {
            user: Some(1),
            inputs,
        })
        .collect();
    assert_eq!(clean.score_all(&queries), dirty.score_all(&queries));
    assert_eq!(dirty.num_items(), 40);
}

#[test]
fn sasrec_knows_its_users_without_a_user_table() {
    let a = artifact(sasrec(8, 40, 6, 2, 1));
    assert!(!a.weights.tensors.contains_key("user_embeddings.weight"));
    let model = StudentModel::from_artifact(a, Kernel::Scalar).unwrap();
    assert_eq!(model.num_users(), 4);
    assert_eq!(model.sequence_length(), 6);
    assert!(model.item_bias().iter().all(|&b| b == 0.0));
}

#[test]
fn sasrec_missing_or_mis_shaped_tensors_are_named() {
    let config = sasrec(8, 40, 6, 2, 2);
    // In memory (the student's own checks).
    for name in [
        "blocks.1.value.weight",
        "position_embeddings.weight",
        "final_norm.bias",
    ] {
        let mut a = artifact(config.clone());
        a.weights.tensors.remove(name);
        let err = StudentModel::from_artifact(a, Kernel::Scalar).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
        let mut a = artifact(config.clone());
        if let Some((_, v)) = a.weights.tensors.get_mut(name) {
            v.pop();
        }
        let err = StudentModel::from_artifact(a, Kernel::Scalar).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
    }
    let mut bad_heads = config.clone();
    bad_heads.num_heads = 3;
    let err = StudentModel::from_artifact(artifact(bad_heads), Kernel::Scalar).unwrap_err();
    assert!(err.to_string().contains("multiple of the heads"), "{err}");

    // From disk, through the service's loader.
    let load = |tensors: Vec<(String, Vec<usize>)>| {
        let dir = tempfile::tempdir().unwrap();
        let bytes = rankdistill_testkit::weights::serialize_f32(
            tensors
                .into_iter()
                .map(|(name, shape)| {
                    let len: usize = shape.iter().product();
                    let bytes = (0..len)
                        .flat_map(|i| ((i % 7) as f32 * 0.1 - 0.3).to_le_bytes())
                        .collect();
                    (name, shape, bytes)
                })
                .collect(),
        );
        let mut manifest = ArtifactManifest::new(
            config.clone(),
            DataRef {
                path: "d".into(),
                fingerprint: "fp".into(),
            },
        );
        manifest.version = rankdistill_core::artifact::weights_version(&bytes);
        manifest.num_parameters = config.num_parameters() as i64;
        std::fs::write(
            dir.path().join(rankdistill_core::artifact::WEIGHTS_FILE),
            &bytes,
        )
        .unwrap();
        std::fs::write(
            dir.path().join(rankdistill_core::artifact::MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        crate::reload::Loader {
            dir: dir.path().to_path_buf(),
            history: None,
            kernel: Kernel::Scalar,
            scan: Scan::Int8,
            unknown_user: crate::catalog::UnknownUser::NotFound,
            index: crate::index::IndexPolicy::default(),
            stats: std::sync::Arc::new(crate::version_stats::StatsBook::new(None)),
        }
        .build()
        .map(|served| (served.summary.num_users, served.summary.kind))
        .map_err(|e| e.to_string())
    };
    let expected = config.expected_tensors();
    assert_eq!(load(expected.clone()), Ok((4, ModelKind::SasRec)));
    let mut missing = expected.clone();
    missing.retain(|(n, _)| n != "blocks.1.key.weight");
    let err = load(missing).unwrap_err();
    assert!(
        err.contains("missing tensor 'blocks.1.key.weight'"),
        "{err}"
    );
    let mut mis_shaped = expected;
    for (name, shape) in &mut mis_shaped {
        if name == "blocks.0.ff2.weight" {
            *shape = vec![8, 9];
        }
    }
    let err = load(mis_shaped).unwrap_err();
    assert!(
        err.contains("tensor 'blocks.0.ff2.weight' has shape [8, 9]"),
        "{err}"
    );
}
