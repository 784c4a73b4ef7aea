//! Command-line definitions. Every flag can also be set through its environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rankdistill_core::dataset::Format;

/// The rankdistill trainer.
#[derive(Debug, Parser)]
#[command(
    name = "trainer",
    version,
    about = "rankdistill: prepare data, train teachers, distill students, evaluate"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a seeded synthetic interaction file (MovieLens u.data layout).
    GenSynthetic(GenSyntheticArgs),
    /// Split an interaction file into a prepared dataset folder.
    Prepare(PrepareArgs),
    /// Evaluate a model (pop, random) on a prepared dataset.
    Evaluate(EvaluateArgs),
}

/// Flags of `gen-synthetic`.
#[derive(Debug, Args)]
pub struct GenSyntheticArgs {
    /// Output file.
    #[arg(long, env = "RD_SYNTH_OUT", default_value = "runs/synthetic/u.data")]
    pub out: PathBuf,
    /// Number of users.
    #[arg(long, env = "RD_SYNTH_USERS", default_value_t = 2000)]
    pub users: usize,
    /// Number of items.
    #[arg(long, env = "RD_SYNTH_ITEMS", default_value_t = 1000)]
    pub items: usize,
    /// Number of item clusters.
    #[arg(long, env = "RD_SYNTH_CLUSTERS", default_value_t = 20)]
    pub clusters: usize,
    /// Mean interactions per user.
    #[arg(long, env = "RD_SYNTH_MEAN_LENGTH", default_value_t = 40)]
    pub mean_length: usize,
    /// Minimum interactions per user.
    #[arg(long, env = "RD_SYNTH_MIN_LENGTH", default_value_t = 10)]
    pub min_length: usize,
    /// Probability that the next item is a successor of the previous one.
    #[arg(long, env = "RD_SYNTH_TRANSITION", default_value_t = 0.5)]
    pub transition_prob: f64,
    /// Power-law exponent of item popularity.
    #[arg(long, env = "RD_SYNTH_POP_EXPONENT", default_value_t = 0.8)]
    pub popularity_exponent: f64,
    /// Random seed.
    #[arg(long, env = "RD_SEED", default_value_t = 42)]
    pub seed: u64,
}

/// Flags of `prepare`.
#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Interaction file: MovieLens u.data, RD/Caser `user item rating`, or SASRec `user item`.
    #[arg(long, env = "RD_INPUT")]
    pub input: PathBuf,
    /// File format; detected from the first line when omitted.
    #[arg(long, env = "RD_FORMAT")]
    pub format: Option<Format>,
    /// Output folder of the prepared dataset.
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub out: PathBuf,
    /// Fraction of each user's interactions (the most recent) held out for test.
    #[arg(long, env = "RD_TEST_FRACTION", default_value_t = 0.2)]
    pub test_fraction: f64,
    /// Fraction of each user's remaining training interactions cut for validation (0: none).
    #[arg(long, env = "RD_VALID_FRACTION", default_value_t = 0.0)]
    pub valid_fraction: f64,
}

/// Flags of `evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Prepared dataset folder.
    #[arg(long, env = "RD_DATA", default_value = "runs/data")]
    pub data: PathBuf,
    /// Model: `pop` (training popularity) or `random` (seeded uniform scores).
    #[arg(long, env = "RD_MODEL", default_value = "pop")]
    pub model: String,
    /// Which held-out part to score: test or valid.
    #[arg(long, env = "RD_EVAL_SPLIT", default_value = "test")]
    pub split: String,
    /// Cut-offs k, comma separated.
    #[arg(long, env = "RD_EVAL_KS", value_delimiter = ',', default_values_t = [3usize, 5, 10])]
    pub ks: Vec<usize>,
    /// Also write the metrics as JSON to this file (`-` for stdout).
    #[arg(long, env = "RD_EVAL_JSON")]
    pub json: Option<PathBuf>,
    /// Seed of the random model.
    #[arg(long, env = "RD_SEED", default_value_t = 42)]
    pub seed: u64,
}
