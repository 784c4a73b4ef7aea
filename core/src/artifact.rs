//! The model artifact contract: a folder with `model.safetensors` and `manifest.json`. Teacher
//! checkpoints and distilled students share it. The manifest names the model shape, the data
//! fingerprint, the id maps, the training config, the teacher (for students) and the offline
//! metrics. This module validates an artifact without LibTorch, so student-svc and Python
//! users (`safetensors` package) read the same files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Layout version of an artifact folder.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;
/// File name of the weights inside an artifact folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// File name of the manifest inside an artifact folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Largest input length L a manifest may declare.
pub const MAX_SEQUENCE_LENGTH: i64 = 4096;
/// Largest parameter count a manifest may declare (2^36, 256 GiB of f32).
pub const MAX_PARAMETERS: u64 = 1 << 36;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Caser: convolutional sequence embedding (Tang and Wang, WSDM 2018).
    Caser,
    /// Matrix factorisation: score = P_u . Q_i + b_i.
    Mf,
    /// SASRec: causal self-attention over the last L items (Kang and McAuley, ICDM 2018);
    /// score = h_L . E_i with the input item table E as the output table.
    SasRec,
}

impl ModelKind {
    /// The training queries this kind trains on: SASRec's positions, the others' windows.
    pub fn query_set(self) -> crate::instances::QuerySet {
        match self {
            ModelKind::SasRec => crate::instances::QuerySet::Positions,
            ModelKind::Caser | ModelKind::Mf => crate::instances::QuerySet::Windows,
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "caser" => Ok(ModelKind::Caser),
            "mf" => Ok(ModelKind::Mf),
            "sasrec" => Ok(ModelKind::SasRec),
            other => Err(format!(
                "unknown model kind '{other}': use caser, mf or sasrec"
            )),
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Caser => "caser",
            ModelKind::Mf => "mf",
            ModelKind::SasRec => "sasrec",
        })
    }
}

/// Activation functions Caser offers for its conv and fc layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// f(x) = x.
    Identity,
    /// max(x, 0).
    Relu,
    /// tanh(x).
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
}

impl Activation {
    /// Applies the activation to one value.
    pub fn apply_scalar(self, x: f32) -> f32 {
        match self {
            Activation::Identity => x,
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "identity" | "iden" | "none" => Ok(Activation::Identity),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "sigmoid" | "sigm" => Ok(Activation::Sigmoid),
            other => Err(format!(
                "unknown activation '{other}': use identity, relu, tanh or sigmoid"
            )),
        }
    }
}

/// Shape and hyper-parameters of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Which model.
    pub kind: ModelKind,
    /// Embedding dimension d.
    pub dim: i64,
    /// Number of users.
    pub num_users: i64,
    /// Number of real items (item tables have one more row: padding id 0).
    pub num_items: i64,
    /// Input length L.
    pub sequence_length: i64,
    /// Caser: vertical filters.
    pub nv: i64,
    /// Caser: horizontal filters per height 1..=L.
    pub nh: i64,
    /// Dropout rate: Caser's before the fc layer; SASRec's on the embeddings, the attention
    /// weights and both feed-forward layers.
    pub dropout: f64,
    /// Caser: activation after each horizontal convolution.
    pub conv_activation: Activation,
    /// Caser: activation after the fc layer.
    pub fc_activation: Activation,
    /// SASRec: self-attention blocks (manifests without it read 2, the reference's default).
    #[serde(default = "default_num_blocks")]
    pub num_blocks: i64,
    /// SASRec: attention heads; `dim` must be a multiple (manifests without it read 1).
    #[serde(default = "default_num_heads")]
    pub num_heads: i64,
}

/// SASRec's reference number of blocks (kang205/SASRec `main.py`).
fn default_num_blocks() -> i64 {
    2
}

/// SASRec's reference number of heads (kang205/SASRec `main.py`).
fn default_num_heads() -> i64 {
    1
}

