//! Weight initialisation shared by the models, as the reference does: embeddings drawn from a
//! normal, layers with PyTorch's default init.

use tch::nn;

/// An embedding table initialised N(0, 1/cols), as the reference Caser does.
pub(crate) fn normal_embedding(path: nn::Path, rows: i64, cols: i64) -> nn::Embedding {
    let std = 1.0 / cols as f64;
    nn::embedding(
        path,
        rows,
        cols,
        nn::EmbeddingConfig {
            ws_init: nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
            ..Default::default()
        },
    )
}

/// An embedding table initialised to zeros (biases).
pub(crate) fn zero_embedding(path: nn::Path, rows: i64, cols: i64) -> nn::Embedding {
    nn::embedding(
        path,
        rows,
        cols,
        nn::EmbeddingConfig {
            ws_init: nn::Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// PyTorch's default init of `nn.Linear` and `nn.Conv2d`, which the reference keeps for Caser's
/// convolutions and fc1: weights and biases uniform in +-1/sqrt(fan_in). (tch's own default is
/// Kaiming-uniform weights, sqrt(6) times wider, with zero conv biases.)
fn pytorch_default(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A 2-D convolution from 1 channel with `out` filters of `kernel`, PyTorch's default init.
pub(crate) fn conv2d(path: nn::Path, out: i64, kernel: [i64; 2]) -> nn::Conv2D {
    let init = pytorch_default(kernel[0] * kernel[1]);
    nn::conv(
        path,
        1,
        out,
        kernel,
        nn::ConvConfigND::<[i64; 2]> {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
            ws_init: init,
            bs_init: init,
            padding_mode: nn::PaddingMode::Zeros,
        },
    )
}

/// A linear layer `inputs` -> `outputs`, PyTorch's default init.
pub(crate) fn linear(path: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    let init = pytorch_default(inputs);
    nn::linear(
        path,
        inputs,
        outputs,
        nn::LinearConfig {
            ws_init: init,
            bs_init: Some(init),
            bias: true,
        },
    )
}

/// TensorFlow's default initialiser (`glorot_uniform`), which the SASRec reference's
/// variables get: uniform in +-sqrt(6 / (fan_in + fan_out)).
pub(crate) fn glorot_uniform(fan_in: i64, fan_out: i64) -> nn::Init {
    let bound = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A dense layer with glorot-uniform weights and zero biases (TensorFlow's `dense` and
/// `conv1d` defaults).
pub(crate) fn glorot_linear(path: nn::Path, inputs: i64, outputs: i64) -> nn::Linear {
    nn::linear(
        path,
        inputs,
        outputs,
        nn::LinearConfig {
            ws_init: glorot_uniform(inputs, outputs),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn bound_of(t: &tch::Tensor) -> f64 {
        t.abs().max().double_value(&[])
    }

    /// Every weight and bias of the layers lies within PyTorch's 1/sqrt(fan_in), and fills most
    /// of it (not tch's sqrt(6/fan_in) Kaiming bound, not zero biases).
    #[test]
    fn layers_use_pytorch_s_default_bounds() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = conv2d(vs.root() / "c", 16, [3, 50]);
        let fc = linear(vs.root() / "f", 132, 50);
        for (weight, bias, fan_in) in [
            (&conv.ws, conv.bs.as_ref().unwrap(), 150.0f64),
            (&fc.ws, fc.bs.as_ref().unwrap(), 132.0),
        ] {
            let bound = 1.0 / fan_in.sqrt();
            for t in [weight, bias] {
                let b = bound_of(t);
                assert!(b <= bound + 1e-7, "{b} > {bound}");
                assert!(b > 0.8 * bound, "{b} fills too little of {bound}");
            }
        }
    }
}
