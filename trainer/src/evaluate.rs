//! `trainer evaluate`: scores a model on the test (or validation) users of a prepared dataset,
//! over the full ranking, and with `--sampled-negatives N` also over the target and N sampled
//! negatives per user (SASRec's protocol, [`rankdistill_core::sampled`]).

use anyhow::{Context, bail};
use rand::{Rng, SeedableRng};
use rankdistill_core::metrics::{EvalSet, Metrics, evaluate};
use rankdistill_core::popularity::{fill_scores, popularity};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::sampled::{
    SampledError, SampledMetrics, SampledSet, check_one_target, evaluate_sampled,
};
use rankdistill_core::split::HeldOutPart;

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
    /// Seed of the random model and of the sampled negatives.
    pub seed: u64,
    /// Negatives per user of the sampled metrics; 0: none computed.
    pub sampled_negatives: usize,
}

/// Which held-out part to evaluate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldOut {
    /// The test rows; the ranking excludes train and validation items.
    Test,
    /// The validation rows; the ranking excludes train items.
    Valid,
}

impl From<HeldOut> for HeldOutPart {
    fn from(held_out: HeldOut) -> Self {
        match held_out {
            HeldOut::Test => HeldOutPart::Test,
            HeldOut::Valid => HeldOutPart::Valid,
        }
    }
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

/// The random model's scores of every item for `user`: uniform, seeded per user so the result
/// does not depend on chunking.
fn random_scores(seed: u64, user: u32, row: &mut [f32]) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
        seed ^ (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    row.iter_mut().for_each(|s| *s = rng.random());
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
            random_scores(seed, user, row);
        }
    })
}

/// The queries of `users` for `held_out`: per user the last `sequence_length` items of its
/// history for that part ([`PreparedDataset::history`]: the training items, and under the
/// leave-one-out protocol for the test part the training items and the validation item), as
/// padded input ids, row-major.
pub fn held_out_queries(
    data: &PreparedDataset,
    held_out: HeldOut,
    users: &[u32],
    sequence_length: usize,
) -> Vec<u32> {
    users
        .iter()
        .flat_map(|&u| last_window(&data.history(u as usize, held_out.into()), sequence_length))
        .collect()
}