impl ModelConfig {
    /// The reference Caser settings (method.md) for a dataset shape.
    pub fn caser(dim: i64, num_users: i64, num_items: i64) -> Self {
        ModelConfig {
            kind: ModelKind::Caser,
            dim,
            num_users,
            num_items,
            sequence_length: 5,
            nv: 2,
            nh: 16,
            dropout: 0.5,
            conv_activation: Activation::Identity,
            fc_activation: Activation::Sigmoid,
            num_blocks: default_num_blocks(),
            num_heads: default_num_heads(),
        }
    }

    /// The reference SASRec settings (kang205/SASRec `main.py`: maxlen 50, 2 blocks, 1 head,
    /// dropout 0.5) for a dataset shape.
    pub fn sasrec(dim: i64, num_users: i64, num_items: i64) -> Self {
        ModelConfig {
            kind: ModelKind::SasRec,
            sequence_length: 50,
            ..Self::caser(dim, num_users, num_items)
        }
    }

    /// An MF model for a dataset shape.
    pub fn mf(dim: i64, num_users: i64, num_items: i64) -> Self {
        ModelConfig {
            kind: ModelKind::Mf,
            ..Self::caser(dim, num_users, num_items)
        }
    }

    /// Checks that the settings make a model of a size this build can hold: every count fits
    /// the u32 indices the services use, L is at most [`MAX_SEQUENCE_LENGTH`] and the
    /// parameter count at most [`MAX_PARAMETERS`] (so shape arithmetic cannot overflow).
    pub fn validate(&self) -> Result<(), String> {
        if self.dim <= 0 || self.num_users <= 0 || self.num_items <= 0 {
            return Err("dim, num_users and num_items must be positive".into());
        }
        for (name, value) in [
            ("dim", self.dim),
            ("num_users", self.num_users),
            ("num_items", self.num_items),
            ("nv", self.nv),
            ("nh", self.nh),
            ("num_blocks", self.num_blocks),
            ("num_heads", self.num_heads),
        ] {
            if value >= i64::from(u32::MAX) {
                return Err(format!(
                    "{name} {value} is too large (at most {})",
                    u32::MAX - 1
                ));
            }
        }
        if self.kind == ModelKind::Caser {
            if self.sequence_length <= 0 || self.nv < 0 || self.nh < 0 || self.nv + self.nh == 0 {
                return Err(
                    "Caser needs L >= 1 and at least one vertical or horizontal filter".into(),
                );
            }
            if self.sequence_length > MAX_SEQUENCE_LENGTH {
                return Err(format!(
                    "sequence_length {} is too large (at most {MAX_SEQUENCE_LENGTH})",
                    self.sequence_length
                ));
            }
            if !(0.0..1.0).contains(&self.dropout) {
                return Err("dropout must be in [0, 1)".into());
            }
        }
        if self.kind == ModelKind::SasRec {
            if self.sequence_length <= 0 || self.sequence_length > MAX_SEQUENCE_LENGTH {
                return Err(format!(
                    "SASRec needs 1 <= L <= {MAX_SEQUENCE_LENGTH}, not {}",
                    self.sequence_length
                ));
            }
            if self.num_blocks < 1 || self.num_heads < 1 || self.dim % self.num_heads != 0 {
                return Err(format!(
                    "SASRec needs at least one block and one head, and dim ({}) a multiple of the heads ({})",
                    self.dim, self.num_heads
                ));
            }
            if !(0.0..1.0).contains(&self.dropout) {
                return Err("dropout must be in [0, 1)".into());
            }
        }
        match self.checked_parameters() {
            Some(n) if n <= MAX_PARAMETERS => Ok(()),
            _ => Err(format!(
                "the model shape needs more than {MAX_PARAMETERS} parameters; the manifest is damaged or not for this build"
            )),
        }
    }

