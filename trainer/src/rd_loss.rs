//! Ranking Distillation (Tang and Wang, KDD 2018) as method.md states it: the teacher's top-K
//! items become weighted positives, weighted by position importance, by ranking discrepancy
//! (the student's rank of each teacher item, estimated from n sampled unobserved items), or by
//! their hybrid. Everything here is vectorised over the batch and all K positions.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use crate::train::loss::{BceForm, bce_instance_terms};

/// How the distillation weights w_r are formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Position importance only: w_a(r) ~ exp(-r / lambda).
    Position,
    /// Ranking discrepancy only (from the dynamic start epoch; position before).
    Discrepancy,
    /// w_a * w_b (from the dynamic start epoch; position before).
    Hybrid,
}

/// How L_R and L_D are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossForm {
    /// The reference code: L_R + a' * L_D.
    Reference,
    /// The paper: (1 - a) * L_R + a * L_D.
    Convex,
}

/// Settings of Ranking Distillation; defaults are the reference ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RdConfig {
    /// Length K of the teacher rankings.
    pub k: usize,
    /// Position-weight temperature lambda.
    pub lambda: f64,
    /// Discrepancy sharpness mu.
    pub mu: f64,
    /// Sampled unobserved items n for the rank estimate.
    pub samples: usize,
    /// Weight a (convex) or a' (reference) of L_D.
    pub alpha: f64,
    /// How L_R and L_D combine.
    pub loss_form: LossForm,
    /// Which weights.
    pub weighting: Weighting,
    /// L1-renormalise dynamic weights over K (the paper); false, the default, uses the bare
    /// product (the reference code's hard-coded setting).
    pub renormalise: bool,
    /// Dynamic weights are used in the epochs after this one (1-based), as the reference
    /// tests `epoch > dynamic_start_epoch`.
    pub dynamic_start_epoch: usize,
    /// Teacher rankings also exclude the user's other training items.
    pub exclude_seen: bool,
}

impl Default for RdConfig {
    fn default() -> Self {
        RdConfig {
            k: 10,
            lambda: 1.0,
            mu: 0.1,
            samples: 100,
            alpha: 1.0,
            loss_form: LossForm::Reference,
            weighting: Weighting::Hybrid,
            renormalise: false,
            dynamic_start_epoch: 10,
            exclude_seen: false,
        }
    }
}

impl RdConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.k == 0 {
            return Err("--rd-k must be at least 1".into());
        }
        if self.lambda <= 0.0 || self.mu < 0.0 {
            return Err("--lambda must be positive and --mu non-negative".into());
        }
        if self.samples == 0 {
            return Err("--samples must be at least 1".into());
        }
        match self.loss_form {
            LossForm::Convex if !(0.0..=1.0).contains(&self.alpha) => {
                Err("--alpha must be in [0, 1] for the convex loss form".into())
            }
            _ if self.alpha < 0.0 => Err("--alpha must be non-negative".into()),
            _ => Ok(()),
        }
    }

    /// True when epoch `epoch` (1-based) needs the student's rank estimates.
    pub fn dynamic_at(&self, epoch: usize) -> bool {
        self.weighting != Weighting::Position && epoch > self.dynamic_start_epoch
    }
}

/// Position importance w_a(r) = exp(-r / lambda) for r = 1..=K, normalised to sum 1; [K].
pub fn position_weights(k: usize, lambda: f64) -> Tensor {
    let raw: Vec<f32> = (1..=k)
        .map(|r| (-(r as f64) / lambda).exp() as f32)
        .collect();
    let sum: f32 = raw.iter().sum();
    Tensor::from_slice(&raw.iter().map(|w| w / sum).collect::<Vec<_>>())
}

/// The student's estimated 0-based rank of each teacher item among all |D| items:
/// floor((|D| + 1) * #{sampled items scoring higher} / n). The scale |D| + 1 is the reference
/// code's (`self._num_items` there counts the padding item, and it multiplies by it); method.md
/// writes |D| - 1, a difference of two items in the scale. Inputs are the student's scores of
/// the teacher items [B, K] and of the n sampled unobserved items [B, n]; output [B, K].
pub fn estimate_ranks(
    teacher_item_scores: &Tensor,
    sample_scores: &Tensor,
    num_items: i64,
) -> Tensor {
    let n = sample_scores.size()[1] as f64;
    let higher = sample_scores
        .unsqueeze(1)
        .gt_tensor(&teacher_item_scores.unsqueeze(2))
        .sum_dim_intlist([2i64].as_slice(), false, Kind::Float); // [B, K]
    (higher * ((num_items + 1) as f64 / n)).floor()
}

