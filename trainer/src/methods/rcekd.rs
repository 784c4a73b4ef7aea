//! RCE-KD (arXiv 2509.20989) as its authors' code (woriazzc/RCEKD, `TSCKD`) runs it. Before
//! every epoch the student ranks the whole catalog for every query: its top-K are `S`, and L
//! items are drawn without replacement from its top-N, position p weighted by
//! exp((c_p + 1) / T), c_p the number (at most 50) of the teacher's top-K items at or below
//! position p of the student's list: the drawn items `I`. The teacher scores `S` and `I`
//! online (ScoreItems). The loss per query is `(1 - w) CE(softmax(t_S / tau), s_S / tau)`
//! plus `w` times the cross-entropy over I and the teacher's top-K `T` (less the items of T
//! that are in I or S), with `w = exp(-beta * |T in I| / K)`.

use tch::{Kind, Tensor};

use super::sampling::draw_positions;
use super::student_ranks::top_items;
use super::teacher_scores::TeacherScores;
use super::{Distiller, EpochContext, EpochItems, RceKdConfig, TeacherLists};

/// The most teacher items a position's draw weight counts (the reference's cap).
const COUNT_CAP: f64 = 50.0;

/// RCE-KD over the teacher's top-K lists, asking `teacher` for the scores of the student's
/// items.
pub struct RceKd {
    config: RceKdConfig,
    teacher_items: Tensor,
    teacher_scores: Tensor,
    teacher: Box<dyn TeacherScores>,
}

impl RceKd {
    /// RCE-KD on `lists` (the teacher's top-K with scores), scoring the student's items with
    /// `teacher`.
    pub fn new(
        config: RceKdConfig,
        lists: &TeacherLists,
        teacher: Box<dyn TeacherScores>,
    ) -> RceKd {
        RceKd {
            config,
            teacher_items: lists.items.shallow_clone(),
            teacher_scores: lists.scores.shallow_clone(),
            teacher,
        }
    }
}

/// Per query, the draw weights exp((c_p + 1) / T) of the student's top-N positions
/// (`student_top`, row-major [N, P]), c_p counting the teacher's items (`teacher`, [N, K]) at
/// positions >= p, capped at 50; row-major [N, P].
pub fn draw_weights(
    student_top: &[i64],
    teacher: &[i64],
    p: usize,
    k: usize,
    temperature: f64,
) -> Vec<f32> {
    // c_p: teacher items at positions >= p, capped.
    let rows = student_top.len() / p.max(1);
    let mut out = Vec::with_capacity(rows * p);
    let mut mine: Vec<i64> = Vec::with_capacity(k);
    for q in 0..rows {
        let top = &student_top[q * p..(q + 1) * p];
        mine.clear();
        mine.extend_from_slice(&teacher[q * k..(q + 1) * k]);
        mine.sort_unstable();
        let mut at = vec![0f64; p];
        for (pos, item) in top.iter().enumerate() {
            if mine.binary_search(item).is_ok() {
                at[pos] += 1.0;
            }
        }
        let mut tail = 0.0;
        let mut counts = vec![0f64; p];
        for pos in (0..p).rev() {
            tail += at[pos];
            counts[pos] = tail.min(COUNT_CAP);
        }
        out.extend(
            counts
                .iter()
                .map(|c| ((c + 1.0) / temperature).exp() as f32),
        );
    }
    out
}

/// For every row, 1.0 where `items` [N, K] is in `set` [N, M], else 0.0; [N, K].
fn membership(items: &[i64], set: &[i64], k: usize, m: usize) -> Vec<f32> {
    items
        .chunks(k.max(1))
        .zip(set.chunks(m.max(1)))
        .flat_map(|(row, set)| row.iter().map(|i| if set.contains(i) { 1.0 } else { 0.0 }))
        .collect()
}

/// RCE-KD's loss per query from the student's logits of S [B, K], I [B, L] and T [B, K], the
/// teacher's of the same, the mask `keep_t` [B, K] (1 where an item of T is in neither I nor
/// S) and the mixing weight w [B]; [B].
#[allow(clippy::too_many_arguments)]
pub fn rcekd_loss(
    student_s: &Tensor,
    student_i: &Tensor,
    student_t: &Tensor,
    teacher_s: &Tensor,
    teacher_i: &Tensor,
    teacher_t: &Tensor,
    keep_t: &Tensor,
    mix: &Tensor,
    tau: f64,
) -> Tensor {
    let sum1 = |t: Tensor| t.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    let on_s = -sum1(
        (teacher_s / tau).softmax(1, Kind::Float) * (student_s / tau).log_softmax(1, Kind::Float),
    );
    let keep = keep_t.gt(0.5);
    let hidden = f64::NEG_INFINITY;
    let teacher_all = Tensor::cat(
        &[
            teacher_i / tau,
            (teacher_t / tau).masked_fill(&keep.logical_not(), hidden),
        ],
        1,
    );
    let student_all = Tensor::cat(
        &[
            student_i / tau,
            (student_t / tau).masked_fill(&keep.logical_not(), hidden),
        ],
        1,
    );
    let kept = Tensor::cat(&[student_i.ones_like().gt(0.5), keep], 1);
    let log_p = student_all.log_softmax(1, Kind::Float);
    let log_p = log_p.where_self(&kept, &log_p.zeros_like());
    let on_t = -sum1(teacher_all.softmax(1, Kind::Float) * log_p);
    (mix.ones_like() - mix) * on_s + mix * on_t
}

