//! The dead-letter watcher: a job whose worker died on every attempt (crash, kill -9, OOM)
//! never gets a final status from a worker; the queue's redrive moves it to the dead-letter
//! queue instead. This watcher reads that queue and marks such jobs `failed` (code `gave_up`,
//! through the lifecycle's [`Event::GaveUp`](darkroom_protocol::lifecycle::Event::GaveUp)), so no
//! job stays `processing` forever.
//!
//! Messages stay in the dead-letter queue (hidden for 12 h after each read) so operators can
//! inspect and redrive them; marking a job failed twice is harmless.

use std::sync::Arc;
use std::time::Duration;

use darkroom_core::queue::JobQueue;
use darkroom_protocol::message::JobMessage;
use tokio::sync::watch;

use crate::jobs::{Applied, JobBook};

/// How long a dead letter stays hidden after the watcher has read it.
const HIDE: Duration = Duration::from_secs(12 * 3600);

pub async fn run(queue: Arc<dyn JobQueue>, book: Arc<JobBook>, max_receives: u32, shutdown: watch::Receiver<bool>) {
    let q = queue.clone();
    crate::consume::each_batch(queue, shutdown, |messages| {
        let (queue, book) = (q.clone(), book.clone());
        async move {
            for msg in messages {
                match JobMessage::from_json(&msg.body) {
                    Ok(job) => match book.give_up(&job.job_id, max_receives).await {
                        Ok(Applied::Changed) => {
                            let trace_id = job.traceparent.map(|t| tracing::field::display(t.trace_id()));
                            tracing::warn!(job_id = %job.job_id, trace_id, "job dead-lettered after {max_receives} attempts: marked failed")
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, job_id = %job.job_id, "could not mark a dead-lettered job failed; will retry");
                            continue;
                        }
                    },
                    Err(e) => tracing::warn!(
                        error = %e,
                        message_id = %msg.message_id,
                        "unreadable message in the dead-letter queue; left for operators"
                    ),
                }
                if let Err(e) = queue.change_visibility(&msg.receipt, HIDE).await {
                    tracing::debug!(error = %e, "could not hide a dead letter");
                }
            }
        }
    })
    .await
}
