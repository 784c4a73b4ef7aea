//! The server's sockets, bound before the server runs so callers (tests, scripts, the
//! benchmark) learn ephemeral ports, and the machine-readable lines that announce them.

use std::io::Write;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::args::ServerArgs;
use crate::error::ServeError;

/// The server's sockets.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// Prometheus metrics.
    pub metrics: TcpListener,
    /// Plain-text health only (`--health-addr`).
    pub health: Option<TcpListener>,
}

async fn bind(addr: SocketAddr, what: &'static str) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|cause| ServeError::Io {
            context: format!("cannot bind the {what} address {addr}"),
            cause,
        })
}

impl Listeners {
    /// Binds `--addr`, `--metrics-addr` and, when set, `--health-addr`.
    pub async fn bind(args: &ServerArgs) -> Result<Listeners, ServeError> {
        let health = match args.health_addr {
            Some(addr) => Some(bind(addr, "health").await?),
            None => None,
        };
        Ok(Listeners {
            grpc: bind(args.addr, "gRPC").await?,
            metrics: bind(args.metrics_addr, "metrics").await?,
            health,
        })
    }

    /// The bound gRPC address.
    pub fn grpc_addr(&self) -> std::io::Result<SocketAddr> {
        self.grpc.local_addr()
    }

    /// The bound metrics address.
    pub fn metrics_addr(&self) -> std::io::Result<SocketAddr> {
        self.metrics.local_addr()
    }

    /// The bound plain-text health address, when `--health-addr` is set.
    pub fn health_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.health.as_ref().map(TcpListener::local_addr)
    }

    /// Prints `listening on ADDR`, `health on ADDR` (with `--health-addr`) and
    /// `metrics on ADDR` on stdout, for scripts and tests that start the server on port 0.
    pub fn announce(&self) -> Result<(), ServeError> {
        let io = |context: &str| {
            let context = context.to_string();
            move |cause| ServeError::Io {
                context: context.clone(),
                cause,
            }
        };
        let grpc = self.grpc_addr().map_err(io("gRPC listener"))?;
        let metrics = self.metrics_addr().map_err(io("metrics listener"))?;
        let mut stdout = std::io::stdout().lock();
        let write = io("cannot write the bound addresses to stdout");
        writeln!(stdout, "listening on {grpc}").map_err(&write)?;
        if let Some(health) = self.health_addr() {
            let health = health.map_err(io("health listener"))?;
            writeln!(stdout, "health on {health}").map_err(&write)?;
        }
        writeln!(stdout, "metrics on {metrics}").map_err(&write)?;
        stdout.flush().map_err(&write)?;
        tracing::info!(%grpc, %metrics, "bound");
        Ok(())
    }
}
