//! Proto-to-domain conversion at the gRPC edge: a `RecommendRequest` becomes a
//! [`RecommendQuery`] (a checked k and a [`RecommendSpec`]), a `RecommendBatchRequest` a
//! [`RecommendBatch`], both with `TryFrom` against the server's [`ServiceLimits`]. Every
//! shape error of a request is found here, with the status and message the API documents;
//! what needs a model version (unknown ids, users) is found when the catalog resolves it.

use rankdistill_proto::v1::{RecommendBatchRequest, RecommendRequest};

use crate::catalog::RecommendSpec;
use crate::error::ServiceError;

/// Request limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// Largest k.
    pub max_k: u32,
    /// Largest RecommendBatch.
    pub max_batch: u32,
}

impl ServiceLimits {
    /// `k` when it is within `1..=max_k`.
    fn check_k(&self, k: i32) -> Result<usize, ServiceError> {
        Ok(rankdistill_serving::k_limit::check_k(k, self.max_k)?)
    }
}

/// One Recommend request in domain form: how many items, and for what query.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendQuery {
    /// Items to answer, within `1..=max_k`.
    pub k: usize,
    /// The query in raw ids, with its exclusions.
    pub spec: RecommendSpec,
}

impl TryFrom<(RecommendRequest, &ServiceLimits)> for RecommendQuery {
    type Error = ServiceError;

    /// Checks k against the limits (first), then that a query is given.
    fn try_from(
        (request, limits): (RecommendRequest, &ServiceLimits),
    ) -> Result<Self, Self::Error> {
        let k = limits.check_k(request.k)?;
        let query = request.query.ok_or_else(|| {
            ServiceError::InvalidArgument("query is required (user_id and/or recent_items)".into())
        })?;
        Ok(RecommendQuery {
            k,
            spec: RecommendSpec {
                user_id: query.user_id,
                recent_items: query.recent_items,
                exclude_items: request.exclude_items,
                exclude_seen: request.exclude_seen.unwrap_or(true),
            },
        })
    }
}

/// A RecommendBatch request in domain form: `1..=max_batch` queries, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendBatch {
    /// The requests, each converted as a single one.
    pub queries: Vec<RecommendQuery>,
}

impl TryFrom<(RecommendBatchRequest, &ServiceLimits)> for RecommendBatch {
    type Error = ServiceError;

    /// Checks the batch size, then converts each request; the first that fails is answered
    /// with its index (`requests[i]: ...`) and its own status.
    fn try_from(
        (request, limits): (RecommendBatchRequest, &ServiceLimits),
    ) -> Result<Self, Self::Error> {
        let n = request.requests.len();
        if n == 0 || n > limits.max_batch as usize {
            return Err(ServiceError::InvalidArgument(format!(
                "requests must hold 1..={} requests (the server's --max-batch), got {n}",
                limits.max_batch
            )));
        }
        let queries = request
            .requests
            .into_iter()
            .enumerate()
            .map(|(index, r)| RecommendQuery::try_from((r, limits)).map_err(|e| in_batch(index, e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RecommendBatch { queries })
    }
}

/// `error` of the request at `index` of a batch.
pub fn in_batch(index: usize, error: ServiceError) -> ServiceError {
    ServiceError::InBatch {
        index,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_proto::v1::Query;
    use tonic::Code;

    const LIMITS: ServiceLimits = ServiceLimits {
        max_k: 50,
        max_batch: 4,
    };

    fn request(k: i32, query: Option<Query>) -> RecommendRequest {
        RecommendRequest {
            k,
            query,
            exclude_items: vec!["x".into()],
            ..Default::default()
        }
    }

    fn alice() -> Option<Query> {
        Some(Query {
            user_id: "alice".into(),
            recent_items: vec!["a".into(), "b".into()],
        })
    }

    #[test]
    fn a_request_becomes_a_query_with_exclude_seen_on_by_default() {
        let q = RecommendQuery::try_from((request(10, alice()), &LIMITS)).unwrap();
        assert_eq!(q.k, 10);
        assert_eq!(
            q.spec,
            RecommendSpec {
                user_id: "alice".into(),
                recent_items: vec!["a".into(), "b".into()],
                exclude_items: vec!["x".into()],
                exclude_seen: true,
            }
        );
        let mut r = request(50, alice());
        r.exclude_seen = Some(false);
        assert!(
            !RecommendQuery::try_from((r, &LIMITS))
                .unwrap()
                .spec
                .exclude_seen
        );
    }

    #[test]
    fn k_is_checked_before_the_query() {
        for k in [0, -7, 51] {
            let e = RecommendQuery::try_from((request(k, None), &LIMITS)).unwrap_err();
            assert_eq!(e.code(), Code::InvalidArgument);
            assert!(e.to_string().contains("k must be between 1 and 50"), "{e}");
        }
        let e = RecommendQuery::try_from((request(5, None), &LIMITS)).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.to_string().contains("query is required"), "{e}");
    }

    #[test]
    fn a_batch_is_sized_then_converted_with_indices() {
        let batch =
            |requests| RecommendBatch::try_from((RecommendBatchRequest { requests }, &LIMITS));
        let e = batch(vec![]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "requests must hold 1..=4 requests (the server's --max-batch), got 0"
        );
        assert!(batch(vec![request(1, alice()); 5]).is_err());
        let e = batch(vec![
            request(1, alice()),
            request(1, alice()),
            request(-7, alice()),
        ])
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.to_string().starts_with("requests[2]: k must be"), "{e}");
        let ok = batch(vec![request(3, alice()), request(4, alice())]).unwrap();
        assert_eq!(
            ok.queries.iter().map(|q| q.k).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }
}
