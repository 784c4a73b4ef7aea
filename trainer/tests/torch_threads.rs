//! `--torch-threads` end to end: the trainer trains with `auto`, a fixed count and LibTorch's
//! default, takes the value from `RD_TORCH_THREADS` too, and refuses a bad value with a usage
//! error naming the accepted ones. teacher-svc's flag is checked in its own tests.

mod support;

use support::{p, prepared, trainer_command, trainer_env};

#[test]
fn training_runs_with_every_thread_choice() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path(), "data", "40", "30", "5");
    for choice in ["auto", "1", "0"] {
        let out = dir.path().join(format!("model-{choice}"));
        let args = [
            "--torch-threads",
            choice,
            "train",
            "--data",
            &p(&data),
            "--out",
            &p(&out),
            "--epochs",
            "1",
            "--dim",
            "4",
        ];
        let result = trainer_command(&args).output().unwrap();
        assert!(
            result.status.success(),
            "--torch-threads {choice}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        assert!(
            out.join("manifest.json").exists(),
            "--torch-threads {choice}"
        );
    }
    // The variable works like the flag, after the subcommand as well.
    let out = dir.path().join("model-env");
    let args = [
        "train",
        "--data",
        &p(&data),
        "--out",
        &p(&out),
        "--epochs",
        "1",
        "--dim",
        "4",
    ];
    let (code, _, stderr) = trainer_env(&args, &[("RD_TORCH_THREADS", "2")]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn bad_thread_counts_are_usage_errors() {
    for (args, env) in [
        (
            &["--torch-threads", "many", "train", "--data", "/nonexistent"][..],
            &[][..],
        ),
        (
            &["train", "--torch-threads=-1", "--data", "/nonexistent"],
            &[],
        ),
        (
            &["train", "--data", "/nonexistent"],
            &[("RD_TORCH_THREADS", "1.5")],
        ),
    ] {
        let (code, _, stderr) = trainer_env(args, env);
        assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains("expected auto, 0 (LibTorch's default) or a number of threads"),
            "{stderr}"
        );
    }
}
