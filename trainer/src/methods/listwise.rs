//! The relaxed ranking loss of RRD and DCD: a Plackett-Luce likelihood of a ranked list of
//! "interesting" items in which a set of other items competes at every position.

use tch::{Kind, Tensor};

/// Per query, -sum_k [s_k - log(sum_{l >= k} e^{s_l} + sum_j e^{u_j})] for the ranked scores
/// `ranked` [B, K] (best first) and the competing scores `others` [B, L]; [B]. Written with
/// log-sum-exp, which is the reference's sum of exponentials without its overflow (it clamps
/// the scores at 80 instead).
pub fn relaxed_ranking_loss(ranked: &Tensor, others: &Tensor) -> Tensor {
    let above = ranked.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    // log sum_{l >= k} e^{s_l}: a cumulative log-sum-exp from the end of the list.
    let tails = ranked.flip([1i64]).logcumsumexp(1).flip([1i64]);
    let rest = others.logsumexp([1i64].as_slice(), true);
    let below = tails
        .logaddexp(&rest)
        .sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
    below - above
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ranked items (2, 1) and one other item (0), by hand:
    /// -(2 - ln(e^2 + e^1 + e^0)) - (1 - ln(e^1 + e^0)).
    #[test]
    fn matches_a_hand_computed_case() {
        let ranked = Tensor::from_slice(&[2.0f32, 1.0]).view([1, 2]);
        let others = Tensor::from_slice(&[0.0f32]).view([1, 1]);
        let e = std::f64::consts::E;
        let want = -(2.0 - (e * e + e + 1.0).ln()) - (1.0 - (e + 1.0).ln());
        let got = relaxed_ranking_loss(&ranked, &others).double_value(&[0]);
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    /// The reference's form (sum of exponentials) agrees where it does not overflow, and the
    /// log-sum-exp form stays finite where it would.
    #[test]
    fn agrees_with_the_plain_form_and_stays_finite() {
        let ranked = Tensor::from_slice(&[0.3f32, -1.2, 0.8, 2.0, 0.0, -0.5]).view([2, 3]);
        let others = Tensor::from_slice(&[0.1f32, -0.4, 1.5, 0.2]).view([2, 2]);
        let plain = {
            let above = ranked.sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
            let below1 = ranked.flip([1i64]).exp().cumsum(1, Kind::Float);
            let below2 = others
                .exp()
                .sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
            let below =
                (below1 + below2)
                    .log()
                    .sum_dim_intlist([1i64].as_slice(), true, Kind::Float);
            -(above - below).squeeze_dim(1)
        };
        let ours = relaxed_ranking_loss(&ranked, &others);
        assert!(ours.allclose(&plain, 1e-5, 1e-5, false));
        let huge = Tensor::from_slice(&[500.0f32, 400.0]).view([1, 2]);
        let loss = relaxed_ranking_loss(&huge, &others.narrow(0, 0, 1));
        assert!(loss.isfinite().all().int64_value(&[]) == 1);
    }
}
