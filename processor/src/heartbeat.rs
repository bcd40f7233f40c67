//! Where the visibility heartbeat is: while a job runs, its message's visibility is extended
//! every third of the timeout, so a short timeout still covers long jobs and a killed
//! worker's job reappears within about one timeout.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use darkroom_core::queue::JobQueue;
use tokio::task::JoinHandle;

pub struct Heartbeat {
    lost: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    pub fn start(queue: Arc<dyn JobQueue>, receipt: String, visibility: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let notify = Arc::new(tokio::sync::Notify::new());
        let (flag, tell) = (lost.clone(), notify.clone());
        let period = (visibility / 3).max(Duration::from_millis(300));
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(e) = queue.change_visibility(&receipt, visibility).await {
                    tracing::warn!(error = %e, "could not extend the job's visibility; another worker may own it now");
                    flag.store(true, Ordering::SeqCst);
                    tell.notify_one();
                    return;
                }
                crate::metrics::get().visibility_extended();
                tracing::debug!(seconds = visibility.as_secs(), "extended visibility");
            }
        });
        Heartbeat { lost, notify, task }
    }

    /// Resolves when an extension fails: the job may belong to another worker now, so this
    /// one should stop working on it.
    pub async fn lost(&self) {
        if !self.is_lost() {
            self.notify.notified().await;
        }
    }

    /// Has an extension failed (so this worker may no longer own the job)?
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Stop extending. Returns true if the job was still ours the whole time.
    pub fn stop(self) -> bool {
        self.task.abort();
        !self.is_lost()
    }
}
