//! `trainer prepare`: flags to settings. The flag combinations clap cannot refuse by itself (a
//! split fraction or `--protocol` with a pre-split import, a split fraction with the
//! leave-one-out protocol) are refused here as usage errors.

use clap::CommandFactory;
use clap::error::ErrorKind;

use crate::cli::{Cli, PrepareArgs, ProtocolArg};
use crate::output::Output;
use crate::prepare::{PrepareSettings, PrepareSource, ResplitProtocol};

/// The default of `--test-fraction`.
const DEFAULT_TEST_FRACTION: f64 = 0.2;

impl TryFrom<&PrepareArgs> for PrepareSettings {
    type Error = clap::Error;

    fn try_from(args: &PrepareArgs) -> Result<Self, clap::Error> {
        let source = match (&args.input, &args.train, &args.test) {
            (_, Some(train), Some(test)) => {
                for (flag, given) in [
                    ("--test-fraction", args.test_fraction.is_some()),
                    ("--valid-fraction", args.valid_fraction.is_some()),
                    ("--protocol", args.protocol.is_some()),
                ] {
                    if given {
                        return Err(usage_error(format!(
                            "{flag} does not apply with --train: a pre-split import keeps the split of its files; drop {flag} (and {} from the environment), or re-split one file with --input",
                            env_name(flag)
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
                protocol: match args.protocol.unwrap_or(ProtocolArg::Temporal) {
                    ProtocolArg::Temporal => ResplitProtocol::Temporal {
                        test_fraction: args.test_fraction.unwrap_or(DEFAULT_TEST_FRACTION),
                        valid_fraction: args.valid_fraction.unwrap_or(0.0),
                    },
                    ProtocolArg::LeaveOneOut => {
                        for (flag, given) in [
                            ("--test-fraction", args.test_fraction.is_some()),
                            ("--valid-fraction", args.valid_fraction.is_some()),
                        ] {
                            if given {
                                return Err(usage_error(format!(
                                    "{flag} does not apply with --protocol leave-one-out, which holds out each user's last interaction for test and the second-to-last for validation; drop {flag} (and {} from the environment), or use --protocol temporal",
                                    env_name(flag)
                                )));
                            }
                        }
                        ResplitProtocol::LeaveOneOut
                    }
                },
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

/// The environment variable of a `prepare` flag.
fn env_name(flag: &str) -> &'static str {
    match flag {
        "--test-fraction" => "RD_TEST_FRACTION",
        "--valid-fraction" => "RD_VALID_FRACTION",
        "--protocol" => "RD_SPLIT_PROTOCOL",
        _ => "its variable",
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
