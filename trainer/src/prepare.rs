//! `trainer prepare` (a re-split of one file, or a pre-split import) and
//! `trainer gen-synthetic`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use rankdistill_core::dataset::{Format, RawInteraction, read_interactions};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{
    SplitConfig, SplitProtocol, SplitStats, from_presplit, split, split_leave_one_out,
};
use rankdistill_core::synthetic::SyntheticConfig;

use crate::output::{Output, spinner, thousands};

/// One-line summary of a split, as `prepare` prints it.
pub fn summary(stats: &SplitStats) -> String {
    let mut line = format!(
        "{} users, {} train items, {} train rows, {} test rows ({} test rows dropped)",
        thousands(stats.users),
        thousands(stats.train_items),
        thousands(stats.train_rows),
        thousands(stats.test_rows),
        thousands(stats.test_dropped),
    );
    if stats.valid_rows + stats.valid_dropped > 0 {
        line.push_str(&format!(
            ", {} valid rows ({} valid rows dropped)",
            thousands(stats.valid_rows),
            thousands(stats.valid_dropped)
        ));
    }
    line
}

/// Settings of `trainer prepare`.
#[derive(Debug, Clone)]
pub struct PrepareSettings {
    /// Where the interactions come from and how they are split.
    pub source: PrepareSource,
    /// Format of every input file; each file's is detected from its first line when `None`
    /// (and they must agree).
    pub format: Option<Format>,
    /// Output folder of the prepared dataset.
    pub out: PathBuf,
}

/// The input of `trainer prepare`.
#[derive(Debug, Clone)]
pub enum PrepareSource {
    /// One interaction file, split per user by time.
    Resplit {
        /// Interaction file.
        input: PathBuf,
        /// How each user's interactions are split.
        protocol: ResplitProtocol,
    },
    /// A pre-split import: the parts as the files give them; users and items come from
    /// `train`.
    Presplit {
        /// Training file.
        train: PathBuf,
        /// Validation file, if any.
        valid: Option<PathBuf>,
        /// Test file.
        test: PathBuf,
    },
}

/// How a re-split splits each user's interactions (in time order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResplitProtocol {
    /// [`SplitProtocol::Temporal`]: the most recent fractions to test, then to validation.
    Temporal {
        /// Fraction of each user's interactions (the most recent) held out for test.
        test_fraction: f64,
        /// Fraction of each user's remaining training interactions cut for validation.
        valid_fraction: f64,
    },
    /// [`SplitProtocol::LeaveOneOut`]: the last interaction to test, the second-to-last to
    /// validation (users with fewer than 3 keep all in train).
    LeaveOneOut,
}

impl ResplitProtocol {
    /// The protocol without its settings.
    pub fn protocol(&self) -> SplitProtocol {
        match self {
            ResplitProtocol::Temporal { .. } => SplitProtocol::Temporal,
            ResplitProtocol::LeaveOneOut => SplitProtocol::LeaveOneOut,
        }
    }
}

/// Settings of `trainer gen-synthetic`.
#[derive(Debug, Clone)]
pub struct GenSyntheticSettings {
    /// Output file.
    pub out: PathBuf,
    /// Number of users.
    pub users: usize,
    /// Number of items.
    pub items: usize,
    /// Number of item clusters.
    pub clusters: usize,
    /// Mean interactions per user.
    pub mean_length: usize,
    /// Minimum interactions per user.
    pub min_length: usize,
    /// Probability that the next item is a successor of the previous one.
    pub transition_prob: f64,
    /// Power-law exponent of item popularity.
    pub popularity_exponent: f64,
    /// Random seed.
    pub seed: u64,
}

