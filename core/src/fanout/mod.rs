//! Fan-out between web app replicas: every replica has an inbox queue of its own, listed in a
//! registry in the object store, and a change one replica makes is sent to the inbox of
//! every other live replica ([`ChangeNotice`]s, a few hundred bytes each).
//!
//! - [`Fanout::join`] creates the replica's inbox (`<prefix><replica id>`, through the
//!   backend's [`Inboxes`]) and writes its registry entry `system/replicas/<replica>.json`
//!   (`{replica, queue, started_at, seen_at}`).
//! - [`Fanout::heartbeat`] (every [`HEARTBEAT`]) rewrites the entry's `seen_at`, creates the
//!   inbox again if someone removed it, and reaps replicas not seen for the grace period (killed
//!   without a clean stop): their inbox is removed and their entry deleted. Every live replica
//!   reaps; doing it twice is harmless.
//! - [`Fanout::publish`] sends notices to every replica seen within the grace period but this
//!   one; the list of peers is read from the store at most every [`PEER_REFRESH`], and at once
//!   after a [`ChangeNotice::Joined`], which [`Fanout::join`] sends to every replica it finds,
//!   so a new replica is reached within milliseconds.
//! - [`Fanout::leave`] (clean stop) deletes the entry and removes the inbox.
//!
//! The same code runs on both backends: the inboxes are SQS queues on AWS and queues in the
//! embedded SQLite database on one machine (woken across processes by its doorbell). Delivery
//! is at most once and may be late: notices are hints, the store holds the truth, and readers
//! re-validate what they cache (see `docs/scaling.md`).

#[cfg(feature = "backends")]
pub mod embedded;
pub mod notice;
#[cfg(feature = "backends")]
pub mod sqs;

pub use notice::ChangeNotice;

#[cfg(feature = "backends")]
pub use replicas::*;

#[cfg(feature = "backends")]
mod replicas {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use async_trait::async_trait;
    use bytes::Bytes;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use thiserror::Error;

    use super::ChangeNotice;
    use crate::queue::{JobQueue, QueueError, MAX_BATCH};
    use crate::store::{ObjectStore, StoreError};

    /// Where replicas list themselves.
    pub const REGISTRY_PREFIX: &str = darkroom_protocol::keys::REPLICAS_PREFIX;
    /// How often a replica says it is alive (and reaps the dead).
    pub const HEARTBEAT: Duration = Duration::from_secs(10);
    /// Longest a publisher goes without reading the list of replicas again.
    pub const PEER_REFRESH: Duration = Duration::from_secs(2);
    /// Default time without a heartbeat after which a replica counts as dead.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);

    #[derive(Debug, Error)]
    pub enum FanoutError {
        #[error("replica inbox: {0}")]
        Queue(#[from] QueueError),
        #[error("replica registry: {0}")]
        Store(#[from] StoreError),
    }

    /// Creating and removing replicas' inbox queues: what differs between backends.
    #[async_trait]
    pub trait Inboxes: Send + Sync + 'static {
        /// Create the inbox `name` if it is missing (idempotent) and open it.
        async fn create(&self, name: &str) -> Result<Arc<dyn JobQueue>, QueueError>;
        /// Open the existing inbox `name` (to send to it).
        async fn open(&self, name: &str) -> Result<Arc<dyn JobQueue>, QueueError>;
        /// Remove the inbox `name` with what it holds; a missing one is not an error.
        async fn remove(&self, name: &str) -> Result<(), QueueError>;
    }

    /// A replica's registry entry.
    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct ReplicaEntry {
        pub replica: String,
        pub queue: String,
        pub started_at: DateTime<Utc>,
        pub seen_at: DateTime<Utc>,
    }

    /// A queue name or replica id: SQS's rules (1–80 of A-Z a-z 0-9 - _). Anything else
    /// becomes `-`.
    pub fn sanitize(s: &str) -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
    }