    /// The parameter count in checked arithmetic; `None` on overflow. Assumes non-negative
    /// fields below 2^32 and a bounded L (the first checks of `validate`).
    fn checked_parameters(&self) -> Option<u64> {
        let u = |x: i64| u64::try_from(x).ok();
        let (d, l, users, rows) = (
            u(self.dim)?,
            u(self.sequence_length)?,
            u(self.num_users)?,
            u(self.num_items)?.checked_add(1)?,
        );
        let embeddings = users.checked_mul(d)?.checked_add(rows.checked_mul(d)?)?;
        match self.kind {
            ModelKind::SasRec => {
                // Per block: two layer norms (2 x 2d), Q, K, V and two feed-forward layers
                // (5 x (d^2 + d)); then positions (L d) and the final norm (2d).
                let block = d
                    .checked_mul(d)?
                    .checked_add(d)?
                    .checked_mul(5)?
                    .checked_add(d.checked_mul(4)?)?;
                rows.checked_mul(d)?
                    .checked_add(l.checked_mul(d)?)?
                    .checked_add(block.checked_mul(u(self.num_blocks)?)?)?
                    .checked_add(d.checked_mul(2)?)
            }
            ModelKind::Mf => embeddings.checked_add(rows),
            ModelKind::Caser => {
                let (nv, nh) = (u(self.nv)?, u(self.nh)?);
                let conv_v = if nv > 0 {
                    nv.checked_mul(l)?.checked_add(nv)?
                } else {
                    0
                };
                let mut conv_h = 0u64;
                if nh > 0 {
                    for h in 1..=l {
                        conv_h = conv_h
                            .checked_add(nh.checked_mul(h)?.checked_mul(d)?)?
                            .checked_add(nh)?;
                    }
                }
                let fc_in = nv.checked_mul(d)?.checked_add(nh.checked_mul(l)?)?;
                let fc = d.checked_mul(fc_in)?.checked_add(d)?;
                let out = rows.checked_mul(d.checked_mul(2)?.checked_add(1)?)?;
                embeddings
                    .checked_add(conv_v)?
                    .checked_add(conv_h)?
                    .checked_add(fc)?
                    .checked_add(out)
            }
        }
    }

    /// Every tensor the weights file must hold, with its shape.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let u = |x: i64| x as usize;
        let (d, l, rows) = (u(self.dim), u(self.sequence_length), u(self.num_items) + 1);
        if self.kind == ModelKind::SasRec {
            return sasrec_tensors(d, l, rows, u(self.num_blocks));
        }
        let mut out = vec![
            (
                "user_embeddings.weight".to_string(),
                vec![u(self.num_users), d],
            ),
            ("item_embeddings.weight".to_string(), vec![rows, d]),
        ];
        match self.kind {
            ModelKind::Mf => out.push(("item_bias.weight".into(), vec![rows, 1])),
            ModelKind::SasRec => {}
            ModelKind::Caser => {
                let (nv, nh) = (u(self.nv), u(self.nh));
                if nv > 0 {
                    out.push(("conv_v.weight".into(), vec![nv, 1, l, 1]));
                    out.push(("conv_v.bias".into(), vec![nv]));
                }
                if nh > 0 {
                    for h in 1..=l {
                        out.push((format!("conv_h.{}.weight", h - 1), vec![nh, 1, h, d]));
                        out.push((format!("conv_h.{}.bias", h - 1), vec![nh]));
                    }
                }
                out.push(("fc1.weight".into(), vec![d, nv * d + nh * l]));
                out.push(("fc1.bias".into(), vec![d]));
                out.push(("W2.weight".into(), vec![rows, 2 * d]));
                out.push(("b2.weight".into(), vec![rows, 1]));
            }
        }
        out
    }

    /// Number of parameters the shape implies.
    pub fn num_parameters(&self) -> usize {
        self.expected_tensors()
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum()
    }
}

/// SASRec's tensors: the item table (row 0, padding, held at zero), the learned positions,
/// per block `blocks.{b}.` the attention's layer norm, Q, K and V (`[out, in]` with biases),
/// the feed-forward's layer norm and two layers, then the final layer norm. SASRec has no user
/// embedding.
fn sasrec_tensors(d: usize, l: usize, rows: usize, blocks: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = vec![
        ("item_embeddings.weight".to_string(), vec![rows, d]),
        ("position_embeddings.weight".to_string(), vec![l, d]),
    ];
    for b in 0..blocks {
        for layer in [
            "attention_norm",
            "query",
            "key",
            "value",
            "feed_forward_norm",
            "ff1",
            "ff2",
        ] {
            if layer.ends_with("_norm") {
                out.push((format!("blocks.{b}.{layer}.weight"), vec![d]));
            } else {
                out.push((format!("blocks.{b}.{layer}.weight"), vec![d, d]));
            }
            out.push((format!("blocks.{b}.{layer}.bias"), vec![d]));
        }
    }
    out.push(("final_norm.weight".to_string(), vec![d]));
    out.push(("final_norm.bias".to_string(), vec![d]));
    out
}

