//! `trainer evaluate`: flags to settings.

use crate::cli::EvaluateArgs;
use crate::evaluate::{EvaluateSettings, run_evaluate};
use crate::output::Output;

impl From<&EvaluateArgs> for EvaluateSettings {
    fn from(args: &EvaluateArgs) -> Self {
        EvaluateSettings {
            data: args.data.clone(),
            model: args.model.clone(),
            split: args.split.clone(),
            ks: args.ks.clone(),
            seed: args.seed,
            sampled_negatives: args.sampled_negatives,
        }
    }
}

/// Runs `trainer evaluate`.
pub fn run(args: &EvaluateArgs, out: &Output) -> anyhow::Result<()> {
    run_evaluate(&EvaluateSettings::from(args), out).map(|_| ())
}
