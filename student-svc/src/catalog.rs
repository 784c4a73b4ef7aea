//! Raw ids and user histories, as request handlers need them: the artifact's id maps, and
//! (with `--data`) each user's training items and the items' training popularity. Resolves a
//! request into a dense query, its exclusions, or the popularity fallback.

use std::path::Path;
use std::sync::Arc;

use rankdistill_core::artifact::ArtifactManifest;
use rankdistill_core::id_map::IdMap;
use rankdistill_core::instances::{PAD, last_window};
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_serving::unknown_item::UnknownItem;

use crate::error::{LoadError, ServiceError};
use crate::model::QueryInput;

/// What to do for an unknown user who sends no recent items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownUser {
    /// Answer NOT_FOUND.
    NotFound,
    /// Answer the most popular items (training counts with --data, else the model's item
    /// bias order), flagged `fallback: true`.
    Popularity,
}

/// The prepared dataset in the form serving needs (loaded once, shared by every version
/// trained on it).
#[derive(Debug)]
pub struct History {
    /// Content fingerprint; every served artifact must have been trained on it.
    pub fingerprint: String,
    users: Vec<String>,
    items: Vec<String>,
    train: Vec<Vec<u32>>,
    seen: Vec<Vec<u32>>,
    popularity: Vec<f32>,
}

impl History {
    /// Loads a prepared dataset folder (blocking).
    pub fn load(dir: &Path) -> Result<History, LoadError> {
        let dataset = PreparedDataset::load(dir).map_err(|e| LoadError::Data {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let split = dataset.split;
        let seen = split.seen_sets();
        let popularity = rankdistill_core::popularity::popularity(&split.train, split.items.len());
        Ok(History {
            fingerprint: dataset.manifest.fingerprint,
            users: split.users,
            items: split.items,
            train: split.train,
            seen,
            popularity,
        })
    }
}

/// A request in domain form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecommendSpec {
    /// Raw user id ("" for none).
    pub user_id: String,
    /// Raw recent item ids, oldest first.
    pub recent_items: Vec<String>,
    /// Raw item ids never to return.
    pub exclude_items: Vec<String>,
    /// Exclude the user's training items (with --data) and the recent items.
    pub exclude_seen: bool,
}

/// A request resolved to dense indices.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// What the model scores (ignored when `fallback`).
    pub query: QueryInput,
    /// Dense items never to return, sorted, distinct.
    pub exclude: Vec<u32>,
    /// Answer from the popularity order instead of the model.
    pub fallback: bool,
}

/// Id maps and histories of one served model version.
#[derive(Debug)]
pub struct Catalog {
    users: IdMap,
    items: IdMap,
    history: Option<Arc<History>>,
    popularity: Vec<f32>,
    sequence_length: usize,
    unknown_user: UnknownUser,
}

/// The artifact's id map, else the dataset's, else dense indices as decimal strings.
fn ids(from_manifest: &[String], from_data: Option<&[String]>, n: usize) -> Vec<String> {
    if from_manifest.len() == n {
        from_manifest.to_vec()
    } else if let Some(data) = from_data.filter(|d| d.len() == n) {
        data.to_vec()
    } else {
        (0..n).map(|i| i.to_string()).collect()
    }
}

impl Catalog {
    /// Builds the lookups for a model. `item_bias` orders the popularity fallback when there
    /// is no dataset (kept only when the fallback is on).
    pub fn new(
        manifest: &ArtifactManifest,
        history: Option<Arc<History>>,
        item_bias: &[f32],
        unknown_user: UnknownUser,
    ) -> Catalog {
        let n_users = manifest.model.num_users.max(0) as usize;
        let n_items = manifest.model.num_items.max(0) as usize;
        let users = ids(
            &manifest.users,
            history.as_deref().map(|h| h.users.as_slice()),
            n_users,
        );
        let item_ids = ids(
            &manifest.items,
            history.as_deref().map(|h| h.items.as_slice()),
            n_items,
        );
        // Only the fallback reads it: no copy (4 bytes an item) when it is off.
        let popularity = match history.as_deref() {
            _ if unknown_user == UnknownUser::NotFound => Vec::new(),
            Some(h) if h.popularity.len() == n_items => h.popularity.clone(),
            _ => item_bias.to_vec(),
        };
        Catalog {
            users: IdMap::new(users),
            items: IdMap::new(item_ids),
            history,
            popularity,
            sequence_length: manifest.model.sequence_length.max(0) as usize,
            unknown_user,
        }
    }

    /// Raw id of a dense item.
    pub fn item_id(&self, dense: u32) -> &str {
        self.items.raw(dense)
    }

    /// Dense index of a raw item id.
    pub fn item(&self, raw: &str, field: &str) -> Result<u32, ServiceError> {
        self.items
            .dense(raw)
            .ok_or_else(|| UnknownItem::new(field, raw).into())
    }

    /// Dense index of a raw user id, if known.
    pub fn user(&self, raw: &str) -> Option<u32> {
        self.users.dense(raw)
    }

    /// Popularity scores (training counts with --data, else item bias).
    pub fn popularity(&self) -> &[f32] {
        &self.popularity
    }

