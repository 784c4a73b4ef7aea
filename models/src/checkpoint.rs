//! Native checkpoints: a folder holding `model.safetensors` (the var store) and
//! `manifest.json` (model config, dataset fingerprint, training config, final metrics). Written
//! atomically; refused with a clear error when it does not match its manifest or the data.

use std::path::Path;

use rankdistill_core::atomic::replace_dir_atomic;
use tch::{Device, nn};

use crate::model::{Model, num_parameters};

pub use rankdistill_core::artifact::{
    ARTIFACT_FORMAT_VERSION as CHECKPOINT_FORMAT_VERSION, ArtifactManifest as CheckpointManifest,
    DataRef, MANIFEST_FILE, WEIGHTS_FILE,
};

/// Errors of saving or loading checkpoints: the artifact contract's errors.
pub use rankdistill_core::artifact::ArtifactError as CheckpointError;

/// A loaded native model with its variables.
#[derive(Debug)]
pub struct LoadedModel {
    /// The variables (weights), on the requested device.
    pub vs: nn::VarStore,
    /// The model built over `vs`.
    pub model: Model,
    /// The manifest it came from.
    pub manifest: CheckpointManifest,
}

fn hash_file(path: &Path) -> Result<String, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(rankdistill_core::artifact::weights_version(&bytes))
}

/// The first variable (by name) holding a NaN or an infinity, if any.
fn first_non_finite(vs: &nn::VarStore) -> Option<String> {
    let mut variables: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    variables
        .into_iter()
        .find(|(_, tensor)| tensor.isfinite().all().int64_value(&[]) == 0)
        .map(|(name, _)| name)
}

/// Saves a checkpoint folder atomically. Fills in `version` and `num_parameters`, and
/// returns the manifest that was written. Weights holding NaN or infinite values (a diverged
/// training) are refused and nothing is written: a previous checkpoint at `dir` stays.
pub fn save(
    dir: &Path,
    vs: &nn::VarStore,
    mut manifest: CheckpointManifest,
) -> Result<CheckpointManifest, CheckpointError> {
    if let Some(name) = first_non_finite(vs) {
        return Err(CheckpointError::Invalid {
            path: dir.to_path_buf(),
            reason: format!(
                "tensor '{name}' holds NaN or infinite values: the training diverged (try a lower --lr); nothing was written"
            ),
        });
    }
    manifest.format_version = CHECKPOINT_FORMAT_VERSION;
    manifest.num_parameters = num_parameters(vs);
    let io = |source| CheckpointError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut written = None;
    replace_dir_atomic(dir, |staging| {
        let weights = staging.join(WEIGHTS_FILE);
        vs.save(&weights).map_err(std::io::Error::other)?;
        let mut m = manifest.clone();
        m.version = hash_file(&weights).map_err(std::io::Error::other)?;
        let json = serde_json::to_vec_pretty(&m).map_err(std::io::Error::other)?;
        std::fs::write(staging.join(MANIFEST_FILE), json)?;
        written = Some(m);
        Ok(())
    })
    .map_err(io)?;
    written.ok_or_else(|| CheckpointError::Invalid {
        path: dir.to_path_buf(),
        reason: "checkpoint was not written".into(),
    })
}

/// Reads and checks a checkpoint manifest.
pub fn read_manifest(dir: &Path) -> Result<CheckpointManifest, CheckpointError> {
    rankdistill_core::artifact::read_manifest(dir)
}

