//! student-svc binary: parse the configuration, bind, print the bound addresses, run until
//! SIGTERM/SIGINT.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use rankdistill_student::config::Config;
use rankdistill_student::server::{self, Listeners};
use rankdistill_student::telemetry::init_tracing;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

fn main() -> ExitCode {
    let config = Config::parse();
    if let Err(e) = init_tracing(config.log_format, &config.log_filter) {
        eprintln!("student-svc: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("student-svc: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("student-svc: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&config).await?;
    let grpc = listeners.grpc_addr().context("gRPC listener")?;
    let metrics = listeners.metrics_addr().context("metrics listener")?;
    // Machine-readable lines for scripts and tests that start the server on port 0.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {grpc}")?;
    if let Some(health) = listeners.health_addr() {
        writeln!(stdout, "health on {}", health.context("health listener")?)?;
    }
    writeln!(stdout, "metrics on {metrics}")?;
    stdout.flush()?;
    drop(stdout);
    info!(%grpc, %metrics, "bound");

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        }
        on_signal.cancel();
    });
    server::run(config, listeners, shutdown).await?;
    Ok(())
}
