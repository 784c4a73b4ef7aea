//! teacher-svc as the shadow tests run it: the workspace binary (built beside this test, see
//! `rankdistill_testkit::workspace_bin`) serving an artifact written by the fixtures, on the
//! CPU, on ephemeral ports.

use std::path::Path;
use std::time::Duration;

use rankdistill_proto::v1::teacher_service_client::TeacherServiceClient;
use rankdistill_testkit::{Channel, ServerProcess, ServerSpec, path_arg, workspace_bin};

/// The gRPC service name of teacher-svc.
pub const TEACHER_SERVICE: &str = "rankdistill.v1.TeacherService";

/// Starts teacher-svc on `data` and the artifact `model` and waits until it is SERVING.
pub async fn start(data: &Path, model: &Path) -> ServerProcess {
    let (data, model) = (path_arg(data), path_arg(model));
    ServerSpec::new(workspace_bin("teacher-svc"), TEACHER_SERVICE)
        .without_env_prefix("TEACHER_")
        .env("RUST_LOG", "warn")
        .startup_timeout(Duration::from_secs(120))
        .start_serving(&[
            "--data",
            &data,
            "--model",
            &model,
            "--device",
            "cpu",
            "--addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
            "--log-filter",
            "warn",
        ])
        .await
}

/// A connected client of a running teacher-svc.
pub async fn client(teacher: &ServerProcess) -> TeacherServiceClient<Channel> {
    TeacherServiceClient::new(teacher.channel().await.expect("connect to teacher-svc"))
}
