//! Worker presence: this processor tells the reply queue that it runs, so the web app's ops
//! page lists it as soon as it starts, idle or busy, and notices when it stops or goes silent.
//! Not to be confused with [`crate::heartbeat`], which keeps one job's message hidden.
//!
//! A [`PresenceMessage`] goes out when the processor has connected, every
//! `DARKROOM_WORKER_HEARTBEAT` seconds while it runs (state `running`, or `stopping` while it
//! drains after SIGTERM, with its busy slots), and once more as `stopped` after the drain.
//! Sending is best effort: one try with a time limit, a failure logged; the next one comes a
//! period later, and a web app that misses several shows the worker as silent.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use darkroom_core::queue::JobQueue;
use darkroom_protocol::message::{PresenceMessage, WorkerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest one presence may take to send (a queue outage must not hold up the drain).
const SEND_LIMIT: Duration = Duration::from_secs(5);

/// Reads how many slots are busy now.
pub type BusyCount = Arc<dyn Fn() -> usize + Send + Sync>;

/// Who this worker is and how to count its busy slots.
pub struct Presence {
    replies: Arc<dyn JobQueue>,
    worker: String,
    host: String,
    slots: usize,
    /// Slots working on a job now (the receive loop holds free slots while it long-polls, so
    /// they are counted by the jobs, not by the semaphore).
    busy: BusyCount,
    started_at: DateTime<Utc>,
    interval: Duration,
}

/// The periodic sender; [`Announcer::stopping`] and [`Announcer::stopped`] end it.
pub struct Announcer {
    presence: Arc<Presence>,
    state: watch::Sender<WorkerState>,
    task: Option<JoinHandle<()>>,
}

impl Presence {
    pub fn new(
        replies: Arc<dyn JobQueue>,
        worker: String,
        slots: usize,
        busy: BusyCount,
        interval: Duration,
    ) -> Presence {
        Presence {
            replies,
            worker,
            host: darkroom_core::worker_id::host_name(),
            slots,
            busy,
            started_at: Utc::now(),
            interval,
        }
    }

    /// The message for `state` now.
    pub fn message(&self, state: WorkerState) -> PresenceMessage {
        let busy = (self.busy)().min(self.slots);
        PresenceMessage {
            worker: self.worker.clone(),
            state,
            host: self.host.clone(),
            pid: std::process::id(),
            slots: self.slots as u32,
            busy: busy as u32,
            started_at: self.started_at,
            sent_at: Utc::now(),
            interval_s: if state == WorkerState::Stopped { 0 } else { self.interval.as_secs() as u32 },
            processor_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    async fn send(&self, state: WorkerState) {
        let msg = self.message(state);
        match tokio::time::timeout(SEND_LIMIT, self.replies.send(&msg.to_json())).await {
            Ok(Ok(_)) => tracing::debug!(state = state.as_str(), busy = msg.busy, "presence sent"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, state = state.as_str(), "could not send this worker's presence to the reply queue; the ops page may show it as silent")
            }
            Err(_) => tracing::warn!(state = state.as_str(), "sending this worker's presence took over 5 s; skipped"),
        }
    }

    /// Start announcing: one presence now, then one every interval. An interval of zero
    /// (`DARKROOM_WORKER_HEARTBEAT=0`) sends nothing at all, `stopped` included.
    pub fn start(self) -> Announcer {
        let presence = Arc::new(self);
        let (state, mut rx) = watch::channel(WorkerState::Running);
        let task = (!presence.interval.is_zero()).then(|| {
            let p = presence.clone();
            tokio::spawn(async move {
                loop {
                    let state = *rx.borrow_and_update();
                    p.send(state).await;
                    tokio::select! {
                        _ = tokio::time::sleep(p.interval) => {}
                        changed = rx.changed() => if changed.is_err() { return },
                    }
                }
            })
        });
        Announcer { presence, state, task }
    }
}

impl Announcer {
    /// Shutdown began: say so at once (with the jobs still running), then every interval.
    pub fn stopping(&self) {
        let _ = self.state.send(WorkerState::Stopping);
    }

    /// Drained: stop the periodic sender and send the last presence, `stopped`.
    pub async fn stopped(mut self) {
        let Some(task) = self.task.take() else { return };
        task.abort();
        let _ = task.await;
        self.presence.send(WorkerState::Stopped).await;
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkroom_core::queue::embedded::{EmbeddedDb, QueueSettings};

    fn queue(name: &str) -> Arc<dyn JobQueue> {
        let dir = std::env::temp_dir().join(format!("darkroom-presence-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let settings = QueueSettings { visibility: Duration::from_secs(30), redrive: None };
        Arc::new(EmbeddedDb::open(&dir).unwrap().ensure("replies", &settings).unwrap())
    }

    #[tokio::test]
    async fn an_interval_of_zero_sends_nothing_at_all() {
        let q = queue("off");
        let announcer = Presence::new(q.clone(), "w-0".into(), 2, Arc::new(|| 0), Duration::ZERO).start();
        announcer.stopping();
        announcer.stopped().await;
        assert!(q.receive(10, Duration::from_millis(300)).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn announces_at_start_every_interval_while_stopping_and_when_stopped() {
        let q = queue("on");
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(1));
        let count = running.clone();
        let busy: BusyCount = Arc::new(move || count.load(std::sync::atomic::Ordering::SeqCst));
        let announcer = Presence::new(q.clone(), "w-1".into(), 3, busy, Duration::from_millis(200)).start();
        let mut got = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while got.len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "{got:?}");
            for m in q.receive(10, Duration::from_millis(500)).await.unwrap() {
                q.delete(&m.receipt).await.unwrap();
                got.push(PresenceMessage::from_json(&m.body).unwrap());
            }
        }
        assert!(got.iter().all(|p| p.state == WorkerState::Running && p.slots == 3 && p.busy == 1), "{got:?}");
        assert_eq!(got[0].worker, "w-1");
        assert_eq!(got[0].started_at, got[1].started_at, "one start, announced again");
        assert!(got[0].sent_at < got[1].sent_at, "{got:?}");
        running.store(0, std::sync::atomic::Ordering::SeqCst);
        announcer.stopping();
        announcer.stopped().await;
        let mut rest = Vec::new();
        for m in q.receive(10, Duration::from_millis(500)).await.unwrap() {
            rest.push(PresenceMessage::from_json(&m.body).unwrap());
        }
        let last = rest.iter().max_by_key(|p| p.sent_at).expect("a last presence");
        assert_eq!((last.state, last.busy, last.interval_s), (WorkerState::Stopped, 0, 0), "{rest:?}");
    }
}
