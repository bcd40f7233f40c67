//! Where the message schema is: the bodies Darkroom puts on its queues.
//!
//! Three kinds, all JSON with a `version` and a `type`:
//! - [`JobMessage`] on the job queue: a claim check (object keys and the recipe, never image bytes).
//! - [`StatusMessage`] on the reply queue: what a worker did with a job.
//! - [`PresenceMessage`] on the reply queue: that a worker runs (or stopped), its slots and how
//!   many are busy, so the ops page shows idle workers too. [`Reply`] reads either.
//!
//! docs/protocol.md documents them for outside tools; keep the two in step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::lifecycle::state::{JobError, JobState};
use crate::output::{Format, OutputSpec};
use crate::text::cut;
use crate::trace::TraceParent;

/// The message format version this build writes and reads.
pub const VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum MessageError {
    #[error("not a Darkroom message: {0}")]
    NotOurs(String),
    #[error("unsupported message version {0} (this build reads version {VERSION})")]
    UnsupportedVersion(u64),
    #[error("expected a `{expected}` message, got `{got}`")]
    WrongType { expected: &'static str, got: String },
    #[error("malformed `{kind}` message: {detail}")]
    Malformed { kind: &'static str, detail: String },
}

/// A job: process the original at `original_key` into `outputs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: String,
    /// Key of the uploaded original in the bucket.
    pub original_key: String,
    /// The outputs to render (a preset is expanded before the job is queued).
    pub outputs: Vec<OutputSpec>,
    #[serde(default = "Utc::now")]
    pub submitted_at: DateTime<Utc>,
    /// W3C trace context of the upload that made the job ([`crate::trace`]); optional both
    /// ways: older producers send none, older consumers ignore it, an invalid one reads as none.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::trace::lenient")]
    pub traceparent: Option<TraceParent>,
}

/// One rendered output, as reported by the worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputInfo {
    pub name: String,
    pub key: String,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A worker's report on a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub job_id: String,
    /// `processing`, `retrying`, `done` or `failed` (`queued` is the web app's own).
    pub state: JobState,
    /// Which delivery of the job this is (SQS ApproximateReceiveCount), from 1.
    pub attempt: u32,
    pub worker: String,
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputInfo>,
    /// With `done`: the small preview the gallery shows, stored at
    /// [`keys::preview`](crate::keys::preview). Optional both ways: a processor that makes none
    /// (older, or a simulated engine) sends none, an older web app ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<OutputInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<JobError>,
    /// Words for the job's timeline (why a retry, or that a result was re-announced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The job's trace context as the worker continued it (same trace id as the job message's),
    /// so the web app logs the applied status under the upload's trace id. Optional as on
    /// [`JobMessage`].
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "crate::trace::lenient")]
    pub traceparent: Option<TraceParent>,
}

/// What a worker says it is doing in a [`PresenceMessage`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Taking jobs (idle or busy: see `busy`).
    Running,
    /// Shut down (SIGTERM): takes no new jobs, finishes the `busy` ones.
    Stopping,
    /// Drained and exiting: the last presence of this worker.
    Stopped,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Running => "running",
            WorkerState::Stopping => "stopping",
            WorkerState::Stopped => "stopped",
        }
    }
}

/// A worker's periodic "I am here" on the reply queue (type `presence`): sent when it starts,
/// every `interval_s` seconds while it runs, and once more when it has stopped. It is about
/// the worker, never about a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PresenceMessage {
    /// The worker's name, as in its statuses.
    pub worker: String,
    pub state: WorkerState,
    /// Host name and process id of the processor.
    pub host: String,
    pub pid: u32,
    /// Jobs it runs at once at most (`DARKROOM_CONCURRENCY`), and how many it runs now.
    pub slots: u32,
    pub busy: u32,
    pub started_at: DateTime<Utc>,
    pub sent_at: DateTime<Utc>,
    /// Seconds until the next presence of this worker (`DARKROOM_WORKER_HEARTBEAT`); 0 when
    /// none follows (stopped).
    pub interval_s: u32,
    /// The processor's release (`darkroom-processor --version`). Not `version`, which is the
    /// message format's.
    pub processor_version: String,
}

/// Longest host name or processor version a presence may carry to the ops page.
pub const MAX_PRESENCE_FIELD_CHARS: usize = 128;

impl PresenceMessage {
    pub fn to_json(&self) -> String {
        to_json("presence", self)
    }
    pub fn from_json(text: &str) -> Result<Self, MessageError> {
        from_json("presence", text)
    }

