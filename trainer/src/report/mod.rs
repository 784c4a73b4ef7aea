//! `trainer report`: one table over groups of runs (e.g. the seeds of one configuration),
//! mean ± sample standard deviation of every metric, with parameter counts; with `--out DIR`, a
//! self-contained report folder: `report.md` (and `report.html` with `--html`), PNG charts
//! (learning curves, metrics, distillation weights over teacher positions, serving latency) and
//! `summary.json`.
//!
//! - `input`: the groups, their runs' artifacts and the load-generator JSON;
//! - `statistics`: mean ± std, group summaries, per-epoch curves;
//! - `document`: tables and sections, rendered as Markdown and HTML;
//! - `charts` (drawn by `plots`): the sections with their charts.

pub mod charts;
pub mod document;
pub mod input;
pub mod plots;
pub mod statistics;

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::output::Output;
use charts::build;
use document::{markdown, render_html, render_markdown};
use input::{Group, LatencyInput, LatencyReport, load_groups, load_latency};
use statistics::{GroupSummary, summarise_loaded};

/// Settings of `trainer report`.
#[derive(Debug, Clone)]
pub struct ReportSettings {
    /// Groups of runs; the first is the baseline.
    pub groups: Vec<Group>,
    /// Load-generator results.
    pub latency: Vec<LatencyInput>,
    /// The report folder to write (`None`: only print the table).
    pub out: Option<PathBuf>,
    /// Also write report.html.
    pub html: bool,
    /// Title of the report.
    pub title: String,
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
pub fn run_report(args: &ReportSettings, out: &Output) -> anyhow::Result<ReportOutcome> {
    if args.groups.is_empty() {
        bail!("give at least one --group NAME=DIR[,DIR...]");
    }
    let groups = load_groups(&args.groups)?;
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
