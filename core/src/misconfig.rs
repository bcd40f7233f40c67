//! Configuration errors: what only the operator can fix (a bucket or queue that does not
//! exist, a permission that is missing, credentials that are absent, refused or expired, a
//! data folder that is not writable).
//!
//! They are told apart from outages on purpose (issue 13, "misconfiguration is loud"): an
//! outage passes and is worth retrying; a configuration error comes back on every attempt,
//! so retrying it would only burn a job's deliveries until `gave_up`. The store and queue
//! backends classify the service's answers into [`Misconfiguration`]; the processor gives the
//! job back to a correctly configured worker and exits after repeated ones; every binary
//! prints one line for it at exit ([`report_exit`](crate::exit::report_exit), in [`exit`](crate::exit)), never a backtrace.

use std::fmt;
use std::path::PathBuf;

/// What is misconfigured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The S3 bucket (`DARKROOM_BUCKET`).
    Bucket(String),
    /// An SQS queue, by name (`DARKROOM_JOB_QUEUE`, `DARKROOM_REPLY_QUEUE`, `DARKROOM_DEAD_LETTER_QUEUE`).
    Queue(String),
    /// This process's AWS credentials.
    Credentials,
    /// The embedded backend's folder (`DARKROOM_DATA_DIR`).
    DataDir(PathBuf),
}

/// What is wrong with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// It does not exist (NoSuchBucket, NonExistentQueue).
    Missing,
    /// This process's identity may not use it (AccessDenied).
    AccessDenied,
    /// The KMS key that encrypts it refused this process (KMS.AccessDeniedException, …).
    KmsAccessDenied,
    /// The bucket is in another region than AWS_REGION.
    WrongRegion,
    /// No credentials were found anywhere the SDK looks.
    NoCredentials,
    /// Credentials were found but could not be loaded (an SSO session, a credential process).
    CredentialsUnusable,
    /// The service does not know the key or the signature does not match (InvalidAccessKeyId,
    /// SignatureDoesNotMatch, InvalidClientTokenId).
    InvalidCredentials,
    /// The credentials have expired (ExpiredToken).
    ExpiredCredentials,
    /// The folder (or a file in it) cannot be written.
    ReadOnly,
}

/// A configuration error: `resource` has `problem`; `detail` is what the service or the
/// system said (one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misconfiguration {
    pub resource: Resource,
    pub problem: Problem,
    pub detail: String,
}

/// Where the AWS SDK looks for credentials, in its order (said when none were found).
pub const CREDENTIALS_LOOKUP: &str = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment; \
the profile AWS_PROFILE (default `default`) in ~/.aws/config and ~/.aws/credentials (keys, SSO after \
`aws sso login`, credential_process, role_arn); web identity (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, \
as on EKS); the ECS container role; the EC2 instance role";

impl Misconfiguration {
    pub fn new(resource: Resource, problem: Problem, detail: impl Into<String>) -> Self {
        let detail: String = detail.into();
        // One line, whatever the service said.
        let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
        Misconfiguration { resource, problem, detail }
    }

    /// Short code for logs, metrics and job errors.
    pub fn code(&self) -> &'static str {
        "configuration"
    }

    fn what(&self) -> String {
        match &self.resource {
            Resource::Bucket(b) => format!("S3 bucket `{b}`"),
            Resource::Queue(q) => format!("SQS queue `{q}`"),
            Resource::Credentials => "AWS credentials".to_string(),
            Resource::DataDir(d) => format!("data folder {}", d.display()),
        }
    }

    /// What to do about it.
    pub fn remedy(&self) -> String {
        let setting = match &self.resource {
            Resource::Bucket(_) => "DARKROOM_BUCKET",
            Resource::Queue(_) => "DARKROOM_JOB_QUEUE, DARKROOM_REPLY_QUEUE and DARKROOM_DEAD_LETTER_QUEUE",
            Resource::Credentials | Resource::DataDir(_) => "",
        };
        match self.problem {
            Problem::Missing => format!("create it with `darkroom-ctl init`, or check {setting}"),
            Problem::AccessDenied => {
                "grant this process's AWS identity the permissions docs/deploy.md lists for it".to_string()
            }
            Problem::KmsAccessDenied => {
                "grant this process's AWS identity kms:Decrypt and kms:GenerateDataKey on the key".to_string()
            }
            Problem::WrongRegion => "set AWS_REGION to the bucket's region".to_string(),
            Problem::NoCredentials => format!("credentials are looked for in: {CREDENTIALS_LOOKUP}"),
            Problem::CredentialsUnusable => format!(
                "fix the source that failed (for an SSO profile: `aws sso login`); credentials are looked for in: {CREDENTIALS_LOOKUP}"
            ),
            Problem::InvalidCredentials => {
                "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the profile AWS_PROFILE names".to_string()
            }
            Problem::ExpiredCredentials => {
                "renew them (for SSO: `aws sso login`), or let the role refresh them".to_string()
            }
            Problem::ReadOnly => "give this process write access to it, or set DARKROOM_DATA_DIR".to_string(),
        }
    }
}

impl fmt::Display for Misconfiguration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.what();
        let problem = match self.problem {
            Problem::Missing => format!("{what} does not exist"),
            Problem::AccessDenied => format!("access to {what} is denied"),
            Problem::KmsAccessDenied => format!("the KMS key of {what} refused access"),
            Problem::WrongRegion => format!("{what} is in another region"),
            Problem::NoCredentials => "no AWS credentials found".to_string(),
            Problem::CredentialsUnusable => "AWS credentials could not be loaded".to_string(),
            Problem::InvalidCredentials => format!("{what} were refused"),
            Problem::ExpiredCredentials => format!("{what} have expired"),
            Problem::ReadOnly => format!("{what} is not writable"),
        };
        write!(f, "configuration error: {problem}")?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        write!(f, "; {}", self.remedy())
    }
}

impl std::error::Error for Misconfiguration {}

/// Exit status of a process stopped by a configuration error (sysexits' EX_CONFIG).
pub const EXIT_CONFIGURATION: u8 = 78;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_is_wrong_and_what_to_do_in_one_line() {
        let m = Misconfiguration::new(Resource::Bucket("nope".into()), Problem::Missing, "NoSuchBucket:\n  gone");
        let text = m.to_string();
        assert_eq!(
            text,
            "configuration error: S3 bucket `nope` does not exist (NoSuchBucket: gone); \
             create it with `darkroom-ctl init`, or check DARKROOM_BUCKET"
        );
        let none = Misconfiguration::new(Resource::Credentials, Problem::NoCredentials, "");
        assert!(none.to_string().starts_with(
            "configuration error: no AWS credentials found; credentials are looked for in: AWS_ACCESS_KEY_ID"
        ));
        assert!(!none.to_string().contains('\n'));
    }
}
