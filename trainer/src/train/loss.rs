//! The reference training loss: binary cross-entropy over targets and sampled negatives.

use tch::{Kind, Tensor};

/// Binary cross-entropy of the reference: -mean log s(pos) - mean log(1 - s(neg)).
pub fn bce_loss(positive: &Tensor, negative: &Tensor) -> Tensor {
    -positive.log_sigmoid().mean(Kind::Float) - (-negative).log_sigmoid().mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_matches_the_formula() {
        let pos = Tensor::from_slice(&[0.5f32, -1.0]).view([2, 1]);
        let neg = Tensor::from_slice(&[2.0f32, 0.0]).view([2, 1]);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let expected = -((sig(0.5).ln() + sig(-1.0).ln()) / 2.0)
            - (((1.0 - sig(2.0)).ln() + (1.0 - sig(0.0)).ln()) / 2.0);
        assert!((bce_loss(&pos, &neg).double_value(&[]) - expected).abs() < 1e-6);
    }
}
