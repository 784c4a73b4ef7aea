//! What the report reads: the groups of runs named on the command line, the artifacts of their
//! runs (metrics and the typed training record), and the JSON of the load generator.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rankdistill_core::history::{EpochRecord, TrainingRecord};
use rankdistill_core::metrics::Metrics;
use serde::{Deserialize, Serialize};

use crate::report::sweep_label::{SweepPoint, split_sweep_flag};

/// One group of runs: a label and the artifact folders of its seeds.
#[derive(Debug, Clone)]
pub struct Group {
    /// Label in the table.
    pub name: String,
    /// The sweep coordinate of a label `SERIES @ AXIS=VALUE`.
    pub sweep: Option<SweepPoint>,
    /// Artifact folders (checkpoint or student).
    pub runs: Vec<PathBuf>,
}

impl std::str::FromStr for Group {
    type Err = String;
    /// `NAME=DIR[,DIR...]`, split at the last `=`; when that NAME contains ` @ `, the sweep
    /// label `SERIES @ AXIS=VALUE=DIR[,DIR...]` (see `report::sweep`).
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, sweep, dirs) = match split_sweep_flag(s) {
            Some(parsed) => {
                let (name, point, dirs) = parsed?;
                (name, Some(point), dirs)
            }
            None => {
                let (name, dirs) = s
                    .rsplit_once('=')
                    .ok_or_else(|| format!("--group '{s}': expected NAME=DIR[,DIR...]"))?;
                (name.to_string(), None, dirs)
            }
        };
        let runs: Vec<PathBuf> = dirs
            .split(',')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        if name.is_empty() || runs.is_empty() {
            return Err(format!("--group '{s}': expected NAME=DIR[,DIR...]"));
        }
        Ok(Group { name, sweep, runs })
    }
}

/// A load-generator result to report: a label and the JSON file of `rd-loadgen --out`.
#[derive(Debug, Clone)]
pub struct LatencyInput {
    /// Label (e.g. "student-svc").
    pub name: String,
    /// The JSON file.
    pub file: PathBuf,
}

impl std::str::FromStr for LatencyInput {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.rsplit_once('=') {
            Some((name, file)) if !name.is_empty() && !file.is_empty() => Ok(LatencyInput {
                name: name.to_string(),
                file: PathBuf::from(file),
            }),
            _ => Err(format!(
                "--latency '{s}': expected NAME=FILE (a rd-loadgen JSON report)"
            )),
        }
    }
}

/// What the report reads of one artifact.
#[derive(Debug, Clone)]
pub struct Run {
    /// The artifact folder.
    pub dir: PathBuf,
    /// Final metrics.
    pub metrics: Metrics,
    /// Learnable parameters.
    pub num_parameters: i64,
    /// Mean training seconds per epoch.
    pub seconds_per_epoch: f64,
    /// Model version (weights hash).
    pub version: String,
    /// "caser d=50" and the like.
    pub model: String,
    /// Per-epoch history (empty for artifacts written before it was recorded).
    pub history: Vec<EpochRecord>,
    /// Distillation: the weighting ("hybrid", "position", "discrepancy").
    pub weighting: Option<String>,
    /// The command's settings from the manifest (`window`, `optim`, `rd`, ...).
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// Reads one artifact folder.
pub fn load_run(dir: &Path) -> anyhow::Result<Run> {
    let manifest = rankdistill_core::artifact::read_manifest(dir)
        .with_context(|| format!("cannot read run {}", dir.display()))?;
    let metrics: Metrics = serde_json::from_value(manifest.metrics["values"].clone())
        .with_context(|| format!("{}: the manifest has no final metrics", dir.display()))?;
    let training = TrainingRecord::from_manifest_value(&manifest.training)
        .with_context(|| format!("{}: unreadable training history", dir.display()))?;
    let epochs = training
        .setting(&["optim", "epochs"])
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(1.0);
    let seconds_per_epoch = training.train_seconds / epochs;
    let weighting = training
        .setting(&["rd", "weighting"])
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    Ok(Run {
        dir: dir.to_path_buf(),
        metrics,
        num_parameters: manifest.num_parameters,
        seconds_per_epoch,
        version: manifest.version,
        model: format!("{} d={}", manifest.model.kind, manifest.model.dim),
        history: training.history,
        weighting,
        settings: training.settings,
    })
}

/// A group with its runs read.
#[derive(Debug, Clone)]
pub struct LoadedGroup {
    /// Label.
    pub name: String,
    /// The sweep coordinate of the label.
    pub sweep: Option<SweepPoint>,
    /// The runs.
    pub runs: Vec<Run>,
}

/// Reads every run of every group.
pub fn load_groups(groups: &[Group]) -> anyhow::Result<Vec<LoadedGroup>> {
    groups
        .iter()
        .map(|g| {
            Ok(LoadedGroup {
                name: g.name.clone(),
                sweep: g.sweep.clone(),
                runs: g
                    .runs
                    .iter()
                    .map(|d| load_run(d))
                    .collect::<anyhow::Result<_>>()?,
            })
        })
        .collect()
}

/// Latency percentiles of a rd-loadgen report (milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyMs {
    /// Mean.
    #[serde(default)]
    pub mean: f64,
    /// Median.
    #[serde(default)]
    pub p50: f64,
    /// 90th percentile.
    #[serde(default)]
    pub p90: f64,
    /// 99th percentile.
    #[serde(default)]
    pub p99: f64,
    /// 99.9th percentile.
    #[serde(default)]
    pub p999: f64,
    /// Largest.
    #[serde(default)]
    pub max: f64,
}

