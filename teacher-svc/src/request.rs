//! Proto requests converted to domain requests at the edge, with `TryFrom`: every check that
//! needs only the request and the server's limits happens here, so handlers convert, call
//! and map the error. Checks that need the loaded dataset (fingerprint, ids, cursor) stay
//! with the dataset.

use rankdistill_core::instances::QuerySet;
use rankdistill_proto::v1::{
    Query, RankRequest, ScoreItemsRequest, StreamRankingsRequest, TrainingQuerySet,
};

use crate::catalog::{MAX_QUERY_LENGTH, MAX_TARGET_LENGTH, TrainingShape};
use crate::error::ServiceError;
use crate::limits::{ServiceLimits, ranking_batch_bound};

/// A query as the caller names it: raw ids, not yet resolved against the dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryIds {
    /// Raw user id.
    pub user_id: String,
    /// Raw ids of the user's recent items, oldest first; empty means the training history.
    pub recent_items: Vec<String>,
}

impl From<Query> for QueryIds {
    fn from(query: Query) -> QueryIds {
        QueryIds {
            user_id: query.user_id,
            recent_items: query.recent_items,
        }
    }
}

/// A `Rank` call: one query, its length k and what it must not return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankQuery {
    /// The query.
    pub query: QueryIds,
    /// Items to return, within the server's limit.
    pub k: usize,
    /// Raw ids of items never to return.
    pub exclude_items: Vec<String>,
    /// Whether the user's training items are excluded too.
    pub exclude_seen: bool,
}

impl TryFrom<(RankRequest, &ServiceLimits)> for RankQuery {
    type Error = ServiceError;

    fn try_from(
        (request, limits): (RankRequest, &ServiceLimits),
    ) -> Result<RankQuery, ServiceError> {
        let k = limits.check_k(request.k)?;
        let query = request
            .query
            .ok_or_else(|| ServiceError::InvalidArgument("query is required".into()))?;
        Ok(RankQuery {
            query: query.into(),
            k,
            exclude_items: request.exclude_items,
            exclude_seen: request.exclude_seen,
        })
    }
}

/// The training queries a request names: its `target_length` (0 means 1), `query_length` (0
/// means the model's L) and `query_set`, checked.
fn training_shape(
    target_length: u32,
    query_length: u32,
    query_set: i32,
) -> Result<TrainingShape, ServiceError> {
    let target_length = target_length.max(1) as usize;
    if target_length > MAX_TARGET_LENGTH {
        return Err(ServiceError::InvalidArgument(format!(
            "target_length {target_length} is above {MAX_TARGET_LENGTH}"
        )));
    }
    if query_length as usize > MAX_QUERY_LENGTH {
        return Err(ServiceError::InvalidArgument(format!(
            "query_length {query_length} is above {MAX_QUERY_LENGTH}"
        )));
    }
    let set = match TrainingQuerySet::try_from(query_set) {
        Ok(TrainingQuerySet::Windows) => QuerySet::Windows,
        Ok(TrainingQuerySet::Positions) => QuerySet::Positions,
        Err(_) => {
            return Err(ServiceError::InvalidArgument(format!(
                "query_set {query_set} is not a TrainingQuerySet: use 0 (windows) or 1 (positions)"
            )));
        }
    };
    if set == QuerySet::Positions && target_length != 1 {
        return Err(ServiceError::InvalidArgument(format!(
            "positions have one target each: target_length must be 0 or 1, not {target_length}"
        )));
    }
    Ok(TrainingShape {
        set,
        query_length: (query_length > 0).then_some(query_length as usize),
        target_length,
    })
}

/// The queries a stream ranks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySpec {
    /// The dataset's training queries of a shape (T within 1..=MAX_TARGET_LENGTH).
    Training(TrainingShape),
    /// A caller's list, in order.
    Explicit(Vec<QueryIds>),
}

/// A `StreamRankings` call: which queries, how they are ranked, sharded and batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// The queries.
    pub queries: QuerySpec,
    /// Length of each ranking, within the server's limit.
    pub k: usize,
    /// Queries per message: the request's, or the server default for 0.
    pub batch_size: usize,
    /// This caller's shard, below `shard_count`.
    pub shard_index: u64,
    /// Number of shards (at least 1).
    pub shard_count: u64,
    /// The query index to start from.
    pub cursor: u64,
    /// The dataset fingerprint the caller expects, when it gave one.
    pub expected_data_fingerprint: Option<String>,
    /// Whether each user's training items are excluded too.
    pub exclude_seen: bool,
}

