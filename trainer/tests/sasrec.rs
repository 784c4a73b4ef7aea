//! SASRec end to end with the real binaries: a SASRec teacher trained by `trainer train` and
//! served by teacher-svc distils a SASRec student and a Caser student with every method (RD,
//! CD, RRD, DCD, RCE-KD); the SASRec student's training queries are its positions, pulled in
//! shards by `trainer pull --student-model sasrec` to the same student as a pull from the
//! teacher; the same seed gives the same SASRec; bad SASRec settings are refused.

use std::path::Path;

mod support;
use support::{SMALL_METHOD_LISTS, p, prepared, pull_two_shards, start_teacher, trainer};

fn run(args: &[String]) -> serde_json::Value {
    let (ok, stdout, err) = trainer(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

#[test]
fn a_sasrec_teacher_distils_sasrec_and_caser_students_with_every_method() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "150", "200", "12");
    let teacher_ck = dir.path().join("teacher");
    let train = |out: &Path| {
        run(&strings(&[
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(out),
            "--model",
            "sasrec",
            "--dim",
            "16",
            "--num-heads",
            "2",
            "--seq-len",
            "12",
            "--epochs",
            "3",
            "--json",
            "-",
        ]))
    };
    let trained = train(&teacher_ck);
    let teacher_manifest = manifest(&teacher_ck);
    assert_eq!(teacher_manifest["model"]["kind"], "sasrec");
    assert_eq!(teacher_manifest["model"]["num_heads"], 2);
    assert_eq!(
        teacher_manifest["training"]["window"]["query_set"],
        "positions"
    );
    // SASRec's reference defaults where no flag was given: batch 128, no weight decay.
    assert_eq!(teacher_manifest["training"]["optim"]["batch_size"], 128);
    assert_eq!(teacher_manifest["training"]["optim"]["l2"], 0.0);
    // The same seed, the same SASRec.
    let again = dir.path().join("teacher-again");
    let retrained = train(&again);
    assert_eq!(weights(&again), weights(&teacher_ck));
    assert_eq!(trained["metrics"], retrained["metrics"]);

    let teacher = start_teacher(&data, &teacher_ck, "127.0.0.1:0");
    let cache = dir.path().join("cache");
    let distill = |student: &[&str], method: &str, out: &Path| {
        let mut args = strings(&[
            "distill",
            "--data",
            &p(&data),
            "--teacher",
            &teacher.addr,
            "--cache-dir",
            &p(&cache),
            "--out",
            &p(out),
            "--method",
            method,
            "--epochs",
            "2",
            "--seed",
            "4",
            "--json",
            "-",
        ]);
        args.extend(strings(student));
        args.extend(strings(SMALL_METHOD_LISTS));
        args
    };
    let sasrec_student = ["--model", "sasrec", "--dim", "8", "--num-blocks", "1"];
    let caser_student = ["--model", "caser", "--dim", "8"];
    for (name, student) in [
        ("sasrec", &sasrec_student[..]),
        ("caser", &caser_student[..]),
    ] {
        for method in ["rd", "cd", "rrd", "dcd", "rcekd"] {
            let out = dir.path().join(format!("{name}-{method}"));
            let json = run(&distill(student, method, &out));
            assert_eq!(json["method"], method, "{name}");
            let map = json["metrics"]["map"].as_f64().unwrap();
            assert!(map > 0.0 && map.is_finite(), "{name} {method}: {json}");
            let m = manifest(&out);
            assert_eq!(m["model"]["kind"], name);
            assert_eq!(m["teacher"]["model_kind"], "sasrec");
            let expected_set = if name == "sasrec" {
                serde_json::json!("positions")
            } else {
                serde_json::Value::Null
            };
            assert_eq!(m["training"]["window"]["query_set"], expected_set);
            for record in m["training"]["history"].as_array().unwrap() {
                assert!(
                    record["l_d"].as_f64().unwrap().is_finite(),
                    "{name} {method}"
                );
            }
        }
    }

    // `trainer pull --student-model sasrec` in two shards, then distil from the shards alone:
    // the same position queries, so the same student as the pull from the teacher.
    let shards = dir.path().join("shards");
    pull_two_shards(
        &data,
        &teacher.addr,
        &shards,
        &["--student-model", "sasrec"],
    );
    let merged = dir.path().join("sasrec-rd-merged");
    let mut args = distill(&sasrec_student, "rd", &merged);
    let at = args.iter().position(|a| a == "--teacher").unwrap();
    args.drain(at..at + 2);
    let at = args.iter().position(|a| a == "--cache-dir").unwrap();
    args[at + 1] = p(&shards);
    args.extend(strings(&["--shard-count", "2"]));
    let json = run(&args);
    assert_eq!(json["pull"]["source"], "shards");
    assert_eq!(weights(&merged), weights(&dir.path().join("sasrec-rd")));
}

#[test]
fn bad_sasrec_settings_are_refused_with_the_flag_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "40", "30", "3");
    for (extra, needle) in [
        (
            &["--dim", "10", "--num-heads", "3"][..],
            "multiple of the heads",
        ),
        (&["--targets", "2"][..], "--targets must be 1"),
        (&["--num-blocks", "0"][..], "--num-blocks"),
    ] {
        let mut args = vec![
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            "/nonexistent/never-written",
            "--model",
            "sasrec",
            "--epochs",
            "1",
        ];
        args.extend(extra);
        let (ok, _, err) = trainer(&args);
        assert!(!ok, "{extra:?} was accepted");
        assert!(err.contains(needle), "{extra:?}: {err}");
    }
}