/// Evaluates a native model: each user's query is the last L items of its history for the
/// held-out part ([`held_out_queries`]).
pub fn evaluate_native(
    data: &PreparedDataset,
    held_out: HeldOut,
    model: &Model,
    sequence_length: usize,
    device: Device,
    ks: &[usize],
) -> Metrics {
    let _guard = tch::no_grad_guard();
    evaluate(&eval_set(data, held_out), ks, |users, out| {
        rankdistill_models::threads::adapt();
        let inputs = held_out_queries(data, held_out, users, sequence_length);
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

/// The sampled set of a held-out part: negatives are never training items (nor the target).
fn sampled_set(data: &PreparedDataset, held_out: HeldOut) -> SampledSet<'_> {
    let set = eval_set(data, held_out);
    SampledSet {
        seen: &data.split.train,
        targets: set.targets,
        num_items: data.num_items(),
    }
}

/// Refuses sampled metrics on a part where some user has several held-out items.
fn check_sampled(
    data: &PreparedDataset,
    held_out: HeldOut,
    split_name: &str,
) -> anyhow::Result<()> {
    check_one_target(sampled_set(data, held_out).targets)
        .map_err(|e| sampled_error(data, e, split_name))
}

/// The message of a [`SampledError`], with raw user ids and what to do.
fn sampled_error(data: &PreparedDataset, error: SampledError, split_name: &str) -> anyhow::Error {
    let raw = |user: u32| {
        data.split
            .users
            .get(user as usize)
            .map_or_else(|| format!("#{user}"), |id| format!("'{id}'"))
    };
    match error {
        SampledError::SeveralTargets {
            users,
            several,
            first_user,
            first_count,
        } => anyhow::anyhow!(
            "--sampled-negatives needs exactly one {split_name} item per evaluated user, but {several} of the {users} users have more (user {} has {first_count}; the dataset's protocol is {}); prepare the dataset with `trainer prepare --protocol leave-one-out`",
            raw(first_user),
            data.protocol()
                .map_or_else(|| "a pre-split import".to_string(), |p| p.to_string())
        ),
        SampledError::NoNegative { user } => anyhow::anyhow!(
            "--sampled-negatives: user {} has every item of the catalogue in its training items or as its {split_name} item, so no negative can be drawn",
            raw(user)
        ),
    }
}

/// Sampled metrics of the POP baseline (ties count in the target's favour).
pub fn sampled_pop(
    data: &PreparedDataset,
    held_out: HeldOut,
    ks: &[usize],
    negatives: usize,
    seed: u64,
) -> Result<SampledMetrics, SampledError> {
    let pop = popularity(&data.split.train, data.num_items());
    evaluate_sampled(
        &sampled_set(data, held_out),
        ks,
        negatives,
        seed,
        |_, items, out| {
            for (o, &i) in out.iter_mut().zip(items) {
                *o = pop[i as usize];
            }
        },
    )
}

/// Sampled metrics of the random model: each candidate keeps the score the full ranking gives
/// it under the same seed.
pub fn sampled_random(
    data: &PreparedDataset,
    held_out: HeldOut,
    ks: &[usize],
    negatives: usize,
    seed: u64,
) -> Result<SampledMetrics, SampledError> {
    let mut row = vec![0f32; data.num_items()];
    evaluate_sampled(
        &sampled_set(data, held_out),
        ks,
        negatives,
        seed,
        |users, items, out| {
            let width = negatives + 1;
            for ((&user, items), out) in users
                .iter()
                .zip(items.chunks(width))
                .zip(out.chunks_mut(width))
            {
                random_scores(seed, user, &mut row);
                for (o, &i) in out.iter_mut().zip(items) {
                    *o = row[i as usize];
                }
            }
        },
    )
}

/// Sampled metrics of a native model: the queries of [`held_out_queries`], the candidates
/// scored with `Model::score_items`.
#[allow(clippy::too_many_arguments)]
pub fn sampled_native(
    data: &PreparedDataset,
    held_out: HeldOut,
    model: &Model,
    sequence_length: usize,
    device: Device,
    ks: &[usize],
    negatives: usize,
    seed: u64,
) -> Result<SampledMetrics, SampledError> {
    let _guard = tch::no_grad_guard();
    evaluate_sampled(
        &sampled_set(data, held_out),
        ks,
        negatives,
        seed,
        |users, items, out| {
            rankdistill_models::threads::adapt();
            let inputs = held_out_queries(data, held_out, users, sequence_length);
            let b = users.len() as i64;
            let user_t = ids_tensor(users, &[b], device);
            let input_t = ids_tensor(&inputs, &[b, sequence_length as i64], device);
            let item_t = ids_tensor(items, &[b, (negatives + 1) as i64], device);
            let scores = model
                .score_items(&user_t, &input_t, &item_t, false)
                .to_kind(tch::Kind::Float)
                .to_device(Device::Cpu)
                .contiguous();
            scores.copy_data(out, out.len());
        },
    )
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
    let part = match held_out {
        HeldOut::Test => "test",
        HeldOut::Valid => "validation",
    };
    let negatives = args.sampled_negatives;
    if negatives > 0 {
        check_sampled(&data, held_out, part)?;
    }
    let sampled = |metrics: Result<SampledMetrics, SampledError>| {
        metrics.map_err(|e| sampled_error(&data, e, part))
    };
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
    let (metrics, sampled) = match args.model.as_str() {
        "pop" => (
            evaluate_pop(&data, held_out, &args.ks),
            (negatives > 0)
                .then(|| sampled(sampled_pop(&data, held_out, &args.ks, negatives, args.seed)))
                .transpose()?,
        ),
        "random" => (
            evaluate_random(&data, held_out, &args.ks, args.seed),
            (negatives > 0)
                .then(|| {
                    sampled(sampled_random(
                        &data, held_out, &args.ks, negatives, args.seed,
                    ))
                })
                .transpose()?,
        ),
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
            let sequence_length = loaded.manifest.model.sequence_length as usize;
            let device = loaded.vs.device();
            let metrics = evaluate_native(
                &data,
                held_out,
                &loaded.model,
                sequence_length,
                device,
                &args.ks,
            );
            let sampled = (negatives > 0)
                .then(|| {
                    sampled(sampled_native(
                        &data,
                        held_out,
                        &loaded.model,
                        sequence_length,
                        device,
                        &args.ks,
                        negatives,
                        args.seed,
                    ))
                })
                .transpose()?;
            (metrics, sampled)
        }
    };
    progress.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let protocol = data.protocol().map_or_else(
        || "pre-split import".to_string(),
        |p| format!("{p} protocol"),
    );
    out.say(format!(
        "model {} on {} ({} split, {protocol}, fingerprint {}); full ranking over all items; nDCG is the standard definition, nDCG(ref) the reference variant",
        args.model,
        args.data.display(),
        args.split,
        data.manifest.fingerprint
    ));
    out.say(metrics.table());
    if let Some(sampled) = &sampled {
        out.say(format!(
            "sampled: the {part} item among {negatives} negatives per user (uniform, seed {}, never a training item nor the target; a tie counts for the target); sampled metrics overstate the full ranking's",
            args.seed
        ));
        out.say(sampled.table());
    }
    let at10 = metrics.at_k(10).or(metrics.at.last());
    let sampled10 = sampled
        .as_ref()
        .and_then(|s| s.at_k(10).or(s.at.last()))
        .map(|a| {
            format!(
                "; sampled ({negatives} negatives) HR@{} {:.4}, NDCG@{} {:.4}",
                a.k, a.hr, a.k, a.ndcg
            )
        })
        .unwrap_or_default();
    out.summary(format!(
        "evaluate: {} on {} ({} users): MAP {:.4}{}{sampled10} in {}",
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
        "protocol": data.protocol().map(|p| p.name()),
        "split": args.split,
        "metrics": metrics,
        "sampled": sampled,
        "seconds": seconds,
    }))?;
    Ok(metrics)
}
