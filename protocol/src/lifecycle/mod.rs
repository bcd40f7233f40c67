//! The job lifecycle, in one place: the states a job goes through ([`JobState`]), why one
//! failed ([`ErrorCode`], [`JobError`]), what its timeline says ([`TimelineEntry`], [`Note`]),
//! the record the web app keeps of it ([`JobRecord`]), and the one transition function that
//! changes that record ([`JobRecord::apply`] with an [`Event`]).
//!
//! Every state change anyone makes goes through [`JobRecord::apply`]: a worker's status from
//! the reply queue, the queue giving up on a job (its dead-letter queue), a job put back on the
//! job queue (by its owner or an operator), and a cancel by its owner. The web app's job book
//! stores the record (`web/src/jobs.rs`); the processor builds the statuses and errors.
//!
//! Rules, since statuses come from a shared queue that may deliver twice and out of order:
//! - a final state ([`JobState::is_final`]) stays final: no status changes it;
//! - within one attempt the order is processing → retrying → done/failed, and a status of an
//!   older attempt changes nothing, except a final one (a slow worker may still finish) and a
//!   late `retrying`, which goes into the timeline at its place ([`Note::WorkerLost`] guess
//!   replaced);
//! - a new attempt that starts while the last one was still `processing` means that attempt's
//!   worker was lost (killed, crashed or cut off): a [`Note::WorkerLost`] entry says so;
//! - nothing in a status is trusted as it is: a `done` must report exactly the requested
//!   outputs at their derived keys, text is cut to a bounded length, and a timeline stops
//!   growing at [`MAX_TIMELINE`] entries (final statuses still apply).
//!
//! The stored record's JSON and the API's are what they were before these types existed:
//! states and error codes are snake_case strings, notes are text ([`Note`] reads every text
//! note an older web app or processor wrote into the variant that wrote it).

use crate::output::OutputSpec;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::message::{OutputInfo, StatusMessage};

pub mod note;
pub mod state;

pub use note::{Note, Requeue};
pub use state::{ErrorCode, JobError, JobState, UnknownCode};

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
    pub note: Option<Note>,
}

impl TimelineEntry {
    /// The first entry of a new job.
    pub fn queued(at: DateTime<Utc>) -> Self {
        TimelineEntry { at, state: JobState::Queued, worker: None, attempt: 0, note: None }
    }

    /// Whether this is the web app's guess that a worker vanished mid-attempt.
    pub fn is_worker_lost(&self) -> bool {
        self.note.as_ref().is_some_and(Note::is_worker_lost)
    }
}

/// Most entries a job's timeline keeps (a job that keeps crashing goes to the dead-letter
/// queue after a few attempts; only a flood of forged statuses gets near this).
pub const MAX_TIMELINE: usize = 200;

/// Who is named as the worker of a job the queue gave up on.
pub const DEAD_LETTER_WORKER: &str = "dead-letter queue";

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

/// Something that may change a job's record: the input of [`JobRecord::apply`].
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A worker's status from the reply queue.
    Status(&'a StatusMessage),
    /// The queue moved the job to its dead-letter queue after `attempts` deliveries without a
    /// final status (every worker that had it crashed or was killed).
    GaveUp { attempts: u32, at: DateTime<Utc> },
    /// Put the job back on the job queue (the caller then sends its message). Refused for a
    /// job that is done.
    Requeue { by: Requeue, at: DateTime<Utc> },
    /// Its owner cancels the job while it waits in the queue. Refused once a worker started.
    Cancel { at: DateTime<Utc> },
}

/// What [`JobRecord::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The record changed: store it.
    Changed,
    /// Nothing to do: a duplicate, a stale status, a job already in that state.
    Unchanged,
    /// Not allowed for a job in this state.
    Refused(JobState),
}

impl Outcome {
    pub fn changed(self) -> bool {
        self == Outcome::Changed
    }
}

impl JobRecord {
    /// Is this job past a retention whose cutoff is `cutoff` (now − retention)? Only a final job
    /// (done, failed, cancelled) whose last change is older than the cutoff: a queued or
    /// processing job is never swept, however old.
    pub fn is_expired(&self, cutoff: DateTime<Utc>) -> bool {
        self.state.is_final() && self.updated_at < cutoff
    }