    /// True when user histories are available (--data).
    pub fn has_history(&self) -> bool {
        self.history.is_some()
    }

    /// The input window of a known user's last L training items (with --data), or `None`.
    pub fn training_window(&self, user: u32) -> Option<Vec<u32>> {
        let train = self.history.as_deref()?.train.get(user as usize)?;
        Some(last_window(train, self.sequence_length))
    }

    /// Resolves a request: the last L of `recent_items`, else the user's last L training
    /// items (with --data), else an all-padding window.
    pub fn resolve(&self, spec: &RecommendSpec) -> Result<Resolved, ServiceError> {
        if spec.user_id.is_empty() && spec.recent_items.is_empty() {
            return Err(ServiceError::InvalidArgument(
                "query needs a user_id, recent_items, or both".into(),
            ));
        }
        let user = if spec.user_id.is_empty() {
            None
        } else {
            self.user(&spec.user_id)
        };
        let recent = spec
            .recent_items
            .iter()
            .map(|raw| self.item(raw, "query.recent_items"))
            .collect::<Result<Vec<u32>, _>>()?;
        let mut exclude = spec
            .exclude_items
            .iter()
            .map(|raw| self.item(raw, "exclude_items"))
            .collect::<Result<Vec<u32>, _>>()?;
        let l = self.sequence_length;
        let train: &[u32] = match (user, self.history.as_deref()) {
            (Some(u), Some(h)) => h.train.get(u as usize).map(Vec::as_slice).unwrap_or(&[]),
            _ => &[],
        };
        let fallback = user.is_none() && recent.is_empty();
        if fallback && self.unknown_user == UnknownUser::NotFound {
            return Err(ServiceError::UnknownUser(spec.user_id.clone()));
        }
        let inputs = if recent.is_empty() {
            last_window(train, l)
        } else {
            let tail = &recent[recent.len().saturating_sub(l)..];
            let mut inputs = vec![PAD; l - tail.len()];
            inputs.extend(tail.iter().map(|&i| i + 1));
            inputs
        };
        if spec.exclude_seen {
            if let (Some(u), Some(h)) = (user, self.history.as_deref()) {
                exclude.extend(h.seen.get(u as usize).map(Vec::as_slice).unwrap_or(&[]));
            }
            exclude.extend_from_slice(&recent);
        }
        exclude.sort_unstable();
        exclude.dedup();
        Ok(Resolved {
            query: QueryInput { user, inputs },
            exclude,
            fallback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::artifact::{DataRef, ModelConfig};

    fn catalog(unknown_user: UnknownUser) -> Catalog {
        let mut m = ArtifactManifest::new(
            ModelConfig::caser(4, 2, 3),
            DataRef {
                path: "d".into(),
                fingerprint: "fp".into(),
            },
        );
        m.model.sequence_length = 2;
        m.users = vec!["alice".into(), "bob".into()];
        m.items = vec!["a".into(), "b".into(), "c".into()];
        let history = History {
            fingerprint: "fp".into(),
            users: m.users.clone(),
            items: m.items.clone(),
            train: vec![vec![2, 0, 1], vec![1]],
            seen: vec![vec![0, 1, 2], vec![1]],
            popularity: vec![1.0, 2.0, 1.0],
        };
        Catalog::new(&m, Some(Arc::new(history)), &[0.0, 0.0, 0.0], unknown_user)
    }

    fn spec(user: &str, recent: &[&str], exclude_seen: bool) -> RecommendSpec {
        RecommendSpec {
            user_id: user.into(),
            recent_items: recent.iter().map(|s| s.to_string()).collect(),
            exclude_items: vec![],
            exclude_seen,
        }
    }

    #[test]
    fn history_recent_items_and_exclusions() {
        let c = catalog(UnknownUser::NotFound);
        let r = c.resolve(&spec("alice", &[], true)).unwrap();
        assert_eq!(r.query.inputs, vec![1, 2]);
        assert_eq!(r.exclude, vec![0, 1, 2]);
        let r = c.resolve(&spec("bob", &["c"], false)).unwrap();
        assert_eq!(r.query.inputs, vec![0, 3]);
        assert!(r.exclude.is_empty());
        let r = c.resolve(&spec("nobody", &["a", "b", "c"], true)).unwrap();
        assert_eq!((r.query.user, r.query.inputs.clone()), (None, vec![2, 3]));
        assert_eq!(r.exclude, vec![0, 1, 2]);
    }

    #[test]
    fn errors_and_fallback() {
        let c = catalog(UnknownUser::NotFound);
        let e = c.resolve(&spec("nobody", &[], true)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        let e = c.resolve(&spec("", &[], true)).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        let e = c.resolve(&spec("alice", &["zzz"], true)).unwrap_err();
        assert!(e.to_string().contains("'zzz'"));
        let c = catalog(UnknownUser::Popularity);
        assert!(c.resolve(&spec("nobody", &[], true)).unwrap().fallback);
        assert_eq!(c.popularity(), &[1.0, 2.0, 1.0]);
    }
}