impl Distiller for RceKd {
    fn prepare_epoch(&mut self, ctx: EpochContext<'_>) -> anyhow::Result<EpochItems> {
        let c = &self.config;
        let (k, l, p) = (c.k as i64, c.l as i64, c.top_n as i64);
        let top = top_items(ctx.model, ctx.users, ctx.inputs, p, ctx.device);
        let rows = top.size()[0];
        let top_flat: Vec<i64> = Vec::try_from(top.contiguous().view([-1]))?;
        let teacher_flat: Vec<i64> = Vec::try_from(self.teacher_items.contiguous().view([-1]))?;
        let weights = draw_weights(
            &top_flat,
            &teacher_flat,
            p as usize,
            k as usize,
            c.temperature,
        );
        let weights = Tensor::from_slice(&weights).view([rows, p]);
        let drawn = top.gather(1, &draw_positions(&weights, l), false);
        let own = top.narrow(1, 0, k);
        let drawn_flat: Vec<i64> = Vec::try_from(drawn.contiguous().view([-1]))?;
        let own_flat: Vec<i64> = Vec::try_from(own.contiguous().view([-1]))?;
        let in_drawn = membership(&teacher_flat, &drawn_flat, k as usize, l as usize);
        let in_own = membership(&teacher_flat, &own_flat, k as usize, k as usize);
        let keep: Vec<f32> = in_drawn
            .iter()
            .zip(&in_own)
            .map(|(a, b)| if *a > 0.0 || *b > 0.0 { 0.0 } else { 1.0 })
            .collect();
        let overlap = Tensor::from_slice(&in_drawn).view([rows, k]).mean_dim(
            [1i64].as_slice(),
            false,
            Kind::Float,
        );
        let mix = (overlap * -c.beta).exp();
        let asked = Tensor::cat(&[own.shallow_clone(), drawn.shallow_clone()], 1);
        let teacher_asked = self.teacher.scores(&asked)?;
        Ok(EpochItems {
            items: Tensor::cat(&[asked, self.teacher_items.shallow_clone()], 1),
            aux: vec![
                teacher_asked,
                self.teacher_scores.shallow_clone(),
                Tensor::from_slice(&keep).view([rows, k]),
                mix,
            ],
        })
    }

    fn loss(&self, scores: &Tensor, aux: &[Tensor]) -> Tensor {
        let (k, l) = (self.config.k as i64, self.config.l as i64);
        rcekd_loss(
            &scores.narrow(1, 0, k),
            &scores.narrow(1, k, l),
            &scores.narrow(1, k + l, k),
            &aux[0].narrow(1, 0, k),
            &aux[0].narrow(1, k, l),
            &aux[1],
            &aux[2],
            &aux[3],
            self.config.tau,
        )
    }

    fn weight(&self) -> f64 {
        self.config.lambda
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32], shape: &[i64]) -> Tensor {
        Tensor::from_slice(v).view(shape)
    }

    /// K = 2, L = 1. S's logits (1, 0) against the teacher's (0, 0); I = one item, logits
    /// (student 2, teacher 1); T's first item is hidden (in I or S), its second kept (student
    /// 0.5, teacher 3). Mix w = 0.5.
    #[test]
    fn the_loss_matches_a_hand_computed_case() {
        let e = std::f64::consts::E;
        let on_s = -(0.5 * (e / (e + 1.0)).ln() + 0.5 * (1.0 / (e + 1.0)).ln());
        // Teacher distribution over (I, kept T): softmax(1, 3); student's log-softmax(2, 0.5).
        let (p1, p2) = (e / (e + e.powi(3)), e.powi(3) / (e + e.powi(3)));
        let z = (2.0f64.exp() + 0.5f64.exp()).ln();
        let on_t = -(p1 * (2.0 - z) + p2 * (0.5 - z));
        let want = 0.5 * on_s + 0.5 * on_t;
        let got = rcekd_loss(
            &t(&[1.0, 0.0], &[1, 2]),
            &t(&[2.0], &[1, 1]),
            &t(&[7.0, 0.5], &[1, 2]),
            &t(&[0.0, 0.0], &[1, 2]),
            &t(&[1.0], &[1, 1]),
            &t(&[9.0, 3.0], &[1, 2]),
            &t(&[0.0, 1.0], &[1, 2]),
            &t(&[0.5], &[1]),
            1.0,
        );
        let got = got.double_value(&[0]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    #[test]
    fn hidden_items_get_no_gradient_and_nothing_is_nan() {
        let student_t = t(&[7.0, 0.5], &[1, 2]).set_requires_grad(true);
        let loss = rcekd_loss(
            &t(&[1.0, 0.0], &[1, 2]),
            &t(&[2.0], &[1, 1]),
            &student_t,
            &t(&[0.0, 0.0], &[1, 2]),
            &t(&[1.0], &[1, 1]),
            &t(&[9.0, 3.0], &[1, 2]),
            &t(&[0.0, 1.0], &[1, 2]),
            &t(&[0.5], &[1]),
            1.0,
        );
        loss.sum(Kind::Float).backward();
        let grad: Vec<f32> = Vec::try_from(student_t.grad().view([-1])).unwrap();
        assert_eq!(grad[0], 0.0);
        assert!(grad[1].is_finite() && grad[1] != 0.0);
    }

    /// Student's top-4 (10, 11, 12, 13); the teacher's items 12 and 99: position counts
    /// (1, 1, 1, 0), weights exp((c + 1) / T).
    #[test]
    fn draw_weights_count_the_teacher_items_below_each_position() {
        let w = draw_weights(&[10, 11, 12, 13], &[12, 99], 4, 2, 10.0);
        let want: Vec<f32> = [1.0f64, 1.0, 1.0, 0.0]
            .iter()
            .map(|c| ((c + 1.0) / 10.0).exp() as f32)
            .collect();
        assert_eq!(w, want);
        assert_eq!(membership(&[12, 99], &[99, 5], 2, 2), vec![0.0, 1.0]);
    }
}
