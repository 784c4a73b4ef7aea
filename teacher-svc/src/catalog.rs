//! The served dataset, as request handlers need it: raw-id lookups, each user's training
//! history, and the training queries (windows of L inputs and T targets, or SASRec's
//! positions) per shape.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use rankdistill_core::id_map::IdMap;
use rankdistill_core::instances::{Instances, PAD, QuerySet, WindowConfig, last_window};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_serving::unknown_item::UnknownItem;

use crate::error::ServiceError;

/// Largest T a StreamRankings request may ask for.
pub const MAX_TARGET_LENGTH: usize = 256;
/// Largest query length L a request may ask for.
pub const MAX_QUERY_LENGTH: usize = rankdistill_core::artifact::MAX_SEQUENCE_LENGTH as usize;
/// Distinct query shapes whose training queries are kept in memory.
const CACHED_SHAPES: usize = 4;

/// The training queries for one shape, built once by the first caller that needs them.
type TrainingQueriesSlot = Arc<OnceLock<Arc<Instances>>>;

/// Which training queries a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainingShape {
    /// Windows or positions.
    pub set: QuerySet,
    /// The queries' L; `None`: the model's own.
    pub query_length: Option<usize>,
    /// Targets per query T (1 for positions).
    pub target_length: usize,
}

impl TrainingShape {
    /// The sliding windows of the model's L with `target_length` targets.
    pub fn windows(target_length: usize) -> TrainingShape {
        TrainingShape {
            set: QuerySet::Windows,
            query_length: None,
            target_length,
        }
    }
}

/// One query resolved to dense indices, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoringQuery {
    /// Dense user index.
    pub user: u32,
    /// L input ids (0 = padding, item i = i + 1), oldest first.
    pub inputs: Vec<u32>,
    /// Dense items never to return.
    pub exclude: Vec<u32>,
}

/// The prepared dataset in lookup form.
#[derive(Debug)]
pub struct Catalog {
    fingerprint: String,
    sequence_length: usize,
    users: IdMap,
    items: IdMap,
    train: Vec<Vec<u32>>,
    seen: Vec<Vec<u32>>,
    training_queries: Mutex<Vec<(WindowConfig, TrainingQueriesSlot)>>,
}

impl Catalog {
    /// Builds the lookups for a model reading `sequence_length` items.
    pub fn new(dataset: PreparedDataset, sequence_length: usize) -> Catalog {
        let split = dataset.split;
        let seen = split.seen_sets();
        Catalog {
            fingerprint: dataset.manifest.fingerprint,
            sequence_length,
            users: IdMap::new(split.users),
            items: IdMap::new(split.items),
            train: split.train,
            seen,
            training_queries: Mutex::new(Vec::new()),
        }
    }

    /// Content fingerprint of the dataset.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Number of users.
    pub fn num_users(&self) -> usize {
        self.users.len()
    }

    /// Number of items.
    pub fn num_items(&self) -> usize {
        self.items.len()
    }

    /// Input length L.
    pub fn sequence_length(&self) -> usize {
        self.sequence_length
    }

