//! `trainer prepare`: flags to settings. The one flag combination clap cannot refuse by
//! itself (a split fraction with a pre-split import) is refused here as a usage error.

use clap::CommandFactory;
use clap::error::ErrorKind;

use crate::cli::{Cli, PrepareArgs};
use crate::output::Output;
use crate::prepare::{PrepareSettings, PrepareSource};

/// The default of `--test-fraction`.
const DEFAULT_TEST_FRACTION: f64 = 0.2;

impl TryFrom<&PrepareArgs> for PrepareSettings {
    type Error = clap::Error;

    fn try_from(args: &PrepareArgs) -> Result<Self, clap::Error> {
        let source = match (&args.input, &args.train, &args.test) {
            (_, Some(train), Some(test)) => {
                for (flag, value) in [
                    ("--test-fraction", args.test_fraction),
                    ("--valid-fraction", args.valid_fraction),
                ] {
                    if value.is_some() {
                        return Err(usage_error(format!(
                            "{flag} does not apply with --train: a pre-split import keeps the split of its files; drop {flag} (and RD_{} from the environment), or re-split one file with --input",
                            flag.trim_start_matches("--")
                                .replace('-', "_")
                                .to_uppercase()
                        )));
                    }
                }
                PrepareSource::Presplit {
                    train: train.clone(),
                    valid: args.valid.clone(),
                    test: test.clone(),
                }
            }
            (Some(input), None, None) => PrepareSource::Resplit {
                input: input.clone(),
                test_fraction: args.test_fraction.unwrap_or(DEFAULT_TEST_FRACTION),
                valid_fraction: args.valid_fraction.unwrap_or(0.0),
            },
            // clap's conflicts and requirements leave no other combination.
            _ => {
                return Err(usage_error(
                    "give either --input FILE (re-split one file) or --train FILE --test FILE (a pre-split import)".into(),
                ));
            }
        };
        Ok(PrepareSettings {
            source,
            format: args.format,
            out: args.out.clone(),
        })
    }
}

/// A usage error of `trainer prepare`, printed like clap's own (status 2).
fn usage_error(message: String) -> clap::Error {
    let mut command = Cli::command();
    command.build();
    match command.find_subcommand_mut("prepare") {
        Some(prepare) => prepare.error(ErrorKind::ArgumentConflict, message),
        None => command.error(ErrorKind::ArgumentConflict, message),
    }
}

/// Runs `trainer prepare`.
pub fn run(args: &PrepareArgs, out: &Output) -> anyhow::Result<()> {
    crate::prepare::run_prepare(&PrepareSettings::try_from(args)?, out).map(|_| ())
}
