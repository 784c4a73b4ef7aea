//! The `rankdistill.v1.TeacherService` handlers: convert the request to a domain request
//! (`crate::request`), resolve raw ids to a model query, hand it to the engine, convert the
//! answer back to proto. Errors are [`ServiceError`]s until the one conversion to
//! `tonic::Status`. The serving layer gives every call its span, metrics and deadline
//! (`grpc-timeout`: past it `Rank` ends with DEADLINE_EXCEEDED and the model skips the work);
//! a `StreamRankings` stream reads its deadline to end with DEADLINE_EXCEEDED and its resume
//! cursor.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rankdistill_core::instances::Instances;
use rankdistill_proto::v1::teacher_service_server::TeacherService;
use rankdistill_proto::v1::{
    InfoRequest, ModelInfo, QueryRanking, RankRequest, RankResponse, RankingBatch, ScoredItem,
    StreamRankingsRequest,
};
use rankdistill_serving::deadline::Deadline;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use tracing::{Instrument, Span, debug};

use crate::catalog::{Catalog, ScoringQuery};
use crate::engine::{Engine, PendingRanking, Ranking};
use crate::error::ServiceError;
use crate::request::{QueryIds, QuerySpec, RankQuery, StreamPlan};
use crate::telemetry::Metrics;

pub use crate::limits::{ServiceLimits, ranking_batch_bound};

/// Stream chunks submitted to the model ahead of the one being sent: one computing while the
/// previous is on the wire keeps the model thread busy.
const STREAM_PIPELINE_DEPTH: usize = 2;

/// The loaded model and dataset; set once, when warm-up is done.
#[derive(Debug)]
pub struct Ready {
    /// The model thread.
    pub engine: Engine,
    /// The dataset lookups.
    pub catalog: Arc<Catalog>,
}

/// The TeacherService implementation.
#[derive(Debug, Clone)]
pub struct TeacherApi {
    state: Arc<OnceLock<Arc<Ready>>>,
    limits: ServiceLimits,
    streams: Arc<Semaphore>,
    metrics: Metrics,
    draining: CancellationToken,
}

impl TeacherApi {
    /// A service that answers UNAVAILABLE until `state` is set. Streams end at a message
    /// boundary once `draining` is cancelled.
    pub fn new(
        state: Arc<OnceLock<Arc<Ready>>>,
        limits: ServiceLimits,
        metrics: Metrics,
        draining: CancellationToken,
    ) -> TeacherApi {
        TeacherApi {
            state,
            streams: Arc::new(Semaphore::new(limits.max_streams.max(1))),
            limits,
            metrics,
            draining,
        }
    }

    fn ready(&self) -> Result<Arc<Ready>, ServiceError> {
        self.state.get().cloned().ok_or(ServiceError::NotReady)
    }

    async fn rank_inner(&self, request: RankRequest) -> Result<RankResponse, ServiceError> {
        let ready = self.ready()?;
        let rank = RankQuery::try_from((request, &self.limits))?;
        let catalog = &ready.catalog;
        let scoring = catalog.resolve(
            &rank.query.user_id,
            &rank.query.recent_items,
            &rank.exclude_items,
            rank.exclude_seen,
        )?;
        let ranking = ready
            .engine
            .try_submit(vec![scoring], rank.k)?
            .wait()
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        Ok(RankResponse {
            items: ranking
                .into_iter()
                .map(|(item, score)| ScoredItem {
                    item_id: catalog.item_id(item).to_string(),
                    score,
                })
                .collect(),
            model_version: ready.engine.model().version.clone(),
        })
    }

    fn info_inner(&self) -> Result<ModelInfo, ServiceError> {
        let ready = self.ready()?;
        let model = ready.engine.model();
        Ok(ModelInfo {
            model_kind: model.kind.clone(),
            dim: model.dim,
            num_items: model.num_items as u32,
            num_users: ready.catalog.num_users() as u32,
            sequence_length: model.sequence_length as u32,
            version: model.version.clone(),
            data_fingerprint: ready.catalog.fingerprint().to_string(),
            num_parameters: model.num_parameters,
            device: model.device.clone(),
        })
    }

