//! Weight initialisation shared by the models: embeddings drawn as the reference does.

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
