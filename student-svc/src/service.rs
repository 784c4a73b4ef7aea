//! The `StudentService` handlers: thin. Validate, convert the proto into a domain request,
//! take the version serving now (an `Arc`: a reload mid-request does not affect it), score on
//! the dedicated pool, map errors to a status in one place. The serving layer gives every
//! call its span, metrics and deadline (`grpc-timeout`): when it passes, the answer is
//! DEADLINE_EXCEEDED and queued work is dropped unscored (the batcher reads the deadline too).

use std::sync::Arc;
use std::time::Instant;

use rankdistill_core::topk::top_k;
use rankdistill_proto::v1::student_service_server::StudentService;
use rankdistill_proto::v1::{
    Fidelity, ModelInfo, RecommendBatchRequest, RecommendBatchResponse, RecommendRequest,
    RecommendResponse, ReloadRequest, ReloadResponse, ScoredItem, SearchIndex, StudentInfo,
    StudentInfoRequest,
};
use rankdistill_serving::deadline::Deadline;
use tonic::{Request, Response, Status};

use crate::batcher::Batcher;
use crate::catalog::Resolved;
use crate::engine::Scorer;
use crate::error::ServiceError;
use crate::reload::Reloader;
use crate::request::{RecommendBatch, RecommendQuery, in_batch};
use crate::served::Served;
use crate::shadow::{FIDELITY_K, ShadowJob, ShadowQueue};
use crate::version_stats::FidelitySnapshot;

pub use crate::request::ServiceLimits;

/// The gRPC service. Single queries go through the dynamic batcher; RecommendBatch is one
/// job on the scoring pool. Recommend answers are timed per version, and offered to the
/// shadow queue when shadowing is on.
#[derive(Debug, Clone)]
pub struct StudentApi {
    reloader: Arc<Reloader>,
    scorer: Scorer,
    batcher: Batcher,
    limits: ServiceLimits,
    shadow: Option<ShadowQueue>,
}

type Ranking = Vec<(u32, f32)>;

impl StudentApi {
    /// The service over a reloader (which holds the served version) and a scoring pool.
    pub fn new(
        reloader: Arc<Reloader>,
        scorer: Scorer,
        batcher: Batcher,
        limits: ServiceLimits,
    ) -> StudentApi {
        StudentApi {
            reloader,
            scorer,
            batcher,
            limits,
            shadow: None,
        }
    }

    /// Offers a sample of the Recommend answers to `shadow` (live fidelity).
    pub fn with_shadow(mut self, shadow: ShadowQueue) -> StudentApi {
        self.shadow = Some(shadow);
        self
    }

    fn served(&self) -> Result<Arc<Served>, ServiceError> {
        self.reloader.slot.load_full().ok_or(ServiceError::NotReady)
    }

    /// Scores resolved requests together: model queries share one pass over the item table;
    /// fallback ones read the popularity order.
    async fn score(
        &self,
        served: Arc<Served>,
        requests: Vec<(usize, Resolved)>,
    ) -> Result<Vec<Ranking>, ServiceError> {
        self.scorer
            .run(move || {
                let model_rows: Vec<usize> = (0..requests.len())
                    .filter(|&i| !requests[i].1.fallback)
                    .collect();
                let k_max = model_rows.iter().map(|&i| requests[i].0).max().unwrap_or(0);
                let queries: Vec<_> = model_rows
                    .iter()
                    .map(|&i| requests[i].1.query.clone())
                    .collect();
                let excludes: Vec<Vec<u32>> = model_rows
                    .iter()
                    .map(|&i| requests[i].1.exclude.clone())
                    .collect();
                let mut scored = served
                    .model
                    .top_k_batch(&queries, k_max, &excludes)
                    .into_iter();
                requests
                    .iter()
                    .map(|(k, r)| {
                        let mut ranking = if r.fallback {
                            top_k(served.catalog.popularity(), *k, |i| {
                                r.exclude.binary_search(&i).is_ok()
                            })
                        } else {
                            scored.next().unwrap_or_default()
                        };
                        ranking.truncate(*k);
                        ranking
                    })
                    .collect()
            })
            .await
    }

    fn response(served: &Served, ranking: Ranking, fallback: bool) -> RecommendResponse {
        RecommendResponse {
            items: ranking
                .into_iter()
                .map(|(item, score)| ScoredItem {
                    item_id: served.catalog.item_id(item).to_string(),
                    score,
                })
                .collect(),
            model_version: served.summary.version.clone(),
            fallback,
        }
    }

