//! `trainer train`: trains a teacher, evaluates it and writes the checkpoint atomically.

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint::{self, CheckpointManifest};

use crate::evaluate::HeldOut;
use crate::output::Output;
use crate::train::config::TrainSettings;
use crate::train::fit::{Teaching, train_model};
use crate::train::outcome::report_written;

/// Runs `trainer train`: trains, evaluates, writes the checkpoint atomically.
pub fn run_train(args: &TrainSettings, out: &Output) -> anyhow::Result<CheckpointManifest> {
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let training = &args.training;
    let held_out: HeldOut = training.eval_split.parse()?;
    let device = training.device;
    let config = training.model.model_config(&data, 100);
    let window = training.model.window;
    let optim = training.optim.clone();
    tracing::info!(model = %config.kind, dim = config.dim, users = config.num_users, items = config.num_items, ?device, "training");
    let mut settings = serde_json::Map::new();
    settings.insert("window".into(), serde_json::to_value(window)?);
    settings.insert("optim".into(), serde_json::to_value(&optim)?);
    let trained = train_model(
        &data,
        &config,
        window,
        &optim,
        device,
        held_out,
        Teaching::Alone,
    )?;
    let (manifest, metrics) =
        trained.manifest(config, &data, &args.data, &training.eval_split, settings)?;
    let written = checkpoint::save(&args.out, &trained.vs, manifest)?;
    out.say(format!(
        "trained {} d={} ({} parameters) for {} epochs in {:.1}s",
        written.model.kind,
        written.model.dim,
        written.num_parameters,
        optim.epochs,
        trained.train_seconds
    ));
    let json = report_written(
        out,
        "train",
        "checkpoint",
        &args.out,
        &written,
        &trained,
        &metrics,
    );
    out.json(&json)?;
    Ok(written)
}
