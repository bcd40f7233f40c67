//! What a person (or an operator) can do to a job besides watching it: delete it with its
//! objects, put it back on the job queue, or cancel it while it waits in the queue. A child
//! module of [`crate::jobs`] so it writes through the book's conditional writes
//! ([`JobBook::modify`]), cache and broadcasts, like a status: a change made here on one
//! replica never overwrites a status another replica applied meanwhile.

use chrono::{DateTime, Utc};
use darkroom_core::fanout::ChangeNotice;
use darkroom_core::queue::{JobQueue, QueueError};
use darkroom_core::store::StoreError;
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::{Event, JobRecord, JobState, Outcome, Requeue};
use darkroom_protocol::message::JobMessage;
use darkroom_protocol::trace::TraceParent;

use super::{Change, JobBook};
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// Not final yet (delete), or done (a requeue: there is nothing to redo).
    #[error("the job is still {0}; wait until it is done or failed")]
    NotFinished(JobState),
    #[error("the job is {0} and can no longer be cancelled; only a queued job (or one waiting to be tried again) can")]
    NotCancellable(JobState),
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
        if !keys::is_valid_id(id) {
            return Ok(None);
        }
        // The stored record, not a cached copy: another replica may have queued it again.
        let Some(rec) = self.read(id).await? else {
            self.forget(id);
            return Ok(None);
        };
        if !rec.state.is_final() {
            return Err(ManageError::NotFinished(rec.state));
        }
        self.remove(&rec).await?;
        tracing::info!(job_id = %rec.id, "job deleted with its objects");
        Ok(Some(rec))
    }

    /// Delete job `id` if, as stored now, it is [`JobRecord::is_expired`] at `cutoff`
    /// (final, and last changed before `cutoff`): the retention sweeper's delete. The record is
    /// read again here, not taken from the sweeper's listing, so a job put back on the queue
    /// meanwhile is kept. `Ok(None)` when it is gone or not expired; else how many keys went.
    pub async fn delete_expired(&self, id: &str, cutoff: DateTime<Utc>) -> Result<Option<usize>, ManageError> {
        if !keys::is_valid_id(id) {
            return Ok(None);
        }
        let Some(rec) = self.read(id).await? else {
            self.forget(id);
            return Ok(None);
        };
        if !rec.is_expired(cutoff) {
            return Ok(None);
        }
        let removed = self.remove(&rec).await?;
        tracing::debug!(job_id = %rec.id, keys = removed, "expired job deleted with its objects");
        Ok(Some(removed))
    }

    /// Remove every object of a final job, tell the other replicas, and return how many keys
    /// were deleted (a key already missing counts too: deletes tolerate it, so two sweepers or
    /// a sweeper and the owner may meet here). The gallery entry first (the job disappears at
    /// once), the record last (a failure half-way leaves a record, so the delete can be tried
    /// again).
    async fn remove(&self, rec: &JobRecord) -> Result<usize, StoreError> {
        self.store.delete(&keys::owner_index(&rec.owner, &rec.id)).await?;
        let mut keys_to_go: Vec<String> = rec.outputs.iter().map(|o| o.key.clone()).collect();
        // The listing catches the preview, the manifest and outputs of an earlier attempt.
        keys_to_go.extend(self.store.list(&keys::outputs_of(&rec.id)).await?);
        keys_to_go.sort();
        keys_to_go.dedup();
        let mut removed = 1; // the owner index entry
        for key in keys_to_go {
            self.store.delete(&key).await?;
            removed += 1;
        }
        self.store.delete(&rec.original_key).await?;
        removed += 1;
        // Also for a job that is not cancelled: a cancel that lost its race leaves its marker.
        self.store.delete(&keys::cancel_marker(&rec.id)).await?;
        removed += 1;
        self.store.delete(&keys::job_record(&rec.id)).await?;
        removed += 1;
        self.forget(&rec.id);
        let _ = self.notices.send(ChangeNotice::JobDeleted {
            job_id: rec.id.clone(),
            owner: rec.owner.clone(),
            from: String::new(),
        });
        Ok(removed)
    }

    /// Put a job back on the job queue: the record goes back to `queued` through the
    /// lifecycle ([`Event::Requeue`]: attempts start over, old outputs and error cleared, a
    /// timeline entry says who asked), then the job message, rebuilt from the record, is sent.
    /// Refused for a job that is done. `Ok(None)` when there is no such job. If the message
    /// cannot be sent the record is restored. The message carries `trace`, the trace context
    /// of the request that asked (a new run is followed by its own trace id, not the original
    /// upload's).
    pub async fn requeue(
        &self,
        id: &str,
        queue: &dyn JobQueue,
        by: Requeue,
        trace: Option<TraceParent>,
    ) -> Result<Option<JobRecord>, ManageError> {
        if !keys::is_valid_id(id) {
            return Ok(None);
        }
        let now = Utc::now();
        // Record first: a status of the new run must find the job queued, not final.
        let changed = self
            .modify(id, |rec| {
                let previous = rec.clone();
                match rec.apply(Event::Requeue { by, at: now }) {
                    Outcome::Changed => Change::Write(Ok(previous)),
                    Outcome::Refused(state) => Change::Keep(Err(state)),
                    Outcome::Unchanged => Change::Keep(Err(rec.state)),
                }
            })
            .await?;
        let (rec, previous) = match changed {
            None => return Ok(None),
            Some((_, Err(state))) => return Err(ManageError::NotFinished(state)),
            Some((rec, Ok(previous))) => (rec, previous),
        };
        // A cancelled job put back on the queue must not be skipped by the worker.
        if previous.state == JobState::Cancelled {
            self.store.delete(&keys::cancel_marker(id)).await?;
        }
        let message = JobMessage {
            job_id: rec.id.clone(),
            original_key: rec.original_key.clone(),
            outputs: rec.requested.clone(),
            submitted_at: now,
            traceparent: trace,
        };
        if let Err(e) = queue.send(&message.to_json()).await {
            self.undo_requeue(id, now, &previous).await?;
            return Err(e.into());
        }
        tracing::info!(job_id = %rec.id, by = ?by, "job queued again");
        Ok(Some(rec))
    }

    /// The job message of a requeue at `at` could not be sent: put the record back as it was
    /// (`previous`), unless something changed it since. Not a transition: the requeue never
    /// happened.
    async fn undo_requeue(&self, id: &str, at: DateTime<Utc>, previous: &JobRecord) -> Result<(), StoreError> {
        self.modify(id, |r| {
            if r.state == JobState::Queued && r.updated_at == at {
                *r = previous.clone();
                Change::Write(())
            } else {
                Change::Keep(())
            }
        })
        .await?;
        Ok(())
    }

    /// Cancel a job that waits in the queue (`queued`, or `retrying` until its next delivery):
    /// one read-apply-save of its record. The web app cannot delete a queue message it did not
    /// receive, so the cancel marker ([`keys::cancel_marker`]) is written first: the worker
    /// that receives the job finds it before reading the original, posts `cancelled` and
    /// deletes the message, and nothing is rendered. Then the record becomes `cancelled`
    /// through the lifecycle ([`Event::Cancel`]; final: later statuses of the job change
    /// nothing). Cancelling a cancelled job returns it as it is. `Ok(None)` when there is no
    /// such job; a job a worker has started (`processing`), or a finished one, is refused.
    pub async fn cancel(&self, id: &str) -> Result<Option<JobRecord>, ManageError> {
        if !keys::is_valid_id(id) {
            return Ok(None);
        }
        let Some(rec) = self.get(id).await? else {
            return Ok(None);
        };
        match rec.state {
            JobState::Cancelled => return Ok(Some(rec)),
            s if s.is_cancellable() => {}
            other => return Err(ManageError::NotCancellable(other)),
        }
        let at = Utc::now();
        self.store.put(&keys::cancel_marker(id), bytes::Bytes::from(at.to_rfc3339()), "text/plain").await?;
        // The record, by a conditional write: a worker's status applied meanwhile (by any
        // replica) is seen, and a job that started in between is not cancelled.
        match self.transition(id, Event::Cancel { at }).await? {
            None => Ok(None),
            Some((_, Outcome::Refused(other))) => {
                // Started (or finished) between the read and the write: the marker is moot.
                let _ = self.store.delete(&keys::cancel_marker(id)).await;
                Err(ManageError::NotCancellable(other))
            }
            Some((rec, _)) => {
                tracing::info!(job_id = %rec.id, "job cancelled");
                Ok(Some(rec))
            }
        }
    }

    /// Every job record in the store (for operators: finds the jobs the queue gave up on).
    pub async fn all_records(&self) -> Result<Vec<JobRecord>, StoreError> {
        let mut out = Vec::new();
        for key in self.store.list(keys::JOBS_PREFIX).await? {
            let Some(id) = keys::job_id_of_record(&key) else {
                continue;
            };
            if let Some(rec) = self.get(id).await? {
                out.push(rec);
            }
        }
        Ok(out)
    }
}

/// What a refused change answers over the API.
impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NotFinished(state) => ApiError::NotFinished(state.as_str()),
            ManageError::NotCancellable(state) => ApiError::NotCancellable(state.as_str()),
            ManageError::Store(e) => ApiError::Store(e),
            ManageError::Queue(e) => ApiError::Queue(e),
        }
    }
}
