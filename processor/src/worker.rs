//! The receive loop: long-poll the job queue for as many messages as there is room for, hand
//! each to [`crate::job::handle`], and drain in-flight jobs on shutdown.
//!
//! The steps: `run` connects; `serve_with` builds the jobs' `context`, starts the worker's
//! presence and runs `Receiving` (take room → receive → dispatch, or back off after a failed
//! receive) until shutdown or a tripped configuration guard; then `drain` finishes or releases
//! the jobs in hand.
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
use darkroom_core::queue::{JobQueue, QueueError, Received};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::health::Health;
use crate::job::{self, Context};
use crate::status::Reporter;

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
    shutdown: watch::Receiver<bool>,
    health: Arc<Health>,
    guard: Arc<crate::misconfig::Guard>,
) -> anyhow::Result<()> {
    let (release_tx, release) = watch::channel(false);
    let ctx = context(&config, &backend, &worker, release, guard.clone())?;
    crate::metrics::get().set_slots(config.concurrency());
    let presence = crate::presence::Presence::new(
        backend.replies.clone(),
        worker.clone(),
        config.concurrency(),
        Arc::new(|| crate::metrics::get().busy_slots()),
        Duration::from_secs(config.worker_heartbeat),
    )
    .start();
    let mut receiving = Receiving {
        jobs: backend.jobs.clone(),
        ctx,
        health: health.clone(),
        guard: guard.clone(),
        shutdown,
        slots: Arc::new(Semaphore::new(config.jobs_in_hand())),
        wait: Duration::from_secs(config.poll_wait),
        backoff: Duration::from_millis(500),
        tasks: JoinSet::new(),
    };
    health.set_ready(true);
    receiving.run().await;

    health.set_ready(false);
    presence.stopping();
    // Misconfigured: the jobs in hand go back to the queue at once, for another processor.
    let tripped = guard.tripped();
    let grace = if tripped.is_some() { Duration::ZERO } else { config.grace() };
    drain(&mut receiving.tasks, grace, &release_tx).await;
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

/// What every job of this worker shares: the backend, the limits, the sandbox, the slots.
fn context(
    config: &Config,
    backend: &Backend,
    worker: &str,
    release: watch::Receiver<bool>,
    guard: Arc<crate::misconfig::Guard>,
) -> anyhow::Result<Arc<Context>> {
    let sandbox = crate::sandbox::Sandbox::for_this_binary(config.job_memory_limit)
        .map_err(|e| anyhow::anyhow!("cannot find this program's own binary for the job sandbox: {e}"))?;
    Ok(Arc::new(Context {
        store: backend.store.clone(),
        jobs: backend.jobs.clone(),
        reporter: Reporter { replies: backend.replies.clone(), worker: worker.to_string() },
        limits: config.limits.limits(),
        visibility: config.backend.visibility(),
        max_receives: config.backend.max_receives,
        time_limit: Duration::from_secs(config.job_time_limit),
        sandbox,
        render_slots: Arc::new(Semaphore::new(config.concurrency())),
        release,
        guard,
    }))
}

/// The receive loop's state: take room → receive → dispatch, until shutdown or the guard trips.
struct Receiving {
    jobs: Arc<dyn JobQueue>,
    ctx: Arc<Context>,
    health: Arc<Health>,
    guard: Arc<crate::misconfig::Guard>,
    shutdown: watch::Receiver<bool>,
    /// One permit per job in hand (slots and prefetch): the loop never holds more messages.
    slots: Arc<Semaphore>,
    /// Long-poll wait.
    wait: Duration,
    /// Pause after a failed receive (doubles up to 15 s, back to 500 ms after a good one).
    backoff: Duration,
    /// The jobs in hand.
    tasks: JoinSet<()>,
}

impl Receiving {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() || self.guard.tripped().is_some()
    }

    async fn run(&mut self) {
        while !self.stopping() {
            self.health.set_busy(crate::metrics::get().busy_slots());
            self.one_at_a_time_while_suspect().await;
            if self.stopping() {
                break;
            }
            let Some(mut permits) = self.take_room().await else { break };
            while self.tasks.try_join_next().is_some() {}
            let received = tokio::select! {
                r = self.jobs.receive(permits.len() as u32, self.wait) => r,
                _ = self.shutdown.changed() => break,
                _ = self.guard.wait_tripped() => break,
            };
            match received {
                Ok(messages) => self.dispatch(messages, &mut permits),
                Err(e) => {
                    if !self.back_off(&e).await {
                        break;
                    }
                }
            }
        }
    }

    /// After a configuration error, one job at a time until one goes through (misconfig.rs).
    async fn one_at_a_time_while_suspect(&mut self) {
        while self.guard.suspect() && !self.tasks.is_empty() {
            tokio::select! {
                _ = self.tasks.join_next() => {}
                _ = self.guard.changed() => {}
                _ = self.shutdown.changed() => break,
            }
        }
    }

    /// Back-pressure: wait for room for one job, then take all the room there is (at most 10).
    /// `None` when the worker stops meanwhile.
    async fn take_room(&mut self) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.expect("semaphore never closes"),
            _ = self.shutdown.changed() => return None,
            _ = self.guard.wait_tripped() => return None,
        };
        let mut permits = vec![first];
        while permits.len() < 10 && !self.guard.suspect() {
            match self.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        Some(permits)
    }

    /// Start a task per received message, each holding one of the permits until it ends.
    fn dispatch(&mut self, messages: Vec<Received>, permits: &mut Vec<OwnedSemaphorePermit>) {
        self.health.set_ready(true);
        self.backoff = Duration::from_millis(500);
        for msg in messages {
            let permit = permits.pop().expect("never receive more than free slots");
            let ctx = self.ctx.clone();
            self.tasks.spawn(async move {
                job::handle(ctx, msg).await;
                drop(permit);
            });
        }
    }

    /// A receive failed: wait before the next one. False when the worker should stop instead
    /// (shutdown, or the configuration error that trips the guard).
    async fn back_off(&mut self, e: &QueueError) -> bool {
        // Not ready while the job queue cannot be reached; ready again at the next receive.
        self.health.set_ready(false);
        if let Some(m) = e.misconfiguration() {
            if self.guard.record(m) {
                return false;
            }
            // A permission just granted may take seconds to apply: 2 s, 4 s, then stop.
            self.backoff = self.backoff.max(Duration::from_secs(2));
        }
        tracing::warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "receiving from the job queue failed");
        tokio::select! {
            _ = tokio::time::sleep(self.backoff) => {}
            _ = self.shutdown.changed() => return false,
        }
        self.backoff = (self.backoff * 2).min(Duration::from_secs(15));
        true
    }
}

/// Let the jobs in hand finish within `grace`; then release the rest to the queue (each makes
/// its message visible again and posts `retrying`), giving that [`RELEASE_TIME`].
async fn drain(tasks: &mut JoinSet<()>, grace: Duration, release: &watch::Sender<bool>) {
    while tasks.try_join_next().is_some() {}
    let in_flight = tasks.len();
    if in_flight == 0 {
        return;
    }
    tracing::info!(in_flight, grace_s = grace.as_secs(), "finishing in-flight jobs");
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_ok() {
        return;
    }
    tracing::warn!(left = tasks.len(), "grace period over; releasing unfinished jobs to the queue");
    let _ = release.send(true);
    let released = tokio::time::timeout(RELEASE_TIME, async { while tasks.join_next().await.is_some() {} }).await;
    if released.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "could not release every job in time; they return after their visibility timeout"
        );
        tasks.abort_all();
    }
}
