//! Loading and hot reload. A version is loaded off the request path (a blocking thread reads
//! and validates the artifact, builds the model and the id maps, then one warm-up query runs
//! on the scoring pool), and only then swapped in atomically. Requests hold an `Arc` of the
//! version they started on, so in-flight requests finish on the old model. A refused artifact
//! is logged and counted, and the old model keeps serving.
//!
//! Triggers: polling the artifact folder's manifest (`--watch-interval-ms`), SIGHUP, and the
//! `Reload` RPC. `trainer` replaces artifact folders by rename, so the watcher re-reads the
//! path each time rather than holding a file open.
//!
//! Probation (`--probation-secs`): after a hot reload the previous version stays in memory
//! for the window, and [`watch_probation`] judges the new one (`probation::judge`). On a
//! breach it swaps the previous version back, rejects the new one for the life of the
//! process (the watch, SIGHUP and `Reload` refuse it) and counts `student_rollbacks_total`;
//! when the window passes the previous version is released. A reload during a probation
//! starts a new window for the newer version, still judged against (and rolled back to) the
//! last version that passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwapOption;
use rankdistill_core::artifact::{self, MANIFEST_FILE};
use rankdistill_core::instances::PAD;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, History, UnknownUser};
use crate::engine::Scorer;
use crate::error::{LoadError, ServiceError};
use crate::index::IndexPolicy;
use crate::kernel::Kernel;
use crate::model::{QueryInput, Scan, StudentModel};
use crate::probation::{Figures, ProbationSettings, Verdict, judge};
use crate::served::{ModelSummary, Served};
use crate::telemetry::Metrics;
use crate::tuning::tuning_queries;
use crate::version_stats::StatsBook;

/// Builds versions from the artifact folder.
#[derive(Debug)]
pub struct Loader {
    /// The artifact folder.
    pub dir: PathBuf,
    /// The prepared dataset (--data), if any.
    pub history: Option<Arc<History>>,
    /// Kernel for new models.
    pub kernel: Kernel,
    /// Table scan for new models.
    pub scan: Scan,
    /// Unknown-user policy.
    pub unknown_user: UnknownUser,
    /// When and how the approximate index is built.
    pub index: IndexPolicy,
    /// Every version's live figures.
    pub stats: Arc<StatsBook>,
}

impl Loader {
    /// Reads, validates and builds the version in the folder now (blocking; no warm-up),
    /// with the approximate index when the policy says so.
    pub fn build(&self) -> Result<Served, LoadError> {
        self.build_with(true)
    }

    /// [`Loader::build`]; with `indexed` false the index is never built (the exact scan
    /// serves while it is built in the background at start-up).
    pub fn build_with(&self, indexed: bool) -> Result<Served, LoadError> {
        let expected = self.history.as_deref().map(|h| h.fingerprint.as_str());
        let artifact = artifact::load(&self.dir, expected)?;
        let manifest = artifact.manifest.clone();
        let mut model = StudentModel::from_artifact(artifact, self.kernel)
            .map_err(|source| LoadError::Model {
                path: self.dir.clone(),
                source,
            })?
            .with_scan(self.scan);
        let catalog = Catalog::new(
            &manifest,
            self.history.clone(),
            &model.item_bias(),
            self.unknown_user,
        );
        if indexed && self.index.applies(model.num_items()) {
            let settings = &self.index.settings;
            let tuning = tuning_queries(
                &catalog,
                model.num_users(),
                model.num_items(),
                model.sequence_length(),
                settings.tuning_queries,
                settings.seed,
            );
            model = model.with_index(settings, &tuning);
            if let Some(r) = model.index_report() {
                info!(
                    version = %manifest.version,
                    lists = r.lists,
                    probes = r.probes,
                    recall_at_10 = r.recall_at_10,
                    tuning_queries = r.tuning_queries,
                    build_s = r.build_seconds,
                    "approximate index built"
                );
            }
        }
        let summary = ModelSummary {
            kind: manifest.model.kind,
            dim: manifest.model.dim.max(0) as usize,
            num_items: model.num_items(),
            num_users: model.num_users(),
            sequence_length: model.sequence_length(),
            version: manifest.version.clone(),
            data_fingerprint: manifest.data.fingerprint.clone(),
            num_parameters: manifest.model.num_parameters() as u64,
            teacher_json: manifest
                .teacher
                .as_ref()
                .map(|t| t.to_string())
                .unwrap_or_default(),
        };
        Ok(Served {
            model,
            catalog,
            stats: self.stats.get(&summary.version),
            summary,
            loaded_at: SystemTime::now(),
        })
    }

