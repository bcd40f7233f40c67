//! Typed configuration, read from the environment (flags override). Both binaries flatten
//! [`BackendArgs`] into their command line, so `--help` lists every setting with its
//! environment variable.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use darkroom_engine::Limits;
use thiserror::Error;

use crate::aws;
use crate::queue::sqs::SqsQueue;
use crate::queue::{JobQueue, QueueError};
use crate::store::s3::S3Store;
use crate::store::{ObjectStore, StoreError};

pub const AWS_HELP: &str = "\
AWS settings come through the AWS SDK's standard variables: AWS_ENDPOINT_URL (an S3/SQS-compatible
server, e.g. http://127.0.0.1:5000), AWS_REGION (default us-east-1), AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ... Real AWS needs nothing else.";

/// Where Darkroom keeps objects and queues.
#[derive(clap::Args, Clone, Debug)]
pub struct BackendArgs {
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
    #[arg(
        long,
        env = "DARKROOM_DEAD_LETTER_QUEUE",
        default_value = "darkroom-dead-letters"
    )]
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
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_input_bytes: self.max_upload_bytes,
            max_pixels: self.max_pixels,
            max_output_dimension: self.max_output_dimension,
        }
    }
}

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("object store: {0}")]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}

impl ConnectError {
    pub fn is_missing_resource(&self) -> bool {
        matches!(self, ConnectError::Queue(QueueError::NoSuchQueue(_)))
    }
}

/// The connected backend: one store and the three queues.
#[derive(Clone)]
pub struct Backend {
    pub store: Arc<dyn ObjectStore>,
    pub jobs: Arc<dyn JobQueue>,
    pub replies: Arc<dyn JobQueue>,
    pub dead_letters: Arc<dyn JobQueue>,
    /// Human description for logs ("S3 bucket darkroom at http://…").
    pub description: String,
}

impl BackendArgs {
    pub fn visibility(&self) -> Duration {
        Duration::from_secs(self.visibility_timeout as u64)
    }

    /// Connect to existing resources; with `init`, create what is missing first (bucket,
    /// queues, the job queue's redrive policy to the dead-letter queue).
    pub async fn connect(&self, init: bool) -> Result<Backend, ConnectError> {
        self.connect_with(&aws::sdk_config().await, init).await
    }

    /// [`connect`](Self::connect) with an SDK configuration built by the caller.
    pub async fn connect_with(
        &self,
        sdk: &aws_config::SdkConfig,
        init: bool,
    ) -> Result<Backend, ConnectError> {
        let endpoint = sdk.endpoint_url().map(str::to_string);
        let path_style = self.s3_path_style.unwrap_or(endpoint.is_some());
        let s3 = S3Store::new(aws::s3_client(sdk, path_style), &self.bucket);
        let sqs = aws::sqs_client(sdk);
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
                    (
                        QueueAttributeName::VisibilityTimeout,
                        self.visibility_timeout.to_string(),
                    ),
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
            description,
        })
    }
}
