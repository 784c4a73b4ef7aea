//! The admin RPC (`Reload`) of a real student-svc process: disabled by default (with the
//! artifact watch and SIGHUP still reloading), open with `--enable-admin`, and with a token
//! only for callers sending `authorization: Bearer <token>`; the token never reaches the logs
//! or `--help`, and an unusable token stops the start without being echoed.

mod common;

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, Server, args, run_to_refusal};
use rankdistill_proto::v1::ReloadRequest;
use rankdistill_proto::v1::StudentInfoRequest;
use rankdistill_proto::v1::student_service_client::StudentServiceClient;
use tonic::Code;
use tonic::transport::Channel;

const TOKEN: &str = "admin-test-token-7c4a8d09ca3762af61e59520943dc264";

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn serving_version(client: &mut StudentServiceClient<Channel>) -> String {
    client
        .info(StudentInfoRequest {})
        .await
        .map(|i| i.into_inner().model.map(|m| m.version).unwrap_or_default())
        .unwrap_or_default()
}

fn reload_with(authorization: Option<&str>) -> tonic::Request<ReloadRequest> {
    let mut request = tonic::Request::new(ReloadRequest {});
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_is_disabled_by_default_while_sighup_and_the_watch_still_reload() {
    let fx = Fixture::new();
    // No watcher: only SIGHUP (or the disabled RPC) could reload.
    let server = Server::start_serving(&args(&fx.model, &["--watch-interval-ms", "0"])).await;
    let mut client = server.client().await;
    let v2 = fx.publish(2);
    let status = client.reload(ReloadRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("--admin-token-file")
            && status.message().contains("--enable-admin"),
        "{status:?}"
    );
    // A token does not help while admin is disabled.
    let status = client
        .reload(reload_with(Some(&format!("Bearer {TOKEN}"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(serving_version(&mut client).await, fx.manifest.version);
    server.signal("HUP");
    wait_for("the SIGHUP reload", async || {
        serving_version(&mut client).await == v2
    })
    .await;
    assert!(
        server
            .metrics()
            .await
            .contains(r#"student_requests_total{code="PERMISSION_DENIED",method="Reload"} 2"#)
    );
    drop(server);

    // The artifact watch reloads with admin disabled too.
    let server = Server::start_serving(&args(&fx.model, &["--watch-interval-ms", "20"])).await;
    let mut client = server.client().await;
    assert_eq!(serving_version(&mut client).await, v2);
    let v3 = fx.publish(3);
    wait_for("the watched reload", async || {
        serving_version(&mut client).await == v3
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enable_admin_without_a_token_opens_reload() {
    let fx = Fixture::new();
    let server = Server::start_serving(&args(
        &fx.model,
        &["--watch-interval-ms", "0", "--enable-admin"],
    ))
    .await;
    let mut client = server.client().await;
    let v2 = fx.publish(2);
    let reloaded = client.reload(ReloadRequest {}).await.unwrap().into_inner();
    assert!(reloaded.changed);
    assert_eq!(reloaded.model_version, v2);
}

/// A student-svc whose logs (stderr) go to a file, so the test can read them.
struct LoggedServer {
    child: Child,
    addr: SocketAddr,
}

impl LoggedServer {
    fn start(args: &[OsString], envs: &[(&str, &str)], log: &std::path::Path) -> LoggedServer {
        let mut command = Command::new(env!("CARGO_BIN_EXE_student-svc"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STUDENT_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(args)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("spawn student-svc");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("student-svc exited before listening")
                .expect("read stdout");
            if let Some(a) = line.strip_prefix("listening on ") {
                break a.trim().parse().expect("address");
            }
        };
        std::thread::spawn(move || for _ in lines {});
        LoggedServer { child, addr }
    }

    async fn client(&self) -> StudentServiceClient<Channel> {
        let url = format!("http://{}", self.addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mut client) = StudentServiceClient::connect(url.clone()).await
                && client.info(StudentInfoRequest {}).await.is_ok()
            {
                return client;
            }
            assert!(Instant::now() < deadline, "student-svc never served");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The token checks, for a server started with `--admin-token-file` or with the token in
/// `STUDENT_ADMIN_TOKEN`; returns the server's logs.
async fn exercise_token(fx: &Fixture, extra: &[&str], envs: &[(&str, &str)], seed: u64) -> String {
    let log = fx.root.join(format!("student-{seed}.log"));
    let mut all = vec!["--watch-interval-ms", "0", "--log-filter", "trace"];
    all.extend(extra);
    let server = LoggedServer::start(&args(&fx.model, &all), envs, &log);
    let mut client = server.client().await;
    let wrong = "not-the-admin-token-0123456789";
    for (authorization, code) in [
        (None, Code::Unauthenticated),
        (Some(TOKEN.to_string()), Code::Unauthenticated),
        (Some(format!("Basic {TOKEN}")), Code::Unauthenticated),
        (Some(format!("Bearer {wrong}")), Code::PermissionDenied),
        (Some(format!("Bearer {TOKEN}x")), Code::PermissionDenied),
    ] {
        let status = client
            .reload(reload_with(authorization.as_deref()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{authorization:?}: {status:?}");
        assert!(!status.message().contains(TOKEN), "{status:?}");
    }
    let version = fx.publish(seed);
    let reloaded = client
        .reload(reload_with(Some(&format!("Bearer {TOKEN}"))))
        .await
        .unwrap()
        .into_inner();
    assert!(reloaded.changed);
    assert_eq!(reloaded.model_version, version);
    drop(client);
    drop(server);
    let logs = std::fs::read_to_string(&log).expect("read the log");
    assert!(
        logs.contains("admin call refused") && logs.contains("bearer token"),
        "the logs were not captured:\n{logs}"
    );
    assert!(!logs.contains(wrong), "a presented token was logged");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_and_never_logged() {
    let fx = Fixture::new();
    let token_file = fx.root.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let file = token_file.to_str().unwrap();
    let logs = exercise_token(&fx, &["--admin-token-file", file], &[], 2).await;
    assert!(!logs.contains(TOKEN), "the admin token was logged");
    let logs = exercise_token(&fx, &[], &[("STUDENT_ADMIN_TOKEN", TOKEN)], 3).await;
    assert!(!logs.contains(TOKEN), "the admin token was logged");

    // --help shows the variable but not its value.
    let help = Command::new(env!("CARGO_BIN_EXE_student-svc"))
        .arg("--help")
        .env("STUDENT_ADMIN_TOKEN", TOKEN)
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("STUDENT_ADMIN_TOKEN"), "{help}");
    assert!(!help.contains(TOKEN), "--help shows the token:\n{help}");
}

#[test]
fn an_unusable_token_stops_the_start_without_being_echoed() {
    let fx = Fixture::new();
    let (status, stderr) = run_to_refusal(&args(&fx.model, &["--admin-token", "hunter2-short"]));
    assert!(!status.success());
    assert!(
        stderr.contains("--admin-token: the admin token must have 16 to 4096 characters"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2-short"), "{stderr}");

    let missing = fx.root.join("no-such-token");
    let (status, stderr) = run_to_refusal(&args(
        &fx.model,
        &["--admin-token-file", missing.to_str().unwrap()],
    ));
    assert!(!status.success());
    assert!(
        stderr.contains(&format!(
            "--admin-token-file {}: cannot read the file",
            missing.display()
        )),
        "{stderr}"
    );
}
