//! The job book: the web app's record of every job, kept in the object store (so a restart
//! loses nothing), cached in memory, and broadcast to live subscribers when it changes.
//!
//! The cache is bounded ([`DEFAULT_CACHE`] records, `DARKROOM_JOB_CACHE`): it forgets the
//! least recently used record first, and a miss reads the store, so nothing depends on what
//! the cache holds. Changes go to every [`JobBook::subscribe`]r (the ops page's worker
//! registry) and to the [`JobBook::subscribe_owner`]s of the job's owner only (browsers' event
//! streams), so a stream never receives another browser's jobs.
//!
//! Status rules: statuses may arrive twice or out of order; a job never goes back from a
//! final state, and an older attempt never overrides a newer one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use darkroom_core::engine::OutputSpec;
use darkroom_core::keys;
use darkroom_core::message::{JobError, JobState, OutputInfo, StatusMessage};
use darkroom_core::store::{ObjectStore, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::lru::Lru;

/// One step in a job's life, shown on its page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    pub state: JobState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    #[serde(default)]
    pub attempt: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Most entries a job's timeline keeps (a job that keeps crashing goes to the dead-letter
/// queue after a few attempts; only a flood of forged statuses gets near this).
pub const MAX_TIMELINE: usize = 200;

/// What the web app knows about a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: String,
    pub owner: String,
    pub filename: String,
    pub state: JobState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: u32,
    pub worker: Option<String>,
    pub original_key: String,
    pub original_type: String,
    pub original_width: u32,
    pub original_height: u32,
    pub original_bytes: u64,
    pub requested: Vec<OutputSpec>,
    pub outputs: Vec<OutputInfo>,
    /// The small preview the gallery shows (`GET /api/jobs/{id}/preview`); absent for a job
    /// done before previews existed (the smallest output stands in) or one that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<OutputInfo>,
    pub error: Option<JobError>,
    pub timeline: Vec<TimelineEntry>,
}

impl JobRecord {
    /// Apply a worker's status. Returns whether anything changed.
    ///
    /// Within one attempt the order is processing → retrying → done/failed; a status from an
    /// older attempt changes nothing (except a final one: a slow worker may still finish). A
    /// new attempt that starts while the last one was still `processing` means that attempt's
    /// worker was lost (killed, crashed, or cut off): the timeline says so.
    ///
    /// Statuses come from a shared queue, so nothing in one is trusted as it is: a `done` must
    /// report exactly the requested outputs at their derived keys
    /// ([`StatusMessage::check_outputs`]), worker names and notes are cut to a bounded length,
    /// and a timeline stops growing at [`MAX_TIMELINE`] entries (final statuses still apply).
    pub fn apply(&mut self, s: &StatusMessage) -> bool {
        if self.state.is_final() || s.state == JobState::Queued {
            return false;
        }
        let bounded = s.clone().bounded();
        let s = &bounded;
        if s.state == JobState::Done {
            if let Err(why) = s.check_outputs(&self.requested) {
                tracing::warn!(job_id = %self.id, worker = %s.worker, %why, "ignored a `done` whose outputs are not this job's");
                return false;
            }
        }
        // One status adds at most two entries (a "worker lost" guess and its own).
        if !s.state.is_final() && self.timeline.len() + 2 > MAX_TIMELINE {
            return false;
        }
        if !s.state.is_final() {
            let same_attempt = s.attempt == self.attempts;
            let stale = s.attempt < self.attempts
                || (same_attempt && self.state == JobState::Retrying)
                || (same_attempt
                    && s.state == JobState::Processing
                    && self.state == JobState::Processing
                    && self.worker.as_deref() == Some(&s.worker));
            if stale {
                return self.late_retry(s);
            }
        }
        if self.state == JobState::Processing && s.attempt > self.attempts {
            let lost = self.worker.clone().unwrap_or_else(|| "a worker".into());
            self.timeline.push(TimelineEntry {
                at: s.at,
                state: JobState::Retrying,
                worker: Some(lost.clone()),
                attempt: self.attempts,
                note: Some(format!(
                    "worker lost: {lost} stopped during attempt {} (killed, crashed or cut off); the queue delivered the job again",
                    self.attempts
                )),
            });
        }
        match s.state {
            JobState::Queued => return false,
            JobState::Processing | JobState::Retrying => self.state = s.state,
            JobState::Done => {
                self.state = JobState::Done;
                self.outputs = s.outputs.clone();
                self.preview = s.checked_preview().cloned();
                self.error = None;
            }
            JobState::Failed => {
                self.state = JobState::Failed;
                self.error = s.error.clone().or_else(|| {
                    Some(JobError { code: "failed".into(), message: "The job failed without a reason.".into() })
                });
            }
        }
        self.attempts = self.attempts.max(s.attempt);
        self.worker = Some(s.worker.clone());
        self.updated_at = Utc::now();
        self.timeline.push(TimelineEntry {
            at: s.at,
            state: s.state,
            worker: Some(s.worker.clone()),
            attempt: s.attempt,
            note: s.note.clone().or_else(|| s.error.as_ref().map(|e| e.message.clone())),
        });
        true
    }

