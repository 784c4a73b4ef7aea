//! A trained model and what the commands make of it: the artifact manifest with its training
//! record, the `--json` figures and the summary line.

use rankdistill_core::history::{EpochRecord, TrainingRecord};
use rankdistill_core::metrics::Metrics;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint::CheckpointManifest;
use rankdistill_models::model::{Model, ModelConfig};
use tch::nn;

use crate::train::phases::PhaseSeconds;

/// A trained model with its variables and history.
pub struct Trained {
    /// The variables.
    pub vs: nn::VarStore,
    /// The model over `vs`.
    pub model: Model,
    /// Mean loss per epoch.
    pub epoch_losses: Vec<f64>,
    /// Metrics of the evaluations run during training, with their epoch.
    pub evaluations: Vec<(usize, Metrics)>,
    /// Wall time of training (seconds), without evaluation.
    pub train_seconds: f64,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
    /// Where each epoch's wall time went, by phase of the loop.
    pub epoch_phases: Vec<PhaseSeconds>,
}

impl Trained {
    /// The artifact manifest of this model: shape, data reference and id maps, the training
    /// record (the caller's settings, with losses, timings and the per-epoch history) and the
    /// final metrics. Returns the manifest and those metrics.
    pub fn manifest(
        &self,
        config: ModelConfig,
        data: &PreparedDataset,
        data_path: &std::path::Path,
        eval_split: &str,
        settings: serde_json::Map<String, serde_json::Value>,
    ) -> anyhow::Result<(CheckpointManifest, Metrics)> {
        use rankdistill_models::checkpoint::DataRef;
        let (epoch, metrics) = self
            .evaluations
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no evaluation ran"))?;
        let epochs = self.epoch_losses.len().max(1) as f64;
        let record = TrainingRecord {
            epoch_losses: self.epoch_losses.clone(),
            train_seconds: self.train_seconds,
            seconds_per_epoch: self.train_seconds / epochs,
            history: self.history.clone(),
            settings,
        };
        let mut manifest = CheckpointManifest::new(
            config,
            DataRef {
                path: data_path.display().to_string(),
                fingerprint: data.manifest.fingerprint.clone(),
            },
        );
        manifest.users = data.split.users.clone();
        manifest.items = data.split.items.clone();
        manifest.training = record.to_manifest_value()?;
        manifest.metrics = serde_json::json!({
            "split": eval_split,
            "epoch": epoch,
            "ndcg_note": "ndcg is the standard definition, ndcg_ref the reference variant",
            "values": metrics,
        });
        Ok((manifest, metrics))
    }
}

/// Reports a written run after its first line: the metrics table, "wrote WHAT DIR (version
/// V)" and the summary line; returns the `--json` document for the caller to extend and write.
pub fn report_written(
    out: &crate::output::Output,
    command: &str,
    what: &str,
    dir: &std::path::Path,
    written: &CheckpointManifest,
    trained: &Trained,
    metrics: &Metrics,
) -> serde_json::Value {
    out.say(metrics.table());
    out.say(format!(
        "wrote {what} {} (version {})",
        dir.display(),
        written.version
    ));
    out.summary(run_summary(command, dir, written, trained, metrics));
    run_json(command, dir, written, trained, metrics)
}

/// The figures of a finished `train` or `distill` run, for `--json`.
pub fn run_json(
    command: &str,
    out: &std::path::Path,
    written: &CheckpointManifest,
    trained: &Trained,
    metrics: &Metrics,
) -> serde_json::Value {
    let epochs = trained.history.len();
    serde_json::json!({
        "command": command,
        "out": out.display().to_string(),
        "version": written.version,
        "model": written.model,
        "num_parameters": written.num_parameters,
        "epochs": epochs,
        "train_seconds": trained.train_seconds,
        "seconds_per_epoch": trained.train_seconds / epochs.max(1) as f64,
        "metrics": metrics,
        "history": trained.history,
        "epoch_phases": trained.epoch_phases,
    })
}

/// The summary line of a finished `train` or `distill` run.
pub fn run_summary(
    command: &str,
    out: &std::path::Path,
    written: &CheckpointManifest,
    trained: &Trained,
    metrics: &Metrics,
) -> String {
    let at10 = metrics.at_k(10).or(metrics.at.last());
    format!(
        "{command}: {} d={} ({} parameters), {} epochs in {}: MAP {:.4}{}; wrote {}",
        written.model.kind,
        written.model.dim,
        crate::output::thousands(written.num_parameters.max(0) as usize),
        trained.history.len(),
        crate::output::seconds(trained.train_seconds),
        metrics.map,
        at10.map(|a| format!(
            ", Prec@{} {:.4}, nDCG@{} {:.4}",
            a.k, a.precision, a.k, a.ndcg
        ))
        .unwrap_or_default(),
        out.display()
    )
}
