//! The request limits a server is configured with, and the message-size bound a stream's
//! batch size and k are checked against.

use crate::error::ServiceError;

/// Request limits from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// Largest k.
    pub max_k: u32,
    /// Stream batch size when the request says 0.
    pub default_stream_batch: u32,
    /// Largest stream batch size.
    pub max_stream_batch: u32,
    /// Messages buffered per stream.
    pub stream_buffer: usize,
    /// Concurrent streams.
    pub max_streams: usize,
    /// Largest encoded message (`--max-message-bytes`).
    pub max_message_bytes: usize,
    /// Most queries in one ScoreItems call.
    pub max_score_queries: usize,
}

impl ServiceLimits {
    /// A requested k as a length, refused unless it is within 1..=`max_k`.
    pub fn check_k(&self, k: i32) -> Result<usize, ServiceError> {
        Ok(rankdistill_serving::k_limit::check_k(k, self.max_k)?)
    }
}

/// An upper bound on the encoded size of a `RankingBatch` of `batch` rankings of `k` items:
/// per ranking a tag and length (4 bytes), the query index (11), two packed fields with
/// their tags and lengths (10), varint items (at most 5 bytes each) and f32 scores (4 each);
/// plus the batch's own cursor and total (22).
pub fn ranking_batch_bound(batch: usize, k: usize) -> usize {
    batch.saturating_mul(25 + 9 * k).saturating_add(22)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_proto::v1::{QueryRanking, RankingBatch};

    /// The bound covers the largest encoding: the largest query indices, item indices and
    /// cursors.
    #[test]
    fn the_batch_bound_covers_the_worst_encoding() {
        use prost::Message;
        for (batch, k) in [(1usize, 1usize), (7, 10), (256, 50), (3, 1000)] {
            let worst = RankingBatch {
                rankings: (0..batch)
                    .map(|_| QueryRanking {
                        query_index: u64::MAX,
                        items: vec![u32::MAX; k],
                        scores: vec![f32::MAX; k],
                    })
                    .collect(),
                next_cursor: u64::MAX,
                total_queries: u64::MAX,
            };
            assert!(
                worst.encoded_len() <= ranking_batch_bound(batch, k),
                "{batch} x {k}"
            );
        }
    }
}
