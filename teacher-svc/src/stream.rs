//! One StreamRankings stream: the queries it ranks (the dataset's training instances or the
//! caller's list, resolved off the async workers), the shard and cursor arithmetic, and the
//! producer that keeps the model busy while the previous batch is on the wire, stopping when
//! the client leaves, the deadline passes or the server drains.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use rankdistill_core::instances::Instances;
use rankdistill_proto::v1::{QueryRanking, RankingBatch};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};

use crate::catalog::{Catalog, ScoringQuery};
use crate::engine::{PendingRanking, Ranking};
use crate::error::ServiceError;
use crate::ready::Ready;
use crate::request::{QueryIds, QuerySpec};
use crate::telemetry::Metrics;

/// Stream chunks submitted to the model ahead of the one being sent: one computing while the
/// previous is on the wire keeps the model thread busy.
const STREAM_PIPELINE_DEPTH: usize = 2;

/// The queries a stream ranks, by query index.
pub(crate) enum QuerySource {
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
    pub(crate) async fn prepare(
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
            QuerySpec::Training(shape) => {
                let instances =
                    tokio::task::spawn_blocking(move || catalog.training_queries(shape))
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

    pub(crate) fn len(&self) -> usize {
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
pub(crate) struct StreamProducer {
    pub(crate) ready: Arc<Ready>,
    pub(crate) source: Arc<QuerySource>,
    pub(crate) k: usize,
    pub(crate) batch_size: usize,
    pub(crate) shard_index: u64,
    pub(crate) shard_count: u64,
    pub(crate) cursor: u64,
    pub(crate) deadline: Option<Instant>,
    pub(crate) tx: mpsc::Sender<Result<RankingBatch, Status>>,
    pub(crate) draining: CancellationToken,
    pub(crate) metrics: Metrics,
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

    pub(crate) async fn run(self) -> Code {
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
