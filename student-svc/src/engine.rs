//! The scoring pool: a dedicated rayon pool (never the tokio workers) with admission control.
//! A request takes a permit (`try_acquire`, else RESOURCE_EXHAUSTED), its job runs on the
//! pool (and fans out over item blocks there), and the answer comes back on a oneshot. Work
//! nobody waits for any more (the caller's deadline passed or it went away) is dropped when
//! it reaches the front, before any scoring, and counted in `student_abandoned_total`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Semaphore, oneshot};

use crate::error::{ServiceError, StartupError};
use crate::telemetry::Metrics;

/// The dedicated scoring threads and the admission semaphore.
#[derive(Debug, Clone)]
pub struct Scorer {
    pool: Arc<rayon::ThreadPool>,
    permits: Arc<Semaphore>,
    capacity: usize,
    metrics: Metrics,
}

impl Scorer {
    /// The scoring threads, for work that batches its own jobs (the [`Batcher`](crate::batcher::Batcher)).
    pub(crate) fn pool(&self) -> &Arc<rayon::ThreadPool> {
        &self.pool
    }

    /// The metrics the scoring work records into.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Starts `threads` scoring threads (0: one per CPU) admitting `capacity` requests.
    pub fn new(threads: usize, capacity: usize, metrics: Metrics) -> Result<Scorer, StartupError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("student-score-{i}"))
            .build()
            .map_err(|e| StartupError::Pool(e.to_string()))?;
        Ok(Scorer {
            pool: Arc::new(pool),
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            metrics,
        })
    }

    /// Number of scoring threads.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Runs `f` on the pool, blocking the caller (for warm-up on a loader thread).
    pub fn install<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.pool.install(f)
    }

    /// Runs a scoring job on the pool; RESOURCE_EXHAUSTED when `capacity` jobs are admitted.
    pub async fn run<T, F>(&self, job: F) -> Result<T, ServiceError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| {
            ServiceError::Overloaded(format!(
                "scoring queue full ({} requests admitted, --queue-capacity)",
                self.capacity
            ))
        })?;
        let (reply, answer) = oneshot::channel();
        let enqueued = Instant::now();
        let metrics = self.metrics.clone();
        self.metrics.inflight.inc();
        self.pool.spawn(move || {
            metrics.queue_wait.observe(enqueued.elapsed().as_secs_f64());
            if reply.is_closed() {
                // The caller is gone (deadline or disconnect): skip the work.
                metrics.abandoned.inc();
                metrics.inflight.dec();
                return;
            }
            let started = Instant::now();
            let result = std::panic::catch_unwind(AssertUnwindSafe(job));
            metrics
                .scoring_duration
                .observe(started.elapsed().as_secs_f64());
            metrics.inflight.dec();
            drop(permit);
            let _ = reply.send(result);
        });
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(ServiceError::Internal("the scoring job panicked".into())),
            Err(_) => Err(ServiceError::Internal(
                "the scoring pool dropped the job".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admission_control_and_panics() {
        let scorer = Scorer::new(1, 1, Metrics::new()).unwrap();
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let s = scorer.clone();
        let first = tokio::spawn(async move {
            s.run(move || {
                let _ = gate.recv();
                7
            })
            .await
        });
        // Wait until the first job holds the only permit.
        while scorer.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = scorer.run(|| 1).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 7);
        let panicked = scorer.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert_eq!(panicked.code(), tonic::Code::Internal);
        assert_eq!(scorer.run(|| 2).await.unwrap(), 2);
    }
}
