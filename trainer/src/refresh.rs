//! `trainer refresh`: the production loop of distillation. One cycle asks the teacher who it
//! is; when the published student was distilled from another teacher version, other data or
//! other settings, it pulls the rankings again (reusing the cache and every shard already
//! pulled from this teacher, so a crashed pull resumes), distills a candidate exactly as
//! `trainer distill` does (reusing a candidate already distilled for this teacher and these
//! settings), scores the candidate and the current student offline (MAP and Prec@10 on the
//! held-out split, fidelity to the teacher's cached top 10 on a seeded sample of users), and
//! publishes the candidate atomically when it passes the gates (`gate`), keeping the last
//! versions beside the served folder (`versions`). The decision is written to `report.json`
//! in the state folder. One cycle by default (a Kubernetes CronJob); `--interval-secs` repeats
//! it.

pub mod fidelity;
pub mod gate;
pub mod versions;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use rankdistill_core::artifact::{ArtifactManifest, read_manifest};
use rankdistill_core::atomic::write_atomic;
use rankdistill_core::fidelity::FidelitySummary;
use rankdistill_core::instances::{Instances, WindowConfig};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint;
use rankdistill_models::model::ModelConfig;
use serde::Serialize;
use tch::Device;

use crate::distill::{DistillSettings, run_distill};
use crate::evaluate::{HeldOut, evaluate_native};
use crate::output::Output;
use crate::pull::TeacherIdentity;
use crate::pull_shard::{PullSettings, run_pull};
use crate::ranking_cache::{self, CacheKey};
use crate::rd_loss::RdConfig;
use crate::teacher_rankings::obtain_rankings;
use crate::teachers::{Teachers, query_settings};
use crate::train::config::OptimConfig;
use fidelity::{FidelityProbe, sample_queries};
use gate::{GateFigures, Gates, decide};
use versions::{Published, teacher_version};

/// Cut-off of the fidelity figures and of Prec@k in the report.
pub const FIDELITY_K: usize = 10;
/// File of the last decision in the state folder.
pub const REPORT_FILE: &str = "report.json";
/// Folder of the candidate student in the state folder.
pub const CANDIDATE_DIR: &str = "candidate";

/// What `trainer refresh` does.
#[derive(Debug, Clone, PartialEq)]
pub enum RefreshMode {
    /// One cycle, then exit.
    Once,
    /// A cycle every `interval`; `max_cycles` 0 runs until the process is stopped. A failed
    /// cycle is logged and reported, and the next one runs as planned.
    Every {
        /// Pause between the end of a cycle and the start of the next.
        interval: Duration,
        /// Cycles to run (0: no limit).
        max_cycles: u64,
    },
    /// Publish a kept version again (a unique prefix of it) and exit.
    RollbackTo(String),
}

/// Settings of `trainer refresh`.
#[derive(Debug, Clone)]
pub struct RefreshSettings {
    /// How the candidate is distilled: exactly `trainer distill`'s settings. Its `out` is the
    /// candidate folder in the state folder; its `source.shard_count` is the number of shard
    /// files the pull is written as (a crash resumes at the first one missing).
    pub distill: DistillSettings,
    /// The folder student-svc serves; versions are kept in `DIR.versions`.
    pub publish: PathBuf,
    /// State folder: the candidate and `report.json`.
    pub state_dir: PathBuf,
    /// The publication gates.
    pub gates: Gates,
    /// Publish without the gates.
    pub force: bool,
    /// Publications kept in the versions folder (at least 1, the served one).
    pub keep: usize,
    /// Users sampled for the fidelity figures.
    pub fidelity_users: usize,
    /// Seed of the fidelity sample.
    pub fidelity_seed: u64,
    /// Once, every N seconds, or a rollback.
    pub mode: RefreshMode,
}

/// Everything a distilled student depends on besides its teacher and data.
struct Recipe {
    model: ModelConfig,
    window: WindowConfig,
    optim: OptimConfig,
    rd: RdConfig,
}

