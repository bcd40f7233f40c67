//! A job's states and why one failed: [`JobState`], [`ErrorCode`], [`JobError`]. The leaf of the
//! lifecycle: the status message (`crate::message`) carries these, and the transition function
//! (`super`) reads that message, so they live apart from both.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::text::cut;

/// Job states as the reply queue and the API name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Processing,
    /// An attempt ended without a result (transient error, crash, worker stopped or lost);
    /// the queue will deliver the job again.
    Retrying,
    Done,
    Failed,
    /// Its owner cancelled it before a worker started on it (`POST /api/jobs/{id}/cancel`);
    /// final, and no outputs are ever made. A worker that receives the job finds its cancel
    /// marker ([`crate::keys::cancel_marker`]), posts `cancelled` and deletes the message.
    Cancelled,
}

impl JobState {
    /// Every state, in the order a job goes through them (the gallery's filters).
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Processing,
        JobState::Retrying,
        JobState::Done,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn is_final(self) -> bool {
        matches!(self, JobState::Done | JobState::Failed | JobState::Cancelled)
    }

    /// Whether its owner may still cancel it: it waits in the queue (first delivery or next).
    pub fn is_cancellable(self) -> bool {
        matches!(self, JobState::Queued | JobState::Retrying)
    }

    /// Whether its owner may try it again (`POST /api/jobs/{id}/retry`).
    pub fn is_retryable(self) -> bool {
        self == JobState::Failed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Processing => "processing",
            JobState::Retrying => "retrying",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state named `name` as the API writes it (`done`), if there is one.
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a job failed, as a code a client can act on (docs/protocol.md lists them). Serialised
/// as the snake_case string of each variant.
///
/// A code this build does not know (a newer processor's) reads as [`ErrorCode::Other`], which
/// keeps its text and writes it back unchanged: the status still applies and its owner still
/// sees the code and the message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // The image engine's (`EngineError::code`).
    EmptyFile,
    FileTooLarge,
    NotAnImage,
    TooManyPixels,
    CorruptImage,
    OutputTooLarge,
    JobTooLarge,
    EncodeFailed,
    InvalidOp,
    UnsupportedFormat,
    TimeLimit,
    // The processor's.
    /// The image work needed more than `DARKROOM_JOB_MEMORY_LIMIT`.
    MemoryLimit,
    /// The original is no longer in the bucket.
    OriginalMissing,
    /// A watermark's logo is not in the bucket.
    LogoMissing,
    /// The worker is misconfigured (on the job's last delivery only).
    Configuration,
    // Either side's.
    /// Transient failures on the last attempt (processor), or the queue moved the job to its
    /// dead-letter queue (web app).
    GaveUp,
    /// A `failed` status that gave no reason (code `failed`).
    Unexplained,
    /// A code this build does not know.
    Other(UnknownCode),
}

/// The text of an error code this build does not know (at most [`UnknownCode::MAX_CHARS`]
/// characters). Only [`ErrorCode::parse`] makes one, so it never holds a known code.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnknownCode(String);

impl UnknownCode {
    /// Longest unknown code kept (a status's code is cut to this).
    pub const MAX_CHARS: usize = 64;
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl ErrorCode {
    /// Every code this build knows.
    pub const KNOWN: [ErrorCode; 17] = [
        ErrorCode::EmptyFile,
        ErrorCode::FileTooLarge,
        ErrorCode::NotAnImage,
        ErrorCode::TooManyPixels,
        ErrorCode::CorruptImage,
        ErrorCode::OutputTooLarge,
        ErrorCode::JobTooLarge,
        ErrorCode::EncodeFailed,
        ErrorCode::InvalidOp,
        ErrorCode::UnsupportedFormat,
        ErrorCode::TimeLimit,
        ErrorCode::MemoryLimit,
        ErrorCode::OriginalMissing,
        ErrorCode::LogoMissing,
        ErrorCode::Configuration,
        ErrorCode::GaveUp,
        ErrorCode::Unexplained,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::EmptyFile => "empty_file",
            ErrorCode::FileTooLarge => "file_too_large",
            ErrorCode::NotAnImage => "not_an_image",
            ErrorCode::TooManyPixels => "too_many_pixels",
            ErrorCode::CorruptImage => "corrupt_image",
            ErrorCode::OutputTooLarge => "output_too_large",
            ErrorCode::JobTooLarge => "job_too_large",
            ErrorCode::EncodeFailed => "encode_failed",
            ErrorCode::InvalidOp => "invalid_op",
            ErrorCode::UnsupportedFormat => "unsupported_format",
            ErrorCode::TimeLimit => "time_limit",
            ErrorCode::MemoryLimit => "memory_limit",
            ErrorCode::OriginalMissing => "original_missing",
            ErrorCode::LogoMissing => "logo_missing",
            ErrorCode::Configuration => "configuration",
            ErrorCode::GaveUp => "gave_up",
            ErrorCode::Unexplained => "failed",
            ErrorCode::Other(code) => code.as_str(),
        }
    }

    /// The code written `code`: a known one, else [`ErrorCode::Other`] (cut to
    /// [`UnknownCode::MAX_CHARS`]). Never fails: a status is not dropped for its code.
    pub fn parse(code: &str) -> ErrorCode {
        if let Some(known) = ErrorCode::KNOWN.into_iter().find(|k| k.as_str() == code) {
            return known;
        }
        let mut text = code.to_string();
        cut(&mut text, UnknownCode::MAX_CHARS);
        ErrorCode::Other(UnknownCode(text))
    }
}

impl From<&str> for ErrorCode {
    fn from(code: &str) -> Self {
        ErrorCode::parse(code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Ok(ErrorCode::parse(&code))
    }
}

/// Why a job failed, in words for its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: ErrorCode,
    pub message: String,
}

impl JobError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        JobError { code, message: message.into() }
    }
}
