//! TLS material read from PEM files, for the servers and the clients, checked with an error
//! that names the flag and the file. Key material never appears in an error or a `Debug`
//! output. Servers build their own rustls configuration ([`ServerTlsFiles::server_config`])
//! so that `tls_reload` can swap it when the files change.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::error_chain::error_chain;

/// Longest a server waits for a client's TLS handshake before dropping the connection.
pub const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A TLS file that cannot be used, or TLS settings that do not fit together.
#[derive(Debug)]
pub enum TlsError {
    /// The file cannot be read.
    Read {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not valid PEM, or holds no block of the kind needed.
    Pem {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What was expected, e.g. "a CERTIFICATE block".
        expected: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// rustls refused the material (e.g. a key that does not match the certificate).
    Rejected {
        /// Which settings.
        what: String,
        /// rustls' reason, with its causes.
        detail: String,
    },
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { flag, path, cause } => {
                write!(
                    f,
                    "{flag} {}: cannot read the file: {cause}",
                    path.display()
                )
            }
            TlsError::Pem {
                flag,
                path,
                expected,
                detail,
            } => write!(
                f,
                "{flag} {}: expected a PEM file with {expected}: {detail}",
                path.display()
            ),
            TlsError::Rejected { what, detail } => write!(f, "{what}: refused by rustls: {detail}"),
        }
    }
}

impl std::error::Error for TlsError {}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|cause| TlsError::Read {
        flag,
        path: path.to_path_buf(),
        cause,
    })
}

fn pem_error(flag: &'static str, path: &Path, expected: &'static str, e: pem::Error) -> TlsError {
    let detail = match e {
        pem::Error::NoItemsFound => "none found".to_string(),
        other => other.to_string(),
    };
    TlsError::Pem {
        flag,
        path: path.to_path_buf(),
        expected,
        detail,
    }
}

/// True when `error` (anywhere in its chain) is a TLS failure: a certificate that does not
/// verify, a refused client certificate, a protocol mismatch. Retrying will not fix those, so
/// clients report them at once instead of retrying as for a server that is starting.
pub fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<rustls::Error>() {
            return true;
        }
        // tokio-rustls wraps rustls errors in io::Error, whose `source` skips the wrapped error.
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Reads a PEM file holding one or more certificates (a chain, or CA certificates).
pub fn read_certificates(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    const EXPECTED: &str = "at least one CERTIFICATE block";
    let bytes = read(flag, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(flag, path, EXPECTED, e))?;
    if certificates.is_empty() {
        return Err(pem_error(flag, path, EXPECTED, pem::Error::NoItemsFound));
    }
    Ok(bytes)
}

/// Reads a PEM file holding a private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    const EXPECTED: &str = "a PRIVATE KEY block (PKCS#8, RSA or EC)";
    let bytes = read(flag, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| pem_error(flag, path, EXPECTED, e))?;
    Ok(bytes)
}

/// A server's TLS files: its certificate chain and key, and optionally the CA that client
/// certificates must chain to (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// `--tls-cert`: the server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// `--tls-key`: the server's private key.
    pub key: PathBuf,
    /// `--tls-client-ca`: when set, clients must present a certificate signed by it.
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsFiles {
    /// The files from the three optional flags: none without `--tls-cert`/`--tls-key`.
    /// Fails when only one of the pair, or the client CA alone, is given.
    pub fn from_flags(
        cert: Option<&Path>,
        key: Option<&Path>,
        client_ca: Option<&Path>,
    ) -> Result<Option<ServerTlsFiles>, String> {
        match (cert, key) {
            (Some(cert), Some(key)) => Ok(Some(ServerTlsFiles {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                client_ca: client_ca.map(Path::to_path_buf),
            })),
            (None, None) if client_ca.is_some() => Err(
                "--tls-client-ca requires TLS: give --tls-cert and --tls-key as well".to_string(),
            ),
            (None, None) => Ok(None),
            (Some(_), None) => Err("--tls-cert requires --tls-key".to_string()),
            (None, Some(_)) => Err("--tls-key requires --tls-cert".to_string()),
        }
    }

    /// Reads and checks the files and builds the rustls configuration (which refuses, e.g.,
    /// a key that is not the certificate's). It offers HTTP/2 only, as gRPC needs.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let cert = read_certificates("--tls-cert", &self.cert)?;
        let key = read_private_key("--tls-key", &self.key)?;
        let chain = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| pem_error("--tls-cert", &self.cert, "a CERTIFICATE block", e))?;
        let key = PrivateKeyDer::from_pem_slice(&key)
            .map_err(|e| pem_error("--tls-key", &self.key, "a PRIVATE KEY block", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let rejected = |detail: String| {
            let mut what = format!(
                "--tls-cert {} / --tls-key {}",
                self.cert.display(),
                self.key.display()
            );
            if let Some(ca) = &self.client_ca {
                what.push_str(&format!(" / --tls-client-ca {}", ca.display()));
            }
            TlsError::Rejected { what, detail }
        };
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| rejected(error_chain(&e)))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let pem = read_certificates("--tls-client-ca", ca)?;
                let mut roots = rustls::RootCertStore::empty();
                for certificate in CertificateDer::pem_slice_iter(&pem) {
                    let certificate = certificate
                        .map_err(|e| pem_error("--tls-client-ca", ca, "a CERTIFICATE block", e))?;
                    roots
                        .add(certificate)
                        .map_err(|e| rejected(error_chain(&e)))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| rejected(error_chain(&e)))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| rejected(error_chain(&e)))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// A description for logs: files and mode, never their contents.
    pub fn describe(&self) -> String {
        match &self.client_ca {
            Some(ca) => format!(
                "mutual TLS (cert {}, client CA {})",
                self.cert.display(),
                ca.display()
            ),
            None => format!("TLS (cert {})", self.cert.display()),
        }
    }
}