/// How `manifest` differs from what this refresh would distill now: empty when it is up to
/// date.
fn differences(
    manifest: &ArtifactManifest,
    teacher: &TeacherIdentity,
    fingerprint: &str,
    recipe: &Recipe,
) -> Vec<String> {
    let mut out = Vec::new();
    match teacher_version(manifest) {
        Some(v) if v == teacher.version => {}
        Some(v) => out.push(format!("teacher version {v} -> {}", teacher.version)),
        None => out.push(format!(
            "no teacher version recorded -> {}",
            teacher.version
        )),
    }
    if manifest.data.fingerprint != fingerprint {
        out.push(format!(
            "data fingerprint {} -> {fingerprint}",
            manifest.data.fingerprint
        ));
    }
    if manifest.model != recipe.model {
        out.push("model shape".into());
    }
    let recorded = |name: &str| manifest.training.get(name).cloned();
    let same = |name: &str, now: serde_json::Result<serde_json::Value>| match (recorded(name), now)
    {
        (Some(old), Ok(now)) => old == now,
        _ => false,
    };
    if !same("window", serde_json::to_value(recipe.window)) {
        out.push("window settings".into());
    }
    let optim: Option<OptimConfig> = recorded("optim").and_then(|v| serde_json::from_value(v).ok());
    if optim.as_ref() != Some(&recipe.optim) {
        out.push("optimisation settings".into());
    }
    let rd: Option<RdConfig> = recorded("rd").and_then(|v| serde_json::from_value(v).ok());
    if rd.as_ref() != Some(&recipe.rd) {
        out.push("RD settings".into());
    }
    out
}

/// Offline figures of one student.
#[derive(Debug, Clone, Serialize)]
pub struct StudentFigures {
    /// Its version.
    pub version: String,
    /// The teacher version it was distilled from.
    pub teacher_version: Option<String>,
    /// MAP on the held-out split (`None`: trained on other data, not comparable).
    pub map: Option<f64>,
    /// Prec@10 on the held-out split.
    pub precision_at_10: Option<f64>,
    /// Fidelity to the teacher's cached top 10 over the sampled users (`None`: not
    /// comparable, e.g. another input length).
    pub fidelity: Option<FidelitySummary>,
}

impl StudentFigures {
    fn gate_figures(&self) -> Option<GateFigures> {
        Some(GateFigures {
            map: self.map?,
            overlap: self.fidelity.as_ref().map_or(0.0, |f| f.overlap),
        })
    }
}

/// How the rankings were obtained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PullSummary {
    /// Shard files already there for this teacher.
    pub shards_reused: u32,
    /// Shard files pulled now.
    pub shards_pulled: u32,
    /// A full cache file for this teacher was there (no shard needed).
    pub full_cache: bool,
    /// Seconds spent.
    pub seconds: f64,
}

/// The decision of one cycle (`report.json`, `--json`).
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    /// "refresh".
    pub command: &'static str,
    /// "published", "up-to-date", "kept", "rolled-back" or "failed".
    pub outcome: &'static str,
    /// One line saying why.
    pub reason: String,
    /// Seconds since the Unix epoch when the cycle started.
    pub started_at_unix: u64,
    /// Seconds the cycle took.
    pub seconds: f64,
    /// The served folder.
    pub publish: String,
    /// The versions folder.
    pub versions_dir: String,
    /// The teacher asked.
    pub teacher: Option<TeacherIdentity>,
    /// What differed from the published student.
    pub stale: Vec<String>,
    /// The rankings.
    pub pull: Option<PullSummary>,
    /// "distilled" or "reused" (a candidate already distilled for this teacher).
    pub candidate_source: Option<&'static str>,
    /// The published student before this cycle.
    pub current: Option<StudentFigures>,
    /// The candidate.
    pub candidate: Option<StudentFigures>,
    /// The gates applied.
    pub gates: Gates,
    /// `--force`.
    pub forced: bool,
    /// The version served after this cycle.
    pub served_version: Option<String>,
    /// Versions kept after this cycle, latest publication first.
    pub kept: Vec<String>,
    /// Versions pruned in this cycle.
    pub pruned: Vec<String>,
}

impl RefreshReport {
    fn new(settings: &RefreshSettings, published: &Published) -> RefreshReport {
        RefreshReport {
            command: "refresh",
            outcome: "failed",
            reason: String::new(),
            started_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            seconds: 0.0,
            publish: published.dir.display().to_string(),
            versions_dir: published.versions_dir.display().to_string(),
            teacher: None,
            stale: Vec::new(),
            pull: None,
            candidate_source: None,
            current: None,
            candidate: None,
            gates: settings.gates,
            forced: settings.force,
            served_version: None,
            kept: Vec::new(),
            pruned: Vec::new(),
        }
    }

