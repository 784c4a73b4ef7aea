//! The rankdistill trainer: data preparation, synthetic data, evaluation, teacher training and
//! distillation. `main.rs` only parses the command line (`cli`) and hands it to `commands`,
//! the one layer that sees clap types; everything else takes plain settings.

pub mod cli;
pub mod commands;
pub mod distill;
pub mod evaluate;
pub mod methods;
pub mod output;
pub mod prepare;
pub mod pull;
pub mod pull_shard;
pub mod ranking_cache;
pub mod rd_loss;
pub mod refresh;
pub mod report;
pub mod score_items;
pub mod search;
pub mod served_fidelity;
pub mod teacher_rankings;
pub mod teachers;
pub mod tls;
pub mod train;
