//! `trainer report` end to end: a teacher, a student alone and a distilled student trained
//! with per-epoch evaluation, both services under rd-loadgen, then a report folder whose PNGs
//! decode with the expected sizes and whose markdown and HTML reference them, and a second one
//! with sweep groups (`SERIES @ AXIS=VALUE`).

use std::path::Path;

mod support;
use support::{Server, dataset_and_teacher, p, texts, trainer_command, trainer_ok, workspace_bin};

/// Decodes a PNG fully; returns its width and height.
fn png_size(path: &Path) -> (u32, u32) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{} is not a PNG: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let pixels = &buf[..info.buffer_size()];
    // A chart, not a blank canvas: some pixels are far from white.
    assert!(
        pixels.iter().filter(|&&v| v < 128).count() > 1000,
        "{} is blank",
        path.display()
    );
    (info.width, info.height)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn report_folder_has_charts_markdown_and_html() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let epochs = ["--epochs", "3", "--eval-every", "1"];
    let mut teacher_flags = vec!["--dim", "16"];
    teacher_flags.extend(epochs);
    dataset_and_teacher(dir, "200", "120", "6", &teacher_flags);
    let data = p(&dir.join("data"));
    let mut alone = vec!["train", "--data", &data, "--out", "", "--dim", "8"];
    let alone_dir = p(&dir.join("student-alone"));
    alone[4] = &alone_dir;
    alone.extend(epochs);
    trainer_ok(&alone);

    let teacher = Server::teacher(&dir.join("data"), &dir.join("teacher"));
    let cache = p(&dir.join("cache"));
    // `pull --json`: the figures on stdout, the text on stderr.
    let out = trainer_command(&[
        "pull",
        "--data",
        &data,
        "--teacher",
        &teacher.addr,
        "--cache-dir",
        &cache,
        "--json",
    ])
    .output()
    .unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let pulled = json(&stdout);
    assert_eq!(pulled["command"], "pull");
    assert_eq!(pulled["shard"]["count"], 1);
    assert_eq!(pulled["source"], "teacher");
    assert_eq!(pulled["queries"], pulled["total_queries"]);
    assert!(stderr.contains("pulled shard 0 of 1"), "{stderr}");

    let rd_dir = p(&dir.join("student-rd"));
    let distill_json = dir.join("distill.json");
    let mut distill = vec![
        "distill",
        "--data",
        &data,
        "--teacher",
        &teacher.addr,
        "--cache-dir",
        &cache,
        "--out",
        &rd_dir,
        "--dim",
        "8",
        "--dynamic-start-epoch",
        "1",
        "--samples",
        "20",
    ];
    let distill_json_arg = p(&distill_json);
    distill.extend(epochs);
    distill.extend(["--json", &distill_json_arg]);
    let stdout = trainer_ok(&distill);
    assert!(stdout.contains("from the cache"), "{stdout}");
    let distilled = json(&std::fs::read_to_string(&distill_json).unwrap());
    for key in [
        "command",
        "out",
        "version",
        "model",
        "num_parameters",
        "metrics",
        "history",
        "teacher",
        "pull",
        "rd",
    ] {
        assert!(
            distilled.get(key).is_some(),
            "distill --json lacks {key}: {distilled}"
        );
    }
    let history = distilled["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    for (i, record) in history.iter().enumerate() {
        assert_eq!(record["epoch"], i + 1);
        assert!(record["metrics"]["map"].as_f64().unwrap() > 0.0, "{record}");
        assert_eq!(record["rd_weight_mean"].as_array().unwrap().len(), 10);
        assert_eq!(record["rd_dynamic"], i >= 1);
    }
    // Position weights are normalised over the K positions: their means sum to 1.
    let first: f64 = history[0]["rd_weight_mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .sum();
    assert!((first - 1.0).abs() < 1e-4, "{first}");
    // The manifest keeps the same history.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("student-rd/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(&manifest["training"]["history"], &distilled["history"]);

    // Both services under load, a fixed number of requests each.
    let student = Server::student(&dir.join("data"), &dir.join("student-rd"));
    teacher.wait_serving();
    student.wait_serving();
    let loadgen = |target: &str, addr: &str| {
        let file = dir.join(format!("latency-{target}.json"));
        let out = std::process::Command::new(workspace_bin("rd-loadgen"))
            .args([
                "--target",
                target,
                "--addr",
                &format!("http://{addr}"),
                "--data",
                &data,
            ])
            .args(["--requests", "200", "--warmup-s", "0", "--out", &p(&file)])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", texts(&out).1);
        let report = json(&std::fs::read_to_string(&file).unwrap());
        let counted: u64 = report["histogram"]["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["count"].as_u64().unwrap())
            .sum();
        assert_eq!(counted, report["ok"].as_u64().unwrap());
        assert_eq!(report["ok"], 200);
        file
    };
    let teacher_latency = loadgen("teacher", &teacher.addr);
    let student_latency = loadgen("student", &student.addr);
    drop(student);
    drop(teacher);

    let report_dir = dir.join("report");
    let groups = [
        format!("teacher={}", p(&dir.join("teacher"))),
        format!("student alone={alone_dir}"),
        format!("student + RD={rd_dir}"),
    ];
    let latencies = [
        format!("teacher-svc={}", p(&teacher_latency)),
        format!("student-svc={}", p(&student_latency)),
    ];
    let report_dir_arg = p(&report_dir);
    let mut args = vec!["report"];
    for g in &groups {
        args.extend(["--group", g.as_str()]);
    }
    for l in &latencies {
        args.extend(["--latency", l.as_str()]);
    }
    args.extend(["--out", &report_dir_arg, "--html", "--json", "-"]);
    let out = trainer_command(&args).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let summary = json(&stdout);
    assert_eq!(summary["command"], "report");
    assert_eq!(summary["groups"].as_array().unwrap().len(), 3);
    assert_eq!(summary["groups"][2]["name"], "student + RD");
    assert_eq!(summary["latency"].as_array().unwrap().len(), 2);
    assert!(
        stderr.contains("| teacher |"),
        "the table goes to stderr with --json: {stderr}"
    );

    let charts = [
        ("learning-curves.png", (1400, 520)),
        ("metrics.png", (1200, 520)),
        ("rd-weights-student-rd.png", (900, 520)),
        ("latency.png", (1200, 520)),
    ];
    let files: Vec<String> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let markdown = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    let html = std::fs::read_to_string(report_dir.join("report.html")).unwrap();
    for (file, size) in charts {
        assert_eq!(png_size(&report_dir.join(file)), size, "{file}");
        assert!(files.contains(&file.to_string()), "{files:?}");
        assert!(
            markdown.contains(&format!("]({file})")),
            "report.md lacks {file}"
        );
        assert!(
            html.contains(&format!("<img src=\"{file}\"")),
            "report.html lacks {file}"
        );
    }
    // Exactly these charts: nothing stale, nothing unreferenced.
    let pngs = std::fs::read_dir(&report_dir)
        .unwrap()
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "png")
        })
        .count();
    assert_eq!(pngs, charts.len());
    // The comparison table has every group with its parameter count, and the weight table the
    // switch from position to hybrid weights.
    for (name, run) in [
        ("teacher", "teacher"),
        ("student alone", "student-alone"),
        ("student + RD", "student-rd"),
    ] {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(run).join("manifest.json")).unwrap())
                .unwrap();
        let params = m["num_parameters"].as_u64().unwrap();
        let with_commas = params
            .to_string()
            .as_bytes()
            .rchunks(3)
            .rev()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(",");
        assert!(
            markdown.contains(&format!("| {name} | 1 | {with_commas} |")),
            "{name}: {markdown}"
        );
    }
    assert!(
        markdown.contains("epoch 1 (position)") && markdown.contains("epoch 2 (hybrid)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| teacher-svc | teacher | 1 | 200 | 0 |"),
        "{markdown}"
    );
    let summary_file = json(&std::fs::read_to_string(report_dir.join("summary.json")).unwrap());
    assert_eq!(summary_file["groups"], summary["groups"]);
    // The reference nDCG in the comparison table, and the settings of every group.
    assert!(markdown.contains("| nDCG_ref@10 |"), "{markdown}");
    assert!(markdown.contains("## Settings"), "{markdown}");
    assert!(
        markdown.contains("| student alone | caser d=8 | L=5 T=1 | 3 |"),
        "{markdown}"
    );
    // The distilled group's RD settings: K = 10, the flags given above.
    assert!(
        markdown.contains(
            "| student + RD | 10 | 1 | 0.1 | 20 | 1 | reference | hybrid | false | 1 | false |"
        ),
        "{markdown}"
    );
    assert_eq!(summary_file["sweeps"], serde_json::json!([]));
    assert_eq!(summary_file["settings"].as_array().unwrap().len(), 3);

    // Sweep groups: `SERIES @ AXIS=VALUE`; the teacher (d=16) stands in as the student alone
    // at d=16, where the distilled series has no run.
    let sweep_dir = dir.join("sweep-report");
    let sweep_groups = [
        format!("teacher={}", p(&dir.join("teacher"))),
        format!("student alone @ d=16={}", p(&dir.join("teacher"))),
        format!("student alone @ d=8={alone_dir},{alone_dir}"),
        format!("student + RD @ d=8={rd_dir}"),
    ];
    let sweep_dir_arg = p(&sweep_dir);
    let mut args = vec!["report"];
    for g in &sweep_groups {
        args.extend(["--group", g.as_str()]);
    }
    args.extend(["--out", &sweep_dir_arg, "--json", "-"]);
    let out = trainer_command(&args).output().unwrap();
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let summary = json(&stdout);
    // Sweep groups stay in the comparison table.
    assert_eq!(summary["groups"].as_array().unwrap().len(), 4);
    assert_eq!(summary["groups"][3]["name"], "student + RD @ d=8");
    assert!(stderr.contains("Sweep over d"), "{stderr}");
    let markdown = std::fs::read_to_string(sweep_dir.join("report.md")).unwrap();
    assert!(markdown.contains("## Sweep over d"), "{markdown}");
    assert!(
        markdown.contains("The baseline is `student alone`"),
        "{markdown}"
    );
    assert!(markdown.contains("](sweep-d.png)"), "{markdown}");
    assert_eq!(png_size(&sweep_dir.join("sweep-d.png")), (1400, 520));
    let sweeps =
        json(&std::fs::read_to_string(sweep_dir.join("summary.json")).unwrap())["sweeps"].clone();
    assert_eq!(sweeps, summary["sweeps"]);
    assert_eq!(sweeps.as_array().unwrap().len(), 1);
    assert_eq!(sweeps[0]["axis"], "d");
    assert_eq!(
        sweeps[0]["series"],
        serde_json::json!(["student alone", "student + RD"])
    );
    let rows = sweeps[0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["value"], 8.0);
    assert_eq!(rows[1]["value"], 16.0);
    assert!(rows[1]["cells"][1].is_null() && rows[1]["gain"].is_null());
    let map = |i: usize| rows[0]["cells"][i]["map"]["mean"].as_f64().unwrap();
    let gain = &rows[0]["gain"];
    assert!((gain["gain"].as_f64().unwrap() - (map(1) - map(0))).abs() < 1e-12);
    // The same run twice and a single run: both stds are 0.
    assert_eq!(gain["std"], 0.0);
    assert_eq!(gain["exceeds_1_std"], gain["gain"].as_f64().unwrap() > 0.0);
    assert_eq!(rows[0]["cells"][0]["runs"], 2);
    // A VALUE that is not a number is named with the flag.
    let bad = format!("student @ d=big={alone_dir}");
    let out = trainer_command(&["report", "--group", &bad])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = texts(&out).1;
    assert!(
        stderr.contains("--group 'student @ d=big=") && stderr.contains("is not a number"),
        "{stderr}"
    );

    // Bad inputs are named.
    let out = trainer_command(&[
        "report",
        "--group",
        &groups[0],
        "--latency",
        "x=/nonexistent.json",
    ])
    .output()
    .unwrap();
    assert!(!out.status.success());
    assert!(
        texts(&out)
            .1
            .contains("--latency x: cannot read /nonexistent.json"),
        "{}",
        texts(&out).1
    );
    let missing = format!("nothing={}", p(&dir.join("nothing")));
    let out = trainer_command(&["report", "--group", &missing])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        texts(&out).1.contains("cannot read run"),
        "{}",
        texts(&out).1
    );
}
