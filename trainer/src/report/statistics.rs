//! The figures of the report: mean ± sample standard deviation, the summary of every group and
//! the per-epoch curves.

use anyhow::bail;
use rankdistill_core::history::EpochRecord;
use serde::Serialize;

use crate::report::input::{Group, LoadedGroup, load_groups};

/// Mean and sample standard deviation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one run.
    pub std: f64,
}

/// Mean and sample standard deviation of `values`.
pub fn mean_std(values: &[f64]) -> MeanStd {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n.max(1.0);
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    MeanStd {
        mean,
        std: var.sqrt(),
    }
}

/// The summary of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    /// Label.
    pub name: String,
    /// Runs summarised.
    pub runs: usize,
    /// Parameters of the first run.
    pub num_parameters: i64,
    /// Metric name (e.g. "prec@10", "ndcg@10", "ndcg_ref@10", "map") to mean ± std.
    pub metrics: Vec<(String, MeanStd)>,
    /// Mean training seconds per epoch.
    pub seconds_per_epoch: MeanStd,
}

impl GroupSummary {
    /// Mean ± std of a metric by name.
    pub fn get(&self, name: &str) -> Option<MeanStd> {
        self.metrics
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }
}

/// Summarises each group.
pub fn summarise(groups: &[Group]) -> anyhow::Result<Vec<GroupSummary>> {
    summarise_loaded(&load_groups(groups)?)
}

/// Summarises groups already read.
pub fn summarise_loaded(groups: &[LoadedGroup]) -> anyhow::Result<Vec<GroupSummary>> {
    let mut out = Vec::new();
    for group in groups {
        let runs = &group.runs;
        if runs.is_empty() {
            bail!("group {} has no runs", group.name);
        }
        let mut metrics = Vec::new();
        for &k in &[3usize, 5, 10] {
            type Pick = fn(&rankdistill_core::metrics::AtK) -> f64;
            let picks: [(&str, Pick); 3] = [
                ("prec", |a| a.precision),
                ("ndcg", |a| a.ndcg),
                ("ndcg_ref", |a| a.ndcg_ref),
            ];
            for (name, pick) in picks {
                let values: Vec<f64> = runs
                    .iter()
                    .map(|r| r.metrics.at_k(k).map(pick))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        anyhow::anyhow!("group {}: a run lacks metrics at k = {k}", group.name)
                    })?;
                metrics.push((format!("{name}@{k}"), mean_std(&values)));
            }
        }
        let maps: Vec<f64> = runs.iter().map(|r| r.metrics.map).collect();
        metrics.push(("map".into(), mean_std(&maps)));
        let spe: Vec<f64> = runs.iter().map(|r| r.seconds_per_epoch).collect();
        out.push(GroupSummary {
            name: group.name.clone(),
            runs: runs.len(),
            num_parameters: runs[0].num_parameters,
            metrics,
            seconds_per_epoch: mean_std(&spe),
        });
    }
    Ok(out)
}

/// Mean over a group's runs, per epoch, of what `pick` reads from an epoch record.
pub fn mean_curve(
    group: &LoadedGroup,
    pick: impl Fn(&EpochRecord) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let epochs = group
        .runs
        .iter()
        .map(|r| r.history.len())
        .max()
        .unwrap_or(0);
    (1..=epochs)
        .filter_map(|epoch| {
            let values: Vec<f64> = group
                .runs
                .iter()
                .filter_map(|r| r.history.iter().find(|e| e.epoch == epoch))
                .filter_map(&pick)
                .collect();
            (!values.is_empty()).then(|| (epoch as f64, mean_std(&values).mean))
        })
        .collect()
}

/// The epochs whose distillation weights the report shows: the first (position weights,
/// which stay the same until the dynamic weights start), the first with dynamic weights, one
/// in the middle of them and the last (at most four).
pub fn weight_epochs(history: &[EpochRecord]) -> Vec<usize> {
    let with: Vec<&EpochRecord> = history
        .iter()
        .filter(|e| e.rd_weight_mean.is_some())
        .collect();
    let (Some(first), Some(last)) = (with.first(), with.last()) else {
        return Vec::new();
    };
    let mut epochs = vec![first.epoch, last.epoch];
    if let Some(i) = with.iter().position(|e| e.rd_dynamic == Some(true)) {
        epochs.push(with[i].epoch);
        epochs.push(with[(i + with.len() - 1) / 2].epoch);
    } else {
        epochs.push(with[with.len() / 2].epoch);
    }
    epochs.sort_unstable();
    epochs.dedup();
    epochs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std() {
        let m = mean_std(&[1.0, 2.0, 3.0]);
        assert!((m.mean - 2.0).abs() < 1e-12);
        assert!((m.std - 1.0).abs() < 1e-12);
        assert_eq!(mean_std(&[5.0]).std, 0.0);
    }

    fn record(epoch: usize, dynamic: bool) -> EpochRecord {
        EpochRecord {
            epoch,
            loss: 1.0,
            l_r: Some(0.5),
            l_d: Some(0.5),
            seconds: 0.1,
            metrics: None,
            rd_weight_mean: Some(vec![0.6, 0.4]),
            rd_weight_std: Some(vec![0.0, 0.0]),
            rd_dynamic: Some(dynamic),
        }
    }

    #[test]
    fn weight_epochs_show_the_switch_to_dynamic_weights() {
        let history: Vec<EpochRecord> = (1..=12).map(|e| record(e, e >= 6)).collect();
        assert_eq!(weight_epochs(&history), vec![1, 6, 9, 12]);
        let position: Vec<EpochRecord> = (1..=4).map(|e| record(e, false)).collect();
        assert_eq!(weight_epochs(&position), vec![1, 3, 4]);
        assert!(weight_epochs(&[]).is_empty());
    }
}
