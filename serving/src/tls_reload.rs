//! TLS for the gRPC port with certificate rotation: connections are accepted here, the TLS
//! handshake runs with the current rustls configuration, and a watcher re-reads the
//! `--tls-*` files every `--tls-reload-interval-ms`. When their contents change and the new
//! files are valid, new connections get them; connections already open keep theirs. When the
//! new files are refused (a half-written key, a key that is not the certificate's), the
//! previous configuration stays and a warning says why.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::tls::{ServerTlsFiles, TLS_HANDSHAKE_TIMEOUT, TlsError};

/// Connections whose handshake finished, waiting for the server to take them.
const ACCEPTED_BACKLOG: usize = 128;

/// The stream of TLS connections the gRPC server serves.
pub type TlsIncoming = ReceiverStream<io::Result<TlsStream<TcpStream>>>;

/// The contents of the TLS files, to notice a rotation.
fn contents(files: &ServerTlsFiles) -> Vec<Option<Vec<u8>>> {
    [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .map(|path| path.and_then(|p| std::fs::read(p).ok()))
    .collect()
}

/// The current rustls configuration of a server, swapped when the files change.
#[derive(Debug)]
pub struct RotatingTls {
    files: ServerTlsFiles,
    current: ArcSwap<rustls::ServerConfig>,
}

impl RotatingTls {
    /// Reads the files; fails, naming the flag and the file, when they are unusable.
    pub fn load(files: ServerTlsFiles) -> Result<RotatingTls, TlsError> {
        let config = files.server_config()?;
        Ok(RotatingTls {
            files,
            current: ArcSwap::new(config),
        })
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.load_full()
    }

    /// Re-reads the files and swaps the configuration in; on error the previous one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = self.files.server_config()?;
        self.current.store(config);
        Ok(())
    }

    /// Re-reads the files every `interval` while their contents differ from the last
    /// seen, until `stop` is cancelled.
    pub async fn watch(self: Arc<Self>, interval: Duration, stop: CancellationToken) {
        let files = self.files.clone();
        let mut seen = tokio::task::spawn_blocking(move || contents(&files))
            .await
            .unwrap_or_default();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let this = self.clone();
            let previous = std::mem::take(&mut seen);
            let checked = tokio::task::spawn_blocking(move || {
                let now = contents(&this.files);
                let outcome = (now != previous).then(|| this.reload());
                (now, outcome)
            })
            .await;
            let Ok((now, outcome)) = checked else {
                continue;
            };
            match outcome {
                None => {}
                Some(Ok(())) => {
                    info!(mode = %self.files.describe(), "TLS files changed: new connections use them");
                }
                Some(Err(e)) => warn!(
                    error = %e,
                    "TLS files changed but are refused; new connections keep the previous certificate"
                ),
            }
            seen = now;
        }
    }
}

/// Accepts connections on `listener` and performs their TLS handshakes (each at most
/// [`TLS_HANDSHAKE_TIMEOUT`], none blocking the others) with `tls`'s current configuration,
/// until `stop` is cancelled or the server stops taking connections.
pub fn tls_incoming(
    listener: TcpListener,
    tls: Arc<RotatingTls>,
    stop: CancellationToken,
) -> TlsIncoming {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                _ = tx.closed() => return,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "gRPC listener accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let acceptor = TlsAcceptor::from(tls.current());
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(connection)) => {
                        let _ = tx.send(Ok(connection)).await;
                    }
                    Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                    Err(_) => debug!("TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for localhost and its key, in PEM.
    fn identity() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn rotated_files_are_swapped_in_and_refused_ones_keep_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let files = ServerTlsFiles {
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            client_ca: None,
        };
        let (cert, key) = identity();
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let tls = Arc::new(RotatingTls::load(files.clone()).unwrap());
        let first = tls.current();

        // A key that is not the certificate's: refused, the previous configuration stays.
        let (_, other_key) = identity();
        std::fs::write(&files.key, &other_key).unwrap();
        let e = tls.reload().unwrap_err();
        assert!(e.to_string().contains("refused by rustls"), "{e}");
        assert!(Arc::ptr_eq(&first, &tls.current()));

        // The watcher notices a valid rotation and swaps it in.
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(tls.clone().watch(Duration::from_millis(20), stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(Arc::ptr_eq(&first, &tls.current()), "nothing changed yet");
        let (cert, key) = identity();
        std::fs::write(&files.key, &key).unwrap();
        std::fs::write(&files.cert, &cert).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while Arc::ptr_eq(&first, &tls.current()) {
            assert!(
                std::time::Instant::now() < deadline,
                "the rotation was not picked up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.cancel();
        watcher.await.unwrap();
    }
}
