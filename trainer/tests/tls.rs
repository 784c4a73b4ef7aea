//! `trainer distill` pulling from a real teacher-svc over mutual TLS (certificates generated
//! with rcgen): endpoints without a scheme become https://, the client certificate is
//! presented, a name override (`--tls-domain`) verifies a certificate that does not name the
//! address; a missing client certificate, a plain-text client and a certificate for another
//! name are refused with an error that says so.

mod support;

use std::path::Path;

use rankdistill_testkit::pki::Pki;
use support::{Server, TEACHER, dataset_and_teacher, p, texts, trainer_command, workspace_bin};

fn distill(data: &Path, teacher: &str, cache: &Path, out: &Path, tls: &[&str]) -> (bool, String) {
    let mut args = vec![
        "distill".to_string(),
        "--data".into(),
        p(data),
        "--teacher".into(),
        teacher.into(),
        "--cache-dir".into(),
        p(cache),
        "--out".into(),
        p(out),
        "--dim".into(),
        "8".into(),
        "--epochs".into(),
        "1".into(),
        "--dynamic-start-epoch".into(),
        "0".into(),
        "--samples".into(),
        "10".into(),
        "--max-retries".into(),
        "1".into(),
    ];
    args.extend(tls.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = trainer_command(&args);
    for key in ["RD_TLS_CA", "RD_TLS_CERT", "RD_TLS_KEY", "RD_TLS_DOMAIN"] {
        command.env_remove(key);
    }
    let out = command.output().expect("run trainer distill");
    let (stdout, stderr) = texts(&out);
    (out.status.success(), format!("{stdout}\n{stderr}"))
}

fn teacher(dir: &Path, tls: &[String]) -> Server {
    let (data, model) = (p(&dir.join("data")), p(&dir.join("teacher")));
    let mut args = vec![
        "--data",
        &data,
        "--model",
        &model,
        "--addr",
        "127.0.0.1:0",
        "--device",
        "cpu",
    ];
    args.extend(tls.iter().map(String::as_str));
    Server::start(&workspace_bin("teacher-svc"), TEACHER, &args)
}

#[test]
fn distill_pulls_over_mutual_tls_and_refuses_what_does_not_verify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    dataset_and_teacher(root, "120", "80", "3", &["--dim", "8", "--epochs", "1"]);
    let data = root.join("data");
    let pki = Pki::new();
    let (ca, cert, key) = (p(&pki.ca), p(&pki.client_cert), p(&pki.client_key));

    // Mutual TLS; the endpoint without a scheme becomes https:// because of --tls-ca.
    let mtls = teacher(root, &pki.server_args(true));
    let (ok, output) = distill(
        &data,
        &mtls.addr,
        &root.join("cache-a"),
        &root.join("student-a"),
        &["--tls-ca", &ca, "--tls-cert", &cert, "--tls-key", &key],
    );
    assert!(ok, "{output}");
    assert!(output.contains("from the teacher"), "{output}");
    assert!(root.join("student-a").join("manifest.json").exists());

    // Without a client certificate: refused by the teacher.
    let (ok, output) = distill(
        &data,
        &mtls.addr,
        &root.join("cache-b"),
        &root.join("student-b"),
        &["--tls-ca", &ca],
    );
    assert!(
        !ok,
        "a pull without a client certificate succeeded:\n{output}"
    );
    assert!(output.contains(&mtls.addr), "{output}");
    // In plain text: refused.
    let (ok, output) = distill(
        &data,
        &format!("http://{}", mtls.addr),
        &root.join("cache-b"),
        &root.join("student-b"),
        &[],
    );
    assert!(
        !ok,
        "a plain-text pull from a TLS teacher succeeded:\n{output}"
    );
    // https:// without a CA: refused before connecting, naming the flag.
    let (ok, output) = distill(
        &data,
        &format!("https://{}", mtls.addr),
        &root.join("cache-b"),
        &root.join("student-b"),
        &[],
    );
    assert!(!ok);
    assert!(output.contains("--tls-ca"), "{output}");
    assert!(!root.join("student-b").exists());
    drop(mtls);

    // A teacher whose certificate names teacher.internal only, reached by IP.
    let named = teacher(
        root,
        &[
            "--tls-cert".into(),
            p(&pki.named_server_cert),
            "--tls-key".into(),
            p(&pki.named_server_key),
        ],
    );
    let (ok, output) = distill(
        &data,
        &named.addr,
        &root.join("cache-c"),
        &root.join("student-c"),
        &["--tls-ca", &ca],
    );
    assert!(
        !ok,
        "a certificate for another name was accepted:\n{output}"
    );
    assert!(output.contains("not valid for name"), "{output}");
    let (ok, output) = distill(
        &data,
        &named.addr,
        &root.join("cache-d"),
        &root.join("student-d"),
        &["--tls-ca", &ca, "--tls-domain", "teacher.internal"],
    );
    assert!(ok, "{output}");
    assert!(output.contains("from the teacher"), "{output}");
}