    /// Builds the version off the async runtime, then warms it up on the scoring pool: one
    /// full scan (pages the table in) whose scores must be finite.
    pub async fn load(self: &Arc<Self>, scorer: &Scorer) -> Result<Served, LoadError> {
        self.load_with(scorer, true).await
    }

    /// [`Loader::load`], with or without the index (see [`Loader::build_with`]).
    pub async fn load_with(
        self: &Arc<Self>,
        scorer: &Scorer,
        indexed: bool,
    ) -> Result<Served, LoadError> {
        let loader = self.clone();
        let served = tokio::task::spawn_blocking(move || loader.build_with(indexed))
            .await
            .map_err(|e| LoadError::Thread(e.to_string()))??;
        let served = Arc::new(served);
        let warm = served.clone();
        let scorer_for_warmup = scorer.clone();
        let finite = tokio::task::spawn_blocking(move || {
            scorer_for_warmup.install(|| {
                let query = QueryInput {
                    user: (warm.model.num_users() > 0).then_some(0),
                    inputs: vec![PAD; warm.model.sequence_length()],
                };
                warm.model
                    .top_k_batch(&[query], 10, &[Vec::new()])
                    .iter()
                    .flatten()
                    .all(|(_, s)| s.is_finite())
            })
        })
        .await
        .map_err(|e| LoadError::Thread(e.to_string()))?;
        if !finite {
            return Err(LoadError::WarmUp(self.dir.clone()));
        }
        Arc::try_unwrap(served).map_err(|_| LoadError::Thread("warm-up kept the model".into()))
    }
}

/// Outcome of a reload attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadOutcome {
    /// A new version was swapped in.
    pub changed: bool,
    /// Version serving now.
    pub version: String,
    /// Version served before.
    pub previous: String,
}

/// A version on probation: the version it replaced (kept in memory to swap back) and that
/// version's figures before the swap.
#[derive(Debug, Clone)]
struct Trial {
    version: String,
    previous: Arc<Served>,
    baseline: Figures,
    started: Instant,
}

/// The served version and the reload machinery around it.
#[derive(Debug)]
pub struct Reloader {
    /// The served version (`None` until the first load).
    pub slot: ArcSwapOption<Served>,
    loader: Arc<Loader>,
    scorer: Scorer,
    metrics: Metrics,
    reloads: AtomicU64,
    serial: tokio::sync::Mutex<()>,
    probation: Option<ProbationSettings>,
    trial: Mutex<Option<Trial>>,
    rejected: Mutex<BTreeMap<String, String>>,
}

impl Reloader {
    /// A reloader with nothing loaded yet.
    pub fn new(loader: Loader, scorer: Scorer, metrics: Metrics) -> Reloader {
        Reloader {
            slot: ArcSwapOption::empty(),
            loader: Arc::new(loader),
            scorer,
            metrics,
            reloads: AtomicU64::new(0),
            serial: tokio::sync::Mutex::new(()),
            probation: None,
            trial: Mutex::new(None),
            rejected: Mutex::new(BTreeMap::new()),
        }
    }

    /// Puts every hot-reloaded version on probation with these settings.
    pub fn with_probation(mut self, settings: ProbationSettings) -> Reloader {
        self.probation = Some(settings);
        self
    }

    /// The probation settings, when on.
    pub fn probation(&self) -> Option<&ProbationSettings> {
        self.probation.as_ref()
    }