/// Runs `trainer prepare`.
pub fn run_prepare(args: &PrepareSettings, out: &Output) -> anyhow::Result<PreparedDataset> {
    if let PrepareSource::Resplit {
        protocol:
            ResplitProtocol::Temporal {
                test_fraction,
                valid_fraction,
            },
        ..
    } = args.source
    {
        for (name, value) in [
            ("--test-fraction", test_fraction),
            ("--valid-fraction", valid_fraction),
        ] {
            if !(0.0..1.0).contains(&value) {
                bail!("{name} must be in [0, 1), got {value}");
            }
        }
    }
    let start = Instant::now();
    let progress = spinner("prepare");
    let (data, format, interactions, read) = match &args.source {
        PrepareSource::Resplit { input, protocol } => {
            progress.set_message(format!("reading {}", input.display()));
            let (format, rows) = read_interactions(input, args.format)?;
            progress.set_message(format!(
                "splitting {} interactions ({})",
                thousands(rows.len()),
                protocol.protocol()
            ));
            let data = match *protocol {
                ResplitProtocol::Temporal {
                    test_fraction,
                    valid_fraction,
                } => {
                    let config = SplitConfig {
                        test_fraction,
                        valid_fraction,
                    };
                    PreparedDataset::new(
                        split(&rows, config),
                        input.display().to_string(),
                        format,
                        config,
                    )
                }
                ResplitProtocol::LeaveOneOut => PreparedDataset::new_leave_one_out(
                    split_leave_one_out(&rows),
                    input.display().to_string(),
                    format,
                ),
            };
            let read = format!(
                "read {} interactions from {} ({format})",
                thousands(rows.len()),
                input.display()
            );
            (data, format, rows.len(), read)
        }
        PrepareSource::Presplit { train, valid, test } => {
            let mut files = vec![("train", train.as_path()), ("test", test.as_path())];
            if let Some(valid) = valid {
                files.push(("valid", valid.as_path()));
            }
            let mut parts: Vec<(&str, &Path, Format, Vec<RawInteraction>)> = Vec::new();
            for (part, path) in files {
                progress.set_message(format!("reading {}", path.display()));
                let (format, rows) = read_interactions(path, args.format)?;
                if let Some((first, first_path, first_format, _)) = parts.first()
                    && *first_format != format
                {
                    bail!(
                        "the {part} file {} is {format} but the {first} file {} is {first_format}; a pre-split import needs one format for all files (convert one, or give --format)",
                        path.display(),
                        first_path.display()
                    );
                }
                parts.push((part, path, format, rows));
            }
            let format = parts[0].2;
            let rows_of = |name: &str| {
                parts
                    .iter()
                    .find(|(part, ..)| *part == name)
                    .map_or(&[][..], |(.., rows)| rows.as_slice())
            };
            let interactions = parts.iter().map(|(.., rows)| rows.len()).sum();
            progress.set_message(format!(
                "importing {} interactions",
                thousands(interactions)
            ));
            let data = PreparedDataset::new_presplit(
                from_presplit(rows_of("train"), rows_of("valid"), rows_of("test")),
                format,
                train.display().to_string(),
                valid.as_ref().map(|v| v.display().to_string()),
                test.display().to_string(),
            );
            let read = parts
                .iter()
                .map(|(part, path, _, rows)| {
                    format!(
                        "read {} {part} interactions from {} ({format})",
                        thousands(rows.len()),
                        path.display()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            (data, format, interactions, read)
        }
    };
    progress.set_message(format!("writing {}", args.out.display()));
    data.save(&args.out).with_context(|| {
        format!(
            "cannot write the prepared dataset to {}",
            args.out.display()
        )
    })?;
    progress.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let stats = &data.manifest.stats;
    out.say(read);
    if let PrepareSource::Resplit {
        protocol: ResplitProtocol::LeaveOneOut,
        ..
    } = &args.source
    {
        out.say(
            "protocol leave-one-out: per user, the last item to test and the second-to-last to validation (users with fewer than 3 interactions keep them all in train)",
        );
    }
    out.say(summary(stats));
    out.say(format!(
        "wrote {} (fingerprint {})",
        args.out.display(),
        data.manifest.fingerprint
    ));
    out.summary(format!(
        "prepare: {} interactions -> {} users, {} train items, {} train / {} test rows in {}; wrote {}",
        thousands(interactions),
        thousands(stats.users),
        thousands(stats.train_items),
        thousands(stats.train_rows),
        thousands(stats.test_rows),
        crate::output::seconds(seconds),
        args.out.display()
    ));
    let mut json = serde_json::json!({
        "command": "prepare",
        "mode": match args.source {
            PrepareSource::Resplit { .. } => "resplit",
            PrepareSource::Presplit { .. } => "presplit",
        },
        "format": format.to_string(),
        "interactions": interactions,
        "out": args.out.display().to_string(),
        "fingerprint": data.manifest.fingerprint,
        "stats": stats,
        "seconds": seconds,
    });
    match &args.source {
        PrepareSource::Resplit { input, protocol } => {
            json["input"] = input.display().to_string().into();
            json["protocol"] = protocol.protocol().name().into();
            if let ResplitProtocol::Temporal {
                test_fraction,
                valid_fraction,
            } = protocol
            {
                json["test_fraction"] = (*test_fraction).into();
                json["valid_fraction"] = (*valid_fraction).into();
            }
        }
        PrepareSource::Presplit { train, valid, test } => {
            json["train"] = train.display().to_string().into();
            json["valid"] = valid.as_ref().map(|v| v.display().to_string()).into();
            json["test"] = test.display().to_string().into();
        }
    }
    out.json(&json)?;
    Ok(data)
}

/// Runs `trainer gen-synthetic`.
pub fn run_gen_synthetic(args: &GenSyntheticSettings, out: &Output) -> anyhow::Result<()> {
    let config = SyntheticConfig {
        users: args.users,
        items: args.items,
        clusters: args.clusters,
        mean_length: args.mean_length,
        min_length: args.min_length,
        popularity_exponent: args.popularity_exponent,
        transition_prob: args.transition_prob,
        seed: args.seed,
        ..SyntheticConfig::default()
    };
    let n = config.write_udata(&args.out)?;
    out.say(format!(
        "wrote {} synthetic interactions ({} users, {} items, seed {}) to {}",
        thousands(n),
        thousands(args.users),
        thousands(args.items),
        args.seed,
        args.out.display()
    ));
    out.json(&serde_json::json!({
        "command": "gen-synthetic",
        "out": args.out.display().to_string(),
        "interactions": n,
        "users": args.users,
        "items": args.items,
        "clusters": args.clusters,
        "mean_length": args.mean_length,
        "seed": args.seed,
    }))?;
    Ok(())
}
