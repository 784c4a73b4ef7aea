//! The teacher's scores of given items over gRPC (`ScoreItems`), for the methods that need
//! scores of items outside the streamed lists (RCE-KD). Missing (query, item) pairs are asked
//! for in batches of queries spread over every teacher endpoint, each batch retried with
//! backoff like a pull; answers go into a [`ScoreCache`] seeded with the streamed lists, so a
//! pair is asked for once per run.

use std::time::Duration;

use anyhow::{Context, bail};
use rankdistill_proto::v1::{QueryItems, ScoreItemsRequest};
use tch::Tensor;

use crate::methods::TeacherLists;
use crate::methods::teacher_scores::{ScoreCache, TeacherScores, flat_items};
use crate::pull::{is_transient, training_query_set};
use crate::teachers::Teachers;
use rankdistill_core::instances::WindowConfig;

/// Queries per ScoreItems call (within teacher-svc's default --max-score-queries).
const QUERIES_PER_CALL: usize = 1024;
/// Calls in flight per endpoint.
const CALLS_PER_ENDPOINT: usize = 2;

/// What the online scoring cost, for the report.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ScoreItemsReport {
    /// ScoreItems calls that succeeded.
    pub calls: u64,
    /// Calls retried after a transient failure.
    pub retries: u64,
    /// (query, item) pairs the teacher scored.
    pub scored_pairs: u64,
    /// Pairs answered from the cache.
    pub cache_hits: u64,
    /// Seconds spent waiting for the teacher.
    pub seconds: f64,
}

/// Teacher scores from live teachers, through a cache.
pub struct RemoteScores {
    teachers: Teachers,
    window: WindowConfig,
    max_retries: u32,
    cache: ScoreCache,
    report: std::sync::Arc<std::sync::Mutex<ScoreItemsReport>>,
}

impl RemoteScores {
    /// Scores from `teachers` for the training queries `window` names, the cache
    /// seeded with `lists`. `report` receives the running counts.
    pub fn new(
        teachers: Teachers,
        window: WindowConfig,
        max_retries: u32,
        lists: &TeacherLists,
        report: std::sync::Arc<std::sync::Mutex<ScoreItemsReport>>,
    ) -> RemoteScores {
        RemoteScores {
            teachers,
            window,
            max_retries,
            cache: ScoreCache::from_lists(lists),
            report,
        }
    }
}

async fn score_call(
    teachers: &Teachers,
    url: &str,
    request: ScoreItemsRequest,
    max_retries: u32,
) -> anyhow::Result<(Vec<Vec<f32>>, u32)> {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        let attempt = async {
            let mut client = teachers.transport.connect(url).await?;
            let answer = client
                .score_items(request.clone())
                .await
                .with_context(|| format!("ScoreItems from teacher {url}"))?
                .into_inner();
            Ok::<_, anyhow::Error>(answer)
        }
        .await;
        match attempt {
            Ok(answer) => {
                if answer.model_version != teachers.identity.version {
                    bail!(
                        "teacher {url} now serves model version {}, not {}: the teacher changed during the distillation",
                        answer.model_version,
                        teachers.identity.version
                    );
                }
                if answer.queries.len() != request.queries.len() {
                    bail!(
                        "teacher {url} scored {} queries of {}",
                        answer.queries.len(),
                        request.queries.len()
                    );
                }
                let mut scores = Vec::with_capacity(answer.queries.len());
                for (asked, got) in request.queries.iter().zip(answer.queries) {
                    if got.query_index != asked.query_index || got.scores.len() != asked.items.len()
                    {
                        bail!(
                            "teacher {url} answered query {} with {} scores for query {} with {} items",
                            got.query_index,
                            got.scores.len(),
                            asked.query_index,
                            asked.items.len()
                        );
                    }
                    scores.push(got.scores);
                }
                return Ok((scores, failures));
            }
            Err(e) => {
                let overloaded = e
                    .downcast_ref::<tonic::Status>()
                    .is_some_and(|s| s.code() == tonic::Code::ResourceExhausted);
                failures += 1;
                if !(is_transient(&e) || overloaded) || failures > max_retries {
                    return Err(e.context(format!(
                        "ScoreItems from {url}: giving up after {failures} attempts"
                    )));
                }
                tracing::warn!(url, attempt = failures, error = %e, "ScoreItems failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl TeacherScores for RemoteScores {
    fn scores(&mut self, items: &Tensor) -> anyhow::Result<Tensor> {
        let started = std::time::Instant::now();
        let (flat, m) = flat_items(items)?;
        let (hits_before, _) = self.cache.counts();
        let missing = self.cache.missing(&flat, m);
        let requests: Vec<ScoreItemsRequest> = missing
            .chunks(QUERIES_PER_CALL)
            .map(|chunk| ScoreItemsRequest {
                queries: chunk
                    .iter()
                    .map(|(q, items)| QueryItems {
                        query_index: *q as u64,
                        items: items.clone(),
                    })
                    .collect(),
                target_length: self.window.target_length as u32,
                expected_data_fingerprint: self.teachers.identity.data_fingerprint.clone(),
                query_length: self.window.sequence_length as u32,
                query_set: training_query_set(self.window.query_set) as i32,
            })
            .collect();
        let endpoints = self.teachers.endpoints.clone();
        let in_flight = (endpoints.len() * CALLS_PER_ENDPOINT).max(1);
        let teachers = &self.teachers;
        let max_retries = self.max_retries;
        let answers = teachers.runtime.block_on(async {
            use futures::StreamExt;
            futures::stream::iter(requests.into_iter().enumerate().map(|(i, request)| {
                let url = endpoints[i % endpoints.len()].clone();
                async move {
                    let answer = score_call(teachers, &url, request.clone(), max_retries).await?;
                    Ok::<_, anyhow::Error>((request, answer))
                }
            }))
            .buffer_unordered(in_flight)
            .collect::<Vec<_>>()
            .await
        });
        let mut report = self.report.lock().unwrap_or_else(|p| p.into_inner());
        for answer in answers {
            let (request, (scores, failures)) = answer?;
            report.calls += 1;
            report.retries += failures as u64;
            for (asked, scores) in request.queries.into_iter().zip(scores) {
                report.scored_pairs += asked.items.len() as u64;
                self.cache.insert(
                    asked.query_index as usize,
                    asked.items.into_iter().zip(scores),
                );
            }
        }
        let (hits_after, _) = self.cache.counts();
        report.cache_hits += hits_after - hits_before;
        report.seconds += started.elapsed().as_secs_f64();
        self.cache.lookup(&flat, m)
    }
}
