//! Several web app replicas behind one address behave as one: each takes a share of the reply
//! queue (competing consumers, conditional writes of job records: [`crate::jobs`]), and tells
//! every other replica what it changed through the fan-out ([`darkroom_core::fanout`]), so
//! their caches, event streams and ops pages follow changes made anywhere.
//!
//! [`start`] joins the fan-out (this replica's inbox queue and registry entry) and runs three
//! loops until shutdown, then leaves (removes the inbox):
//! - publish: the book's own changes and the presences this replica consumed, in batches of up
//!   to 10, to every other live replica;
//! - receive: notices from the others: a job change makes the book read the record again if
//!   anyone here cares ([`JobBook::learn`]); a presence goes to the ops page's registry;
//! - heartbeat: every [`HEARTBEAT`], say this replica is alive and reap dead ones.
//!
//! Settings: `DARKROOM_REPLICA_ID`, `DARKROOM_REPLICA_QUEUE_PREFIX`, `DARKROOM_REPLICA_GRACE`,
//! `DARKROOM_JOB_CACHE_TTL` (see the README). The design, and what a replica's death costs,
//! is in `docs/scaling.md`.

use std::sync::Arc;
use std::time::Duration;

use darkroom_core::config::Backend;
use darkroom_core::fanout::{self, ChangeNotice, Fanout, FanoutError, HEARTBEAT};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::Registry;
use crate::jobs::JobBook;

#[derive(clap::Args, Clone, Debug)]
pub struct ReplicaArgs {
    /// This web app replica's name: its inbox queue is named after it, and it shows in logs.
    /// Default: `<host>-<pid>-<random>`, new at every start. Unique among running replicas.
    #[arg(long, env = "DARKROOM_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// Prefix of the replicas' inbox queues (`<prefix><replica id>`, at most 80 characters in
    /// all); one per deployment, like the queue names.
    #[arg(long, env = "DARKROOM_REPLICA_QUEUE_PREFIX", default_value = "darkroom-replica-")]
    pub replica_queue_prefix: String,
    /// Seconds without a heartbeat (sent every 10 s) after which a replica counts as dead: it
    /// gets no more notices and a live replica removes its inbox.
    #[arg(long, env = "DARKROOM_REPLICA_GRACE", default_value_t = 60, value_parser = clap::value_parser!(u64).range(15..=86_400))]
    pub replica_grace: u64,
    /// Milliseconds a cached job record is served before the store is read again: how stale a
    /// record can get on a replica that missed a change notice.
    #[arg(long, env = "DARKROOM_JOB_CACHE_TTL", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub job_cache_ttl_ms: u64,
}

impl ReplicaArgs {
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.job_cache_ttl_ms)
    }
}

/// Join the fan-out: create this replica's inbox and list it.
pub async fn join(backend: &Backend, args: &ReplicaArgs) -> Result<Arc<Fanout>, FanoutError> {
    let id = args.replica_id.clone().unwrap_or_else(fanout::default_replica_id);
    let fanout = Fanout::join(
        backend.store.clone(),
        backend.inboxes.clone(),
        &id,
        &args.replica_queue_prefix,
        Duration::from_secs(args.replica_grace),
    )
    .await?;
    tracing::info!(replica = fanout.replica(), inbox = fanout.queue(), "joined the web app replicas");
    Ok(Arc::new(fanout))
}

/// Run the three loops (see the module's documentation) until `shutdown`, then leave.
pub fn start(
    fanout: Arc<Fanout>,
    book: Arc<JobBook>,
    registry: Arc<Registry>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let publisher = tokio::spawn(publish(fanout.clone(), book.clone(), shutdown.clone()));
    let receiver = tokio::spawn(receive(fanout.clone(), book, registry, shutdown.clone()));
    let heartbeat = tokio::spawn(heartbeat(fanout.clone(), shutdown));
    tokio::spawn(async move {
        let _ = tokio::join!(publisher, receiver, heartbeat);
        match fanout.leave().await {
            Ok(()) => tracing::info!(replica = fanout.replica(), "left the web app replicas (inbox removed)"),
            Err(e) => {
                tracing::warn!(error = %e, "could not remove this replica's inbox; a live replica removes it after the grace period")
            }
        }
    })
}

async fn publish(fanout: Arc<Fanout>, book: Arc<JobBook>, mut shutdown: watch::Receiver<bool>) {
    let mut rx = book.notices();
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.changed() => return,
        };
        let mut batch = match first {
            Ok(n) => vec![n],
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(
                    missed = n,
                    "change notices fell behind; other replicas catch up through their cache's time to live"
                );
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        // Whatever else is waiting goes in the same sends.
        while batch.len() < 50 {
            match rx.try_recv() {
                Ok(n) => batch.push(n),
                Err(TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        let from = fanout.replica().to_string();
        for n in &mut batch {
            match n {
                ChangeNotice::Job { from: f, .. }
                | ChangeNotice::JobDeleted { from: f, .. }
                | ChangeNotice::Presence { from: f, .. }
                | ChangeNotice::Joined { from: f } => *f = from.clone(),
            }
        }
        match fanout.publish(&batch).await {
            Ok(reached) => {
                tracing::debug!(notices = batch.len(), replicas = reached, "change notices sent");
                crate::metrics::get().notices_sent((reached * batch.len()) as u64)
            }
            Err(e) => tracing::warn!(error = %e, "could not send change notices to the other replicas"),
        }
    }
}

async fn receive(
    fanout: Arc<Fanout>,
    book: Arc<JobBook>,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let received = tokio::select! {
            r = fanout.receive(Duration::from_secs(20)) => r,
            _ = shutdown.changed() => return,
        };
        let notices = match received {
            Ok(n) => {
                backoff = Duration::from_millis(500);
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "receiving change notices failed");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(15));
                continue;
            }
        };
        if !notices.is_empty() {
            tracing::debug!(notices = notices.len(), "change notices received");
        }
        crate::metrics::get().notices_received(notices.len() as u64);
        for notice in notices {
            if notice.from() == fanout.replica() {
                continue;
            }
            match &notice {
                ChangeNotice::Presence { presence, .. } => {
                    registry.presence(&presence.clone().bounded());
                }
                ChangeNotice::Joined { from } => {
                    tracing::info!(replica = %from, "another web app replica joined");
                    fanout.forget_peers().await;
                }
                _ => {
                    if let Err(e) = book.learn(&notice).await {
                        tracing::debug!(error = %e, "could not read a job another replica changed; the cache's time to live covers it");
                    }
                }
            }
        }
    }
}

async fn heartbeat(fanout: Arc<Fanout>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        match fanout.heartbeat().await {
            Ok(reaped) if !reaped.is_empty() => tracing::info!(?reaped, "removed the inboxes of dead replicas"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "replica heartbeat failed; will try again"),
        }
    }
}
