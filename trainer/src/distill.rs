//! `trainer distill`: obtains the teacher's rankings (cache, shards or teachers), trains the
//! student with Ranking Distillation, and exports the student artifact atomically.

use std::path::PathBuf;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint::{self, CheckpointManifest};

use crate::evaluate::HeldOut;
use crate::output::Output;
use crate::rd_loss::RdConfig;
use crate::teacher_rankings::obtain_rankings;
use crate::teachers::TeacherSource;
use crate::train::config::TrainingSettings;
use crate::train::fit::{Distillation, rankings_tensor, train_model};
use crate::train::outcome::report_written;

/// Settings of `trainer distill`.
#[derive(Debug, Clone)]
pub struct DistillSettings {
    /// Prepared dataset folder (the teachers must serve the same fingerprint).
    pub data: PathBuf,
    /// Output student artifact folder (written atomically).
    pub out: PathBuf,
    /// Teachers, cache and shards.
    pub source: TeacherSource,
    /// With more than one shard: seconds to wait for all shards to be present and valid.
    pub shard_wait_s: u64,
    /// Student shape, optimisation, evaluation and device.
    pub training: TrainingSettings,
    /// Ranking Distillation.
    pub rd: RdConfig,
}

/// Runs `trainer distill`.
pub fn run_distill(args: &DistillSettings, out: &Output) -> anyhow::Result<CheckpointManifest> {
    let data = PreparedDataset::load(&args.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let training = &args.training;
    let held_out: HeldOut = training.eval_split.parse()?;
    let device = training.device;
    let config = training.model.model_config(&data, 50);
    let window = training.model.window;
    let rd = args.rd.clone();
    rd.validate().map_err(anyhow::Error::msg)?;
    let (rankings, teacher, pull) =
        obtain_rankings(&args.source, args.shard_wait_s, &data, window, &rd)?;
    let optim = training.optim.clone();
    let distillation = Distillation {
        rankings: rankings_tensor(&rankings),
        config: rd.clone(),
    };
    tracing::info!(model = %config.kind, dim = config.dim, teacher = %teacher.version, weighting = ?rd.weighting, "distilling");
    let mut settings = serde_json::Map::new();
    settings.insert("method".into(), "ranking-distillation".into());
    settings.insert("window".into(), serde_json::to_value(window)?);
    settings.insert("optim".into(), serde_json::to_value(&optim)?);
    settings.insert("rd".into(), serde_json::to_value(&rd)?);
    settings.insert("pull".into(), serde_json::to_value(&pull)?);
    let trained = train_model(
        &data,
        &config,
        window,
        &optim,
        device,
        held_out,
        Some(&distillation),
    )?;
    let (mut manifest, metrics) =
        trained.manifest(config, &data, &args.data, &training.eval_split, settings)?;
    manifest.teacher = Some(serde_json::to_value(&teacher)?);
    let written = checkpoint::save(&args.out, &trained.vs, manifest)?;
    out.say(format!(
        "rankings: {} queries from the {} in {:.2}s ({} retries)",
        pull.queries,
        match pull.source {
            "shards" => format!("{} shards", pull.shards),
            other => other.to_string(),
        },
        pull.seconds,
        pull.retries
    ));
    out.say(format!(
        "distilled {} d={} ({} parameters; teacher {} d={} has {}) for {} epochs in {:.1}s",
        written.model.kind,
        written.model.dim,
        written.num_parameters,
        teacher.model_kind,
        teacher.dim,
        teacher.num_parameters,
        optim.epochs,
        trained.train_seconds
    ));
    let mut json = report_written(
        out, "distill", "student", &args.out, &written, &trained, &metrics,
    );
    json["teacher"] = serde_json::to_value(&teacher)?;
    json["pull"] = serde_json::to_value(&pull)?;
    json["rd"] = serde_json::to_value(&rd)?;
    out.json(&json)?;
    Ok(written)
}
