//! `trainer fidelity`: flags to settings, and the figures as a table or JSON.

use std::time::Duration;

use crate::cli::FidelityArgs;
use crate::output::Output;
use crate::served_fidelity::{ServedFidelitySettings, measure};

impl From<&FidelityArgs> for ServedFidelitySettings {
    fn from(args: &FidelityArgs) -> Self {
        ServedFidelitySettings {
            data: args.data.clone(),
            student: args.student.clone(),
            teacher: args.teacher.clone(),
            users: args.users.map(|n| n as usize),
            seed: args.seed,
            k: args.k as usize,
            live_wait: Duration::from_secs(args.live_wait_s),
        }
    }
}

/// Runs `trainer fidelity`.
pub fn run(args: &FidelityArgs, out: &Output) -> anyhow::Result<()> {
    let figures = measure(&ServedFidelitySettings::from(args))?;
    let c = &figures.client;
    out.say(format!(
        "{:<22} {:>8} {:>11} {:>9} {:>9}",
        "measured by", "queries", "overlap@k", "NDCG@k", "tau"
    ));
    out.say(format!(
        "{:<22} {:>8} {:>11.4} {:>9.4} {:>9.4}",
        "this client", c.queries, c.overlap, c.ndcg, c.rank_correlation
    ));
    match &figures.live {
        Some(l) => out.say(format!(
            "{:<22} {:>8} {:>11.4} {:>9.4} {:>9.4}",
            "student-svc (live)", l.queries, l.overlap, l.ndcg, l.rank_correlation
        )),
        None => out.say("student-svc (live): not shadowing (start it with --shadow-teacher)"),
    }
    out.summary(format!(
        "fidelity: {} users, k = {}, overlap {:.4}{}",
        figures.users,
        figures.k,
        c.overlap,
        figures
            .max_difference
            .map(|d| format!(", largest difference from the live figures {d:.2e}"))
            .unwrap_or_default()
    ));
    out.json(&figures)
}
