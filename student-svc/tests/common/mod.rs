//! Shared fixtures of the integration tests: a small prepared dataset and artifacts written
//! directly as safetensors (no LibTorch), and the real `student-svc` binary started on
//! ephemeral ports.
#![allow(dead_code)] // each test file uses a different subset

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rankdistill_core::artifact::{
    self, ArtifactManifest, DataRef, MANIFEST_FILE, ModelConfig, WEIGHTS_FILE,
};
use rankdistill_core::atomic::replace_dir_atomic;
use rankdistill_core::prepared::PreparedDataset;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use rankdistill_proto::v1::{Query, RecommendRequest};
use rankdistill_testkit::Service;

/// The gRPC service name health checks use.
pub const SERVICE: &str = "rankdistill.v1.StudentService";

/// Writes an artifact folder atomically (staging folder + rename, as `trainer` does) with
/// seeded uniform weights; returns its manifest.
pub fn write_artifact(
    dir: &Path,
    config: &ModelConfig,
    seed: u64,
    users: &[String],
    items: &[String],
    fingerprint: &str,
) -> ArtifactManifest {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let bytes =
        rankdistill_testkit::weights::model_weights(config, |_| rng.random_range(-0.5f32..0.5));
    write_artifact_weights(dir, config, &bytes, users, items, fingerprint)
}

/// Writes an artifact folder atomically with the weights file `bytes`; returns its manifest.
pub fn write_artifact_weights(
    dir: &Path,
    config: &ModelConfig,
    bytes: &[u8],
    users: &[String],
    items: &[String],
    fingerprint: &str,
) -> ArtifactManifest {
    let mut manifest = ArtifactManifest::new(
        config.clone(),
        DataRef {
            path: "test".into(),
            fingerprint: fingerprint.into(),
        },
    );
    manifest.version = artifact::weights_version(bytes);
    manifest.num_parameters = config.num_parameters() as i64;
    manifest.users = users.to_vec();
    manifest.items = items.to_vec();
    replace_dir_atomic(dir, |staging| {
        std::fs::write(staging.join(WEIGHTS_FILE), bytes)?;
        std::fs::write(
            staging.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
        )
    })
    .expect("write artifact");
    manifest
}

/// Replaces `dir` with a copy of `source` whose weights file is corrupted (the manifest's
/// version no longer matches the weights hash).
pub fn write_corrupt_copy(source: &Path, dir: &Path) {
    replace_dir_atomic(dir, |staging| {
        std::fs::copy(source.join(MANIFEST_FILE), staging.join(MANIFEST_FILE))?;
        let mut weights = std::fs::read(source.join(WEIGHTS_FILE))?;
        let n = weights.len();
        weights[n - 4..].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        // Name another version so the watcher tries it.
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(source.join(MANIFEST_FILE))?)
                .map_err(std::io::Error::other)?;
        manifest["version"] = serde_json::Value::String("corrupt000000000".into());
        std::fs::write(
            staging.join(MANIFEST_FILE),
            serde_json::to_vec(&manifest).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(staging.join(WEIGHTS_FILE), weights)
    })
    .expect("write corrupt artifact");
}

/// A prepared dataset and a Caser artifact (random weights) trained "on" it.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The temp folder.
    pub root: PathBuf,
    /// Prepared dataset folder.
    pub data: PathBuf,
    /// Artifact folder.
    pub model: PathBuf,
    /// The dataset in memory.
    pub dataset: PreparedDataset,
    /// The artifact's model shape.
    pub config: ModelConfig,
    /// The artifact's manifest.
    pub manifest: ArtifactManifest,
}

impl Fixture {
    /// Synthetic data and a Caser d=8, L=3.
    pub fn new() -> Fixture {
        Fixture::with_items(60)
    }

    /// Synthetic data over `items` items and a Caser d=8, L=3.
    pub fn with_items(items: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let (data, dataset) = rankdistill_testkit::dataset::prepared_synthetic(&root, items);
        let mut config =
            ModelConfig::caser(8, dataset.num_users() as i64, dataset.num_items() as i64);
        config.sequence_length = 3;
        config.nh = 4;
        let model = root.join("student");
        let manifest = write_artifact(
            &model,
            &config,
            1,
            &dataset.split.users,
            &dataset.split.items,
            &dataset.manifest.fingerprint,
        );
        Fixture {
            _dir: dir,
            root,
            data,
            model,
            dataset,
            config,
            manifest,
        }
    }

    /// Writes a new version (other seed) into the served folder; returns its version.
    pub fn publish(&self, seed: u64) -> String {
        write_artifact(
            &self.model,
            &self.config,
            seed,
            &self.dataset.split.users,
            &self.dataset.split.items,
            &self.dataset.manifest.fingerprint,
        )
        .version
    }

    /// Writes an MF artifact of dimension `dim` over the fixture's users and items (weights
    /// from `seed`) into `dir`; returns its manifest.
    pub fn write_mf(&self, dir: &Path, dim: i64, seed: u64) -> ArtifactManifest {
        let config = ModelConfig::mf(
            dim,
            self.dataset.num_users() as i64,
            self.dataset.num_items() as i64,
        );
        write_artifact(
            dir,
            &config,
            seed,
            &self.dataset.split.users,
            &self.dataset.split.items,
            "fp",
        )
    }

    /// Raw id of dense item `i`.
    pub fn item(&self, i: u32) -> String {
        self.dataset.split.items[i as usize].clone()
    }

    /// Raw id of dense user `u`.
    pub fn user(&self, u: u32) -> String {
        self.dataset.split.users[u as usize].clone()
    }
}

/// A Recommend request for the top k of a raw user id, from the user's history.
pub fn user_request(user: &str, k: i32) -> RecommendRequest {
    RecommendRequest {
        query: Some(Query {
            user_id: user.to_string(),
            recent_items: vec![],
        }),
        k,
        exclude_items: vec![],
        exclude_seen: None,
    }
}

/// Arguments for a server on ephemeral ports.
pub fn args(model: &Path, extra: &[&str]) -> Vec<OsString> {
    let mut out: Vec<OsString> = vec![
        "--model".into(),
        model.into(),
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
    ];
    out.extend(extra.iter().map(OsString::from));
    out
}

rankdistill_testkit::grpc_service!(
    /// student-svc as the tests start it: the binary of this package, without the caller's
    /// `STUDENT_*` environment.
    Student,
    StudentServiceClient,
    "student-svc",
    SERVICE,
    "STUDENT_"
);

/// A running student-svc process; killed on drop if still running.
pub type Server = rankdistill_testkit::Server<Student>;

/// Runs the binary expecting it to refuse to start; returns its exit status and stderr.
pub fn run_to_refusal(args: &[OsString]) -> (ExitStatus, String) {
    Student::spec().run_to_refusal(args)
}

pub mod teacher;

/// The rd-loadgen binary of this package, without the caller's `LOADGEN_*` environment (each
/// test passes its flags).
pub fn loadgen() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rd-loadgen"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("LOADGEN_") {
            command.env_remove(key);
        }
    }
    command
}

/// rd-loadgen's JSON report from its finished process; fails the test, showing the output,
/// when it did not succeed.
pub fn loadgen_report(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).expect("JSON report")
}
