//! The bad-input matrix of the `trainer` binary, table-driven: every command with missing,
//! malformed, non-UTF-8 and inconsistent inputs and out-of-range flags, and broken checkpoints
//! (wrong shape, missing tensor, truncated, NaN weights, other data). Each row names the exit
//! status and the words of stderr that say what to fix; nothing may panic, and a refused
//! `prepare` writes nothing.

mod support;

use std::path::PathBuf;

use rankdistill_core::artifact::{MANIFEST_FILE, WEIGHTS_FILE, weights_version};
use rankdistill_testkit::dataset::copy_dir;
use rankdistill_testkit::table::{assert_no_failures, missing};
use serde_json::{Value, json};
use support::{p, texts, trainer_command};

/// Runs the binary without backtraces; returns (exit code, stdout, stderr).
fn trainer(args: &[&str]) -> (Option<i32>, String, String) {
    let out = trainer_command(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run trainer");
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

/// A prepared dataset and a small trained checkpoint, plus broken copies.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    udata: PathBuf,
    data: PathBuf,
    checkpoint: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let udata = root.join("u.data");
        let data = root.join("data");
        let checkpoint = root.join("teacher");
        for args in [
            vec![
                "gen-synthetic",
                "--out",
                &p(&udata),
                "--users",
                "80",
                "--items",
                "50",
                "--seed",
                "3",
            ],
            vec!["prepare", "--input", &p(&udata), "--out", &p(&data)],
            vec![
                "train",
                "--data",
                &p(&data),
                "--out",
                &p(&checkpoint),
                "--dim",
                "4",
                "--epochs",
                "1",
                "--nh",
                "2",
            ],
        ] {
            let (code, _, stderr) = trainer(&args);
            assert_eq!(code, Some(0), "{args:?}: {stderr}");
        }
        Fixture {
            _dir: dir,
            root,
            udata,
            data,
            checkpoint,
        }
    }

    /// A file in the temp folder with these bytes.
    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.root.join(name);
        std::fs::write(&path, bytes).unwrap();
        p(&path)
    }

    /// A copy of the prepared dataset with `edit` applied to the named file.
    fn data_with(&self, name: &str, file: &str, edit: impl FnOnce(Vec<u8>) -> Vec<u8>) -> String {
        let dir = self.root.join(name);
        copy_dir(&self.data, &dir);
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, edit(bytes)).unwrap();
        p(&dir)
    }

    /// A copy of the checkpoint with its manifest and weights edited.
    fn checkpoint_with(&self, name: &str, edit: impl FnOnce(&mut Value, &mut Vec<u8>)) -> String {
        let dir = self.root.join(name);
        copy_dir(&self.checkpoint, &dir);
        let mut manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join(MANIFEST_FILE)).unwrap()).unwrap();
        let mut weights = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        edit(&mut manifest, &mut weights);
        std::fs::write(dir.join(WEIGHTS_FILE), &weights).unwrap();
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        p(&dir)
    }

    /// A copy of the checkpoint whose variable `name` is NaN, with a consistent hash (a writer
    /// that hashed what it wrote).
    fn nan_checkpoint(&self, dir_name: &str, variable: &str) -> String {
        let dir = self.root.join(dir_name);
        copy_dir(&self.checkpoint, &dir);
        let loaded = rankdistill_models::checkpoint::load(&dir, tch::Device::Cpu).unwrap();
        let mut tensor = loaded.vs.variables()[variable].shallow_clone();
        tch::no_grad(|| {
            let _ = tensor.fill_(f64::NAN);
        });
        loaded.vs.save(dir.join(WEIGHTS_FILE)).unwrap();
        let mut manifest = loaded.manifest;
        manifest.version = weights_version(&std::fs::read(dir.join(WEIGHTS_FILE)).unwrap());
        std::fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        p(&dir)
    }
}

/// One row: the command line, the exit code it must end with, and what stderr must say.
struct Row {
    name: &'static str,
    args: Vec<String>,
    code: i32,
    needles: Vec<String>,
    /// A path the command must not create.
    absent: Option<PathBuf>,
}