impl TryFrom<(StreamRankingsRequest, &ServiceLimits)> for StreamPlan {
    type Error = ServiceError;

    fn try_from(
        (request, limits): (StreamRankingsRequest, &ServiceLimits),
    ) -> Result<StreamPlan, ServiceError> {
        let k = limits.check_k(request.k)?;
        let shard_count = request.shard_count.max(1);
        if request.shard_index >= shard_count {
            return Err(ServiceError::InvalidShard {
                index: request.shard_index,
                count: shard_count,
            });
        }
        let batch_size = match request.batch_size {
            0 => limits.default_stream_batch,
            b if b > limits.max_stream_batch => {
                return Err(ServiceError::InvalidArgument(format!(
                    "batch_size {b} is above the server's limit {}",
                    limits.max_stream_batch
                )));
            }
            b => b,
        } as usize;
        if ranking_batch_bound(batch_size, k) > limits.max_message_bytes {
            let fits = (limits.max_message_bytes.saturating_sub(22) / (25 + 9 * k)).max(1);
            return Err(ServiceError::InvalidArgument(format!(
                "batch_size {batch_size} with k {k} can encode to {} bytes, above the message limit of {} bytes (--max-message-bytes): ask for batch_size {fits} or less",
                ranking_batch_bound(batch_size, k),
                limits.max_message_bytes
            )));
        }
        let queries = match request.explicit {
            Some(list) => {
                QuerySpec::Explicit(list.queries.into_iter().map(QueryIds::from).collect())
            }
            None => QuerySpec::Training(training_shape(
                request.target_length,
                request.query_length,
                request.query_set,
            )?),
        };
        Ok(StreamPlan {
            queries,
            k,
            batch_size,
            shard_index: u64::from(request.shard_index),
            shard_count: u64::from(shard_count),
            cursor: request.cursor,
            expected_data_fingerprint: Some(request.expected_data_fingerprint)
                .filter(|fingerprint| !fingerprint.is_empty()),
            exclude_seen: request.exclude_seen,
        })
    }
}

impl StreamPlan {
    /// Refuses the plan when the caller expects another dataset than `served`.
    pub fn check_fingerprint(&self, served: &str) -> Result<(), ServiceError> {
        check_fingerprint(self.expected_data_fingerprint.as_deref(), served)
    }
}

