//! The job book: the web app's record of every job, kept in the object store (so a restart
//! loses nothing), cached in memory, and broadcast to live subscribers when it changes.
//!
//! The cache is bounded ([`DEFAULT_CACHE`] records, `DARKROOM_JOB_CACHE`): it forgets the
//! least recently used record first, and a miss reads the store, so nothing depends on what
//! the cache holds. Changes go to every [`JobBook::subscribe`]r (the ops page's worker
//! registry) and to the [`JobBook::subscribe_owner`]s of the job's owner only (browsers' event
//! streams), so a stream never receives another browser's jobs.
//!
//! The book stores records; what a status, a cancel, a requeue or the dead-letter queue does
//! to a record is the job lifecycle's ([`darkroom_protocol::lifecycle`]): every change here goes
//! through its transition function, [`JobRecord::apply`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use darkroom_core::fanout::ChangeNotice;
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::{Event, JobRecord, Outcome};
use darkroom_protocol::message::StatusMessage;
use tokio::sync::broadcast;

use crate::lru::Lru;
use crate::metrics;

/// What applying a status did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Ignored,
    UnknownJob,
}

impl From<Option<Outcome>> for Applied {
    fn from(outcome: Option<Outcome>) -> Self {
        match outcome {
            None => Applied::UnknownJob,
            Some(Outcome::Changed) => Applied::Changed,
            Some(Outcome::Unchanged | Outcome::Refused(_)) => Applied::Ignored,
        }
    }
}

/// Job records the cache keeps by default (a record is a few KiB: a few MiB in all).
pub const DEFAULT_CACHE: usize = 4096;

/// Default longest a cached record is served without reading the store again
/// (`DARKROOM_JOB_CACHE_TTL`): the bound on how stale a record can be on a replica that missed
/// a change notice.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Changes an owner's event streams may fall behind by before they are told to resync.
const OWNER_BACKLOG: usize = 64;

/// Most attempts of one read → change → conditional write before giving up (each conflict
/// means another writer succeeded meanwhile, so this is only reached under a flood).
const MAX_CAS_ATTEMPTS: usize = 50;

/// A cached record and when it was read or written.
#[derive(Clone)]
struct Entry {
    rec: JobRecord,
    at: Instant,
}

/// The cache, and a count of writes to it that lets a reader tell whether the record it read
/// from the store may have been replaced meanwhile.
struct Cache {
    records: Lru<String, Entry>,
    writes: u64,
}

type OwnerChannels = Arc<Mutex<HashMap<String, broadcast::Sender<Arc<JobRecord>>>>>;

pub struct JobBook {
    store: Arc<dyn ObjectStore>,
    cache: Mutex<Cache>,
    ttl: Duration,
    changes: broadcast::Sender<JobRecord>,
    owners: OwnerChannels,
    /// Changes this replica made, for the other replicas ([`crate::replicas`]).
    notices: broadcast::Sender<ChangeNotice>,
    /// Re-read every job another replica announces (the ops page follows every job), not only
    /// the cached or followed ones.
    follow_all: AtomicBool,
}

/// Live changes to one owner's jobs (see [`JobBook::subscribe_owner`]). The owner's channel
/// goes when its last feed is dropped, so an owner without an open stream costs nothing.
pub struct OwnerFeed {
    rx: Option<broadcast::Receiver<Arc<JobRecord>>>,
    owner: String,
    owners: OwnerChannels,
}

impl OwnerFeed {
    pub async fn recv(&mut self) -> Result<Arc<JobRecord>, broadcast::error::RecvError> {
        self.rx.as_mut().expect("present until dropped").recv().await
    }
}

impl Drop for OwnerFeed {
    fn drop(&mut self) {
        drop(self.rx.take());
        let mut owners = self.owners.lock().unwrap();
        if owners.get(&self.owner).is_some_and(|tx| tx.receiver_count() == 0) {
            owners.remove(&self.owner);
        }
    }
}

/// What a change to a record decided.
pub(crate) enum Change<T> {
    /// Write the changed record, then return `T`.
    Write(T),
    /// Leave the record as it is and return `T`.
    Keep(T),
}

fn unreadable(id: &str, e: serde_json::Error) -> StoreError {
    StoreError::Rejected(format!("job record {id} is unreadable: {e}"))
}