    async fn start_stream(
        &self,
        request: StreamRankingsRequest,
        started: Instant,
        deadline: Option<Instant>,
    ) -> Result<ReceiverStream<Result<RankingBatch, Status>>, ServiceError> {
        let ready = self.ready()?;
        let plan = StreamPlan::try_from((request, &self.limits))?;
        plan.check_fingerprint(ready.catalog.fingerprint())?;
        let source = QuerySource::prepare(plan.queries, plan.exclude_seen, &ready.catalog).await?;
        let total = source.len() as u64;
        if plan.cursor > total {
            return Err(ServiceError::InvalidArgument(format!(
                "cursor {} is past the end of the query space ({total} queries); resume from a next_cursor this stream returned, or 0 to start over",
                plan.cursor
            )));
        }
        let permit = self.streams.clone().try_acquire_owned().map_err(|_| {
            ServiceError::Overloaded(format!(
                "{} StreamRankings calls are already running (--max-streams)",
                self.limits.max_streams
            ))
        })?;
        let (tx, rx) = mpsc::channel(self.limits.stream_buffer.max(1));
        let producer = StreamProducer {
            ready,
            source: Arc::new(source),
            k: plan.k,
            batch_size: plan.batch_size,
            shard_index: plan.shard_index,
            shard_count: plan.shard_count,
            cursor: plan.cursor,
            deadline,
            tx,
            draining: self.draining.clone(),
            metrics: self.metrics.clone(),
        };
        let metrics = self.metrics.clone();
        tokio::spawn(
            async move {
                let _permit = permit;
                metrics.active_streams.inc();
                let code = producer.run().await;
                metrics.active_streams.dec();
                debug!(code = ?code, elapsed_ms = started.elapsed().as_millis() as u64, "stream ended");
            }
            .instrument(Span::current()),
        );
        Ok(ReceiverStream::new(rx))
    }
}

/// The queries a stream ranks, by query index.
enum QuerySource {
    /// The dataset's training instances; each excludes its own targets.
    Training {
        instances: Arc<Instances>,
        exclude_seen: bool,
    },
    /// A caller's list.
    Explicit(Vec<ScoringQuery>),
}

