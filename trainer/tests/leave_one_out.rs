//! SASRec's evaluation protocol: `prepare --protocol leave-one-out` and `evaluate
//! --sampled-negatives N`, on a small synthetic dataset and a one-epoch model.

use std::path::Path;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_core::split::SplitProtocol;
use rankdistill_trainer::evaluate::{HeldOut, held_out_queries};

mod support;
use support::{p, trainer, trainer_env, trainer_ok};

/// Parses stdout as the one JSON document of `--json`.
fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}"))
}

/// The entry of cut-off `k` in an `at` array.
fn at(metrics: &serde_json::Value, k: u64) -> &serde_json::Value {
    metrics["at"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["k"] == k)
        .unwrap_or_else(|| panic!("no k = {k} in {metrics}"))
}

fn evaluate(data: &Path, model: &str, extra: &[&str]) -> serde_json::Value {
    let data = p(data);
    let mut args = vec!["evaluate", "--data", &data, "--model", model, "--json"];
    args.extend_from_slice(extra);
    json(&trainer_ok(&args))
}

#[test]
fn leave_one_out_data_gives_sampled_metrics_and_temporal_data_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let udata = p(&dir.join("u.data"));
    // 1,000 items, so 100 negatives are a small sample of the catalogue.
    trainer_ok(&[
        "gen-synthetic",
        "--out",
        &udata,
        "--users",
        "200",
        "--items",
        "1000",
        "--seed",
        "5",
    ]);

    // Leave-one-out: one validation and one test item per user (every user has >= 10).
    let loo = dir.join("loo");
    let prepared = json(&trainer_ok(&[
        "prepare",
        "--input",
        &udata,
        "--out",
        &p(&loo),
        "--protocol",
        "leave-one-out",
        "--json",
    ]));
    assert_eq!(prepared["protocol"], "leave-one-out");
    assert!(prepared.get("test_fraction").is_none(), "{prepared}");
    let stats = &prepared["stats"];
    assert_eq!(stats["users"], 200);
    for part in ["test", "valid"] {
        let kept = stats[format!("{part}_rows")].as_u64().unwrap();
        let dropped = stats[format!("{part}_dropped")].as_u64().unwrap();
        assert_eq!(kept + dropped, 200, "{stats}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(loo.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["origin"]["protocol"], "leave-one-out");

    // The test query continues with the validation item; the validation query does not.
    let data = PreparedDataset::load(&loo).unwrap();
    assert_eq!(data.protocol(), Some(SplitProtocol::LeaveOneOut));
    let user = (0..data.num_users())
        .find(|&u| data.split.valid[u].len() == 1)
        .unwrap();
    let valid_item = data.split.valid[user][0];
    let last_train = *data.split.train[user].last().unwrap();
    let test_query = held_out_queries(&data, HeldOut::Test, &[user as u32], 5);
    let valid_query = held_out_queries(&data, HeldOut::Valid, &[user as u32], 5);
    // Input ids are item + 1 (0 pads).
    assert_eq!(test_query.last(), Some(&(valid_item + 1)));
    assert_eq!(valid_query.last(), Some(&(last_train + 1)));
    assert_eq!(test_query[..4], valid_query[1..]);

    let model = p(&dir.join("model"));
    trainer_ok(&[
        "train",
        "--data",
        &p(&loo),
        "--out",
        &model,
        "--dim",
        "8",
        "--epochs",
        "1",
        "--seed",
        "3",
    ]);
    let sampled_args = ["--sampled-negatives", "100", "--seed", "7"];
    let first = evaluate(&loo, &model, &sampled_args);
    assert_eq!(first["protocol"], "leave-one-out");
    let sampled = &first["sampled"];
    assert_eq!(sampled["negatives"], 100);
    assert_eq!(sampled["seed"], 7);
    assert_eq!(sampled["users"], first["metrics"]["users"]);
    let hr = at(sampled, 10)["hr"].as_f64().unwrap();
    let ndcg = at(sampled, 10)["ndcg"].as_f64().unwrap();
    assert!(
        (0.0..=1.0).contains(&hr) && (0.0..=1.0).contains(&ndcg),
        "{sampled}"
    );
    assert!(ndcg <= hr, "{sampled}");
    // One target per user: the full ranking's recall@10 is its hit rate, and 100 negatives
    // out of ~1,000 items rank the target higher.
    let full_recall = at(&first["metrics"], 10)["recall"].as_f64().unwrap();
    assert!(
        hr >= full_recall,
        "sampled HR@10 {hr} < full recall@10 {full_recall}"
    );
    assert!(hr > 0.0, "{sampled}");
    // The same seed gives the same numbers.
    let again = evaluate(&loo, &model, &sampled_args);
    assert_eq!(again["sampled"], first["sampled"]);
    assert_eq!(again["metrics"], first["metrics"]);

    // The validation part, and the POP and random models.
    let valid = evaluate(
        &loo,
        &model,
        &["--split", "valid", "--sampled-negatives", "100"],
    );
    assert_eq!(
        valid["sampled"]["users"].as_u64(),
        stats["valid_rows"].as_u64()
    );
    for baseline in ["pop", "random"] {
        let v = evaluate(&loo, baseline, &["--sampled-negatives", "100"]);
        let hr = at(&v["sampled"], 10)["hr"].as_f64().unwrap();
        let recall = at(&v["metrics"], 10)["recall"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&hr) && hr >= recall, "{baseline}: {v}");
    }
    // Random scores: about 10 of 101 candidates' worth of hits at 10.
    let random = evaluate(&loo, "random", &["--sampled-negatives", "100"]);
    let hr = at(&random["sampled"], 10)["hr"].as_f64().unwrap();
    assert!((0.02..0.25).contains(&hr), "{random}");

    // The text output shows both tables.
    let text = trainer_ok(&[
        "evaluate",
        "--data",
        &p(&loo),
        "--model",
        "pop",
        "--sampled-negatives",
        "100",
    ]);
    assert!(text.contains("MAP") && text.contains("HR"), "{text}");
    assert!(text.contains("among 100 negatives"), "{text}");

    // Temporal: several test items per user, so no sampled metrics.
    let temporal = dir.join("temporal");
    trainer_ok(&["prepare", "--input", &udata, "--out", &p(&temporal)]);
    let off = evaluate(&temporal, "pop", &[]);
    assert!(off["sampled"].is_null(), "{off}");
    assert!(off["protocol"] == "temporal", "{off}");
    let (code, _, stderr) = trainer_env(
        &[
            "evaluate",
            "--data",
            &p(&temporal),
            "--model",
            "pop",
            "--sampled-negatives",
            "100",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("exactly one test item per evaluated user")
            && stderr.contains("--protocol leave-one-out"),
        "{stderr}"
    );
}

#[test]
fn leave_one_out_refuses_fractions_and_imports_refuse_protocols() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let udata = p(&dir.join("u.data"));
    trainer_ok(&[
        "gen-synthetic",
        "--out",
        &udata,
        "--users",
        "20",
        "--items",
        "30",
    ]);
    let out = p(&dir.join("data"));
    let (code, _, stderr) = trainer_env(
        &[
            "prepare",
            "--input",
            &udata,
            "--out",
            &out,
            "--protocol",
            "leave-one-out",
            "--test-fraction",
            "0.3",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--test-fraction does not apply with --protocol leave-one-out"),
        "{stderr}"
    );
    // From the environment too.
    let (code, _, stderr) = trainer_env(
        &[
            "prepare",
            "--input",
            &udata,
            "--out",
            &out,
            "--protocol",
            "leave-one-out",
        ],
        &[("RD_VALID_FRACTION", "0.1")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("RD_VALID_FRACTION"), "{stderr}");
    let (code, _, stderr) = trainer_env(
        &[
            "prepare",
            "--train",
            &udata,
            "--test",
            &udata,
            "--out",
            &out,
            "--protocol",
            "temporal",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("--protocol does not apply with --train"),
        "{stderr}"
    );
    assert!(!Path::new(&out).exists());
    // Explicitly temporal is the default split.
    let default = json(&trainer_ok(&[
        "prepare", "--input", &udata, "--out", &out, "--json",
    ]));
    let temporal = json(&trainer_ok(&[
        "prepare",
        "--input",
        &udata,
        "--out",
        &out,
        "--protocol",
        "temporal",
        "--json",
    ]));
    assert_eq!(default["fingerprint"], temporal["fingerprint"]);
    assert_eq!(temporal["protocol"], "temporal");
    assert_eq!(temporal["test_fraction"], 0.2);
    let (ok, _, stderr) = trainer(&[
        "prepare",
        "--input",
        &udata,
        "--out",
        &out,
        "--protocol",
        "loo",
    ]);
    assert!(!ok && stderr.contains("leave-one-out"), "{stderr}");
}
