//! The report's sections with their charts: comparison, settings, sweeps, learning curves,
//! distillation weights over teacher positions, serving latency and the list of runs. The
//! drawing is in `plots`.

use rankdistill_core::history::EpochRecord;

use crate::output::thousands;
use crate::report::document::{Block, COLUMNS, Section, Table, comparison_table};
use crate::report::input::{LatencyReport, LoadedGroup};
use crate::report::plots::{self, BarGroup, Chart, HistogramSeries, LinePanel, Series, slug};
use crate::report::settings::{GroupSettings, settings_section};
use crate::report::statistics::{GroupSummary, mean_curve, weight_epochs};
use crate::report::sweep::{Sweep, sweep_sections};

/// Builds the sections and the charts of the report.
pub fn build(
    groups: &[LoadedGroup],
    summaries: &[GroupSummary],
    settings: &[GroupSettings],
    sweeps: &[Sweep],
    latency: &[LatencyReport],
) -> anyhow::Result<(Vec<Section>, Vec<Chart>)> {
    let mut sections = Vec::new();
    let mut charts: Vec<Chart> = Vec::new();

    let runs: usize = groups.iter().map(|g| g.runs.len()).sum();
    let mut blocks = vec![
        Block::Text(format!(
            "{} groups, {runs} runs. Metrics on the held-out split after the last epoch, mean ± sample standard deviation over the runs of each group; nDCG is the standard definition, nDCG_ref@10 the reference variant (`summary.json` has it at every cut-off). `params vs first` and `MAP vs first` compare with the first group. The settings of each group are in the section Settings.",
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
                thousands(s.num_parameters.max(0) as usize)
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
    sections.push(settings_section(settings));

    // Sweeps.
    let (sweep_sections, sweep_charts) = sweep_sections(sweeps)?;
    sections.extend(sweep_sections);
    charts.extend(sweep_charts);

    // Learning curves and weights: of the groups outside the sweeps (which have their own
    // sections), or of every group when all are sweep points.
    let main_groups: Vec<(usize, &LoadedGroup)> = if groups.iter().any(|g| g.sweep.is_none()) {
        groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.sweep.is_none())
            .collect()
    } else {
        groups.iter().enumerate().collect()
    };
    let with_history: Vec<(usize, &LoadedGroup)> = main_groups
        .iter()
        .copied()
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
                    errors: Vec::new(),
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
            "Mean training loss and MAP of every epoch, averaged over the runs of each group. MAP is measured only at the epochs the runs evaluated (`--eval-every`; always the last). The losses are on different scales: every model minimises the same ranking loss L_R (the run's `--bce` form), and the RD students add the weighted distillation loss L_D to it. Groups that are sweep points are left out here (see their sweep sections).".into(),
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
    for &(_, group) in &main_groups {
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
                errors: Vec::new(),
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