/// Reference to the prepared dataset a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRef {
    /// Folder of the prepared dataset at training time.
    pub path: String,
    /// Its content fingerprint.
    pub fingerprint: String,
}

/// The manifest of an artifact (`manifest.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactManifest {
    /// Layout version; see [`ARTIFACT_FORMAT_VERSION`].
    pub format_version: u32,
    /// Model shape and hyper-parameters.
    pub model: ModelConfig,
    /// The prepared dataset it was trained on.
    pub data: DataRef,
    /// Learnable parameters.
    pub num_parameters: i64,
    /// Content hash of the weights file (blake3, hex prefix): the model version.
    pub version: String,
    /// Training settings, as the trainer recorded them.
    pub training: serde_json::Value,
    /// Offline metrics at the end of training.
    pub metrics: serde_json::Value,
    /// For a distilled student: the teacher's identity (kind, version, dims).
    #[serde(default)]
    pub teacher: Option<serde_json::Value>,
    /// Dense user index to raw id.
    #[serde(default)]
    pub users: Vec<String>,
    /// Dense item index to raw id.
    #[serde(default)]
    pub items: Vec<String>,
}

impl ArtifactManifest {
    /// A manifest for a model trained on `data`; version and parameter count are filled in
    /// when it is saved.
    pub fn new(model: ModelConfig, data: DataRef) -> Self {
        ArtifactManifest {
            format_version: ARTIFACT_FORMAT_VERSION,
            model,
            data,
            num_parameters: 0,
            version: String::new(),
            training: serde_json::Value::Null,
            metrics: serde_json::Value::Null,
            teacher: None,
            users: Vec::new(),
            items: Vec::new(),
        }
    }
}

/// Errors of reading an artifact.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The artifact is inconsistent.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

fn invalid(path: &Path, reason: impl Into<String>) -> ArtifactError {
    ArtifactError::Invalid {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Content hash of a weights file, as stored in `version`.
pub fn weights_version(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..16].to_string()
}

/// Reads and checks a manifest: format version, model shape, id-map sizes.
pub fn read_manifest(dir: &Path) -> Result<ArtifactManifest, ArtifactError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ArtifactError::Io {
        path: path.clone(),
        source,
    })?;
    let manifest: ArtifactManifest = serde_json::from_slice(&bytes)
        .map_err(|e| invalid(&path, format!("not an artifact manifest: {e}")))?;
    if manifest.format_version != ARTIFACT_FORMAT_VERSION {
        return Err(invalid(
            &path,
            format!(
                "format version {} is not supported (this build reads {ARTIFACT_FORMAT_VERSION})",
                manifest.format_version
            ),
        ));
    }
    manifest.model.validate().map_err(|r| invalid(&path, r))?;
    if !manifest.items.is_empty() && manifest.items.len() as i64 != manifest.model.num_items {
        return Err(invalid(
            &path,
            format!(
                "item map has {} ids but the model has {} items",
                manifest.items.len(),
                manifest.model.num_items
            ),
        ));
    }
    if !manifest.users.is_empty() && manifest.users.len() as i64 != manifest.model.num_users {
        return Err(invalid(
            &path,
            format!(
                "user map has {} ids but the model has {} users",
                manifest.users.len(),
                manifest.model.num_users
            ),
        ));
    }
    for (what, ids) in [("user", &manifest.users), ("item", &manifest.items)] {
        let mut first = HashMap::with_capacity(ids.len());
        for (index, id) in ids.iter().enumerate() {
            if let Some(earlier) = first.insert(id.as_str(), index) {
                return Err(invalid(
                    &path,
                    format!(
                        "{what} map holds the id '{id}' twice (dense {earlier} and {index}); the manifest is damaged"
                    ),
                ));
            }
        }
    }
    Ok(manifest)
}