    /// A `retrying` that arrives after the next attempt began (the reply queue does not keep
    /// order) still belongs in the timeline: it replaces the "worker lost" guess for its
    /// attempt, or goes in at its time.
    fn late_retry(&mut self, s: &StatusMessage) -> bool {
        if s.state != JobState::Retrying
            || self.timeline.iter().any(|t| {
                t.state == JobState::Retrying
                    && t.attempt == s.attempt
                    && t.worker.as_deref() == Some(&s.worker)
                    && !is_lost(t)
            })
        {
            return false;
        }
        let entry = TimelineEntry {
            at: s.at,
            state: JobState::Retrying,
            worker: Some(s.worker.clone()),
            attempt: s.attempt,
            note: s.note.clone().or_else(|| s.error.as_ref().map(|e| e.message.clone())),
        };
        match self.timeline.iter().position(|t| is_lost(t) && t.attempt == s.attempt) {
            Some(i) => self.timeline[i] = entry,
            None => {
                let i = self.timeline.iter().position(|t| t.at > s.at).unwrap_or(self.timeline.len());
                self.timeline.insert(i, entry);
            }
        }
        self.updated_at = Utc::now();
        true
    }
}

/// Is this the entry [`JobRecord::apply`] adds for a worker that vanished mid-attempt?
fn is_lost(t: &TimelineEntry) -> bool {
    t.note.as_deref().is_some_and(|n| n.starts_with("worker lost"))
}

/// What applying a status did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    Changed,
    Ignored,
    UnknownJob,
}

/// Job records the cache keeps by default (a record is a few KiB: a few MiB in all).
pub const DEFAULT_CACHE: usize = 4096;

/// Changes an owner's event streams may fall behind by before they are told to resync.
const OWNER_BACKLOG: usize = 64;

/// The cache, and a count of writes to it that lets a reader tell whether the record it read
/// from the store may have been replaced meanwhile.
struct Cache {
    records: Lru<String, JobRecord>,
    writes: u64,
}

type OwnerChannels = Arc<Mutex<HashMap<String, broadcast::Sender<Arc<JobRecord>>>>>;

pub struct JobBook {
    store: Arc<dyn ObjectStore>,
    cache: Mutex<Cache>,
    writes: tokio::sync::Mutex<()>,
    changes: broadcast::Sender<JobRecord>,
    owners: OwnerChannels,
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

impl JobBook {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self::with_cache(store, DEFAULT_CACHE)
    }

    /// A book whose cache holds at most `capacity` records.
    pub fn with_cache(store: Arc<dyn ObjectStore>, capacity: usize) -> Self {
        JobBook {
            store,
            cache: Mutex::new(Cache { records: Lru::new(capacity), writes: 0 }),
            writes: tokio::sync::Mutex::new(()),
            changes: broadcast::channel(1024).0,
            owners: Arc::default(),
        }
    }

    /// Live changes to every job (for the web app's own bookkeeping, not for clients).
    pub fn subscribe(&self) -> broadcast::Receiver<JobRecord> {
        self.changes.subscribe()
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
        c.records.insert(rec.id.clone(), rec.clone());
        c.writes += 1;
    }

    fn forget(&self, id: &str) {
        let mut c = self.cache.lock().unwrap();
        c.records.remove(id);
        c.writes += 1;
    }

    async fn save(&self, rec: &JobRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(rec).expect("records serialize");
        self.store.put(&keys::job_record(&rec.id), Bytes::from(json), "application/json").await?;
        self.remember(rec);
        let _ = self.changes.send(rec.clone());
        if let Some(tx) = self.owners.lock().unwrap().get(&rec.owner) {
            let _ = tx.send(Arc::new(rec.clone()));
        }
        Ok(())
    }

