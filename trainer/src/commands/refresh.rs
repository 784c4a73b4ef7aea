//! `trainer refresh`: flags to settings.

use std::time::Duration;

use crate::cli::RefreshArgs;
use crate::commands::flag_groups::training_settings;
use crate::distill::DistillSettings;
use crate::methods::MethodConfig;
use crate::output::Output;
use crate::rd_loss::RdConfig;
use crate::refresh::gate::Gates;
use crate::refresh::{CANDIDATE_DIR, RefreshMode, RefreshSettings, run_refresh};
use crate::teachers::TeacherSource;

impl TryFrom<&RefreshArgs> for RefreshSettings {
    type Error = anyhow::Error;
    fn try_from(args: &RefreshArgs) -> anyhow::Result<Self> {
        if args.source.shard_count != 1 {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "refresh writes its pull as --pull-shards files; leave --shard-count (RD_SHARD_COUNT) at 1\n",
            )
            .into());
        }
        let mut source = TeacherSource::from(&args.source);
        source.shard_count = args.pull_shards;
        let mode = match (&args.rollback_to, args.interval_secs) {
            (Some(version), _) => RefreshMode::RollbackTo(version.clone()),
            (None, Some(secs)) => RefreshMode::Every {
                interval: Duration::from_secs(secs),
                max_cycles: args.max_cycles,
            },
            (None, None) => RefreshMode::Once,
        };
        Ok(RefreshSettings {
            distill: DistillSettings {
                data: args.data.clone(),
                out: args.state_dir.join(CANDIDATE_DIR),
                source,
                shard_wait_s: 0,
                training: training_settings(&args.model, &args.optim)?,
                rd: RdConfig::from(&args.rd),
                method: MethodConfig::Rd(RdConfig::from(&args.rd)),
            },
            publish: args.publish.clone(),
            state_dir: args.state_dir.clone(),
            gates: Gates {
                max_map_drop: args.max_map_drop,
                min_overlap: args.min_overlap,
            },
            force: args.force,
            keep: args.keep as usize,
            fidelity_users: args.fidelity_users as usize,
            fidelity_seed: args.optim.seed,
            mode,
        })
    }
}

/// Runs `trainer refresh`.
pub fn run(args: &RefreshArgs, out: &Output) -> anyhow::Result<()> {
    run_refresh(&RefreshSettings::try_from(args)?, out).map(|_| ())
}
