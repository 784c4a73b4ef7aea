//! The rankdistill trainer: data preparation, synthetic data, evaluation, teacher training and
//! distillation. `main.rs` only parses the command line and calls into these modules.

pub mod cli;
pub mod evaluate;
pub mod prepare;
pub mod train;