    /// A replica id for this process: `<host>-<pid>-<4 random hex digits>`.
    pub fn default_replica_id() -> String {
        let host: String = sanitize(&crate::worker_id::host_name()).chars().take(40).collect();
        format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
    }

    struct Peers {
        refreshed: Option<Instant>,
        /// Inboxes of the other live replicas.
        live: Vec<(String, Arc<dyn JobQueue>)>,
        opened: HashMap<String, Arc<dyn JobQueue>>,
    }

    pub struct Fanout {
        store: Arc<dyn ObjectStore>,
        inboxes: Arc<dyn Inboxes>,
        replica: String,
        queue: String,
        inbox: Arc<dyn JobQueue>,
        started_at: DateTime<Utc>,
        grace: Duration,
        peers: tokio::sync::Mutex<Peers>,
    }

    fn entry_key(replica: &str) -> String {
        darkroom_protocol::keys::replica(replica)
    }

    impl Fanout {
        /// Create this replica's inbox and list it in the registry.
        pub async fn join(
            store: Arc<dyn ObjectStore>,
            inboxes: Arc<dyn Inboxes>,
            replica: &str,
            queue_prefix: &str,
            grace: Duration,
        ) -> Result<Fanout, FanoutError> {
            let replica = sanitize(replica);
            let queue: String = format!("{}{replica}", sanitize(queue_prefix)).chars().take(80).collect();
            let inbox = inboxes.create(&queue).await?;
            let fanout = Fanout {
                store,
                inboxes,
                replica,
                queue,
                inbox,
                started_at: Utc::now(),
                grace,
                peers: tokio::sync::Mutex::new(Peers { refreshed: None, live: Vec::new(), opened: HashMap::new() }),
            };
            fanout.write_entry().await?;
            let hello = ChangeNotice::Joined { from: fanout.replica.clone() };
            if let Err(e) = fanout.publish(&[hello]).await {
                tracing::warn!(error = %e, "could not tell the other replicas this one joined; they notice within {PEER_REFRESH:?}");
            }
            Ok(fanout)
        }

        pub fn replica(&self) -> &str {
            &self.replica
        }

        /// This replica's inbox queue.
        pub fn queue(&self) -> &str {
            &self.queue
        }

        async fn write_entry(&self) -> Result<(), StoreError> {
            let entry = ReplicaEntry {
                replica: self.replica.clone(),
                queue: self.queue.clone(),
                started_at: self.started_at,
                seen_at: Utc::now(),
            };
            let body = Bytes::from(serde_json::to_vec(&entry).expect("entries serialize"));
            self.store.put(&entry_key(&self.replica), body, "application/json").await
        }

