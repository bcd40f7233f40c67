//! The engine's one error type: a [`Refusal`] (the rules the protocol crate owns: limits,
//! headers, sizes), or what only pixel work can run into (an encoder failing, the time limit).
//!
//! The refusal variants keep their own names here, so engine code matches and builds them
//! directly; their codes and messages come from [`Refusal`] ([`EngineError::refusal`]), one
//! text for the web app's door and the processor's report.

use std::fmt;

use darkroom_protocol::refusal::{JobMeasure, Refusal};

#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    Empty,
    FileTooLarge {
        bytes: u64,
        limit: u64,
    },
    NotAnImage,
    TooManyPixels {
        width: u32,
        height: u32,
        limit: u64,
    },
    Corrupt(String),
    OutputTooLarge {
        width: u32,
        height: u32,
        limit: u32,
    },
    OutputTooManyPixels {
        width: u32,
        height: u32,
        limit: u64,
    },
    JobTooLarge {
        what: JobMeasure,
        amount: u64,
        limit: u64,
    },
    /// The encoder failed (a format's own limit, a missing library).
    Encode {
        format: &'static str,
        detail: String,
    },
    UnsupportedFormat(String),
    InvalidOp(String),
    /// The job ran past its time limit (seconds).
    TimeLimit(u64),
}

impl From<Refusal> for EngineError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Empty => EngineError::Empty,
            Refusal::FileTooLarge { bytes, limit } => EngineError::FileTooLarge { bytes, limit },
            Refusal::NotAnImage => EngineError::NotAnImage,
            Refusal::TooManyPixels { width, height, limit } => EngineError::TooManyPixels { width, height, limit },
            Refusal::Corrupt(why) => EngineError::Corrupt(why),
            Refusal::OutputTooLarge { width, height, limit } => EngineError::OutputTooLarge { width, height, limit },
            Refusal::OutputTooManyPixels { width, height, limit } => {
                EngineError::OutputTooManyPixels { width, height, limit }
            }
            Refusal::JobTooLarge { what, amount, limit } => EngineError::JobTooLarge { what, amount, limit },
            Refusal::UnsupportedFormat(what) => EngineError::UnsupportedFormat(what),
            Refusal::InvalidOp(why) => EngineError::InvalidOp(why),
        }
    }
}

impl EngineError {
    /// The protocol's refusal this error is, or `None` for what only the engine runs into
    /// ([`EngineError::Encode`], [`EngineError::TimeLimit`]).
    pub fn refusal(&self) -> Option<Refusal> {
        Some(match self.clone() {
            EngineError::Empty => Refusal::Empty,
            EngineError::FileTooLarge { bytes, limit } => Refusal::FileTooLarge { bytes, limit },
            EngineError::NotAnImage => Refusal::NotAnImage,
            EngineError::TooManyPixels { width, height, limit } => Refusal::TooManyPixels { width, height, limit },
            EngineError::Corrupt(why) => Refusal::Corrupt(why),
            EngineError::OutputTooLarge { width, height, limit } => Refusal::OutputTooLarge { width, height, limit },
            EngineError::OutputTooManyPixels { width, height, limit } => {
                Refusal::OutputTooManyPixels { width, height, limit }
            }
            EngineError::JobTooLarge { what, amount, limit } => Refusal::JobTooLarge { what, amount, limit },
            EngineError::UnsupportedFormat(what) => Refusal::UnsupportedFormat(what),
            EngineError::InvalidOp(why) => Refusal::InvalidOp(why),
            EngineError::Encode { .. } | EngineError::TimeLimit(_) => return None,
        })
    }

    /// A stable machine-readable code, used in API errors and status messages.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::Encode { .. } => "encode_failed",
            EngineError::TimeLimit(_) => "time_limit",
            other => other.refusal().map_or("internal", |r| r.code()),
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Encode { format, detail } => write!(f, "Could not encode the output as {format}: {detail}"),
            EngineError::TimeLimit(secs) => write!(
                f,
                "Processing took longer than the limit of {secs} seconds. Ask for fewer outputs or smaller sizes."
            ),
            other => match other.refusal() {
                Some(r) => r.fmt(f),
                None => Ok(()),
            },
        }
    }
}

impl std::error::Error for EngineError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_keep_their_codes_and_messages_through_the_engine() {
        let all = [
            Refusal::Empty,
            Refusal::FileTooLarge { bytes: 10, limit: 5 },
            Refusal::NotAnImage,
            Refusal::TooManyPixels { width: 20_000, height: 20_000, limit: 100_000_000 },
            Refusal::Corrupt("cut short".into()),
            Refusal::OutputTooLarge { width: 20_000, height: 1, limit: 16_384 },
            Refusal::OutputTooManyPixels { width: 12_000, height: 12_000, limit: 100_000_000 },
            Refusal::JobTooLarge { what: JobMeasure::Bytes, amount: 2_000_000_000, limit: 1_000_000_000 },
            Refusal::UnsupportedFormat("AVIF".into()),
            Refusal::InvalidOp("no".into()),
        ];
        for r in all {
            let e = EngineError::from(r.clone());
            assert_eq!((e.code(), e.to_string()), (r.code(), r.to_string()));
            assert_eq!(e.refusal(), Some(r));
        }
        assert_eq!(EngineError::TimeLimit(3).code(), "time_limit");
        assert_eq!(EngineError::Encode { format: "avif", detail: "x".into() }.code(), "encode_failed");
    }
}