/// An artifact's weights as f32 tensors, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    /// Name to (shape, row-major values).
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

/// A fully validated artifact.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// Its manifest.
    pub manifest: ArtifactManifest,
    /// Its weights.
    pub weights: Weights,
}

/// Loads and validates an artifact without LibTorch: manifest, weights hash, every expected
/// tensor present as finite f32 values with the right shape, nothing unexpected, and (when
/// given) the data fingerprint.
pub fn load(dir: &Path, expected_fingerprint: Option<&str>) -> Result<Artifact, ArtifactError> {
    let manifest = read_manifest(dir)?;
    if let Some(fp) = expected_fingerprint
        && fp != manifest.data.fingerprint
    {
        return Err(invalid(
            dir,
            format!(
                "trained on data with fingerprint {} but the expected data has {fp}",
                manifest.data.fingerprint
            ),
        ));
    }
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|source| ArtifactError::Io {
        path: path.clone(),
        source,
    })?;
    let version = weights_version(&bytes);
    if version != manifest.version {
        return Err(invalid(
            &path,
            format!(
                "weights hash {version} does not match the manifest's version {}; the artifact is corrupt or mixed with another",
                manifest.version
            ),
        ));
    }
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| invalid(&path, format!("not a safetensors file: {e}")))?;
    let expected = manifest.model.expected_tensors();
    let mut tensors = HashMap::with_capacity(expected.len());
    for (name, shape) in &expected {
        let view = file
            .tensor(name)
            .map_err(|_| invalid(&path, format!("missing tensor '{name}'")))?;
        if view.shape() != shape.as_slice() {
            return Err(invalid(
                &path,
                format!(
                    "tensor '{name}' has shape {:?}, the manifest's model needs {shape:?}",
                    view.shape()
                ),
            ));
        }
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(invalid(
                &path,
                format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
            ));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(at) = values.iter().position(|v| !v.is_finite()) {
            return Err(invalid(
                &path,
                format!(
                    "tensor '{name}' holds NaN or infinite values (element {at} is {}); the training diverged or the file is damaged",
                    values[at]
                ),
            ));
        }
        tensors.insert(name.clone(), (shape.clone(), values));
    }
    if let Some(extra) = file
        .names()
        .into_iter()
        .find(|n| !expected.iter().any(|(e, _)| e == *n))
    {
        return Err(invalid(
            &path,
            format!(
                "unexpected tensor '{extra}' for a {} model",
                manifest.model.kind
            ),
        ));
    }
    Ok(Artifact {
        manifest,
        weights: Weights { tensors },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a synthetic artifact with the given tensors.
    fn write(dir: &Path, manifest: &mut ArtifactManifest, tensors: &[(String, Vec<usize>)]) {
        let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(n, s)| {
                let len: usize = s.iter().product();
                (n.clone(), s.clone(), vec![0u8; len * 4])
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                        .unwrap(),
                )
            })
            .collect();
        let bytes = safetensors::serialize(views, None).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(WEIGHTS_FILE), &bytes).unwrap();
        manifest.version = weights_version(&bytes);
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(manifest).unwrap(),
        )
        .unwrap();
    }

    fn manifest() -> ArtifactManifest {
        let mut m = ArtifactManifest::new(
            ModelConfig::caser(4, 2, 3),
            DataRef {
                path: "d".into(),
                fingerprint: "fp".into(),
            },
        );
        m.items = vec!["a".into(), "b".into(), "c".into()];
        m
    }

    #[test]
    fn sasrec_shapes_count_and_validate() {
        let config = ModelConfig::sasrec(6, 3, 10);
        assert_eq!(
            (config.sequence_length, config.num_blocks, config.num_heads),
            (50, 2, 1)
        );
        config.validate().unwrap();
        let (d, l, rows) = (6, 50, 11);
        let block = 5 * (d * d + d) + 4 * d;
        assert_eq!(
            config.num_parameters(),
            rows * d + l * d + 2 * block + 2 * d
        );
        assert_eq!(
            config.checked_parameters(),
            Some(config.num_parameters() as u64)
        );
        let names: Vec<String> = config.expected_tensors().into_iter().map(|t| t.0).collect();
        assert!(!names.iter().any(|n| n.starts_with("user_")), "{names:?}");
        assert!(names.contains(&"blocks.1.ff2.bias".to_string()));
        let bad = |f: fn(&mut ModelConfig)| {
            let mut c = ModelConfig::sasrec(6, 3, 10);
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.num_heads = 4).contains("multiple of the heads"));
        assert!(bad(|c| c.num_blocks = 0).contains("at least one block"));
        assert!(bad(|c| c.sequence_length = 0).contains("SASRec needs 1 <= L"));
        // A manifest written before SASRec existed reads the reference's blocks and heads.
        let mut json = serde_json::to_value(ModelConfig::caser(4, 2, 3)).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("num_blocks");
        object.remove("num_heads");
        let old: ModelConfig = serde_json::from_value(json).unwrap();
        assert_eq!((old.num_blocks, old.num_heads), (2, 1));
    }

    #[test]
    fn shapes_are_bounded_and_counted_without_overflow() {
        for config in [
            ModelConfig::caser(50, 943, 1613),
            ModelConfig::mf(8, 3, 5),
            ModelConfig {
                nv: 0,
                sequence_length: 9,
                ..ModelConfig::caser(4, 2, 3)
            },
        ] {
            assert_eq!(config.validate(), Ok(()));
            assert_eq!(
                config.checked_parameters(),
                Some(config.num_parameters() as u64)
            );
        }
        let huge = |f: fn(&mut ModelConfig)| {
            let mut config = ModelConfig::caser(4, 2, 3);
            f(&mut config);
            config.validate().unwrap_err()
        };
        assert!(huge(|c| c.dim = i64::MAX).contains("dim 9223372036854775807 is too large"));
        assert!(huge(|c| c.sequence_length = 1 << 40).contains("sequence_length"));
        assert!(
            huge(|c| {
                c.dim = 1 << 20;
                c.num_items = 1 << 20;
            })
            .contains("parameters")
        );
        assert!(huge(|c| c.nh = 1 << 30).contains("parameters"));
    }

    #[test]
    fn a_consistent_artifact_loads() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = manifest();
        let expected = m.model.expected_tensors();
        write(dir.path(), &mut m, &expected);
        let a = load(dir.path(), Some("fp")).unwrap();
        assert_eq!(a.weights.tensors.len(), expected.len());
        assert_eq!(a.weights.tensors["W2.weight"].0, vec![4, 8]);
    }

    #[test]
    fn inconsistent_artifacts_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = manifest();
        let mut tensors = m.model.expected_tensors();
        tensors.retain(|(n, _)| n != "fc1.bias");
        write(dir.path(), &mut m, &tensors);
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("missing tensor 'fc1.bias'"), "{err}");

        let mut tensors = m.model.expected_tensors();
        tensors[0].1 = vec![9, 9];
        write(dir.path(), &mut m, &tensors);
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("has shape [9, 9]"), "{err}");

        let tensors = m.model.expected_tensors();
        write(dir.path(), &mut m, &tensors);
        let err = load(dir.path(), Some("other")).unwrap_err().to_string();
        assert!(err.contains("fingerprint fp"), "{err}");

        m.format_version = 7;
        write(dir.path(), &mut m, &tensors);
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("format version 7"), "{err}");

        let mut m = manifest();
        m.items.pop();
        write(dir.path(), &mut m, &tensors);
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("item map has 2 ids"), "{err}");

        let mut m = manifest();
        m.items[2] = "a".into();
        write(dir.path(), &mut m, &tensors);
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("item map holds the id 'a' twice (dense 0 and 2)"),
            "{err}"
        );

        let mut m = manifest();
        write(dir.path(), &mut m, &tensors);
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"garbage").unwrap();
        let err = load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("does not match the manifest"), "{err}");
    }
}
