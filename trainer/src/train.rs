//! Teacher training with the reference loop: sliding-window instances, BCE with sampled
//! negatives, Adam (lr 1e-3, l2 1e-6), batch 512. Every random choice is seeded.

use std::time::Instant;

use anyhow::bail;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::metrics::{DEFAULT_KS, Metrics};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::model::{Model, ModelConfig};
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::distill::{RdConfig, rd_loss, rd_weights};
use crate::evaluate::{HeldOut, evaluate_native};

/// Optimisation settings shared by teacher training and distillation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Passes over the training instances.
    pub epochs: usize,
    /// Instances per minibatch.
    pub batch_size: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// L2 penalty (Adam weight decay).
    pub l2: f64,
    /// Sampled negatives per instance.
    pub negatives: usize,
    /// Seed of initialisation, shuffling, negatives and dropout.
    pub seed: u64,
    /// Evaluate every this many epochs (0: only at the end).
    pub eval_every: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            epochs: 30,
            batch_size: 512,
            learning_rate: 1e-3,
            l2: 1e-6,
            negatives: 3,
            seed: 1,
            eval_every: 0,
        }
    }
}

/// What happened in one epoch; the artifact keeps one per epoch (`training.history`), which
/// `trainer report` draws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f64,
    /// Distillation: mean L_R (ranking loss on the ground truth) over the batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l_r: Option<f64>,
    /// Distillation: mean L_D (distillation loss) over the batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l_d: Option<f64>,
    /// Seconds of training (without evaluation).
    pub seconds: f64,
    /// Offline metrics when this epoch was evaluated (`--eval-every`, and the last epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Distillation: mean weight w_r of each teacher position r = 1..K over the epoch's
    /// instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_weight_mean: Option<Vec<f64>>,
    /// Distillation: standard deviation of w_r over the epoch's instances, per position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_weight_std: Option<Vec<f64>>,
    /// Distillation: whether the epoch used the dynamic (rank discrepancy) weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd_dynamic: Option<bool>,
}

/// A trained model with its variables and history.
pub struct Trained {
    /// The variables.
    pub vs: nn::VarStore,
    /// The model over `vs`.
    pub model: Model,
    /// Mean loss per epoch.
    pub epoch_losses: Vec<f64>,
    /// Metrics of the evaluations run during training, with their epoch.
    pub evaluations: Vec<(usize, Metrics)>,
    /// Wall time of training (seconds), without evaluation.
    pub train_seconds: f64,
    /// One record per epoch.
    pub history: Vec<EpochRecord>,
}

impl Trained {
    /// The artifact manifest of this model: shape, data reference and id maps, the caller's
    /// training record (completed with losses and timings) and the final metrics. Returns the
    /// manifest and those metrics.
    pub fn manifest(
        &self,
        config: ModelConfig,
        data: &PreparedDataset,
        data_path: &std::path::Path,
        eval_split: &str,
        mut training: serde_json::Value,
    ) -> anyhow::Result<(rankdistill_models::checkpoint::CheckpointManifest, Metrics)> {
        use rankdistill_models::checkpoint::{CheckpointManifest, DataRef};
        let (epoch, metrics) = self
            .evaluations
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no evaluation ran"))?;
        let epochs = self.epoch_losses.len().max(1) as f64;
        if let Some(record) = training.as_object_mut() {
            record.insert("epoch_losses".into(), serde_json::json!(self.epoch_losses));
            record.insert(
                "train_seconds".into(),
                serde_json::json!(self.train_seconds),
            );
            record.insert(
                "seconds_per_epoch".into(),
                serde_json::json!(self.train_seconds / epochs),
            );
            record.insert("history".into(), serde_json::to_value(&self.history)?);
        }
        let mut manifest = CheckpointManifest::new(
            config,
            DataRef {
                path: data_path.display().to_string(),
                fingerprint: data.manifest.fingerprint.clone(),
            },
        );
        manifest.users = data.split.users.clone();
        manifest.items = data.split.items.clone();
        manifest.training = training;
        manifest.metrics = serde_json::json!({
            "split": eval_split,
            "epoch": epoch,
            "ndcg_note": "ndcg is the standard definition, ndcg_ref the reference variant",
            "values": metrics,
        });
        Ok((manifest, metrics))
    }
}

