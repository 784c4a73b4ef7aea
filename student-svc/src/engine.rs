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
use crate::model::QueryInput;
use crate::served::Served;
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

/// One query waiting for the batcher.
struct PendingQuery {
    served: Arc<Served>,
    k: usize,
    query: QueryInput,
    exclude: Vec<u32>,
    enqueued: Instant,
    deadline: Option<Instant>,
    reply: oneshot::Sender<Result<Vec<(u32, f32)>, ServiceError>>,
}

impl PendingQuery {
    /// False when nobody waits for the answer any more: the caller went away, or its
    /// deadline passed (it is then told DEADLINE_EXCEEDED).
    fn still_wanted(&mut self, now: Instant) -> bool {
        if self.reply.is_closed() {
            return false;
        }
        match self.deadline {
            Some(deadline) if deadline <= now => {
                let (done, _) = oneshot::channel();
                let reply = std::mem::replace(&mut self.reply, done);
                let _ = reply.send(Err(ServiceError::DeadlineExceeded(format!(
                    "the deadline passed after {} ms in the scoring queue",
                    now.duration_since(self.enqueued).as_millis()
                ))));
                false
            }
            _ => true,
        }
    }
}

/// Dynamic batching of single queries: a dedicated thread drains whatever queries are
/// waiting (up to `max_batch`) and scores those of the same model version in one pass over
/// the item table on the scoring pool. With one client nothing waits; under concurrency the
/// queries that arrive during a pass share the next one, so each table read serves several.
#[derive(Debug, Clone)]
pub struct Batcher {
    queue: std::sync::mpsc::SyncSender<PendingQuery>,
    capacity: usize,
    metrics: Metrics,
}

impl std::fmt::Debug for PendingQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingQuery").field("k", &self.k).finish()
    }
}

impl Batcher {
    /// Starts the batching thread over `scorer`'s pool with a queue of `capacity` queries.
    pub fn start(
        scorer: &Scorer,
        capacity: usize,
        max_batch: usize,
    ) -> Result<Batcher, StartupError> {
        let (queue, pending) = std::sync::mpsc::sync_channel::<PendingQuery>(capacity);
        let pool = scorer.pool.clone();
        let metrics = scorer.metrics.clone();
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("student-batcher".into())
            .spawn(move || batch_loop(pending, pool, max_batch.max(1), thread_metrics))
            .map_err(|e| StartupError::Pool(e.to_string()))?;
        Ok(Batcher {
            queue,
            capacity,
            metrics,
        })
    }

    /// Queues one query; RESOURCE_EXHAUSTED when `capacity` queries are waiting. A query
    /// still waiting at `deadline` is dropped unscored with DEADLINE_EXCEEDED.
    pub async fn top_k(
        &self,
        served: Arc<Served>,
        k: usize,
        query: QueryInput,
        exclude: Vec<u32>,
        deadline: Option<Instant>,
    ) -> Result<Vec<(u32, f32)>, ServiceError> {
        let (reply, answer) = oneshot::channel();
        let job = PendingQuery {
            served,
            k,
            query,
            exclude,
            enqueued: Instant::now(),
            deadline,
            reply,
        };
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                return Err(ServiceError::Overloaded(format!(
                    "scoring queue full ({} queries waiting, --queue-capacity)",
                    self.capacity
                )));
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                return Err(ServiceError::Internal("the batching thread stopped".into()));
            }
        }
        self.metrics.inflight.inc();
        let result = answer.await;
        self.metrics.inflight.dec();
        result.map_err(|_| ServiceError::Internal("the scoring job failed".into()))?
    }
}

fn batch_loop(
    pending: std::sync::mpsc::Receiver<PendingQuery>,
    pool: Arc<rayon::ThreadPool>,
    max_batch: usize,
    metrics: Metrics,
) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match pending.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Group by model version: a reload between two queries splits the pass.
        while !batch.is_empty() {
            let served = batch[0].served.clone();
            let (mut group, rest): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|j| Arc::ptr_eq(&j.served, &served));
            batch = rest;
            let started = Instant::now();
            // Waiting for a pool thread can take a while under load: the queries that nobody
            // waits for any more are dropped once one is free, before the pass starts.
            let scored = std::panic::catch_unwind(AssertUnwindSafe(|| {
                pool.install(|| {
                    let now = Instant::now();
                    let before = group.len();
                    group.retain_mut(|job| job.still_wanted(now));
                    metrics.abandoned.inc_by((before - group.len()) as u64);
                    for job in &group {
                        metrics
                            .queue_wait
                            .observe(now.duration_since(job.enqueued).as_secs_f64());
                    }
                    if group.is_empty() {
                        return Vec::new();
                    }
                    metrics.batch_size.observe(group.len() as f64);
                    let k_max = group.iter().map(|j| j.k).max().unwrap_or(0);
                    let queries: Vec<_> = group.iter().map(|j| j.query.clone()).collect();
                    let excludes: Vec<Vec<u32>> = group.iter().map(|j| j.exclude.clone()).collect();
                    served.model.top_k_batch(&queries, k_max, &excludes)
                })
            }));
            metrics
                .scoring_duration
                .observe(started.elapsed().as_secs_f64());
            match scored {
                Ok(rankings) => {
                    for (job, mut ranking) in group.into_iter().zip(rankings) {
                        ranking.truncate(job.k);
                        let _ = job.reply.send(Ok(ranking));
                    }
                }
                // Dropping the replies answers INTERNAL to each caller.
                Err(_) => tracing::warn!("a scoring pass panicked"),
            }
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
