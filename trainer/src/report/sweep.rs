//! Sweeps: groups whose label carries a coordinate, `SERIES @ AXIS=VALUE` (e.g.
//! `student alone @ d=5`, parsed by `sweep_label`), are also shown per AXIS as MAP (and
//! Prec@10) against VALUE, one line per SERIES, with a table of the gain of the second series
//! over the first.

use anyhow::{anyhow, bail};
use serde::Serialize;

use crate::report::document::{Block, Section, Table};
use crate::report::input::LoadedGroup;
use crate::report::plots::{self, Chart, LinePanel, Series, slug};
use crate::report::statistics::{GroupSummary, MeanStd};

/// One group of a sweep: its series' figures at one value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepCell {
    /// The group's label.
    pub group: String,
    /// Runs of the group.
    pub runs: usize,
    /// MAP, mean ± sample std over the runs.
    pub map: MeanStd,
    /// Prec@10, mean ± sample std over the runs.
    #[serde(rename = "prec@10")]
    pub prec10: MeanStd,
}

/// The MAP gain of the second series over the first (the baseline) at one value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SweepGain {
    /// Mean MAP of the second series minus mean MAP of the first.
    pub gain: f64,
    /// The larger of the two groups' sample stds of MAP.
    pub std: f64,
    /// `gain > std`.
    pub exceeds_1_std: bool,
    /// `gain > 2 * std`.
    pub exceeds_2_std: bool,
}

/// The gain of `other` over `baseline` (difference of means) against the larger sample std.
pub fn gain(baseline: MeanStd, other: MeanStd) -> SweepGain {
    let gain = other.mean - baseline.mean;
    let std = baseline.std.max(other.std);
    SweepGain {
        gain,
        std,
        exceeds_1_std: gain > std,
        exceeds_2_std: gain > 2.0 * std,
    }
}

/// One value of a sweep: a cell per series (`None` where a series has no group there).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepRow {
    /// The value of the axis.
    pub value: f64,
    /// One cell per series, in the order of [`Sweep::series`].
    pub cells: Vec<Option<SweepCell>>,
    /// With exactly two series both present: the gain of the second over the first.
    pub gain: Option<SweepGain>,
}

/// All groups swept over one axis.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sweep {
    /// The axis (e.g. "d").
    pub axis: String,
    /// The series in flag order; the first is the baseline.
    pub series: Vec<String>,
    /// One row per value, in numeric order.
    pub rows: Vec<SweepRow>,
}

/// The sweeps of the groups with a sweep coordinate, one per axis in flag order.
pub fn sweeps(groups: &[LoadedGroup], summaries: &[GroupSummary]) -> anyhow::Result<Vec<Sweep>> {
    let mut out: Vec<Sweep> = Vec::new();
    // (axis, series, value, cell) in flag order.
    let mut points: Vec<(&str, &str, f64, SweepCell)> = Vec::new();
    for (group, summary) in groups.iter().zip(summaries) {
        let Some(point) = &group.sweep else {
            continue;
        };
        let metric = |name: &str| {
            summary
                .get(name)
                .ok_or_else(|| anyhow!("group {}: no {name} to sweep", group.name))
        };
        if points.iter().any(|(a, s, v, _)| {
            *a == point.axis && *s == point.series && v.total_cmp(&point.value).is_eq()
        }) {
            bail!(
                "--group '{}': two groups are the same sweep point {} @ {}={}",
                group.name,
                point.series,
                point.axis,
                point.value
            );
        }
        points.push((
            &point.axis,
            &point.series,
            point.value,
            SweepCell {
                group: group.name.clone(),
                runs: summary.runs,
                map: metric("map")?,
                prec10: metric("prec@10")?,
            },
        ));
    }
    for (axis, _, _, _) in &points {
        if out.iter().any(|s| s.axis == *axis) {
            continue;
        }
        let on_axis: Vec<&(&str, &str, f64, SweepCell)> =
            points.iter().filter(|p| p.0 == *axis).collect();
        let mut series: Vec<String> = Vec::new();
        for p in &on_axis {
            if !series.iter().any(|s| s == p.1) {
                series.push(p.1.to_string());
            }
        }
        let mut values: Vec<f64> = on_axis.iter().map(|p| p.2).collect();
        values.sort_by(f64::total_cmp);
        values.dedup_by(|a, b| a.total_cmp(b).is_eq());
        let rows = values
            .into_iter()
            .map(|value| {
                let cells: Vec<Option<SweepCell>> = series
                    .iter()
                    .map(|s| {
                        on_axis
                            .iter()
                            .find(|p| p.1 == s && p.2.total_cmp(&value).is_eq())
                            .map(|p| p.3.clone())
                    })
                    .collect();
                let gain = match cells.as_slice() {
                    [Some(base), Some(other)] => Some(gain(base.map, other.map)),
                    _ => None,
                };
                SweepRow { value, cells, gain }
            })
            .collect();
        out.push(Sweep {
            axis: axis.to_string(),
            series,
            rows,
        });
    }
    Ok(out)
}