fn row(name: &'static str, args: &[&str], code: i32, needles: &[&str]) -> Row {
    Row {
        name,
        args: args.iter().map(|s| s.to_string()).collect(),
        code,
        needles: needles.iter().map(|s| s.to_string()).collect(),
        absent: None,
    }
}

/// Runs every row (four at a time: each is a process start) and fails with all the rows
/// that did not get what they should.
fn run_rows(rows: Vec<Row>) {
    let n = rows.len();
    let check = |r: &Row| -> Option<String> {
        let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
        let (code, _, stderr) = trainer(&args);
        let missing = missing(&stderr, &r.needles);
        let created = r.absent.as_ref().filter(|a| a.exists());
        (code != Some(r.code)
            || !missing.is_empty()
            || stderr.contains("panicked")
            || created.is_some())
        .then(|| {
            format!(
                "{}: exit {code:?} (want {}), missing {missing:?}, created {created:?}; stderr:\n{stderr}",
                r.name, r.code
            )
        })
    };
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = rows
            .chunks(n.div_ceil(4).max(1))
            .map(|chunk| scope.spawn(move || chunk.iter().filter_map(check).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("row worker"))
            .collect()
    });
    assert_no_failures(&failures, n, "\n");
}

#[test]
fn prepare_and_gen_synthetic_refuse_bad_input() {
    let fx = Fixture::new();
    let out = fx.root.join("never");
    let o = p(&out);
    let single: String = (0..30).map(|u| format!("{u}\t7\t5\t100\n")).collect();
    let garbage: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let mut rows = vec![
        row(
            "missing input",
            &["prepare", "--input", "/nonexistent/u.data", "--out", &o],
            1,
            &["cannot read /nonexistent/u.data", "No such file"],
        ),
        row(
            "input is a folder",
            &["prepare", "--input", &p(&fx.root), "--out", &o],
            1,
            &["cannot read", "Is a directory"],
        ),
        row(
            "empty file",
            &[
                "prepare",
                "--input",
                &fx.file("empty.data", b""),
                "--out",
                &o,
            ],
            1,
            &["empty.data: no interactions found"],
        ),
        row(
            "comments and blank lines only",
            &[
                "prepare",
                "--input",
                &fx.file("comments.data", b"# header\n\n   \n# more\n"),
                "--out",
                &o,
            ],
            1,
            &["no interactions found"],
        ),
        row(
            "Latin-1 bytes (not UTF-8)",
            &[
                "prepare",
                "--input",
                &fx.file("latin1.data", b"1\t2\t3\t4\n1\tcaf\xe9\t3\t5\n"),
                "--out",
                &o,
            ],
            1,
            &[
                "latin1.data:2: not valid UTF-8 (byte 0xE9 at column 6)",
                "iconv",
            ],
        ),
        row(
            "binary garbage",
            &[
                "prepare",
                "--input",
                &fx.file("garbage.data", &garbage),
                "--out",
                &o,
            ],
            1,
            &["garbage.data:", "not valid UTF-8"],
        ),
        row(
            "UTF-16 file",
            &[
                "prepare",
                "--input",
                &fx.file("utf16.data", b"\xff\xfe1\x00 \x002\x00"),
                "--out",
                &o,
            ],
            1,
            &["utf16.data:1: not valid UTF-8 (byte 0xFF at column 1)"],
        ),
        row(
            "a line with a missing field",
            &[
                "prepare",
                "--input",
                &fx.file("short.data", b"1\t2\t3\t100\n1\t3\t3\t101\n1\t2\t3\n"),
                "--out",
                &o,
            ],
            1,
            &["short.data:3: expected 4 fields for the movielens format, found 3"],
        ),
        row(
            "a rating that is not a number",
            &[
                "prepare",
                "--input",
                &fx.file("rating.data", b"1 2 five 100\n"),
                "--out",
                &o,
            ],
            1,
            &["rating.data:1: rating 'five' is not a number"],
        ),
        row(
            "a fractional timestamp",
            &[
                "prepare",
                "--input",
                &fx.file("ts.data", b"1 2 5 100\n1 3 5 12.5\n"),
                "--out",
                &o,
            ],
            1,
            &["ts.data:2: timestamp '12.5' is not an integer"],
        ),
        row(
            "a header line",
            &[
                "prepare",
                "--input",
                &fx.file("header.data", b"user item rating timestamp\n1 2 5 100\n"),
                "--out",
                &o,
            ],
            1,
            &["header.data:1: rating 'rating' is not a number"],
        ),
        row(
            "five fields: format undetectable",
            &[
                "prepare",
                "--input",
                &fx.file("five.data", b"1 2 3 4 5\n"),
                "--out",
                &o,
            ],
            1,
            &[
                "five.data:1: cannot detect the format from 5 fields; pass --format movielens|caser|sasrec",
            ],
        ),
        row(
            "one field",
            &[
                "prepare",
                "--input",
                &fx.file("one.data", b"12345\n"),
                "--out",
                &o,
            ],
            1,
            &["cannot detect the format from 1 fields"],
        ),
        row(
            "--format that does not fit the file",
            &[
                "prepare",
                "--input",
                &p(&fx.udata),
                "--format",
                "caser",
                "--out",
                &o,
            ],
            1,
            &["u.data:1: expected 3 fields for the caser format, found 4"],
        ),
        row(
            "unknown --format",
            &[
                "prepare",
                "--input",
                &p(&fx.udata),
                "--format",
                "csv",
                "--out",
                &o,
            ],
            2,
            &["unknown format 'csv': use movielens, caser or sasrec"],
        ),
        row(
            "--test-fraction above 1",
            &[
                "prepare",
                "--input",
                &p(&fx.udata),
                "--test-fraction",
                "1.5",
                "--out",
                &o,
            ],
            1,
            &["--test-fraction must be in [0, 1), got 1.5"],
        ),
        row(
            "--test-fraction NaN",
            &[
                "prepare",
                "--input",
                &p(&fx.udata),
                "--test-fraction",
                "NaN",
                "--out",
                &o,
            ],
            1,
            &["--test-fraction must be in [0, 1), got NaN"],
        ),
        row(
            "--valid-fraction negative",
            &[
                "prepare",
                "--input",
                &p(&fx.udata),
                "--valid-fraction=-0.1",
                "--out",
                &o,
            ],
            1,
            &["--valid-fraction must be in [0, 1), got -0.1"],
        ),
        row(
            "--test-fraction not a number",
            &[
                "prepare",
                "--input",
                &p(&fx.udata),
                "--test-fraction",
                "a fifth",
                "--out",
                &o,
            ],
            2,
            &["invalid value 'a fifth' for '--test-fraction"],
        ),
        row(
            "every user has one interaction",
            &[
                "prepare",
                "--input",
                &fx.file("single.data", single.as_bytes()),
                "--out",
                &o,
            ],
            1,
            &[
                "the split left no training rows (30 users",
                "lower --test-fraction",
            ],
        ),
        row(
            "gen-synthetic without users",
            &["gen-synthetic", "--out", &o, "--users", "0"],
            1,
            &["need at least 1 user and 2 items"],
        ),
        row(
            "gen-synthetic with one item",
            &["gen-synthetic", "--out", &o, "--items", "1"],
            1,
            &["need at least 1 user and 2 items"],
        ),
        row(
            "gen-synthetic with a negative count",
            &["gen-synthetic", "--out", &o, "--users=-5"],
            2,
            &["invalid value '-5' for '--users"],
        ),
    ];
    for r in &mut rows {
        r.absent = Some(out.clone());
    }
    // Accepted variants: CRLF line ends, a byte-order mark, mixed tabs and spaces, comments
    // and blank lines give the same dataset as the clean file.
    let clean = std::fs::read_to_string(&fx.udata).unwrap();
    let reference: Value =
        serde_json::from_slice(&std::fs::read(fx.data.join("manifest.json")).unwrap()).unwrap();
    let variants = [
        ("crlf", clean.replace('\n', "\r\n")),
        ("bom", format!("\u{feff}{clean}")),
        (
            "mixed-blanks",
            format!("# exported\n\n{}", clean.replace('\t', "  \t ")),
        ),
    ];
    for (name, text) in variants {
        let out = fx.root.join(format!("variant-{name}"));
        let (code, _, stderr) = trainer(&[
            "prepare",
            "--input",
            &fx.file(&format!("{name}.data"), text.as_bytes()),
            "--out",
            &p(&out),
        ]);
        assert_eq!(code, Some(0), "{name}: {stderr}");
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["fingerprint"], reference["fingerprint"], "{name}");
    }
    run_rows(rows);
}

