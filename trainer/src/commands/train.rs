//! `trainer train`: flags to settings.

use crate::cli::TrainArgs;
use rankdistill_models::DeviceError;

use crate::commands::flag_groups::training_settings;
use crate::output::Output;
use crate::train::config::TrainSettings;
use crate::train::run::run_train;

impl TryFrom<&TrainArgs> for TrainSettings {
    type Error = DeviceError;
    fn try_from(args: &TrainArgs) -> Result<Self, DeviceError> {
        Ok(TrainSettings {
            data: args.data.clone(),
            out: args.out.clone(),
            training: training_settings(&args.model, &args.optim)?,
        })
    }
}

/// Runs `trainer train`.
pub fn run(args: &TrainArgs, out: &Output) -> anyhow::Result<()> {
    run_train(&TrainSettings::try_from(args)?, out).map(|_| ())
}