/// "yes" or "no".
fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

/// The table of a sweep: the value, MAP per series and, with two series, the gain columns.
pub fn sweep_table(sweep: &Sweep) -> Table {
    let mut header = vec![sweep.axis.clone()];
    header.extend(sweep.series.iter().map(|s| format!("{s}: MAP")));
    let two = sweep.series.len() == 2;
    if two {
        header.extend(["MAP gain", "larger std", "gain > 1 std", "gain > 2 std"].map(String::from));
    }
    let rows = sweep
        .rows
        .iter()
        .map(|row| {
            let mut cells = vec![format!("{}", row.value)];
            cells.extend(row.cells.iter().map(|c| match c {
                Some(c) => format!("{:.4} ± {:.4}", c.map.mean, c.map.std),
                None => "—".into(),
            }));
            if two {
                match row.gain {
                    Some(g) => cells.extend([
                        format!("{:+.4}", g.gain),
                        format!("{:.4}", g.std),
                        yes_no(g.exceeds_1_std),
                        yes_no(g.exceeds_2_std),
                    ]),
                    None => cells.extend(std::iter::repeat_n("—".to_string(), 4)),
                }
            }
            cells
        })
        .collect();
    Table { header, rows }
}

/// The text that says what the figures of a sweep are.
pub fn sweep_note(sweep: &Sweep) -> String {
    let baseline = sweep.series.first().map_or("", String::as_str);
    let mut text = format!(
        "MAP and Prec@10 against `{axis}` for the groups labelled `SERIES @ {axis}=VALUE`, one line per series. Each figure is the mean over the runs of one group; ± and the error bars are the sample standard deviation (n − 1) over the runs (seeds) of that group (0 for a single run). The baseline is `{baseline}`, the first series in flag order.",
        axis = sweep.axis
    );
    if let [first, second] = sweep.series.as_slice() {
        text.push_str(&format!(
            " `MAP gain` is the mean MAP of `{second}` minus the mean MAP of `{first}`; `larger std` is the larger of the two groups' sample stds of MAP; the last two columns say whether the gain exceeds 1× and 2× that std."
        ));
    } else if sweep.series.len() > 2 {
        text.push_str(" With more than two series the table has no gain columns.");
    }
    text
}

