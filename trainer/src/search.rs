//! `trainer search`: hyper-parameters chosen on the validation split, never on test. Each
//! trial trains on the training part, evaluates on validation after every epoch and keeps its
//! best epoch; the trial with the best validation MAP wins, and its settings and epoch count are
//! written as `choice.json` with the flags that repeat them on the full split. Finished trials
//! are kept in `trials/` and reused, so an interrupted search resumes.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::atomic::write_atomic;
use rankdistill_core::prepared::PreparedDataset;
use serde::{Deserialize, Serialize};

use crate::evaluate::HeldOut;
use crate::output::Output;
use crate::rd_loss::RdConfig;
use crate::teacher_rankings::obtain_rankings;
use crate::teachers::TeacherSource;
use crate::train::config::{OptimConfig, TrainingSettings};
use crate::train::fit::{Distillation, Teaching, rankings_tensor, train_model};

/// What the search trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// The model alone (no teacher): one trial, which chooses the number of epochs.
    Alone,
    /// Ranking Distillation: the RD settings and the number of epochs.
    Rd,
}

/// The values each RD setting may take; the trials are drawn from their product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Position-weight temperatures lambda.
    pub lambdas: Vec<f64>,
    /// Discrepancy sharpness values mu.
    pub mus: Vec<f64>,
    /// Weights a' (or a) of L_D.
    pub alphas: Vec<f64>,
    /// Epochs after which the dynamic weights start.
    pub dynamic_starts: Vec<usize>,
    /// Whether the dynamic weights are renormalised.
    pub renormalise: Vec<bool>,
}

impl Default for SearchSpace {
    fn default() -> Self {
        SearchSpace {
            lambdas: vec![0.5, 1.0, 2.0, 5.0],
            mus: vec![0.01, 0.1, 0.5],
            alphas: vec![0.3, 1.0, 3.0],
            dynamic_starts: vec![5, 10, 15],
            renormalise: vec![false, true],
        }
    }
}

