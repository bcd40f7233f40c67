//! The worker registry: what the admin page knows about the workers, from two sources: the job book's changes (every
//! status a worker posts lands there, and so do the web app's own entries: queued again,
//! worker lost, gave up), and the workers' presence messages ([`Registry::presence`], from the
//! reply queue): a processor announces itself when it starts, every `DARKROOM_WORKER_HEARTBEAT`
//! seconds, and when it has stopped, so an idle worker is listed too, with its slots. Kept in
//! memory: it starts empty when the web app starts and fills as workers report.
//!
//! A worker's [`WorkerStatus`]: `stopped` when it said so (forgotten after
//! [`FORGET_STOPPED_AFTER`]); `silent` when it announced itself and then nothing was heard from
//! it for more than [`SILENT_AFTER_INTERVALS`] of its announced intervals (killed, lost, cut
//! off); else `stopping`, `busy` or `idle`. A worker known only from job statuses (a processor
//! with presence turned off, or older) is `busy` or `idle` by the jobs it reported.
//!
//! [`Registry::run`] follows [`JobBook::subscribe`]; [`Registry::observe`] takes one record
//! and looks only at the timeline entries it has not seen yet, so duplicates do not count.
//!
//! Worker names come from statuses on a shared queue, so anyone who can post there can invent
//! them: the registry keeps at most [`MAX_WORKERS`] workers (a new one pushes out the one this
//! web app has not heard from for longest; `DARKROOM_OPS_MAX_WORKERS`) and forgets a worker silent for [`FORGET_AFTER`].
//! "Heard from" is when this web app took in the status, not the time the status claims.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use darkroom_protocol::lifecycle::{ErrorCode, JobError, JobRecord, JobState, TimelineEntry};
use darkroom_protocol::message::{PresenceMessage, WorkerState};

pub use super::status::{WorkerCounts, WorkerStatus};
use crate::jobs::JobBook;
use crate::lru::Lru;

/// How many recent events of each kind are kept.
const KEEP: usize = 30;
/// Most workers kept by default (far more than a deployment runs; the page lists them all).
pub const MAX_WORKERS: usize = 256;
/// Unfinished jobs followed at once (far more than a queue holds in practice).
const MAX_FOLLOWED: usize = 100_000;
/// A worker not heard from for this long is forgotten (a stopped or renamed worker).
pub const FORGET_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);
/// A worker that said it stopped is forgotten this long after (scaled-in workers do not pile up).
pub const FORGET_STOPPED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);
/// A worker heard from for none of this many of its announced presence intervals is `silent`.
pub const SILENT_AFTER_INTERVALS: u32 = 3;
/// Minutes of throughput history.
pub const MINUTES: usize = 15;

/// What a worker's latest presence message said.
#[derive(Clone, Debug, Serialize)]
pub struct PresenceInfo {
    pub state: WorkerState,
    pub host: String,
    pub pid: u32,
    pub slots: u32,
    pub busy: u32,
    pub started_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    pub interval_s: u32,
    pub processor_version: String,
    /// When this web app took it in.
    #[serde(skip)]
    heard: Option<Instant>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerInfo {
    pub name: String,
    /// Computed when a snapshot is taken.
    pub status: WorkerStatus,
    /// Jobs it runs now: from its latest presence, or from the statuses heard after it.
    pub busy: u32,
    /// Seconds since this web app last heard from it.
    pub quiet_s: u64,
    /// Its latest presence (none for a worker known only from job statuses).
    pub presence: Option<PresenceInfo>,
    pub last_seen: Option<DateTime<Utc>>,
    /// Jobs this worker said it is processing and has not finished.
    pub current: BTreeSet<String>,
    pub started: u64,
    pub done: u64,
    pub failed: u64,
    /// Attempts this worker did not finish (it was killed, crashed or stopped).
    pub unfinished: u64,
    /// When this web app last took in a status or presence of this worker.
    #[serde(skip)]
    heard: Option<Instant>,
    /// When this web app last took in a job status of this worker.
    #[serde(skip)]
    jobs_heard: Option<Instant>,
}

impl WorkerInfo {
    /// Set [`status`](Self::status), [`busy`](Self::busy) and [`quiet_s`](Self::quiet_s) as of `now`.
    fn refresh(&mut self, now: Instant) {
        let quiet = self.heard.map_or(std::time::Duration::ZERO, |h| now.saturating_duration_since(h));
        self.quiet_s = quiet.as_secs();
        let jobs = self.current.len() as u32;
        let Some(p) = &self.presence else {
            self.busy = jobs;
            self.status = if jobs > 0 { WorkerStatus::Busy } else { WorkerStatus::Idle };
            return;
        };
        // The newer of the two sources: its own count, or the job statuses heard since.
        self.busy = if self.jobs_heard > p.heard { jobs } else { p.busy };
        let silent_after = std::time::Duration::from_secs(u64::from(p.interval_s) * u64::from(SILENT_AFTER_INTERVALS));
        self.status = match p.state {
            WorkerState::Stopped => {
                self.busy = 0;
                WorkerStatus::Stopped
            }
            _ if p.interval_s > 0 && quiet > silent_after => WorkerStatus::Silent,
            WorkerState::Stopping => WorkerStatus::Stopping,
            WorkerState::Running if self.busy > 0 => WorkerStatus::Busy,
            WorkerState::Running => WorkerStatus::Idle,
        };
    }
}

/// One step of one job, for the activity list.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub job_id: String,
    pub filename: String,
    pub state: JobState,
    pub worker: Option<String>,
    pub attempt: u32,
    pub note: Option<String>,
}

