//! `trainer gen-synthetic`: flags to settings.

use crate::cli::GenSyntheticArgs;
use crate::output::Output;
use crate::prepare::{GenSyntheticSettings, run_gen_synthetic};

impl From<&GenSyntheticArgs> for GenSyntheticSettings {
    fn from(args: &GenSyntheticArgs) -> Self {
        GenSyntheticSettings {
            out: args.out.clone(),
            users: args.users,
            items: args.items,
            clusters: args.clusters,
            mean_length: args.mean_length,
            min_length: args.min_length,
            transition_prob: args.transition_prob,
            popularity_exponent: args.popularity_exponent,
            seed: args.seed,
        }
    }
}

/// Runs `trainer gen-synthetic`.
pub fn run(args: &GenSyntheticArgs, out: &Output) -> anyhow::Result<()> {
    run_gen_synthetic(&GenSyntheticSettings::from(args), out)
}
