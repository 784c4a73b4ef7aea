//! `trainer distill`: flags to settings.

use crate::cli::DistillArgs;
use rankdistill_models::DeviceError;

use crate::commands::flag_groups::{method_config, training_settings};
use crate::distill::{DistillSettings, run_distill};
use crate::output::Output;
use crate::rd_loss::RdConfig;
use crate::teachers::TeacherSource;

impl TryFrom<&DistillArgs> for DistillSettings {
    type Error = DeviceError;
    fn try_from(args: &DistillArgs) -> Result<Self, DeviceError> {
        let (method, rd) = method_config(
            RdConfig::from(&args.rd),
            args.rd.rankings.exclude_seen,
            &args.methods,
        );
        Ok(DistillSettings {
            data: args.data.clone(),
            out: args.out.clone(),
            source: TeacherSource::from(&args.source),
            shard_wait_s: args.shard_wait_s,
            training: training_settings(&args.model, &args.optim)?,
            rd,
            method,
        })
    }
}

/// Runs `trainer distill`.
pub fn run(args: &DistillArgs, out: &Output) -> anyhow::Result<()> {
    run_distill(&DistillSettings::try_from(args)?, out).map(|_| ())
}