    /// THE transition function: every change of a job's state goes through here (see the
    /// module's rules).
    pub fn apply(&mut self, event: Event<'_>) -> Outcome {
        match event {
            Event::Status(s) => self.status(s),
            Event::GaveUp { attempts, at } => self.status(&gave_up(&self.id, attempts, at)),
            Event::Requeue { by, at } => self.requeue(by, at),
            Event::Cancel { at } => self.cancel(at),
        }
    }

    /// Whether the queue gave up on this job (failed with [`ErrorCode::GaveUp`]): what an
    /// operator's redrive queues again.
    pub fn was_given_up(&self) -> bool {
        self.state == JobState::Failed && self.error.as_ref().is_some_and(|e| e.code == ErrorCode::GaveUp)
    }

    fn status(&mut self, s: &StatusMessage) -> Outcome {
        let Some(s) = self.admit(s) else { return Outcome::Unchanged };
        if !s.state.is_final() && self.is_stale(&s) {
            return self.late_retry(&s);
        }
        if self.state == JobState::Processing && s.attempt > self.attempts {
            self.guess_lost(s.at);
        }
        self.take_result(&s);
        self.attempts = self.attempts.max(s.attempt);
        self.worker = Some(s.worker.clone());
        self.updated_at = Utc::now();
        self.timeline.push(TimelineEntry {
            at: s.at,
            state: s.state,
            worker: Some(s.worker.clone()),
            attempt: s.attempt,
            note: note_of(&s),
        });
        Outcome::Changed
    }

    /// The status, bounded, if it may apply at all: not to a final job, not `queued` (the web
    /// app's own), a `done` only with this job's outputs, and room in the timeline (one status
    /// adds at most two entries: a "worker lost" guess and its own).
    fn admit(&self, s: &StatusMessage) -> Option<StatusMessage> {
        if self.state.is_final() || s.state == JobState::Queued {
            return None;
        }
        let s = s.clone().bounded();
        if s.state == JobState::Done {
            if let Err(why) = s.check_outputs(&self.requested) {
                tracing::warn!(job_id = %self.id, worker = %s.worker, %why, "ignored a `done` whose outputs are not this job's");
                return None;
            }
        }
        if !s.state.is_final() && self.timeline.len() + 2 > MAX_TIMELINE {
            return None;
        }
        Some(s)
    }

    /// A non-final status that arrives after a newer one of its job: an older attempt, a
    /// status after the attempt's `retrying`, or the same `processing` twice.
    fn is_stale(&self, s: &StatusMessage) -> bool {
        let same_attempt = s.attempt == self.attempts;
        s.attempt < self.attempts
            || (same_attempt && self.state == JobState::Retrying)
            || (same_attempt
                && s.state == JobState::Processing
                && self.state == JobState::Processing
                && self.worker.as_deref() == Some(&s.worker))
    }

    /// A new attempt began while the last one was `processing`: its worker was lost.
    fn guess_lost(&mut self, at: DateTime<Utc>) {
        let worker = self.worker.clone().unwrap_or_else(|| "a worker".into());
        self.timeline.push(TimelineEntry {
            at,
            state: JobState::Retrying,
            worker: Some(worker.clone()),
            attempt: self.attempts,
            note: Some(Note::WorkerLost { worker, attempt: self.attempts }),
        });
    }

    /// The state, outputs and error the (admitted, not stale) status `s` brings.
    fn take_result(&mut self, s: &StatusMessage) {
        self.state = s.state;
        match s.state {
            JobState::Queued | JobState::Processing | JobState::Retrying => {}
            JobState::Done => {
                self.outputs = s.outputs.clone();
                self.preview = s.checked_preview().cloned();
                self.error = None;
            }
            JobState::Failed => {
                self.error = s
                    .error
                    .clone()
                    .or_else(|| Some(JobError::new(ErrorCode::Unexplained, "The job failed without a reason.")));
            }
            // A worker found the job's cancel marker (the web app's own record says so first,
            // unless writing it failed after the marker was written).
            JobState::Cancelled => {
                self.outputs.clear();
                self.error = None;
            }
        }
    }

