//! Shared fixtures of the integration tests: a small prepared dataset and a random-init
//! checkpoint in a temporary folder, and the real `teacher-svc` binary started on ephemeral
//! ports.
#![allow(dead_code)] // each test file uses a different subset

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use rankdistill_core::prepared::PreparedDataset;
use rankdistill_models::checkpoint::{self, CheckpointManifest, DataRef};
use rankdistill_models::model::{Model, ModelConfig};
use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_testkit::Service;
use tch::{Device, nn};

/// The gRPC service name health checks use.
pub const SERVICE: &str = "rankdistill.v1.TeacherService";
/// L of the fixture checkpoint.
pub const L: usize = 5;

/// A prepared dataset and a checkpoint trained on it (random init), in a temp folder.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// The temp folder.
    pub root: PathBuf,
    /// Prepared dataset folder.
    pub data: PathBuf,
    /// Checkpoint folder.
    pub checkpoint: PathBuf,
    /// The dataset in memory.
    pub dataset: PreparedDataset,
    /// The checkpoint's manifest.
    pub manifest: CheckpointManifest,
}

impl Fixture {
    /// Synthetic data (some users short enough for padded windows) and a Caser d=8.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let (data, dataset) = rankdistill_testkit::dataset::prepared_synthetic(&root, 60);
        let checkpoint = root.join("checkpoint");
        let fingerprint = dataset.manifest.fingerprint.clone();
        let manifest = save_checkpoint(&dataset, &checkpoint, &fingerprint);
        Fixture {
            _dir: dir,
            root,
            data,
            checkpoint,
            dataset,
            manifest,
        }
    }

    /// A checkpoint like the fixture's but claiming another data fingerprint.
    pub fn checkpoint_for_other_data(&self) -> PathBuf {
        let path = self.root.join("checkpoint-other-data");
        save_checkpoint(&self.dataset, &path, "00000000000000000000000000000000");
        path
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

fn save_checkpoint(dataset: &PreparedDataset, dir: &Path, fingerprint: &str) -> CheckpointManifest {
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ModelConfig::caser(8, dataset.num_users() as i64, dataset.num_items() as i64);
    let _model = Model::new(&vs.root(), &config);
    checkpoint::save(
        dir,
        &vs,
        CheckpointManifest::new(
            config,
            DataRef {
                path: dir.display().to_string(),
                fingerprint: fingerprint.to_string(),
            },
        ),
    )
    .expect("save checkpoint")
}

rankdistill_testkit::grpc_service!(
    /// teacher-svc as the tests start it: the binary of this package, without the caller's
    /// `TEACHER_*` environment.
    Teacher,
    TeacherServiceClient,
    "teacher-svc",
    SERVICE,
    "TEACHER_"
);

/// A running `teacher-svc` process; killed on drop if still running.
pub type Server = rankdistill_testkit::Server<Teacher>;

/// The binary's command line for a dataset and a model, on ephemeral ports, CPU.
pub fn args(data: &Path, model: &Path) -> Vec<OsString> {
    [
        "--data".into(),
        data.as_os_str().to_owned(),
        "--model".into(),
        model.as_os_str().to_owned(),
        "--addr".into(),
        "127.0.0.1:0".into(),
        "--metrics-addr".into(),
        "127.0.0.1:0".into(),
        "--device".into(),
        "cpu".into(),
        "--torch-threads".into(),
        "1".into(),
        "--log-filter".into(),
        "info".into(),
    ]
    .to_vec()
}

/// Runs the binary expecting it to refuse to start; returns its exit status and stderr.
pub fn run_to_refusal(args: &[OsString]) -> (ExitStatus, String) {
    Teacher::spec().run_to_refusal(args)
}

/// Asserts two rankings agree: same length, same scores (tolerance) and the same items except
/// where two neighbours are tied within the tolerance and may swap.
pub fn assert_same_ranking(a: &[(String, f32)], b: &[(String, f32)], context: &str) {
    const TOL: f32 = 1e-4;
    assert_eq!(
        a.len(),
        b.len(),
        "{context}: lengths differ: {a:?} vs {b:?}"
    );
    for (i, ((ia, sa), (ib, sb))) in a.iter().zip(b).enumerate() {
        assert!(
            (sa - sb).abs() <= TOL,
            "{context}: score {i} differs: {a:?} vs {b:?}"
        );
        if ia != ib {
            let tied = |j: usize| j < a.len() && (a[j].1 - a[i].1).abs() <= TOL;
            assert!(
                (i > 0 && tied(i - 1)) || tied(i + 1),
                "{context}: item {i} differs without a tie: {a:?} vs {b:?}"
            );
        }
    }
}
