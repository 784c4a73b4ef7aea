//! `trainer prepare` and `trainer gen-synthetic`.

use anyhow::{Context, bail};
use rankdistill_core::dataset::read_interactions;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::{SplitConfig, SplitStats, split};
use rankdistill_core::synthetic::SyntheticConfig;

use std::time::Instant;

use crate::cli::{GenSyntheticArgs, PrepareArgs};
use crate::output::{Output, spinner};

/// Formats a count with thousands separators (1613 -> "1,613").
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

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

/// Runs `trainer prepare`.
pub fn run_prepare(args: &PrepareArgs, out: &Output) -> anyhow::Result<PreparedDataset> {
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
pub fn run_gen_synthetic(args: &GenSyntheticArgs, out: &Output) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(943), "943");
        assert_eq!(thousands(1613), "1,613");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
