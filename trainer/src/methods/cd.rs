//! Collaborative Distillation (Lee et al. 2019) as woriazzc/KDs implements its teacher-guided
//! form: for every query, `samples` distinct items are drawn once, before training, from the
//! teacher's top-N. Each draw takes two positions with probability proportional to
//! exp(-r / (N T)) (r = 1..=N) and keeps the one the teacher scores higher. The student learns
//! the teacher's soft labels p = sigma((s_T + t2) / t1) of those items by binary
//! cross-entropy: -sum_i [p_i log sigma(s_i) + (1 - p_i) log(1 - sigma(s_i))].

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use super::{CdConfig, Distiller, EpochContext, EpochItems, TeacherLists};

/// CD with its items and soft labels drawn once.
pub struct Cd {
    config: CdConfig,
    items: Tensor,
    labels: Tensor,
}

impl Cd {
    /// Draws every query's items from `lists` (the teacher's top-N with scores).
    pub fn new(config: CdConfig, lists: &TeacherLists, rng: &mut ChaCha8Rng) -> anyhow::Result<Cd> {
        let n = lists.k() as usize;
        if n < config.samples {
            anyhow::bail!(
                "CD draws {} items from teacher lists of only {n}",
                config.samples
            );
        }
        let rows = lists.rows() as usize;
        let items: Vec<i64> = Vec::try_from(lists.items.contiguous().view([-1]))?;
        let scores: Vec<f32> = Vec::try_from(lists.scores.contiguous().view([-1]))?;
        // Cumulative draw weights of positions 0..N.
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0f64;
        for r in 1..=n {
            total += (-(r as f64) / n as f64 / config.temperature).exp();
            cdf.push(total);
        }
        let draw = |rng: &mut ChaCha8Rng| {
            let u = rng.random::<f64>() * total;
            cdf.partition_point(|&c| c <= u).min(n - 1)
        };
        let mut chosen_items = Vec::with_capacity(rows * config.samples);
        let mut chosen_scores = Vec::with_capacity(rows * config.samples);
        let mut picked: Vec<usize> = Vec::with_capacity(config.samples);
        for q in 0..rows {
            let row_scores = &scores[q * n..(q + 1) * n];
            picked.clear();
            while picked.len() < config.samples {
                let (a, b) = (draw(rng), draw(rng));
                let better = if row_scores[a] > row_scores[b] { a } else { b };
                if !picked.contains(&better) {
                    picked.push(better);
                }
            }
            for &p in &picked {
                chosen_items.push(items[q * n + p]);
                chosen_scores.push(row_scores[p]);
            }
        }
        let shape = [rows as i64, config.samples as i64];
        let teacher = Tensor::from_slice(&chosen_scores).view(shape);
        Ok(Cd {
            labels: soft_labels(&teacher, config.t1, config.t2),
            items: Tensor::from_slice(&chosen_items).view(shape),
            config,
        })
    }
}

/// The teacher's soft labels sigma((s_T + t2) / t1).
pub fn soft_labels(teacher_scores: &Tensor, t1: f64, t2: f64) -> Tensor {
    ((teacher_scores + t2) / t1).sigmoid()
}

/// CD's loss per query: binary cross-entropy of the student's scores [B, M] against the soft
/// labels [B, M], summed over the items; [B].
pub fn cd_loss(student_scores: &Tensor, labels: &Tensor) -> Tensor {
    let terms = labels * student_scores.log_sigmoid()
        + (labels.ones_like() - labels) * (-student_scores).log_sigmoid();
    -terms.sum_dim_intlist([1i64].as_slice(), false, Kind::Float)
}

impl Distiller for Cd {
    fn prepare_epoch(&mut self, _ctx: EpochContext<'_>) -> anyhow::Result<EpochItems> {
        Ok(EpochItems {
            items: self.items.shallow_clone(),
            aux: vec![self.labels.shallow_clone()],
        })
    }

