//! Posting status messages to the reply queue, retried through short outages.
//!
//! Every status carries the trace context of the job it is about: [`job::handle`](crate::job::handle)
//! runs each job inside [`traced`], and [`Reporter::send`] reads it from there, so no call site
//! has to pass it (and none can forget it).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use darkroom_core::queue::{JobQueue, QueueError};
use darkroom_protocol::lifecycle::{JobError, JobState};
use darkroom_protocol::message::{OutputInfo, StatusMessage};
use darkroom_protocol::trace::TraceParent;

tokio::task_local! {
    /// The trace context of the job the current task works on.
    static TRACE: TraceParent;
}

/// Run `work` (one job's handling) with `trace` as the trace context its statuses carry.
pub async fn traced<F: std::future::Future>(trace: TraceParent, work: F) -> F::Output {
    TRACE.scope(trace, work).await
}

#[derive(Clone)]
pub struct Reporter {
    pub replies: Arc<dyn JobQueue>,
    pub worker: String,
}

impl Reporter {
    pub async fn send(
        &self,
        job_id: &str,
        state: JobState,
        attempt: u32,
        outputs: Vec<OutputInfo>,
        error: Option<JobError>,
        note: Option<String>,
    ) -> Result<(), QueueError> {
        self.send_with_preview(job_id, state, attempt, outputs, None, error, note).await
    }

    /// [`Reporter::send`] with the job's preview (a `done` whose sandbox pass made one).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_with_preview(
        &self,
        job_id: &str,
        state: JobState,
        attempt: u32,
        outputs: Vec<OutputInfo>,
        preview: Option<OutputInfo>,
        error: Option<JobError>,
        note: Option<String>,
    ) -> Result<(), QueueError> {
        let msg = StatusMessage {
            job_id: job_id.to_string(),
            state,
            attempt,
            worker: self.worker.clone(),
            at: Utc::now(),
            outputs,
            preview,
            error,
            note,
            traceparent: TRACE.try_with(|t| *t).ok(),
        };
        let body = msg.to_json();
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            match self.replies.send(&body).await {
                Ok(_) => return Ok(()),
                Err(e) if e.is_transient() && tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "reply queue unavailable; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
