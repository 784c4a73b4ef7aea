//! The training loop: the reference BCE loop (over Caser's and MF's windows, or over SASRec's
//! sampled user windows at every position), with Ranking Distillation or another
//! distillation method (`crate::methods`) on top of it. Every random choice is seeded; a run
//! whose loss stops being finite ends with an error.

use std::time::Instant;

use anyhow::bail;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rankdistill_core::history::EpochRecord;
use rankdistill_core::instances::{QuerySet, WindowConfig};
use rankdistill_core::metrics::DEFAULT_KS;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::model::{Model, ModelConfig};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::evaluate::{HeldOut, evaluate_native};
use crate::methods::{Distiller, EpochContext};
use crate::pull::Rankings;
use crate::rd_loss::{RdConfig, rd_loss, rd_weights};
use crate::train::config::OptimConfig;
use crate::train::loss::{bce_instance_terms, bce_loss};
use crate::train::outcome::Trained;
use crate::train::phases::{Phase, PhaseTimer};
use crate::train::sampling::{InstanceTensors, sample_unobserved};
use crate::train::user_windows::{UserWindows, WindowBatch};

/// The teacher signal for Ranking Distillation: the top-K items of every training instance.
pub struct Distillation {
    /// Teacher rankings, [N, K] dense items (int64), in instance order.
    pub rankings: Tensor,
    /// RD settings.
    pub config: RdConfig,
}

/// Teacher rankings as the [N, K] int64 tensor of `Distillation::rankings`.
pub fn rankings_tensor(rankings: &Rankings) -> Tensor {
    let items: Vec<i64> = rankings.items.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&items).view([rankings.rows() as i64, rankings.k as i64])
}

/// One minibatch: the training queries it holds (its rows) and how they are scored.
enum Batch {
    /// Queries scored one forward pass each (Caser, MF): their indices.
    Queries(Vec<i64>),
    /// Whole user windows scored at every position with a target (SASRec).
    Windows(WindowBatch),
}