    /// Record a new job (before its message is queued, so no status can beat it).
    pub async fn create(&self, rec: &JobRecord) -> Result<(), StoreError> {
        let _w = self.writes.lock().await;
        self.save(rec).await?;
        self.store
            .put(&keys::owner_index(&rec.owner, &rec.id), Bytes::from(rec.created_at.to_rfc3339()), "text/plain")
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        if !keys::is_valid_id(id) {
            return Ok(None);
        }
        let writes = {
            let mut c = self.cache.lock().unwrap();
            if let Some(rec) = c.records.get_mut(id) {
                return Ok(Some(rec.clone()));
            }
            c.writes
        };
        match self.store.get(&keys::job_record(id)).await {
            Ok(bytes) => {
                let rec: JobRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Rejected(format!("job record {id} is unreadable: {e}")))?;
                // Cache what was read only if nothing was written meanwhile: a save or delete
                // between the read and now may have made it stale.
                let mut c = self.cache.lock().unwrap();
                if c.writes == writes {
                    c.records.insert(id.to_string(), rec.clone());
                }
                Ok(Some(rec))
            }
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
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

    /// Apply a worker's status message to its job.
    pub async fn apply(&self, status: &StatusMessage) -> Result<Applied, StoreError> {
        let _w = self.writes.lock().await;
        let Some(mut rec) = self.get(&status.job_id).await? else {
            return Ok(Applied::UnknownJob);
        };
        if !rec.apply(status) {
            return Ok(Applied::Ignored);
        }
        self.save(&rec).await?;
        Ok(Applied::Changed)
    }
}

// UI (issue 6): delete a job, queue it again: in jobs/manage.rs, a separate file.
pub mod manage;
// Issue 16: one page of an owner's jobs (cursor paging): in jobs/page.rs.
pub mod page;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn record() -> JobRecord {
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

    fn requested(name: &str) -> OutputSpec {
        OutputSpec::new(name, vec![], darkroom_core::engine::Format::Png)
    }

    fn done_with(key: &str, name: &str) -> StatusMessage {
        StatusMessage {
            outputs: vec![OutputInfo {
                name: name.into(),
                key: key.into(),
                format: darkroom_core::engine::Format::Png,
                width: 1,
                height: 1,
                bytes: 1,
            }],
            ..status(JobState::Done, 1, "w1")
        }
    }

    #[test]
    fn a_done_naming_keys_that_are_not_the_jobs_own_is_ignored() {
        let mut r = record();
        r.requested = vec![requested("web")];
        assert!(r.apply(&status(JobState::Processing, 1, "w1")));
        for (key, name) in [
            (keys::COOKIE_KEY, "web"),
            ("outputs/other-job/web.png", "web"),
            ("outputs/j/../x.png", "web"),
            ("outputs/j/web.jpg", "web"),
            ("outputs/j/evil.png", "evil"),
        ] {
            assert!(!r.apply(&done_with(key, name)), "{key} / {name}");
            assert_eq!(r.state, JobState::Processing);
            assert!(r.outputs.is_empty());
        }
        assert!(!r.apply(&status(JobState::Done, 1, "w1")), "a done with no outputs for a job that asked for one");
        assert!(r.apply(&done_with("outputs/j/web.png", "web")));
        assert_eq!(r.state, JobState::Done);
        assert_eq!(r.outputs[0].key, "outputs/j/web.png");
    }

    #[test]
    fn a_done_keeps_its_preview_only_at_the_jobs_preview_key() {
        let preview = |key: &str, size: u32| OutputInfo {
            name: keys::PREVIEW_NAME.into(),
            key: key.into(),
            format: darkroom_core::engine::Format::Jpeg,
            width: size,
            height: size / 2,
            bytes: 9,
        };
        for (key, size, kept) in [
            (keys::preview("j"), 320, true),
            (keys::COOKIE_KEY.to_string(), 320, false),
            (keys::preview("other"), 320, false),
            (keys::preview("j"), 4000, false),
        ] {
            let mut r = record();
            r.requested = vec![requested("web")];
            let mut done = done_with("outputs/j/web.png", "web");
            done.preview = Some(preview(&key, size));
            assert!(r.apply(&done), "the outputs apply either way");
            assert_eq!(r.preview.is_some(), kept, "{key} {size}");
        }
    }

