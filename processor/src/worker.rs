//! The receive loop: long-poll the job queue for as many messages as there is room for, hand
//! each to [`crate::job::handle`], and drain in-flight jobs on shutdown.
//!
//! Two limits, so the engine never waits on I/O: a job holds one of `--concurrency` render
//! slots only while the sandbox renders it ([`Context::render_slots`]), and the worker holds up
//! to `--prefetch` more jobs than that, whose originals download (and whose `processing` is
//! posted) while the slots are busy. Measured on 2 cores with the mixed thumbnail load
//! (bench/README.md): two processors with one slot each and no prefetch left each slot idle
//! for its job's store and queue round trips; two slots each instead oversubscribed the cores
//! (4 renders on 2 cores, ~7 % more CPU per job from cache contention).

use std::sync::Arc;
use std::time::Duration;

use darkroom_core::config::Backend;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::health::Health;
use crate::job::{self, Context};
use crate::status::Reporter;
use crate::Config;

/// How long releasing unfinished jobs may take after the grace period (queue calls only).
const RELEASE_TIME: Duration = Duration::from_secs(10);

/// Connect (waiting for the queues to exist) and run until `shutdown` turns true.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let worker = config.worker_id();
    let health = Health::new(worker.clone(), config.concurrency());
    if let Some(addr) = config.processor_bind {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on DARKROOM_PROCESSOR_BIND={addr}: {e}"))?;
        tracing::info!(addr = %listener.local_addr()?, "probe port: /livez, /readyz, /metrics");
        tokio::spawn(crate::health::run(listener, health.clone()));
    }
    config.backend.warn_if_embedded_by_default();
    // Configuration errors at start count as in a job: a bucket or queue that is still being
    // created by `darkroom-ctl init` gets a few seconds; one that stays missing stops us.
    let guard = Arc::new(crate::misconfig::Guard::default());
    let backend = loop {
        match config.backend.connect(false).await {
            Ok(b) => break b,
            Err(e) => {
                match e.misconfiguration() {
                    // Logged by the guard.
                    Some(m) if guard.record(m) => return Err(anyhow::Error::new(m.clone())),
                    Some(_) => {}
                    None => tracing::warn!(error = %e, "cannot reach the job queue yet; retrying in 2 s"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    };
    let engine = darkroom_engine::capabilities();
    if !engine.complete() {
        tracing::warn!(?engine, missing = ?engine.missing(), "this build's image engine lacks optional libraries");
    }
    tracing::info!(%worker, concurrency = config.concurrency(), backend = %backend.description, ?engine, "processor ready");
    if let Ok(ms) = std::env::var(crate::sandbox::child::SIMULATE_ENV) {
        tracing::warn!(
            "{}={ms}: SIMULATION, photos are NOT processed: every job waits {ms} ms and stores a placeholder \
             (for capacity benchmarks only; unset it to process photos)",
            crate::sandbox::child::SIMULATE_ENV
        );
    }
    serve_with(config, backend, worker, shutdown, health, guard).await
}

/// The loop itself, on an already connected backend.
pub async fn serve(
    config: Config,
    backend: Backend,
    worker: String,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let health = Health::new(worker.clone(), config.concurrency());
    serve_with(config, backend, worker, shutdown, health, Default::default()).await
}

async fn serve_with(
    config: Config,
    backend: Backend,
    worker: String,
    mut shutdown: watch::Receiver<bool>,
    health: Arc<Health>,
    guard: Arc<crate::misconfig::Guard>,
) -> anyhow::Result<()> {
    let (release_tx, release) = watch::channel(false);
    let sandbox = crate::sandbox::Sandbox::for_this_binary(config.job_memory_limit)
        .map_err(|e| anyhow::anyhow!("cannot find this program's own binary for the job sandbox: {e}"))?;
    let render_slots = Arc::new(Semaphore::new(config.concurrency()));
    let ctx = Arc::new(Context {
        store: backend.store.clone(),
        jobs: backend.jobs.clone(),
        reporter: Reporter { replies: backend.replies.clone(), worker: worker.clone() },
        limits: config.limits.limits(),
        visibility: config.backend.visibility(),
        max_receives: config.backend.max_receives,
        time_limit: Duration::from_secs(config.job_time_limit),
        sandbox,
        render_slots,
        release,
        guard: guard.clone(),
    });
    let in_hand = config.jobs_in_hand();
    let slots = Arc::new(Semaphore::new(in_hand));
    crate::metrics::get().set_slots(config.concurrency());
    let presence = crate::presence::Presence::new(
        backend.replies.clone(),
        worker.clone(),
        config.concurrency(),
        Arc::new(|| crate::metrics::get().busy_slots()),
        Duration::from_secs(config.worker_heartbeat),
    )
    .start();
    let wait = Duration::from_secs(config.poll_wait);
    let mut tasks = JoinSet::new();
    let mut backoff = Duration::from_millis(500);
    health.set_ready(true);

    while !*shutdown.borrow() && guard.tripped().is_none() {
        health.set_busy(crate::metrics::get().busy_slots());
        // After a configuration error, one job at a time until one goes through (misconfig.rs).
        while guard.suspect() && !tasks.is_empty() {
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = guard.changed() => {}
                _ = shutdown.changed() => break,
            }
        }
        if *shutdown.borrow() || guard.tripped().is_some() {
            break;
        }
        // Back-pressure: wait for room for one job, then take all the room there is (at most 10).
        let first = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closes"),
            _ = shutdown.changed() => break,
            _ = guard.wait_tripped() => break,
        };
        let mut permits = vec![first];
        while permits.len() < 10 && !guard.suspect() {
            match slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        while tasks.try_join_next().is_some() {}

        let received = tokio::select! {
            r = backend.jobs.receive(permits.len() as u32, wait) => r,
            _ = shutdown.changed() => break,
            _ = guard.wait_tripped() => break,
        };
        match received {
            Ok(messages) => {
                health.set_ready(true);
                backoff = Duration::from_millis(500);
                for msg in messages {
                    let permit = permits.pop().expect("never receive more than free slots");
                    let ctx = ctx.clone();
                    tasks.spawn(async move {
                        job::handle(ctx, msg).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                // Not ready while the job queue cannot be reached; ready again at the next receive.
                health.set_ready(false);
                if let Some(m) = e.misconfiguration() {
                    if guard.record(m) {
                        break;
                    }
                    // A permission just granted may take seconds to apply: 2 s, 4 s, then stop.
                    backoff = backoff.max(Duration::from_secs(2));
                }
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "receiving from the job queue failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
            }
        }
    }

    health.set_ready(false);
    presence.stopping();
    // Misconfigured: the jobs in hand go back to the queue at once, for another processor.
    let tripped = guard.tripped();
    let grace = if tripped.is_some() { Duration::ZERO } else { config.grace() };
    while tasks.try_join_next().is_some() {}
    let in_flight = tasks.len();
    if in_flight > 0 {
        tracing::info!(in_flight, grace_s = grace.as_secs(), "finishing in-flight jobs");
        let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(left = tasks.len(), "grace period over; releasing unfinished jobs to the queue");
            let _ = release_tx.send(true);
            // Each unfinished job makes its message visible again and posts `retrying`.
            let released =
                tokio::time::timeout(RELEASE_TIME, async { while tasks.join_next().await.is_some() {} }).await;
            if released.is_err() {
                tracing::warn!(
                    left = tasks.len(),
                    "could not release every job in time; they return after their visibility timeout"
                );
                tasks.abort_all();
            }
        }
    }
    if let Some(error) = tripped {
        tracing::error!(%error, "stopping: {} configuration errors in a row", crate::misconfig::LIMIT);
        // Said as stopped on the ops page too, not left to turn silent.
        presence.stopped().await;
        return Err(anyhow::Error::new(error));
    }
    presence.stopped().await;
    tracing::info!("processor stopped");
    Ok(())
}