/// One histogram bucket of a rd-loadgen report: `[lo, hi)` milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyBucket {
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
    /// Requests in the bucket.
    pub count: u64,
}

/// The histogram of a rd-loadgen report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Buckets in order.
    #[serde(default)]
    pub buckets: Vec<LatencyBucket>,
}

/// What the report reads of a rd-loadgen JSON report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Label given with `--latency`.
    #[serde(default)]
    pub name: String,
    /// "student" or "teacher".
    #[serde(default)]
    pub target: String,
    /// Concurrent clients.
    #[serde(default)]
    pub concurrency: usize,
    /// Measured seconds.
    #[serde(default)]
    pub seconds: f64,
    /// Answered requests.
    #[serde(default)]
    pub ok: u64,
    /// Failed requests.
    #[serde(default)]
    pub errors: u64,
    /// Answered requests per second.
    #[serde(default)]
    pub qps: f64,
    /// Percentiles.
    pub latency_ms: LatencyMs,
    /// Histogram (rd-loadgen writes it since the report draws it).
    #[serde(default)]
    pub histogram: LatencyHistogram,
}

/// Reads a rd-loadgen JSON report.
pub fn load_latency(input: &LatencyInput) -> anyhow::Result<LatencyReport> {
    let bytes = std::fs::read(&input.file).with_context(|| {
        format!(
            "--latency {}: cannot read {}",
            input.name,
            input.file.display()
        )
    })?;
    let mut report: LatencyReport = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "--latency {}: {} is not a rd-loadgen JSON report",
            input.name,
            input.file.display()
        )
    })?;
    report.name = input.name.clone();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_syntax() {
        let g: Group = "a b=x,y".parse().unwrap();
        assert_eq!("d=100=x".parse::<Group>().unwrap().name, "d=100");
        assert_eq!(g.name, "a b");
        assert_eq!(g.runs.len(), 2);
        assert!("nodirs=".parse::<Group>().is_err());
        assert!("noequals".parse::<Group>().is_err());
    }

    #[test]
    fn latency_syntax() {
        let l: LatencyInput = "student-svc=runs/x.json".parse().unwrap();
        assert_eq!(l.name, "student-svc");
        assert!("nofile=".parse::<LatencyInput>().is_err());
    }
}

#[cfg(test)]
mod sweep_label_tests {
    use super::*;
    use crate::report::sweep_label::SweepPoint;

    #[test]
    fn sweep_labels_split_after_the_coordinate() {
        let g: Group = "student alone @ d=5=a,b,c".parse().unwrap();
        assert_eq!(g.name, "student alone @ d=5");
        assert_eq!(g.runs.len(), 3);
        assert_eq!(
            g.sweep,
            Some(SweepPoint {
                series: "student alone".into(),
                axis: "d".into(),
                value: 5.0
            })
        );
        // SERIES may contain `=`; the directory list too.
        let g: Group = "student Caser d=50 @ lambda=0.5=runs/x=1,y"
            .parse()
            .unwrap();
        assert_eq!(g.name, "student Caser d=50 @ lambda=0.5");
        let point = g.sweep.unwrap();
        assert_eq!(
            (point.series.as_str(), point.axis.as_str(), point.value),
            ("student Caser d=50", "lambda", 0.5)
        );
        assert_eq!(g.runs[0].to_str(), Some("runs/x=1"));
        assert_eq!(
            "s @ lr=1e-3=x"
                .parse::<Group>()
                .unwrap()
                .sweep
                .unwrap()
                .value,
            1e-3
        );
    }

    #[test]
    fn labels_without_a_coordinate_parse_as_before() {
        let g: Group = "teacher Caser d=100=a,b".parse().unwrap();
        assert_eq!(g.name, "teacher Caser d=100");
        assert_eq!(g.runs.len(), 2);
        assert!(g.sweep.is_none());
        // ` @ ` inside the directory list is not a coordinate.
        let g: Group = "t=runs/a @ b".parse().unwrap();
        assert_eq!((g.name.as_str(), g.sweep), ("t", None));
        assert_eq!(g.runs[0].to_str(), Some("runs/a @ b"));
        assert!("t@d=5=x".parse::<Group>().unwrap().sweep.is_none());
    }

    #[test]
    fn bad_sweep_labels_are_named() {
        let err = "student @ d=five=a".parse::<Group>().unwrap_err();
        assert!(
            err.contains("--group 'student @ d=five=a'")
                && err.contains("VALUE 'five'")
                && err.contains("not a number"),
            "{err}"
        );
        for bad in [
            "student @ d=5",
            " @ d=5=a",
            "s @ =5=a",
            "s @ d=5=",
            "s @ d=inf=a",
        ] {
            let err = bad.parse::<Group>().unwrap_err();
            assert!(err.starts_with("--group '"), "{bad}: {err}");
        }
    }
}
