//! The `trainer` binary: parses the command line and runs one subcommand.

use clap::Parser;
use rankdistill_trainer::cli::{Cli, Command};
use rankdistill_trainer::output::{LogWriter, Output};
use rankdistill_trainer::{evaluate, prepare, report, student, train};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let out = Output::new(cli.json, cli.quiet);
    match cli.command {
        Command::GenSynthetic(args) => prepare::run_gen_synthetic(&args, &out),
        Command::Prepare(args) => prepare::run_prepare(&args, &out).map(|_| ()),
        Command::Evaluate(args) => evaluate::run_evaluate(&args, &out).map(|_| ()),
        Command::Train(args) => train::run_train(&args, &out).map(|_| ()),
        Command::Distill(args) => student::run_distill(&args, &out).map(|_| ()),
        Command::Pull(args) => student::run_pull(&args, &out).map(|_| ()),
        Command::Report(args) => report::run_report(&args, &out).map(|_| ()),
    }
}
