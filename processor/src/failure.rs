//! How a job attempt ends badly, and which error code each failure gives the job.
//!
//! The one place that classifies: an engine or sandbox refusal is [`Failure::Permanent`] (with
//! its code), a store or queue that could not be reached is [`Failure::Transient`], a missing
//! bucket or permission is [`Failure::Configuration`] (crate::misconfig). The job's steps
//! (crate::job, crate::resources) only say what went wrong; what it means for the job is
//! decided here and acted on in crate::job. A leaf module: it uses no other processor module
//! but the sandbox's error type.

use darkroom_core::misconfig::Misconfiguration;
use darkroom_core::store::StoreError;
use darkroom_engine::EngineError;
use darkroom_protocol::lifecycle::{ErrorCode, JobError};

use crate::sandbox::SandboxError;

/// How a job attempt ended badly.
#[derive(Debug)]
pub enum Failure {
    /// The job can never succeed (bad input, over a limit): fail it now.
    Permanent(JobError),
    /// The store or queue was unreachable: try again later.
    Transient(String),
    /// The engine panicked: treat as a crash, let the queue redeliver.
    Crash(String),
    /// This processor is misconfigured (missing bucket, permission, credentials): give the
    /// job back for another processor (crate::misconfig).
    Configuration(Misconfiguration),
    /// Its owner cancelled the job before it was rendered (its cancel marker is stored): post
    /// `cancelled` and delete the message, making nothing.
    Cancelled,
}

impl Failure {
    /// A watermark logo the recipe names is not in the store: it will not appear by retrying.
    pub fn logo_missing(key: &str) -> Failure {
        Failure::Permanent(JobError {
            code: ErrorCode::LogoMissing,
            message: format!(
                "The watermark logo {key} is not in storage (it was never uploaded or has been deleted). Upload the logo again and use the key POST /api/logos answers with."
            ),
        })
    }
}

/// The error of a job that failed transiently (or crashed) on its last delivery: the queue
/// would dead-letter it, so it is failed with what went wrong last.
pub fn gave_up(attempt: u32, detail: &str) -> JobError {
    JobError {
        code: ErrorCode::GaveUp,
        message: format!("Processing failed {attempt} times; gave up. Last error: {detail}"),
    }
}

/// The error of a job that met a configuration error on its last delivery: failed with what is
/// wrong rather than dead-lettered as `gave_up`.
pub fn misconfigured(m: &Misconfiguration) -> JobError {
    JobError { code: ErrorCode::Configuration, message: m.to_string() }
}

impl From<EngineError> for Failure {
    fn from(e: EngineError) -> Self {
        Failure::Permanent(JobError { code: e.code().into(), message: e.to_string() })
    }
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        match e {
            SandboxError::Engine { code, message } => {
                Failure::Permanent(JobError { code: code.as_str().into(), message })
            }
            SandboxError::TimeLimit(secs) => EngineError::TimeLimit(secs).into(),
            e @ SandboxError::MemoryLimit(_) => {
                Failure::Permanent(JobError { code: ErrorCode::MemoryLimit, message: e.to_string() })
            }
            SandboxError::Crashed(detail) => Failure::Crash(format!("the image engine crashed: {detail}")),
            SandboxError::Stopped => Failure::Transient("stopped while rendering".into()),
            SandboxError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(key) => Failure::Permanent(JobError {
                code: ErrorCode::OriginalMissing,
                message: format!("The original photo ({key}) is no longer in storage; upload it again."),
            }),
            StoreError::Misconfigured(m) => Failure::Configuration(m),
            other => Failure::Transient(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkroom_core::misconfig::{Problem, Resource};

    fn code(f: Failure) -> String {
        match f {
            Failure::Permanent(e) => serde_json::to_value(&e).unwrap()["code"].as_str().unwrap().to_string(),
            other => panic!("not permanent: {other:?}"),
        }
    }

    #[test]
    fn refusals_are_permanent_with_their_code() {
        assert_eq!(code(EngineError::NotAnImage.into()), "not_an_image");
        assert_eq!(code(SandboxError::TimeLimit(5).into()), "time_limit");
        assert_eq!(code(SandboxError::MemoryLimit(1 << 30).into()), "memory_limit");
        assert_eq!(code(StoreError::NotFound("originals/x".into()).into()), "original_missing");
        assert_eq!(code(Failure::logo_missing("logos/x.png")), "logo_missing");
    }

    #[test]
    fn outages_and_crashes_are_worth_another_attempt() {
        assert!(matches!(StoreError::Unavailable("down".into()).into(), Failure::Transient(_)));
        assert!(matches!(SandboxError::Stopped.into(), Failure::Transient(_)));
        assert!(matches!(SandboxError::Crashed("segfault".into()).into(), Failure::Crash(_)));
        let m = Misconfiguration::new(Resource::Queue("jobs".into()), Problem::Missing, "no such queue");
        assert!(matches!(StoreError::Misconfigured(m).into(), Failure::Configuration(_)));
    }
}
