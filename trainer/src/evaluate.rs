//! `trainer evaluate`: scores a model on the test (or validation) users of a prepared dataset.

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rankdistill_core::metrics::{EvalSet, Metrics, evaluate};
use rankdistill_core::popularity::{fill_scores, popularity};
use rankdistill_core::prepared::PreparedDataset;

use rankdistill_core::instances::last_window;
use rankdistill_models::checkpoint;
use rankdistill_models::{Model, ids_tensor};
use tch::Device;

use crate::output::Output;

/// Settings of `trainer evaluate`.
#[derive(Debug, Clone)]
pub struct EvaluateSettings {
    /// Prepared dataset folder.
    pub data: std::path::PathBuf,
    /// Model: `pop`, `random`, or a checkpoint folder.
    pub model: String,
    /// Which held-out part to score: test or valid.
    pub split: String,
    /// Cut-offs k.
    pub ks: Vec<usize>,
    /// Seed of the random model.
    pub seed: u64,
}

/// Which held-out part to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldOut {
    /// The test rows; the ranking excludes train and validation items.
    Test,
    /// The validation rows; the ranking excludes train items.
    Valid,
}

impl std::str::FromStr for HeldOut {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "test" => Ok(HeldOut::Test),
            "valid" | "validation" => Ok(HeldOut::Valid),
            other => bail!("unknown split '{other}': use test or valid"),
        }
    }
}

/// The evaluation set of a prepared dataset for a held-out part.
pub fn eval_set(data: &PreparedDataset, held_out: HeldOut) -> EvalSet<'_> {
    let split = &data.split;
    match held_out {
        HeldOut::Test => EvalSet {
            exclude: &split.train,
            exclude_extra: Some(&split.valid),
            targets: &split.test,
            num_items: data.num_items(),
        },
        HeldOut::Valid => EvalSet {
            exclude: &split.train,
            exclude_extra: None,
            targets: &split.valid,
            num_items: data.num_items(),
        },
    }
}

/// Evaluates the POP baseline.
pub fn evaluate_pop(data: &PreparedDataset, held_out: HeldOut, ks: &[usize]) -> Metrics {
    let pop = popularity(&data.split.train, data.num_items());
    evaluate(&eval_set(data, held_out), ks, |users, out| {
        fill_scores(&pop, users.len(), out)
    })
}

/// Evaluates uniform random scores, seeded per user so the result does not depend on chunking.
pub fn evaluate_random(
    data: &PreparedDataset,
    held_out: HeldOut,
    ks: &[usize],
    seed: u64,
) -> Metrics {
    let n = data.num_items();
    evaluate(&eval_set(data, held_out), ks, |users, out| {
        for (row, &user) in out.chunks_mut(n).zip(users) {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
                seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            row.iter_mut().for_each(|s| *s = rng.random());
        }
    })
}

/// Evaluates a native model: each user's query is the last L training items.
pub fn evaluate_native(
    data: &PreparedDataset,
    held_out: HeldOut,
    model: &Model,
    sequence_length: usize,
    device: Device,
    ks: &[usize],
) -> Metrics {
    let _guard = tch::no_grad_guard();
    let train = &data.split.train;
    evaluate(&eval_set(data, held_out), ks, |users, out| {
        let inputs: Vec<u32> = users
            .iter()
            .flat_map(|&u| last_window(&train[u as usize], sequence_length))
            .collect();
        let b = users.len() as i64;
        let user_t = ids_tensor(users, &[b], device);
        let input_t = ids_tensor(&inputs, &[b, sequence_length as i64], device);
        let scores = model
            .score_all(&user_t, &input_t, false)
            .to_kind(tch::Kind::Float)
            .to_device(Device::Cpu)
            .contiguous();
        scores.copy_data(out, out.len());
    })
}

/// Runs `trainer evaluate`.
pub fn run_evaluate(args: &EvaluateSettings, out: &Output) -> anyhow::Result<Metrics> {
    if args.ks.is_empty() || args.ks.contains(&0) {
        bail!("--ks must list positive cut-offs, e.g. 3,5,10");
    }
    let held_out: HeldOut = args.split.parse()?;
    let data = PreparedDataset::load(&args.data)
        .with_context(|| format!("cannot load the prepared dataset {}", args.data.display()))?;
    if held_out == HeldOut::Valid && data.split.valid.iter().all(Vec::is_empty) {
        bail!(
            "{} has no validation rows: prepare it with --valid-fraction",
            args.data.display()
        );
    }
    let start = std::time::Instant::now();
    let progress = crate::output::spinner("evaluate");
    progress.set_message(format!(
        "{} on {} {} users",
        args.model,
        eval_set(&data, held_out)
            .targets
            .iter()
            .filter(|t| !t.is_empty())
            .count(),
        args.split
    ));
    let metrics = match args.model.as_str() {
        "pop" => evaluate_pop(&data, held_out, &args.ks),
        "random" => evaluate_random(&data, held_out, &args.ks, args.seed),
        path => {
            let dir = std::path::Path::new(path);
            if !dir.join(checkpoint::MANIFEST_FILE).exists() {
                bail!(
                    "unknown model '{path}': use pop, random, or a checkpoint folder (with {})",
                    checkpoint::MANIFEST_FILE
                );
            }
            let loaded = checkpoint::load(dir, Device::cuda_if_available())?;
            if loaded.manifest.data.fingerprint != data.manifest.fingerprint {
                bail!(
                    "checkpoint {path} was trained on data {} but {} has fingerprint {}",
                    loaded.manifest.data.fingerprint,
                    args.data.display(),
                    data.manifest.fingerprint
                );
            }
            evaluate_native(
                &data,
                held_out,
                &loaded.model,
                loaded.manifest.model.sequence_length as usize,
                loaded.vs.device(),
                &args.ks,
            )
        }
    };
    progress.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    out.say(format!(
        "model {} on {} ({} split, fingerprint {}); nDCG is the standard definition, nDCG(ref) the reference variant",
        args.model,
        args.data.display(),
        args.split,
        data.manifest.fingerprint
    ));
    out.say(metrics.table());
    let at10 = metrics.at_k(10).or(metrics.at.last());
    out.summary(format!(
        "evaluate: {} on {} ({} users): MAP {:.4}{} in {}",
        args.model,
        args.split,
        metrics.users,
        metrics.map,
        at10.map(|a| format!(
            ", Prec@{} {:.4}, nDCG@{} {:.4}",
            a.k, a.precision, a.k, a.ndcg
        ))
        .unwrap_or_default(),
        crate::output::seconds(seconds)
    ));
    out.json(&serde_json::json!({
        "command": "evaluate",
        "model": args.model,
        "data": args.data.display().to_string(),
        "fingerprint": data.manifest.fingerprint,
        "split": args.split,
        "metrics": metrics,
        "seconds": seconds,
    }))?;
    Ok(metrics)
}