/// Ranking discrepancy w_b(r) = tanh(max(mu * (r_hat - (r - 1)), 0)) with 0-based teacher
/// positions, as the reference computes it; [B, K].
pub fn discrepancy_weights(estimated_ranks: &Tensor, mu: f64) -> Tensor {
    let k = estimated_ranks.size()[1];
    let positions = Tensor::arange(k, (Kind::Float, estimated_ranks.device()));
    ((estimated_ranks - positions.unsqueeze(0)) * mu)
        .clamp_min(0.0)
        .tanh()
}

/// The distillation weights for a batch, detached from the graph; [B, K]. `dynamic` carries
/// the student's scores of the teacher items and of the samples when the epoch uses them.
pub fn rd_weights(
    config: &RdConfig,
    batch: i64,
    dynamic: Option<(&Tensor, &Tensor)>,
    num_items: i64,
    device: tch::Device,
) -> Tensor {
    let w_a = position_weights(config.k, config.lambda)
        .to_device(device)
        .unsqueeze(0)
        .expand([batch, config.k as i64], false);
    let weights = match (config.weighting, dynamic) {
        (Weighting::Position, _) | (_, None) => return w_a.detach(),
        (Weighting::Discrepancy, Some((teacher, samples))) => {
            discrepancy_weights(&estimate_ranks(teacher, samples, num_items), config.mu)
        }
        (Weighting::Hybrid, Some((teacher, samples))) => {
            discrepancy_weights(&estimate_ranks(teacher, samples, num_items), config.mu) * &w_a
        }
    };
    let weights = if config.renormalise {
        let norm = weights
            .sum_dim_intlist([1i64].as_slice(), true, Kind::Float)
            .clamp_min(1e-12);
        weights / norm
    } else {
        weights
    };
    weights.detach()
}

