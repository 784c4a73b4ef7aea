//! The `rankdistill.v1.TeacherService` handlers: convert the request to a domain request
//! (`crate::request`), resolve raw ids to a model query, hand it to the engine, convert the
//! answer back to proto. Errors are [`ServiceError`]s until the one conversion to
//! `tonic::Status`. The serving layer gives every call its span, metrics and deadline
//! (`grpc-timeout`: past it `Rank` ends with DEADLINE_EXCEEDED and the model skips the work);
//! a `StreamRankings` stream reads its deadline to end with DEADLINE_EXCEEDED and its resume
//! cursor.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rankdistill_proto::v1::teacher_service_server::TeacherService;
use rankdistill_proto::v1::{
    InfoRequest, ModelInfo, QueryScores, RankRequest, RankResponse, RankingBatch,
    ScoreItemsRequest, ScoreItemsResponse, ScoredItem, StreamRankingsRequest,
};
use rankdistill_serving::deadline::Deadline;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{Instrument, Span, debug};

use crate::error::ServiceError;
use crate::request::{RankQuery, ScorePlan, StreamPlan};
use crate::stream::{QuerySource, StreamProducer};
use crate::telemetry::Metrics;

pub use crate::limits::{ServiceLimits, ranking_batch_bound};
pub use crate::ready::Ready;

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

    async fn score_items_inner(
        &self,
        request: ScoreItemsRequest,
    ) -> Result<ScoreItemsResponse, ServiceError> {
        let ready = self.ready()?;
        let plan = ScorePlan::try_from((request, &self.limits))?;
        plan.check_fingerprint(ready.catalog.fingerprint())?;
        let catalog = ready.catalog.clone();
        let num_items = ready.engine.model().num_items;
        // Building the queries is CPU work: off the async workers.
        let (indices, queries, items) = tokio::task::spawn_blocking(move || {
            let instances = catalog.training_queries(plan.shape);
            let total = instances.len() as u64;
            let mut indices = Vec::with_capacity(plan.queries.len());
            let mut queries = Vec::with_capacity(plan.queries.len());
            let mut items = Vec::with_capacity(plan.queries.len());
            for (position, (query_index, query_items)) in plan.queries.into_iter().enumerate() {
                if query_index >= total {
                    return Err(ServiceError::InvalidArgument(format!(
                        "queries[{position}]: query_index {query_index} is past the end of the training queries ({total} {} with target_length {})",
                        plan.shape.set.name(),
                        plan.shape.target_length
                    )));
                }
                if let Some(bad) = query_items.iter().find(|&&i| i as usize >= num_items) {
                    return Err(ServiceError::InvalidArgument(format!(
                        "queries[{position}]: item {bad} is beyond the model's {num_items} items (dense indices are 0..{num_items})"
                    )));
                }
                indices.push(query_index);
                queries.push(catalog.training_query(&instances, query_index as usize, false));
                items.push(query_items);
            }
            Ok((indices, queries, items))
        })
        .await
        .map_err(|e| ServiceError::Model(format!("building the queries failed: {e}")))??;
        let scores = ready
            .engine
            .try_submit_scores(queries, items)?
            .wait()
            .await?;
        Ok(ScoreItemsResponse {
            queries: indices
                .into_iter()
                .zip(scores)
                .map(|(query_index, scores)| QueryScores {
                    query_index,
                    scores,
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

    async fn score_items(
        &self,
        request: Request<ScoreItemsRequest>,
    ) -> Result<Response<ScoreItemsResponse>, Status> {
        Ok(Response::new(
            self.score_items_inner(request.into_inner()).await?,
        ))
    }
}
