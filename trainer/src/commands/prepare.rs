//! `trainer prepare`: flags to settings.

use crate::cli::PrepareArgs;
use crate::output::Output;
use crate::prepare::{PrepareSettings, run_prepare};

impl From<&PrepareArgs> for PrepareSettings {
    fn from(args: &PrepareArgs) -> Self {
        PrepareSettings {
            input: args.input.clone(),
            format: args.format,
            out: args.out.clone(),
            test_fraction: args.test_fraction,
            valid_fraction: args.valid_fraction,
        }
    }
}

/// Runs `trainer prepare`.
pub fn run(args: &PrepareArgs, out: &Output) -> anyhow::Result<()> {
    run_prepare(&PrepareSettings::from(args), out).map(|_| ())
}
