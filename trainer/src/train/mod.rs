//! Teacher training with the reference loops, which distillation extends: Caser's and MF's
//! (sliding-window instances, BCE with sampled negatives, Adam with lr 1e-3 and l2 1e-6, batch
//! 512) and SASRec's (sampled users' last windows, BCE at every position, Adam with beta2 0.98,
//! batch 128). Every random choice is seeded.
//!
//! - `config`: what a run is given (optimisation, model shape, device);
//! - `sampling`: instances as tensors, sampling of unobserved items;
//! - `user_windows`: SASRec's batches of users' last windows;
//! - `loss`: the reference BCE loss;
//! - `fit`: the training loop;
//! - `phases`: where an epoch's wall time goes, phase by phase;
//! - `outcome`: the trained model, its manifest, `--json` figures and summary line;
//! - `run`: the `trainer train` command.

pub mod config;
pub mod fit;
pub mod loss;
pub mod outcome;
pub mod phases;
pub mod run;
pub mod sampling;
pub mod user_windows;

pub use config::{ModelSettings, OptimConfig, TrainSettings, TrainingSettings};
pub use fit::{Distillation, Teaching, rankings_tensor, train_model};
pub use outcome::Trained;
pub use run::run_train;
