//! Typed configuration, read from the environment (flags override). Both binaries flatten
//! [`BackendArgs`] into their command line, so `--help` lists every setting with its
//! environment variable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use darkroom_protocol::Limits;
use thiserror::Error;

use crate::aws;
use crate::fanout::embedded::EmbeddedInboxes;
use crate::fanout::sqs::SqsInboxes;
use crate::fanout::Inboxes;
use crate::misconfig::{Misconfiguration, Problem};
use crate::queue::embedded::{EmbeddedDb, QueueSettings};
use crate::queue::sqs::{self, SqsQueue};
use crate::queue::{JobQueue, QueueError};
use crate::store::fs::FsStore;
use crate::store::s3::S3Store;
use crate::store::{ObjectStore, StoreError};

pub const AWS_HELP: &str = "\
AWS settings come through the AWS SDK's standard variables: AWS_ENDPOINT_URL (an S3/SQS-compatible
server, e.g. http://127.0.0.1:5000), AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_PROFILE (keys, SSO, credential_process, role_arn), web identity,
container and instance roles. Real AWS needs nothing else. `darkroom-ctl init` creates the bucket
and queues. A configuration error (missing bucket or queue, permission, credentials) exits 78.";

/// Which implementation of the store and queues to use.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// Objects in a folder, queues in an SQLite database, both under DARKROOM_DATA_DIR.
    Embedded,
    /// Amazon S3 and SQS, or S3/SQS-compatible servers (AWS_ENDPOINT_URL).
    Aws,
}

/// Where Darkroom keeps objects and queues.
#[derive(clap::Args, Clone, Debug)]
pub struct BackendArgs {
    /// Backend: `embedded` or `aws`. Default: `aws` when AWS_ENDPOINT_URL (or a queue URL) is
    /// configured, `embedded` otherwise.
    #[arg(long = "backend", env = "DARKROOM_BACKEND", value_enum)]
    pub backend: Option<BackendKind>,
    /// Folder of the embedded backend (objects, queue database), shared by every process.
    #[arg(long, env = "DARKROOM_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// S3 bucket holding originals, outputs and job records.
    #[arg(long, env = "DARKROOM_BUCKET", default_value = "darkroom")]
    pub bucket: String,
    /// Job queue (name or URL).
    #[arg(long, env = "DARKROOM_JOB_QUEUE", default_value = "darkroom-jobs")]
    pub job_queue: String,
    /// Reply queue for worker status messages (name or URL).
    #[arg(long, env = "DARKROOM_REPLY_QUEUE", default_value = "darkroom-replies")]
    pub reply_queue: String,
    /// Dead-letter queue for jobs that failed too often (name or URL).
    #[arg(long, env = "DARKROOM_DEAD_LETTER_QUEUE", default_value = "darkroom-dead-letters")]
    pub dead_letter_queue: String,
    /// Seconds a received job stays hidden from other workers; workers extend it while they work.
    #[arg(long, env = "DARKROOM_VISIBILITY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=43_200))]
    pub visibility_timeout: u32,
    /// Deliveries of a job before the queue moves it to the dead-letter queue.
    #[arg(long, env = "DARKROOM_MAX_RECEIVES", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_receives: u32,
    /// S3 path-style addressing (bucket in the path). Default: on when AWS_ENDPOINT_URL is set.
    #[arg(long, env = "DARKROOM_S3_PATH_STYLE")]
    pub s3_path_style: Option<bool>,
}

