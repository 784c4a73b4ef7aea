//! `trainer pull`: flags to settings.

use crate::cli::PullArgs;
use crate::commands::flag_groups::method_config;
use crate::output::Output;
use crate::pull_shard::{PullSettings, run_pull};
use crate::rd_loss::RdConfig;
use crate::teachers::TeacherSource;

impl From<&PullArgs> for PullSettings {
    /// The lists `distill` with the same method flags reads: RD's `--rd-k`, or the method's
    /// own length and exclusion.
    fn from(args: &PullArgs) -> Self {
        let rd = RdConfig {
            k: args.rankings.k,
            ..RdConfig::default()
        };
        let (method, rd) = method_config(rd, args.rankings.exclude_seen, &args.methods);
        PullSettings {
            data: args.data.clone(),
            source: TeacherSource::from(&args.source),
            shard_index: args.shard_index,
            window: args.window.resolve(args.student_model),
            k: method.list_length(),
            exclude_seen: rd.exclude_seen,
        }
    }
}

/// Runs `trainer pull`.
pub fn run(args: &PullArgs, out: &Output) -> anyhow::Result<()> {
    run_pull(&PullSettings::from(args), out).map(|_| ())
}
