//! The rankdistill trainer: data preparation, synthetic data, evaluation, teacher training and
//! distillation. `main.rs` only parses the command line and calls into these modules.

pub mod cli;
pub mod distill;
pub mod evaluate;
pub mod output;
pub mod plots;
pub mod prepare;
pub mod pull;
pub mod ranking_cache;
pub mod report;
pub mod student;
pub mod tls;
pub mod train;
