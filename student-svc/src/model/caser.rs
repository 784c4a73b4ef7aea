//! Caser's convolutional layers and their forward pass in pure Rust: the sequence
//! representation z of the last L input items, as `teacher-svc` computes it at inference
//! (dropout off).

use rankdistill_core::artifact::{Activation, Artifact, ModelConfig};
use rankdistill_core::instances::PAD;

use super::embeddings::Embeddings;
use super::weights::{ModelError, take};

/// The vertical and horizontal convolutions and the fully connected layer of Caser.
#[derive(Debug)]
pub(super) struct CaserLayers {
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

impl CaserLayers {
    /// Takes the layers' tensors out of the artifact (conv_v, conv_h.*, fc1, in that order).
    pub(super) fn take(artifact: &mut Artifact, config: &ModelConfig) -> Result<Self, ModelError> {
        let u = |x: i64| x.max(0) as usize;
        let (d, l) = (u(config.dim), u(config.sequence_length));
        let (nv, nh) = (u(config.nv), u(config.nh));
        let (conv_v_weight, conv_v_bias) = if nv > 0 {
            (
                take(artifact, "conv_v.weight", nv * l)?,
                take(artifact, "conv_v.bias", nv)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let mut conv_h = Vec::new();
        if nh > 0 {
            for h in 1..=l {
                conv_h.push((
                    take(artifact, &format!("conv_h.{}.weight", h - 1), nh * h * d)?,
                    take(artifact, &format!("conv_h.{}.bias", h - 1), nh)?,
                ));
            }
        }
        let fc_in = nv * d + nh * l;
        Ok(CaserLayers {
            nv,
            nh,
            conv_v_weight,
            conv_v_bias,
            conv_h,
            fc1_weight: take(artifact, "fc1.weight", d * fc_in)?,
            fc1_bias: take(artifact, "fc1.bias", d)?,
            conv_activation: config.conv_activation,
            fc_activation: config.fc_activation,
        })
    }

    /// Caser's sequence representation z (length d) of the last `l` of `inputs`
    /// (left-padded when fewer are given).
    pub(super) fn forward(&self, embeddings: &Embeddings, l: usize, inputs: &[u32]) -> Vec<f32> {
        let d = embeddings.dim;
        // E: L x d, the last L input ids (left-padded when fewer are given).
        let mut e = vec![0.0f32; l * d];
        let start = inputs.len().saturating_sub(l);
        let given = &inputs[start..];
        let offset = l - given.len();
        for (t, &id) in given.iter().enumerate() {
            e[(offset + t) * d..(offset + t + 1) * d].copy_from_slice(embeddings.item_row(id));
        }
        for t in 0..offset {
            e[t * d..(t + 1) * d].copy_from_slice(embeddings.item_row(PAD));
        }
        let mut x = Vec::with_capacity(self.nv * d + self.nh * l);
        // Vertical: out_v[f, j] = sum_t W[f, t] E[t, j] + b[f], f-major.
        for f in 0..self.nv {
            let w = &self.conv_v_weight[f * l..(f + 1) * l];
            for j in 0..d {
                let mut s = self.conv_v_bias[f];
                for t in 0..l {
                    s += w[t] * e[t * d + j];
                }
                x.push(s);
            }
        }
        // Horizontal: per height h, nh filters over windows, activation, max over time.
        for (hi, (w, b)) in self.conv_h.iter().enumerate() {
            let h = hi + 1;
            for f in 0..self.nh {
                let wf = &w[f * h * d..(f + 1) * h * d];
                let mut best = f32::NEG_INFINITY;
                for t in 0..=(l - h) {
                    let window = &e[t * d..(t + h) * d];
                    let s: f32 = wf.iter().zip(window).map(|(a, b)| a * b).sum::<f32>() + b[f];
                    let s = self.conv_activation.apply_scalar(s);
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
                let row = &self.fc1_weight[o * fc_in..(o + 1) * fc_in];
                let s: f32 = row.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>() + self.fc1_bias[o];
                self.fc_activation.apply_scalar(s)
            })
            .collect()
    }
}