    async fn recommend_inner(
        &self,
        request: RecommendRequest,
        deadline: Option<Instant>,
    ) -> Result<RecommendResponse, ServiceError> {
        let started = Instant::now();
        let RecommendQuery { k, spec } = RecommendQuery::try_from((request, &self.limits))?;
        let served = self.served()?;
        let resolved = served.catalog.resolve(&spec)?;
        let fallback = resolved.fallback;
        let known_user = resolved.query.user.is_some();
        let ranking = if fallback {
            self.score(served.clone(), vec![(k, resolved)])
                .await?
                .pop()
                .unwrap_or_default()
        } else {
            self.batcher
                .top_k(
                    served.clone(),
                    k,
                    resolved.query,
                    resolved.exclude,
                    deadline,
                )
                .await?
        };
        let response = Self::response(&served, ranking, fallback);
        served.stats.latency.observe(started.elapsed());
        if let Some(shadow) = &self.shadow
            && known_user
            && !fallback
            && response.items.len() >= FIDELITY_K
        {
            shadow.offer(&served.stats, || ShadowJob {
                spec,
                student: response.items.iter().map(|i| i.item_id.clone()).collect(),
            });
        }
        Ok(response)
    }

    async fn recommend_batch_inner(
        &self,
        request: RecommendBatchRequest,
    ) -> Result<RecommendBatchResponse, ServiceError> {
        let batch = RecommendBatch::try_from((request, &self.limits))?;
        let served = self.served()?;
        let resolved = batch
            .queries
            .into_iter()
            .enumerate()
            .map(|(index, q)| {
                let resolved = served.catalog.resolve(&q.spec);
                resolved.map(|r| (q.k, r)).map_err(|e| in_batch(index, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fallbacks: Vec<bool> = resolved.iter().map(|(_, r)| r.fallback).collect();
        let rankings = self.score(served.clone(), resolved).await?;
        Ok(RecommendBatchResponse {
            responses: rankings
                .into_iter()
                .zip(fallbacks)
                .map(|(ranking, fallback)| Self::response(&served, ranking, fallback))
                .collect(),
            model_version: served.summary.version.clone(),
        })
    }

    fn info_inner(&self) -> Result<StudentInfo, ServiceError> {
        let served = self.served()?;
        let s = &served.summary;
        Ok(StudentInfo {
            model: Some(ModelInfo {
                model_kind: s.kind.to_string(),
                dim: s.dim as u32,
                num_items: s.num_items as u32,
                num_users: s.num_users as u32,
                sequence_length: s.sequence_length as u32,
                version: s.version.clone(),
                data_fingerprint: s.data_fingerprint.clone(),
                num_parameters: s.num_parameters,
                device: "cpu".into(),
            }),
            loaded_at_unix_ms: served.loaded_at_unix_ms(),
            artifact_path: self.reloader.dir().display().to_string(),
            reloads: self.reloader.reloads(),
            kernel: served.model.kernel().name().to_string(),
            teacher_json: s.teacher_json.clone(),
            fidelity: self
                .shadow
                .as_ref()
                .map(|_| Fidelity::from(served.stats.fidelity())),
            rejected_versions: self.reloader.rejected_versions(),
            index: Some(self.search_index(&served)),
        })
    }

    fn search_index(&self, served: &Served) -> SearchIndex {
        let scan = served.model.scan().name().to_string();
        match served.model.index_report() {
            Some(r) => SearchIndex {
                kind: "ivf-flat".into(),
                scan,
                lists: r.lists as u32,
                probes: r.probes as u32,
                recall_at_10: r.recall_at_10,
                tuning_queries: r.tuning_queries as u32,
                scanned_fraction: r.scanned_fraction,
                build_seconds: r.build_seconds,
            },
            None => SearchIndex {
                kind: if self.reloader.index_pending() {
                    "building"
                } else {
                    "exact"
                }
                .into(),
                scan,
                ..SearchIndex::default()
            },
        }
    }
}

/// `Info`'s view of a version's live fidelity.
impl From<FidelitySnapshot> for Fidelity {
    fn from(f: FidelitySnapshot) -> Fidelity {
        Fidelity {
            queries: f.summary.queries,
            overlap_at_10: f.summary.overlap,
            ndcg_at_10: f.summary.ndcg,
            rank_correlation: f.summary.rank_correlation,
            shadow_ok: f.ok,
            shadow_dropped: f.dropped,
            shadow_failed: f.failed,
        }
    }
}

#[tonic::async_trait]
impl StudentService for StudentApi {
    async fn recommend(
        &self,
        request: Request<RecommendRequest>,
    ) -> Result<Response<RecommendResponse>, Status> {
        let deadline = Deadline::of(&request);
        let answer = self.recommend_inner(request.into_inner(), deadline).await?;
        Ok(Response::new(answer))
    }

    async fn recommend_batch(
        &self,
        request: Request<RecommendBatchRequest>,
    ) -> Result<Response<RecommendBatchResponse>, Status> {
        let answer = self.recommend_batch_inner(request.into_inner()).await?;
        Ok(Response::new(answer))
    }

    async fn info(
        &self,
        _request: Request<StudentInfoRequest>,
    ) -> Result<Response<StudentInfo>, Status> {
        Ok(Response::new(self.info_inner()?))
    }

    async fn reload(
        &self,
        _request: Request<ReloadRequest>,
    ) -> Result<Response<ReloadResponse>, Status> {
        self.served()?;
        let outcome = self.reloader.reload_if_changed("rpc").await?;
        Ok(Response::new(ReloadResponse {
            changed: outcome.changed,
            model_version: outcome.version,
            previous_version: outcome.previous,
        }))
    }
}
