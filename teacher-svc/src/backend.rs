//! The two kinds of served model behind one trait: a native checkpoint (Caser/MF trained by
//! `trainer`) or a user's TorchScript module.
//!
//! TorchScript signature: `forward(users: int64[B], sequences: int64[B, L]) -> float[B, N]`.
//! `users` are dense user indices of the prepared dataset (0-based, in its `users.txt` order);
//! `sequences` are the last L items of each query as input ids (0 = padding, dense item i is
//! i + 1), oldest first and left-padded; the result scores every dense item 0..N, where N must
//! be the dataset's number of items. Higher is better. L is `--sequence-length` (default 5).
//! An optional sidecar `<file>.json` may give `data_fingerprint` (checked against `--data`),
//! `sequence_length` and `dim`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{CModule, Device, Kind, Tensor};

use crate::error::StartupError;
use rankdistill_models::checkpoint::{self, LoadedModel};
use rankdistill_models::{device_name, mask_excluded, top_k_rows};

/// L of a TorchScript model when neither the flag nor a sidecar gives it.
pub const DEFAULT_SEQUENCE_LENGTH: usize = 5;

/// What the service says about the model it serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDescription {
    /// "caser", "mf" or "torchscript".
    pub kind: String,
    /// Embedding dimension (0 when a TorchScript model does not declare it).
    pub dim: u32,
    /// Items scored.
    pub num_items: usize,
    /// Users known.
    pub num_users: usize,
    /// Input length L.
    pub sequence_length: usize,
    /// Content hash of the weights (native) or of the TorchScript file.
    pub version: String,
    /// Fingerprint of the data the model was trained on, when the model records it.
    pub data_fingerprint: Option<String>,
    /// Learnable parameters.
    pub num_parameters: u64,
    /// Device name ("cpu", "cuda:0").
    pub device: String,
}

/// A model that scores all items for a batch of queries. Implementations own tch objects and
/// live on the model thread.
pub trait Scorer {
    /// What is served.
    fn description(&self) -> &ModelDescription;
    /// The device inputs must be on.
    fn device(&self) -> Device;
    /// users int64 [B], inputs int64 [B, L] input ids -> scores float [B, num_items].
    fn score_all(&self, users: &Tensor, inputs: &Tensor) -> Result<Tensor, String>;

    /// The top k (dense item, score) of every query without the items of `excludes[row]`
    /// (dense, in range), best first: by default all items scored, masked, then the top k.
    fn rank_all(
        &self,
        users: &Tensor,
        inputs: &Tensor,
        excludes: &[Vec<u32>],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>, String> {
        let mut scores = self.score_all(users, inputs)?;
        mask_excluded(&mut scores, excludes);
        Ok(top_k_rows(&scores, k as i64))
    }
}

/// Facts about the prepared dataset that a model must agree with.
#[derive(Debug, Clone)]
pub struct DataShape {
    /// The dataset folder (for messages).
    pub path: PathBuf,
    /// Its content fingerprint.
    pub fingerprint: String,
    /// Number of users.
    pub num_users: usize,
    /// Number of items.
    pub num_items: usize,
}

/// What to load and where.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Checkpoint folder or TorchScript file.
    pub model: PathBuf,
    /// Device to load onto.
    pub device: Device,
    /// L requested on the command line.
    pub sequence_length: Option<usize>,
}

/// Optional sidecar of a TorchScript file (`<file>.json`).
#[derive(Debug, Default, Deserialize)]
struct TorchScriptSidecar {
    data_fingerprint: Option<String>,
    sequence_length: Option<usize>,
    dim: Option<u32>,
}

/// A served model: native or TorchScript.
#[derive(Debug)]
pub enum Backend {
    /// A Caser/MF checkpoint.
    Native {
        /// The loaded weights and model.
        loaded: Box<LoadedModel>,
        /// Its description.
        description: ModelDescription,
    },
    /// A TorchScript module.
    TorchScript {
        /// The module.
        module: CModule,
        /// Its description.
        description: ModelDescription,
        /// Its device.
        device: Device,
    },
}

impl Backend {
    /// Loads the model at `spec.model` (a folder is a native checkpoint, a file TorchScript)
    /// and checks it against the dataset.
    pub fn load(spec: &LoadSpec, data: &DataShape) -> Result<Backend, StartupError> {
        if spec.model.is_dir() {
            load_native(spec, data)
        } else if spec.model.is_file() {
            load_torchscript(spec, data)
        } else {
            Err(StartupError::Mismatch(format!(
                "--model {}: no such checkpoint folder or TorchScript file",
                spec.model.display()
            )))
        }
    }
}

fn load_native(spec: &LoadSpec, data: &DataShape) -> Result<Backend, StartupError> {
    let loaded = checkpoint::load(&spec.model, spec.device)?;
    let manifest = &loaded.manifest;
    if manifest.data.fingerprint != data.fingerprint {
        return Err(StartupError::FingerprintMismatch {
            model: spec.model.clone(),
            model_fingerprint: manifest.data.fingerprint.clone(),
            data: data.path.clone(),
            data_fingerprint: data.fingerprint.clone(),
        });
    }
    let config = &manifest.model;
    if config.num_items as usize != data.num_items || config.num_users as usize != data.num_users {
        return Err(StartupError::Mismatch(format!(
            "the checkpoint has {} users and {} items, the dataset {} and {}",
            config.num_users, config.num_items, data.num_users, data.num_items
        )));
    }
    let sequence_length = config.sequence_length as usize;
    if let Some(flag) = spec.sequence_length
        && flag != sequence_length
    {
        return Err(StartupError::Mismatch(format!(
            "--sequence-length {flag} differs from the checkpoint's L = {sequence_length}; omit the flag for native checkpoints"
        )));
    }
    let description = ModelDescription {
        kind: config.kind.to_string(),
        dim: config.dim as u32,
        num_items: data.num_items,
        num_users: data.num_users,
        sequence_length,
        version: manifest.version.clone(),
        data_fingerprint: Some(manifest.data.fingerprint.clone()),
        num_parameters: manifest.num_parameters.max(0) as u64,
        device: device_name(spec.device),
    };
    Ok(Backend::Native {
        loaded: Box::new(loaded),
        description,
    })
}

