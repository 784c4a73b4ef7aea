//! Reading the student's tensors out of an artifact: each one by name, with its length and
//! finiteness checked, so nothing downstream scores NaN weights or indexes past a table.

use rankdistill_core::artifact::Artifact;

/// Why an artifact cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor is missing or mis-shaped (the loader should have refused it).
    #[error("tensor '{0}' is missing or mis-shaped")]
    Tensor(String),
    /// Hyper-parameters the model cannot be built with (the loader should have refused them).
    #[error("model config: {0}")]
    Config(String),
    /// Weights that are NaN or infinite.
    #[error("tensor '{0}' holds NaN or infinite values")]
    NotFinite(String),
}

/// Removes tensor `name` from the artifact: `len` finite values, else the error naming it.
pub(super) fn take(
    artifact: &mut Artifact,
    name: &str,
    len: usize,
) -> Result<Vec<f32>, ModelError> {
    let (_, values) = artifact
        .weights
        .tensors
        .remove(name)
        .ok_or_else(|| ModelError::Tensor(name.to_string()))?;
    if values.len() != len {
        return Err(ModelError::Tensor(name.to_string()));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::NotFinite(name.to_string()));
    }
    Ok(values)
}
