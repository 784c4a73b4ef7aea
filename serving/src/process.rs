//! A server binary's `main`: logging, the runtime, the listeners and their announcement,
//! SIGTERM/SIGINT as a [`CancellationToken`], and the exit code. The runtime is shut down
//! without waiting for blocking work, so a signal during a long load (a dataset read, a
//! model load) ends the process promptly instead of waiting for the load to finish.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::args::ServerArgs;
use crate::error::ServeError;
use crate::error_chain::error_chain;
use crate::listeners::Listeners;
use crate::logging::init_tracing;

/// How long blocking work may keep the process alive once the server has stopped.
const BLOCKING_GRACE: Duration = Duration::from_millis(100);

/// Cancels the returned token on the first SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> Result<CancellationToken, ServeError> {
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|cause| ServeError::Io {
            context: "cannot install the SIGTERM handler".into(),
            cause,
        })?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        }
        on_signal.cancel();
    });
    Ok(shutdown)
}

/// Runs a server binary named `name`: sets up logging from `args` (exit code 2 when the
/// filter is invalid), binds and announces the listeners, and runs `serve` until it
/// returns; SIGTERM/SIGINT cancel its token. Exit code 0 after a clean stop (a signal
/// included), 1 with the error's chain on stderr otherwise.
pub fn main<F, Fut, E>(name: &str, args: &ServerArgs, serve: F) -> ExitCode
where
    F: FnOnce(Listeners, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + From<ServeError> + 'static,
{
    if let Err(e) = init_tracing(args.log_format, &args.log_filter) {
        eprintln!("{name}: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listeners = Listeners::bind(args).await?;
        listeners.announce()?;
        let shutdown = shutdown_on_signals()?;
        serve(listeners, shutdown).await
    });
    // Dropping the runtime would wait for every blocking task (a load still reading a
    // dataset when SIGTERM came): give them a moment, then leave them behind.
    runtime.shutdown_timeout(BLOCKING_GRACE);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = error_chain(&e);
            error!("{message}");
            eprintln!("{name}: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    #[test]
    fn blocking_work_does_not_hold_the_runtime_shut_down_with_a_timeout() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = Instant::now();
        runtime.block_on(async {
            // A load that ignores cancellation, as a dataset read does.
            drop(tokio::task::spawn_blocking(|| {
                std::thread::sleep(std::time::Duration::from_secs(30))
            }));
        });
        runtime.shutdown_timeout(super::BLOCKING_GRACE);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