/// Limits on what users may upload (checked by the web app at upload, again by the processor).
#[derive(clap::Args, Clone, Debug)]
pub struct LimitArgs {
    /// Largest upload accepted per file, in bytes.
    #[arg(long, env = "DARKROOM_MAX_UPLOAD_BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_upload_bytes: u64,
    /// Largest image accepted, in pixels (width × height), checked from the header before decoding.
    #[arg(long, env = "DARKROOM_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    /// Largest width or height of an output.
    #[arg(long, env = "DARKROOM_MAX_OUTPUT_DIMENSION", default_value_t = Limits::default().max_output_dimension)]
    pub max_output_dimension: u32,
    /// Most pixels of any image a job makes (each step and each output).
    #[arg(long, env = "DARKROOM_MAX_OUTPUT_PIXELS", default_value_t = Limits::default().max_output_pixels)]
    pub max_output_pixels: u64,
    /// Most pixels of all of a job's outputs together.
    #[arg(long, env = "DARKROOM_MAX_JOB_OUTPUT_PIXELS", default_value_t = Limits::default().max_job_output_pixels)]
    pub max_job_output_pixels: u64,
    /// Most encoded bytes of all of a job's outputs together.
    #[arg(long, env = "DARKROOM_MAX_JOB_OUTPUT_BYTES", default_value_t = Limits::default().max_job_output_bytes)]
    pub max_job_output_bytes: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_input_bytes: self.max_upload_bytes,
            max_pixels: self.max_pixels,
            max_output_dimension: self.max_output_dimension,
            max_output_pixels: self.max_output_pixels,
            max_job_output_pixels: self.max_job_output_pixels,
            max_job_output_bytes: self.max_job_output_bytes,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
    /// No usable credentials, or another setting only the operator can fix.
    #[error(transparent)]
    Misconfigured(#[from] Misconfiguration),
    /// The credentials provider did not answer in time (worth another try).
    #[error("AWS credentials could not be loaded in time: {0}")]
    CredentialsUnavailable(String),
}

impl ConnectError {
    /// A bucket or queue that does not exist (`darkroom-ctl init` creates them).
    pub fn is_missing_resource(&self) -> bool {
        self.misconfiguration().is_some_and(|m| m.problem == Problem::Missing)
    }

    /// The configuration error this is, if it is one: retrying will not help.
    pub fn misconfiguration(&self) -> Option<&Misconfiguration> {
        match self {
            ConnectError::Store(e) => e.misconfiguration(),
            ConnectError::Queue(e) => e.misconfiguration(),
            ConnectError::Misconfigured(m) => Some(m),
            ConnectError::CredentialsUnavailable(_) => None,
        }
    }
}

/// The connected backend: one store and the three queues.
#[derive(Clone)]
pub struct Backend {
    pub store: Arc<dyn ObjectStore>,
    pub jobs: Arc<dyn JobQueue>,
    pub replies: Arc<dyn JobQueue>,
    pub dead_letters: Arc<dyn JobQueue>,
    /// Where web app replicas create their inboxes for change notices ([`crate::fanout`]).
    pub inboxes: Arc<dyn Inboxes>,
    /// Human description for logs ("S3 bucket darkroom at http://…").
    pub description: String,
    pub kind: BackendKind,
}

impl BackendArgs {
    pub fn visibility(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout as u64)
    }

    /// The backend in use: as configured, else `aws` if an AWS endpoint or a queue URL is
    /// configured, else `embedded`.
    pub fn kind(&self) -> BackendKind {
        self.backend.unwrap_or_else(|| {
            let endpoint = ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
            let urls = [&self.job_queue, &self.reply_queue, &self.dead_letter_queue].iter().any(|q| sqs::is_url(q));
            if endpoint || urls {
                BackendKind::Aws
            } else {
                BackendKind::Embedded
            }
        })
    }

    /// Say so, as a warning, when the embedded backend is in use only because nothing else was
    /// configured: a deployment that forgot its AWS settings would otherwise run on a local
    /// folder without a word.
    pub fn warn_if_embedded_by_default(&self) {
        if self.backend.is_none() && self.kind() == BackendKind::Embedded {
            tracing::warn!(
                data_dir = %self.data_dir.display(),
                "using the embedded backend because neither DARKROOM_BACKEND nor AWS_ENDPOINT_URL nor a queue URL is set; \
                 set DARKROOM_BACKEND=embedded to say so, or DARKROOM_BACKEND=aws for Amazon S3 and SQS"
            );
        }
    }

    /// Connect to existing resources; with `init`, create what is missing first (bucket,
    /// queues, the job queue's redrive policy to the dead-letter queue). Without `init`
    /// nothing is created or changed: a missing bucket or queue is a configuration error
    /// saying to run `darkroom-ctl init`. On AWS the credentials are loaded first, so that
    /// none at all is one configuration error, not a failure of every request. The embedded
    /// backend always creates what is missing (a folder on this machine), and its folder must
    /// be writable.
    pub async fn connect(&self, init: bool) -> Result<Backend, ConnectError> {
        match self.kind() {
            BackendKind::Aws => self.connect_with(&aws::sdk_config().await, init).await,
            BackendKind::Embedded => {
                let this = self.clone();
                tokio::task::spawn_blocking(move || this.connect_embedded())
                    .await
                    .map_err(|e| ConnectError::Queue(QueueError::Unavailable(e.to_string())))?
            }
        }
    }

