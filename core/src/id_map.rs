//! Raw ids and their dense indices, both ways: what the services look up on every request.

use std::collections::HashMap;

/// Dense index `i` to raw id and back, for the users or the items of a dataset or artifact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    ids: Vec<String>,
    index: HashMap<String, u32>,
}

impl IdMap {
    /// Indexes `ids`: the dense index of an id is its position.
    pub fn new(ids: Vec<String>) -> IdMap {
        let index = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        IdMap { ids, index }
    }

    /// The dense index of a raw id, if known.
    pub fn dense(&self, raw: &str) -> Option<u32> {
        self.index.get(raw).copied()
    }

    /// The raw id of a dense index (empty when out of range).
    pub fn raw(&self, dense: u32) -> &str {
        self.ids
            .get(dense as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no ids.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;

    #[test]
    fn ids_map_both_ways() {
        let map = IdMap::new(vec!["u7".into(), "u3".into()]);
        assert_eq!(map.len(), 2);
        assert_eq!(map.dense("u3"), Some(1));
        assert_eq!(map.dense("u4"), None);
        assert_eq!(map.raw(0), "u7");
        assert_eq!(map.raw(2), "");
        assert!(IdMap::default().is_empty());
    }
}
