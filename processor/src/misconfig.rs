//! What a processor does about configuration errors (a missing bucket or queue, a missing
//! permission, refused or absent credentials; [`darkroom_core::misconfig`]).
//!
//! A misconfigured processor among good ones must not burn every job: a configuration error
//! is not retried as transient until `gave_up`, and it does not fail the job either (another
//! processor may be configured right). The processor keeps the job and tries the failed step
//! again after a short pause ([`Guard::pause`]); once [`LIMIT`] configuration errors in a row
//! fall within [`WINDOW`], with no job finished cleanly in between, the [`Guard`] trips: the
//! processor gives its jobs back to the queue at once (each has used one delivery only) and
//! exits with status 78 and one line saying what is wrong and what to do. Only a job on its
//! last delivery is failed, with code `configuration` and that line, instead of going to the
//! dead-letter queue as `gave_up`. While its last step failed that way ([`Guard::suspect`]), a
//! processor takes no more jobs than the one it tries with (no prefetch, no other slot), so a
//! misconfigured processor holds one job at a time, not all it has room for.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use darkroom_core::misconfig::Misconfiguration;
use tokio::sync::watch;

/// Configuration errors in a row that stop the processor.
pub const LIMIT: usize = 3;
/// ... when they all fall within this time.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Counts configuration errors in a row and trips after [`LIMIT`] within [`WINDOW`].
pub struct Guard {
    recent: Mutex<VecDeque<Instant>>,
    tripped: watch::Sender<Option<Misconfiguration>>,
    /// Told whenever the count in a row changes.
    changed: tokio::sync::Notify,
}

impl Default for Guard {
    fn default() -> Self {
        Guard { recent: Mutex::new(VecDeque::new()), tripped: watch::channel(None).0, changed: Default::default() }
    }
}

impl Guard {
    /// Count one configuration error; true when this one trips the guard (or it had tripped).
    pub fn record(&self, error: &Misconfiguration) -> bool {
        if self.tripped().is_some() {
            return true;
        }
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap();
        recent.push_back(now);
        while recent.front().is_some_and(|t| now.duration_since(*t) > WINDOW) {
            recent.pop_front();
        }
        let count = recent.len();
        self.changed.notify_waiters();
        tracing::warn!(error = %error, count, limit = LIMIT, "configuration error");
        if count >= LIMIT {
            drop(recent);
            self.tripped.send_replace(Some(error.clone()));
            true
        } else {
            false
        }
    }

    /// A job went through without one: the errors so far were not "in a row".
    pub fn ok(&self) {
        if self.tripped().is_none() {
            self.recent.lock().unwrap().clear();
            self.changed.notify_waiters();
        }
    }

    /// Is the last configuration error not yet followed by a clean job (within [`WINDOW`])?
    pub fn suspect(&self) -> bool {
        let recent = self.recent.lock().unwrap();
        recent.back().is_some_and(|t| t.elapsed() <= WINDOW)
    }

    /// Wait until the count in a row changes (an error, a clean job) or [`WINDOW`] passes.
    pub async fn changed(&self) {
        let _ = tokio::time::timeout(WINDOW, self.changed.notified()).await;
    }

    /// The error that tripped the guard, once it has.
    pub fn tripped(&self) -> Option<Misconfiguration> {
        self.tripped.borrow().clone()
    }

    /// Wait until the guard trips; returns the error that tripped it.
    pub async fn wait_tripped(&self) -> Misconfiguration {
        let mut rx = self.tripped.subscribe();
        let tripped = rx.wait_for(|t| t.is_some()).await.expect("the sender lives in self");
        tripped.clone().expect("waited for Some")
    }

    /// Wait before trying a step again after its `n`th configuration error (2 s, 4 s, …),
    /// or until the guard trips; false when it tripped (stop trying).
    pub async fn pause(&self, n: u32) -> bool {
        let wait = Duration::from_secs(2u64.saturating_pow(n.clamp(1, 5)));
        tokio::select! {
            _ = tokio::time::sleep(wait) => self.tripped().is_none(),
            _ = self.wait_tripped() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use darkroom_core::misconfig::{Problem, Resource};

    use super::*;

    fn bucket() -> Misconfiguration {
        Misconfiguration::new(Resource::Bucket("nope".into()), Problem::Missing, "NoSuchBucket")
    }

    #[test]
    fn trips_after_three_in_a_row_not_when_a_job_went_through_between() {
        let guard = Guard::default();
        assert!(!guard.suspect());
        assert!(!guard.record(&bucket()));
        assert!(guard.suspect(), "one error: suspect until a job goes through");
        assert!(!guard.record(&bucket()));
        guard.ok();
        assert!(!guard.suspect());
        assert!(!guard.record(&bucket()));
        assert!(!guard.record(&bucket()));
        assert!(guard.tripped().is_none());
        assert!(guard.record(&bucket()));
        assert_eq!(guard.tripped(), Some(bucket()));
        guard.ok();
        assert!(guard.tripped().is_some(), "a tripped guard stays tripped");
    }
}
