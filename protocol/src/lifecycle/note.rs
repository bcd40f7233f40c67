//! What a timeline entry says beyond its state ([`Note`]): typed, written as the same text older
//! web apps and processors wrote, and read back into the variant that wrote it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who put a job back on the job queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requeue {
    /// Its owner, with the Retry button (`POST /api/jobs/{id}/retry`).
    ByOwner,
    /// An operator, from the dead-letter queue (`POST /ops/redrive`).
    Redrive,
}

/// What a timeline entry says beyond its state. Written as text (the stored record and the
/// API carry a string); [`Note::parse`] reads a text back into the variant that wrote it, and
/// anything else is [`Note::Text`] (a worker's own words, an error message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The web app's guess: `worker` stopped during `attempt` (a new attempt began while that
    /// one was still `processing`).
    WorkerLost { worker: String, attempt: u32 },
    /// The worker was shutting down and gave the unfinished job back (processor).
    Released { worker: String },
    /// The worker is misconfigured and gave the job back for another worker (processor).
    GivenBack { attempt: u32, worker: String, error: String },
    /// A transient failure; the queue delivers the job again (processor).
    AttemptFailed { attempt: u32, detail: String, retry_in_s: u64 },
    /// The outputs were stored by an earlier attempt and announced again (processor).
    ReAnnounced,
    /// The worker found the job cancelled and skipped it (processor).
    SkippedCancelled,
    /// The queue moved the job to its dead-letter queue after `attempts` deliveries (web app).
    GaveUp { attempts: u32 },
    /// Put back on the job queue (web app).
    Requeued(Requeue),
    /// Cancelled by its owner while it waited (web app).
    Cancelled,
    /// Anything else.
    Text(String),
}

const LOST_PREFIX: &str = "worker lost: ";
const LOST_MIDDLE: &str = " stopped during attempt ";
const LOST_SUFFIX: &str = " (killed, crashed or cut off); the queue delivered the job again";
const RELEASED_PREFIX: &str = "released: ";
const RELEASED_SUFFIX: &str = " is shutting down; another worker takes the job";
const GIVEN_BACK_SUFFIX: &str = "; given back to the queue for another worker";
const RETRY_MIDDLE: &str = "; retrying in ";
const RE_ANNOUNCED: &str = "outputs were already stored by an earlier attempt; re-announced without processing again";
const SKIPPED_CANCELLED: &str = "cancelled by its owner before processing; skipped by the worker";
const GAVE_UP_PREFIX: &str = "gave up after ";
const GAVE_UP_SUFFIX: &str = " attempts: the queue moved the job to the dead-letter queue";
const RETRIED_BY_OWNER: &str = "retried by its owner";
const REDRIVEN: &str = "sent back to the job queue from the dead-letter queue by an operator";
const CANCELLED: &str = "cancelled by its owner";

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::WorkerLost { worker, attempt } => {
                write!(f, "{LOST_PREFIX}{worker}{LOST_MIDDLE}{attempt}{LOST_SUFFIX}")
            }
            Note::Released { worker } => write!(f, "{RELEASED_PREFIX}{worker}{RELEASED_SUFFIX}"),
            Note::GivenBack { attempt, worker, error } => {
                write!(f, "attempt {attempt} on {worker}: {error}{GIVEN_BACK_SUFFIX}")
            }
            Note::AttemptFailed { attempt, detail, retry_in_s } => {
                write!(f, "attempt {attempt} failed: {detail}{RETRY_MIDDLE}{retry_in_s} s")
            }
            Note::ReAnnounced => f.write_str(RE_ANNOUNCED),
            Note::SkippedCancelled => f.write_str(SKIPPED_CANCELLED),
            Note::GaveUp { attempts } => write!(f, "{GAVE_UP_PREFIX}{attempts}{GAVE_UP_SUFFIX}"),
            Note::Requeued(Requeue::ByOwner) => f.write_str(RETRIED_BY_OWNER),
            Note::Requeued(Requeue::Redrive) => f.write_str(REDRIVEN),
            Note::Cancelled => f.write_str(CANCELLED),
            Note::Text(text) => f.write_str(text),
        }
    }
}

impl Note {
    /// The note `text` is: the variant whose words it is exactly, else [`Note::Text`]. Writing
    /// the result gives `text` back, whatever it was.
    pub fn parse(text: &str) -> Note {
        let candidates = [
            parse_lost(text),
            parse_released(text),
            parse_given_back(text),
            parse_attempt_failed(text),
            parse_gave_up(text),
            parse_fixed(text),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|note| note.to_string() == text)
            .unwrap_or_else(|| Note::Text(text.to_string()))
    }

    /// Whether this is the web app's guess that a worker vanished mid-attempt.
    pub fn is_worker_lost(&self) -> bool {
        matches!(self, Note::WorkerLost { .. })
    }
}

fn parse_lost(text: &str) -> Option<Note> {
    let rest = text.strip_prefix(LOST_PREFIX)?.strip_suffix(LOST_SUFFIX)?;
    let (worker, attempt) = rest.rsplit_once(LOST_MIDDLE)?;
    Some(Note::WorkerLost { worker: worker.to_string(), attempt: attempt.parse().ok()? })
}

fn parse_released(text: &str) -> Option<Note> {
    let worker = text.strip_prefix(RELEASED_PREFIX)?.strip_suffix(RELEASED_SUFFIX)?;
    Some(Note::Released { worker: worker.to_string() })
}

fn parse_given_back(text: &str) -> Option<Note> {
    let rest = text.strip_prefix("attempt ")?.strip_suffix(GIVEN_BACK_SUFFIX)?;
    let (attempt, rest) = rest.split_once(" on ")?;
    let (worker, error) = rest.split_once(": ")?;
    Some(Note::GivenBack { attempt: attempt.parse().ok()?, worker: worker.to_string(), error: error.to_string() })
}

fn parse_attempt_failed(text: &str) -> Option<Note> {
    let rest = text.strip_prefix("attempt ")?.strip_suffix(" s")?;
    let (attempt, rest) = rest.split_once(" failed: ")?;
    let (detail, secs) = rest.rsplit_once(RETRY_MIDDLE)?;
    Some(Note::AttemptFailed {
        attempt: attempt.parse().ok()?,
        detail: detail.to_string(),
        retry_in_s: secs.parse().ok()?,
    })
}

fn parse_gave_up(text: &str) -> Option<Note> {
    let attempts = text.strip_prefix(GAVE_UP_PREFIX)?.strip_suffix(GAVE_UP_SUFFIX)?;
    Some(Note::GaveUp { attempts: attempts.parse().ok()? })
}

fn parse_fixed(text: &str) -> Option<Note> {
    Some(match text {
        RE_ANNOUNCED => Note::ReAnnounced,
        SKIPPED_CANCELLED => Note::SkippedCancelled,
        RETRIED_BY_OWNER => Note::Requeued(Requeue::ByOwner),
        REDRIVEN => Note::Requeued(Requeue::Redrive),
        CANCELLED => Note::Cancelled,
        _ => return None,
    })
}

impl Serialize for Note {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Note {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(Note::parse(&text))
    }
}
