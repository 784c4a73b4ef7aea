//! Safetensors weights as the tests build and break them: tensors as plain (name, dtype,
//! shape, little-endian bytes) rows, serialized and read back.

use std::path::Path;

use rankdistill_core::artifact::ModelConfig;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

/// One tensor: name, dtype, shape and little-endian bytes.
pub type Tensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// Serializes `tensors` as a safetensors file.
pub fn serialize(tensors: &[Tensor]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(*d, s.clone(), b).expect("tensor view"),
            )
        })
        .collect();
    safetensors::serialize(views, None).expect("serialize")
}

/// Serializes f32 tensors given as (name, shape, little-endian bytes).
pub fn serialize_f32(tensors: Vec<(String, Vec<usize>, Vec<u8>)>) -> Vec<u8> {
    let tensors: Vec<Tensor> = tensors
        .into_iter()
        .map(|(n, s, b)| (n, Dtype::F32, s, b))
        .collect();
    serialize(&tensors)
}

/// The tensors of a safetensors file, sorted by name.
pub fn deserialize(bytes: &[u8]) -> Vec<Tensor> {
    let file = safetensors::SafeTensors::deserialize(bytes).expect("a safetensors file");
    let mut out: Vec<Tensor> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The tensors of the safetensors file at `path`, sorted by name.
pub fn read(path: &Path) -> Vec<Tensor> {
    deserialize(&std::fs::read(path).expect("read weights"))
}

/// The weights file of every tensor `config` expects, as f32 values from `value` (called with
/// the index within its tensor, tensor after tensor).
pub fn model_weights(config: &ModelConfig, mut value: impl FnMut(usize) -> f32) -> Vec<u8> {
    let tensors = config
        .expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let len: usize = shape.iter().product();
            let bytes = (0..len).flat_map(|i| value(i).to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    serialize_f32(tensors)
}