/// The RD loss per instance, averaged over the batch, with L_R reduced in `bce` (the same
/// form as the models it is compared with). Returns (loss, L_R, L_D).
pub fn rd_loss(
    positive: &Tensor,
    negative: &Tensor,
    teacher_items: &Tensor,
    weights: &Tensor,
    config: &RdConfig,
    bce: BceForm,
) -> (Tensor, Tensor, Tensor) {
    let sum1 = |t: Tensor| t.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let l_r = bce_instance_terms(positive, negative, bce);
    let l_d = sum1(-(teacher_items.log_sigmoid() * weights));
    let loss = match config.loss_form {
        LossForm::Reference => &l_r + &l_d * config.alpha,
        LossForm::Convex => &l_r * (1.0 - config.alpha) + &l_d * config.alpha,
    };
    (
        loss.mean(Kind::Float),
        l_r.mean(Kind::Float),
        l_d.mean(Kind::Float),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    fn values(t: &Tensor) -> Vec<f32> {
        Vec::try_from(t.contiguous().view([-1])).unwrap()
    }

    #[test]
    fn position_weights_decay_and_sum_to_one() {
        let w = values(&position_weights(3, 1.0));
        let raw = [(-1f64).exp(), (-2f64).exp(), (-3f64).exp()];
        let sum: f64 = raw.iter().sum();
        for (got, want) in w.iter().zip(raw) {
            assert!((*got as f64 - want / sum).abs() < 1e-6);
        }
        // Larger lambda is flatter.
        let flat = values(&position_weights(3, 100.0));
        assert!(flat[0] - flat[2] < w[0] - w[2]);
    }

    #[test]
    fn discrepancy_is_zero_where_the_student_agrees_and_grows_with_the_gap() {
        // Teacher positions 0, 1, 2; student ranks 0, 50, 1.
        let w = values(&discrepancy_weights(&t(&[0.0, 50.0, 1.0], &[1, 3]), 0.1));
        assert_eq!(w[0], 0.0);
        assert!((w[1] as f64 - (0.1f64 * 49.0).tanh()).abs() < 1e-6);
        assert_eq!(w[2], 0.0);
    }

    #[test]
    fn hybrid_is_the_renormalised_product_and_weights_are_detached() {
        let config = RdConfig {
            k: 3,
            weighting: Weighting::Hybrid,
            renormalise: true,
            ..RdConfig::default()
        };
        let teacher = t(&[0.0, 0.0, 0.0], &[1, 3]).set_requires_grad(true);
        // 4 samples, num_items 5: every sample scores higher -> r_hat = floor(6 * 4 / 4) = 6.
        let samples = t(&[1.0, 1.0, 1.0, 1.0], &[1, 4]);
        let w = rd_weights(&config, 1, Some((&teacher, &samples)), 5, tch::Device::Cpu);
        assert!(!w.requires_grad());
        let w_a = values(&position_weights(3, 1.0));
        let w_b: Vec<f32> = (0..3)
            .map(|r| ((0.1f64) * (6 - r) as f64).tanh() as f32)
            .collect();
        let prod: Vec<f32> = w_a.iter().zip(&w_b).map(|(a, b)| a * b).collect();
        let sum: f32 = prod.iter().sum();
        for (got, want) in values(&w).iter().zip(&prod) {
            assert!((got - want / sum).abs() < 1e-6);
        }
        let bare = rd_weights(
            &RdConfig {
                renormalise: false,
                ..config.clone()
            },
            1,
            Some((&teacher, &samples)),
            5,
            tch::Device::Cpu,
        );
        for (got, want) in values(&bare).iter().zip(&prod) {
            assert!((got - want).abs() < 1e-6);
        }
        // Position weighting ignores the samples.
        let pos = rd_weights(
            &RdConfig {
                weighting: Weighting::Position,
                ..config
            },
            2,
            Some((&teacher, &samples)),
            5,
            tch::Device::Cpu,
        );
        assert_eq!(pos.size(), vec![2, 3]);
        assert_eq!(values(&pos)[..3], w_a[..]);
    }

    /// The reference's defaults: dynamic weights in the epochs after the start epoch (its
    /// `epoch_num > dynamic_start_epoch`) and the bare product, not renormalised.
    #[test]
    fn defaults_are_the_reference_code_s() {
        let config = RdConfig::default();
        assert!(!config.renormalise);
        assert_eq!(config.dynamic_start_epoch, 10);
        assert!(!config.dynamic_at(10));
        assert!(config.dynamic_at(11));
        let position = RdConfig {
            weighting: Weighting::Position,
            ..config
        };
        assert!(!position.dynamic_at(11));
    }

    #[test]
    fn loss_forms_follow_their_formulas() {
        let pos = t(&[0.3], &[1, 1]);
        let neg = t(&[-0.2, 0.1], &[1, 2]);
        let cand = t(&[1.0, -1.0], &[1, 2]);
        let w = t(&[0.75, 0.25], &[1, 2]);
        let ls = |x: f64| -(1.0 + (-x).exp()).ln(); // log sigmoid
        let l_r = -ls(0.3) - ls(0.2) - ls(-0.1);
        let l_d = -(0.75 * ls(1.0) + 0.25 * ls(-1.0));
        let reference = RdConfig {
            alpha: 0.5,
            ..RdConfig::default()
        };
        let (loss, r, d) = rd_loss(&pos, &neg, &cand, &w, &reference, BceForm::Sum);
        assert!((r.double_value(&[]) - l_r).abs() < 1e-5);
        assert!((d.double_value(&[]) - l_d).abs() < 1e-5);
        assert!((loss.double_value(&[]) - (l_r + 0.5 * l_d)).abs() < 1e-5);
        let convex = RdConfig {
            alpha: 0.5,
            loss_form: LossForm::Convex,
            ..RdConfig::default()
        };
        let (loss, _, _) = rd_loss(&pos, &neg, &cand, &w, &convex, BceForm::Sum);
        // The mean form of L_R averages the negatives' terms.
        let (_, r_mean, _) = rd_loss(&pos, &neg, &cand, &w, &convex, BceForm::Mean);
        let l_r_mean = -ls(0.3) + (-ls(0.2) - ls(-0.1)) / 2.0;
        assert!((r_mean.double_value(&[]) - l_r_mean).abs() < 1e-5);
        assert!((loss.double_value(&[]) - (0.5 * l_r + 0.5 * l_d)).abs() < 1e-5);
        assert!(
            RdConfig {
                alpha: 1.5,
                ..convex
            }
            .validate()
            .is_err()
        );
    }

    /// The sampled rank estimate against the exact rank among all items: its mean error
    /// shrinks as n grows.
    #[test]
    fn rank_estimate_converges_to_the_exact_rank() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let num_items = 2000usize;
        let queries = 40usize;
        let k = 10usize;
        let mut errors = Vec::new();
        for n in [10usize, 100, 1000] {
            let mut total = 0.0;
            for _ in 0..queries {
                let scores: Vec<f32> = (0..num_items).map(|_| rng.random()).collect();
                let teacher: Vec<usize> = (0..k).map(|_| rng.random_range(0..num_items)).collect();
                let exact: Vec<f64> = teacher
                    .iter()
                    .map(|&i| scores.iter().filter(|&&s| s > scores[i]).count() as f64)
                    .collect();
                let sample: Vec<f32> = (0..n)
                    .map(|_| scores[rng.random_range(0..num_items)])
                    .collect();
                let teacher_scores: Vec<f32> = teacher.iter().map(|&i| scores[i]).collect();
                let est = values(&estimate_ranks(
                    &t(&teacher_scores, &[1, k as i64]),
                    &t(&sample, &[1, n as i64]),
                    num_items as i64,
                ));
                total += est
                    .iter()
                    .zip(&exact)
                    .map(|(e, x)| (*e as f64 - x).abs() / num_items as f64)
                    .sum::<f64>()
                    / k as f64;
            }
            errors.push(total / queries as f64);
        }
        assert!(errors[0] > errors[1] && errors[1] > errors[2], "{errors:?}");
        assert!(errors[2] < 0.02, "{errors:?}");
    }
}
