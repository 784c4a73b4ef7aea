//! What a training run is given: the optimisation settings, the model's shape and where it
//! runs. Plain values; the command line converts its flags into these (`crate::commands`).

use std::path::PathBuf;

use rankdistill_core::instances::WindowConfig;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::model::{Activation, ModelConfig, ModelKind};
use serde::{Deserialize, Serialize};
use tch::Device;

use crate::train::loss::BceForm;

/// Optimisation settings shared by teacher training and distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Passes over the training instances.
    pub epochs: usize,
    /// Instances per minibatch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// L2 penalty (Adam weight decay).
    pub l2: f64,
    /// Sampled negatives per instance.
    pub negatives: usize,
    /// How the binary cross-entropy of targets and negatives is reduced (L_R of every model).
    /// Runs written before this setting existed used `mean`.
    #[serde(default = "BceForm::recorded_before_the_setting")]
    pub bce: BceForm,
    /// Seed of initialisation, shuffling, negatives and dropout.
    pub seed: u64,
    /// Evaluate every this many epochs (0: only at the end).
    pub eval_every: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            epochs: 50,
            batch_size: 512,
            learning_rate: 1e-3,
            l2: 1e-6,
            negatives: 3,
            bce: BceForm::Sum,
            seed: 1,
            eval_every: 0,
        }
    }
}

/// The model's shape, before the dataset gives its numbers of users and items.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    /// Model kind.
    pub kind: ModelKind,
    /// Embedding dimension d (`None`: the command's default).
    pub dim: Option<i64>,
    /// Training windows (L and T).
    pub window: WindowConfig,
    /// Caser vertical filters.
    pub nv: i64,
    /// Caser horizontal filters per height.
    pub nh: i64,
    /// Caser dropout.
    pub dropout: f64,
    /// Caser conv activation.
    pub conv_activation: Activation,
    /// Caser fc activation.
    pub fc_activation: Activation,
    /// SASRec self-attention blocks.
    pub num_blocks: i64,
    /// SASRec attention heads.
    pub num_heads: i64,
}

impl ModelSettings {
    /// The model config for `data`, with `default_dim` when no dimension was given (SASRec's
    /// is always its reference's 50, `hidden_units`).
    pub fn model_config(&self, data: &PreparedDataset, default_dim: i64) -> ModelConfig {
        let default_dim = match self.kind {
            ModelKind::SasRec => 50,
            ModelKind::Caser | ModelKind::Mf => default_dim,
        };
        ModelConfig {
            kind: self.kind,
            dim: self.dim.unwrap_or(default_dim),
            num_users: data.num_users() as i64,
            num_items: data.num_items() as i64,
            sequence_length: self.window.sequence_length as i64,
            nv: self.nv,
            nh: self.nh,
            dropout: self.dropout,
            conv_activation: self.conv_activation,
            fc_activation: self.fc_activation,
            num_blocks: self.num_blocks,
            num_heads: self.num_heads,
        }
    }
}

/// Settings shared by `train` and `distill`: model shape, optimisation, evaluation, device.
#[derive(Debug, Clone)]
pub struct TrainingSettings {
    /// Model shape.
    pub model: ModelSettings,
    /// Optimisation.
    pub optim: OptimConfig,
    /// Held-out part for evaluations: "test" or "valid".
    pub eval_split: String,
    /// Where the model runs.
    pub device: Device,
}

/// Settings of `trainer train`.
#[derive(Debug, Clone)]
pub struct TrainSettings {
    /// Prepared dataset folder.
    pub data: PathBuf,
    /// Output checkpoint folder (written atomically).
    pub out: PathBuf,
    /// Model, optimisation, evaluation and device.
    pub training: TrainingSettings,
}