impl JobBook {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self::with_cache(store, DEFAULT_CACHE)
    }

    /// A book whose cache holds at most `capacity` records.
    pub fn with_cache(store: Arc<dyn ObjectStore>, capacity: usize) -> Self {
        Self::with_cache_ttl(store, capacity, DEFAULT_CACHE_TTL)
    }

    /// A book whose cache holds at most `capacity` records, each served for at most `ttl`
    /// before the store is read again.
    pub fn with_cache_ttl(store: Arc<dyn ObjectStore>, capacity: usize, ttl: Duration) -> Self {
        JobBook {
            store,
            cache: Mutex::new(Cache { records: Lru::new(capacity), writes: 0 }),
            ttl,
            changes: broadcast::channel(1024).0,
            owners: Arc::default(),
            notices: broadcast::channel(4096).0,
            follow_all: AtomicBool::new(false),
        }
    }

    /// Live changes to every job (for the web app's own bookkeeping, not for clients).
    pub fn subscribe(&self) -> broadcast::Receiver<JobRecord> {
        self.changes.subscribe()
    }

    /// The changes this replica makes, as notices for the others (`from` left empty).
    pub fn notices(&self) -> broadcast::Receiver<ChangeNotice> {
        self.notices.subscribe()
    }

    /// Pass `notice` on to the other replicas (a worker's presence this replica consumed).
    pub fn announce(&self, notice: ChangeNotice) {
        let _ = self.notices.send(notice);
    }

    /// Re-read every job another replica announces, not only cached or followed ones.
    pub fn follow_all(&self, on: bool) {
        self.follow_all.store(on, Ordering::Relaxed);
    }

    /// Live changes to `owner`'s jobs only.
    pub fn subscribe_owner(&self, owner: &str) -> OwnerFeed {
        let mut owners = self.owners.lock().unwrap();
        let rx = owners.entry(owner.to_string()).or_insert_with(|| broadcast::channel(OWNER_BACKLOG).0).subscribe();
        OwnerFeed { rx: Some(rx), owner: owner.to_string(), owners: self.owners.clone() }
    }

    /// Owners with an open feed (each holds one channel).
    pub fn owner_channels(&self) -> usize {
        self.owners.lock().unwrap().len()
    }

    /// Records in the cache now.
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap().records.len()
    }

    fn remember(&self, rec: &JobRecord) {
        let mut c = self.cache.lock().unwrap();
        c.records.insert(rec.id.clone(), Entry { rec: rec.clone(), at: Instant::now() });
        c.writes += 1;
    }

    fn forget(&self, id: &str) {
        let mut c = self.cache.lock().unwrap();
        c.records.remove(id);
        c.writes += 1;
    }

    /// Tell this replica's subscribers about `rec`.
    fn broadcast(&self, rec: &JobRecord) {
        let _ = self.changes.send(rec.clone());
        if let Some(tx) = self.owners.lock().unwrap().get(&rec.owner) {
            let _ = tx.send(Arc::new(rec.clone()));
        }
    }

    /// `rec` was written by this replica: cache it, tell its subscribers and the other replicas.
    fn written(&self, rec: &JobRecord) {
        self.remember(rec);
        self.broadcast(rec);
        let _ = self.notices.send(ChangeNotice::Job {
            job_id: rec.id.clone(),
            owner: rec.owner.clone(),
            state: rec.state,
            updated_at: rec.updated_at,
            from: String::new(),
        });
    }

    /// Record a new job (before its message is queued, so no status can beat it).
    pub async fn create(&self, rec: &JobRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(rec).expect("records serialize");
        // Only if absent: job ids are random, so a record already there is another job's.
        self.store.put_if(&keys::job_record(&rec.id), Bytes::from(json), "application/json", None).await?;
        self.written(rec);
        self.store
            .put(&keys::owner_index(&rec.owner, &rec.id), Bytes::from(rec.created_at.to_rfc3339()), "text/plain")
            .await
    }

    /// The record as stored now, bypassing the cache.
    async fn read(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        match self.store.get(&keys::job_record(id)).await {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| unreadable(id, e))?)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The job's record: from the cache if it was read or written within the cache's time to
    /// live, else from the store.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        if !keys::is_valid_id(id) {
            return Ok(None);
        }
        let writes = {
            let mut c = self.cache.lock().unwrap();
            if let Some(e) = c.records.get_mut(id) {
                if e.at.elapsed() <= self.ttl {
                    return Ok(Some(e.rec.clone()));
                }
            }
            c.writes
        };
        let rec = self.read(id).await?;
        // Cache what was read only if nothing was written meanwhile: a save or delete between
        // the read and now may have made it stale.
        let mut c = self.cache.lock().unwrap();
        if c.writes == writes {
            match &rec {
                Some(r) => {
                    c.records.insert(id.to_string(), Entry { rec: r.clone(), at: Instant::now() });
                }
                None => {
                    c.records.remove(id);
                }
            }
        }
        Ok(rec)
    }

    /// The job, if it exists and belongs to `owner`.
    pub async fn get_owned(&self, id: &str, owner: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.get(id).await?.filter(|r| r.owner == owner))
    }

    /// The owner's jobs, newest first.
    pub async fn list(&self, owner: &str) -> Result<Vec<JobRecord>, StoreError> {
        let prefix = keys::owner_prefix(owner);
        let mut out = Vec::new();
        for key in self.store.list(&prefix).await? {
            if let Some(rec) = self.get(&key[prefix.len()..]).await? {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Change job `id`'s record with `change`, safely against every other writer in any
    /// replica: read the stored record with its version, change it, write it back only if it
    /// is still at that version, and on a conflict start again from a fresh read (`change`
    /// then runs again on the newer record). `Ok(None)` when there is no such job.
    pub(crate) async fn modify<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut JobRecord) -> Change<T>,
    ) -> Result<Option<(JobRecord, T)>, StoreError> {
        let key = keys::job_record(id);
        for _ in 0..MAX_CAS_ATTEMPTS {
            let (bytes, version) = match self.store.get_versioned(&key).await {
                Ok(found) => found,
                Err(StoreError::NotFound(_)) => {
                    self.forget(id);
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let mut rec: JobRecord = serde_json::from_slice(&bytes).map_err(|e| unreadable(id, e))?;
            let out = match change(&mut rec) {
                Change::Keep(out) => {
                    self.remember(&rec);
                    return Ok(Some((rec, out)));
                }
                Change::Write(out) => out,
            };
            let json = Bytes::from(serde_json::to_vec(&rec).expect("records serialize"));
            match self.store.put_if(&key, json, "application/json", Some(&version)).await {
                Ok(_) => {
                    self.written(&rec);
                    return Ok(Some((rec, out)));
                }
                Err(StoreError::Conflict(_)) => {
                    metrics::get().record_conflict();
                    tracing::debug!(job_id = id, "job record changed by another writer meanwhile; applying again");
                }
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Unavailable(format!(
            "job record {id} kept changing under {MAX_CAS_ATTEMPTS} attempts to update it; try again"
        )))
    }

    /// Apply `event` to job `id` by the lifecycle's transition function, with a conditional
    /// write ([`JobBook::modify`]): the record is written only if it changed. `Ok(None)` when
    /// there is no such job.
    pub(crate) async fn transition(
        &self,
        id: &str,
        event: Event<'_>,
    ) -> Result<Option<(JobRecord, Outcome)>, StoreError> {
        self.modify(id, |rec| match rec.apply(event) {
            Outcome::Changed => Change::Write(Outcome::Changed),
            other => Change::Keep(other),
        })
        .await
    }

    /// Apply a worker's status message to its job.
    pub async fn apply(&self, status: &StatusMessage) -> Result<Applied, StoreError> {
        let applied = self.transition(&status.job_id, Event::Status(status)).await?;
        Ok(Applied::from(applied.map(|(_, outcome)| outcome)))
    }

    /// The queue gave up on job `id` after `attempts` deliveries (it is in the dead-letter
    /// queue): the job fails with [`ErrorCode::GaveUp`](darkroom_protocol::lifecycle::ErrorCode::GaveUp)
    /// unless it finished meanwhile.
    pub async fn give_up(&self, id: &str, attempts: u32) -> Result<Applied, StoreError> {
        let applied = self.transition(id, Event::GaveUp { attempts, at: Utc::now() }).await?;
        Ok(Applied::from(applied.map(|(_, outcome)| outcome)))
    }

    /// Another replica changed (or deleted) a job: if this replica caches it, has a stream
    /// following its owner, or follows every job, read it again and tell the subscribers.
    /// Returns whether the record was read.
    pub async fn learn(&self, notice: &ChangeNotice) -> Result<bool, StoreError> {
        let (id, owner) = match notice {
            ChangeNotice::Job { job_id, owner, .. } => (job_id, owner),
            ChangeNotice::JobDeleted { job_id, .. } => {
                self.forget(job_id);
                return Ok(false);
            }
            ChangeNotice::Presence { .. } | ChangeNotice::Joined { .. } => return Ok(false),
        };
        if !keys::is_valid_id(id) {
            return Ok(false);
        }
        let cached = self.cache.lock().unwrap().records.peek(id).map(|e| e.rec.clone());
        let wanted = cached.is_some()
            || self.follow_all.load(Ordering::Relaxed)
            || self.owners.lock().unwrap().contains_key(owner.as_str());
        if !wanted {
            return Ok(false);
        }
        let Some(rec) = self.read(id).await? else {
            self.forget(id);
            return Ok(true);
        };
        if cached.as_ref() != Some(&rec) {
            self.remember(&rec);
            self.broadcast(&rec);
        }
        Ok(true)
    }
}

// UI (issue 6): delete a job, queue it again: in jobs/manage.rs, a separate file.
pub mod manage;
// Issue 16: one page of an owner's jobs (cursor paging): in jobs/page.rs.
pub mod page;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use darkroom_protocol::lifecycle::{ErrorCode, JobState};

    /// A queued job `j` of owner `o` (other modules' tests change what they need).
    pub(crate) fn record() -> JobRecord {
        JobRecord {
            id: "j".into(),
            owner: "o".into(),
            filename: "a.jpg".into(),
            state: JobState::Queued,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            attempts: 0,
            worker: None,
            original_key: "originals/j".into(),
            original_type: "image/jpeg".into(),
            original_width: 1,
            original_height: 1,
            original_bytes: 1,
            requested: vec![],
            outputs: vec![],
            preview: None,
            error: None,
            timeline: vec![],
        }
    }

    fn status(state: JobState, attempt: u32, worker: &str) -> StatusMessage {
        StatusMessage {
            job_id: "j".into(),
            state,
            attempt,
            worker: worker.into(),
            at: Utc::now(),
            outputs: vec![],
            preview: None,
            error: None,
            note: None,
            traceparent: None,
        }
    }

    /// The store, counting reads (so a test can tell a cache hit from a miss).
    pub(crate) struct Counting {
        inner: darkroom_core::store::fs::FsStore,
        pub(crate) gets: std::sync::atomic::AtomicUsize,
        dir: std::path::PathBuf,
    }

    impl Drop for Counting {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Counting {
        async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
            self.inner.put(key, body, content_type).await
        }
        async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<(), StoreError> {
            self.inner.put_file(key, path, content_type).await
        }
        async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
            self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.get(key).await
        }
        async fn get_versioned(&self, key: &str) -> Result<(Bytes, darkroom_core::store::Version), StoreError> {
            self.inner.get_versioned(key).await
        }
        async fn put_if(
            &self,
            key: &str,
            body: Bytes,
            content_type: &str,
            expected: Option<&darkroom_core::store::Version>,
        ) -> Result<darkroom_core::store::Version, StoreError> {
            self.inner.put_if(key, body, content_type, expected).await
        }
        async fn head(&self, key: &str) -> Result<Option<darkroom_core::store::ObjectInfo>, StoreError> {
            self.inner.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.inner.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }
    }

    pub(crate) fn counting_store() -> Arc<Counting> {
        let dir = std::env::temp_dir().join(format!("darkroom-book-{}", uuid::Uuid::new_v4().simple()));
        let inner = darkroom_core::store::fs::FsStore::open(&dir).unwrap();
        Arc::new(Counting { inner, gets: Default::default(), dir })
    }

    pub(crate) fn job(n: usize, owner: &str) -> JobRecord {
        JobRecord { id: format!("job{n:05}"), owner: owner.into(), ..record() }
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_a_miss_reads_the_store() {
        let store = counting_store();
        let book = JobBook::with_cache(store.clone(), 100);
        for n in 0..1000 {
            book.create(&job(n, "o")).await.unwrap();
        }
        assert_eq!(book.cached(), 100, "1000 jobs, 100 cached");
        let gets = || store.gets.load(std::sync::atomic::Ordering::SeqCst);
        let before = gets();
        assert_eq!(book.get("job00999").await.unwrap().unwrap().id, "job00999");
        assert_eq!(gets(), before, "a recent job comes from the cache");
        let old = book.get("job00000").await.unwrap().expect("an evicted job is read from the store");
        assert_eq!((old.id.as_str(), old.owner.as_str()), ("job00000", "o"));
        assert_eq!(gets(), before + 1);
        assert_eq!(book.list("o").await.unwrap().len(), 1000, "listing does not depend on the cache");
        assert_eq!(book.cached(), 100);
        // A status for an evicted job applies to the stored record.
        let mut s = status(JobState::Processing, 1, "w1");
        s.job_id = "job00001".into();
        assert_eq!(book.apply(&s).await.unwrap(), Applied::Changed);
        book.forget("job00001");
        assert_eq!(book.get("job00001").await.unwrap().unwrap().state, JobState::Processing);
    }

    #[tokio::test]
    async fn an_owner_feed_gets_only_that_owners_jobs_and_goes_when_dropped() {
        let book = JobBook::new(counting_store());
        let mut alice = book.subscribe_owner("alice");
        let second = book.subscribe_owner("alice");
        assert_eq!(book.owner_channels(), 1);
        book.create(&job(1, "bob")).await.unwrap();
        book.create(&job(2, "alice")).await.unwrap();
        assert_eq!(alice.recv().await.unwrap().id, "job00002", "bob's job never reaches alice's feed");
        drop(second);
        assert_eq!(book.owner_channels(), 1, "one feed is still open");
        drop(alice);
        assert_eq!(book.owner_channels(), 0, "nothing kept for an owner without a stream");
    }

    /// Two books on one store are two replicas: statuses applied by both at once all land.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_books_applying_at_once_lose_no_status() {
        let store = counting_store();
        let (a, b) = (Arc::new(JobBook::new(store.clone())), Arc::new(JobBook::new(store.clone())));
        let mut rec = job(1, "o");
        rec.state = JobState::Processing;
        rec.attempts = 40;
        a.create(&rec).await.unwrap();
        let mut tasks = Vec::new();
        for attempt in 1..40 {
            let book = if attempt % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                let mut s = status(JobState::Retrying, attempt, &format!("w{attempt}"));
                s.job_id = "job00001".into();
                book.apply(&s).await.unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Applied::Changed);
        }
        let stored: JobRecord = serde_json::from_slice(&store.get("jobs/job00001.json").await.unwrap()).unwrap();
        assert_eq!(stored.timeline.len(), 39, "every late status is in the stored record");
    }

    /// A notice from another replica refreshes a cached record at once and reaches the
    /// owner's feed; a job nobody here cares about is not even read.
    #[tokio::test]
    async fn a_notice_refreshes_the_cache_and_reaches_the_owners_feed() {
        let store = counting_store();
        let a = JobBook::with_cache_ttl(store.clone(), 100, Duration::from_secs(3600));
        let b = JobBook::with_cache_ttl(store.clone(), 100, Duration::from_secs(3600));
        a.create(&job(1, "alice")).await.unwrap();
        assert_eq!(b.get("job00001").await.unwrap().unwrap().state, JobState::Queued, "cached by B");
        let mut feed = b.subscribe_owner("alice");
        let mut notices = a.notices();
        let mut s = status(JobState::Processing, 1, "w1");
        s.job_id = "job00001".into();
        assert_eq!(a.apply(&s).await.unwrap(), Applied::Changed);
        assert_eq!(b.get("job00001").await.unwrap().unwrap().state, JobState::Queued, "stale until told");
        let notice = notices.recv().await.unwrap();
        assert!(
            matches!(&notice, ChangeNotice::Job { job_id, state: JobState::Processing, .. } if job_id == "job00001")
        );
        assert!(b.learn(&notice).await.unwrap());
        assert_eq!(feed.recv().await.unwrap().state, JobState::Processing, "the owner's stream hears it");
        assert_eq!(b.get("job00001").await.unwrap().unwrap().state, JobState::Processing, "the cache is fresh");
        drop(feed);
        a.create(&job(2, "bob")).await.unwrap();
        let other = ChangeNotice::Job {
            job_id: "job00002".into(),
            owner: "bob".into(),
            state: JobState::Queued,
            updated_at: Utc::now(),
            from: "a".into(),
        };
        let gets = store.gets.load(std::sync::atomic::Ordering::SeqCst);
        assert!(!b.learn(&other).await.unwrap(), "not cached, not followed: not read");
        assert_eq!(store.gets.load(std::sync::atomic::Ordering::SeqCst), gets);
    }

    /// The dead-letter queue's verdict goes through the lifecycle like a status: once, and
    /// never over a job that finished.
    #[tokio::test]
    async fn giving_up_fails_a_job_once_and_leaves_a_finished_one() {
        let book = JobBook::new(counting_store());
        book.create(&JobRecord { state: JobState::Processing, attempts: 3, ..job(1, "o") }).await.unwrap();
        book.create(&JobRecord { state: JobState::Done, ..job(2, "o") }).await.unwrap();
        assert_eq!(book.give_up("job00001", 3).await.unwrap(), Applied::Changed);
        let rec = book.get("job00001").await.unwrap().unwrap();
        assert_eq!((rec.state, rec.error.map(|e| e.code)), (JobState::Failed, Some(ErrorCode::GaveUp)));
        assert_eq!(book.give_up("job00001", 3).await.unwrap(), Applied::Ignored);
        assert_eq!(book.give_up("job00002", 3).await.unwrap(), Applied::Ignored);
        assert_eq!(book.get("job00002").await.unwrap().unwrap().state, JobState::Done);
        assert_eq!(book.give_up("job00003", 3).await.unwrap(), Applied::UnknownJob);
    }
}
