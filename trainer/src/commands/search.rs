//! `trainer search`: flags to settings.

use rankdistill_models::DeviceError;

use crate::cli::{SearchArgs, SearchMethodArg};
use crate::commands::flag_groups::training_settings;
use crate::output::Output;
use crate::rd_loss::RdConfig;
use crate::search::{SearchMethod, SearchSettings, SearchSpace, run_search};
use crate::teachers::TeacherSource;

impl From<SearchMethodArg> for SearchMethod {
    fn from(arg: SearchMethodArg) -> Self {
        match arg {
            SearchMethodArg::Alone => SearchMethod::Alone,
            SearchMethodArg::Rd => SearchMethod::Rd,
        }
    }
}

impl TryFrom<&SearchArgs> for SearchSettings {
    type Error = DeviceError;
    fn try_from(args: &SearchArgs) -> Result<Self, DeviceError> {
        Ok(SearchSettings {
            data: args.data.clone(),
            out: args.out.clone(),
            method: args.method.into(),
            source: TeacherSource::from(&args.source),
            shard_wait_s: args.shard_wait_s,
            training: training_settings(&args.model, &args.optim)?,
            rd: RdConfig::from(&args.rd),
            space: SearchSpace {
                lambdas: args.lambdas.clone(),
                mus: args.mus.clone(),
                alphas: args.alphas.clone(),
                dynamic_starts: args.dynamic_starts.clone(),
                renormalise: args.renormalise_options.clone(),
            },
            budget: args.budget,
        })
    }
}

/// Runs `trainer search`.
pub fn run(args: &SearchArgs, out: &Output) -> anyhow::Result<()> {
    run_search(&SearchSettings::try_from(args)?, out).map(|_| ())
}