    /// A `retrying` that arrives after the next attempt began (the reply queue does not keep
    /// order) still belongs in the timeline: it replaces the "worker lost" guess for its
    /// attempt, or goes in at its time.
    fn late_retry(&mut self, s: &StatusMessage) -> Outcome {
        let known = self.timeline.iter().any(|t| {
            t.state == JobState::Retrying
                && t.attempt == s.attempt
                && t.worker.as_deref() == Some(&s.worker)
                && !t.is_worker_lost()
        });
        if s.state != JobState::Retrying || known {
            return Outcome::Unchanged;
        }
        let entry = TimelineEntry {
            at: s.at,
            state: JobState::Retrying,
            worker: Some(s.worker.clone()),
            attempt: s.attempt,
            note: note_of(s),
        };
        match self.timeline.iter().position(|t| t.is_worker_lost() && t.attempt == s.attempt) {
            Some(i) => self.timeline[i] = entry,
            None => {
                let i = self.timeline.iter().position(|t| t.at > s.at).unwrap_or(self.timeline.len());
                self.timeline.insert(i, entry);
            }
        }
        self.updated_at = Utc::now();
        Outcome::Changed
    }

    /// Back to `queued`: attempts start over, old outputs and error cleared, a timeline entry
    /// says who asked.
    fn requeue(&mut self, by: Requeue, at: DateTime<Utc>) -> Outcome {
        if self.state == JobState::Done {
            return Outcome::Refused(JobState::Done);
        }
        self.state = JobState::Queued;
        self.attempts = 0;
        self.worker = None;
        self.error = None;
        self.outputs.clear();
        self.preview = None;
        self.updated_at = at;
        self.timeline.push(TimelineEntry {
            at,
            state: JobState::Queued,
            worker: None,
            attempt: 0,
            note: Some(Note::Requeued(by)),
        });
        Outcome::Changed
    }

    /// `cancelled` (final) for a job that waits; a cancelled job stays as it is.
    fn cancel(&mut self, at: DateTime<Utc>) -> Outcome {
        match self.state {
            JobState::Cancelled => Outcome::Unchanged,
            s if s.is_cancellable() => {
                self.state = JobState::Cancelled;
                self.updated_at = at;
                self.timeline.push(TimelineEntry {
                    at,
                    state: JobState::Cancelled,
                    worker: None,
                    attempt: self.attempts,
                    note: Some(Note::Cancelled),
                });
                Outcome::Changed
            }
            other => Outcome::Refused(other),
        }
    }
}

/// The timeline's words for a status: its note, else its error's message.
fn note_of(s: &StatusMessage) -> Option<Note> {
    let text = s.note.as_deref().or(s.error.as_ref().map(|e| e.message.as_str()))?;
    Some(Note::parse(text))
}