/// A client's TLS files: the CA that signed the server, optionally a client identity (for
/// servers that require mutual TLS) and a name to verify instead of the URL's host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// `--tls-ca`: CA certificate(s) the server's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// `--tls-cert`: the client's certificate chain.
    pub cert: Option<PathBuf>,
    /// `--tls-key`: the client's private key.
    pub key: Option<PathBuf>,
    /// `--tls-domain`: the name the server's certificate must carry (default: the URL's host).
    pub domain: Option<String>,
}

impl ClientTlsFiles {
    /// True when any TLS setting is given.
    pub fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some() || self.domain.is_some()
    }

    /// Reads and checks the files. Needs `ca`: there is no implicit trust store.
    pub fn load(&self) -> Result<ClientTlsConfig, TlsError> {
        let Some(ca) = &self.ca else {
            return Err(TlsError::Rejected {
                what: "client TLS".into(),
                detail: "https endpoints need --tls-ca (the CA certificate that signed the server's certificate)".into(),
            });
        };
        let mut config = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read_certificates("--tls-ca", ca)?));
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let cert = read_certificates("--tls-cert", cert)?;
                let key = read_private_key("--tls-key", key)?;
                config = config.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(TlsError::Rejected {
                    what: "client TLS".into(),
                    detail: "--tls-cert requires --tls-key".into(),
                });
            }
            (None, Some(_)) => {
                return Err(TlsError::Rejected {
                    what: "client TLS".into(),
                    detail: "--tls-key requires --tls-cert".into(),
                });
            }
        }
        if let Some(domain) = &self.domain {
            config = config.domain_name(domain.clone());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn unreadable_and_non_pem_files_name_the_flag_and_the_file() {
        let dir = std::env::temp_dir().join(format!("rd-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let e = read_certificates("--tls-cert", &missing).unwrap_err();
        assert!(matches!(e, TlsError::Read { .. }), "{e}");
        assert!(
            e.to_string().starts_with("--tls-cert ") && e.to_string().contains("missing.pem"),
            "{e}"
        );

        let text = file(&dir, "text.pem", "hello\n");
        let e = read_certificates("--tls-client-ca", &text).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected a PEM file with at least one CERTIFICATE block: none found"),
            "{e}"
        );
        let e = read_private_key("--tls-key", &text).unwrap_err();
        assert!(e.to_string().contains("PRIVATE KEY"), "{e}");

        let broken = file(
            &dir,
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        let e = read_certificates("--tls-cert", &broken).unwrap_err();
        assert!(e.to_string().contains("base64"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tls_failures_are_found_inside_io_errors() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, alert.clone());
        assert!(is_tls_failure(&alert));
        assert!(is_tls_failure(&io));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_failure(&refused));
    }

    #[test]
    fn server_flags_must_come_in_pairs() {
        let p = Path::new("x");
        assert_eq!(ServerTlsFiles::from_flags(None, None, None), Ok(None));
        assert!(
            ServerTlsFiles::from_flags(Some(p), Some(p), Some(p))
                .unwrap()
                .is_some()
        );
        for (cert, key, ca, expected) in [
            (Some(p), None, None, "--tls-cert requires --tls-key"),
            (None, Some(p), None, "--tls-key requires --tls-cert"),
            (None, None, Some(p), "--tls-client-ca requires TLS"),
        ] {
            let e = ServerTlsFiles::from_flags(cert, key, ca).unwrap_err();
            assert!(e.contains(expected), "{e}");
        }
    }

    #[test]
    fn a_client_needs_a_ca_and_both_halves_of_its_identity() {
        let e = ClientTlsFiles::default().load().unwrap_err();
        assert!(e.to_string().contains("--tls-ca"), "{e}");
        assert!(!ClientTlsFiles::default().any());
        let half = ClientTlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..ClientTlsFiles::default()
        };
        assert!(half.any());
        // The CA is read first: its error names it.
        let e = half.load().unwrap_err();
        assert!(
            e.to_string().starts_with("--tls-ca /nonexistent/ca.pem"),
            "{e}"
        );
    }
}
