//! Raw ids and their dense indices, both ways: what the services look up on every request.

/// Dense index `i` to raw id and back, for the users or the items of a dataset or artifact.
/// Compact for catalogs of millions of ids: the ids live in one byte buffer (about the ids'
/// length plus 8 bytes per id, where a `Vec<String>` and a `HashMap` took about 100), and a
/// raw id is found by binary search over the indices sorted by id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdMap {
    /// Every id, concatenated in dense order.
    bytes: String,
    /// Where id `i` starts in `bytes` (`len + 1` offsets).
    offsets: Offsets,
    /// Dense indices sorted by id (then by index: the last of equal ids is found).
    sorted: Vec<u32>,
}

/// Offsets into the id buffer: 4 bytes each while the buffer is under 4 GiB.
#[derive(Debug, Clone, PartialEq)]
enum Offsets {
    /// Buffer under 4 GiB.
    Small(Vec<u32>),
    /// Larger buffers.
    Large(Vec<usize>),
}

impl Default for Offsets {
    fn default() -> Self {
        Offsets::Small(Vec::new())
    }
}

impl Offsets {
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Offsets::Small(v) => v.get(i).map(|&o| o as usize),
            Offsets::Large(v) => v.get(i).copied(),
        }
    }
}

impl IdMap {
    /// Indexes `ids`: the dense index of an id is its position (the last one for an id
    /// given twice).
    pub fn new(ids: Vec<String>) -> IdMap {
        let mut bytes = String::with_capacity(ids.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(ids.len() + 1);
        ends.push(0);
        for id in &ids {
            bytes.push_str(id);
            ends.push(bytes.len());
        }
        let offsets = match ends
            .iter()
            .map(|&e| u32::try_from(e))
            .collect::<Result<Vec<u32>, _>>()
        {
            Ok(small) => Offsets::Small(small),
            Err(_) => Offsets::Large(ends),
        };
        let mut sorted: Vec<u32> = (0..ids.len() as u32).collect();
        sorted.sort_unstable_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize]).then(a.cmp(&b)));
        IdMap {
            bytes,
            offsets,
            sorted,
        }
    }

    /// The dense index of a raw id, if known.
    pub fn dense(&self, raw: &str) -> Option<u32> {
        let after = self.sorted.partition_point(|&i| self.raw(i) <= raw);
        let last = *self.sorted.get(after.checked_sub(1)?)?;
        (self.raw(last) == raw).then_some(last)
    }

    /// The raw id of a dense index (empty when out of range).
    pub fn raw(&self, dense: u32) -> &str {
        let i = dense as usize;
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(start), Some(end)) => &self.bytes[start..end],
            _ => "",
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// True when there are no ids.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
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
        assert_eq!(IdMap::default().dense(""), None);
    }

    #[test]
    fn every_id_is_found_and_the_last_of_equal_ids_wins() {
        let ids: Vec<String> = (0..5000)
            .map(|i| format!("{}", (i * 7919) % 5003))
            .collect();
        let map = IdMap::new(ids.clone());
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(map.dense(id), Some(i as u32));
            assert_eq!(map.raw(i as u32), id);
        }
        assert_eq!(map.dense("x"), None);
        assert_eq!(map.dense("5003"), None);
        let dup = IdMap::new(vec!["a".into(), "b".into(), "a".into(), "".into()]);
        assert_eq!(dup.dense("a"), Some(2));
        assert_eq!(dup.dense(""), Some(3));
        assert_eq!(dup.len(), 4);
    }
}
