//! What a person (or an operator) can do to a job besides watching it: delete it with its
//! objects, or put it back on the job queue. A child module of [`crate::jobs`] so it writes
//! through the book's own lock, cache and broadcast.

use chrono::Utc;
use darkroom_core::keys;
use darkroom_core::message::{JobMessage, JobState};
use darkroom_core::queue::{JobQueue, QueueError};
use darkroom_core::store::StoreError;
use darkroom_core::trace::TraceParent;

use super::{JobBook, JobRecord, TimelineEntry};

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("the job is still {0}; wait until it is done or failed")]
    NotFinished(&'static str),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl JobBook {
    /// Delete a finished job: its outputs, its original, its owner index entry and its record.
    /// `Ok(None)` when there is no such job. A job still queued or processing is refused: a
    /// worker would write its outputs after the delete and leave them behind.
    pub async fn delete_job(&self, id: &str) -> Result<Option<JobRecord>, ManageError> {
        let _w = self.writes.lock().await;
        let Some(rec) = self.get(id).await? else {
            return Ok(None);
        };
        if !rec.state.is_final() {
            return Err(ManageError::NotFinished(rec.state.as_str()));
        }
        // The gallery entry first (the job disappears at once), the record last (a failure
        // half-way leaves a record, so the delete can be tried again).
        self.store.delete(&keys::owner_index(&rec.owner, &rec.id)).await?;
        let mut keys_to_go: Vec<String> = rec.outputs.iter().map(|o| o.key.clone()).collect();
        keys_to_go.extend(self.store.list(&format!("outputs/{}/", rec.id)).await?);
        keys_to_go.sort();
        keys_to_go.dedup();
        for key in keys_to_go {
            self.store.delete(&key).await?;
        }
        self.store.delete(&rec.original_key).await?;
        self.store.delete(&keys::job_record(&rec.id)).await?;
        self.forget(&rec.id);
        tracing::info!(job_id = %rec.id, "job deleted with its objects");
        Ok(Some(rec))
    }

    /// Put a job back on the job queue: the record goes back to `queued` (attempts start over,
    /// old outputs and error cleared) with a timeline entry saying why, then the job message,
    /// rebuilt from the record, is sent. Refused for a job that is done. `Ok(None)` when there
    /// is no such job. If the message cannot be sent the record is restored. The message carries
    /// `trace`, the trace context of the request that asked (a new run is followed by its own
    /// trace id, not the original upload's).
    pub async fn requeue(
        &self,
        id: &str,
        queue: &dyn JobQueue,
        note: &str,
        trace: Option<TraceParent>,
    ) -> Result<Option<JobRecord>, ManageError> {
        let _w = self.writes.lock().await;
        let Some(previous) = self.get(id).await? else {
            return Ok(None);
        };
        if previous.state == JobState::Done {
            return Err(ManageError::NotFinished("done"));
        }
        let now = Utc::now();
        let mut rec = previous.clone();
        rec.state = JobState::Queued;
        rec.attempts = 0;
        rec.worker = None;
        rec.error = None;
        rec.outputs.clear();
        rec.preview = None;
        rec.updated_at = now;
        rec.timeline.push(TimelineEntry {
            at: now,
            state: JobState::Queued,
            worker: None,
            attempt: 0,
            note: Some(note.to_string()),
        });
        // Record first: a status of the new run must find the job queued, not final.
        self.save(&rec).await?;
        let message = JobMessage {
            job_id: rec.id.clone(),
            original_key: rec.original_key.clone(),
            outputs: rec.requested.clone(),
            submitted_at: now,
            traceparent: trace,
        };
        if let Err(e) = queue.send(&message.to_json()).await {
            self.save(&previous).await?;
            return Err(e.into());
        }
        tracing::info!(job_id = %rec.id, note, "job queued again");
        Ok(Some(rec))
    }

    /// Every job record in the store (for operators: finds the jobs the queue gave up on).
    pub async fn all_records(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        for key in self.store.list("jobs/").await? {
            let Some(id) = key.strip_prefix("jobs/").and_then(|k| k.strip_suffix(".json")) else {
                continue;
            };
            if let Some(rec) = self.get(id).await? {
                out.push(rec);
            }
        }
        Ok(out)
    }
}
