//! The processor: a pool of job slots fed from the job queue.
//!
//! [`worker`] runs the receive loop (back-pressure by a semaphore: it never holds more
//! messages than it has free slots), [`job`] handles one job from claim check to final
//! status, [`failure`] says what each way a job can fail means for it (and its error code),
//! [`resources`] fetches the logos a recipe names, [`sandbox`] runs the image work in a child
//! process, [`heartbeat`] keeps a job's message hidden while it runs, and [`status`] posts to
//! the reply queue; [`presence`] tells the reply queue that this worker runs (for the ops
//! page); [`config`] holds the settings; [`health`] answers liveness and readiness probes and
//! serves the Prometheus [`metrics`]; [`misconfig`] decides what configuration errors do.
//! [`supervisor`] is `darkroom-processor supervise`, which runs processors on one machine
//! and scales them on the queue's backlog.

pub mod config;
pub mod failure;
pub mod health;
pub mod heartbeat;
pub mod job;
pub mod metrics;
pub mod misconfig;
pub mod presence;
pub mod preview;
pub mod resources;
pub mod sandbox;
pub mod status;
pub mod supervisor;
pub mod telemetry;
pub mod worker;

use tokio::sync::watch;

pub use config::{parse_size, Config};

/// Run until SIGTERM or Ctrl-C, then drain.
pub async fn run_until_signal(config: Config) -> anyhow::Result<()> {
    worker::run(config, shutdown_watch("shutdown requested: no new jobs will be taken")).await
}

/// `darkroom-processor supervise` until SIGTERM or Ctrl-C, then stop the processors (they drain).
pub async fn supervise_until_signal(config: supervisor::Config) -> anyhow::Result<()> {
    supervisor::run(config, shutdown_watch("shutdown requested: stopping the processors")).await
}

/// A flag that turns true at SIGTERM or Ctrl-C (saying `why` in the log).
fn shutdown_watch(why: &'static str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("{why}");
        let _ = tx.send(true);
    });
    rx
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
