//! Loading and hot reload. A version is loaded off the request path (a blocking thread reads
//! and validates the artifact, builds the model and the id maps, then one warm-up query runs
//! on the scoring pool), and only then swapped in atomically. Requests hold an `Arc` of the
//! version they started on, so in-flight requests finish on the old model. A refused artifact
//! is logged and counted, and the old model keeps serving.
//!
//! Triggers: polling the artifact folder's manifest (`--watch-interval-ms`), SIGHUP, and the
//! `Reload` RPC. `trainer` replaces artifact folders by rename, so the watcher re-reads the
//! path each time rather than holding a file open.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use rankdistill_core::artifact::{self, MANIFEST_FILE};
use rankdistill_core::instances::PAD;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::catalog::{Catalog, History, UnknownUser};
use crate::engine::Scorer;
use crate::error::{LoadError, ServiceError};
use crate::kernel::Kernel;
use crate::model::{QueryInput, Scan, StudentModel};
use crate::served::{ModelSummary, Served};
use crate::telemetry::Metrics;

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
}

impl Loader {
    /// Reads, validates and builds the version in the folder now (blocking; no warm-up).
    pub fn build(&self) -> Result<Served, LoadError> {
        let expected = self.history.as_deref().map(|h| h.fingerprint.as_str());
        let artifact = artifact::load(&self.dir, expected)?;
        let manifest = artifact.manifest.clone();
        let model = StudentModel::from_artifact(artifact, self.kernel)
            .map_err(|source| LoadError::Model {
                path: self.dir.clone(),
                source,
            })?
            .with_scan(self.scan);
        let catalog = Catalog::new(
            &manifest,
            self.history.clone(),
            model.item_bias(),
            self.unknown_user,
        );
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
            summary,
            loaded_at: SystemTime::now(),
        })
    }

    /// Builds the version off the async runtime, then warms it up on the scoring pool: one
    /// full scan (pages the table in) whose scores must be finite.
    pub async fn load(self: &Arc<Self>, scorer: &Scorer) -> Result<Served, LoadError> {
        let loader = self.clone();
        let served = tokio::task::spawn_blocking(move || loader.build())
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
        }
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
        let served = Arc::new(served);
        self.slot.store(Some(served.clone()));
        served
    }

    /// The first load, at start-up: failure is fatal to the caller.
    pub async fn initial_load(&self) -> Result<Arc<Served>, LoadError> {
        let _guard = self.serial.lock().await;
        let served = self.loader.load(&self.scorer).await?;
        Ok(self.publish(served))
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
        info!(trigger, from = %previous, to = %on_disk.version, "loading a new model version");
        match self.loader.load(&self.scorer).await {
            Ok(served) => {
                let served = self.publish(served);
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

    fn refused(&self, trigger: &str, serving: &str, reason: String) -> ServiceError {
        self.metrics.reload_failures.inc();
        error!(trigger, serving, %reason, "reload refused; the old model keeps serving");
        ServiceError::ReloadRefused {
            serving: serving.to_string(),
            reason,
        }
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
