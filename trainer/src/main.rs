//! The `trainer` binary: parses the command line and runs one subcommand.
//!
//! A failed command prints its error and the chain of causes, never a backtrace: the errors
//! that reach here are the user's to fix (a malformed line, a missing folder), even with
//! `RUST_BACKTRACE=1` set. Backtraces stay for bugs, which panic.

use std::process::ExitCode;

use clap::Parser;
use rankdistill_trainer::cli::{Cli, numbers};
use rankdistill_trainer::commands;
use rankdistill_trainer::output::{LogWriter, error_report};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(LogWriter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A number out of its flag's range is an invalid setting, like those the library
        // refuses: status 1. Usage errors keep clap's status 2.
        Err(e) if numbers::is_out_of_range(&e) => {
            let _ = e.print();
            return ExitCode::FAILURE;
        }
        Err(e) => e.exit(),
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A flag combination that clap's rules cannot express, refused by the command: a
        // usage error like clap's own, status 2.
        Err(e) => match e.downcast::<clap::Error>() {
            Ok(usage) => usage.exit(),
            Err(e) => {
                eprint!("{}", error_report(&e));
                ExitCode::FAILURE
            }
        },
    }
}
