//! Dynamic batching of single Recommend queries over the scoring pool: a dedicated thread
//! drains the waiting queries and scores those of one model version in one pass over the item
//! table. Queries nobody waits for any more are dropped before scoring.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::engine::Scorer;
use crate::error::{ServiceError, StartupError};
use crate::model::QueryInput;
use crate::served::Served;
use crate::telemetry::Metrics;

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
        let pool = scorer.pool().clone();
        let metrics = scorer.metrics().clone();
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