    /// Versions rolled back, never to be loaded again (sorted).
    pub fn rejected_versions(&self) -> Vec<String> {
        self.rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn rejection(&self, version: &str) -> Option<String> {
        self.rejected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(version)
            .cloned()
    }

    /// The artifact folder.
    pub fn dir(&self) -> &Path {
        &self.loader.dir
    }

    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    fn publish(&self, served: Served) -> Arc<Served> {
        let served = Arc::new(served);
        self.show(&served);
        served
    }

    /// Swaps `served` in and publishes its identity.
    fn show(&self, served: &Arc<Served>) {
        let s = &served.summary;
        self.metrics.set_model(
            [
                &s.kind.to_string(),
                &s.version,
                &s.data_fingerprint,
                served.model.kernel().name(),
            ],
            s.num_items,
            served.loaded_at_unix_ms() as f64 / 1000.0,
        );
        self.slot.store(Some(served.clone()));
    }

    /// The first load, at start-up: failure is fatal to the caller. Without the approximate
    /// index: when the version needs one, [`Reloader::index_in_background`] builds it while
    /// the exact scan serves.
    pub async fn initial_load(&self) -> Result<Arc<Served>, LoadError> {
        let _guard = self.serial.lock().await;
        let served = self.loader.load_with(&self.scorer, false).await?;
        Ok(self.publish(served))
    }

    /// The index policy.
    pub fn index_policy(&self) -> &IndexPolicy {
        &self.loader.index
    }

    /// Whether the served version should have the approximate index and has not got it yet.
    pub fn index_pending(&self) -> bool {
        self.slot.load().as_ref().is_some_and(|s| {
            s.model.index_report().is_none() && self.loader.index.applies(s.model.num_items())
        })
    }

    /// Builds the served version again with its approximate index (reading the artifact
    /// anew, off the request path) and swaps it in if that version is still the one served
    /// without an index; a hot reload in between has already built its own. Returns whether
    /// it swapped.
    pub async fn index_in_background(&self) -> bool {
        if !self.index_pending() {
            return false;
        }
        let built = self.loader.load_with(&self.scorer, true).await;
        let _guard = self.serial.lock().await;
        let current = self.slot.load_full();
        match (built, current) {
            (Ok(built), Some(current))
                if built.summary.version == current.summary.version
                    && current.model.index_report().is_none() =>
            {
                self.publish(built);
                info!(version = %current.summary.version, "approximate index serving");
                drop(current);
                release_freed_memory();
                true
            }
            (Ok(built), _) => {
                info!(version = %built.summary.version, "index built for a version no longer served; dropped");
                false
            }
            (Err(e), _) => {
                error!(error = %e, "approximate index not built; the exact scan keeps serving");
                false
            }
        }
    }

    /// Loads the folder's version when it differs from the served one and swaps it in. A
    /// refused artifact is logged and counted; the old version keeps serving.
    pub async fn reload_if_changed(&self, trigger: &str) -> Result<ReloadOutcome, ServiceError> {
        let _guard = self.serial.lock().await;
        let previous = self
            .slot
            .load()
            .as_ref()
            .map(|s| s.summary.version.clone())
            .unwrap_or_default();
        let dir = self.loader.dir.clone();
        let on_disk = tokio::task::spawn_blocking(move || artifact::read_manifest(&dir))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))
            .and_then(|r| r.map_err(|e| self.refused(trigger, &previous, e.to_string())));
        let on_disk = on_disk?;
        if on_disk.version == previous {
            return Ok(ReloadOutcome {
                changed: false,
                version: previous.clone(),
                previous,
            });
        }
        if let Some(reason) = self.rejection(&on_disk.version) {
            return Err(self.rejected_again(trigger, &previous, &on_disk.version, reason));
        }
        info!(trigger, from = %previous, to = %on_disk.version, "loading a new model version");
        match self.loader.load(&self.scorer).await {
            Ok(served) => {
                // The folder may have changed again between the manifest read and the load.
                if let Some(reason) = self.rejection(&served.summary.version) {
                    let version = served.summary.version.clone();
                    return Err(self.rejected_again(trigger, &previous, &version, reason));
                }
                let replaced = self.slot.load_full();
                let served = self.publish(served);
                if let Some(replaced) = replaced {
                    self.begin_trial(replaced, &served);
                }
                release_freed_memory();
                self.reloads.fetch_add(1, Ordering::Relaxed);
                self.metrics.reloads.inc();
                info!(
                    trigger,
                    from = %previous,
                    to = %served.summary.version,
                    "reloaded: new version serving"
                );
                Ok(ReloadOutcome {
                    changed: true,
                    version: served.summary.version.clone(),
                    previous,
                })
            }
            Err(e) => Err(self.refused(trigger, &previous, e.to_string())),
        }
    }

    fn rejected_again(
        &self,
        trigger: &str,
        serving: &str,
        version: &str,
        reason: String,
    ) -> ServiceError {
        self.refused(
            trigger,
            serving,
            format!(
                "version {version} was rolled back after its probation and is rejected until restart ({reason}); publish another version"
            ),
        )
    }

    /// Puts `served` on probation after it replaced `replaced` (when probation is on). A
    /// version that replaces one still on probation is judged against, and would roll back
    /// to, the version that was on before.
    fn begin_trial(&self, replaced: Arc<Served>, served: &Served) {
        if self.probation.is_none() {
            return;
        }
        let mut trial = self.trial.lock().unwrap_or_else(PoisonError::into_inner);
        let (previous, baseline) = match trial.take() {
            Some(t) => (t.previous, t.baseline),
            None => {
                let baseline = replaced.figures();
                (replaced, baseline)
            }
        };
        if previous.summary.version == served.summary.version {
            // Back to the version the probation would roll back to: nothing left to judge.
            info!(version = %served.summary.version, "the version before the probation is back; probation ended");
            self.metrics.probation_active.set(0);
            return;
        }
        info!(
            version = %served.summary.version,
            previous = %previous.summary.version,
            previous_overlap = baseline.overlap,
            previous_shadow_queries = baseline.queries,
            previous_p99_ms = baseline.p99_s.map(|s| s * 1e3),
            "new version on probation"
        );
        *trial = Some(Trial {
            version: served.summary.version.clone(),
            previous,
            baseline,
            started: Instant::now(),
        });
        self.metrics.probation_active.set(1);
    }

    /// Judges the version on probation, if any: rolls it back on a breach, releases the
    /// previous version when the window has passed. Returns the verdict.
    pub async fn review_probation(&self) -> Option<Verdict> {
        let settings = self.probation?;
        let _guard = self.serial.lock().await;
        let mut slot = self.trial.lock().unwrap_or_else(PoisonError::into_inner);
        let trial = slot.clone()?;
        let current = self.slot.load_full()?;
        if current.summary.version != trial.version {
            *slot = None;
            self.metrics.probation_active.set(0);
            return None;
        }
        let figures = current.figures();
        let window_over = trial.started.elapsed() >= settings.window;
        let verdict = judge(&figures, &trial.baseline, &settings.thresholds, window_over);
        match &verdict {
            Verdict::Watch => {}
            Verdict::Release => {
                info!(
                    version = %trial.version,
                    released = %trial.previous.summary.version,
                    shadow_queries = figures.queries,
                    overlap = figures.overlap,
                    p99_ms = figures.p99_s.map(|s| s * 1e3),
                    "probation passed; the previous version is released"
                );
                *slot = None;
                self.metrics.probation_active.set(0);
            }
            Verdict::RollBack(breaches) => {
                let reason = breaches
                    .iter()
                    .map(|b| b.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                let t = &settings.thresholds;
                warn!(
                    version = %trial.version,
                    back_to = %trial.previous.summary.version,
                    shadow_queries = figures.queries,
                    overlap = figures.overlap,
                    previous_overlap = trial.baseline.overlap,
                    p99_ms = figures.p99_s.map(|s| s * 1e3),
                    previous_p99_ms = trial.baseline.p99_s.map(|s| s * 1e3),
                    min_queries = t.min_queries,
                    max_overlap_drop = t.max_overlap_drop,
                    min_overlap = t.min_overlap,
                    max_p99_ratio = t.max_p99_ratio,
                    %reason,
                    "probation breached: rolled back to the previous version"
                );
                self.show(&trial.previous);
                self.rejected
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(trial.version.clone(), reason);
                self.metrics.rollbacks.inc();
                *slot = None;
                self.metrics.probation_active.set(0);
            }
        }
        Some(verdict)
    }

    fn refused(&self, trigger: &str, serving: &str, reason: String) -> ServiceError {
        self.metrics.reload_failures.inc();
        error!(trigger, serving, %reason, "reload refused; the old model keeps serving");
        ServiceError::ReloadRefused {
            serving: serving.to_string(),
            reason,
        }
    }
}

