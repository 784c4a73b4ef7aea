//! End-to-end checks of [`StudentModel`]: Caser against a direct f64 reference, MF, and the
//! int8 scan against the exact f32 scan.

use super::*;
use rankdistill_core::artifact::{Activation, ArtifactManifest, DataRef, Weights};
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