/// The training instances of a dataset as tensors on the CPU.
pub struct InstanceTensors {
    /// Users, [N].
    pub users: Tensor,
    /// Input ids, [N, L].
    pub inputs: Tensor,
    /// Targets (dense items), [N, T].
    pub targets: Tensor,
    /// The instances themselves.
    pub instances: Instances,
}

impl InstanceTensors {
    /// Builds the instances of `data` with window `window`.
    pub fn new(data: &PreparedDataset, window: WindowConfig) -> InstanceTensors {
        let instances = Instances::build(&data.split.train, window);
        let to_tensor =
            |v: &[u32]| Tensor::from_slice(&v.iter().map(|&x| x as i64).collect::<Vec<_>>());
        let n = instances.len() as i64;
        InstanceTensors {
            users: to_tensor(&instances.users),
            inputs: to_tensor(&instances.inputs).view([n, window.sequence_length as i64]),
            targets: to_tensor(&instances.targets).view([n, window.target_length as i64]),
            instances,
        }
    }
}

/// Samples `per_instance` items for every instance uniformly among the items its user has not
/// interacted with in training. Returns [N, per_instance] as int64.
pub fn sample_unobserved(
    users: &[u32],
    train: &[Vec<u32>],
    num_items: usize,
    per_instance: usize,
    rng: &mut ChaCha8Rng,
) -> Tensor {
    let seen: Vec<Vec<u32>> = train
        .iter()
        .map(|s| {
            let mut v = s.clone();
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut out = Vec::with_capacity(users.len() * per_instance);
    for &u in users {
        let seen_u = &seen[u as usize];
        let fallback = seen_u.len() >= num_items;
        for _ in 0..per_instance {
            let item = loop {
                let candidate = rng.random_range(0..num_items as u32);
                if fallback || seen_u.binary_search(&candidate).is_err() {
                    break candidate;
                }
            };
            out.push(item as i64);
        }
    }
    Tensor::from_slice(&out).view([users.len() as i64, per_instance as i64])
}

/// Binary cross-entropy of the reference: -mean log s(pos) - mean log(1 - s(neg)).
pub fn bce_loss(positive: &Tensor, negative: &Tensor) -> Tensor {
    -positive.log_sigmoid().mean(Kind::Float) - (-negative).log_sigmoid().mean(Kind::Float)
}

/// The teacher signal for Ranking Distillation: the top-K items of every training instance.
pub struct Distillation {
    /// Teacher rankings, [N, K] dense items (int64), in instance order.
    pub rankings: Tensor,
    /// RD settings.
    pub config: RdConfig,
}

/// Trains a model on the training instances of `data`: the reference BCE loop, or, with
/// `distill`, Ranking Distillation on top of it.
pub fn train_model(
    data: &PreparedDataset,
    model_config: &ModelConfig,
    window: WindowConfig,
    optim: &OptimConfig,
    device: Device,
    held_out: HeldOut,
    distill: Option<&Distillation>,
) -> anyhow::Result<Trained> {
    model_config.validate().map_err(anyhow::Error::msg)?;
    if window.sequence_length as i64 != model_config.sequence_length {
        bail!("window L must equal the model's L");
    }
    if optim.batch_size == 0 || optim.epochs == 0 {
        bail!("--batch-size and --epochs must be positive");
    }
    tch::manual_seed(optim.seed as i64);
    let mut rng = ChaCha8Rng::seed_from_u64(optim.seed);
    let vs = nn::VarStore::new(device);
    let model = Model::new(&vs.root(), model_config);
    let mut opt = nn::Adam {
        wd: optim.l2,
        ..Default::default()
    }
    .build(&vs, optim.learning_rate)?;
    let tensors = InstanceTensors::new(data, window);
    let n = tensors.instances.len();
    if n == 0 {
        bail!("the dataset has no training instances");
    }
    if let Some(d) = distill {
        d.config.validate().map_err(anyhow::Error::msg)?;
        if d.rankings.size() != [n as i64, d.config.k as i64] {
            bail!(
                "teacher rankings have shape {:?}, expected [{n}, {}]",
                d.rankings.size(),
                d.config.k
            );
        }
    }
    let evaluate_model = |model: &Model| {
        let l = model_config.sequence_length as usize;
        evaluate_native(data, held_out, model, l, device, &DEFAULT_KS)
    };
    let mut order: Vec<usize> = (0..n).collect();
    let mut epoch_losses = Vec::with_capacity(optim.epochs);
    let mut evaluations = Vec::new();
    let mut history = Vec::with_capacity(optim.epochs);
    let mut train_seconds = 0.0;
    let batches = n.div_ceil(optim.batch_size);
    let t = window.target_length as i64;
    let bar = crate::output::progress_bar(
        (batches * optim.epochs) as u64,
        if distill.is_some() {
            "distill"
        } else {
            "train"
        },
    );
    for epoch in 1..=optim.epochs {
        let start = Instant::now();
        order.shuffle(&mut rng);
        let negatives = sample_unobserved(
            &tensors.instances.users,
            &data.split.train,
            data.num_items(),
            optim.negatives,
            &mut rng,
        );
        let dynamic = distill.is_some_and(|d| d.config.dynamic_at(epoch));
        let samples = distill.filter(|_| dynamic).map(|d| {
            sample_unobserved(
                &tensors.instances.users,
                &data.split.train,
                data.num_items(),
                d.config.samples,
                &mut rng,
            )
        });
        let mut loss_sum = 0.0;
        // Distillation: sums of L_R and L_D, and of w_r and w_r^2 per position, [K].
        let (mut l_r_sum, mut l_d_sum) = (0.0, 0.0);
        let mut weight_sums: Option<(Tensor, Tensor)> = None;
        for chunk in order.chunks(optim.batch_size) {
            let index = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let users = tensors.users.index_select(0, &index).to_device(device);
            let inputs = tensors.inputs.index_select(0, &index).to_device(device);
            let mut parts = vec![
                tensors.targets.index_select(0, &index),
                negatives.index_select(0, &index),
            ];
            if let Some(d) = distill {
                parts.push(d.rankings.index_select(0, &index));
            }
            if let Some(samples) = &samples {
                parts.push(samples.index_select(0, &index));
            }
            let items = Tensor::cat(&parts, 1).to_device(device);
            // One forward pass scores targets, negatives, teacher items and samples together.
            let scores = model.score_items(&users, &inputs, &items, true);
            let positive = scores.narrow(1, 0, t);
            let negative = scores.narrow(1, t, optim.negatives as i64);
            let loss = match distill {
                None => bce_loss(&positive, &negative),
                Some(d) => {
                    let k = d.config.k as i64;
                    let start = t + optim.negatives as i64;
                    let teacher_scores = scores.narrow(1, start, k);
                    let sample_scores = samples
                        .as_ref()
                        .map(|s| scores.narrow(1, start + k, s.size()[1]));
                    let weights = rd_weights(
                        &d.config,
                        chunk.len() as i64,
                        sample_scores.as_ref().map(|s| (&teacher_scores, s)),
                        data.num_items() as i64,
                        device,
                    );
                    let (loss, l_r, l_d) =
                        rd_loss(&positive, &negative, &teacher_scores, &weights, &d.config);
                    l_r_sum += l_r.double_value(&[]);
                    l_d_sum += l_d.double_value(&[]);
                    let sum0 =
                        |w: &Tensor| w.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
                    let (sum, squares) = (sum0(&weights), sum0(&(&weights * &weights)));
                    weight_sums = Some(match weight_sums.take() {
                        None => (sum, squares),
                        Some((s, q)) => (s + sum, q + squares),
                    });
                    loss
                }
            };
            opt.backward_step(&loss);
            let value = loss.double_value(&[]);
            loss_sum += value;
            bar.inc(1);
            bar.set_message(format!("epoch {epoch}/{} loss {value:.4}", optim.epochs));
        }
        let seconds = start.elapsed().as_secs_f64();
        train_seconds += seconds;
        let mean_loss = loss_sum / batches as f64;
        epoch_losses.push(mean_loss);
        let (rd_weight_mean, rd_weight_std) = match weight_sums {
            Some((sum, squares)) => {
                let to_vec = |t: Tensor| -> Vec<f64> {
                    let t = t.to_kind(Kind::Double).to_device(Device::Cpu);
                    Vec::try_from(&t).unwrap_or_default()
                };
                let mean = to_vec(sum / n as f64);
                let squares = to_vec(squares / n as f64);
                let std = mean
                    .iter()
                    .zip(&squares)
                    .map(|(m, q)| (q - m * m).max(0.0).sqrt())
                    .collect();
                (Some(mean), Some(std))
            }
            None => (None, None),
        };
        let evaluate_now =
            (optim.eval_every > 0 && epoch % optim.eval_every == 0) || epoch == optim.epochs;
        let metrics = evaluate_now.then(|| evaluate_model(&model));
        match &metrics {
            Some(metrics) => {
                tracing::info!(
                    epoch,
                    loss = mean_loss,
                    seconds,
                    prec10 = metrics.at_k(10).map(|a| a.precision),
                    ndcg10 = metrics.at_k(10).map(|a| a.ndcg),
                    map = metrics.map,
                    "epoch done"
                );
                evaluations.push((epoch, metrics.clone()));
            }
            None => tracing::info!(epoch, loss = mean_loss, seconds, "epoch done"),
        }
        history.push(EpochRecord {
            epoch,
            loss: mean_loss,
            l_r: distill.map(|_| l_r_sum / batches as f64),
            l_d: distill.map(|_| l_d_sum / batches as f64),
            seconds,
            metrics,
            rd_weight_mean,
            rd_weight_std,
            rd_dynamic: distill.map(|_| dynamic),
        });
    }
    bar.finish_and_clear();
    Ok(Trained {
        vs,
        model,
        epoch_losses,
        evaluations,
        train_seconds,
        history,
    })
}

/// Model config from the command line and the dataset shape.
pub fn model_config(
    args: &crate::cli::ModelArgs,
    data: &PreparedDataset,
    default_dim: i64,
) -> ModelConfig {
    ModelConfig {
        kind: args.kind,
        dim: args.dim.unwrap_or(default_dim),
        num_users: data.num_users() as i64,
        num_items: data.num_items() as i64,
        sequence_length: args.window.sequence_length as i64,
        nv: args.nv,
        nh: args.nh,
        dropout: args.dropout,
        conv_activation: args.conv_activation,
        fc_activation: args.fc_activation,
    }
}

/// Optimisation config from the command line.
pub fn optim_config(args: &crate::cli::OptimArgs) -> OptimConfig {
    OptimConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        l2: args.l2,
        negatives: args.negatives,
        seed: args.seed,
        eval_every: args.eval_every,
    }
}

/// The figures of a finished `train` or `distill` run, for `--json`.
pub fn run_json(
    command: &str,
    out: &std::path::Path,
    written: &rankdistill_models::checkpoint::CheckpointManifest,
    trained: &Trained,
    metrics: &Metrics,
) -> serde_json::Value {
    let epochs = trained.history.len();
    serde_json::json!({
        "command": command,
        "out": out.display().to_string(),
        "version": written.version,
        "model": written.model,
        "num_parameters": written.num_parameters,
        "epochs": epochs,
        "train_seconds": trained.train_seconds,
        "seconds_per_epoch": trained.train_seconds / epochs.max(1) as f64,
        "metrics": metrics,
        "history": trained.history,
    })
}

/// The summary line of a finished `train` or `distill` run.
pub fn run_summary(
    command: &str,
    out: &std::path::Path,
    written: &rankdistill_models::checkpoint::CheckpointManifest,
    trained: &Trained,
    metrics: &Metrics,
) -> String {
    let at10 = metrics.at_k(10).or(metrics.at.last());
    format!(
        "{command}: {} d={} ({} parameters), {} epochs in {}: MAP {:.4}{}; wrote {}",
        written.model.kind,
        written.model.dim,
        crate::prepare::thousands(written.num_parameters.max(0) as usize),
        trained.history.len(),
        crate::output::seconds(trained.train_seconds),
        metrics.map,
        at10.map(|a| format!(
            ", Prec@{} {:.4}, nDCG@{} {:.4}",
            a.k, a.precision, a.k, a.ndcg
        ))
        .unwrap_or_default(),
        out.display()
    )
}

/// Runs `trainer train`: trains, evaluates, writes the checkpoint atomically.
pub fn run_train(
    args: &crate::cli::TrainArgs,
    out: &crate::output::Output,
) -> anyhow::Result<rankdistill_models::checkpoint::CheckpointManifest> {
    use rankdistill_models::checkpoint;
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let held_out: HeldOut = args.optim.eval_split.parse()?;
    let device = args.optim.device.resolve()?;
    let config = model_config(&args.model, &data, 100);
    let window = args.model.window.config();
    let optim = optim_config(&args.optim);
    tracing::info!(model = %config.kind, dim = config.dim, users = config.num_users, items = config.num_items, ?device, "training");
    let trained = train_model(&data, &config, window, &optim, device, held_out, None)?;
    let (manifest, metrics) = trained.manifest(
        config,
        &data,
        &args.data,
        &args.optim.eval_split,
        serde_json::json!({ "window": window, "optim": optim }),
    )?;
    let written = checkpoint::save(&args.out, &trained.vs, manifest)?;
    out.say(format!(
        "trained {} d={} ({} parameters) for {} epochs in {:.1}s",
        written.model.kind,
        written.model.dim,
        written.num_parameters,
        optim.epochs,
        trained.train_seconds
    ));
    out.say(metrics.table());
    out.say(format!(
        "wrote checkpoint {} (version {})",
        args.out.display(),
        written.version
    ));
    out.summary(run_summary(
        "train", &args.out, &written, &trained, &metrics,
    ));
    out.json(&run_json("train", &args.out, &written, &trained, &metrics))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negatives_avoid_the_users_training_items_and_are_seeded() {
        let train = vec![vec![0, 1, 2], vec![3]];
        let users = vec![0u32; 50]
            .into_iter()
            .chain(vec![1u32; 50])
            .collect::<Vec<_>>();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let a = sample_unobserved(&users, &train, 5, 3, &mut rng);
        assert_eq!(a.size(), vec![100, 3]);
        let values: Vec<i64> = Vec::try_from(a.view([-1])).unwrap();
        for (row, chunk) in values.chunks(3).enumerate() {
            for &item in chunk {
                assert!(!train[users[row] as usize].contains(&(item as u32)));
                assert!((0..5).contains(&item));
            }
        }
        let b = sample_unobserved(&users, &train, 5, 3, &mut ChaCha8Rng::seed_from_u64(9));
        assert!(a.equal(&b));
    }

    #[test]
    fn bce_matches_the_formula() {
        let pos = Tensor::from_slice(&[0.5f32, -1.0]).view([2, 1]);
        let neg = Tensor::from_slice(&[2.0f32, 0.0]).view([2, 1]);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let expected = -((sig(0.5).ln() + sig(-1.0).ln()) / 2.0)
            - (((1.0 - sig(2.0)).ln() + (1.0 - sig(0.0)).ln()) / 2.0);
        assert!((bce_loss(&pos, &neg).double_value(&[]) - expected).abs() < 1e-6);
    }
}
