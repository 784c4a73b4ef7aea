//! The settings behind the report's figures: per group, the training settings its runs'
//! manifests record (`training.optim`, `training.window`) and, for distilled runs, those of
//! Ranking Distillation (`training.rd`) or of the method after RD that trained them
//! (`training.method_config`). A cell in which the runs of a group differ (other than
//! by seed) reads `mixed`; a setting the runs do not record reads `—`.

use serde::Serialize;
use serde_json::Value;

use crate::report::document::{Block, Section, Table};
use crate::report::input::{LoadedGroup, Run};

/// What a cell shows when the runs of a group differ in a setting.
pub const MIXED: &str = "mixed";
/// What a cell shows when the runs do not record a setting.
pub const ABSENT: &str = "—";

/// Training columns: title and the path of the setting in the manifest's `training` object
/// (`model` and `seeds` are read apart).
const TRAINING: [(&str, &[&str]); 6] = [
    ("epochs", &["optim", "epochs"]),
    ("lr", &["optim", "learning_rate"]),
    ("l2", &["optim", "l2"]),
    ("batch", &["optim", "batch_size"]),
    ("negatives", &["optim", "negatives"]),
    ("BCE", &["optim", "bce"]),
];

/// Ranking Distillation columns, keys of `training.rd`.
const RD: [&str; 10] = [
    "k",
    "lambda",
    "mu",
    "samples",
    "alpha",
    "loss_form",
    "weighting",
    "renormalise",
    "dynamic_start_epoch",
    "exclude_seen",
];

/// The settings of one group: column title to value, in table order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSettings {
    /// The group's label.
    pub group: String,
    /// Model, window, optimisation settings and the seeds of the runs.
    pub training: Vec<(String, String)>,
    /// Ranking Distillation settings (`None` when no run of the group is distilled with RD).
    pub rd: Option<Vec<(String, String)>>,
    /// The method after RD and its settings (`None` unless a run of the group used one).
    pub method: Option<Vec<(String, String)>>,
}

/// A method run's settings in one cell: `key value` pairs of `training.method_config` in key
/// order, and the teacher lists' exclusion.
fn method_settings(run: &Run) -> String {
    let Some(Value::Object(config)) = setting(run, &["method_config"]) else {
        return ABSENT.to_string();
    };
    let mut pairs: Vec<String> = config
        .iter()
        .filter(|(key, _)| key.as_str() != "method")
        .map(|(key, value)| format!("{key} {}", format_value(Some(value))))
        .collect();
    pairs.sort();
    pairs.push(format!(
        "exclude_seen {}",
        format_value(setting(run, &["rd", "exclude_seen"]))
    ));
    pairs.join(", ")
}

