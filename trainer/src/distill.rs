//! `trainer distill`: obtains the teacher's rankings (cache, shards or teachers), trains the
//! student with Ranking Distillation or another method (`--method`), and exports the student
//! artifact atomically.

use std::path::PathBuf;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint::{self, CheckpointManifest};

use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::evaluate::HeldOut;
use crate::methods::cd::Cd;
use crate::methods::dcd::Dcd;
use crate::methods::rcekd::RceKd;
use crate::methods::rrd::{Rrd, SeenItems};
use crate::methods::{Distiller, MethodConfig, TeacherLists};
use crate::output::Output;
use crate::rd_loss::RdConfig;
use crate::score_items::{RemoteScores, ScoreItemsReport};
use crate::teacher_rankings::obtain_rankings;
use crate::teachers::{TeacherSource, Teachers};
use crate::train::config::TrainingSettings;
use crate::train::fit::{Distillation, Teaching, rankings_tensor, train_model};
use crate::train::outcome::report_written;
use crate::train::sampling::InstanceTensors;

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
    /// Ranking Distillation (with `method` RD), and whether the teacher lists exclude the
    /// users' training items (every method).
    pub rd: RdConfig,
    /// The method and its settings.
    pub method: MethodConfig,
}

/// Seed offset of the method's own draws, so they differ from the training loop's.
const METHOD_SEED_OFFSET: u64 = 0x005e_ed0f_d157;

/// Builds the chosen method (not RD) over the teacher's lists.
fn build_method(
    args: &DistillSettings,
    data: &PreparedDataset,
    window: rankdistill_core::instances::WindowConfig,
    rankings: &crate::pull::Rankings,
    report: &Arc<Mutex<ScoreItemsReport>>,
) -> anyhow::Result<Box<dyn Distiller>> {
    let lists = TeacherLists::new(rankings);
    let seed = args.training.optim.seed ^ METHOD_SEED_OFFSET;
    Ok(match &args.method {
        MethodConfig::Rd(_) => anyhow::bail!("RD is not built here"),
        MethodConfig::Cd(c) => Box::new(Cd::new(
            c.clone(),
            &lists,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )?),
        MethodConfig::Rrd(c) => {
            let tensors = InstanceTensors::new(data, window);
            let seen = SeenItems {
                per_user: Arc::new(data.split.seen_sets()),
                query_users: Arc::new(tensors.instances.users.clone()),
                num_items: data.num_items(),
            };
            Box::new(Rrd::new(c.clone(), &lists, seen))
        }
        MethodConfig::Dcd(c) => Box::new(Dcd::new(c.clone(), &lists)),
        MethodConfig::Rcekd(c) => {
            if args.source.teacher.is_empty() {
                anyhow::bail!(
                    "--method rcekd asks the teacher for scores of the student's own items during training (ScoreItems): pass --teacher HOST:PORT[,...]"
                );
            }
            let teachers = Teachers::connect(&args.source, data)?;
            let remote = RemoteScores::new(
                teachers,
                window,
                args.source.max_retries,
                &lists,
                report.clone(),
            );
            Box::new(RceKd::new(c.clone(), &lists, Box::new(remote)))
        }
    })
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
    let method = args.method.method();
    match &args.method {
        MethodConfig::Rd(_) => rd.validate(),
        other => other.validate(data.num_items()),
    }
    .map_err(anyhow::Error::msg)?;
    let list_length = args.method.list_length();
    let (rankings, teacher, pull) = obtain_rankings(
        &args.source,
        args.shard_wait_s,
        &data,
        window,
        list_length,
        rd.exclude_seen,
    )?;
    let optim = training.optim.clone();
    tracing::info!(model = %config.kind, dim = config.dim, teacher = %teacher.version, method = method.name(), "distilling");
    let mut settings = serde_json::Map::new();
    settings.insert(
        "method".into(),
        match method {
            crate::methods::Method::Rd => "ranking-distillation",
            other => other.name(),
        }
        .into(),
    );
    settings.insert("window".into(), serde_json::to_value(window)?);
    settings.insert("optim".into(), serde_json::to_value(&optim)?);
    settings.insert("rd".into(), serde_json::to_value(&rd)?);
    if !matches!(args.method, MethodConfig::Rd(_)) {
        settings.insert("method_config".into(), serde_json::to_value(&args.method)?);
    }
    settings.insert("pull".into(), serde_json::to_value(&pull)?);
    let score_report = Arc::new(Mutex::new(ScoreItemsReport::default()));
    let trained = match &args.method {
        MethodConfig::Rd(_) => {
            let distillation = Distillation {
                rankings: rankings_tensor(&rankings),
                config: rd.clone(),
            };
            train_model(
                &data,
                &config,
                window,
                &optim,
                device,
                held_out,
                Teaching::Rd(&distillation),
            )?
        }
        _ => {
            let mut distiller = build_method(args, &data, window, &rankings, &score_report)?;
            drop(rankings);
            train_model(
                &data,
                &config,
                window,
                &optim,
                device,
                held_out,
                Teaching::Method(distiller.as_mut()),
            )?
        }
    };
    let score_report = score_report
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if score_report.calls > 0 {
        settings.insert("score_items".into(), serde_json::to_value(&score_report)?);
    }
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
    json["method"] = method.name().into();
    if !matches!(args.method, MethodConfig::Rd(_)) {
        json["method_config"] = serde_json::to_value(&args.method)?;
    }
    if score_report.calls > 0 {
        json["score_items"] = serde_json::to_value(&score_report)?;
    }
    out.json(&json)?;
    Ok(written)
}
