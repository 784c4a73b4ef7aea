//! `trainer report`: one table over groups of runs (e.g. the seeds of one configuration),
//! mean ± sample standard deviation of every metric, with parameter counts. Markdown and JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rankdistill_core::metrics::Metrics;
use serde::Serialize;

/// One group of runs: a label and the artifact folders of its seeds.
#[derive(Debug, Clone)]
pub struct Group {
    /// Label in the table.
    pub name: String,
    /// Artifact folders (checkpoint or student).
    pub runs: Vec<PathBuf>,
}

impl std::str::FromStr for Group {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, dirs) = s
            .rsplit_once('=')
            .ok_or_else(|| format!("--group '{s}': expected NAME=DIR[,DIR...]"))?;
        let runs: Vec<PathBuf> = dirs
            .split(',')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        if name.is_empty() || runs.is_empty() {
            return Err(format!("--group '{s}': expected NAME=DIR[,DIR...]"));
        }
        Ok(Group {
            name: name.to_string(),
            runs,
        })
    }
}

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

fn load_run(dir: &Path) -> anyhow::Result<(Metrics, i64, f64)> {
    let manifest = rankdistill_core::artifact::read_manifest(dir)
        .with_context(|| format!("cannot read run {}", dir.display()))?;
    let metrics: Metrics = serde_json::from_value(manifest.metrics["values"].clone())
        .with_context(|| format!("{}: the manifest has no final metrics", dir.display()))?;
    let train_seconds = manifest.training["train_seconds"].as_f64().unwrap_or(0.0);
    let epochs = manifest.training["optim"]["epochs"].as_f64().unwrap_or(1.0);
    Ok((metrics, manifest.num_parameters, train_seconds / epochs))
}

/// Summarises each group.
pub fn summarise(groups: &[Group]) -> anyhow::Result<Vec<GroupSummary>> {
    let mut out = Vec::new();
    for group in groups {
        let runs: Vec<(Metrics, i64, f64)> = group
            .runs
            .iter()
            .map(|d| load_run(d))
            .collect::<anyhow::Result<_>>()?;
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
                    .map(|(m, _, _)| m.at_k(k).map(pick))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        anyhow::anyhow!("group {}: a run lacks metrics at k = {k}", group.name)
                    })?;
                metrics.push((format!("{name}@{k}"), mean_std(&values)));
            }
        }
        let maps: Vec<f64> = runs.iter().map(|(m, _, _)| m.map).collect();
        metrics.push(("map".into(), mean_std(&maps)));
        let spe: Vec<f64> = runs.iter().map(|(_, _, s)| *s).collect();
        out.push(GroupSummary {
            name: group.name.clone(),
            runs: runs.len(),
            num_parameters: runs[0].1,
            metrics,
            seconds_per_epoch: mean_std(&spe),
        });
    }
    Ok(out)
}

/// Markdown table of the summaries; the last column compares MAP with the first group.
pub fn markdown(summaries: &[GroupSummary]) -> String {
    let cols = [
        "prec@3", "prec@5", "prec@10", "ndcg@3", "ndcg@5", "ndcg@10", "map",
    ];
    let mut out = String::from("| model | runs | params |");
    for c in cols {
        out.push_str(&format!(" {c} |"));
    }
    out.push_str(" MAP vs first | s/epoch |\n|---|---|---|");
    out.push_str(&"---|".repeat(cols.len() + 2));
    out.push('\n');
    let base = summaries.first().and_then(|s| s.get("map")).map(|m| m.mean);
    for s in summaries {
        out.push_str(&format!(
            "| {} | {} | {} |",
            s.name, s.runs, s.num_parameters
        ));
        for c in cols {
            let v = s.get(c).unwrap_or(MeanStd {
                mean: f64::NAN,
                std: f64::NAN,
            });
            out.push_str(&format!(" {:.4} ± {:.4} |", v.mean, v.std));
        }
        let ratio = match (base, s.get("map")) {
            (Some(b), Some(m)) if b > 0.0 => format!("{:.1}%", 100.0 * m.mean / b),
            _ => "-".into(),
        };
        out.push_str(&format!(" {ratio} | {:.1} |\n", s.seconds_per_epoch.mean));
    }
    out.push_str("\nnDCG is the standard definition; the JSON also has the reference variant (ndcg_ref). Mean ± sample std over seeds.\n");
    out
}

/// Runs `trainer report`.
pub fn run_report(args: &crate::cli::ReportArgs) -> anyhow::Result<Vec<GroupSummary>> {
    if args.group.is_empty() {
        bail!("give at least one --group NAME=DIR[,DIR...]");
    }
    let summaries = summarise(&args.group)?;
    let table = markdown(&summaries);
    print!("{table}");
    if let Some(path) = &args.out {
        rankdistill_core::atomic::write_atomic(path, table.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&summaries)?;
        rankdistill_core::atomic::write_atomic(path, &json)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(summaries)
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

    #[test]
    fn group_syntax() {
        let g: Group = "a b=x,y".parse().unwrap();
        assert_eq!("d=100=x".parse::<Group>().unwrap().name, "d=100");
        assert_eq!(g.name, "a b");
        assert_eq!(g.runs.len(), 2);
        assert!("nodirs=".parse::<Group>().is_err());
        assert!("noequals".parse::<Group>().is_err());
    }
}
