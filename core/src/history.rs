//! The training record of an artifact (`training` in its manifest): how the run went, epoch by
//! epoch. `trainer train` and `trainer distill` write it; `trainer report` reads it back through
//! the same types, so the JSON shape has one definition.

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// What happened in one epoch; the artifact keeps one per epoch (`training.history`), which
/// `trainer report` draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Distillation: mean L_R (ranking loss on the ground truth) over the batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l_r: Option<f64>,
    /// Distillation: mean L_D (distillation loss) over the batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l_d: Option<f64>,
    /// Seconds of training (without evaluation).
    pub seconds: f64,
    /// Offline metrics when this epoch was evaluated (`--eval-every`, and the last epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Distillation: mean weight w_r of each teacher position r = 1..K over the epoch's
    /// instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_weight_mean: Option<Vec<f64>>,
    /// Distillation: standard deviation of w_r over the epoch's instances, per position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_weight_std: Option<Vec<f64>>,
    /// Distillation: whether the epoch used the dynamic (rank discrepancy) weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_dynamic: Option<bool>,
}

/// The `training` object of an artifact manifest: the command's settings (kept as written,
/// e.g. `window`, `optim`, `rd`, `pull`) and the typed record of the run. Every typed field has
/// a default, so artifacts written before a field existed still read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// The command's settings, by name (`window`, `optim`, `method`, `rd`, `pull`, ...).
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Mean loss of every epoch, in order.
    #[serde(default)]
    pub epoch_losses: Vec<f64>,
    /// Wall time of training in seconds, without evaluation.
    #[serde(default)]
    pub train_seconds: f64,
    /// `train_seconds` divided by the number of epochs.
    #[serde(default)]
    pub seconds_per_epoch: f64,
    /// One record per epoch (empty for artifacts written before it was recorded).
    #[serde(default)]
    pub history: Vec<EpochRecord>,
}

impl TrainingRecord {
    /// Reads the `training` object of a manifest.
    pub fn from_manifest_value(value: &serde_json::Value) -> Result<Self, serde_json::Error> {
        if value.is_null() {
            return Ok(TrainingRecord::default());
        }
        TrainingRecord::deserialize(value)
    }

    /// The record as the `training` object of a manifest.
    pub fn to_manifest_value(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self)
    }

    /// A setting the command recorded, by path (e.g. `["optim", "epochs"]`).
    pub fn setting(&self, path: &[&str]) -> Option<&serde_json::Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.settings.get(*first)?, |value, key| value.get(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `training` object of a distilled student as the trainer wrote it before this type
    /// existed (fields in the writer's order, metrics trimmed to one cut-off).
    const WRITTEN_BEFORE: &str = r#"{
        "method": "ranking-distillation",
        "window": {"sequence_length": 5, "target_length": 1},
        "optim": {"epochs": 2, "batch_size": 512, "learning_rate": 0.001, "l2": 1e-6,
                  "negatives": 3, "seed": 1, "eval_every": 0},
        "rd": {"k": 10, "weighting": "hybrid"},
        "pull": {"source": "cache", "seconds": 0.1},
        "epoch_losses": [1.5, 1.25],
        "train_seconds": 3.0,
        "seconds_per_epoch": 1.5,
        "history": [
            {"epoch": 1, "loss": 1.5, "l_r": 1.0, "l_d": 0.5, "seconds": 1.5,
             "rd_weight_mean": [0.6, 0.4], "rd_weight_std": [0.0, 0.0], "rd_dynamic": false},
            {"epoch": 2, "loss": 1.25, "seconds": 1.5,
             "metrics": {"users": 3, "at": [{"k": 10, "precision": 0.1, "recall": 0.2,
                         "ndcg": 0.3, "ndcg_ref": 0.3}], "map": 0.25}}
        ]
    }"#;

    #[test]
    fn a_manifest_written_before_reads_back_and_round_trips() {
        let value: serde_json::Value = serde_json::from_str(WRITTEN_BEFORE).unwrap();
        let record = TrainingRecord::from_manifest_value(&value).unwrap();
        assert_eq!(record.epoch_losses, vec![1.5, 1.25]);
        assert_eq!(record.train_seconds, 3.0);
        assert_eq!(record.history.len(), 2);
        assert_eq!(record.history[0].rd_weight_mean, Some(vec![0.6, 0.4]));
        assert_eq!(record.history[0].rd_dynamic, Some(false));
        assert!(record.history[1].metrics.is_some());
        assert_eq!(record.history[1].l_r, None);
        assert_eq!(
            record
                .setting(&["optim", "epochs"])
                .and_then(|v| v.as_f64()),
            Some(2.0)
        );
        assert_eq!(
            record
                .setting(&["rd", "weighting"])
                .and_then(|v| v.as_str()),
            Some("hybrid")
        );
        // Written again, the object is the same JSON.
        assert_eq!(record.to_manifest_value().unwrap(), value);
    }

    #[test]
    fn a_manifest_without_history_reads_as_empty() {
        let value = serde_json::json!({"window": {"sequence_length": 5, "target_length": 1}});
        let record = TrainingRecord::from_manifest_value(&value).unwrap();
        assert!(record.history.is_empty() && record.epoch_losses.is_empty());
        assert_eq!(record.train_seconds, 0.0);
        assert!(record.setting(&["optim", "epochs"]).is_none());
        let record = TrainingRecord::from_manifest_value(&serde_json::Value::Null).unwrap();
        assert_eq!(record, TrainingRecord::default());
    }

    #[test]
    fn an_unreadable_history_is_an_error() {
        let value = serde_json::json!({"history": [{"epoch": "one"}]});
        assert!(TrainingRecord::from_manifest_value(&value).is_err());
    }
}