/// Loads a checkpoint onto `device`, checking the weights against the manifest (hash, every
/// tensor present with the right shape).
pub fn load(dir: &Path, device: Device) -> Result<LoadedModel, CheckpointError> {
    let manifest = read_manifest(dir)?;
    let weights = dir.join(WEIGHTS_FILE);
    let version = hash_file(&weights)?;
    if version != manifest.version {
        return Err(CheckpointError::Invalid {
            path: weights,
            reason: format!(
                "weights hash {version} does not match the manifest's version {}; the checkpoint is corrupt or was mixed with another",
                manifest.version
            ),
        });
    }
    let mut vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), &manifest.model);
    vs.load(&weights).map_err(|e| CheckpointError::Invalid {
        path: weights.clone(),
        reason: format!("weights do not fit the manifest's model: {e}"),
    })?;
    if let Some(name) = first_non_finite(&vs) {
        return Err(CheckpointError::Invalid {
            path: weights,
            reason: format!(
                "tensor '{name}' holds NaN or infinite values (training diverged?); retrain, e.g. with a lower --lr, or restore a good checkpoint"
            ),
        });
    }
    Ok(LoadedModel {
        vs,
        model,
        manifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelConfig, ModelKind};
    use crate::tensor::ids_tensor;

    fn manifest(config: ModelConfig) -> CheckpointManifest {
        CheckpointManifest::new(
            config,
            DataRef {
                path: "mem".into(),
                fingerprint: "f".into(),
            },
        )
    }

    #[test]
    fn round_trip_gives_identical_scores() {
        for kind in [ModelKind::Caser, ModelKind::Mf, ModelKind::SasRec] {
            let dir = tempfile::tempdir().unwrap();
            let mut config = ModelConfig::caser(6, 3, 7);
            config.kind = kind;
            let vs = nn::VarStore::new(Device::Cpu);
            let model = Model::new(&vs.root(), &config);
            let written = save(&dir.path().join("ck"), &vs, manifest(config)).unwrap();
            assert_eq!(written.num_parameters, num_parameters(&vs));
            let loaded = load(&dir.path().join("ck"), Device::Cpu).unwrap();
            assert_eq!(loaded.manifest, written);
            let users = ids_tensor(&[1], &[1], Device::Cpu);
            let inputs = ids_tensor(&[0, 1, 2, 3, 4], &[1, 5], Device::Cpu);
            let a = model.score_all(&users, &inputs, false);
            let b = loaded.model.score_all(&users, &inputs, false);
            assert!(a.equal(&b));
        }
    }

    #[test]
    fn inconsistent_checkpoints_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        let config = ModelConfig::caser(6, 3, 7);
        let vs = nn::VarStore::new(Device::Cpu);
        let _model = Model::new(&vs.root(), &config);
        let written = save(&ck, &vs, manifest(config.clone())).unwrap();
        // A manifest whose shape does not fit the weights.
        let mut wrong = written.clone();
        wrong.model.dim = 8;
        std::fs::write(ck.join(MANIFEST_FILE), serde_json::to_vec(&wrong).unwrap()).unwrap();
        let err = load(&ck, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");
        // Weights from elsewhere.
        let mut other = written.clone();
        other.version = "0000".into();
        std::fs::write(ck.join(MANIFEST_FILE), serde_json::to_vec(&other).unwrap()).unwrap();
        let err = load(&ck, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("does not match the manifest"), "{err}");
        // Unsupported format.
        let mut future = written;
        future.format_version = 99;
        std::fs::write(ck.join(MANIFEST_FILE), serde_json::to_vec(&future).unwrap()).unwrap();
        let err = load(&ck, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
        // Diverged weights: refused when saved (the previous checkpoint stays) and when
        // loaded (written by someone else).
        let good = save(&ck, &vs, manifest(config.clone())).unwrap();
        let mut bias = vs.variables()["fc1.bias"].shallow_clone();
        tch::no_grad(|| {
            let _ = bias.fill_(f64::NAN);
        });
        let err = save(&ck, &vs, manifest(config)).unwrap_err().to_string();
        assert!(err.contains("tensor 'fc1.bias' holds NaN"), "{err}");
        assert!(err.contains("nothing was written"), "{err}");
        assert_eq!(load(&ck, Device::Cpu).unwrap().manifest, good);
        vs.save(ck.join(WEIGHTS_FILE)).unwrap();
        let mut nan = good;
        nan.version = hash_file(&ck.join(WEIGHTS_FILE)).unwrap();
        std::fs::write(ck.join(MANIFEST_FILE), serde_json::to_vec(&nan).unwrap()).unwrap();
        let err = load(&ck, Device::Cpu).unwrap_err().to_string();
        assert!(err.contains("tensor 'fc1.bias' holds NaN"), "{err}");
    }
}