impl QuerySource {
    /// Resolves a plan's queries against the dataset. Resolving a long list and building the
    /// training queries are CPU work: both run on a blocking thread, off the async workers.
    async fn prepare(
        spec: QuerySpec,
        exclude_seen: bool,
        catalog: &Arc<Catalog>,
    ) -> Result<QuerySource, ServiceError> {
        let catalog = catalog.clone();
        match spec {
            QuerySpec::Explicit(list) => {
                let queries = tokio::task::spawn_blocking(move || {
                    list.iter()
                        .enumerate()
                        .map(|(index, query): (usize, &QueryIds)| {
                            catalog
                                .resolve(&query.user_id, &query.recent_items, &[], exclude_seen)
                                .map_err(|e| ServiceError::InQuery {
                                    index,
                                    source: Box::new(e),
                                })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(|e| ServiceError::Model(format!("resolving the queries failed: {e}")))??;
                Ok(QuerySource::Explicit(queries))
            }
            QuerySpec::Training { target_length } => {
                let instances =
                    tokio::task::spawn_blocking(move || catalog.training_queries(target_length))
                        .await
                        .map_err(|e| {
                            ServiceError::Model(format!("building training queries failed: {e}"))
                        })?;
                Ok(QuerySource::Training {
                    instances,
                    exclude_seen,
                })
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            QuerySource::Training { instances, .. } => instances.len(),
            QuerySource::Explicit(queries) => queries.len(),
        }
    }

    fn query(&self, catalog: &Catalog, index: usize) -> ScoringQuery {
        match self {
            QuerySource::Training {
                instances,
                exclude_seen,
            } => catalog.training_query(instances, index, *exclude_seen),
            QuerySource::Explicit(queries) => queries[index].clone(),
        }
    }

    /// The model queries of a chunk of query indices, built on a blocking thread: a chunk
    /// holds up to `--max-stream-batch-size` queries, too much CPU work for an async worker.
    async fn chunk_queries(
        source: Arc<QuerySource>,
        catalog: Arc<Catalog>,
        chunk: Vec<u64>,
    ) -> Result<Vec<ScoringQuery>, ServiceError> {
        tokio::task::spawn_blocking(move || {
            chunk
                .iter()
                .map(|&i| source.query(&catalog, i as usize))
                .collect()
        })
        .await
        .map_err(|e| ServiceError::Model(format!("building the stream's queries failed: {e}")))
    }
}

/// Computes one stream's batches and sends them, keeping the model busy while the previous
/// batch is on the wire, and stopping when the client leaves or the server drains.
struct StreamProducer {
    ready: Arc<Ready>,
    source: Arc<QuerySource>,
    k: usize,
    batch_size: usize,
    shard_index: u64,
    shard_count: u64,
    cursor: u64,
    deadline: Option<Instant>,
    tx: mpsc::Sender<Result<RankingBatch, Status>>,
    draining: CancellationToken,
    metrics: Metrics,
}

/// Query indices `i` in `cursor..total` with `i % shard_count == shard_index`, in order.
fn shard_indices(
    total: u64,
    cursor: u64,
    shard_index: u64,
    shard_count: u64,
) -> impl Iterator<Item = u64> {
    let start = cursor.min(total);
    let first = start + (shard_index + shard_count - start % shard_count) % shard_count;
    (first..total).step_by(shard_count as usize)
}

impl StreamProducer {
    async fn fail(&self, error: ServiceError) -> Code {
        let code = error.code();
        let _ = self.tx.send(Err(Status::from(error))).await;
        code
    }

    /// The error ending a stream whose deadline passed, with the cursor to resume from.
    fn expired(&self, resume_cursor: u64) -> ServiceError {
        ServiceError::DeadlineExceeded(format!(
            "the deadline passed; resume with cursor {resume_cursor} (and a longer deadline)"
        ))
    }

    /// Sleeps until the deadline (forever without one).
    async fn deadline_passed(&self) {
        match self.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
            None => std::future::pending().await,
        }
    }

    async fn run(self) -> Code {
        let total = self.source.len() as u64;
        let catalog = self.ready.catalog.clone();
        let mut indices =
            shard_indices(total, self.cursor, self.shard_index, self.shard_count).peekable();
        let mut resume_cursor = self.cursor;
        let mut in_flight: VecDeque<(Vec<u64>, PendingRanking)> = VecDeque::new();
        loop {
            if self.deadline.is_some_and(|d| d <= Instant::now()) && indices.peek().is_some() {
                return self.fail(self.expired(resume_cursor)).await;
            }
            while in_flight.len() < STREAM_PIPELINE_DEPTH && !self.draining.is_cancelled() {
                let chunk: Vec<u64> = indices.by_ref().take(self.batch_size).collect();
                if chunk.is_empty() {
                    break;
                }
                let queries =
                    QuerySource::chunk_queries(self.source.clone(), catalog.clone(), chunk.clone());
                let submit = async {
                    let queries = queries.await?;
                    self.ready.engine.submit(queries, self.k).await
                };
                let submitted = tokio::select! {
                    submitted = submit => submitted,
                    _ = self.tx.closed() => return Code::Cancelled,
                    _ = self.deadline_passed() => return self.fail(self.expired(resume_cursor)).await,
                };
                match submitted {
                    Ok(pending) => in_flight.push_back((chunk, pending)),
                    Err(e) => return self.fail(e).await,
                }
            }
            let Some((chunk, pending)) = in_flight.pop_front() else {
                if indices.peek().is_some() {
                    return self
                        .fail(ServiceError::ShuttingDown(format!(
                            "the server is shutting down; resume with cursor {resume_cursor}"
                        )))
                        .await;
                }
                return Code::Ok;
            };
            let rankings = tokio::select! {
                rankings = pending.wait() => rankings,
                _ = self.tx.closed() => return Code::Cancelled,
                _ = self.deadline_passed() => return self.fail(self.expired(resume_cursor)).await,
            };
            let rankings = match rankings {
                Ok(rankings) => rankings,
                Err(e) => return self.fail(e).await,
            };
            let next_cursor = chunk.last().map_or(resume_cursor, |last| last + 1);
            let batch = RankingBatch {
                rankings: chunk
                    .iter()
                    .zip(rankings)
                    .map(|(&query_index, ranking)| query_ranking(query_index, ranking))
                    .collect(),
                next_cursor,
                total_queries: total,
            };
            let sent = batch.rankings.len() as u64;
            tokio::select! {
                sent = self.tx.send(Ok(batch)) => if sent.is_err() {
                    return Code::Cancelled;
                },
                _ = self.deadline_passed() => return self.fail(self.expired(resume_cursor)).await,
            }
            resume_cursor = next_cursor;
            self.metrics.streamed_rankings.inc_by(sent);
        }
    }
}

fn query_ranking(query_index: u64, ranking: Ranking) -> QueryRanking {
    let (items, scores) = ranking.into_iter().unzip();
    QueryRanking {
        query_index,
        items,
        scores,
    }
}

#[tonic::async_trait]
impl TeacherService for TeacherApi {
    async fn rank(&self, request: Request<RankRequest>) -> Result<Response<RankResponse>, Status> {
        let answer = self.rank_inner(request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    type StreamRankingsStream = ReceiverStream<Result<RankingBatch, Status>>;

    async fn stream_rankings(
        &self,
        request: Request<StreamRankingsRequest>,
    ) -> Result<Response<Self::StreamRankingsStream>, Status> {
        let started = Instant::now();
        let deadline = Deadline::of(&request);
        let stream = self
            .start_stream(request.into_inner(), started, deadline)
            .await?;
        Ok(Response::new(stream))
    }

    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<ModelInfo>, Status> {
        Ok(Response::new(self.info_inner()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_indices_start_at_the_cursor_and_keep_the_modulus() {
        let indices =
            |index, count, cursor| shard_indices(10, cursor, index, count).collect::<Vec<_>>();
        assert_eq!(indices(0, 1, 0), (0..10).collect::<Vec<_>>());
        assert_eq!(indices(1, 3, 0), vec![1, 4, 7]);
        assert_eq!(indices(1, 3, 5), vec![7]);
        assert_eq!(indices(2, 3, 5), vec![5, 8]);
        assert_eq!(indices(0, 3, 11), Vec::<u64>::new());
        // The shards partition the query space.
        let mut all: Vec<u64> = (0..4).flat_map(|i| shard_indices(10, 0, i, 4)).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }
}
