//! The teacher's scores of items it did not list: what RCE-KD reads for the items the student
//! picks. A [`TeacherScores`] answers for whole epochs of queries; [`ScoreCache`] remembers
//! every score already known (the streamed lists' scores, earlier answers), so only new
//! (query, item) pairs reach the teacher.

use tch::Tensor;

use super::TeacherLists;

/// The teacher's scores of given items of every training query.
pub trait TeacherScores {
    /// Scores of `items` [N, M] (row q: training query q), [N, M] f32 on the CPU.
    fn scores(&mut self, items: &Tensor) -> anyhow::Result<Tensor>;
}

/// Known teacher scores per query, each query's (item, score) pairs sorted by item.
#[derive(Debug, Clone, Default)]
pub struct ScoreCache {
    per_query: Vec<Vec<(u32, f32)>>,
    hits: u64,
    misses: u64,
}

impl ScoreCache {
    /// An empty cache for `queries` queries.
    pub fn new(queries: usize) -> ScoreCache {
        ScoreCache {
            per_query: vec![Vec::new(); queries],
            hits: 0,
            misses: 0,
        }
    }

    /// A cache holding the scores of the teacher's own lists.
    pub fn from_lists(lists: &TeacherLists) -> ScoreCache {
        let rows = lists.rows() as usize;
        let k = lists.k() as usize;
        let items: Vec<i64> =
            Vec::try_from(lists.items.contiguous().view([-1])).unwrap_or_default();
        let scores: Vec<f32> =
            Vec::try_from(lists.scores.contiguous().view([-1])).unwrap_or_default();
        let mut cache = ScoreCache::new(rows);
        for q in 0..rows.min(items.len() / k.max(1)) {
            let pairs = (q * k..(q + 1) * k).map(|i| (items[i] as u32, scores[i]));
            cache.insert(q, pairs);
        }
        cache
    }

    /// Number of queries.
    pub fn queries(&self) -> usize {
        self.per_query.len()
    }

    /// The known score of `item` for query `q`.
    pub fn get(&self, q: usize, item: u32) -> Option<f32> {
        let row = self.per_query.get(q)?;
        row.binary_search_by_key(&item, |&(i, _)| i)
            .ok()
            .map(|at| row[at].1)
    }

    /// Remembers scores of query `q`.
    pub fn insert(&mut self, q: usize, pairs: impl IntoIterator<Item = (u32, f32)>) {
        let Some(row) = self.per_query.get_mut(q) else {
            return;
        };
        row.extend(pairs);
        row.sort_unstable_by_key(|&(i, _)| i);
        row.dedup_by_key(|&mut (i, _)| i);
    }

    /// The items of each row of `items` [N, M] whose score is not known yet, deduplicated:
    /// (query, items) for the rows that have any. Counts hits and misses.
    pub fn missing(&mut self, items: &[i64], m: usize) -> Vec<(usize, Vec<u32>)> {
        let mut out = Vec::new();
        for (q, row) in items.chunks(m.max(1)).enumerate() {
            let mut wanted: Vec<u32> = Vec::new();
            for &item in row {
                if self.get(q, item as u32).is_some() {
                    self.hits += 1;
                } else {
                    self.misses += 1;
                    wanted.push(item as u32);
                }
            }
            wanted.sort_unstable();
            wanted.dedup();
            if !wanted.is_empty() {
                out.push((q, wanted));
            }
        }
        out
    }

    /// The scores of `items` [N, M] (row-major, row q for query q), all of which must be
    /// known; [N, M] f32.
    pub fn lookup(&self, items: &[i64], m: usize) -> anyhow::Result<Tensor> {
        let mut out = Vec::with_capacity(items.len());
        for (q, row) in items.chunks(m.max(1)).enumerate() {
            for &item in row {
                out.push(self.get(q, item as u32).ok_or_else(|| {
                    anyhow::anyhow!("the teacher's score of item {item} for query {q} is missing")
                })?);
            }
        }
        Ok(Tensor::from_slice(&out).view([(items.len() / m.max(1)) as i64, m as i64]))
    }

    /// (hits, misses) of [`ScoreCache::missing`] so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// Flattens [N, M] items for the cache.
pub fn flat_items(items: &Tensor) -> anyhow::Result<(Vec<i64>, usize)> {
    let m = items.size().get(1).copied().unwrap_or(0) as usize;
    let flat: Vec<i64> = Vec::try_from(items.contiguous().view([-1]))?;
    Ok((flat, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_starts_from_the_lists_and_asks_only_for_new_pairs() {
        let lists = TeacherLists {
            items: Tensor::from_slice(&[4i64, 2, 9, 1]).view([2, 2]),
            scores: Tensor::from_slice(&[3.0f32, 2.0, 5.0, 4.0]).view([2, 2]),
        };
        let mut cache = ScoreCache::from_lists(&lists);
        assert_eq!(cache.get(0, 2), Some(2.0));
        assert_eq!(cache.get(1, 2), None);
        let wanted = [2i64, 7, 7, 1, 9, 3];
        let missing = cache.missing(&wanted, 3);
        assert_eq!(missing, vec![(0, vec![7]), (1, vec![3])]);
        assert_eq!(cache.counts(), (3, 3));
        assert!(cache.lookup(&wanted, 3).is_err());
        cache.insert(0, [(7, -1.0)]);
        cache.insert(1, [(3, 0.5)]);
        let scores: Vec<f32> = Vec::try_from(cache.lookup(&wanted, 3).unwrap().view([-1])).unwrap();
        assert_eq!(scores, vec![2.0, -1.0, -1.0, 4.0, 5.0, 0.5]);
    }
}
