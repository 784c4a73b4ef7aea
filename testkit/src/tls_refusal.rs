//! The TLS flag sets a server must refuse to start with, and the check that it does: shared
//! by both services' TLS tests, since both read their PEM files through `rankdistill-serving`.

use crate::binary::path_arg;
use crate::pki::{Pki, cert_and_key};
use crate::tls::assert_tls_refusal;

/// The TLS flag sets a server must refuse to start with, each with what its error must say:
/// a missing or non-PEM file, a certificate given as the key, a key that does not belong to
/// the certificate, a client CA that is not a certificate, and half a pair of flags.
pub fn unusable_tls_flags(pki: &Pki) -> Vec<(Vec<String>, Vec<String>)> {
    let missing = pki.dir.join("missing.pem");
    let not_pem = pki.dir.join("notes.txt");
    std::fs::write(&not_pem, "not a certificate\n").expect("write notes.txt");
    vec![
        (
            cert_and_key(&missing, &pki.server_key),
            vec![format!(
                "--tls-cert {}: cannot read the file",
                missing.display()
            )],
        ),
        (
            cert_and_key(&pki.server_cert, &missing),
            vec![
                format!("--tls-key {}", missing.display()),
                "cannot read the file".into(),
            ],
        ),
        (
            cert_and_key(&pki.server_cert, &pki.server_cert),
            vec![format!(
                "--tls-key {}: expected a PEM file with a PRIVATE KEY block",
                pki.server_cert.display()
            )],
        ),
        (
            cert_and_key(&not_pem, &pki.server_key),
            vec![
                format!("--tls-cert {}", not_pem.display()),
                "CERTIFICATE".into(),
            ],
        ),
        (
            // A key that does not belong to the certificate.
            cert_and_key(&pki.server_cert, &pki.client_key),
            vec![
                format!("--tls-cert {}", pki.server_cert.display()),
                "refused by rustls".into(),
            ],
        ),
        (
            [
                pki.server_args(false),
                vec!["--tls-client-ca".into(), path_arg(&pki.server_key)],
            ]
            .concat(),
            vec![
                format!("--tls-client-ca {}", pki.server_key.display()),
                "CERTIFICATE".into(),
            ],
        ),
        (
            vec!["--tls-client-ca".into(), path_arg(&pki.ca)],
            vec!["--tls-cert".into()],
        ),
        (
            vec!["--tls-cert".into(), path_arg(&pki.server_cert)],
            vec!["--tls-key".into()],
        ),
    ]
}

/// Asserts that a server refuses to start with every set of [`unusable_tls_flags`], naming
/// the flag and the file; `run` adds the service's own flags and runs it to its exit.
pub fn assert_unusable_tls_flags_refused(
    pki: &Pki,
    run: impl Fn(&[String]) -> (std::process::ExitStatus, String),
) {
    for (extra, expected) in unusable_tls_flags(pki) {
        let (status, stderr) = run(&extra);
        assert_tls_refusal(&extra, status, &stderr, &expected);
    }
}