/// What a training run learns from beside the ground truth.
pub enum Teaching<'a> {
    /// Nothing: the model alone.
    Alone,
    /// Ranking Distillation.
    Rd(&'a Distillation),
    /// Another distillation method.
    Method(&'a mut dyn Distiller),
}

/// Trains a model on the training instances of `data`: the reference BCE loop, with Ranking
/// Distillation or another method on top of it as `teaching` says.
pub fn train_model(
    data: &PreparedDataset,
    model_config: &ModelConfig,
    window: WindowConfig,
    optim: &OptimConfig,
    device: Device,
    held_out: HeldOut,
    teaching: Teaching<'_>,
) -> anyhow::Result<Trained> {
    let (distill, mut method): (Option<&Distillation>, Option<&mut dyn Distiller>) = match teaching
    {
        Teaching::Alone => (None, None),
        Teaching::Rd(d) => (Some(d), None),
        Teaching::Method(m) => (None, Some(m)),
    };
    let distilling = distill.is_some() || method.is_some();
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
    let set = model_config.kind.query_set();
    if window.query_set != set {
        bail!(
            "a {} model trains on its {} queries, not {}",
            model_config.kind,
            set.name(),
            window.query_set.name()
        );
    }
    if set == QuerySet::Positions && window.target_length != 1 {
        bail!("SASRec trains one target per position: --targets must be 1");
    }
    let mut opt = nn::Adam {
        wd: optim.l2,
        // SASRec's reference optimiser (kang205/SASRec `model.py`) sets beta2 to 0.98.
        beta2: if set == QuerySet::Positions {
            0.98
        } else {
            0.999
        },
        ..Default::default()
    }
    .build(&vs, optim.learning_rate)?;
    let tensors = InstanceTensors::new(data, window);
    let windows = (set == QuerySet::Positions).then(|| UserWindows::new(&tensors.instances));
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
    let mut epoch_phases = Vec::with_capacity(optim.epochs);
    // SASRec's epoch is the reference's number of batches of users, floor(users / batch).
    let batches = match &windows {
        Some(_) => (data.num_users() / optim.batch_size).max(1),
        None => n.div_ceil(optim.batch_size),
    };
    let t = window.target_length as i64;
    let bar = crate::output::progress_bar(
        (batches * optim.epochs) as u64,
        if distilling { "distill" } else { "train" },
    );
    for epoch in 1..=optim.epochs {
        let start = Instant::now();
        let mut timer = PhaseTimer::start();
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
        // Another method chooses the epoch's items first (part of the epoch's time).
        let epoch_items = match method.as_deref_mut() {
            Some(m) => Some(m.prepare_epoch(EpochContext {
                epoch,
                model: &model,
                users: &tensors.users,
                inputs: &tensors.inputs,
                rng: &mut rng,
                device,
            })?),
            None => None,
        };
        if let Some(items) = &epoch_items
            && items.items.size()[0] != n as i64
        {
            bail!(
                "the distillation method chose items for {} queries, not {n}",
                items.items.size()[0]
            );
        }
        let mut loss_sum = 0.0;
        // Distillation: sums of L_R and L_D, and of w_r and w_r^2 per position, [K].
        let (mut l_r_sum, mut l_d_sum) = (0.0, 0.0);
        let mut weight_sums: Option<(Tensor, Tensor)> = None;
        let plan: Vec<Batch> = match &windows {
            Some(w) => (0..batches)
                .map(|_| Batch::Windows(w.sample(optim.batch_size, &mut rng)))
                .collect(),
            None => order
                .chunks(optim.batch_size)
                .map(|chunk| Batch::Queries(chunk.iter().map(|&i| i as i64).collect()))
                .collect(),
        };
        timer.lap(Phase::Sample);
        for batch in &plan {
            rankdistill_models::threads::adapt();
            let (index, rows) = match batch {
                Batch::Queries(chunk) => (Tensor::from_slice(chunk), chunk.len()),
                Batch::Windows(w) => (w.queries.shallow_clone(), w.rows),
            };
            if rows == 0 {
                continue;
            }
            let mut parts = vec![
                tensors.targets.index_select(0, &index),
                negatives.index_select(0, &index),
            ];
            if let Some(d) = distill {
                parts.push(d.rankings.index_select(0, &index));
            }
            if let Some(items) = &epoch_items {
                parts.push(items.items.index_select(0, &index));
            }
            let items = Tensor::cat(&parts, 1).to_device(device);
            let probes = samples
                .as_ref()
                .map(|s| s.index_select(0, &index).to_device(device));
            let query = match batch {
                Batch::Queries(_) => Some((
                    tensors.users.index_select(0, &index).to_device(device),
                    tensors.inputs.index_select(0, &index).to_device(device),
                )),
                Batch::Windows(_) => None,
            };
            timer.lap(Phase::Gather);
            // One forward pass of the query side (one dropout draw) scores the targets,
            // negatives and teacher or method items, and, outside the autograd graph (they only
            // enter the detached weights), RD's rank-estimate samples.
            let x = match batch {
                Batch::Queries(_) => {
                    let (users, inputs) = query
                        .as_ref()
                        .ok_or_else(|| anyhow::anyhow!("a query batch without its queries"))?;
                    model.query_vectors(users, inputs, true)
                }
                Batch::Windows(w) => model
                    .position_vectors(
                        &w.inputs.to_device(device),
                        &w.positions.to_device(device),
                        true,
                    )
                    .ok_or_else(|| anyhow::anyhow!("only SASRec trains on whole windows"))?,
            };
            let scores = model.score_query_items(&x, &items);
            let sample_scores = probes
                .as_ref()
                .map(|p| model.score_query_items_detached(&x, p));
            timer.lap(Phase::Forward);
            let positive = scores.narrow(1, 0, t);
            let negative = scores.narrow(1, t, optim.negatives as i64);
            let loss = match (distill, method.as_deref(), &epoch_items) {
                (None, Some(m), Some(items)) => {
                    let start = t + optim.negatives as i64;
                    let kd_scores = scores.narrow(1, start, items.items.size()[1]);
                    let aux: Vec<Tensor> = items
                        .aux
                        .iter()
                        .map(|a| a.index_select(0, &index).to_device(device))
                        .collect();
                    timer.lap(Phase::Weights);
                    let l_r = bce_instance_terms(&positive, &negative, optim.bce);
                    let l_d = m.loss(&kd_scores, &aux);
                    let loss = (&l_r + &l_d * m.weight()).mean(Kind::Float);
                    l_r_sum += l_r.mean(Kind::Float).double_value(&[]);
                    l_d_sum += l_d.mean(Kind::Float).double_value(&[]);
                    loss
                }
                (None, _, _) => bce_loss(&positive, &negative, optim.bce),
                (Some(d), _, _) => {
                    let k = d.config.k as i64;
                    let start = t + optim.negatives as i64;
                    let teacher_scores = scores.narrow(1, start, k);
                    let weights = rd_weights(
                        &d.config,
                        rows as i64,
                        sample_scores.as_ref().map(|s| (&teacher_scores, s)),
                        data.num_items() as i64,
                        device,
                    );
                    timer.lap(Phase::Weights);
                    let (loss, l_r, l_d) = rd_loss(
                        &positive,
                        &negative,
                        &teacher_scores,
                        &weights,
                        &d.config,
                        optim.bce,
                    );
                    l_r_sum += l_r.double_value(&[]);
                    l_d_sum += l_d.double_value(&[]);
                    timer.lap(Phase::Loss);
                    let sum0 =
                        |w: &Tensor| w.sum_dim_intlist([0i64].as_slice(), false, Kind::Double);
                    let (sum, squares) = (sum0(&weights), sum0(&(&weights * &weights)));
                    weight_sums = Some(match weight_sums.take() {
                        None => (sum, squares),
                        Some((s, q)) => (s + sum, q + squares),
                    });
                    timer.lap(Phase::Stats);
                    loss
                }
            };
            let value = loss.double_value(&[]);
            if !value.is_finite() {
                bail!(
                    "epoch {epoch}: the training loss ({value}) holds NaN or infinite values: the training diverged (try a lower --lr); nothing was written"
                );
            }
            timer.lap(Phase::Loss);
            // `backward_step` in three parts, timed apart.
            opt.zero_grad();
            loss.backward();
            timer.lap(Phase::Backward);
            opt.step();
            timer.lap(Phase::Step);
            loss_sum += value;
            bar.inc(1);
            bar.set_message(format!("epoch {epoch}/{} loss {value:.4}", optim.epochs));
        }
        let seconds = start.elapsed().as_secs_f64();
        train_seconds += seconds;
        let phases = timer.seconds();
        tracing::debug!(epoch, seconds, phases = %serde_json::to_string(&phases).unwrap_or_default(), "epoch phases");
        epoch_phases.push(phases);
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
        // The last step may have left NaN weights behind a finite loss: never evaluate (or
        // print metrics of) a diverged model.
        if let Some(name) = first_non_finite(&vs) {
            bail!(
                "epoch {epoch}: tensor '{name}' holds NaN or infinite values: the training diverged (try a lower --lr); nothing was written"
            );
        }
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
            l_r: distilling.then(|| l_r_sum / batches as f64),
            l_d: distilling.then(|| l_d_sum / batches as f64),
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
        epoch_phases,
    })
}

/// The name of the first variable of `vs` (in name order) holding NaN or infinite values.
pub fn first_non_finite(vs: &nn::VarStore) -> Option<String> {
    let _guard = tch::no_grad_guard();
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    variables
        .into_iter()
        .find(|(_, t)| t.isfinite().all().int64_value(&[]) == 0)
        .map(|(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_variables_are_named() {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let _a = root.zeros("a", &[2]);
        let mut b = root.zeros("b", &[2]);
        assert_eq!(first_non_finite(&vs), None);
        tch::no_grad(|| {
            let _ = b.fill_(f64::NAN);
        });
        assert_eq!(first_non_finite(&vs).as_deref(), Some("b"));
        tch::no_grad(|| {
            let _ = b.fill_(f64::INFINITY);
        });
        assert_eq!(first_non_finite(&vs).as_deref(), Some("b"));
    }
}
