//! `trainer report`: one table over groups of runs (e.g. the seeds of one configuration),
//! mean ± sample standard deviation of every metric, with parameter counts, and the settings
//! of every group; with `--out DIR`, a self-contained report folder: `report.md` (and
//! `report.html` with `--html`), PNG charts (learning curves, metrics, sweeps, distillation
//! weights over teacher positions, serving latency) and `summary.json`.
//!
//! - `input`: the groups, their runs' artifacts and the load-generator JSON;
//! - `statistics`: mean ± std, group summaries, per-epoch curves;
//! - `settings`: the training and distillation settings of every group;
//! - `sweep_label`: the `SERIES @ AXIS=VALUE` coordinate of a group label;
//! - `sweep`: the groups with a coordinate, as MAP against VALUE per series;
//! - `document`: tables and sections, rendered as Markdown and HTML;
//! - `charts` (drawn by `plots`): the sections with their charts.

pub mod charts;
pub mod document;
pub mod input;
pub mod plots;
pub mod settings;
pub mod statistics;
pub mod sweep;
pub mod sweep_label;

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::output::Output;
use charts::build;
use document::{markdown, render_html, render_markdown};
use input::{Group, LatencyInput, LatencyReport, load_groups, load_latency};
use settings::{GroupSettings, rd_table, training_table};
use statistics::{GroupSummary, summarise_loaded};
use sweep::{Sweep, sweep_table};

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
    /// The settings of every group.
    pub settings: Vec<GroupSettings>,
    /// One sweep per axis of the groups labelled `SERIES @ AXIS=VALUE`.
    pub sweeps: Vec<Sweep>,
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
    let settings = settings::settings(&groups);
    let sweeps = sweep::sweeps(&groups, &summaries)?;
    out.say(printed(&summaries, &settings, &sweeps));
    let mut files = Vec::new();
    if let Some(dir) = &args.out {
        let (sections, charts) = build(&groups, &summaries, &settings, &sweeps, &latency)?;
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
                "settings": settings,
                "sweeps": sweeps,
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
        settings,
        sweeps,
        latency,
    };
    let mut json = serde_json::to_value(&outcome)?;
    json["command"] = "report".into();
    out.json(&json)?;
    Ok(outcome)
}

/// The text printed without `--out` (and before writing the folder): the comparison table,
/// the settings tables and one table per sweep.
fn printed(summaries: &[GroupSummary], settings: &[GroupSettings], sweeps: &[Sweep]) -> String {
    let mut text = markdown(summaries);
    if let Some(table) = training_table(settings) {
        text.push_str("\nSettings (`mixed`: the runs of a group differ):\n\n");
        text.push_str(&table.markdown());
    }
    if let Some(table) = rd_table(settings) {
        text.push_str("\nRanking Distillation settings:\n\n");
        text.push_str(&table.markdown());
    }
    for sweep in sweeps {
        text.push_str(&format!(
            "\nSweep over {} (MAP, mean ± sample std over the runs of each group; baseline {}):\n\n",
            sweep.axis,
            sweep.series.first().map_or("", String::as_str)
        ));
        text.push_str(&sweep_table(sweep).markdown());
    }
    text
}
