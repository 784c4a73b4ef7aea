//! The model thread and dynamic batching. One `std::thread` owns the tch objects; requests
//! reach it over a bounded channel as jobs `{queries, work, reply}`. The thread blocks on the
//! channel (never a tokio worker), drains queued jobs up to `max_batch` queries, runs one
//! forward pass per kind of work (score all items, then mask exclusions and take the top k,
//! or pick the scores of given items) and answers each job on its oneshot.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use rankdistill_models::ids_tensor;
use rankdistill_models::threads::{self, TorchThreads};
use tch::{Kind, Tensor};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::backend::{ModelDescription, Scorer};
use crate::catalog::ScoringQuery;
use crate::error::{ServiceError, StartupError};
use crate::telemetry::Metrics;

/// A top-k ranking: (dense item, score), best first.
pub type Ranking = Vec<(u32, f32)>;

/// How the model thread batches.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Most queries per forward pass.
    pub max_batch: usize,
    /// Jobs waiting in the channel before `try_submit` refuses.
    pub queue_capacity: usize,
    /// LibTorch intra-op threads of the model thread.
    pub torch_threads: TorchThreads,
}

/// Scores of given items for one query, parallel to the items asked for.
pub type ItemScores = Vec<f32>;

/// What a job asks of the forward pass.
enum Work {
    /// The top k of every query.
    Rank {
        k: usize,
        reply: oneshot::Sender<Result<Vec<Ranking>, ServiceError>>,
    },
    /// The scores of given items, one list per query.
    Score {
        items: Vec<Vec<u32>>,
        reply: oneshot::Sender<Result<Vec<ItemScores>, ServiceError>>,
    },
}

impl Work {
    fn is_closed(&self) -> bool {
        match self {
            Work::Rank { reply, .. } => reply.is_closed(),
            Work::Score { reply, .. } => reply.is_closed(),
        }
    }
}

struct Job {
    queries: Vec<ScoringQuery>,
    work: Work,
    enqueued_at: Instant,
}

/// Handle to the model thread; cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    jobs: mpsc::Sender<Job>,
    model: Arc<ModelDescription>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Job");
        f.field("queries", &self.queries.len());
        match &self.work {
            Work::Rank { k, .. } => f.field("k", k),
            Work::Score { items, .. } => f.field("items", &items.len()),
        };
        f.finish()
    }
}

/// The answer to a submitted job, to be awaited.
#[derive(Debug)]
pub struct PendingRanking(oneshot::Receiver<Result<Vec<Ranking>, ServiceError>>);

impl PendingRanking {
    /// Waits for the model thread's answer: one ranking per query, in order.
    pub async fn wait(self) -> Result<Vec<Ranking>, ServiceError> {
        self.0.await.map_err(|_| ServiceError::EngineStopped)?
    }
}

/// The answer to a submitted scoring job, to be awaited.
#[derive(Debug)]
pub struct PendingScores(oneshot::Receiver<Result<Vec<ItemScores>, ServiceError>>);

impl PendingScores {
    /// Waits for the model thread's answer: one list of scores per query, in order.
    pub async fn wait(self) -> Result<Vec<ItemScores>, ServiceError> {
        self.0.await.map_err(|_| ServiceError::EngineStopped)?
    }
}