/// A job that was delivered again: which worker had it, which one has it now.
#[derive(Clone, Debug, Serialize)]
pub struct Retry {
    pub at: DateTime<Utc>,
    pub job_id: String,
    pub filename: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub attempt: u32,
    /// `processing`: the attempt started on `to`; `retrying`: the attempt on `from` ended
    /// without a result.
    pub state: JobState,
}

impl Retry {
    /// Whether this is a new attempt starting (on `to`), not one ending without a result.
    pub fn is_new_attempt(&self) -> bool {
        self.state == JobState::Processing
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Failure {
    pub at: DateTime<Utc>,
    pub job_id: String,
    pub filename: String,
    pub code: ErrorCode,
    pub message: String,
    pub worker: Option<String>,
}

struct Inner {
    workers: BTreeMap<String, WorkerInfo>,
    /// Timeline length seen per unfinished job (the [`MAX_FOLLOWED`] most recent).
    seen: Lru<String, usize>,
    /// Which worker holds which unfinished job (the [`MAX_FOLLOWED`] most recent).
    holder: Lru<String, String>,
    events: VecDeque<Event>,
    retries: VecDeque<Retry>,
    failures: VecDeque<Failure>,
    finished: VecDeque<(DateTime<Utc>, bool)>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            workers: BTreeMap::new(),
            seen: Lru::new(MAX_FOLLOWED),
            holder: Lru::new(MAX_FOLLOWED),
            events: VecDeque::new(),
            retries: VecDeque::new(),
            failures: VecDeque::new(),
            finished: VecDeque::new(),
        }
    }
}

/// A snapshot for the ops page.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub workers: Vec<WorkerInfo>,
    pub events: Vec<Event>,
    pub retries: Vec<Retry>,
    pub failures: Vec<Failure>,
    /// Jobs finished per minute, oldest first, the last entry is the current minute: (done, failed).
    pub per_minute: Vec<(u32, u32)>,
}

pub struct Registry {
    inner: Mutex<Inner>,
    /// Most workers kept (`DARKROOM_OPS_MAX_WORKERS`).
    cap: usize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry { inner: Mutex::default(), cap: MAX_WORKERS }
    }
}