impl SearchSpace {
    /// Every combination, as RD settings on top of `base` (k, samples, weighting, loss form,
    /// exclude-seen come from `base`).
    pub fn grid(&self, base: &RdConfig) -> Vec<RdConfig> {
        let mut out = Vec::new();
        for &lambda in &self.lambdas {
            for &mu in &self.mus {
                for &alpha in &self.alphas {
                    for &dynamic_start_epoch in &self.dynamic_starts {
                        for &renormalise in &self.renormalise {
                            out.push(RdConfig {
                                lambda,
                                mu,
                                alpha,
                                dynamic_start_epoch,
                                renormalise,
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// Checks that every axis has at least one value.
    pub fn validate(&self) -> Result<(), String> {
        for (name, len) in [
            ("--lambdas", self.lambdas.len()),
            ("--mus", self.mus.len()),
            ("--alphas", self.alphas.len()),
            ("--dynamic-starts", self.dynamic_starts.len()),
            ("--renormalise-options", self.renormalise.len()),
        ] {
            if len == 0 {
                return Err(format!("{name} needs at least one value"));
            }
        }
        Ok(())
    }
}

/// The RD settings of the trials: `base` (the reference defaults) first, then up to
/// `budget - 1` other grid points in a seeded random order, without repeats.
pub fn trial_configs(
    space: &SearchSpace,
    base: &RdConfig,
    budget: usize,
    seed: u64,
) -> Vec<RdConfig> {
    let mut rest: Vec<RdConfig> = space.grid(base).into_iter().filter(|c| c != base).collect();
    rest.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    std::iter::once(base.clone())
        .chain(rest)
        .take(budget.max(1))
        .collect()
}

/// One finished trial: its settings and the validation MAP after every epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Trial number, 0-based (0 is the reference defaults).
    pub index: usize,
    /// RD settings (`None` for the model alone).
    pub rd: Option<RdConfig>,
    /// The optimisation settings it ran with.
    pub optim: OptimConfig,
    /// Validation MAP after each epoch, epoch 1 first.
    pub valid_map: Vec<f64>,
    /// Seconds of training.
    pub seconds: f64,
}

impl Trial {
    /// The best epoch (1-based; the earliest among ties) and its validation MAP.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.valid_map
            .iter()
            .enumerate()
            .fold(None, |best: Option<(usize, f64)>, (i, &m)| match best {
                Some((_, b)) if b >= m => best,
                _ => Some((i + 1, m)),
            })
    }
}

/// The search's result, written as `choice.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Choice {
    /// What was searched.
    pub method: SearchMethod,
    /// The selection metric and split.
    pub selected_by: String,
    /// The chosen number of epochs.
    pub epochs: usize,
    /// The validation MAP at that epoch.
    pub valid_map: f64,
    /// The chosen RD settings (`None` for the model alone).
    pub rd: Option<RdConfig>,
    /// The `train`/`distill` flags that repeat the choice.
    pub flags: Vec<String>,
    /// Every trial, in order.
    pub trials: Vec<Trial>,
}

/// Settings of `trainer search`.
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// Prepared dataset folder with a validation split.
    pub data: PathBuf,
    /// Output folder: `trials/NNN.json` and `choice.json`.
    pub out: PathBuf,
    /// What to search.
    pub method: SearchMethod,
    /// Teachers, cache and shards (for `Rd`).
    pub source: TeacherSource,
    /// Seconds to wait for shards.
    pub shard_wait_s: u64,
    /// Model, optimisation (the maximum epochs) and device; evaluation is forced to `valid`,
    /// every epoch.
    pub training: TrainingSettings,
    /// The RD settings of trial 0 and the fixed ones of every trial.
    pub rd: RdConfig,
    /// The values to draw the other trials from.
    pub space: SearchSpace,
    /// Number of trials (training runs) at most.
    pub budget: usize,
}

/// The flags that repeat `rd` (when given) and `epochs`.
pub fn choice_flags(rd: Option<&RdConfig>, epochs: usize) -> Vec<String> {
    let mut flags = vec!["--epochs".to_string(), epochs.to_string()];
    if let Some(rd) = rd {
        for (name, value) in [
            ("--lambda", rd.lambda.to_string()),
            ("--mu", rd.mu.to_string()),
            ("--alpha", rd.alpha.to_string()),
            ("--dynamic-start-epoch", rd.dynamic_start_epoch.to_string()),
            ("--renormalise", rd.renormalise.to_string()),
        ] {
            flags.push(name.into());
            flags.push(value);
        }
    }
    flags
}

fn trial_path(out: &Path, index: usize) -> PathBuf {
    out.join("trials").join(format!("{index:03}.json"))
}

/// A finished trial of the same settings, if `out` holds one.
fn finished_trial(
    out: &Path,
    index: usize,
    rd: Option<&RdConfig>,
    optim: &OptimConfig,
) -> Option<Trial> {
    let bytes = std::fs::read(trial_path(out, index)).ok()?;
    let trial: Trial = serde_json::from_slice(&bytes).ok()?;
    (trial.rd.as_ref() == rd && &trial.optim == optim).then_some(trial)
}

/// Runs `trainer search`.
pub fn run_search(args: &SearchSettings, out: &Output) -> anyhow::Result<Choice> {
    if args.budget == 0 {
        bail!("--budget must be at least 1 trial");
    }
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    if data.split.valid.iter().all(|v| v.is_empty()) {
        bail!(
            "{} has no validation split: prepare it with --valid-fraction F (e.g. 0.1) so the search never looks at test",
            args.data.display()
        );
    }
    args.space.validate().map_err(anyhow::Error::msg)?;
    args.rd.validate().map_err(anyhow::Error::msg)?;
    let training = &args.training;
    let config = training.model.model_config(&data, 50);
    let window = training.model.window;
    let optim = OptimConfig {
        eval_every: 1,
        ..training.optim.clone()
    };
    let configs: Vec<Option<RdConfig>> = match args.method {
        SearchMethod::Alone => vec![None],
        SearchMethod::Rd => trial_configs(&args.space, &args.rd, args.budget, optim.seed)
            .into_iter()
            .map(Some)
            .collect(),
    };
    let rankings = match args.method {
        SearchMethod::Alone => None,
        SearchMethod::Rd => {
            let (rankings, teacher, pull) = obtain_rankings(
                &args.source,
                args.shard_wait_s,
                &data,
                window,
                args.rd.k,
                args.rd.exclude_seen,
            )?;
            out.say(format!(
                "rankings: {} queries of teacher {} from the {}",
                pull.queries, teacher.version, pull.source
            ));
            Some(rankings_tensor(&rankings))
        }
    };
    let mut trials = Vec::with_capacity(configs.len());
    for (index, rd) in configs.iter().enumerate() {
        if let Some(trial) = finished_trial(&args.out, index, rd.as_ref(), &optim) {
            out.say(format!(
                "trial {index}: reusing {}",
                trial_path(&args.out, index).display()
            ));
            trials.push(trial);
            continue;
        }
        let distillation = match (rd, &rankings) {
            (Some(rd), Some(tensor)) => Some(Distillation {
                rankings: tensor.shallow_clone(),
                config: rd.clone(),
            }),
            _ => None,
        };
        let start = Instant::now();
        let trained = train_model(
            &data,
            &config,
            window,
            &optim,
            training.device,
            HeldOut::Valid,
            match &distillation {
                Some(d) => Teaching::Rd(d),
                None => Teaching::Alone,
            },
        )?;
        let trial = Trial {
            index,
            rd: rd.clone(),
            optim: optim.clone(),
            valid_map: trained
                .history
                .iter()
                .filter_map(|h| h.metrics.as_ref().map(|m| m.map))
                .collect(),
            seconds: start.elapsed().as_secs_f64(),
        };
        let path = trial_path(&args.out, index);
        std::fs::create_dir_all(path.parent().unwrap_or(&args.out))
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        write_atomic(&path, &serde_json::to_vec_pretty(&trial)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let (epoch, map) = trial.best().unwrap_or((0, 0.0));
        out.say(format!(
            "trial {index}: best valid MAP {map:.4} at epoch {epoch} ({:.0}s){}",
            trial.seconds,
            rd.as_ref()
                .map(|rd| format!(
                    ": lambda {} mu {} alpha {} dynamic start {} renormalise {}",
                    rd.lambda, rd.mu, rd.alpha, rd.dynamic_start_epoch, rd.renormalise
                ))
                .unwrap_or_default()
        ));
        trials.push(trial);
    }
    let (winner, epochs, valid_map) = trials
        .iter()
        .filter_map(|t| t.best().map(|(e, m)| (t, e, m)))
        .fold(None, |best: Option<(&Trial, usize, f64)>, c| match best {
            Some(b) if b.2 >= c.2 => Some(b),
            _ => Some(c),
        })
        .ok_or_else(|| anyhow::anyhow!("no trial was evaluated"))?;
    let choice = Choice {
        method: args.method,
        selected_by: "MAP on the validation split".into(),
        epochs,
        valid_map,
        rd: winner.rd.clone(),
        flags: choice_flags(winner.rd.as_ref(), epochs),
        trials: trials.clone(),
    };
    let path = args.out.join("choice.json");
    write_atomic(&path, &serde_json::to_vec_pretty(&choice)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.say(format!(
        "chose trial {} ({} epochs, valid MAP {valid_map:.4}): {}",
        winner.index,
        epochs,
        choice.flags.join(" ")
    ));
    out.summary(format!(
        "search: {} trials, chose {} -> {}",
        trials.len(),
        choice.flags.join(" "),
        path.display()
    ));
    let mut json = serde_json::to_value(&choice)?;
    json["command"] = "search".into();
    out.json(&json)?;
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trial_zero_is_the_reference_and_the_rest_are_distinct_grid_points() {
        let base = RdConfig::default();
        let space = SearchSpace::default();
        let trials = trial_configs(&space, &base, 6, 1);
        assert_eq!(trials.len(), 6);
        assert_eq!(trials[0], base);
        for (i, a) in trials.iter().enumerate() {
            for b in &trials[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Seeded: the same seed draws the same trials, another seed others.
        assert_eq!(trials, trial_configs(&space, &base, 6, 1));
        assert_ne!(trials, trial_configs(&space, &base, 6, 2));
        // The budget is capped by the grid.
        let tiny = SearchSpace {
            lambdas: vec![1.0, 2.0],
            mus: vec![0.1],
            alphas: vec![1.0],
            dynamic_starts: vec![10],
            renormalise: vec![false],
        };
        assert_eq!(trial_configs(&tiny, &base, 10, 1).len(), 2);
    }

    #[test]
    fn the_best_epoch_is_the_earliest_maximum() {
        let trial = Trial {
            index: 0,
            rd: None,
            optim: OptimConfig::default(),
            valid_map: vec![0.1, 0.3, 0.2, 0.3],
            seconds: 0.0,
        };
        assert_eq!(trial.best(), Some((2, 0.3)));
        assert_eq!(
            Trial {
                valid_map: vec![],
                ..trial
            }
            .best(),
            None
        );
    }

    #[test]
    fn flags_repeat_the_choice() {
        let rd = RdConfig {
            lambda: 2.0,
            renormalise: true,
            ..RdConfig::default()
        };
        assert_eq!(
            choice_flags(Some(&rd), 17).join(" "),
            "--epochs 17 --lambda 2 --mu 0.1 --alpha 1 --dynamic-start-epoch 10 --renormalise true"
        );
        assert_eq!(choice_flags(None, 5).join(" "), "--epochs 5");
    }

    #[test]
    fn an_empty_axis_is_refused() {
        let space = SearchSpace {
            mus: vec![],
            ..SearchSpace::default()
        };
        assert!(space.validate().unwrap_err().contains("--mus"));
    }
}