/// A number as the settings table shows it: integers plain, small values in exponent form.
fn number(v: f64) -> String {
    if v != 0.0 && v.abs() < 1e-3 {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

/// A setting's value as text; [`ABSENT`] when missing.
pub fn format_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => ABSENT.into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => number(f),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// The value of a group's runs: theirs when they all agree, [`MIXED`] when they differ,
/// [`ABSENT`] for no runs.
pub fn combine(values: &[String]) -> String {
    match values.split_first() {
        None => ABSENT.into(),
        Some((first, rest)) if rest.iter().all(|v| v == first) => first.clone(),
        Some(_) => MIXED.into(),
    }
}

/// A setting of a run by path in its `training` settings.
fn setting<'a>(run: &'a Run, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    rest.iter()
        .try_fold(run.settings.get(*first)?, |value, key| value.get(key))
}

/// The window of a run as `L=5 T=1`.
fn window(run: &Run) -> String {
    let l = setting(run, &["window", "sequence_length"]);
    let t = setting(run, &["window", "target_length"]);
    if l.is_none() && t.is_none() {
        return ABSENT.into();
    }
    format!("L={} T={}", format_value(l), format_value(t))
}

/// The seeds of the runs, distinct, in run order.
fn seeds(runs: &[Run]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for run in runs {
        let seed = format_value(setting(run, &["optim", "seed"]));
        if !seen.contains(&seed) {
            seen.push(seed);
        }
    }
    if seen.is_empty() {
        ABSENT.into()
    } else {
        seen.join(", ")
    }
}

/// The settings of a group, with [`MIXED`] where its runs differ.
pub fn group_settings(group: &LoadedGroup) -> GroupSettings {
    let per_run = |read: &dyn Fn(&Run) -> String| -> String {
        combine(&group.runs.iter().map(read).collect::<Vec<_>>())
    };
    let mut training = vec![
        ("model".to_string(), per_run(&|r| r.model.clone())),
        ("L, T".to_string(), per_run(&window)),
    ];
    for (title, path) in TRAINING {
        training.push((
            title.to_string(),
            per_run(&|r| format_value(setting(r, path))),
        ));
    }
    training.push(("seeds".to_string(), seeds(&group.runs)));
    let methods = group
        .runs
        .iter()
        .any(|r| r.settings.contains_key("method_config"));
    let distilled = group.runs.iter().any(|r| r.settings.contains_key("rd"));
    let rd = (distilled && !methods).then(|| {
        RD.iter()
            .map(|key| {
                (
                    key.to_string(),
                    per_run(&|r| format_value(setting(r, &["rd", key]))),
                )
            })
            .collect()
    });
    let method = methods.then(|| {
        vec![
            (
                "method".to_string(),
                per_run(&|r| format_value(setting(r, &["method_config", "method"]))),
            ),
            ("settings".to_string(), per_run(&method_settings)),
        ]
    });
    GroupSettings {
        group: group.name.clone(),
        training,
        rd,
        method,
    }
}

/// The settings of every group.
pub fn settings(groups: &[LoadedGroup]) -> Vec<GroupSettings> {
    groups.iter().map(group_settings).collect()
}

/// A table with a `group` column and one column per setting of `pick`.
fn table<'a>(
    settings: &'a [GroupSettings],
    pick: impl Fn(&'a GroupSettings) -> Option<&'a Vec<(String, String)>>,
) -> Option<Table> {
    let picked: Vec<(&str, &Vec<(String, String)>)> = settings
        .iter()
        .filter_map(|s| pick(s).map(|cells| (s.group.as_str(), cells)))
        .collect();
    let (_, first) = picked.first()?;
    let mut header = vec!["group".to_string()];
    header.extend(first.iter().map(|(title, _)| title.clone()));
    let rows = picked
        .iter()
        .map(|(group, cells)| {
            let mut row = vec![group.to_string()];
            row.extend(cells.iter().map(|(_, v)| v.clone()));
            row
        })
        .collect();
    Some(Table { header, rows })
}

/// The training settings table (every group).
pub fn training_table(settings: &[GroupSettings]) -> Option<Table> {
    table(settings, |s| Some(&s.training))
}

/// The Ranking Distillation settings table (the distilled groups), if any.
pub fn rd_table(settings: &[GroupSettings]) -> Option<Table> {
    table(settings, |s| s.rd.as_ref())
}

/// The section "Settings".
pub fn settings_section(settings: &[GroupSettings]) -> Section {
    let mut blocks = vec![Block::Text(format!(
        "The settings every table of this report used, per group, as the runs' manifests record them (`training.optim`, `training.window`, `training.rd`, `training.method_config`). `{MIXED}`: the runs of the group differ in that setting (the seed is not compared; `seeds` lists them); `{ABSENT}`: the runs do not record it (e.g. `BCE`, the form of the BCE loss, for runs written before it was recorded)."
    ))];
    blocks.extend(training_table(settings).map(Block::Table));
    if let Some(rd) = rd_table(settings) {
        blocks.push(Block::Text(
            "Ranking Distillation settings of the distilled groups (`trainer distill` flags: `--rd-k`, `--lambda`, `--mu`, `--samples`, `--alpha`, `--loss-form`, `--weighting`, `--renormalise`, `--dynamic-start-epoch`, `--exclude-seen`).".into(),
        ));
        blocks.push(Block::Table(rd));
    }
    if let Some(methods) = table(settings, |s| s.method.as_ref()) {
        blocks.push(Block::Text(
            "Settings of the groups distilled with a method after RD (`trainer distill --method`; the keys are the method's flags without their prefix, e.g. `top_n` is `--rrd-top-n` for RRD; `exclude_seen` is `--exclude-seen`).".into(),
        ));
        blocks.push(Block::Table(methods));
    }
    Section {
        title: "Settings".into(),
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rankdistill_core::metrics::Metrics;

    fn run(settings: Value) -> Run {
        Run {
            dir: "r".into(),
            metrics: Metrics {
                users: 0,
                at: Vec::new(),
                map: 0.0,
            },
            num_parameters: 1,
            seconds_per_epoch: 1.0,
            version: "v".into(),
            model: "caser d=8".into(),
            history: Vec::new(),
            weighting: None,
            settings: settings.as_object().cloned().unwrap_or_default(),
        }
    }

    fn optim(seed: u64, lr: f64) -> Value {
        serde_json::json!({
            "epochs": 30, "batch_size": 512, "learning_rate": lr, "l2": 1e-6,
            "negatives": 3, "seed": seed, "eval_every": 0
        })
    }

    fn group(runs: Vec<Run>) -> LoadedGroup {
        LoadedGroup {
            name: "g".into(),
            sweep: None,
            runs,
        }
    }

    fn cell<'a>(cells: &'a [(String, String)], title: &str) -> &'a str {
        &cells.iter().find(|(t, _)| t == title).unwrap().1
    }

    #[test]
    fn method_groups_get_their_own_settings_and_no_rd_row() {
        let settings = serde_json::json!({
            "optim": optim(1, 0.001),
            "rd": {"k": 10, "exclude_seen": true},
            "method_config": {"method": "rrd", "top_n": 500, "k": 100},
        });
        let s = group_settings(&group(vec![run(settings)]));
        assert!(s.rd.is_none());
        let method = s.method.unwrap();
        assert_eq!(cell(&method, "method"), "rrd");
        assert_eq!(
            cell(&method, "settings"),
            "k 100, top_n 500, exclude_seen true"
        );
        let rd_only = serde_json::json!({"optim": optim(1, 0.001), "rd": {"k": 10}});
        let s = group_settings(&group(vec![run(rd_only)]));
        assert!(s.method.is_none() && s.rd.is_some());
    }

    #[test]
    fn combine_says_mixed_when_runs_differ() {
        assert_eq!(combine(&["a".into(), "a".into()]), "a");
        assert_eq!(combine(&["a".into(), "b".into()]), MIXED);
        assert_eq!(combine(&["—".into(), "b".into()]), MIXED);
        assert_eq!(combine(&[]), ABSENT);
    }

    #[test]
    fn seeds_do_not_make_a_group_mixed() {
        let window = serde_json::json!({"sequence_length": 5, "target_length": 1});
        let g = group(vec![
            run(serde_json::json!({"window": window, "optim": optim(1, 1e-3)})),
            run(serde_json::json!({"window": window, "optim": optim(2, 1e-3)})),
        ]);
        let s = group_settings(&g);
        assert_eq!(cell(&s.training, "model"), "caser d=8");
        assert_eq!(cell(&s.training, "L, T"), "L=5 T=1");
        assert_eq!(cell(&s.training, "lr"), "0.001");
        assert_eq!(cell(&s.training, "l2"), "1e-6");
        assert_eq!(cell(&s.training, "batch"), "512");
        assert_eq!(cell(&s.training, "BCE"), ABSENT);
        assert_eq!(cell(&s.training, "seeds"), "1, 2");
        assert!(s.rd.is_none());
        assert!(rd_table(&[s]).is_none());
    }

    #[test]
    fn differing_settings_are_mixed() {
        let mut with_bce = optim(2, 1e-3);
        with_bce["bce"] = "mean".into();
        let rd = |k: u64| {
            serde_json::json!({"k": k, "lambda": 1.0, "mu": 0.1, "samples": 100, "alpha": 1.0,
                "loss_form": "reference", "weighting": "hybrid", "renormalise": true,
                "dynamic_start_epoch": 10, "exclude_seen": false})
        };
        let g = group(vec![
            run(serde_json::json!({"optim": optim(1, 1e-3), "rd": rd(10)})),
            run(serde_json::json!({"optim": with_bce, "rd": rd(5)})),
        ]);
        let s = group_settings(&g);
        assert_eq!(cell(&s.training, "lr"), "0.001");
        assert_eq!(cell(&s.training, "BCE"), MIXED);
        assert_eq!(cell(&s.training, "L, T"), ABSENT);
        let rd_cells = s.rd.clone().unwrap();
        assert_eq!(cell(&rd_cells, "k"), MIXED);
        assert_eq!(cell(&rd_cells, "lambda"), "1");
        assert_eq!(cell(&rd_cells, "weighting"), "hybrid");
        assert_eq!(cell(&rd_cells, "renormalise"), "true");
        let table = rd_table(std::slice::from_ref(&s)).unwrap();
        assert_eq!(table.header[0], "group");
        assert_eq!(table.header.len(), 1 + RD.len());
        // A distilled and a plain run in one group: the RD cells are mixed.
        let g = group(vec![
            run(serde_json::json!({"optim": optim(1, 1e-3), "rd": rd(10)})),
            run(serde_json::json!({"optim": optim(1, 1e-2)})),
        ]);
        let s = group_settings(&g);
        assert_eq!(cell(&s.training, "lr"), MIXED);
        assert_eq!(cell(s.rd.as_ref().unwrap(), "k"), MIXED);
        let section = settings_section(&[s]);
        assert_eq!(section.title, "Settings");
        assert_eq!(section.blocks.len(), 4);
    }
}
