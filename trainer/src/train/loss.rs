//! The ranking loss L_R: binary cross-entropy over an instance's targets and sampled negatives.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// How the binary cross-entropy terms of a batch are reduced to one loss. The same form is
/// used for the teacher, the student alone and the L_R part of distillation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BceForm {
    /// The reference code (`losses.py`, `sigmoid_log_loss`): the target terms and the negative
    /// terms are summed per instance, then averaged over the batch.
    #[default]
    Sum,
    /// Mean over all target terms plus mean over all negative terms: against `Sum`, the
    /// targets' term is divided by T and the negatives' by their number per instance.
    Mean,
}

impl BceForm {
    /// The form of runs whose settings predate `bce`: they were trained with `Mean`.
    pub fn recorded_before_the_setting() -> BceForm {
        BceForm::Mean
    }

    /// The flag value naming this form.
    pub fn name(self) -> &'static str {
        match self {
            BceForm::Sum => "sum",
            BceForm::Mean => "mean",
        }
    }
}

/// Binary cross-entropy of targets `positive` [B, T] and negatives `negative` [B, N] in `form`:
/// `Sum` gives mean_b(-sum_t log s(pos) - sum_n log(1 - s(neg))), `Mean` gives
/// -mean log s(pos) - mean log(1 - s(neg)).
pub fn bce_loss(positive: &Tensor, negative: &Tensor, form: BceForm) -> Tensor {
    bce_instance_terms(positive, negative, form).mean(Kind::Float)
}

/// The reference's per-instance loss: -sum_t log s(pos) - sum_n log(1 - s(neg)); [B].
pub fn bce_per_instance(positive: &Tensor, negative: &Tensor) -> Tensor {
    let sum1 = |t: Tensor| t.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    sum1(-positive.log_sigmoid()) + sum1(-(-negative).log_sigmoid())
}

/// L_R per instance in `form`, so that its batch mean is `bce_loss(.., form)`; [B].
pub fn bce_instance_terms(positive: &Tensor, negative: &Tensor, form: BceForm) -> Tensor {
    match form {
        BceForm::Sum => bce_per_instance(positive, negative),
        BceForm::Mean => {
            let mean1 = |t: Tensor| t.mean_dim([1i64].as_slice(), false, Kind::Float);
            mean1(-positive.log_sigmoid()) + mean1(-(-negative).log_sigmoid())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// T = 1 and three negatives, as the reference trains: the negatives' terms are summed per
    /// instance, not averaged. The mean-per-kind form gives them a third of that weight, so this
    /// test fails on it.
    #[test]
    fn the_default_sums_targets_and_negatives_per_instance() {
        let pos = Tensor::from_slice(&[0.5f32, -1.0]).view([2, 1]);
        let neg = Tensor::from_slice(&[2.0f32, 0.0, -0.5, 1.0, 0.3, -2.0]).view([2, 3]);
        let rows = [(0.5, [2.0, 0.0, -0.5]), (-1.0, [1.0, 0.3, -2.0])];
        let per_instance: Vec<f64> = rows
            .iter()
            .map(|(p, ns)| -sig(*p).ln() - ns.iter().map(|n| (1.0 - sig(*n)).ln()).sum::<f64>())
            .collect();
        let reference = per_instance.iter().sum::<f64>() / 2.0;
        let got = bce_loss(&pos, &neg, BceForm::default()).double_value(&[]);
        assert!((got - reference).abs() < 1e-5, "{got} vs {reference}");
        let terms = bce_instance_terms(&pos, &neg, BceForm::Sum);
        let terms: Vec<f32> = Vec::try_from(&terms).unwrap();
        for (got, want) in terms.iter().zip(&per_instance) {
            assert!((*got as f64 - want).abs() < 1e-5);
        }
    }

    #[test]
    fn the_mean_form_averages_each_kind() {
        let pos = Tensor::from_slice(&[0.5f32, -1.0]).view([2, 1]);
        let neg = Tensor::from_slice(&[2.0f32, 0.0, -0.5, 1.0, 0.3, -2.0]).view([2, 3]);
        let positive = -(sig(0.5).ln() + sig(-1.0).ln()) / 2.0;
        let negative = -[2.0, 0.0, -0.5, 1.0, 0.3, -2.0]
            .iter()
            .map(|n: &f64| (1.0 - sig(*n)).ln())
            .sum::<f64>()
            / 6.0;
        let got = bce_loss(&pos, &neg, BceForm::Mean).double_value(&[]);
        assert!((got - (positive + negative)).abs() < 1e-5);
        let terms = bce_instance_terms(&pos, &neg, BceForm::Mean).mean(Kind::Float);
        assert!((terms.double_value(&[]) - got).abs() < 1e-5);
        // With several negatives the two forms differ: the mean form is not the reference.
        let sum = bce_loss(&pos, &neg, BceForm::Sum).double_value(&[]);
        assert!((sum - got).abs() > 0.1);
    }
}
