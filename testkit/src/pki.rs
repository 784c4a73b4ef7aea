//! A test PKI generated with rcgen, written as PEM files in a temp folder: a CA, a server
//! certificate for `localhost` and 127.0.0.1, a server certificate for `teacher.internal`
//! only, a client certificate, and a client certificate from an unrelated CA. Used by the
//! TLS tests of teacher-svc, student-svc and trainer; the channel over it is in `tls`.

use std::path::{Path, PathBuf};

use crate::binary::path_arg;
use crate::tls::ClientTlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files of the test PKI.
pub struct Pki {
    _dir: tempfile::TempDir,
    /// The folder holding the files.
    pub dir: PathBuf,
    /// The CA every good certificate chains to.
    pub ca: PathBuf,
    /// Server certificate (localhost, 127.0.0.1) and key.
    pub server_cert: PathBuf,
    /// Key of `server_cert`.
    pub server_key: PathBuf,
    /// Server certificate valid for `teacher.internal` only, and its key.
    pub named_server_cert: PathBuf,
    /// Key of `named_server_cert`.
    pub named_server_key: PathBuf,
    /// Client certificate signed by `ca`.
    pub client_cert: PathBuf,
    /// Key of `client_cert`.
    pub client_key: PathBuf,
    /// An unrelated CA.
    pub other_ca: PathBuf,
    /// Client certificate signed by `other_ca`.
    pub other_client_cert: PathBuf,
    /// Key of `other_client_cert`.
    pub other_client_key: PathBuf,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).expect("leaf params");
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Pki {
    /// Generates everything.
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let write = |name: &str, pem: &str| {
            let path = root.join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        let good = ca("rankdistill test CA");
        let other = ca("unrelated CA");
        let (server_cert, server_key) = leaf(
            &good,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (named_cert, named_key) = leaf(
            &good,
            &["teacher.internal"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(&good, &["rd-client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (other_cert, other_key) = leaf(
            &other,
            &["rd-intruder"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Pki {
            ca: write("ca.pem", &good.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server-key.pem", &server_key),
            named_server_cert: write("named-server.pem", &named_cert),
            named_server_key: write("named-server-key.pem", &named_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client-key.pem", &client_key),
            other_ca: write("other-ca.pem", &other.pem()),
            other_client_cert: write("other-client.pem", &other_cert),
            other_client_key: write("other-client-key.pem", &other_key),
            dir: root,
            _dir: dir,
        }
    }

    /// Server flags for TLS, plus `--tls-client-ca` when `mutual`.
    pub fn server_args(&self, mutual: bool) -> Vec<String> {
        let mut args = cert_and_key(&self.server_cert, &self.server_key);
        if mutual {
            args.extend(["--tls-client-ca".to_string(), path_arg(&self.ca)]);
        }
        args
    }

    /// Client files trusting the good CA, with the good client identity when `identity`.
    pub fn client(&self, identity: bool) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: Some(self.ca.clone()),
            cert: identity.then(|| self.client_cert.clone()),
            key: identity.then(|| self.client_key.clone()),
            domain: None,
        }
    }

    /// Client files trusting the good CA, presenting the certificate of the unrelated CA.
    pub fn intruder(&self) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: Some(self.ca.clone()),
            cert: Some(self.other_client_cert.clone()),
            key: Some(self.other_client_key.clone()),
            domain: None,
        }
    }
}

/// The flags `--tls-cert CERT --tls-key KEY` (a server's identity, or a client's).
pub fn cert_and_key(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--tls-cert".to_string(),
        path_arg(cert),
        "--tls-key".to_string(),
        path_arg(key),
    ]
}