    #[test]
    fn statuses_carry_bounded_text_and_the_timeline_stops_growing() {
        let mut r = record();
        let mut s = status(JobState::Processing, 1, &"w".repeat(10_000));
        s.note = Some("n".repeat(100_000));
        assert!(r.apply(&s));
        let t = r.timeline.last().unwrap();
        assert_eq!(t.worker.as_ref().unwrap().len(), darkroom_core::message::MAX_WORKER_CHARS);
        assert_eq!(t.note.as_ref().unwrap().len(), darkroom_core::message::MAX_NOTE_CHARS);
        for attempt in 2..1000 {
            r.apply(&status(JobState::Retrying, attempt, "w"));
            r.apply(&status(JobState::Processing, attempt + 1, "w"));
        }
        assert!(r.timeline.len() <= MAX_TIMELINE, "{}", r.timeline.len());
        assert!(r.apply(&status(JobState::Failed, 2000, "w")), "a final status still applies");
        assert_eq!(r.state, JobState::Failed);
    }

    #[test]
    fn never_goes_back_from_done() {
        let mut r = record();
        assert!(r.apply(&status(JobState::Processing, 1, "w1")));
        assert!(r.apply(&status(JobState::Done, 1, "w1")));
        assert!(!r.apply(&status(JobState::Processing, 2, "w2")));
        assert!(!r.apply(&status(JobState::Failed, 2, "w2")));
        assert_eq!(r.state, JobState::Done);
        assert_eq!(r.timeline.len(), 2);
    }

    #[test]
    fn duplicates_and_stale_attempts_are_ignored() {
        let mut r = record();
        assert!(r.apply(&status(JobState::Processing, 2, "w2")));
        assert!(!r.apply(&status(JobState::Processing, 2, "w2")));
        assert!(!r.apply(&status(JobState::Processing, 1, "w1")));
        assert_eq!((r.attempts, r.worker.as_deref()), (2, Some("w2")));
        assert!(r.apply(&status(JobState::Processing, 3, "w1")));
        assert_eq!(r.attempts, 3);
    }

    #[test]
    fn retrying_then_a_new_attempt() {
        let mut r = record();
        assert!(r.apply(&status(JobState::Processing, 1, "w1")));
        assert!(r.apply(&status(JobState::Retrying, 1, "w1")));
        assert_eq!(r.state, JobState::Retrying);
        // A late `processing` of the same attempt does not undo the retry.
        assert!(!r.apply(&status(JobState::Processing, 1, "w1")));
        assert!(!r.apply(&status(JobState::Retrying, 1, "w1")));
        assert!(r.apply(&status(JobState::Processing, 2, "w2")));
        assert!(r.apply(&status(JobState::Done, 2, "w2")));
        let states: Vec<_> = r.timeline.iter().map(|t| t.state).collect();
        assert_eq!(states, [JobState::Processing, JobState::Retrying, JobState::Processing, JobState::Done]);
        assert!(!r.timeline.iter().any(|t| t.note.as_deref().unwrap_or("").starts_with("worker lost")));
    }

    #[test]
    fn a_new_attempt_after_processing_records_the_lost_worker() {
        let mut r = record();
        assert!(r.apply(&status(JobState::Processing, 1, "w1")));
        assert!(r.apply(&status(JobState::Processing, 2, "w2")));
        let lost = &r.timeline[1];
        assert_eq!((lost.state, lost.worker.as_deref(), lost.attempt), (JobState::Retrying, Some("w1"), 1));
        assert!(lost.note.as_deref().unwrap().starts_with("worker lost: w1"), "{lost:?}");
        assert_eq!(r.timeline[2].worker.as_deref(), Some("w2"));
        assert_eq!(r.state, JobState::Processing);
    }

    #[test]
    fn a_late_retrying_replaces_the_lost_worker_guess() {
        let mut r = record();
        assert!(r.apply(&status(JobState::Processing, 1, "w1")));
        assert!(r.apply(&status(JobState::Processing, 2, "w2")));
        assert!(is_lost(&r.timeline[1]));
        let mut released = status(JobState::Retrying, 1, "w1");
        released.note = Some("released: w1 is shutting down".into());
        assert!(r.apply(&released));
        assert!(!r.apply(&released), "applied once");
        assert_eq!(r.state, JobState::Processing);
        assert_eq!(r.timeline[1].note.as_deref(), Some("released: w1 is shutting down"));
        assert!(!r.timeline.iter().any(is_lost));
        assert_eq!(r.timeline.len(), 3);
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

    #[test]
    fn failed_gets_a_reason() {
        let mut r = record();
        assert!(r.apply(&status(JobState::Failed, 1, "w")));
        assert!(r.error.is_some());
    }
}
