//! The small synthetic dataset the service fixtures serve, split and saved as a prepared
//! dataset.

use std::path::{Path, PathBuf};

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::SplitConfig;
use rankdistill_core::synthetic::SyntheticConfig;

/// Writes `root/u.data` (50 users over `items` items, some users short enough for padded
/// windows, seed 11), splits it and saves it to `root/prepared`; returns the folder and the
/// dataset.
pub fn prepared_synthetic(root: &Path, items: usize) -> (PathBuf, PreparedDataset) {
    let udata = root.join("u.data");
    SyntheticConfig {
        users: 50,
        items,
        clusters: 4,
        mean_length: 12,
        min_length: 4,
        seed: 11,
        ..SyntheticConfig::default()
    }
    .write_udata(&udata)
    .expect("synthetic data");
    let dataset = PreparedDataset::read(&udata, SplitConfig::default()).expect("read");
    let data = root.join("prepared");
    dataset.save(&data).expect("save dataset");
    (data, dataset)
}

/// Copies the files of `from` (flat) into `to`, creating it.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("folder entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}