impl Engine {
    /// Starts the model thread: it runs `load` (so the tch objects are created on the thread
    /// that owns them), warms the model up with one forward pass, then serves jobs. Returns
    /// once the model is ready, with the thread's handle; the thread ends when every
    /// `Engine` clone is dropped.
    pub async fn start<S, F>(
        load: F,
        settings: EngineSettings,
        metrics: Metrics,
    ) -> Result<(Engine, JoinHandle<()>), StartupError>
    where
        S: Scorer + 'static,
        F: FnOnce() -> Result<S, StartupError> + Send + 'static,
    {
        let (jobs, receiver) = mpsc::channel(settings.queue_capacity.max(1));
        let (ready_tx, ready_rx) = oneshot::channel();
        let handle = std::thread::Builder::new()
            .name("teacher-model".into())
            .spawn(move || {
                threads::use_on_this_thread(settings.torch_threads);
                // Grad mode is per thread: nothing on this thread records a graph.
                let _no_grad = tch::no_grad_guard();
                let scorer = match load().and_then(|scorer| warm_up(&scorer).map(|()| scorer)) {
                    Ok(scorer) => scorer,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                if ready_tx.send(Ok(scorer.description().clone())).is_err() {
                    return;
                }
                serve_jobs(&scorer, receiver, settings.max_batch.max(1), &metrics);
                info!("model thread stopped");
            })
            .map_err(|cause| StartupError::Io {
                context: "cannot start the model thread".into(),
                cause,
            })?;
        let model = ready_rx.await.map_err(|_| StartupError::EngineStopped)??;
        Ok((
            Engine {
                jobs,
                model: Arc::new(model),
            },
            handle,
        ))
    }

    /// The served model.
    pub fn model(&self) -> &ModelDescription {
        &self.model
    }

    fn job(queries: Vec<ScoringQuery>, k: usize) -> (Job, PendingRanking) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            queries,
            work: Work::Rank { k, reply },
            enqueued_at: Instant::now(),
        };
        (job, PendingRanking(answer))
    }

    fn try_send(&self, job: Job) -> Result<(), ServiceError> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                ServiceError::Overloaded("the model queue is full".into())
            }
            mpsc::error::TrySendError::Closed(_) => ServiceError::EngineStopped,
        })
    }

    /// Queues a job, or refuses with `Overloaded` when the queue is full (admission control).
    pub fn try_submit(
        &self,
        queries: Vec<ScoringQuery>,
        k: usize,
    ) -> Result<PendingRanking, ServiceError> {
        let (job, answer) = Self::job(queries, k);
        self.try_send(job)?;
        Ok(answer)
    }

    /// Queues a job scoring `items[q]` for query `q`, or refuses with `Overloaded` when the
    /// queue is full. Every item must be below the model's item count.
    pub fn try_submit_scores(
        &self,
        queries: Vec<ScoringQuery>,
        items: Vec<Vec<u32>>,
    ) -> Result<PendingScores, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.try_send(Job {
            queries,
            work: Work::Score { items, reply },
            enqueued_at: Instant::now(),
        })?;
        Ok(PendingScores(answer))
    }

    /// Queues a job, waiting for room in the queue (backpressure for streams, which are
    /// admitted once, up front).
    pub async fn submit(
        &self,
        queries: Vec<ScoringQuery>,
        k: usize,
    ) -> Result<PendingRanking, ServiceError> {
        let (job, answer) = Self::job(queries, k);
        self.jobs
            .send(job)
            .await
            .map_err(|_| ServiceError::EngineStopped)?;
        Ok(answer)
    }
}

fn warm_up<S: Scorer>(scorer: &S) -> Result<(), StartupError> {
    let query = ScoringQuery {
        user: 0,
        inputs: vec![0; scorer.description().sequence_length],
        exclude: Vec::new(),
    };
    let started = Instant::now();
    rank_batch(scorer, &[&query], 1, 1, None).map_err(|e| StartupError::Warmup(e.to_string()))?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "model warmed up"
    );
    Ok(())
}