/// Refuses a request that expects data other than the served fingerprint.
fn check_fingerprint(expected: Option<&str>, served: &str) -> Result<(), ServiceError> {
    match expected {
        Some(expected) if expected != served => Err(ServiceError::FingerprintMismatch {
            expected: expected.to_string(),
            actual: served.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A `ScoreItems` call: training queries by index, and the dense items to score for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScorePlan {
    /// The training queries (those of StreamRankings).
    pub shape: TrainingShape,
    /// (query index, items) in request order.
    pub queries: Vec<(u64, Vec<u32>)>,
    /// The dataset fingerprint the caller expects, when it gave one.
    pub expected_data_fingerprint: Option<String>,
}

impl TryFrom<(ScoreItemsRequest, &ServiceLimits)> for ScorePlan {
    type Error = ServiceError;

    fn try_from(
        (request, limits): (ScoreItemsRequest, &ServiceLimits),
    ) -> Result<ScorePlan, ServiceError> {
        if request.queries.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "queries is empty: give at least one query with items to score".into(),
            ));
        }
        if request.queries.len() > limits.max_score_queries {
            return Err(ServiceError::InvalidArgument(format!(
                "{} queries in one ScoreItems call, above the server's limit {} (--max-score-queries): split the call",
                request.queries.len(),
                limits.max_score_queries
            )));
        }
        let shape = training_shape(
            request.target_length,
            request.query_length,
            request.query_set,
        )?;
        let queries = request
            .queries
            .into_iter()
            .enumerate()
            .map(|(index, query)| {
                if query.items.is_empty() {
                    return Err(ServiceError::InvalidArgument(format!(
                        "queries[{index}] (query_index {}) has no items to score",
                        query.query_index
                    )));
                }
                Ok((query.query_index, query.items))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ScorePlan {
            shape,
            queries,
            expected_data_fingerprint: Some(request.expected_data_fingerprint)
                .filter(|f| !f.is_empty()),
        })
    }
}

impl ScorePlan {
    /// Refuses the call when the caller expects another dataset.
    pub fn check_fingerprint(&self, served: &str) -> Result<(), ServiceError> {
        check_fingerprint(self.expected_data_fingerprint.as_deref(), served)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_proto::v1::QueryList;
    use rankdistill_serving::k_limit::InvalidK;

    const LIMITS: ServiceLimits = ServiceLimits {
        max_k: 100,
        default_stream_batch: 16,
        max_stream_batch: 64,
        stream_buffer: 2,
        max_streams: 2,
        max_message_bytes: 4 << 20,
        max_score_queries: 8,
    };

    fn query(user: &str) -> Query {
        Query {
            user_id: user.into(),
            recent_items: vec!["i".into()],
        }
    }

    #[test]
    fn a_rank_request_checks_k_then_the_query() {
        let request = RankRequest {
            query: Some(query("u")),
            k: 5,
            exclude_items: vec!["x".into()],
            exclude_seen: true,
        };
        let rank = RankQuery::try_from((request.clone(), &LIMITS)).unwrap();
        assert_eq!(rank.k, 5);
        assert_eq!(rank.query.user_id, "u");
        assert_eq!(rank.exclude_items, vec!["x".to_string()]);
        for k in [0, -1, 101] {
            let bad = RankRequest {
                k,
                query: None,
                ..request.clone()
            };
            assert_eq!(
                RankQuery::try_from((bad, &LIMITS)).unwrap_err(),
                ServiceError::InvalidK(InvalidK {
                    k: k as i64,
                    max: 100
                })
            );
        }
        let no_query = RankRequest {
            query: None,
            ..request
        };
        assert!(matches!(
            RankQuery::try_from((no_query, &LIMITS)).unwrap_err(),
            ServiceError::InvalidArgument(m) if m == "query is required"
        ));
    }

    #[test]
    fn a_stream_request_becomes_a_plan_with_defaults_filled_in() {
        let request = StreamRankingsRequest {
            k: 10,
            ..Default::default()
        };
        let plan = StreamPlan::try_from((request.clone(), &LIMITS)).unwrap();
        assert_eq!(plan.queries, QuerySpec::Training(TrainingShape::windows(1)));
        assert_eq!(
            (plan.batch_size, plan.shard_index, plan.shard_count),
            (16, 0, 1)
        );
        assert_eq!(plan.expected_data_fingerprint, None);
        assert!(plan.check_fingerprint("anything").is_ok());
        let explicit = StreamRankingsRequest {
            explicit: Some(QueryList {
                queries: vec![query("a"), query("b")],
            }),
            expected_data_fingerprint: "f1".into(),
            batch_size: 3,
            ..request.clone()
        };
        let plan = StreamPlan::try_from((explicit, &LIMITS)).unwrap();
        let QuerySpec::Explicit(queries) = &plan.queries else {
            panic!("explicit queries expected, got {:?}", plan.queries);
        };
        assert_eq!(queries.len(), 2);
        assert_eq!(plan.batch_size, 3);
        assert!(plan.check_fingerprint("f1").is_ok());
        assert_eq!(
            plan.check_fingerprint("f2").unwrap_err(),
            ServiceError::FingerprintMismatch {
                expected: "f1".into(),
                actual: "f2".into()
            }
        );
    }

    #[test]
    fn bad_stream_requests_are_refused_precisely() {
        let ok = StreamRankingsRequest {
            k: 10,
            ..Default::default()
        };
        let refused =
            |request: StreamRankingsRequest| StreamPlan::try_from((request, &LIMITS)).unwrap_err();
        assert_eq!(
            refused(StreamRankingsRequest { k: 0, ..ok.clone() }),
            ServiceError::InvalidK(InvalidK { k: 0, max: 100 })
        );
        assert_eq!(
            refused(StreamRankingsRequest {
                shard_index: 3,
                shard_count: 3,
                ..ok.clone()
            }),
            ServiceError::InvalidShard { index: 3, count: 3 }
        );
        for request in [
            StreamRankingsRequest {
                batch_size: 65,
                ..ok.clone()
            },
            StreamRankingsRequest {
                target_length: 257,
                ..ok.clone()
            },
        ] {
            assert!(matches!(refused(request), ServiceError::InvalidArgument(_)));
        }
        let small = ServiceLimits {
            max_message_bytes: 1000,
            ..LIMITS
        };
        let err = StreamPlan::try_from((ok, &small)).unwrap_err().to_string();
        assert!(err.contains("ask for batch_size 8 or less"), "{err}");
    }
}