/// Hands memory the allocator keeps after a version is replaced back to the system: glibc
/// keeps freed blocks below its mmap threshold (the build's buffers, a replaced version's
/// maps) in its arenas, which a catalog of millions of items shows as resident memory.
/// Requests still holding the old version free it later; this returns what is free now.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and trims glibc's own arenas; it takes no pointers.
        unsafe { libc::malloc_trim(0) };
    }
}

/// Identity of the manifest file on disk: changes when the folder is replaced or rewritten.
fn manifest_signature(dir: &Path) -> Option<(u64, u64, u64, SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir.join(MANIFEST_FILE)).ok()?;
    Some((meta.dev(), meta.ino(), meta.len(), meta.modified().ok()?))
}

/// Polls the artifact folder every `interval` until `stop`; reloads when the manifest changed
/// and names another version. A refused version is retried only after the folder changes again.
pub async fn watch(reloader: Arc<Reloader>, interval: Duration, stop: CancellationToken) {
    let dir = reloader.dir().to_path_buf();
    let mut last = manifest_signature(&dir);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let probe = dir.clone();
        let now = tokio::task::spawn_blocking(move || manifest_signature(&probe))
            .await
            .ok()
            .flatten();
        if now.is_none() {
            if last.is_some() {
                warn!(dir = %dir.display(), "artifact manifest is missing; still serving the loaded model");
            }
            last = None;
            continue;
        }
        if now == last {
            continue;
        }
        last = now;
        // Errors are logged and counted inside.
        let _ = reloader.reload_if_changed("watch").await;
    }
}

/// Reviews the version on probation every `interval` until `stop` (see
/// [`Reloader::review_probation`]).
pub async fn watch_probation(reloader: Arc<Reloader>, interval: Duration, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        reloader.review_probation().await;
    }
}