fn sidecar_path(model: &Path) -> PathBuf {
    let mut name = model.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

fn load_torchscript(spec: &LoadSpec, data: &DataShape) -> Result<Backend, StartupError> {
    let path = spec.model.clone();
    let fail = |reason: String| StartupError::TorchScript {
        path: path.clone(),
        reason,
    };
    let sidecar_file = sidecar_path(&path);
    let sidecar: TorchScriptSidecar = match std::fs::read(&sidecar_file) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("sidecar {}: {e}", sidecar_file.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TorchScriptSidecar::default(),
        Err(e) => return Err(fail(format!("sidecar {}: {e}", sidecar_file.display()))),
    };
    if let Some(fingerprint) = &sidecar.data_fingerprint
        && *fingerprint != data.fingerprint
    {
        return Err(StartupError::FingerprintMismatch {
            model: path,
            model_fingerprint: fingerprint.clone(),
            data: data.path.clone(),
            data_fingerprint: data.fingerprint.clone(),
        });
    }
    let sequence_length = match (spec.sequence_length, sidecar.sequence_length) {
        (Some(flag), Some(side)) if flag != side => {
            return Err(StartupError::Mismatch(format!(
                "--sequence-length {flag} differs from L = {side} in {}",
                sidecar_file.display()
            )));
        }
        (Some(l), _) | (None, Some(l)) => l,
        (None, None) => DEFAULT_SEQUENCE_LENGTH,
    };
    if sequence_length == 0 {
        return Err(StartupError::Mismatch(
            "the sequence length must be at least 1".into(),
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
    let version = blake3::hash(&bytes).to_hex()[..16].to_string();
    let mut module =
        CModule::load_on_device(&path, spec.device).map_err(|e| fail(e.to_string()))?;
    module.f_set_eval().map_err(|e| fail(e.to_string()))?;
    let num_parameters = module
        .named_parameters()
        .map(|params| params.iter().map(|(_, t)| t.numel() as u64).sum())
        .unwrap_or(0);
    // Probe the signature with one all-padding query of user 0.
    let users = Tensor::zeros([1], (Kind::Int64, spec.device));
    let inputs = Tensor::zeros([1, sequence_length as i64], (Kind::Int64, spec.device));
    let probe = {
        let _guard = tch::no_grad_guard();
        module.forward_ts(&[&users, &inputs]).map_err(|e| {
            fail(format!(
                "forward(users int64[B], sequences int64[B, {sequence_length}]) failed: {e}"
            ))
        })?
    };
    let shape = probe.size();
    if shape != [1, data.num_items as i64] {
        return Err(fail(format!(
            "forward returned shape {shape:?} for one query; expected [1, {}] (one score per item of the dataset)",
            data.num_items
        )));
    }
    let description = ModelDescription {
        kind: "torchscript".into(),
        dim: sidecar.dim.unwrap_or(0),
        num_items: data.num_items,
        num_users: data.num_users,
        sequence_length,
        version,
        data_fingerprint: sidecar.data_fingerprint,
        num_parameters,
        device: device_name(spec.device),
    };
    Ok(Backend::TorchScript {
        module,
        description,
        device: spec.device,
    })
}

impl Scorer for Backend {
    fn description(&self) -> &ModelDescription {
        match self {
            Backend::Native { description, .. } | Backend::TorchScript { description, .. } => {
                description
            }
        }
    }

    fn device(&self) -> Device {
        match self {
            Backend::Native { loaded, .. } => loaded.vs.device(),
            Backend::TorchScript { device, .. } => *device,
        }
    }

    fn rank_all(
        &self,
        users: &Tensor,
        inputs: &Tensor,
        excludes: &[Vec<u32>],
        k: usize,
    ) -> Result<Vec<Vec<(u32, f32)>>, String> {
        match self {
            // Native models score the items block by block (`Model::rank_all`).
            Backend::Native { loaded, .. } => {
                Ok(loaded.model.rank_all(users, inputs, excludes, k as i64))
            }
            Backend::TorchScript { .. } => {
                let mut scores = self.score_all(users, inputs)?;
                mask_excluded(&mut scores, excludes);
                Ok(top_k_rows(&scores, k as i64))
            }
        }
    }

    fn score_all(&self, users: &Tensor, inputs: &Tensor) -> Result<Tensor, String> {
        match self {
            Backend::Native { loaded, .. } => Ok(loaded.model.score_all(users, inputs, false)),
            Backend::TorchScript {
                module,
                description,
                ..
            } => {
                let scores = module
                    .forward_ts(&[users, inputs])
                    .map_err(|e| e.to_string())?;
                let expected = [users.size()[0], description.num_items as i64];
                if scores.size() != expected {
                    return Err(format!(
                        "TorchScript forward returned shape {:?}, expected {expected:?}",
                        scores.size()
                    ));
                }
                Ok(if scores.kind() == Kind::Float {
                    scores
                } else {
                    scores.to_kind(Kind::Float)
                })
            }
        }
    }
}
