//! `trainer pull`: flags to settings.

use rankdistill_core::instances::WindowConfig;

use crate::cli::PullArgs;
use crate::output::Output;
use crate::pull_shard::{PullSettings, run_pull};
use crate::teachers::TeacherSource;

impl From<&PullArgs> for PullSettings {
    fn from(args: &PullArgs) -> Self {
        PullSettings {
            data: args.data.clone(),
            source: TeacherSource::from(&args.source),
            shard_index: args.shard_index,
            window: WindowConfig::from(&args.window),
            k: args.rankings.k,
            exclude_seen: args.rankings.exclude_seen.unwrap_or(false),
        }
    }
}

/// Runs `trainer pull`.
pub fn run(args: &PullArgs, out: &Output) -> anyhow::Result<()> {
    run_pull(&PullSettings::from(args), out).map(|_| ())
}
