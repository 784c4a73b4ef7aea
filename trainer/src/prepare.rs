//! `trainer prepare` and `trainer gen-synthetic`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use rankdistill_core::dataset::{Format, read_interactions};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{SplitConfig, SplitStats, split};
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
    /// Interaction file.
    pub input: PathBuf,
    /// File format; detected from the first line when `None`.
    pub format: Option<Format>,
    /// Output folder of the prepared dataset.
    pub out: PathBuf,
    /// Fraction of each user's interactions (the most recent) held out for test.
    pub test_fraction: f64,
    /// Fraction of each user's remaining training interactions cut for validation.
    pub valid_fraction: f64,
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
    for (name, value) in [
        ("--test-fraction", args.test_fraction),
        ("--valid-fraction", args.valid_fraction),
    ] {
        if !(0.0..1.0).contains(&value) {
            bail!("{name} must be in [0, 1), got {value}");
        }
    }
    let start = Instant::now();
    let progress = spinner("prepare");
    progress.set_message(format!("reading {}", args.input.display()));
    let (format, rows) = read_interactions(&args.input, args.format)?;
    progress.set_message(format!("splitting {} interactions", thousands(rows.len())));
    let config = SplitConfig {
        test_fraction: args.test_fraction,
        valid_fraction: args.valid_fraction,
    };
    let data = PreparedDataset::new(
        split(&rows, config),
        args.input.display().to_string(),
        format,
        config,
    );
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
    out.say(format!(
        "read {} interactions from {} ({format})",
        thousands(rows.len()),
        args.input.display()
    ));
    out.say(summary(stats));
    out.say(format!(
        "wrote {} (fingerprint {})",
        args.out.display(),
        data.manifest.fingerprint
    ));
    out.summary(format!(
        "prepare: {} interactions -> {} users, {} train items, {} train / {} test rows in {}; wrote {}",
        thousands(rows.len()),
        thousands(stats.users),
        thousands(stats.train_items),
        thousands(stats.train_rows),
        thousands(stats.test_rows),
        crate::output::seconds(seconds),
        args.out.display()
    ));
    out.json(&serde_json::json!({
        "command": "prepare",
        "input": args.input.display().to_string(),
        "format": format.to_string(),
        "interactions": rows.len(),
        "out": args.out.display().to_string(),
        "fingerprint": data.manifest.fingerprint,
        "stats": stats,
        "test_fraction": args.test_fraction,
        "valid_fraction": args.valid_fraction,
        "seconds": seconds,
    }))?;
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
