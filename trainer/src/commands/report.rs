//! `trainer report`: flags to settings.

use crate::cli::ReportArgs;
use crate::output::Output;
use crate::report::{ReportSettings, run_report};

impl From<&ReportArgs> for ReportSettings {
    fn from(args: &ReportArgs) -> Self {
        ReportSettings {
            groups: args.group.clone(),
            latency: args.latency.clone(),
            out: args.out.clone(),
            html: args.html,
            title: args.title.clone(),
        }
    }
}

/// Runs `trainer report`.
pub fn run(args: &ReportArgs, out: &Output) -> anyhow::Result<()> {
    run_report(&ReportSettings::from(args), out).map(|_| ())
}