    /// The embedded backend in `data_dir`.
    pub fn connect_embedded(&self) -> Result<Backend, ConnectError> {
        let store = FsStore::open(&self.data_dir)?;
        let db = EmbeddedDb::open(&self.data_dir)?;
        let plain = QueueSettings { visibility: self.visibility(), redrive: None };
        let dead_letters = db.ensure(&self.dead_letter_queue, &plain)?;
        let jobs = db.ensure(
            &self.job_queue,
            &QueueSettings {
                visibility: self.visibility(),
                redrive: Some((self.dead_letter_queue.clone(), self.max_receives)),
            },
        )?;
        let replies = db.ensure(&self.reply_queue, &plain)?;
        // A read-only folder opens (SQLite reads it) and fails the first write: say so now.
        store.check_sync()?;
        let dir = std::fs::canonicalize(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        Ok(Backend {
            store: Arc::new(store),
            jobs: Arc::new(jobs),
            replies: Arc::new(replies),
            dead_letters: Arc::new(dead_letters),
            inboxes: Arc::new(EmbeddedInboxes::new(db)),
            description: format!(
                "embedded backend in {} (queues `{}`/`{}`/`{}`)",
                dir.display(),
                self.job_queue,
                self.reply_queue,
                self.dead_letter_queue
            ),
            kind: BackendKind::Embedded,
        })
    }

    /// [`connect`](Self::connect) with an SDK configuration built by the caller.
    pub async fn connect_with(&self, sdk: &aws_config::SdkConfig, init: bool) -> Result<Backend, ConnectError> {
        let endpoint = sdk.endpoint_url().map(str::to_string);
        let path_style = self.s3_path_style.unwrap_or(endpoint.is_some());
        let s3 = S3Store::new(aws::s3_client(sdk, path_style), &self.bucket);
        let sqs = aws::sqs_client(sdk);
        match aws::check_credentials(sdk).await {
            Ok(()) => {}
            Err(aws::CredentialsCheck::Misconfigured(m)) => return Err(m.into()),
            Err(aws::CredentialsCheck::Unavailable(e)) => return Err(ConnectError::CredentialsUnavailable(e)),
        }
        let (jobs, replies, dead_letters) = if init {
            s3.ensure_bucket(sdk.region().map(|r| r.as_ref())).await?;
            let dlq = SqsQueue::ensure(sqs.clone(), &self.dead_letter_queue, &[]).await?;
            let redrive = serde_json::json!({
                "deadLetterTargetArn": dlq.arn().await?,
                "maxReceiveCount": self.max_receives.to_string(),
            });
            let jobs = SqsQueue::ensure(
                sqs.clone(),
                &self.job_queue,
                &[
                    (QueueAttributeName::VisibilityTimeout, self.visibility_timeout.to_string()),
                    (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                ],
            )
            .await?;
            let replies = SqsQueue::ensure(sqs.clone(), &self.reply_queue, &[]).await?;
            (jobs, replies, dlq)
        } else {
            (
                SqsQueue::open(sqs.clone(), &self.job_queue).await?,
                SqsQueue::open(sqs.clone(), &self.reply_queue).await?,
                SqsQueue::open(sqs.clone(), &self.dead_letter_queue).await?,
            )
        };
        if !init {
            // The bucket exists and this identity may list it (HeadBucket), checked once here
            // so that a wrong DARKROOM_BUCKET stops the process at start, not its first job.
            s3.check().await?;
        }
        let description = format!(
            "S3 bucket `{}` and SQS queues `{}`/`{}`/`{}` at {}",
            self.bucket,
            jobs.name(),
            replies.name(),
            dead_letters.name(),
            endpoint.as_deref().unwrap_or("AWS")
        );
        Ok(Backend {
            store: Arc::new(s3),
            jobs: Arc::new(jobs),
            replies: Arc::new(replies),
            dead_letters: Arc::new(dead_letters),
            inboxes: Arc::new(SqsInboxes::new(sqs)),
            description,
            kind: BackendKind::Aws,
        })
    }
}
