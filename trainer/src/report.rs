//! `trainer report`: one table over groups of runs (e.g. the seeds of one configuration),
//! mean ± sample standard deviation of every metric, with parameter counts; with `--out DIR`, a
//! self-contained report folder: `report.md` (and `report.html` with `--html`), PNG charts
//! (learning curves, metrics, distillation weights over teacher positions, serving latency) and
//! `summary.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rankdistill_core::metrics::Metrics;
use serde::{Deserialize, Serialize};

use crate::output::Output;
use crate::plots::{self, BarGroup, HistogramSeries, LinePanel, Series};
use crate::train::EpochRecord;

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
}

/// Reads one artifact folder.
pub fn load_run(dir: &Path) -> anyhow::Result<Run> {
    let manifest = rankdistill_core::artifact::read_manifest(dir)
        .with_context(|| format!("cannot read run {}", dir.display()))?;
    let metrics: Metrics = serde_json::from_value(manifest.metrics["values"].clone())
        .with_context(|| format!("{}: the manifest has no final metrics", dir.display()))?;
    let train_seconds = manifest.training["train_seconds"].as_f64().unwrap_or(0.0);
    let epochs = manifest.training["optim"]["epochs"].as_f64().unwrap_or(1.0);
    let history = match manifest.training.get("history") {
        Some(h) => serde_json::from_value(h.clone())
            .with_context(|| format!("{}: unreadable training history", dir.display()))?,
        None => Vec::new(),
    };
    Ok(Run {
        dir: dir.to_path_buf(),
        metrics,
        num_parameters: manifest.num_parameters,
        seconds_per_epoch: train_seconds / epochs,
        version: manifest.version,
        model: format!("{} d={}", manifest.model.kind, manifest.model.dim),
        history,
        weighting: manifest.training["rd"]["weighting"]
            .as_str()
            .map(str::to_string),
    })
}

/// A group with its runs read.
#[derive(Debug, Clone)]
pub struct LoadedGroup {
    /// Label.
    pub name: String,
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
                runs: g
                    .runs
                    .iter()
                    .map(|d| load_run(d))
                    .collect::<anyhow::Result<_>>()?,
            })
        })
        .collect()
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

/// Columns of the comparison table.
const COLUMNS: [(&str, &str); 7] = [
    ("prec@3", "Prec@3"),
    ("prec@5", "Prec@5"),
    ("prec@10", "Prec@10"),
    ("ndcg@3", "nDCG@3"),
    ("ndcg@5", "nDCG@5"),
    ("ndcg@10", "nDCG@10"),
    ("map", "MAP"),
];