fn push<T>(q: &mut VecDeque<T>, item: T) {
    q.push_front(item);
    q.truncate(KEEP);
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// A registry that keeps at most `cap` workers (at least 1).
    pub fn with_cap(cap: usize) -> Arc<Registry> {
        Arc::new(Registry { inner: Mutex::default(), cap: cap.max(1) })
    }

    /// Follow the job book until shutdown.
    pub async fn run(self: Arc<Self>, book: Arc<JobBook>, mut shutdown: watch::Receiver<bool>) {
        let mut rx = book.subscribe();
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(rec) => self.observe(&rec),
                    Err(RecvError::Lagged(n)) => tracing::debug!(missed = n, "worker registry lagged"),
                    Err(RecvError::Closed) => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Take in a changed job record.
    pub fn observe(&self, rec: &JobRecord) {
        let mut g = self.inner.lock().unwrap();
        let inner = &mut *g;
        let len = rec.timeline.len();
        // A job not followed yet: only its newest entry is news.
        let from = match inner.seen.peek(&rec.id) {
            Some(&n) if n <= len => n,
            _ => len.saturating_sub(1),
        };
        for entry in &rec.timeline[from..] {
            inner.apply(rec, entry, self.cap);
        }
        if rec.state.is_final() {
            inner.seen.remove(&rec.id);
            inner.holder.remove(&rec.id);
        } else {
            inner.seen.insert(rec.id.clone(), len);
        }
    }

    /// Take in a worker's presence message (already [bounded](PresenceMessage::bounded)).
    /// Returns false for one older than the presence held for that worker (the queue may
    /// deliver out of order), which changes nothing.
    pub fn presence(&self, p: &PresenceMessage) -> bool {
        let mut g = self.inner.lock().unwrap();
        let inner = &mut *g;
        let (is_new, was) = match inner.workers.get(&p.worker) {
            None => (true, None),
            Some(w) => (false, w.presence.as_ref().map(|h| (h.started_at, h.sent_at, h.state))),
        };
        if was.is_some_and(|(started, sent, _)| (p.started_at, p.sent_at) < (started, sent)) {
            return false;
        }
        let info = inner.worker(&p.worker, self.cap);
        info.last_seen = Some(info.last_seen.map_or(p.sent_at, |l| l.max(p.sent_at)));
        info.presence = Some(PresenceInfo {
            state: p.state,
            host: p.host.clone(),
            pid: p.pid,
            slots: p.slots,
            busy: p.busy,
            started_at: p.started_at,
            sent_at: p.sent_at,
            interval_s: p.interval_s,
            processor_version: p.processor_version.clone(),
            heard: info.heard,
        });
        if is_new || was.is_none_or(|(_, _, s)| s != p.state) {
            tracing::info!(worker = %p.worker, state = p.state.as_str(), slots = p.slots, busy = p.busy, host = %p.host, pid = p.pid, "worker presence");
        }
        true
    }

    /// Workers by status and the slots of the live ones, as of now.
    pub fn counts(&self) -> WorkerCounts {
        let mut g = self.inner.lock().unwrap();
        let now = Instant::now();
        g.forget_silent(now);
        let mut counts = WorkerCounts::default();
        for w in g.workers.values_mut() {
            w.refresh(now);
            *counts.by_status.entry(w.status).or_default() += 1;
            if let Some(p) = w.presence.as_ref().filter(|_| w.status.is_live()) {
                counts.slots += u64::from(p.slots);
                counts.busy += u64::from(w.busy);
            }
        }
        counts
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut g = self.inner.lock().unwrap();
        g.forget_silent(Instant::now());
        let now = Utc::now();
        let mut per_minute = vec![(0u32, 0u32); MINUTES];
        for (at, ok) in &g.finished {
            let age = (now - *at).num_seconds().max(0) as usize / 60;
            if age < MINUTES {
                let slot = &mut per_minute[MINUTES - 1 - age];
                if *ok {
                    slot.0 += 1
                } else {
                    slot.1 += 1
                }
            }
        }
        let at = Instant::now();
        let mut workers: Vec<WorkerInfo> = g
            .workers
            .values()
            .cloned()
            .map(|mut w| {
                w.refresh(at);
                w
            })
            .collect();
        // Live ones first, then by name: rows keep their place while the page refreshes.
        workers.sort_by(|a, b| {
            (!a.status.is_live(), a.status == WorkerStatus::Stopped, &a.name).cmp(&(
                !b.status.is_live(),
                b.status == WorkerStatus::Stopped,
                &b.name,
            ))
        });
        Snapshot {
            workers,
            events: g.events.iter().cloned().collect(),
            retries: g.retries.iter().cloned().collect(),
            failures: g.failures.iter().cloned().collect(),
            per_minute,
        }
    }
}

impl Inner {
    /// The worker called `name`, added if new (making room first), marked as heard from now.
    fn worker(&mut self, name: &str, cap: usize) -> &mut WorkerInfo {
        let now = Instant::now();
        if !self.workers.contains_key(name) {
            self.forget_silent(now);
            while self.workers.len() >= cap {
                let Some(oldest) = self.workers.values().min_by_key(|w| w.heard).map(|w| w.name.clone()) else {
                    break;
                };
                self.workers.remove(&oldest);
            }
        }
        let info = self
            .workers
            .entry(name.to_string())
            .or_insert_with(|| WorkerInfo { name: name.to_string(), ..Default::default() });
        info.heard = Some(now);
        info
    }

    /// Forget workers silent for [`FORGET_AFTER`], and those stopped for [`FORGET_STOPPED_AFTER`].
    fn forget_silent(&mut self, now: Instant) {
        self.workers.retain(|_, w| {
            let stopped = w.presence.as_ref().is_some_and(|p| p.state == WorkerState::Stopped);
            let keep = if stopped { FORGET_STOPPED_AFTER } else { FORGET_AFTER };
            w.heard.is_some_and(|h| now.saturating_duration_since(h) < keep)
        });
    }

    fn release(&mut self, job: &str) -> Option<String> {
        let w = self.holder.remove(job)?;
        if let Some(info) = self.workers.get_mut(&w) {
            info.current.remove(job);
        }
        Some(w)
    }

    /// Take in one new timeline entry of `rec`: list it, then what its state says about the
    /// worker named in it.
    fn apply(&mut self, rec: &JobRecord, e: &TimelineEntry, cap: usize) {
        push(
            &mut self.events,
            Event {
                at: e.at,
                job_id: rec.id.clone(),
                filename: rec.filename.clone(),
                state: e.state,
                worker: e.worker.clone(),
                attempt: e.attempt,
                note: e.note.as_ref().map(ToString::to_string),
            },
        );
        match e.state {
            JobState::Processing => self.started(rec, e, cap),
            JobState::Done | JobState::Failed => self.finished(rec, e),
            // A cancelled job is no worker's any more (a worker that received it skipped it).
            JobState::Queued | JobState::Cancelled => {
                self.release(&rec.id);
            }
            JobState::Retrying => self.ended_without_result(rec, e),
        }
    }

    /// A worker started an attempt: it holds the job now; the worker that held it before (an
    /// earlier attempt that never reported its end) did not finish its attempt.
    fn started(&mut self, rec: &JobRecord, e: &TimelineEntry, cap: usize) {
        let Some(w) = e.worker.clone() else { return };
        let previous = self.release(&rec.id);
        if let Some(p) = previous.as_ref().filter(|p| **p != w) {
            if let Some(info) = self.workers.get_mut(p) {
                info.unfinished += 1;
            }
        }
        if e.attempt > 1 {
            let from = previous.or_else(|| self.retries.iter().find(|r| r.job_id == rec.id)?.from.clone());
            self.retried(rec, e, from, Some(w.clone()));
        }
        let info = self.worker(&w, cap);
        info.jobs_heard = info.heard;
        info.last_seen = Some(info.last_seen.map_or(e.at, |l| l.max(e.at)));
        info.current.insert(rec.id.clone());
        info.started += 1;
        // A job pushed out of `holder` leaves its worker's current jobs too, so those
        // sets stay as bounded as `holder`.
        if let Some((job, w)) = self.holder.insert(rec.id.clone(), w) {
            if let Some(info) = self.workers.get_mut(&w) {
                info.current.remove(&job);
            }
        }
    }

    /// The job is done or failed: its worker's counts, the throughput, and the failure list.
    fn finished(&mut self, rec: &JobRecord, e: &TimelineEntry) {
        let ok = e.state == JobState::Done;
        self.release(&rec.id);
        if let Some(info) = e.worker.as_ref().and_then(|w| self.workers.get_mut(w)) {
            info.heard = Some(Instant::now());
            info.jobs_heard = info.heard;
            info.last_seen = Some(info.last_seen.map_or(e.at, |l| l.max(e.at)));
            if ok {
                info.done += 1
            } else {
                info.failed += 1
            }
        }
        self.finished.push_back((e.at, ok));
        let horizon = Utc::now() - ChronoDuration::minutes(MINUTES as i64);
        while self.finished.front().is_some_and(|(at, _)| *at < horizon) {
            self.finished.pop_front();
        }
        if !ok {
            self.failed(rec, e);
        }
    }

    /// A failure for the list: the record's error, or (a record without one) the entry's note.
    fn failed(&mut self, rec: &JobRecord, e: &TimelineEntry) {
        let error = rec.error.clone().unwrap_or_else(|| {
            JobError::new(ErrorCode::Unexplained, e.note.as_ref().map(ToString::to_string).unwrap_or_default())
        });
        let failure = Failure {
            at: e.at,
            job_id: rec.id.clone(),
            filename: rec.filename.clone(),
            code: error.code,
            message: error.message,
            worker: e.worker.clone(),
        };
        push(&mut self.failures, failure);
    }

    /// The attempt ended without a result (a `retrying`, or the web app's worker-lost guess),
    /// so the worker that had it no longer holds it and did not finish it.
    fn ended_without_result(&mut self, rec: &JobRecord, e: &TimelineEntry) {
        let holder = self.release(&rec.id);
        let from = e.worker.clone().or(holder);
        if let Some(info) = from.as_ref().and_then(|w| self.workers.get_mut(w)) {
            info.unfinished += 1;
            if e.worker.is_some() {
                info.jobs_heard = Some(Instant::now());
            }
        }
        self.retried(rec, e, from, None);
    }

    /// Record that `rec` needed another attempt: `from` had it, `to` has it now (if known).
    fn retried(&mut self, rec: &JobRecord, e: &TimelineEntry, from: Option<String>, to: Option<String>) {
        let retry = Retry {
            at: e.at,
            job_id: rec.id.clone(),
            filename: rec.filename.clone(),
            from,
            to,
            attempt: e.attempt,
            state: e.state,
        };
        push(&mut self.retries, retry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(id: &str, steps: &[(&str, Option<&str>, u32)], error: Option<(&str, &str)>) -> JobRecord {
        let state = steps.last().unwrap().0;
        let timeline: Vec<_> =
            steps.iter().map(|(s, w, a)| json!({ "at": Utc::now(), "state": s, "worker": w, "attempt": a })).collect();
        serde_json::from_value(json!({
            "id": id, "owner": "o", "filename": format!("{id}.jpg"), "state": state,
            "created_at": Utc::now(), "updated_at": Utc::now(), "attempts": steps.last().unwrap().2,
            "worker": steps.last().unwrap().1, "original_key": darkroom_protocol::keys::original(id),
            "original_type": "image/jpeg", "original_width": 1, "original_height": 1, "original_bytes": 1,
            "requested": [], "outputs": [],
            "error": error.map(|(c, m)| json!({ "code": c, "message": m })),
            "timeline": timeline,
        }))
        .unwrap()
    }

    #[test]
    fn a_job_moving_to_another_worker_is_a_retry_and_counts_once() {
        let r = Registry::default();
        let q = ("queued", None, 0);
        let p1 = ("processing", Some("w0"), 1);
        let p2 = ("processing", Some("w1"), 2);
        r.observe(&record("j", &[q], None));
        r.observe(&record("j", &[q, p1], None));
        r.observe(&record("j", &[q, p1], None)); // a duplicate changes nothing
        let s = r.snapshot();
        assert_eq!(s.workers.len(), 1);
        assert!(s.workers[0].current.contains("j"));
        assert_eq!(s.workers[0].started, 1);

        r.observe(&record("j", &[q, p1, p2], None));
        r.observe(&record("j", &[q, p1, p2, ("done", Some("w1"), 2)], None));
        let s = r.snapshot();
        let w0 = s.workers.iter().find(|w| w.name == "w0").unwrap();
        let w1 = s.workers.iter().find(|w| w.name == "w1").unwrap();
        assert_eq!((w0.unfinished, w0.current.len(), w0.done), (1, 0, 0));
        assert_eq!((w1.unfinished, w1.current.len(), w1.done, w1.started), (0, 0, 1, 1));
        assert_eq!(s.retries.len(), 1);
        assert_eq!((s.retries[0].from.as_deref(), s.retries[0].to.as_deref()), (Some("w0"), Some("w1")));
        assert_eq!(s.per_minute.iter().map(|(d, f)| d + f).sum::<u32>(), 1);
        assert_eq!(s.per_minute.last(), Some(&(1, 0)));
    }

    #[test]
    fn invented_worker_names_leave_the_registry_bounded() {
        let r = Registry::default();
        let q = ("queued", None, 0);
        r.observe(&record("real", &[q, ("processing", Some("real-worker"), 1)], None));
        let names: Vec<String> = (0..10_000).map(|n| format!("forged-{n}")).collect();
        for (n, name) in names.iter().enumerate() {
            let id = format!("j{n}");
            r.observe(&record(&id, &[q, ("processing", Some(name), 1)], None));
        }
        let s = r.snapshot();
        assert_eq!(s.workers.len(), MAX_WORKERS);
        assert!(s.workers.iter().any(|w| w.name == "forged-9999"), "the newest names are kept");
        assert!(!s.workers.iter().any(|w| w.name == "forged-0"), "the longest silent went first");
        // Heard from again, a worker comes back (a new entry) and others make room.
        r.observe(&record(
            "real",
            &[q, ("processing", Some("real-worker"), 1), ("processing", Some("real-worker"), 2)],
            None,
        ));
        let s = r.snapshot();
        assert_eq!(s.workers.len(), MAX_WORKERS);
        assert!(s.workers.iter().any(|w| w.name == "real-worker"));
    }

    #[test]
    fn a_worker_silent_for_long_is_forgotten() {
        let r = Registry::default();
        r.observe(&record("j", &[("queued", None, 0), ("processing", Some("w0"), 1)], None));
        assert_eq!(r.snapshot().workers.len(), 1);
        let an_hour_later = Instant::now() + FORGET_AFTER + std::time::Duration::from_secs(1);
        r.inner.lock().unwrap().forget_silent(an_hour_later);
        assert!(r.snapshot().workers.is_empty());
    }

    fn presence(worker: &str, state: WorkerState, busy: u32, started_at: DateTime<Utc>) -> PresenceMessage {
        PresenceMessage {
            worker: worker.into(),
            state,
            host: "box".into(),
            pid: 42,
            slots: 4,
            busy,
            started_at,
            sent_at: Utc::now(),
            interval_s: 10,
            processor_version: "0.1.0".into(),
        }
    }

    fn status_of(r: &Registry, name: &str) -> (WorkerStatus, u32) {
        let s = r.snapshot();
        let w = s.workers.iter().find(|w| w.name == name).unwrap_or_else(|| panic!("no {name} in {s:?}"));
        (w.status, w.busy)
    }

    /// Move the registry's clock: every worker was last heard `ago` before now.
    fn heard_ago(r: &Registry, ago: std::time::Duration) {
        let then = Instant::now() - ago;
        for w in r.inner.lock().unwrap().workers.values_mut() {
            w.heard = Some(then);
            if let Some(p) = w.presence.as_mut() {
                p.heard = Some(then);
            }
        }
    }

    #[test]
    fn an_idle_worker_appears_with_its_slots_on_its_first_presence() {
        let r = Registry::default();
        assert!(r.snapshot().workers.is_empty());
        assert!(r.presence(&presence("w0", WorkerState::Running, 0, Utc::now())));
        let s = r.snapshot();
        assert_eq!(s.workers.len(), 1);
        let w = &s.workers[0];
        assert_eq!((w.status, w.busy), (WorkerStatus::Idle, 0));
        let p = w.presence.as_ref().unwrap();
        assert_eq!((p.slots, p.host.as_str(), p.pid), (4, "box", 42));
        let counts = r.counts();
        assert_eq!(counts.by_status.get(&WorkerStatus::Idle), Some(&1));
        assert_eq!((counts.slots, counts.busy), (4, 0));
    }

    #[test]
    fn busy_comes_from_the_newer_of_presence_and_job_statuses() {
        let r = Registry::default();
        let started = Utc::now();
        r.presence(&presence("w0", WorkerState::Running, 2, started));
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Busy, 2), "its own count");
        // A job finished after that presence: the statuses are newer.
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.observe(&record("j", &[("queued", None, 0), ("processing", Some("w0"), 1)], None));
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Busy, 1), "the jobs heard since");
        r.observe(&record("j", &[("queued", None, 0), ("processing", Some("w0"), 1), ("done", Some("w0"), 1)], None));
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Idle, 0));
        // The next presence is newer again.
        std::thread::sleep(std::time::Duration::from_millis(5));
        r.presence(&presence("w0", WorkerState::Running, 3, started));
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Busy, 3));
        assert_eq!(r.counts().busy, 3);
    }

    #[test]
    fn a_stopping_then_stopped_worker_is_shown_so_then_forgotten() {
        let r = Registry::default();
        let started = Utc::now();
        r.presence(&presence("w0", WorkerState::Running, 1, started));
        r.presence(&presence("w0", WorkerState::Stopping, 1, started));
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Stopping, 1));
        let stopped = presence("w0", WorkerState::Stopped, 0, started);
        // The queue delivers out of order: a `stopping` sent before `stopped` arrives after it.
        let mut late = presence("w0", WorkerState::Stopping, 1, started);
        late.sent_at = stopped.sent_at - ChronoDuration::seconds(1);
        assert!(r.presence(&stopped));
        assert!(!r.presence(&late), "an older presence changes nothing");
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Stopped, 0));
        let c = r.counts();
        assert_eq!((c.by_status.get(&WorkerStatus::Stopped), c.slots), (Some(&1), 0), "no live slots");
        // Still listed long after (no heartbeat expected from it), then forgotten.
        heard_ago(&r, std::time::Duration::from_secs(300));
        assert_eq!(status_of(&r, "w0").0, WorkerStatus::Stopped, "a stopped worker never turns silent");
        heard_ago(&r, FORGET_STOPPED_AFTER + std::time::Duration::from_secs(1));
        assert!(r.snapshot().workers.is_empty());
        // Started again under the same name: a new incarnation is running.
        r.presence(&presence("w0", WorkerState::Running, 0, Utc::now()));
        assert_eq!(status_of(&r, "w0"), (WorkerStatus::Idle, 0));
    }

    #[test]
    fn a_worker_not_heard_from_for_three_intervals_is_silent() {
        let r = Registry::default();
        r.presence(&presence("w0", WorkerState::Running, 1, Utc::now()));
        heard_ago(&r, std::time::Duration::from_secs(29));
        assert_eq!(status_of(&r, "w0").0, WorkerStatus::Busy, "two missed heartbeats are not yet silence");
        heard_ago(&r, std::time::Duration::from_secs(31));
        let (status, _) = status_of(&r, "w0");
        assert_eq!(status, WorkerStatus::Silent);
        assert_eq!(r.snapshot().workers[0].quiet_s, 31);
        let c = r.counts();
        assert_eq!(
            (c.by_status.get(&WorkerStatus::Silent), c.slots),
            (Some(&1), 0),
            "a silent worker's slots are not capacity"
        );
        // It speaks again: back to normal.
        r.presence(&presence("w0", WorkerState::Running, 0, Utc::now()));
        assert_eq!(status_of(&r, "w0").0, WorkerStatus::Idle);
        // Silent for an hour: forgotten like any worker.
        heard_ago(&r, FORGET_AFTER + std::time::Duration::from_secs(1));
        assert!(r.snapshot().workers.is_empty());
    }

    #[test]
    fn presence_names_count_against_the_cap_and_live_workers_sort_first() {
        let r = Registry::with_cap(3);
        let now = Utc::now();
        r.presence(&presence("b", WorkerState::Stopped, 0, now));
        r.presence(&presence("c", WorkerState::Running, 0, now));
        r.presence(&presence("a", WorkerState::Running, 1, now));
        let names: Vec<String> = r.snapshot().workers.into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["a", "c", "b"], "live by name, stopped last");
        r.presence(&presence("d", WorkerState::Running, 0, now));
        let names: Vec<String> = r.snapshot().workers.into_iter().map(|w| w.name).collect();
        assert_eq!(names, ["a", "c", "d"], "the longest unheard went first");
    }

    #[test]
    fn a_worker_lost_entry_then_a_new_attempt() {
        let r = Registry::default();
        let steps = [
            ("queued", None, 0),
            ("processing", Some("w0"), 1),
            ("retrying", Some("w0"), 1),
            ("processing", Some("w1"), 2),
            ("failed", Some("w1"), 2),
        ];
        r.observe(&record("k", &steps[..2], None));
        r.observe(&record("k", &steps, Some(("gave_up", "gave up"))));
        let s = r.snapshot();
        let w0 = s.workers.iter().find(|w| w.name == "w0").unwrap();
        assert_eq!(w0.unfinished, 1, "counted once for the retrying entry, not again for the move");
        assert_eq!(s.retries.len(), 2);
        assert_eq!(s.retries[0].from.as_deref(), Some("w0"));
        assert_eq!(s.failures.len(), 1);
        assert_eq!(s.failures[0].code, ErrorCode::GaveUp);
        assert_eq!(s.per_minute.last(), Some(&(0, 1)));
    }
}