    /// The one line the command prints.
    pub fn line(&self) -> String {
        match self.outcome {
            "published" | "rolled-back" => format!(
                "refresh: {} {} -> {}: {}",
                self.outcome,
                self.served_version.as_deref().unwrap_or("?"),
                self.publish,
                self.reason
            ),
            "kept" => format!(
                "refresh: kept the current student {}: {}",
                self.served_version.as_deref().unwrap_or("?"),
                self.reason
            ),
            other => format!("refresh: {other}: {}", self.reason),
        }
    }
}

/// Pulls the rankings of every training query into the cache as `source.shard_count` shard
/// files, skipping every shard (or the full cache file) already there for this teacher.
fn pull_rankings(
    settings: &RefreshSettings,
    data: &PreparedDataset,
    teacher: &TeacherIdentity,
    out: &Output,
) -> anyhow::Result<PullSummary> {
    let distill = &settings.distill;
    let window = distill.training.model.window;
    let start = Instant::now();
    let key = CacheKey {
        teacher: teacher.clone(),
        settings: query_settings(data, window, distill.rd.k, distill.rd.exclude_seen),
    };
    let mut summary = PullSummary::default();
    if matches!(
        ranking_cache::load(&distill.source.cache_dir, &key),
        Ok(Some(_))
    ) {
        summary.full_cache = true;
    } else {
        for index in 0..distill.source.shard_count {
            let pulled = run_pull(
                &PullSettings {
                    data: distill.data.clone(),
                    source: distill.source.clone(),
                    shard_index: Some(index),
                    window,
                    k: distill.rd.k,
                    exclude_seen: distill.rd.exclude_seen,
                },
                &out.nested(),
            )?;
            anyhow::ensure!(
                pulled.teacher_version == teacher.version,
                "the teacher changed from version {} to {} during the refresh; run it again",
                teacher.version,
                pulled.teacher_version
            );
            match pulled.source {
                "cache" => summary.shards_reused += 1,
                _ => summary.shards_pulled += 1,
            }
        }
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Scores a student folder offline: MAP and Prec@10 on the held-out split, and fidelity on
/// the probe when it reads the probe's input length.
fn score(
    dir: &Path,
    data: &PreparedDataset,
    held_out: HeldOut,
    probe: &FidelityProbe<'_>,
    device: Device,
) -> anyhow::Result<StudentFigures> {
    let loaded = checkpoint::load(dir, device)
        .with_context(|| format!("cannot load the student {}", dir.display()))?;
    let manifest = &loaded.manifest;
    let mut figures = StudentFigures {
        version: manifest.version.clone(),
        teacher_version: teacher_version(manifest),
        map: None,
        precision_at_10: None,
        fidelity: None,
    };
    if manifest.data.fingerprint != data.manifest.fingerprint {
        return Ok(figures);
    }
    let l = manifest.model.sequence_length as usize;
    let metrics = evaluate_native(
        data,
        held_out,
        &loaded.model,
        l,
        loaded.vs.device(),
        &[FIDELITY_K],
    );
    figures.map = Some(metrics.map);
    figures.precision_at_10 = metrics.at_k(FIDELITY_K).map(|a| a.precision);
    if l == probe.instances.config.sequence_length {
        figures.fidelity = Some(probe.measure(&loaded.model, loaded.vs.device()));
    }
    Ok(figures)
}

/// One refresh cycle; fills `report` as it goes (so a failure still reports what was done).
fn cycle(
    settings: &RefreshSettings,
    published: &Published,
    report: &mut RefreshReport,
    out: &Output,
) -> anyhow::Result<()> {
    let distill = &settings.distill;
    let data = PreparedDataset::load(&distill.data)
        .map_err(|e| anyhow::anyhow!("cannot load the prepared dataset: {e}"))?;
    let training = &distill.training;
    let held_out: HeldOut = training.eval_split.parse()?;
    let window = training.model.window;
    distill.rd.validate().map_err(anyhow::Error::msg)?;
    let recipe = Recipe {
        model: training.model.model_config(&data, 50),
        window,
        optim: training.optim.clone(),
        rd: distill.rd.clone(),
    };
    let fingerprint = data.manifest.fingerprint.clone();
    let current = match published.current() {
        Ok(current) => current,
        Err(reason) => {
            tracing::warn!(%reason, "the published student is not readable; it will be replaced");
            report
                .stale
                .push(format!("unreadable published student: {reason}"));
            None
        }
    };
    report.served_version = current.as_ref().map(|m| m.version.clone());
    let teacher = Teachers::connect(&distill.source, &data)?.identity.clone();
    report.teacher = Some(teacher.clone());
    match &current {
        Some(m) => report
            .stale
            .extend(differences(m, &teacher, &fingerprint, &recipe)),
        None if report.stale.is_empty() => report.stale.push("nothing published yet".into()),
        None => {}
    }
    if report.stale.is_empty() {
        report.outcome = "up-to-date";
        report.reason = format!(
            "the published student {} was distilled from teacher version {}, which the teacher still serves, with these settings",
            report.served_version.as_deref().unwrap_or("?"),
            teacher.version
        );
        return Ok(());
    }
    tracing::info!(stale = ?report.stale, "refreshing the student");
    report.pull = Some(pull_rankings(settings, &data, &teacher, out)?);
    let candidate_dir = &distill.out;
    let reusable = read_manifest(candidate_dir)
        .ok()
        .filter(|m| differences(m, &teacher, &fingerprint, &recipe).is_empty());
    report.candidate_source = Some(match reusable {
        Some(_) => "reused",
        None => {
            run_distill(distill, &out.nested())?;
            "distilled"
        }
    });
    let (rankings, ranked_by, _) = obtain_rankings(
        &distill.source,
        0,
        &data,
        window,
        distill.rd.k,
        distill.rd.exclude_seen,
    )?;
    anyhow::ensure!(
        ranked_by.version == teacher.version,
        "the rankings read back come from teacher version {}, not {}",
        ranked_by.version,
        teacher.version
    );
    let instances = Instances::of(&data.split.train, window);
    let queries = sample_queries(&instances, settings.fidelity_users, settings.fidelity_seed);
    let probe = FidelityProbe {
        instances: &instances,
        rankings: &rankings,
        train: &data.split.train,
        exclude_seen: distill.rd.exclude_seen,
        num_items: data.num_items(),
        queries: &queries,
        k: FIDELITY_K.min(rankings.k),
    };
    let device = training.device;
    let candidate = score(candidate_dir, &data, held_out, &probe, device)?;
    report.candidate = Some(candidate.clone());
    let mut unloadable = None;
    if current.is_some() {
        match score(&published.dir, &data, held_out, &probe, device) {
            Ok(figures) => report.current = Some(figures),
            // A damaged served student must not block its replacement.
            Err(e) => unloadable = Some(format!("{e:#}")),
        }
    }
    let candidate_figures = candidate
        .gate_figures()
        .context("the candidate has no figures")?;
    let current_figures = report
        .current
        .as_ref()
        .and_then(StudentFigures::gate_figures);
    let verdict = decide(
        &settings.gates,
        current_figures.as_ref(),
        &candidate_figures,
        settings.force,
    );
    report.reason = verdict.reason;
    match (&unloadable, &report.current) {
        (Some(why), _) => report.reason.push_str(&format!(
            " (the served student cannot be scored: {why}; no MAP comparison)"
        )),
        (None, Some(_)) if current_figures.is_none() => report
            .reason
            .push_str(" (the current student was trained on other data: no MAP comparison)"),
        _ => {}
    }
    if verdict.publish {
        let record = published.publish(candidate_dir)?;
        report.outcome = "published";
        report.served_version = Some(record.version);
        report.pruned = published.prune(settings.keep)?;
    } else {
        report.outcome = "kept";
    }
    Ok(())
}

/// Runs one cycle and writes its report (also when the cycle fails, with outcome "failed").
fn run_cycle(settings: &RefreshSettings, out: &Output) -> anyhow::Result<RefreshReport> {
    let published = Published::new(&settings.publish)?;
    let mut report = RefreshReport::new(settings, &published);
    let start = Instant::now();
    let result = match &settings.mode {
        RefreshMode::RollbackTo(version) => published.rollback_to(version).and_then(|record| {
            report.outcome = "rolled-back";
            report.reason = format!(
                "--rollback-to {version}: published the kept version {} again",
                record.version
            );
            report.served_version = Some(record.version);
            report.pruned = published.prune(settings.keep)?;
            Ok(())
        }),
        _ => cycle(settings, &published, &mut report, out),
    };
    report.seconds = start.elapsed().as_secs_f64();
    if let Err(e) = &result {
        report.outcome = "failed";
        report.reason = format!("{e:#}");
    }
    report.kept = published
        .kept()
        .map(|kept| kept.into_iter().map(|k| k.record.version).collect())
        .unwrap_or_default();
    let path = settings.state_dir.join(REPORT_FILE);
    let written = serde_json::to_vec_pretty(&report)
        .map_err(anyhow::Error::from)
        .and_then(|json| Ok(write_atomic(&path, &json)?))
        .with_context(|| format!("cannot write the refresh report {}", path.display()));
    result?;
    written?;
    Ok(report)
}

/// Runs `trainer refresh`: one cycle, a rollback, or a cycle every interval.
pub fn run_refresh(settings: &RefreshSettings, out: &Output) -> anyhow::Result<RefreshReport> {
    anyhow::ensure!(
        settings.keep >= 1,
        "--keep must be at least 1 (the served version)"
    );
    let RefreshMode::Every {
        interval,
        max_cycles,
    } = settings.mode
    else {
        let report = run_cycle(settings, out)?;
        out.say(report.line());
        out.summary(format!(
            "refresh: {} in {}",
            report.outcome,
            crate::output::seconds(report.seconds)
        ));
        out.json(&report)?;
        return Ok(report);
    };
    let mut cycles = 0u64;
    loop {
        cycles += 1;
        let last = match run_cycle(settings, out) {
            Ok(report) => {
                out.say(report.line());
                out.json(&report)?;
                Ok(report)
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), cycle = cycles, "refresh cycle failed; the published student is unchanged");
                out.say(format!("refresh: failed: {e:#}"));
                Err(e)
            }
        };
        if max_cycles != 0 && cycles >= max_cycles {
            return last;
        }
        std::thread::sleep(interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::artifact::DataRef;

    fn teacher(version: &str) -> TeacherIdentity {
        TeacherIdentity {
            model_kind: "caser".into(),
            version: version.into(),
            data_fingerprint: "fp".into(),
            dim: 8,
            num_items: 10,
            sequence_length: 5,
            num_parameters: 1,
        }
    }

    fn recipe() -> Recipe {
        Recipe {
            model: ModelConfig::caser(4, 3, 10),
            window: WindowConfig::default(),
            optim: OptimConfig::default(),
            rd: RdConfig::default(),
        }
    }

    fn student_of(teacher: &TeacherIdentity, recipe: &Recipe) -> ArtifactManifest {
        let mut m = ArtifactManifest::new(
            recipe.model.clone(),
            DataRef {
                path: "d".into(),
                fingerprint: "fp".into(),
            },
        );
        m.teacher = Some(serde_json::to_value(teacher).unwrap());
        m.training = serde_json::json!({
            "method": "ranking-distillation",
            "window": recipe.window,
            "optim": recipe.optim,
            "rd": recipe.rd,
        });
        m
    }

    #[test]
    fn a_student_is_up_to_date_only_for_the_same_teacher_data_and_settings() {
        let (t1, r) = (teacher("t1"), recipe());
        let m = student_of(&t1, &r);
        assert!(differences(&m, &t1, "fp", &r).is_empty());
        assert_eq!(
            differences(&m, &teacher("t2"), "fp", &r),
            vec!["teacher version t1 -> t2"]
        );
        assert_eq!(
            differences(&m, &t1, "other", &r),
            vec!["data fingerprint fp -> other"]
        );
        let mut seeded = recipe();
        seeded.optim.seed = 2;
        assert_eq!(
            differences(&m, &t1, "fp", &seeded),
            vec!["optimisation settings"]
        );
        let mut bigger = recipe();
        bigger.model.dim = 8;
        bigger.rd.k = 20;
        assert_eq!(
            differences(&m, &t1, "fp", &bigger),
            vec!["model shape", "RD settings"]
        );
        let mut untaught = m.clone();
        untaught.teacher = None;
        assert_eq!(
            differences(&untaught, &t1, "fp", &r),
            vec!["no teacher version recorded -> t1"]
        );
    }
}
