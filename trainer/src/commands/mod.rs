//! One module per subcommand: the only place that sees the clap types of `crate::cli`. Each
//! converts its flags into the library's plain settings (`From`/`TryFrom`) and calls the
//! library; `flag_groups` converts the flag groups several subcommands share.

pub mod distill;
pub mod evaluate;
pub mod fidelity;
pub mod flag_groups;
pub mod gen_synthetic;
pub mod prepare;
pub mod pull;
pub mod refresh;
pub mod report;
pub mod search;
pub mod train;

use crate::cli::{Cli, Command};
use crate::output::Output;

/// Runs the subcommand of `cli`.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    rankdistill_models::threads::configure(cli.torch_threads);
    let out = Output::new(cli.json, cli.quiet);
    match &cli.command {
        Command::GenSynthetic(args) => gen_synthetic::run(args, &out),
        Command::Prepare(args) => prepare::run(args, &out),
        Command::Evaluate(args) => evaluate::run(args, &out),
        Command::Train(args) => train::run(args, &out),
        Command::Distill(args) => distill::run(args, &out),
        Command::Pull(args) => pull::run(args, &out),
        Command::Report(args) => report::run(args, &out),
        Command::Search(args) => search::run(args, &out),
        Command::Refresh(args) => refresh::run(args, &out),
        Command::Fidelity(args) => fidelity::run(args, &out),
    }
}