/// A table of text cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Column titles.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The table as GitHub markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("| {} |\n", self.header.join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.header.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out
    }

    /// The table as HTML.
    pub fn html(&self) -> String {
        let mut out = String::from("<table>\n<tr>");
        for h in &self.header {
            out.push_str(&format!("<th>{}</th>", escape(h)));
        }
        out.push_str("</tr>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for cell in row {
                out.push_str(&format!("<td>{}</td>", escape(cell)));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

/// The comparison table: metrics (mean ± std), parameters and their ratio to the first group,
/// MAP relative to the first group, seconds per epoch.
pub fn comparison_table(summaries: &[GroupSummary]) -> Table {
    let mut header: Vec<String> = ["model", "runs", "params", "params vs first"]
        .map(String::from)
        .to_vec();
    header.extend(COLUMNS.iter().map(|(_, title)| title.to_string()));
    header.extend(["MAP vs first", "s/epoch"].map(String::from));
    let base_map = summaries.first().and_then(|s| s.get("map")).map(|m| m.mean);
    let base_params = summaries.first().map(|s| s.num_parameters);
    let ratio = |value: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!("{:.1}%", 100.0 * value / b),
        _ => "-".into(),
    };
    let rows = summaries
        .iter()
        .map(|s| {
            let mut row = vec![
                s.name.clone(),
                s.runs.to_string(),
                crate::prepare::thousands(s.num_parameters.max(0) as usize),
                ratio(s.num_parameters as f64, base_params.map(|p| p as f64)),
            ];
            for (key, _) in COLUMNS {
                let v = s.get(key).unwrap_or(MeanStd {
                    mean: f64::NAN,
                    std: f64::NAN,
                });
                row.push(format!("{:.4} ± {:.4}", v.mean, v.std));
            }
            row.push(ratio(s.get("map").map_or(f64::NAN, |m| m.mean), base_map));
            row.push(format!("{:.1}", s.seconds_per_epoch.mean));
            row
        })
        .collect();
    Table { header, rows }
}

/// Markdown table of the summaries, with the note on the nDCG variants.
pub fn markdown(summaries: &[GroupSummary]) -> String {
    let mut out = comparison_table(summaries).markdown();
    out.push_str("\nnDCG is the standard definition; the JSON also has the reference variant (ndcg_ref). Mean ± sample std over seeds.\n");
    out
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

/// One block of a report section.
#[derive(Debug, Clone)]
pub enum Block {
    /// A paragraph of text (markdown inline syntax: `code` only).
    Text(String),
    /// A table.
    Table(Table),
    /// A chart file of the folder.
    Image {
        /// File name in the folder.
        file: String,
        /// Alternative text.
        alt: String,
    },
}

/// A titled section of the report.
#[derive(Debug, Clone)]
pub struct Section {
    /// Heading.
    pub title: String,
    /// Content.
    pub blocks: Vec<Block>,
}

/// HTML-escapes text.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the report as markdown.
pub fn render_markdown(title: &str, sections: &[Section]) -> String {
    let mut out = format!("# {title}\n");
    for section in sections {
        out.push_str(&format!("\n## {}\n", section.title));
        for block in &section.blocks {
            out.push('\n');
            match block {
                Block::Text(text) => out.push_str(&format!("{text}\n")),
                Block::Table(table) => out.push_str(&table.markdown()),
                Block::Image { file, alt } => out.push_str(&format!("![{alt}]({file})\n")),
            }
        }
    }
    out
}

/// Renders the report as a standalone HTML page (the charts are the PNGs of the folder).
pub fn render_html(title: &str, sections: &[Section]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\nbody {{ font-family: sans-serif; max-width: 1450px; margin: 2em auto; padding: 0 1em; color: #222; }}\ntable {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}\nth, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}\nth:first-child, td:first-child {{ text-align: left; }}\nimg {{ max-width: 100%; border: 1px solid #eee; }}\n</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(title),
        escape(title)
    );
    for section in sections {
        out.push_str(&format!("<h2>{}</h2>\n", escape(&section.title)));
        for block in &section.blocks {
            match block {
                Block::Text(text) => {
                    // `code` spans are the only inline markdown the report uses.
                    let mut html = String::new();
                    for (i, part) in escape(text).split('`').enumerate() {
                        if i % 2 == 1 {
                            html.push_str(&format!("<code>{part}</code>"));
                        } else {
                            html.push_str(part);
                        }
                    }
                    out.push_str(&format!("<p>{html}</p>\n"));
                }
                Block::Table(table) => out.push_str(&table.html()),
                Block::Image { file, alt } => out.push_str(&format!(
                    "<p><img src=\"{}\" alt=\"{}\"></p>\n",
                    escape(file),
                    escape(alt)
                )),
            }
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// A file name made of the lowercase letters and digits of `name`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() { "group".into() } else { out }
}

/// Mean over a group's runs, per epoch, of what `pick` reads from an epoch record.
fn mean_curve(group: &LoadedGroup, pick: impl Fn(&EpochRecord) -> Option<f64>) -> Vec<(f64, f64)> {
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

/// A written chart: file name and bytes.
type Chart = (String, Vec<u8>);

/// Builds the sections and the charts of the report.
fn build(
    groups: &[LoadedGroup],
    summaries: &[GroupSummary],
    latency: &[LatencyReport],
) -> anyhow::Result<(Vec<Section>, Vec<Chart>)> {
    let mut sections = Vec::new();
    let mut charts: Vec<Chart> = Vec::new();

    let runs: usize = groups.iter().map(|g| g.runs.len()).sum();
    let mut blocks = vec![
        Block::Text(format!(
            "{} groups, {runs} runs. Metrics on the held-out split after the last epoch, mean ± sample standard deviation over the runs of each group; nDCG is the standard definition (the reference variant is in `summary.json`). `params vs first` and `MAP vs first` compare with the first group.",
            groups.len()
        )),
        Block::Table(comparison_table(summaries)),
    ];
    let categories: Vec<String> = COLUMNS.iter().map(|(_, t)| t.to_string()).collect();
    let bars: Vec<BarGroup> = summaries
        .iter()
        .map(|s| BarGroup {
            name: format!(
                "{} ({} params)",
                s.name,
                crate::prepare::thousands(s.num_parameters.max(0) as usize)
            ),
            values: COLUMNS
                .iter()
                .map(|(k, _)| s.get(k).map_or(0.0, |m| m.mean))
                .collect(),
            errors: COLUMNS
                .iter()
                .map(|(k, _)| s.get(k).map_or(0.0, |m| m.std))
                .collect(),
        })
        .collect();
    charts.push((
        "metrics.png".into(),
        plots::grouped_bars(
            "Offline metrics (mean ± std over runs)",
            "value",
            &categories,
            &bars,
            plots::METRICS_SIZE,
        )?,
    ));
    blocks.push(Block::Image {
        file: "metrics.png".into(),
        alt: "Offline metrics of every group".into(),
    });
    sections.push(Section {
        title: "Comparison".into(),
        blocks,
    });

    // Learning curves.
    let with_history: Vec<(usize, &LoadedGroup)> = groups
        .iter()
        .enumerate()
        .filter(|(_, g)| g.runs.iter().any(|r| !r.history.is_empty()))
        .collect();
    let mut blocks = Vec::new();
    if with_history.is_empty() {
        blocks.push(Block::Text(
            "No run records a per-epoch history (artifacts written before the trainer recorded one): no learning curves.".into(),
        ));
    } else {
        let series = |pick: &dyn Fn(&EpochRecord) -> Option<f64>| -> Vec<Series> {
            with_history
                .iter()
                .map(|&(i, g)| Series {
                    name: g.name.clone(),
                    points: mean_curve(g, pick),
                    colour: i,
                })
                .collect()
        };
        let loss = series(&|e: &EpochRecord| Some(e.loss));
        let map = series(&|e: &EpochRecord| e.metrics.as_ref().map(|m| m.map));
        charts.push((
            "learning-curves.png".into(),
            plots::line_panels(
                &[
                    LinePanel {
                        title: "Training loss per epoch".into(),
                        x_label: "epoch".into(),
                        y_label: "mean loss per batch".into(),
                        series: loss,
                        integer_x: true,
                        y_from_zero: false,
                        legend_below: false,
                    },
                    LinePanel {
                        title: "MAP per epoch (held-out split)".into(),
                        x_label: "epoch".into(),
                        y_label: "MAP".into(),
                        series: map,
                        integer_x: true,
                        y_from_zero: false,
                        legend_below: true,
                    },
                ],
                plots::LEARNING_CURVES_SIZE,
            )?,
        ));
        blocks.push(Block::Text(
            "Mean training loss and MAP of every epoch, averaged over the runs of each group. MAP is measured only at the epochs the runs evaluated (`--eval-every`; always the last). The losses are on different scales: the teacher and the student alone minimise the mean BCE of the reference, the RD student BCE summed per instance plus the weighted distillation loss.".into(),
        ));
        blocks.push(Block::Image {
            file: "learning-curves.png".into(),
            alt: "Training loss and MAP per epoch".into(),
        });
    }
    sections.push(Section {
        title: "Learning curves".into(),
        blocks,
    });

    // Distillation weights over teacher positions.
    let mut blocks = Vec::new();
    for group in groups {
        let Some(run) = group
            .runs
            .iter()
            .find(|r| r.history.iter().any(|e| e.rd_weight_mean.is_some()))
        else {
            continue;
        };
        let epochs = weight_epochs(&run.history);
        let weighting = run.weighting.clone().unwrap_or_else(|| "hybrid".into());
        let records: Vec<&EpochRecord> = epochs
            .iter()
            .filter_map(|&e| run.history.iter().find(|r| r.epoch == e))
            .collect();
        let label = |r: &EpochRecord| {
            let kind = if r.rd_dynamic == Some(true) {
                weighting.as_str()
            } else {
                "position"
            };
            format!("epoch {} ({kind})", r.epoch)
        };
        let series: Vec<Series> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Series {
                name: label(r),
                points: r
                    .rd_weight_mean
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(p, &w)| ((p + 1) as f64, w))
                    .collect(),
                colour: i,
            })
            .collect();
        let file = format!("rd-weights-{}.png", slug(&group.name));
        charts.push((
            file.clone(),
            plots::line_panels(
                &[LinePanel {
                    title: format!("Distillation weights: {}", group.name),
                    x_label: "teacher position r".into(),
                    y_label: "mean weight w_r".into(),
                    series,
                    integer_x: true,
                    y_from_zero: true,
                    legend_below: false,
                }],
                plots::WEIGHTS_SIZE,
            )?,
        ));
        let k = records
            .iter()
            .filter_map(|r| r.rd_weight_mean.as_ref().map(Vec::len))
            .max()
            .unwrap_or(0);
        let mut header = vec!["epoch".to_string()];
        header.extend((1..=k).map(|p| format!("w_{p}")));
        let rows = records
            .iter()
            .map(|r| {
                let mut row = vec![label(r)];
                row.extend(
                    r.rd_weight_mean
                        .iter()
                        .flatten()
                        .zip(
                            r.rd_weight_std
                                .iter()
                                .flatten()
                                .chain(std::iter::repeat(&0.0)),
                        )
                        .map(|(m, s)| format!("{m:.3} ± {s:.3}")),
                );
                row
            })
            .collect();
        blocks.push(Block::Text(format!(
            "{} (run `{}`): the mean weight of each of the teacher's top-{k} positions over the training instances of an epoch (± the standard deviation over instances). Position weights decay with the rank; the {weighting} weights, from the dynamic start epoch on, move weight to the teacher items the student ranks below the teacher's position (an instance whose teacher items the student already ranks that high gets no weight, so the means can sum to less than 1).",
            group.name,
            run.dir.display()
        )));
        blocks.push(Block::Image {
            file,
            alt: format!(
                "Distillation weights over teacher positions, {}",
                group.name
            ),
        });
        blocks.push(Block::Table(Table { header, rows }));
    }
    if !blocks.is_empty() {
        sections.push(Section {
            title: "Distillation weights".into(),
            blocks,
        });
    }

    // Serving latency.
    if !latency.is_empty() {
        let mut blocks = vec![Block::Table(Table {
            header: [
                "service", "target", "clients", "requests", "errors", "QPS", "mean ms", "p50 ms",
                "p90 ms", "p99 ms", "p99.9 ms", "max ms",
            ]
            .map(String::from)
            .to_vec(),
            rows: latency
                .iter()
                .map(|l| {
                    let m = &l.latency_ms;
                    vec![
                        l.name.clone(),
                        l.target.clone(),
                        l.concurrency.to_string(),
                        (l.ok + l.errors).to_string(),
                        l.errors.to_string(),
                        format!("{:.0}", l.qps),
                        format!("{:.3}", m.mean),
                        format!("{:.3}", m.p50),
                        format!("{:.3}", m.p90),
                        format!("{:.3}", m.p99),
                        format!("{:.3}", m.p999),
                        format!("{:.3}", m.max),
                    ]
                })
                .collect(),
        })];
        let series: Vec<HistogramSeries> = latency
            .iter()
            .filter(|l| !l.histogram.buckets.is_empty())
            .map(|l| {
                let total: u64 = l.histogram.buckets.iter().map(|b| b.count).sum();
                HistogramSeries {
                    name: format!(
                        "{} (p50 {:.2} ms, p99 {:.2} ms)",
                        l.name, l.latency_ms.p50, l.latency_ms.p99
                    ),
                    buckets: l
                        .histogram
                        .buckets
                        .iter()
                        .map(|b| (b.lo, b.hi, 100.0 * b.count as f64 / total.max(1) as f64))
                        .collect(),
                }
            })
            .collect();
        if series.is_empty() {
            blocks.push(Block::Text(
                "The load-generator reports carry no histogram (written by an older rd-loadgen): no latency chart.".into(),
            ));
        } else {
            charts.push((
                "latency.png".into(),
                plots::log_histograms(
                    "Request latency (closed loop, rd-loadgen)",
                    "latency (ms, log scale)",
                    &series,
                    plots::LATENCY_SIZE,
                )?,
            ));
            blocks.push(Block::Text(
                "Latency of each request as the load generator measured it (gRPC round trip on this machine), as the share of requests per bucket (20 buckets per power of ten).".into(),
            ));
            blocks.push(Block::Image {
                file: "latency.png".into(),
                alt: "Latency histograms of the services".into(),
            });
        }
        sections.push(Section {
            title: "Serving latency".into(),
            blocks,
        });
    }

    // The runs themselves.
    sections.push(Section {
        title: "Runs".into(),
        blocks: vec![Block::Table(Table {
            header: ["group", "artifact", "model", "version", "epochs", "MAP"]
                .map(String::from)
                .to_vec(),
            rows: groups
                .iter()
                .flat_map(|g| {
                    g.runs.iter().map(|r| {
                        vec![
                            g.name.clone(),
                            r.dir.display().to_string(),
                            r.model.clone(),
                            r.version.clone(),
                            r.history.len().to_string(),
                            format!("{:.4}", r.metrics.map),
                        ]
                    })
                })
                .collect(),
        })],
    });
    Ok((sections, charts))
}

/// What `trainer report` produced.
#[derive(Debug, Clone, Serialize)]
pub struct ReportOutcome {
    /// The report folder, when written.
    pub out: Option<String>,
    /// Files of the folder.
    pub files: Vec<String>,
    /// One summary per group.
    pub groups: Vec<GroupSummary>,
    /// The load-generator results.
    pub latency: Vec<LatencyReport>,
}

/// Runs `trainer report`.
pub fn run_report(args: &crate::cli::ReportArgs, out: &Output) -> anyhow::Result<ReportOutcome> {
    if args.group.is_empty() {
        bail!("give at least one --group NAME=DIR[,DIR...]");
    }
    let groups = load_groups(&args.group)?;
    let summaries = summarise_loaded(&groups)?;
    let latency: Vec<LatencyReport> = args
        .latency
        .iter()
        .map(load_latency)
        .collect::<anyhow::Result<_>>()?;
    out.say(markdown(&summaries));
    let mut files = Vec::new();
    if let Some(dir) = &args.out {
        let (sections, charts) = build(&groups, &summaries, &latency)?;
        let mut contents: Vec<(String, Vec<u8>)> = charts;
        contents.push((
            "report.md".into(),
            render_markdown(&args.title, &sections).into_bytes(),
        ));
        if args.html {
            contents.push((
                "report.html".into(),
                render_html(&args.title, &sections).into_bytes(),
            ));
        }
        contents.push((
            "summary.json".into(),
            serde_json::to_vec_pretty(&serde_json::json!({
                "title": args.title,
                "groups": summaries,
                "latency": latency,
            }))?,
        ));
        files = contents.iter().map(|(name, _)| name.clone()).collect();
        rankdistill_core::atomic::replace_dir_atomic(dir, |staging| {
            for (name, bytes) in &contents {
                std::fs::write(staging.join(name), bytes)?;
            }
            Ok(())
        })
        .with_context(|| format!("cannot write the report folder {}", dir.display()))?;
        out.say(format!("wrote report {}", dir.join("report.md").display()));
        out.summary(format!(
            "report: {} groups, {} runs, {} charts -> {}",
            groups.len(),
            groups.iter().map(|g| g.runs.len()).sum::<usize>(),
            files.iter().filter(|f| f.ends_with(".png")).count(),
            dir.join("report.md").display()
        ));
    }
    let outcome = ReportOutcome {
        out: args.out.as_ref().map(|d| d.display().to_string()),
        files,
        groups: summaries,
        latency,
    };
    let mut json = serde_json::to_value(&outcome)?;
    json["command"] = "report".into();
    out.json(&json)?;
    Ok(outcome)
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

    #[test]
    fn latency_and_slug_syntax() {
        let l: LatencyInput = "student-svc=runs/x.json".parse().unwrap();
        assert_eq!(l.name, "student-svc");
        assert!("nofile=".parse::<LatencyInput>().is_err());
        assert_eq!(slug("student + RD"), "student-rd");
        assert_eq!(slug("++"), "group");
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

    #[test]
    fn markdown_and_html_carry_the_same_content() {
        let sections = vec![Section {
            title: "A <b>".into(),
            blocks: vec![
                Block::Text("see `x`".into()),
                Block::Table(Table {
                    header: vec!["h".into()],
                    rows: vec![vec!["1 & 2".into()]],
                }),
                Block::Image {
                    file: "c.png".into(),
                    alt: "chart".into(),
                },
            ],
        }];
        let md = render_markdown("T", &sections);
        assert!(
            md.contains("## A <b>") && md.contains("![chart](c.png)") && md.contains("| 1 & 2 |")
        );
        let html = render_html("T", &sections);
        assert!(html.contains("<h2>A &lt;b&gt;</h2>"));
        assert!(html.contains("<code>x</code>"));
        assert!(html.contains("<td>1 &amp; 2</td>"));
        assert!(html.contains("<img src=\"c.png\" alt=\"chart\">"));
    }
}
