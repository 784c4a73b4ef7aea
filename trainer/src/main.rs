//! The `trainer` binary: parses the command line and runs one subcommand.

use clap::Parser;
use rankdistill_trainer::cli::{Cli, Command};
use rankdistill_trainer::{evaluate, prepare, report, student, train};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::GenSynthetic(args) => prepare::run_gen_synthetic(&args),
        Command::Prepare(args) => prepare::run_prepare(&args).map(|_| ()),
        Command::Evaluate(args) => evaluate::run_evaluate(&args).map(|_| ()),
        Command::Train(args) => train::run_train(&args).map(|_| ()),
        Command::Distill(args) => student::run_distill(&args).map(|_| ()),
        Command::Pull(args) => student::run_pull(&args).map(|_| ()),
        Command::Report(args) => report::run_report(&args).map(|_| ()),
    }
}