    /// Dense index of a raw user id.
    pub fn user(&self, raw: &str) -> Result<u32, ServiceError> {
        if raw.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "query.user_id is required".into(),
            ));
        }
        self.users
            .dense(raw)
            .ok_or_else(|| ServiceError::UnknownUser(raw.to_string()))
    }

    /// Dense index of a raw item id; `field` names the request field in the error.
    pub fn item(&self, raw: &str, field: &str) -> Result<u32, ServiceError> {
        self.items
            .dense(raw)
            .ok_or_else(|| UnknownItem::new(field, raw).into())
    }

    /// Raw id of a dense item.
    pub fn item_id(&self, dense: u32) -> &str {
        self.items.raw(dense)
    }

    /// The user's distinct training items, sorted.
    pub fn seen(&self, user: u32) -> &[u32] {
        self.seen
            .get(user as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Resolves a query: the last L of `recent_items` (every id must be known), or the user's
    /// last L training items when it is empty. `exclude_items` are raw ids; `exclude_seen`
    /// adds the user's training items.
    pub fn resolve(
        &self,
        user_id: &str,
        recent_items: &[String],
        exclude_items: &[String],
        exclude_seen: bool,
    ) -> Result<ScoringQuery, ServiceError> {
        let user = self.user(user_id)?;
        let l = self.sequence_length;
        let inputs = if recent_items.is_empty() {
            last_window(&self.train[user as usize], l)
        } else {
            let dense = recent_items
                .iter()
                .map(|raw| self.item(raw, "query.recent_items"))
                .collect::<Result<Vec<u32>, _>>()?;
            let tail = &dense[dense.len().saturating_sub(l)..];
            let mut inputs = vec![PAD; l - tail.len()];
            inputs.extend(tail.iter().map(|&i| i + 1));
            inputs
        };
        let mut exclude = exclude_items
            .iter()
            .map(|raw| self.item(raw, "exclude_items"))
            .collect::<Result<Vec<u32>, _>>()?;
        if exclude_seen {
            exclude.extend_from_slice(self.seen(user));
        }
        exclude.sort_unstable();
        exclude.dedup();
        Ok(ScoringQuery {
            user,
            inputs,
            exclude,
        })
    }

    /// The training queries of `shape`, in `Instances::of` order. Builds them on first
    /// use (CPU work: call from a blocking thread). The cache's lock is held only to find or
    /// add the shape's slot, never during the build: callers of other shapes go on, callers
    /// of the same shape wait for that one build.
    pub fn training_queries(&self, shape: TrainingShape) -> Arc<Instances> {
        let key = WindowConfig {
            sequence_length: shape.query_length.unwrap_or(self.sequence_length),
            target_length: shape.target_length,
            query_set: shape.set,
        };
        let slot = {
            let mut cache = self
                .training_queries
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match cache.iter().find(|(k, _)| *k == key) {
                Some((_, slot)) => slot.clone(),
                None => {
                    if cache.len() >= CACHED_SHAPES {
                        cache.remove(0);
                    }
                    let slot = TrainingQueriesSlot::default();
                    cache.push((key, slot.clone()));
                    slot
                }
            }
        };
        slot.get_or_init(|| Arc::new(Instances::of(&self.train, key)))
            .clone()
    }

    /// The model query of training instance `index`: its own targets are always excluded,
    /// `exclude_seen` adds the user's other training items.
    pub fn training_query(
        &self,
        instances: &Instances,
        index: usize,
        exclude_seen: bool,
    ) -> ScoringQuery {
        let user = instances.users[index];
        let mut exclude = instances.target(index).to_vec();
        if exclude_seen {
            exclude.extend_from_slice(self.seen(user));
        }
        exclude.sort_unstable();
        exclude.dedup();
        ScoringQuery {
            user,
            inputs: instances.input_of_length(&self.train, index, self.sequence_length),
            exclude,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::dataset::{Format, RawInteraction};
    use rankdistill_core::split::{SplitConfig, split};

    fn catalog() -> Catalog {
        // User "a": items 10, 11, 12, 13, 14 in order; user "b": 12, 10.
        let mut rows = Vec::new();
        for (t, item) in ["10", "11", "12", "13", "14"].iter().enumerate() {
            rows.push(RawInteraction {
                user: "a".into(),
                item: item.to_string(),
                timestamp: Some(t as i64),
            });
        }
        for (t, item) in ["12", "10"].iter().enumerate() {
            rows.push(RawInteraction {
                user: "b".into(),
                item: item.to_string(),
                timestamp: Some(t as i64),
            });
        }
        let config = SplitConfig {
            test_fraction: 0.0,
            valid_fraction: 0.0,
        };
        let data = PreparedDataset::new(
            split(&rows, config),
            "mem".into(),
            Format::Movielens,
            config,
        );
        Catalog::new(data, 3)
    }

    #[test]
    fn resolves_raw_ids_windows_and_exclusions() {
        let c = catalog();
        // Dense items: 10->0, 11->1, 12->2, 13->3, 14->4.
        let q = c.resolve("a", &[], &[], false).unwrap();
        assert_eq!(q.inputs, vec![3, 4, 5]);
        assert!(q.exclude.is_empty());
        let recent: Vec<String> = ["14", "13", "12", "11"].map(String::from).to_vec();
        let q = c.resolve("b", &recent, &["14".into()], true).unwrap();
        assert_eq!(q.inputs, vec![4, 3, 2], "the last L of recent_items");
        assert_eq!(q.exclude, vec![0, 2, 4]);
        let q = c.resolve("b", &["11".into()], &[], false).unwrap();
        assert_eq!(q.inputs, vec![PAD, PAD, 2]);
    }

    #[test]
    fn bad_ids_give_precise_errors() {
        let c = catalog();
        assert_eq!(
            c.resolve("zz", &[], &[], false).unwrap_err(),
            ServiceError::UnknownUser("zz".into())
        );
        assert_eq!(
            c.resolve("a", &["99".into()], &[], false).unwrap_err(),
            ServiceError::UnknownItem(UnknownItem::new("query.recent_items", "99"))
        );
        assert!(matches!(
            c.resolve("", &[], &[], false).unwrap_err(),
            ServiceError::InvalidArgument(_)
        ));
    }

    #[test]
    fn training_queries_exclude_their_targets() {
        let c = catalog();
        let inst = c.training_queries(TrainingShape::windows(1));
        assert_eq!(inst.len(), 3, "user a: 2 windows, user b: 1 padded window");
        let q = c.training_query(&inst, 0, false);
        assert_eq!(
            (q.inputs.clone(), q.exclude.clone()),
            (vec![1, 2, 3], vec![3])
        );
        let q = c.training_query(&inst, 2, true);
        assert_eq!(q.exclude, vec![0, 2]);
        assert!(Arc::ptr_eq(
            &inst,
            &c.training_queries(TrainingShape::windows(1))
        ));
    }

    #[test]
    fn queries_of_another_length_or_set_give_the_model_its_own_inputs() {
        // The model reads L = 3; a student's windows of L = 1 and SASRec's positions of L = 2
        // number other queries, and each is answered with the model's own last 3 items.
        let c = catalog();
        let short = c.training_queries(TrainingShape {
            set: QuerySet::Windows,
            query_length: Some(1),
            target_length: 1,
        });
        assert_eq!(short.len(), 5, "user a: 4 windows, user b: 1");
        let q = c.training_query(&short, 3, false);
        assert_eq!((q.inputs, q.exclude), (vec![2, 3, 4], vec![4]));
        let q = c.training_query(&short, 0, false);
        assert_eq!(q.inputs, vec![PAD, PAD, 1]);
        let positions = c.training_queries(TrainingShape {
            set: QuerySet::Positions,
            query_length: Some(2),
            target_length: 1,
        });
        assert_eq!(
            positions.len(),
            3,
            "user a: its last 2 positions, user b: 1"
        );
        let q = c.training_query(&positions, 1, false);
        assert_eq!((q.inputs, q.exclude), (vec![2, 3, 4], vec![4]));
    }

    #[test]
    fn training_queries_are_built_once_per_target_length_and_cached_for_four() {
        let c = Arc::new(catalog());
        let built: Vec<Arc<Instances>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| c.training_queries(TrainingShape::windows(2))))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(built.iter().all(|inst| Arc::ptr_eq(inst, &built[0])));
        for t in 3..=6 {
            assert_eq!(
                c.training_queries(TrainingShape::windows(t)).len(),
                c.training_queries(TrainingShape::windows(t)).len()
            );
        }
        // T = 2 was the oldest of five: evicted, rebuilt equal but not the same.
        let rebuilt = c.training_queries(TrainingShape::windows(2));
        assert!(!Arc::ptr_eq(&rebuilt, &built[0]));
        assert_eq!(rebuilt.len(), built[0].len());
    }
}