/// The final status of a job the queue gave up on after `attempts` deliveries.
fn gave_up(job_id: &str, attempts: u32, at: DateTime<Utc>) -> StatusMessage {
    StatusMessage {
        job_id: job_id.to_string(),
        state: JobState::Failed,
        attempt: attempts,
        worker: DEAD_LETTER_WORKER.into(),
        at,
        outputs: vec![],
        preview: None,
        error: Some(JobError::new(
            ErrorCode::GaveUp,
            format!(
                "Processing stopped {attempts} times without finishing (the worker crashed or was killed); gave up. Try a smaller photo or another recipe."
            ),
        )),
        note: Some(Note::GaveUp { attempts }.to_string()),
        traceparent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys;
    use crate::output::Format;

    /// A queued job `j` with no requested outputs.
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
            timeline: vec![TimelineEntry::queued(Utc::now())],
        }
    }

    fn in_state(state: JobState, attempts: u32, worker: &str) -> JobRecord {
        JobRecord { state, attempts, worker: Some(worker.into()), ..record() }
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

    fn apply(r: &mut JobRecord, s: &StatusMessage) -> bool {
        r.apply(Event::Status(s)).changed()
    }

    fn requested(name: &str) -> OutputSpec {
        OutputSpec::new(name, vec![], Format::Png)
    }

    fn done_with(key: &str, name: &str) -> StatusMessage {
        StatusMessage {
            outputs: vec![OutputInfo {
                name: name.into(),
                key: key.into(),
                format: Format::Png,
                width: 1,
                height: 1,
                bytes: 1,
            }],
            ..status(JobState::Done, 1, "w1")
        }
    }

    fn states(r: &JobRecord) -> Vec<JobState> {
        r.timeline.iter().map(|t| t.state).collect()
    }

    use JobState::{Cancelled, Done, Failed, Processing, Queued, Retrying};

    /// Every state a record can be in × every state a status of the same worker can carry, on
    /// the attempt the record is at (`1`) and the next (`2`): what the record becomes.
    #[test]
    fn every_state_times_every_status() {
        // (record state, status state, status attempt) → state after, changed?
        let expect = |from: JobState, to: JobState, attempt: u32| -> (JobState, bool) {
            if from.is_final() || to == Queued {
                return (from, false);
            }
            let stale = (attempt == 1 && from == Retrying) || (attempt == 1 && from == Processing && to == Processing);
            if stale && !to.is_final() {
                // A late status; a `retrying` of an attempt already retried is a duplicate.
                return (from, false);
            }
            (to, true)
        };
        for from in JobState::ALL {
            for to in JobState::ALL {
                for attempt in [1, 2] {
                    let mut r = in_state(from, 1, "w");
                    if from == Retrying {
                        // The record's own entry for that retry, so a second one is a duplicate.
                        let retried = TimelineEntry {
                            state: Retrying,
                            worker: Some("w".into()),
                            attempt: 1,
                            note: None,
                            at: Utc::now(),
                        };
                        r.timeline.push(retried);
                    }
                    let changed = apply(&mut r, &status(to, attempt, "w"));
                    assert_eq!((r.state, changed), expect(from, to, attempt), "{from} + {to} (attempt {attempt})");
                }
            }
        }
    }

    #[test]
    fn final_states_stay_final() {
        for fin in [Done, Failed, Cancelled] {
            let mut r = in_state(fin, 1, "w1");
            let before = r.clone();
            for to in JobState::ALL {
                for attempt in [0, 1, 2, 99] {
                    assert!(!apply(&mut r, &status(to, attempt, "w2")), "{fin} + {to}");
                }
            }
            assert!(!r.apply(Event::GaveUp { attempts: 5, at: Utc::now() }).changed());
            assert!(!r.apply(Event::Cancel { at: Utc::now() }).changed());
            assert_eq!(r, before, "{fin} is untouched");
        }
    }

    #[test]
    fn never_goes_back_from_done() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 1, "w1")));
        assert!(apply(&mut r, &status(Done, 1, "w1")));
        assert!(!apply(&mut r, &status(Processing, 2, "w2")));
        assert!(!apply(&mut r, &status(Failed, 2, "w2")));
        assert_eq!(r.state, Done);
        assert_eq!(states(&r), [Queued, Processing, Done]);
    }

    #[test]
    fn duplicates_and_stale_attempts_are_ignored() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 2, "w2")));
        assert!(!apply(&mut r, &status(Processing, 2, "w2")), "a duplicate");
        assert!(!apply(&mut r, &status(Processing, 1, "w1")), "an older attempt");
        assert_eq!((r.attempts, r.worker.as_deref()), (2, Some("w2")));
        assert!(apply(&mut r, &status(Processing, 3, "w1")));
        assert_eq!(r.attempts, 3);
    }

    #[test]
    fn a_slow_workers_final_status_of_an_older_attempt_still_applies() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 1, "w1")));
        assert!(apply(&mut r, &status(Processing, 2, "w2")));
        assert!(apply(&mut r, &status(Done, 1, "w1")), "the outputs exist: the job is done");
        assert_eq!((r.state, r.attempts, r.worker.as_deref()), (Done, 2, Some("w1")));
        assert!(!apply(&mut r, &status(Done, 2, "w2")), "the second done changes nothing");
    }

    #[test]
    fn retrying_then_a_new_attempt() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 1, "w1")));
        assert!(apply(&mut r, &status(Retrying, 1, "w1")));
        assert_eq!(r.state, Retrying);
        assert!(!apply(&mut r, &status(Processing, 1, "w1")), "a late processing does not undo the retry");
        assert!(!apply(&mut r, &status(Retrying, 1, "w1")));
        assert!(apply(&mut r, &status(Processing, 2, "w2")));
        assert!(apply(&mut r, &status(Done, 2, "w2")));
        assert_eq!(states(&r), [Queued, Processing, Retrying, Processing, Done]);
        assert!(!r.timeline.iter().any(TimelineEntry::is_worker_lost));
    }

    #[test]
    fn a_new_attempt_after_processing_records_the_lost_worker() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 1, "w1")));
        assert!(apply(&mut r, &status(Processing, 2, "w2")));
        let lost = &r.timeline[2];
        assert_eq!((lost.state, lost.worker.as_deref(), lost.attempt), (Retrying, Some("w1"), 1));
        assert_eq!(lost.note, Some(Note::WorkerLost { worker: "w1".into(), attempt: 1 }));
        assert!(lost.note.as_ref().unwrap().to_string().starts_with("worker lost: w1"), "{lost:?}");
        assert_eq!(r.timeline[3].worker.as_deref(), Some("w2"));
        assert_eq!(r.state, Processing);
    }

    #[test]
    fn worker_lost_then_its_late_retrying_replaces_the_guess() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 1, "w1")));
        assert!(apply(&mut r, &status(Processing, 2, "w2")));
        assert!(r.timeline[2].is_worker_lost());
        let mut released = status(Retrying, 1, "w1");
        released.note = Some(Note::Released { worker: "w1".into() }.to_string());
        assert!(apply(&mut r, &released));
        assert!(!apply(&mut r, &released), "applied once");
        assert_eq!(r.state, Processing, "the late status does not change the state");
        assert_eq!(r.timeline[2].note, Some(Note::Released { worker: "w1".into() }));
        assert!(!r.timeline.iter().any(TimelineEntry::is_worker_lost));
        assert_eq!(r.timeline.len(), 4);
    }

    #[test]
    fn a_late_retrying_without_a_guess_goes_in_at_its_time() {
        let mut r = record();
        let early = Utc::now() - chrono::Duration::seconds(10);
        assert!(apply(&mut r, &status(Processing, 2, "w2")));
        let mut late = status(Retrying, 1, "w1");
        late.at = early;
        assert!(apply(&mut r, &late));
        let at: Vec<_> = r.timeline.iter().map(|t| (t.state, t.attempt)).collect();
        assert_eq!(at, [(Retrying, 1), (Queued, 0), (Processing, 2)], "in time order");
        assert_eq!(r.state, Processing);
    }

    #[test]
    fn a_done_naming_keys_that_are_not_the_jobs_own_is_ignored() {
        let mut r = record();
        r.requested = vec![requested("web")];
        assert!(apply(&mut r, &status(Processing, 1, "w1")));
        for (key, name) in [
            (keys::COOKIE_KEY, "web"),
            ("outputs/other-job/web.png", "web"),
            ("outputs/j/../x.png", "web"),
            ("outputs/j/web.jpg", "web"),
            ("outputs/j/evil.png", "evil"),
        ] {
            assert!(!apply(&mut r, &done_with(key, name)), "{key} / {name}");
            assert_eq!(r.state, Processing);
            assert!(r.outputs.is_empty());
        }
        assert!(!apply(&mut r, &status(Done, 1, "w1")), "a done with no outputs for a job that asked for one");
        assert!(apply(&mut r, &done_with("outputs/j/web.png", "web")));
        assert_eq!(r.state, Done);
        assert_eq!(r.outputs[0].key, "outputs/j/web.png");
    }

    #[test]
    fn a_done_keeps_its_preview_only_at_the_jobs_preview_key() {
        let preview = |key: &str, size: u32| OutputInfo {
            name: keys::PREVIEW_NAME.into(),
            key: key.into(),
            format: Format::Jpeg,
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
            assert!(apply(&mut r, &done), "the outputs apply either way");
            assert_eq!(r.preview.is_some(), kept, "{key} {size}");
        }
    }

    #[test]
    fn statuses_carry_bounded_text_and_the_timeline_stops_growing() {
        let mut r = record();
        let mut s = status(Processing, 1, &"w".repeat(10_000));
        s.note = Some("n".repeat(100_000));
        assert!(apply(&mut r, &s));
        let t = r.timeline.last().unwrap();
        assert_eq!(t.worker.as_ref().unwrap().len(), crate::message::MAX_WORKER_CHARS);
        assert_eq!(t.note.as_ref().unwrap().to_string().len(), crate::message::MAX_NOTE_CHARS);
        for attempt in 2..1000 {
            apply(&mut r, &status(Retrying, attempt, "w"));
            apply(&mut r, &status(Processing, attempt + 1, "w"));
        }
        assert!(r.timeline.len() <= MAX_TIMELINE, "{}", r.timeline.len());
        assert!(apply(&mut r, &status(Failed, 2000, "w")), "a final status still applies");
        assert_eq!(r.state, Failed);
    }

    #[test]
    fn failed_without_a_reason_gets_one() {
        let mut r = record();
        assert!(apply(&mut r, &status(Failed, 1, "w")));
        let e = r.error.as_ref().unwrap();
        assert_eq!((e.code.as_str(), e.message.as_str()), ("failed", "The job failed without a reason."));
        let mut r = record();
        let mut s = status(Failed, 1, "w");
        s.error = Some(JobError::new(ErrorCode::CorruptImage, "damaged"));
        assert!(apply(&mut r, &s));
        assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::CorruptImage);
        assert_eq!(r.timeline.last().unwrap().note, Some(Note::Text("damaged".into())), "the message is the note");
    }

    #[test]
    fn a_workers_cancelled_clears_outputs_and_is_final() {
        let mut r = record();
        assert!(apply(&mut r, &status(Cancelled, 1, "w1")));
        assert_eq!((r.state, r.outputs.len(), r.error.is_none()), (Cancelled, 0, true));
        assert!(!apply(&mut r, &status(Processing, 2, "w2")));
    }

    #[test]
    fn gave_up_fails_the_job_once_with_its_note() {
        let mut r = record();
        assert!(apply(&mut r, &status(Processing, 3, "w1")));
        let at = Utc::now();
        assert_eq!(r.apply(Event::GaveUp { attempts: 3, at }), Outcome::Changed);
        assert!(r.was_given_up());
        assert_eq!((r.state, r.attempts, r.worker.as_deref()), (Failed, 3, Some(DEAD_LETTER_WORKER)));
        assert_eq!(r.error.as_ref().unwrap().code, ErrorCode::GaveUp);
        let last = r.timeline.last().unwrap();
        assert_eq!(last.note, Some(Note::GaveUp { attempts: 3 }));
        assert_eq!(
            last.note.as_ref().unwrap().to_string(),
            "gave up after 3 attempts: the queue moved the job to the dead-letter queue"
        );
        assert_eq!(r.apply(Event::GaveUp { attempts: 3, at }), Outcome::Unchanged, "twice is harmless");
        // A job that finished meanwhile is not failed by a late dead letter.
        let mut done = in_state(Done, 2, "w1");
        assert_eq!(done.apply(Event::GaveUp { attempts: 3, at }), Outcome::Unchanged);
        assert!(!done.was_given_up());
        // A job failed for another reason is not "given up".
        let mut other = record();
        let mut s = status(Failed, 1, "w");
        s.error = Some(JobError::new(ErrorCode::MemoryLimit, "too big"));
        apply(&mut other, &s);
        assert!(!other.was_given_up());
    }

    #[test]
    fn requeue_resets_the_record_except_when_done() {
        for from in [Queued, Processing, Retrying, Failed, Cancelled] {
            let mut r = in_state(from, 3, "w1");
            r.error = Some(JobError::new(ErrorCode::GaveUp, "gave up"));
            r.outputs = done_with("outputs/j/web.png", "web").outputs;
            let at = Utc::now();
            assert_eq!(r.apply(Event::Requeue { by: Requeue::Redrive, at }), Outcome::Changed, "{from}");
            assert_eq!((r.state, r.attempts, r.worker.as_ref(), r.error.as_ref()), (Queued, 0, None, None));
            assert!(r.outputs.is_empty() && r.preview.is_none());
            assert_eq!(r.updated_at, at);
            let last = r.timeline.last().unwrap();
            assert_eq!(
                (last.state, last.attempt, last.note.clone()),
                (Queued, 0, Some(Note::Requeued(Requeue::Redrive)))
            );
            // The next run's statuses apply from attempt 1.
            assert!(apply(&mut r, &status(Processing, 1, "w2")), "{from}");
        }
        let mut done = in_state(Done, 1, "w1");
        let before = done.clone();
        assert_eq!(done.apply(Event::Requeue { by: Requeue::ByOwner, at: Utc::now() }), Outcome::Refused(Done));
        assert_eq!(done, before);
    }

    #[test]
    fn cancel_only_while_waiting() {
        for from in [Queued, Retrying] {
            let mut r = in_state(from, 2, "w1");
            let at = Utc::now();
            assert_eq!(r.apply(Event::Cancel { at }), Outcome::Changed, "{from}");
            assert_eq!(r.state, Cancelled);
            let last = r.timeline.last().unwrap();
            assert_eq!((last.state, last.attempt, last.note.clone()), (Cancelled, 2, Some(Note::Cancelled)));
            assert_eq!(r.apply(Event::Cancel { at }), Outcome::Unchanged, "cancelling twice");
            assert!(!apply(&mut r, &status(Processing, 3, "w2")), "a cancelled job stays cancelled");
        }
        for from in [Processing, Done, Failed] {
            let mut r = in_state(from, 1, "w1");
            assert_eq!(r.apply(Event::Cancel { at: Utc::now() }), Outcome::Refused(from));
            assert_eq!(r.state, from);
        }
    }

    #[test]
    fn notes_write_the_same_text_as_before_and_read_back_typed() {
        // The texts web app and processor wrote before notes were typed, as stored records hold them.
        let cases = [
            (
                "worker lost: w-1 stopped during attempt 2 (killed, crashed or cut off); the queue delivered the job again",
                Note::WorkerLost { worker: "w-1".into(), attempt: 2 },
            ),
            (
                "released: host-7 is shutting down; another worker takes the job",
                Note::Released { worker: "host-7".into() },
            ),
            (
                "attempt 1 on w: configuration error: S3 bucket `b` is missing; given back to the queue for another worker",
                Note::GivenBack {
                    attempt: 1,
                    worker: "w".into(),
                    error: "configuration error: S3 bucket `b` is missing".into(),
                },
            ),
            (
                "attempt 2 failed: store: timed out; retrying in 4 s",
                Note::AttemptFailed { attempt: 2, detail: "store: timed out".into(), retry_in_s: 4 },
            ),
            (
                "outputs were already stored by an earlier attempt; re-announced without processing again",
                Note::ReAnnounced,
            ),
            ("cancelled by its owner before processing; skipped by the worker", Note::SkippedCancelled),
            ("gave up after 5 attempts: the queue moved the job to the dead-letter queue", Note::GaveUp { attempts: 5 }),
            ("retried by its owner", Note::Requeued(Requeue::ByOwner)),
            (
                "sent back to the job queue from the dead-letter queue by an operator",
                Note::Requeued(Requeue::Redrive),
            ),
            ("cancelled by its owner", Note::Cancelled),
            ("The image data is damaged", Note::Text("The image data is damaged".into())),
            ("worker lost", Note::Text("worker lost".into())),
            ("released: w1 is shutting down", Note::Text("released: w1 is shutting down".into())),
            ("attempt x failed: y; retrying in z s", Note::Text("attempt x failed: y; retrying in z s".into())),
        ];
        for (text, note) in cases {
            assert_eq!(Note::parse(text), note, "{text}");
            assert_eq!(note.to_string(), text);
            let json = serde_json::to_string(&note).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<Note>(&json).unwrap(), note);
        }
    }

    #[test]
    fn an_old_stored_record_reads_with_typed_notes_and_writes_back_the_same_json() {
        let old = r#"{"id":"j","owner":"o","filename":"a.jpg","state":"failed","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:01:00Z","attempts":3,"worker":"dead-letter queue","original_key":"originals/j","original_type":"image/jpeg","original_width":1,"original_height":1,"original_bytes":1,"requested":[],"outputs":[],"error":{"code":"gave_up","message":"gave up"},"timeline":[{"at":"2026-01-01T00:00:00Z","state":"queued","attempt":0},{"at":"2026-01-01T00:00:01Z","state":"processing","worker":"w1","attempt":1},{"at":"2026-01-01T00:00:02Z","state":"retrying","worker":"w1","attempt":1,"note":"worker lost: w1 stopped during attempt 1 (killed, crashed or cut off); the queue delivered the job again"},{"at":"2026-01-01T00:00:03Z","state":"failed","worker":"dead-letter queue","attempt":3,"note":"gave up after 3 attempts: the queue moved the job to the dead-letter queue"}]}"#;
        let rec: JobRecord = serde_json::from_str(old).unwrap();
        assert!(rec.timeline[2].is_worker_lost());
        assert_eq!(rec.timeline[3].note, Some(Note::GaveUp { attempts: 3 }));
        assert!(rec.was_given_up());
        assert_eq!(serde_json::to_string(&rec).unwrap(), old, "the stored JSON does not change");
    }

    #[test]
    fn error_codes_are_the_same_strings_and_unknown_ones_are_kept() {
        // EngineError::code()'s values (engine/src/error.rs), the processor's and the web app's.
        let known = [
            "empty_file",
            "file_too_large",
            "not_an_image",
            "too_many_pixels",
            "corrupt_image",
            "output_too_large",
            "job_too_large",
            "encode_failed",
            "invalid_op",
            "unsupported_format",
            "time_limit",
            "memory_limit",
            "original_missing",
            "logo_missing",
            "configuration",
            "gave_up",
            "failed",
        ];
        for code in known {
            let parsed = ErrorCode::parse(code);
            assert!(!matches!(parsed, ErrorCode::Other(_)), "{code} is known");
            assert_eq!(parsed.as_str(), code);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), format!("\"{code}\""));
        }
        assert_eq!(ErrorCode::KNOWN.len(), known.len());
        // A newer processor's code: the status applies, the code is kept as it was sent.
        let text = r#"{"version":1,"type":"status","job_id":"j","state":"failed","attempt":1,"worker":"w","at":"2026-01-01T00:00:00Z","error":{"code":"gpu_melted","message":"The GPU melted."}}"#;
        let s = StatusMessage::from_json(text).unwrap();
        assert_eq!(s.error.as_ref().unwrap().code.as_str(), "gpu_melted");
        assert!(matches!(s.error.as_ref().unwrap().code, ErrorCode::Other(_)));
        let mut r = record();
        assert!(apply(&mut r, &s));
        assert_eq!((r.state, r.error.as_ref().unwrap().code.as_str()), (Failed, "gpu_melted"));
        assert!(serde_json::to_string(&r).unwrap().contains(r#""code":"gpu_melted""#));
        // Bounded, as any status text.
        assert_eq!(ErrorCode::parse(&"x".repeat(1000)).as_str().len(), UnknownCode::MAX_CHARS);
    }

    #[test]
    fn states_name_themselves_as_the_api_does() {
        for s in JobState::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobState::parse("lost"), None);
        let cancellable: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_cancellable()).collect();
        assert_eq!(cancellable, [Queued, Retrying]);
        let retryable: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_retryable()).collect();
        assert_eq!(retryable, [Failed]);
    }
}