    fn loss(&self, scores: &Tensor, aux: &[Tensor]) -> Tensor {
        cd_loss(scores, &aux[0])
    }

    fn weight(&self) -> f64 {
        self.config.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Two items, teacher scores 2 and 0, t1 = 2, t2 = 0: labels sigma(1) and 1/2.
    #[test]
    fn the_loss_matches_a_hand_computed_case() {
        let teacher = Tensor::from_slice(&[2.0f32, 0.0]).view([1, 2]);
        let labels = soft_labels(&teacher, 2.0, 0.0);
        let student = Tensor::from_slice(&[1.0f32, -2.0]).view([1, 2]);
        let p = sig(1.0);
        let want = -(p * sig(1.0).ln() + (1.0 - p) * (1.0 - sig(1.0)).ln())
            - (0.5 * sig(-2.0).ln() + 0.5 * (1.0 - sig(-2.0)).ln());
        let got = cd_loss(&student, &labels).double_value(&[0]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    /// The cache keeps scores as f16: over logits up to about 16 (both models), the batch loss
    /// on the rounded scores stays within 1e-4 of the loss on the f32 scores, and no query's
    /// loss moves by more than 2e-3 (the largest moves are at the largest logits).
    #[test]
    fn f16_scores_keep_the_loss() {
        tch::manual_seed(2);
        let teacher = Tensor::randn([512, 8], (Kind::Float, tch::Device::Cpu)) * 4.0;
        let rounded: Vec<f32> = Vec::<f32>::try_from(teacher.view([-1]))
            .unwrap()
            .into_iter()
            .map(|s| half::f16::from_f32(s).to_f32())
            .collect();
        let rounded = Tensor::from_slice(&rounded).view([512, 8]);
        let student = Tensor::randn([512, 8], (Kind::Float, tch::Device::Cpu)) * 4.0;
        let exact = cd_loss(&student, &soft_labels(&teacher, 2.0, 0.0));
        let approx = cd_loss(&student, &soft_labels(&rounded, 2.0, 0.0));
        let worst = (&exact - &approx).abs().max().double_value(&[]);
        assert!(worst < 2e-3, "{worst}");
        let batch = (exact.mean(Kind::Float) - approx.mean(Kind::Float)).abs();
        assert!(batch.double_value(&[]) < 1e-4, "{batch}");
    }

    #[test]
    fn draws_are_distinct_seeded_and_favour_the_top() {
        let rows = 200;
        let n = 50;
        let items: Vec<i64> = (0..rows * n).map(|i| i % n).collect();
        let scores: Vec<f32> = (0..rows * n).map(|i| -((i % n) as f32)).collect();
        let lists = TeacherLists {
            items: Tensor::from_slice(&items).view([rows, n]),
            scores: Tensor::from_slice(&scores).view([rows, n]),
        };
        let config = CdConfig {
            top_n: n as usize,
            samples: 3,
            temperature: 0.05,
            ..CdConfig::default()
        };
        let a = Cd::new(config.clone(), &lists, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        let b = Cd::new(config, &lists, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert!(a.items.equal(&b.items));
        let drawn: Vec<i64> = Vec::try_from(a.items.view([-1])).unwrap();
        for row in drawn.chunks(3) {
            assert!(row[0] != row[1] && row[1] != row[2] && row[0] != row[2]);
        }
        // Sharp weights and the two-draw tournament: mostly the top ranks.
        let top = drawn.iter().filter(|&&i| i < 10).count();
        assert!(top * 10 > drawn.len() * 8, "{top} of {}", drawn.len());
        // Labels follow the drawn items' teacher scores (item i scores -i).
        let labels: Vec<f32> = Vec::try_from(a.labels.view([-1])).unwrap();
        for (item, label) in drawn.iter().zip(&labels) {
            assert!((*label as f64 - sig(-(*item as f64) / 2.0)).abs() < 1e-6);
        }
    }
}
