//! When student-svc builds the approximate index (`--index`), and with which settings. Below
//! [`AUTO_MIN_ITEMS`] items the exact scan answers in well under half a millisecond here (a
//! Caser d=50 student reads about 6 MB of int8 rows per query at 50,000 items), so `auto`
//! keeps it; from there on `auto` builds the index, which reads a few percent of the rows.

use crate::model::IndexSettings;

/// Catalog size from which `--index auto` builds the approximate index.
pub const AUTO_MIN_ITEMS: usize = 50_000;

/// Which top-k search serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexMode {
    /// The exact scan below [`AUTO_MIN_ITEMS`] items, the approximate index from there on.
    Auto,
    /// Always the exact scan.
    Exact,
    /// Always the approximate index.
    Ann,
}

/// The index mode and the settings of the approximate index.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IndexPolicy {
    /// When to build it.
    pub mode: IndexMode,
    /// How to build and search it.
    pub settings: IndexSettings,
}

impl Default for IndexPolicy {
    fn default() -> Self {
        IndexPolicy {
            mode: IndexMode::Auto,
            settings: IndexSettings::default(),
        }
    }
}

impl IndexPolicy {
    /// Whether a catalog of `items` items is served from the approximate index.
    pub fn applies(&self, items: usize) -> bool {
        match self.mode {
            IndexMode::Exact => false,
            IndexMode::Ann => items > 0,
            IndexMode::Auto => items >= AUTO_MIN_ITEMS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_builds_the_index_from_the_threshold_on() {
        let policy = |mode| IndexPolicy {
            mode,
            ..IndexPolicy::default()
        };
        assert!(!policy(IndexMode::Auto).applies(AUTO_MIN_ITEMS - 1));
        assert!(policy(IndexMode::Auto).applies(AUTO_MIN_ITEMS));
        assert!(!policy(IndexMode::Exact).applies(10 * AUTO_MIN_ITEMS));
        assert!(policy(IndexMode::Ann).applies(10));
        assert!(!policy(IndexMode::Ann).applies(0));
    }
}