        /// Every registry entry (unreadable ones skipped).
        pub async fn entries(&self) -> Result<Vec<ReplicaEntry>, StoreError> {
            let mut out = Vec::new();
            for key in self.store.list(REGISTRY_PREFIX).await? {
                match self.store.get(&key).await {
                    Ok(body) => match serde_json::from_slice::<ReplicaEntry>(&body) {
                        Ok(e) => out.push(e),
                        Err(e) => tracing::warn!(key, error = %e, "unreadable replica registry entry ignored"),
                    },
                    Err(StoreError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }

        fn is_live(&self, e: &ReplicaEntry, now: DateTime<Utc>) -> bool {
            now.signed_duration_since(e.seen_at).to_std().map_or(true, |age| age <= self.grace)
        }

        /// Say this replica is alive; remove replicas dead for longer than the grace period.
        /// Returns the replicas reaped.
        pub async fn heartbeat(&self) -> Result<Vec<String>, FanoutError> {
            self.inboxes.create(&self.queue).await?;
            self.write_entry().await?;
            let now = Utc::now();
            let mut reaped = Vec::new();
            for e in self.entries().await? {
                if e.replica == self.replica || self.is_live(&e, now) {
                    continue;
                }
                tracing::info!(replica = %e.replica, queue = %e.queue, seen_at = %e.seen_at, "removing the inbox of a web app replica not heard from within the grace period");
                self.inboxes.remove(&e.queue).await?;
                self.store.delete(&entry_key(&e.replica)).await?;
                reaped.push(e.replica);
            }
            self.peers.lock().await.refreshed = None;
            Ok(reaped)
        }

        async fn refresh(&self, peers: &mut Peers) -> Result<(), FanoutError> {
            let now = Utc::now();
            let mut live = Vec::new();
            for e in self.entries().await? {
                if e.replica == self.replica || !self.is_live(&e, now) {
                    continue;
                }
                let queue = match peers.opened.get(&e.queue) {
                    Some(q) => q.clone(),
                    None => match self.inboxes.open(&e.queue).await {
                        Ok(q) => {
                            peers.opened.insert(e.queue.clone(), q.clone());
                            q
                        }
                        // Gone between its entry and now (stopped): nothing to send it.
                        Err(err) if err.is_missing() => continue,
                        Err(err) => return Err(err.into()),
                    },
                };
                live.push((e.replica, queue));
            }
            peers.live = live;
            peers.refreshed = Some(Instant::now());
            Ok(())
        }

        /// Read the list of replicas again before the next publish (one has joined).
        pub async fn forget_peers(&self) {
            self.peers.lock().await.refreshed = None;
        }

        /// The other live replicas now (for tests and the ops page).
        pub async fn peers(&self) -> Result<Vec<String>, FanoutError> {
            let mut peers = self.peers.lock().await;
            self.refresh(&mut peers).await?;
            Ok(peers.live.iter().map(|(r, _)| r.clone()).collect())
        }

        /// Send `notices` to every other live replica. Returns how many replicas got them; one
        /// that cannot be reached is logged and skipped (it re-validates what it caches).
        pub async fn publish(&self, notices: &[ChangeNotice]) -> Result<usize, FanoutError> {
            if notices.is_empty() {
                return Ok(0);
            }
            let live = {
                let mut peers = self.peers.lock().await;
                if peers.refreshed.is_none_or(|t| t.elapsed() > PEER_REFRESH) {
                    self.refresh(&mut peers).await?;
                }
                peers.live.clone()
            };
            let bodies: Vec<String> = notices.iter().map(ChangeNotice::to_json).collect();
            let mut reached = 0;
            for (replica, queue) in &live {
                let mut ok = true;
                for chunk in bodies.chunks(MAX_BATCH) {
                    let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    if let Err(e) = queue.send_batch(&chunk).await {
                        tracing::debug!(replica, error = %e, "could not send change notices to a replica");
                        if e.is_missing() {
                            self.peers.lock().await.opened.remove(queue.name());
                        }
                        ok = false;
                        break;
                    }
                }
                reached += usize::from(ok);
            }
            Ok(reached)
        }

        /// Notices sent to this replica: up to 10, waiting up to `wait` for the first. Each is
        /// deleted from the inbox as it is returned (at most once: notices are hints).
        pub async fn receive(&self, wait: Duration) -> Result<Vec<ChangeNotice>, FanoutError> {
            let received = self.inbox.receive(MAX_BATCH as u32, wait).await?;
            if received.is_empty() {
                return Ok(Vec::new());
            }
            let receipts: Vec<&str> = received.iter().map(|m| m.receipt.as_str()).collect();
            if let Err(e) = self.inbox.delete_batch(&receipts).await {
                tracing::debug!(error = %e, "could not delete received change notices (they may come again: harmless)");
            }
            Ok(received
                .iter()
                .filter_map(|m| match ChangeNotice::from_json(&m.body) {
                    Ok(n) => Some(n),
                    Err(e) => {
                        tracing::warn!(error = %e, "dropping a message in the replica inbox that is not a change notice");
                        None
                    }
                })
                .collect())
        }

        /// Clean stop: leave the registry and remove the inbox.
        pub async fn leave(&self) -> Result<(), FanoutError> {
            self.store.delete(&entry_key(&self.replica)).await?;
            self.inboxes.remove(&self.queue).await?;
            Ok(())
        }
    }
}