#[test]
fn evaluate_and_train_refuse_bad_input_and_broken_checkpoints() {
    let fx = Fixture::new();
    let data = p(&fx.data);
    let ck = p(&fx.checkpoint);
    let manifest = |f: fn(&mut Value)| move |m: &mut Value, _: &mut Vec<u8>| f(m);
    let users_latin1 = fx.data_with("data-latin1", "users.txt", |mut b| {
        b.splice(0..0, *b"caf\xe9\n");
        b
    });
    let bad_manifest = fx.data_with("data-manifest", "manifest.json", |b| {
        b[..b.len() / 2].to_vec()
    });
    let truncated_train =
        fx.data_with("data-truncated", "train.txt", |b| b[..b.len() / 2].to_vec());
    let out_of_range = fx.data_with("data-range", "train.txt", |b| {
        let mut t = b"999999 ".to_vec();
        t.extend(b);
        t
    });
    let old_format = fx.data_with("data-v9", "manifest.json", |b| {
        let mut m: Value = serde_json::from_slice(&b).unwrap();
        m["format_version"] = json!(9);
        serde_json::to_vec(&m).unwrap()
    });
    let wrong_shape = fx.checkpoint_with("ck-shape", manifest(|m| m["model"]["dim"] = json!(5)));
    let huge = fx.checkpoint_with(
        "ck-huge",
        manifest(|m| m["model"]["num_users"] = json!(i64::MAX)),
    );
    let other_data = fx.checkpoint_with(
        "ck-other",
        manifest(|m| m["data"]["fingerprint"] = json!("0123")),
    );
    let truncated = fx.checkpoint_with("ck-truncated", |_, w| w.truncate(w.len() / 3));
    let truncated_rehashed = fx.checkpoint_with("ck-truncated-rehashed", |m, w| {
        w.truncate(w.len() - 10);
        m["version"] = json!(weights_version(w));
    });
    let no_weights = fx.root.join("ck-no-weights");
    copy_dir(&fx.checkpoint, &no_weights);
    std::fs::remove_file(no_weights.join(WEIGHTS_FILE)).unwrap();
    let nan = fx.nan_checkpoint("ck-nan", "fc1.bias");
    let nan_embedding = fx.nan_checkpoint("ck-nan-embedding", "item_embeddings.weight");
    let train_out = p(&fx.root.join("train-never"));
    let t = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "train", "--data", &data, "--out", &train_out, "--epochs", "1", "--dim", "4",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let train_row = |name: &'static str, extra: &[&str], code: i32, needles: &[&str]| Row {
        name,
        args: t(extra),
        code,
        needles: needles.iter().map(|s| s.to_string()).collect(),
        absent: Some(fx.root.join("train-never")),
    };
    let mut rows = vec![
        // evaluate: data
        row(
            "evaluate: missing data folder",
            &["evaluate", "--data", "/nonexistent/data"],
            1,
            &[
                "cannot load the prepared dataset /nonexistent/data",
                "manifest.json",
            ],
        ),
        row(
            "evaluate: non-UTF-8 users.txt",
            &["evaluate", "--data", &users_latin1],
            1,
            &["users.txt: not valid UTF-8", "re-run `trainer prepare`"],
        ),
        row(
            "evaluate: truncated manifest",
            &["evaluate", "--data", &bad_manifest],
            1,
            &["not a prepared-dataset manifest"],
        ),
        row(
            "evaluate: truncated train.txt",
            &["evaluate", "--data", &truncated_train],
            1,
            &["train.txt"],
        ),
        row(
            "evaluate: item index out of range",
            &["evaluate", "--data", &out_of_range],
            1,
            &["item index 999999 is out of range"],
        ),
        row(
            "evaluate: unsupported dataset format",
            &["evaluate", "--data", &old_format],
            1,
            &[
                "format version 9 is not supported",
                "re-run `trainer prepare`",
            ],
        ),
        // evaluate: flags
        row(
            "evaluate: --ks 0",
            &["evaluate", "--data", &data, "--ks", "0"],
            1,
            &["--ks must list positive cut-offs"],
        ),
        row(
            "evaluate: --ks not numbers",
            &["evaluate", "--data", &data, "--ks", "3,x"],
            2,
            &["invalid value 'x' for '--ks"],
        ),
        row(
            "evaluate: unknown split",
            &["evaluate", "--data", &data, "--split", "train"],
            1,
            &["unknown split 'train': use test or valid"],
        ),
        row(
            "evaluate: valid split without validation rows",
            &["evaluate", "--data", &data, "--split", "valid"],
            1,
            &["has no validation rows: prepare it with --valid-fraction"],
        ),
        row(
            "evaluate: unknown model",
            &["evaluate", "--data", &data, "--model", "bpr"],
            1,
            &["unknown model 'bpr': use pop, random, or a checkpoint folder"],
        ),
        // evaluate: checkpoints
        row(
            "evaluate: checkpoint of the wrong shape",
            &["evaluate", "--data", &data, "--model", &wrong_shape],
            1,
            &["weights do not fit the manifest's model"],
        ),
        row(
            "evaluate: checkpoint with an astronomical shape",
            &["evaluate", "--data", &data, "--model", &huge],
            1,
            &["num_users 9223372036854775807 is too large"],
        ),
        row(
            "evaluate: truncated checkpoint",
            &["evaluate", "--data", &data, "--model", &truncated],
            1,
            &["does not match the manifest's version", "corrupt"],
        ),
        row(
            "evaluate: truncated checkpoint, rehashed",
            &["evaluate", "--data", &data, "--model", &truncated_rehashed],
            1,
            &["weights do not fit the manifest's model"],
        ),
        row(
            "evaluate: checkpoint without weights",
            &["evaluate", "--data", &data, "--model", &p(&no_weights)],
            1,
            &["model.safetensors", "No such file"],
        ),
        row(
            "evaluate: checkpoint with a NaN bias",
            &["evaluate", "--data", &data, "--model", &nan],
            1,
            &["tensor 'fc1.bias' holds NaN or infinite values"],
        ),
        row(
            "evaluate: checkpoint with NaN embeddings",
            &["evaluate", "--data", &data, "--model", &nan_embedding],
            1,
            &["tensor 'item_embeddings.weight' holds NaN"],
        ),
        row(
            "evaluate: checkpoint for other data",
            &["evaluate", "--data", &data, "--model", &other_data],
            1,
            &["was trained on data 0123"],
        ),
        // train
        row(
            "train: missing data folder",
            &["train", "--data", "/nonexistent/data", "--out", &train_out],
            1,
            &[
                "cannot load the prepared dataset",
                "/nonexistent/data/manifest.json",
            ],
        ),
        row(
            "train: non-UTF-8 dataset",
            &["train", "--data", &users_latin1, "--out", &train_out],
            1,
            &["users.txt: not valid UTF-8"],
        ),
        train_row(
            "train: --batch-size 0",
            &["--batch-size", "0"],
            1,
            &["--batch-size and --epochs must be positive"],
        ),
        row(
            "train: --epochs 0",
            &[
                "train", "--data", &data, "--out", &train_out, "--epochs", "0",
            ],
            1,
            &["--batch-size and --epochs must be positive"],
        ),
        row(
            "train: --dim 0",
            &["train", "--data", &data, "--out", &train_out, "--dim", "0"],
            1,
            &["dim, num_users and num_items must be positive"],
        ),
        train_row(
            "train: --seq-len 0",
            &["--seq-len", "0"],
            1,
            &["Caser needs L >= 1"],
        ),
        train_row(
            "train: --seq-len huge",
            &["--seq-len", "100000"],
            1,
            &["sequence_length 100000 is too large (at most 4096)"],
        ),
        train_row(
            "train: no filters",
            &["--nv", "0", "--nh", "0"],
            1,
            &["at least one vertical or horizontal filter"],
        ),
        train_row(
            "train: --dropout 1.5",
            &["--dropout", "1.5"],
            1,
            &["dropout must be in [0, 1)"],
        ),
        train_row(
            "train: unknown model",
            &["--model", "gru"],
            2,
            &["invalid value 'gru' for '--model"],
        ),
        train_row(
            "train: unknown activation",
            &["--fc-activation", "swish"],
            2,
            &["swish"],
        ),
        train_row(
            "train: unknown eval split",
            &["--eval-split", "dev"],
            1,
            &["unknown split 'dev'"],
        ),
        train_row("train: --lr NaN", &["--lr", "NaN"], 1, &["learning rate"]),
        train_row(
            "train: --lr inf diverges and writes nothing",
            &["--lr", "inf"],
            1,
            &[
                "holds NaN or infinite values: the training diverged",
                "nothing was written",
            ],
        ),
        // distill (no teacher is needed to refuse these)
        row(
            "distill: --rd-k 0",
            &[
                "distill",
                "--data",
                &data,
                "--teacher",
                "127.0.0.1:1",
                "--out",
                &train_out,
                "--rd-k",
                "0",
            ],
            1,
            &["--rd-k must be at least 1"],
        ),
        row(
            "distill: --lambda 0",
            &[
                "distill",
                "--data",
                &data,
                "--teacher",
                "127.0.0.1:1",
                "--out",
                &train_out,
                "--lambda",
                "0",
            ],
            1,
            &["--lambda must be positive"],
        ),
        row(
            "distill: --samples 0",
            &[
                "distill",
                "--data",
                &data,
                "--teacher",
                "127.0.0.1:1",
                "--out",
                &train_out,
                "--samples",
                "0",
            ],
            1,
            &["--samples must be at least 1"],
        ),
        row(
            "distill: missing data",
            &[
                "distill",
                "--data",
                "/nonexistent/data",
                "--teacher",
                "127.0.0.1:1",
                "--out",
                &train_out,
            ],
            1,
            &["cannot load the prepared dataset"],
        ),
        row(
            "distill: malformed teacher address",
            &[
                "distill",
                "--data",
                &data,
                "--teacher",
                "http://[::1",
                "--out",
                &train_out,
                "--max-retries",
                "0",
            ],
            1,
            &["invalid teacher endpoint 'http://[::1'"],
        ),
        // report
        row(
            "report: group without a name",
            &["report", "--group", "nonsense"],
            2,
            &["expected NAME=DIR"],
        ),
        row(
            "report: missing run folder",
            &["report", "--group", "x=/nonexistent/run"],
            1,
            &["/nonexistent/run"],
        ),
    ];
    if !tch::Cuda::is_available() {
        rows.push(train_row(
            "train: --device cuda without a GPU",
            &["--device", "cuda"],
            1,
            &["--device cuda: no CUDA device is available"],
        ));
    }
    for r in &mut rows {
        if r.args[0] == "distill" || r.args[0] == "train" {
            r.absent = Some(fx.root.join("train-never"));
        }
    }
    run_rows(rows);
    // The checkpoint the broken copies came from still serves.
    let (code, _, stderr) = trainer(&["evaluate", "--data", &data, "--model", &ck]);
    assert_eq!(code, Some(0), "{stderr}");
}