    /// Worker name, host and version cut to [`MAX_WORKER_CHARS`] and [`MAX_PRESENCE_FIELD_CHARS`].
    pub fn bounded(mut self) -> Self {
        cut(&mut self.worker, MAX_WORKER_CHARS);
        cut(&mut self.host, MAX_PRESENCE_FIELD_CHARS);
        cut(&mut self.processor_version, MAX_PRESENCE_FIELD_CHARS);
        self
    }
}

/// Any message of the reply queue: a consumer reads it with [`Reply::from_json`] and handles
/// both kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Status(StatusMessage),
    Presence(PresenceMessage),
}

impl Reply {
    /// A status or a presence; another `type` is [`MessageError::WrongType`] (expected `status`).
    pub fn from_json(text: &str) -> Result<Self, MessageError> {
        match PresenceMessage::from_json(text) {
            Ok(p) => Ok(Reply::Presence(p)),
            Err(MessageError::WrongType { .. }) => StatusMessage::from_json(text).map(Reply::Status),
            Err(e) => Err(e),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a, T> {
    version: u32,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(flatten)]
    body: T,
}

fn to_json<T: Serialize>(kind: &str, body: &T) -> String {
    serde_json::to_string(&Envelope { version: VERSION, kind, body }).expect("message types serialize")
}

fn from_json<T: serde::de::DeserializeOwned>(kind: &'static str, text: &str) -> Result<T, MessageError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| MessageError::NotOurs(format!("not JSON ({e})")))?;
    let obj = value.as_object().ok_or_else(|| MessageError::NotOurs("not a JSON object".into()))?;
    let version = obj
        .get("version")
        .ok_or_else(|| MessageError::NotOurs("no `version` field".into()))?
        .as_u64()
        .ok_or_else(|| MessageError::NotOurs("`version` is not a number".into()))?;
    if version != VERSION as u64 {
        return Err(MessageError::UnsupportedVersion(version));
    }
    let got = obj.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if got != kind {
        return Err(MessageError::WrongType { expected: kind, got: got.to_string() });
    }
    let mut body = value;
    if let Some(map) = body.as_object_mut() {
        map.remove("version");
        map.remove("type");
    }
    serde_json::from_value(body).map_err(|e| MessageError::Malformed { kind, detail: e.to_string() })
}

impl JobMessage {
    pub fn to_json(&self) -> String {
        to_json("job", self)
    }
    /// Parse and validate a job, its recipe against the default [`Limits`](crate::limits::Limits).
    pub fn from_json(text: &str) -> Result<Self, MessageError> {
        Self::from_json_with_limits(text, &crate::limits::Limits::default())
    }

    /// Parse and validate a job, its recipe against `limits` (a processor passes its configured
    /// ones, so a recipe the web app accepted under the same settings is accepted here too).
    pub fn from_json_with_limits(text: &str, limits: &crate::limits::Limits) -> Result<Self, MessageError> {
        let job: JobMessage = from_json("job", text)?;
        if !crate::keys::is_valid_id(&job.job_id) {
            return Err(MessageError::Malformed {
                kind: "job",
                detail: "job_id must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'".into(),
            });
        }
        // The original must be this job's own upload: a message naming another object would
        // have someone else's photo rendered into this job's outputs.
        if job.original_key != crate::keys::original(&job.job_id) {
            return Err(MessageError::Malformed {
                kind: "job",
                detail: format!("original_key must be {}", crate::keys::original(&job.job_id)),
            });
        }
        crate::recipe::validate_outputs(&job.outputs, limits)
            .map_err(|e| MessageError::Malformed { kind: "job", detail: e.to_string() })?;
        Ok(job)
    }
}

/// Longest worker name a status may carry into a job's timeline.
pub const MAX_WORKER_CHARS: usize = 128;
/// Longest note a status may carry into a job's timeline.
pub const MAX_NOTE_CHARS: usize = 1000;

impl StatusMessage {
    pub fn to_json(&self) -> String {
        to_json("status", self)
    }
    pub fn from_json(text: &str) -> Result<Self, MessageError> {
        from_json("status", text)
    }

    /// Whether the outputs of this status are exactly the ones `requested` asks for, each at
    /// the key [`keys::output`](crate::keys::output) derives from the job id, its name and its
    /// format. The reply queue is shared: a forged `done` naming another key (the cookie key,
    /// another job's output, `../x`) must never reach a job record, where downloads, deletes
    /// and the zip would follow it.
    pub fn check_outputs(&self, requested: &[OutputSpec]) -> Result<(), String> {
        if self.outputs.len() != requested.len() {
            return Err(format!("{} outputs reported, {} requested", self.outputs.len(), requested.len()));
        }
        for o in &self.outputs {
            let Some(spec) = requested.iter().find(|r| r.name == o.name) else {
                return Err(format!("output {:?} was not requested", o.name));
            };
            let key = crate::keys::output(&self.job_id, &spec.name, spec.format);
            if o.format != spec.format || o.key != key {
                return Err(format!("output {:?} must be stored at {key}, not {:?}", o.name, o.key));
            }
        }
        Ok(())
    }

    /// The preview of this status if it is where this job's preview must be
    /// ([`keys::preview`](crate::keys::preview)) and as small as a preview is; `None` otherwise
    /// (a forged status cannot point the gallery at another object).
    pub fn checked_preview(&self) -> Option<&OutputInfo> {
        self.preview.as_ref().filter(|p| {
            p.key == crate::keys::preview(&self.job_id)
                && p.format == Format::Jpeg
                && p.width <= crate::keys::PREVIEW_SIZE
                && p.height <= crate::keys::PREVIEW_SIZE
        })
    }

    /// The worker name and note cut to [`MAX_WORKER_CHARS`] and [`MAX_NOTE_CHARS`].
    pub fn bounded(mut self) -> Self {
        cut(&mut self.worker, MAX_WORKER_CHARS);
        if let Some(n) = self.note.as_mut() {
            cut(n, MAX_NOTE_CHARS);
        }
        if let Some(e) = self.error.as_mut() {
            // The code is bounded when it is read (`ErrorCode::parse`).
            cut(&mut e.message, MAX_NOTE_CHARS);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;

    fn job() -> JobMessage {
        JobMessage {
            job_id: "0190-abc".into(),
            original_key: "originals/0190-abc".into(),
            outputs: vec![OutputSpec {
                quality: Some(85),
                ..OutputSpec::new(
                    "web",
                    vec![Op::Resize {
                        width: Some(1600),
                        height: Some(1600),
                        fit: Default::default(),
                        gravity: Default::default(),
                        enlarge: false,
                        filter: Default::default(),
                    }],
                    Format::Jpeg,
                )
            }],
            submitted_at: Utc::now(),
            traceparent: None,
        }
    }

    #[test]
    fn job_round_trips() {
        let j = job();
        let text = j.to_json();
        assert!(text.contains("\"version\":1"), "{text}");
        assert!(text.contains("\"type\":\"job\""), "{text}");
        assert_eq!(JobMessage::from_json(&text).unwrap(), j);
    }

    #[test]
    fn status_round_trips() {
        let s = StatusMessage {
            job_id: "x".into(),
            state: JobState::Done,
            attempt: 2,
            worker: "host-1".into(),
            at: Utc::now(),
            outputs: vec![OutputInfo {
                name: "web".into(),
                key: "outputs/x/web.jpg".into(),
                format: Format::Jpeg,
                width: 10,
                height: 5,
                bytes: 99,
            }],
            preview: None,
            error: None,
            note: Some("re-announced".into()),
            traceparent: Some(TraceParent::new_root()),
        };
        assert_eq!(StatusMessage::from_json(&s.to_json()).unwrap(), s);
    }

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_is_optional_in_both_directions() {
        // An older producer's job (no field) parses; one without a trace writes no field, so
        // an older consumer sees exactly the message it knows.
        let old = job().to_json();
        assert!(!old.contains("traceparent"), "{old}");
        assert_eq!(JobMessage::from_json(&old).unwrap().traceparent, None);
        // A newer producer's job carries it; it round-trips, and an older consumer (a struct
        // without the field, as serde reads unknown fields by default) still reads the job.
        let mut traced = job();
        traced.traceparent = Some(TraceParent::parse(TRACEPARENT).unwrap());
        let text = traced.to_json();
        assert!(text.contains(&format!("\"traceparent\":\"{TRACEPARENT}\"")), "{text}");
        assert_eq!(JobMessage::from_json(&text).unwrap(), traced);
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct OlderJob {
            job_id: String,
            original_key: String,
            outputs: Vec<OutputSpec>,
            submitted_at: DateTime<Utc>,
        }
        let older: OlderJob = serde_json::from_str(&text).unwrap();
        assert_eq!(older.job_id, traced.job_id);
        // An invalid value is no trace, not a malformed job.
        let junk = text.replace(TRACEPARENT, "00-not-a-trace");
        assert_eq!(JobMessage::from_json(&junk).unwrap().traceparent, None);
    }

    #[test]
    fn status_traceparent_is_optional_in_both_directions() {
        let old = r#"{"version":1,"type":"status","job_id":"x","state":"done","attempt":1,"worker":"w","at":"2026-01-01T00:00:00Z"}"#;
        let parsed = StatusMessage::from_json(old).unwrap();
        assert_eq!(parsed.traceparent, None);
        assert!(!parsed.to_json().contains("traceparent"));
        let traced = old.replace(r#""worker":"w""#, &format!(r#""worker":"w","traceparent":"{TRACEPARENT}""#));
        let parsed = StatusMessage::from_json(&traced).unwrap();
        assert_eq!(parsed.traceparent.unwrap().to_string(), TRACEPARENT);
        assert_eq!(StatusMessage::from_json(&parsed.to_json()).unwrap(), parsed);
    }

    fn presence() -> PresenceMessage {
        PresenceMessage {
            worker: "host-1".into(),
            state: WorkerState::Running,
            host: "host".into(),
            pid: 1,
            slots: 4,
            busy: 1,
            started_at: Utc::now(),
            sent_at: Utc::now(),
            interval_s: 10,
            processor_version: "0.1.0".into(),
        }
    }

    #[test]
    fn presence_round_trips_and_reply_reads_both_kinds() {
        let p = presence();
        let text = p.to_json();
        assert!(text.contains("\"type\":\"presence\""), "{text}");
        assert!(text.contains("\"version\":1"), "the envelope's version stays the format's: {text}");
        assert!(text.contains("\"state\":\"running\""), "{text}");
        assert_eq!(Reply::from_json(&text).unwrap(), Reply::Presence(p));
        let s = StatusMessage {
            job_id: "x".into(),
            state: JobState::Processing,
            attempt: 1,
            worker: "w".into(),
            at: Utc::now(),
            outputs: vec![],
            preview: None,
            error: None,
            note: None,
            traceparent: None,
        };
        assert_eq!(Reply::from_json(&s.to_json()).unwrap(), Reply::Status(s));
        assert!(matches!(Reply::from_json(&job().to_json()), Err(MessageError::WrongType { .. })));
        assert!(matches!(Reply::from_json("nope"), Err(MessageError::NotOurs(_))));
    }

    /// What a web app from before presence messages does with one: its status parser answers
    /// `WrongType`, which it logs and deletes (web/src/replies.rs), as docs/protocol.md says.
    #[test]
    fn a_status_only_reader_sees_a_presence_as_another_type() {
        let text = presence().to_json();
        assert!(
            matches!(StatusMessage::from_json(&text), Err(MessageError::WrongType { got, .. }) if got == "presence")
        );
    }

    #[test]
    fn presence_fields_are_bounded() {
        let p = PresenceMessage { worker: "w".repeat(1000), host: "h".repeat(1000), ..presence() }.bounded();
        assert_eq!((p.worker.len(), p.host.len()), (MAX_WORKER_CHARS, MAX_PRESENCE_FIELD_CHARS));
    }

    #[test]
    fn unknown_version_is_rejected() {
        let text = job().to_json().replace("\"version\":1", "\"version\":2");
        assert!(matches!(JobMessage::from_json(&text), Err(MessageError::UnsupportedVersion(2))));
    }

    #[test]
    fn foreign_messages_are_not_ours() {
        assert!(matches!(JobMessage::from_json("hello"), Err(MessageError::NotOurs(_))));
        assert!(matches!(JobMessage::from_json("{\"foo\":1}"), Err(MessageError::NotOurs(_))));
        let status = StatusMessage::from_json(&job().to_json());
        assert!(matches!(status, Err(MessageError::WrongType { .. })));
    }

    #[test]
    fn recipes_are_validated_against_the_given_limits() {
        let mut j = job();
        if let Some(Op::Resize { width, .. }) = j.outputs[0].ops.first_mut() {
            *width = Some(20_000);
        }
        let text = j.to_json();
        // Over the default 16384 px per side, within a server configured for 30000.
        assert!(matches!(JobMessage::from_json(&text), Err(MessageError::Malformed { .. })));
        let wide = crate::limits::Limits { max_output_dimension: 30_000, ..Default::default() };
        assert_eq!(JobMessage::from_json_with_limits(&text, &wide).unwrap(), j);
    }

    #[test]
    fn job_with_bad_id_or_recipe_is_malformed() {
        let mut j = job();
        j.job_id = "../etc".into();
        assert!(matches!(JobMessage::from_json(&j.to_json()), Err(MessageError::Malformed { .. })));
        let mut j = job();
        j.outputs.clear();
        assert!(matches!(JobMessage::from_json(&j.to_json()), Err(MessageError::Malformed { .. })));
    }
}
