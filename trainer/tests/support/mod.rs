//! Harness for the trainer tests that need servers: teacher-svc (and student-svc) as real
//! processes on ephemeral loopback ports, and the trainer binary with a chosen environment.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rankdistill_testkit::{ServerProcess, ServerSpec};
pub use rankdistill_testkit::{path_arg as p, texts, workspace_bin};

/// The trainer binary with `args`, quiet logs, no inherited shard environment and LibTorch's
/// default thread count (`RD_TORCH_THREADS=0`: a count that follows the load would make the
/// tests that train twice and compare the weights depend on what else runs).
pub fn trainer_command<A: AsRef<OsStr>>(args: &[A]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trainer"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env("RD_TORCH_THREADS", "0")
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("RD_SHARD_INDEX")
        .env_remove("RD_SHARD_COUNT")
        .env_remove("RD_JSON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the trainer to the end; returns (success, stdout, stderr).
pub fn trainer(args: &[&str]) -> (bool, String, String) {
    let out = trainer_command(args).output().expect("run trainer");
    let (stdout, stderr) = texts(&out);
    (out.status.success(), stdout, stderr)
}

/// Runs the trainer with `env` added (and no backtraces unless `env` asks); returns its exit
/// code, stdout and stderr.
pub fn trainer_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = trainer_command(args);
    command.env("RUST_BACKTRACE", "0");
    command.envs(env.iter().copied());
    let out = command.output().expect("run trainer");
    let (stdout, stderr) = texts(&out);
    (out.status.code(), stdout, stderr)
}

/// Runs the trainer to the end; panics with its stderr when it fails.
pub fn trainer_ok(args: &[&str]) -> String {
    let out = trainer_command(args).output().expect("run trainer");
    assert!(
        out.status.success(),
        "trainer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A synthetic interaction file `dir/NAME.data` of `users` and `items` prepared into
/// `dir/NAME`; returns that folder.
pub fn prepared(dir: &Path, name: &str, users: &str, items: &str, seed: &str) -> PathBuf {
    let (udata, data) = (dir.join(format!("{name}.data")), dir.join(name));
    trainer_ok(&[
        "gen-synthetic",
        "--out",
        &p(&udata),
        "--users",
        users,
        "--items",
        items,
        "--seed",
        seed,
    ]);
    trainer_ok(&["prepare", "--input", &p(&udata), "--out", &p(&data)]);
    data
}

/// A synthetic dataset prepared in `dir/data`, and a Caser teacher of `dim` trained on it for
/// `epochs` in `dir/teacher` (extra flags appended to `train`).
pub fn dataset_and_teacher(dir: &Path, users: &str, items: &str, seed: &str, train: &[&str]) {
    prepared(dir, "data", users, items, seed);
    let mut args = vec![
        "train".to_string(),
        "--data".into(),
        p(&dir.join("data")),
        "--out".into(),
        p(&dir.join("teacher")),
    ];
    args.extend(train.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    trainer_ok(&args);
}

/// A server process that printed `listening on ADDR` (and `metrics on ADDR`), with both
/// addresses as arguments; the rest of the process through `Deref`; killed on drop.
pub struct Server {
    process: ServerProcess,
    /// Its gRPC address.
    pub addr: String,
    /// Its metrics address.
    pub metrics: String,
}

impl Server {
    /// Starts `bin` (serving `service`) with `args`, an ephemeral metrics port and quiet logs,
    /// and waits for both addresses.
    pub fn start(bin: &Path, service: &'static str, args: &[&str]) -> Server {
        let process = ServerSpec::new(bin, service)
            .trailing_args(&["--metrics-addr", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .quiet()
            .startup_timeout(Duration::from_secs(120))
            .start(args);
        Server {
            addr: process.addr.to_string(),
            metrics: process.metrics_addr.to_string(),
            process,
        }
    }

    /// teacher-svc on `data` and `model`, on an ephemeral port, on the CPU.
    pub fn teacher(data: &Path, model: &Path) -> Server {
        Server::serving("teacher-svc", TEACHER, data, model, &["--device", "cpu"])
    }

    /// student-svc serving the artifact `model` with the users of `data`.
    pub fn student(data: &Path, model: &Path) -> Server {
        Server::serving("student-svc", STUDENT, data, model, &[])
    }

    /// student-svc serving `model` with the users of `data`, shadowing every query to the
    /// teacher at `teacher` (host:port), plus `extra` flags. Shadow calls may take up to a
    /// minute: a slow teacher call on a loaded test machine is not a failure.
    pub fn shadowing_student(data: &Path, model: &Path, teacher: &str, extra: &[&str]) -> Server {
        let shadow = format!("http://{teacher}");
        let mut args = vec![
            "--shadow-teacher",
            shadow.as_str(),
            "--shadow-fraction",
            "1",
            "--shadow-timeout-ms",
            "60000",
        ];
        args.extend_from_slice(extra);
        Server::serving("student-svc", STUDENT, data, model, &args)
    }

    /// A service binary on `data` and `model`, on an ephemeral port, plus `extra` flags.
    fn serving(
        binary: &str,
        service: &'static str,
        data: &Path,
        model: &Path,
        extra: &[&str],
    ) -> Server {
        let (data, model) = (p(data), p(model));
        let mut args = vec!["--data", data.as_str(), "--model", model.as_str()];
        args.extend_from_slice(&["--addr", "127.0.0.1:0"]);
        args.extend_from_slice(extra);
        Server::start(&workspace_bin(binary), service, &args)
    }

    /// Waits until the gRPC health service answers SERVING (for the server and its service).
    pub fn wait_serving(&self) {
        self.process.wait_serving_blocking();
    }
}

impl std::ops::Deref for Server {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

/// The gRPC service name of teacher-svc.
pub const TEACHER: &str = "rankdistill.v1.TeacherService";
/// The gRPC service name of student-svc.
pub const STUDENT: &str = "rankdistill.v1.StudentService";

/// teacher-svc on `data` and `model` at `addr`: an ephemeral port, or the port of a teacher
/// that was killed, to restart it where the client expects it.
pub fn start_teacher(data: &Path, model: &Path, addr: &str) -> Server {
    Server::start(
        &workspace_bin("teacher-svc"),
        TEACHER,
        &[
            "--data",
            data.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--addr",
            addr,
            "--device",
            "cpu",
        ],
    )
}

/// The sum of a teacher's Prometheus samples whose line starts with `name` and contains
/// `label` (0 while it cannot be reached).
pub fn teacher_counter(teacher: &Server, name: &str, label: &str) -> u64 {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(&teacher.metrics) else {
        return 0;
    };
    let _ = write!(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Small lists and draws of the methods after RD for the 200-item catalogs of the tests.
pub const SMALL_METHOD_LISTS: &[&str] = &[
    "--cd-top-n",
    "40",
    "--rrd-top-n",
    "50",
    "--rrd-k",
    "10",
    "--rrd-l",
    "20",
    "--dcd-top-n",
    "50",
    "--dcd-k",
    "10",
    "--rcekd-k",
    "10",
    "--rcekd-l",
    "10",
    "--rcekd-top-n",
    "40",
];

/// `trainer pull` of both shards of a 2-shard split of `data`'s queries from `teacher` into
/// `shards`, with `extra` flags (the student's kind, the method and its lists).
pub fn pull_two_shards(data: &Path, teacher: &str, shards: &Path, extra: &[&str]) {
    for index in ["0", "1"] {
        let mut args = vec![
            "pull",
            "--data",
            data.to_str().unwrap(),
            "--teacher",
            teacher,
            "--cache-dir",
            shards.to_str().unwrap(),
            "--shard-count",
            "2",
            "--shard-index",
            index,
        ];
        args.extend_from_slice(extra);
        let (ok, _, err) = trainer(&args);
        assert!(ok, "shard {index}: {err}");
    }
}