/// The section "Sweep over AXIS" of every sweep, with its chart.
pub fn sweep_sections(sweeps: &[Sweep]) -> anyhow::Result<(Vec<Section>, Vec<Chart>)> {
    let mut sections = Vec::new();
    let mut charts: Vec<Chart> = Vec::new();
    for sweep in sweeps {
        let base = format!("sweep-{}", slug(&sweep.axis));
        let mut file = format!("{base}.png");
        let mut n = 2;
        while charts.iter().any(|(f, _)| *f == file) {
            file = format!("{base}-{n}.png");
            n += 1;
        }
        let integer_x = sweep.rows.iter().all(|r| r.value.fract() == 0.0);
        let series = |pick: fn(&SweepCell) -> MeanStd| -> Vec<Series> {
            sweep
                .series
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    let figures: Vec<(f64, MeanStd)> = sweep
                        .rows
                        .iter()
                        .filter_map(|r| r.cells.get(i)?.as_ref().map(|c| (r.value, pick(c))))
                        .collect();
                    Series {
                        name: name.clone(),
                        points: figures.iter().map(|(x, m)| (*x, m.mean)).collect(),
                        errors: figures.iter().map(|(_, m)| m.std).collect(),
                        colour: i,
                    }
                })
                .collect()
        };
        let panel = |title: &str, metric: &str, series: Vec<Series>| LinePanel {
            title: format!("{title} against {}", sweep.axis),
            x_label: sweep.axis.clone(),
            y_label: metric.into(),
            series,
            integer_x,
            y_from_zero: false,
            legend_below: true,
        };
        charts.push((
            file.clone(),
            plots::line_panels(
                &[
                    panel("MAP (mean ± std over runs)", "MAP", series(|c| c.map)),
                    panel(
                        "Prec@10 (mean ± std over runs)",
                        "Prec@10",
                        series(|c| c.prec10),
                    ),
                ],
                plots::SWEEP_SIZE,
            )?,
        ));
        sections.push(Section {
            title: format!("Sweep over {}", sweep.axis),
            blocks: vec![
                Block::Text(sweep_note(sweep)),
                Block::Image {
                    file,
                    alt: format!("MAP and Prec@10 against {}", sweep.axis),
                },
                Block::Table(sweep_table(sweep)),
            ],
        });
    }
    Ok((sections, charts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::input::Group;

    fn ms(mean: f64, std: f64) -> MeanStd {
        MeanStd { mean, std }
    }

    #[test]
    fn gain_against_the_larger_std() {
        let g = gain(ms(0.10, 0.002), ms(0.105, 0.001));
        assert!((g.gain - 0.005).abs() < 1e-12);
        assert_eq!(g.std, 0.002);
        assert!(g.exceeds_1_std && g.exceeds_2_std);
        let g = gain(ms(0.10, 0.001), ms(0.103, 0.002));
        assert!(g.exceeds_1_std && !g.exceeds_2_std);
        let g = gain(ms(0.10, 0.004), ms(0.09, 0.001));
        assert!(!g.exceeds_1_std && !g.exceeds_2_std);
    }

    fn group(name: &str, maps: &[f64]) -> (LoadedGroup, GroupSummary) {
        let label = format!("{name}=x");
        let parsed: Group = label.parse().unwrap();
        let map = crate::report::statistics::mean_std(maps);
        (
            LoadedGroup {
                name: parsed.name.clone(),
                sweep: parsed.sweep,
                runs: Vec::new(),
            },
            GroupSummary {
                name: parsed.name,
                runs: maps.len(),
                num_parameters: 1,
                metrics: vec![("map".into(), map), ("prec@10".into(), ms(0.2, 0.0))],
                seconds_per_epoch: ms(1.0, 0.0),
            },
        )
    }

    #[test]
    fn sweep_table_numbers() {
        let (groups, summaries): (Vec<_>, Vec<_>) = [
            group("teacher", &[0.3]),
            group("alone @ d=10", &[0.10, 0.12]),
            group("rd @ d=10", &[0.13, 0.13]),
            group("alone @ d=5", &[0.08, 0.10]),
            group("rd @ d=5", &[0.095, 0.095]),
            group("alone @ lr=0.01", &[0.1]),
        ]
        .into_iter()
        .unzip();
        let sweeps = sweeps(&groups, &summaries).unwrap();
        assert_eq!(sweeps.len(), 2);
        let d = &sweeps[0];
        assert_eq!(
            (d.axis.as_str(), d.series.clone()),
            ("d", vec!["alone".to_string(), "rd".into()])
        );
        assert_eq!(
            d.rows.iter().map(|r| r.value).collect::<Vec<_>>(),
            vec![5.0, 10.0]
        );
        let std = (2.0f64 * 0.01f64.powi(2)).sqrt();
        // d=5: gain 0.095 - 0.09 = 0.005 < std 0.0141.
        let g5 = d.rows[0].gain.unwrap();
        assert!((g5.gain - 0.005).abs() < 1e-12 && (g5.std - std).abs() < 1e-12);
        assert!(!g5.exceeds_1_std && !g5.exceeds_2_std);
        // d=10: gain 0.13 - 0.11 = 0.02: above 1 std (0.0141), below 2.
        let g10 = d.rows[1].gain.unwrap();
        assert!((g10.gain - 0.02).abs() < 1e-12);
        assert!(g10.exceeds_1_std && !g10.exceeds_2_std);
        let table = sweep_table(d);
        assert_eq!(table.header[0], "d");
        assert_eq!(table.header.len(), 7);
        assert_eq!(
            table.rows[1],
            vec![
                "10",
                "0.1100 ± 0.0141",
                "0.1300 ± 0.0000",
                "+0.0200",
                "0.0141",
                "yes",
                "no"
            ]
        );
        // One series: no gain columns.
        assert_eq!(sweeps[1].rows[0].gain, None);
        assert_eq!(sweep_table(&sweeps[1]).header, vec!["lr", "alone: MAP"]);
        assert!(sweep_note(d).contains("The baseline is `alone`"));

        let (sections, charts) = sweep_sections(&sweeps).unwrap();
        assert_eq!(sections[0].title, "Sweep over d");
        assert_eq!(charts[0].0, "sweep-d.png");
        assert_eq!(charts[1].0, "sweep-lr.png");

        // The same point twice is an error, not a silent overwrite.
        let (groups, summaries): (Vec<_>, Vec<_>) =
            [group("a @ d=5", &[0.1]), group("a @ d=5.0", &[0.1])]
                .into_iter()
                .unzip();
        assert!(super::sweeps(&groups, &summaries).is_err());
    }

    #[test]
    fn a_missing_series_leaves_a_gap() {
        let (groups, summaries): (Vec<_>, Vec<_>) = [
            group("a @ d=5", &[0.1]),
            group("b @ d=10", &[0.1]),
            group("a @ d=10", &[0.1]),
        ]
        .into_iter()
        .unzip();
        let sweeps = sweeps(&groups, &summaries).unwrap();
        let table = sweep_table(&sweeps[0]);
        assert_eq!(table.rows[0][2], "—");
        assert_eq!(table.rows[0][3], "—");
        assert!(sweeps[0].rows[1].gain.is_some());
    }
}
