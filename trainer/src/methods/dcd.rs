//! Dual Correction Distillation (Lee & Kim, CIKM 2021) as woriazzc/KDs runs it: before every
//! epoch the student ranks the whole catalog for every query, and each item of the teacher's
//! top-N gets the discrepancy d = r_S - r_T between the student's rank and the teacher's
//! (0-based). K items the student under-ranks are drawn without replacement with probability
//! proportional to max(tanh(max(d / T, 0)), 1e-5), and K it over-ranks with
//! max(tanh(max(-d / T, 0)), 1e-5). The loss is the relaxed ranking loss of the under-ranked
//! items, in draw order, with the over-ranked ones in every denominator.

use tch::{Kind, Tensor};

use super::listwise::relaxed_ranking_loss;
use super::sampling::draw_positions;
use super::student_ranks::ranks_of;
use super::{DcdConfig, Distiller, EpochContext, EpochItems, TeacherLists};

/// DCD over the teacher's top-N lists.
pub struct Dcd {
    config: DcdConfig,
    lists: Tensor,
}

impl Dcd {
    /// DCD on `lists` (the teacher's top-N of every query).
    pub fn new(config: DcdConfig, lists: &TeacherLists) -> Dcd {
        Dcd {
            config,
            lists: lists.items.shallow_clone(),
        }
    }
}

/// The two draw weights from the student's ranks [N, P] of the teacher's list: (under-ranked,
/// over-ranked), each [N, P].
pub fn discrepancy_weights(student_ranks: &Tensor, temperature: f64) -> (Tensor, Tensor) {
    let p = student_ranks.size()[1];
    let teacher_ranks = Tensor::arange(p, (Kind::Float, student_ranks.device())).unsqueeze(0);
    let diff = (student_ranks.to_kind(Kind::Float) - teacher_ranks) / temperature;
    let under = diff.clamp_min(0.0).tanh().clamp_min(1e-5);
    let over = (-diff).clamp_min(0.0).tanh().clamp_min(1e-5);
    (under, over)
}

impl Distiller for Dcd {
    fn prepare_epoch(&mut self, ctx: EpochContext<'_>) -> anyhow::Result<EpochItems> {
        let ranks = ranks_of(ctx.model, ctx.users, ctx.inputs, &self.lists, ctx.device);
        let (under, over) = discrepancy_weights(&ranks, self.config.temperature);
        let k = self.config.k as i64;
        let under = self.lists.gather(1, &draw_positions(&under, k), false);
        let over = self.lists.gather(1, &draw_positions(&over, k), false);
        Ok(EpochItems {
            items: Tensor::cat(&[under, over], 1),
            aux: Vec::new(),
        })
    }

    fn loss(&self, scores: &Tensor, _aux: &[Tensor]) -> Tensor {
        let k = self.config.k as i64;
        relaxed_ranking_loss(&scores.narrow(1, 0, k), &scores.narrow(1, k, k))
    }

    fn weight(&self) -> f64 {
        self.config.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Teacher positions 0, 1, 2; student ranks 30, 1, 0; T = 10:
    /// d = 3, 0, -0.2 -> under tanh(3), 1e-5, 1e-5; over 1e-5, 1e-5, tanh(0.2).
    #[test]
    fn weights_match_a_hand_computed_case() {
        let ranks = Tensor::from_slice(&[30i64, 1, 0]).view([1, 3]);
        let (under, over) = discrepancy_weights(&ranks, 10.0);
        let under: Vec<f32> = Vec::try_from(under.view([-1])).unwrap();
        let over: Vec<f32> = Vec::try_from(over.view([-1])).unwrap();
        let want_under = [3f64.tanh(), 1e-5, 1e-5];
        let want_over = [1e-5, 1e-5, 0.2f64.tanh()];
        for (got, want) in under
            .iter()
            .zip(want_under)
            .chain(over.iter().zip(want_over))
        {
            assert!((*got as f64 - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn the_loss_ranks_the_under_ranked_against_the_over_ranked() {
        let dcd = Dcd::new(
            DcdConfig {
                k: 1,
                ..DcdConfig::default()
            },
            &TeacherLists {
                items: Tensor::zeros([1, 2], (Kind::Int64, tch::Device::Cpu)),
                scores: Tensor::zeros([1, 2], (Kind::Float, tch::Device::Cpu)),
            },
        );
        // One under-ranked item scored 1, one over-ranked scored 3:
        // -(1 - ln(e^1 + e^3)).
        let scores = Tensor::from_slice(&[1.0f32, 3.0]).view([1, 2]);
        let e = std::f64::consts::E;
        let want = -(1.0 - (e + e.powi(3)).ln());
        let got = dcd.loss(&scores, &[]).double_value(&[0]);
        assert!((got - want).abs() < 1e-5);
    }
}