fn serve_jobs<S: Scorer>(
    scorer: &S,
    mut receiver: mpsc::Receiver<Job>,
    max_batch: usize,
    metrics: &Metrics,
) {
    let mut jobs: Vec<Job> = Vec::new();
    while let Some(first) = receiver.blocking_recv() {
        let mut queued = first.queries.len();
        jobs.push(first);
        while queued < max_batch {
            match receiver.try_recv() {
                Ok(job) => {
                    queued += job.queries.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let now = Instant::now();
        // A caller that went away needs no answer: skip its work.
        jobs.retain(|job| !job.work.is_closed());
        for job in &jobs {
            metrics
                .queue_wait
                .observe(now.duration_since(job.enqueued_at).as_secs_f64());
        }
        let (rank_jobs, score_jobs): (Vec<Job>, Vec<Job>) = jobs
            .drain(..)
            .partition(|job| matches!(job.work, Work::Rank { .. }));
        answer_rank_jobs(scorer, rank_jobs, max_batch, metrics);
        answer_score_jobs(scorer, score_jobs, max_batch, metrics);
    }
}

fn answer_rank_jobs<S: Scorer>(scorer: &S, jobs: Vec<Job>, max_batch: usize, metrics: &Metrics) {
    let Some(k) = jobs
        .iter()
        .filter_map(|job| match job.work {
            Work::Rank { k, .. } => Some(k),
            Work::Score { .. } => None,
        })
        .max()
    else {
        return;
    };
    let queries: Vec<&ScoringQuery> = jobs.iter().flat_map(|job| &job.queries).collect();
    let result = rank_batch(scorer, &queries, k, max_batch, Some(metrics));
    match result {
        Ok(rankings) => {
            let mut rankings = rankings.into_iter();
            for Job { queries, work, .. } in jobs {
                if let Work::Rank { k, reply } = work {
                    let answer = rankings
                        .by_ref()
                        .take(queries.len())
                        .map(|mut ranking| {
                            ranking.truncate(k);
                            ranking
                        })
                        .collect();
                    let _ = reply.send(Ok(answer));
                }
            }
        }
        Err(e) => {
            warn!(error = %e, queries = queries.len(), "forward pass failed");
            for job in jobs {
                if let Work::Rank { reply, .. } = job.work {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn answer_score_jobs<S: Scorer>(scorer: &S, jobs: Vec<Job>, max_batch: usize, metrics: &Metrics) {
    if jobs.is_empty() {
        return;
    }
    let queries: Vec<&ScoringQuery> = jobs.iter().flat_map(|job| &job.queries).collect();
    let items: Vec<&[u32]> = jobs
        .iter()
        .flat_map(|job| match &job.work {
            Work::Score { items, .. } => items.iter().map(Vec::as_slice).collect(),
            Work::Rank { .. } => Vec::new(),
        })
        .collect();
    match score_batch(scorer, &queries, &items, max_batch, Some(metrics)) {
        Ok(scores) => {
            let mut scores = scores.into_iter();
            for Job { queries, work, .. } in jobs {
                if let Work::Score { reply, .. } = work {
                    let _ = reply.send(Ok(scores.by_ref().take(queries.len()).collect()));
                }
            }
        }
        Err(e) => {
            warn!(error = %e, queries = queries.len(), "forward pass failed");
            for job in jobs {
                if let Work::Score { reply, .. } = job.work {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown panic".into())
}

/// The users and the row-major inputs of a chunk of queries, each of which must have `l`
/// inputs.
fn users_and_inputs(
    chunk: &[&ScoringQuery],
    l: usize,
) -> Result<(Vec<u32>, Vec<u32>), ServiceError> {
    let mut users = Vec::with_capacity(chunk.len());
    let mut inputs = Vec::with_capacity(chunk.len() * l);
    for query in chunk {
        if query.inputs.len() != l {
            return Err(ServiceError::Model(format!(
                "query has {} inputs, the model reads {l}",
                query.inputs.len()
            )));
        }
        users.push(query.user);
        inputs.extend_from_slice(&query.inputs);
    }
    Ok((users, inputs))
}

/// Ranks queries with the scorer in forward passes of at most `max_batch` queries: score all
/// items, mask each query's exclusions, top-k. Must run on the thread that owns the scorer.
/// LibTorch reports errors by panicking; they are caught and returned as `Model` errors.
pub fn rank_batch<S: Scorer>(
    scorer: &S,
    queries: &[&ScoringQuery],
    k: usize,
    max_batch: usize,
    metrics: Option<&Metrics>,
) -> Result<Vec<Ranking>, ServiceError> {
    let description = scorer.description();
    let (l, n_items) = (description.sequence_length, description.num_items);
    let device = scorer.device();
    let mut out = Vec::with_capacity(queries.len());
    for chunk in queries.chunks(max_batch.max(1)) {
        threads::adapt();
        let started = Instant::now();
        let b = chunk.len();
        let (users, inputs) = users_and_inputs(chunk, l)?;
        let excludes: Vec<Vec<u32>> = chunk
            .iter()
            .map(|query| {
                query
                    .exclude
                    .iter()
                    .copied()
                    .filter(|&item| (item as usize) < n_items)
                    .collect()
            })
            .collect();
        let forward = catch_unwind(AssertUnwindSafe(|| {
            let users = ids_tensor(&users, &[b as i64], device);
            let inputs = ids_tensor(&inputs, &[b as i64, l as i64], device);
            scorer.rank_all(&users, &inputs, &excludes, k)
        }));
        let rankings = match forward {
            Ok(Ok(rankings)) => rankings,
            Ok(Err(message)) => return Err(ServiceError::Model(message)),
            Err(payload) => return Err(ServiceError::Model(panic_message(payload.as_ref()))),
        };
        if let Some(metrics) = metrics {
            metrics.batch_size.observe(b as f64);
            metrics
                .forward_duration
                .observe(started.elapsed().as_secs_f64());
        }
        out.extend(rankings);
    }
    Ok(out)
}

/// Scores `items[q]` for query `q` in forward passes of at most `max_batch` queries (score all
/// items, then gather), and returns one list of scores per query. Items must be below the
/// model's item count. Must run on the thread that owns the scorer.
pub fn score_batch<S: Scorer>(
    scorer: &S,
    queries: &[&ScoringQuery],
    items: &[&[u32]],
    max_batch: usize,
    metrics: Option<&Metrics>,
) -> Result<Vec<ItemScores>, ServiceError> {
    let description = scorer.description();
    let (l, n_items) = (description.sequence_length, description.num_items);
    if queries.len() != items.len() {
        return Err(ServiceError::Model(format!(
            "{} queries but {} item lists",
            queries.len(),
            items.len()
        )));
    }
    if let Some(bad) = items
        .iter()
        .flat_map(|i| i.iter())
        .find(|&&i| i as usize >= n_items)
    {
        return Err(ServiceError::InvalidArgument(format!(
            "item {bad} is beyond the model's {n_items} items"
        )));
    }
    let device = scorer.device();
    let mut out = Vec::with_capacity(queries.len());
    for (chunk, chunk_items) in queries
        .chunks(max_batch.max(1))
        .zip(items.chunks(max_batch.max(1)))
    {
        threads::adapt();
        let started = Instant::now();
        let b = chunk.len();
        let (users, inputs) = users_and_inputs(chunk, l)?;
        // Row-major (row, item) positions into the [b, n_items] score matrix.
        let flat: Vec<i64> = chunk_items
            .iter()
            .enumerate()
            .flat_map(|(row, items)| {
                items
                    .iter()
                    .map(move |&item| (row * n_items) as i64 + item as i64)
            })
            .collect();
        let forward = catch_unwind(AssertUnwindSafe(|| {
            let users = ids_tensor(&users, &[b as i64], device);
            let inputs = ids_tensor(&inputs, &[b as i64, l as i64], device);
            let scores = scorer.score_all(&users, &inputs)?;
            let picked = scores
                .view([-1])
                .index_select(0, &Tensor::from_slice(&flat).to_device(device))
                .to_kind(Kind::Float)
                .to_device(tch::Device::Cpu);
            Vec::<f32>::try_from(&picked).map_err(|e| e.to_string())
        }));
        let picked = match forward {
            Ok(Ok(picked)) => picked,
            Ok(Err(message)) => return Err(ServiceError::Model(message)),
            Err(payload) => return Err(ServiceError::Model(panic_message(payload.as_ref()))),
        };
        let mut rest = picked.as_slice();
        for items in chunk_items {
            let (mine, tail) = rest.split_at(items.len());
            out.push(mine.to_vec());
            rest = tail;
        }
        if let Some(metrics) = metrics {
            metrics.batch_size.observe(b as f64);
            metrics
                .forward_duration
                .observe(started.elapsed().as_secs_f64());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc as std_mpsc;
    use tch::{Device, Kind, Tensor};

    const BLOCKING_USER: u32 = 99;
    const PANICKING_USER: u32 = 98;

    /// Scores item i for user u as (u + 1) * i, so the best items are the highest indices.
    /// User 99 blocks inside the forward pass until the gate opens; user 98 panics.
    struct FakeScorer {
        description: ModelDescription,
        batches: Arc<Mutex<Vec<i64>>>,
        started: std_mpsc::Sender<()>,
        gate: Mutex<std_mpsc::Receiver<()>>,
    }

    impl Scorer for FakeScorer {
        fn description(&self) -> &ModelDescription {
            &self.description
        }
        fn device(&self) -> Device {
            Device::Cpu
        }
        fn score_all(&self, users: &Tensor, _inputs: &Tensor) -> Result<Tensor, String> {
            let ids = Vec::<i64>::try_from(users).map_err(|e: tch::TchError| e.to_string())?;
            if let Ok(mut batches) = self.batches.lock() {
                batches.push(ids.len() as i64);
            }
            if ids.contains(&(PANICKING_USER as i64)) {
                panic!("boom");
            }
            if ids.contains(&(BLOCKING_USER as i64)) {
                let _ = self.started.send(());
                if let Ok(gate) = self.gate.lock() {
                    let _ = gate.recv();
                }
            }
            let n = self.description.num_items as i64;
            let items = Tensor::arange(n, (Kind::Float, Device::Cpu)).view([1, n]);
            Ok((users.to_kind(Kind::Float) + 1.0).view([-1, 1]) * items)
        }
    }

    struct Harness {
        engine: Engine,
        batches: Arc<Mutex<Vec<i64>>>,
        started: std_mpsc::Receiver<()>,
        gate: std_mpsc::Sender<()>,
    }

    async fn harness(queue_capacity: usize) -> Harness {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let (started_tx, started) = std_mpsc::channel();
        let (gate, gate_rx) = std_mpsc::channel();
        let description = ModelDescription {
            kind: "fake".into(),
            dim: 0,
            num_items: 6,
            num_users: 100,
            sequence_length: 2,
            version: "v".into(),
            data_fingerprint: None,
            num_parameters: 0,
            device: "cpu".into(),
        };
        let scorer_batches = batches.clone();
        let (engine, _thread) = Engine::start(
            move || {
                Ok(FakeScorer {
                    description,
                    batches: scorer_batches,
                    started: started_tx,
                    gate: Mutex::new(gate_rx),
                })
            },
            EngineSettings {
                max_batch: 8,
                queue_capacity,
                torch_threads: TorchThreads::LibTorch,
            },
            Metrics::new(),
        )
        .await
        .unwrap();
        Harness {
            engine,
            batches,
            started,
            gate,
        }
    }

    fn query(user: u32, exclude: Vec<u32>) -> ScoringQuery {
        ScoringQuery {
            user,
            inputs: vec![0, 1],
            exclude,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_jobs_share_one_forward_pass_and_get_their_own_k() {
        let h = harness(8).await;
        let blocker = h
            .engine
            .try_submit(vec![query(BLOCKING_USER, vec![])], 1)
            .unwrap();
        tokio::task::spawn_blocking(move || h.started.recv())
            .await
            .unwrap()
            .unwrap();
        let a = h.engine.try_submit(vec![query(1, vec![5])], 2).unwrap();
        let b = h
            .engine
            .try_submit(vec![query(2, vec![]), query(3, vec![4, 5])], 3)
            .unwrap();
        h.gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        let a = a.wait().await.unwrap();
        let b = b.wait().await.unwrap();
        let items = |r: &Ranking| r.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(a.len(), 1);
        assert_eq!(items(&a[0]), vec![4, 3]);
        assert_eq!(a[0][0].1, 8.0);
        assert_eq!(items(&b[0]), vec![5, 4, 3]);
        assert_eq!(items(&b[1]), vec![3, 2, 1]);
        // Warm-up, the blocker, then one pass for both queued jobs.
        assert_eq!(*h.batches.lock().unwrap(), vec![1, 1, 3]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_refused_and_submit_waits_for_room() {
        let h = harness(1).await;
        let blocker = h
            .engine
            .try_submit(vec![query(BLOCKING_USER, vec![])], 1)
            .unwrap();
        tokio::task::spawn_blocking(move || h.started.recv())
            .await
            .unwrap()
            .unwrap();
        let queued = h.engine.try_submit(vec![query(1, vec![])], 1).unwrap();
        let refused = h.engine.try_submit(vec![query(2, vec![])], 1).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        let engine = h.engine.clone();
        let waiting = tokio::spawn(async move { engine.submit(vec![query(3, vec![])], 1).await });
        h.gate.send(()).unwrap();
        blocker.wait().await.unwrap();
        assert_eq!(queued.wait().await.unwrap()[0][0].0, 5);
        let late = waiting.await.unwrap().unwrap().wait().await.unwrap();
        assert_eq!(late[0].len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_forward_pass_is_an_error_and_the_thread_survives() {
        let h = harness(4).await;
        let err = h
            .engine
            .try_submit(vec![query(PANICKING_USER, vec![])], 1)
            .unwrap()
            .wait()
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Internal);
        assert!(err.to_string().contains("boom"), "{err}");
        let ok = h.engine.try_submit(vec![query(0, vec![])], 2).unwrap();
        assert_eq!(ok.wait().await.unwrap()[0].len(), 2);
    }
}
