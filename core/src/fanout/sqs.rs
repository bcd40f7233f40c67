//! Replica inboxes on SQS: one standard queue per replica, created by the replica at start
//! (messages kept 5 minutes: an older notice is of no use) and deleted at its clean stop or,
//! after the grace period, by a live replica.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sqs::error::ProvideErrorMetadata;
use aws_sdk_sqs::types::QueueAttributeName;
use aws_sdk_sqs::Client;

use super::Inboxes;
use crate::queue::sqs::SqsQueue;
use crate::queue::{JobQueue, QueueError};

pub struct SqsInboxes {
    client: Client,
}

impl SqsInboxes {
    pub fn new(client: Client) -> Self {
        SqsInboxes { client }
    }
}

#[async_trait]
impl Inboxes for SqsInboxes {
    async fn create(&self, name: &str) -> Result<Arc<dyn JobQueue>, QueueError> {
        let attributes = [
            (QueueAttributeName::MessageRetentionPeriod, "300".to_string()),
            (QueueAttributeName::VisibilityTimeout, "30".to_string()),
        ];
        Ok(Arc::new(SqsQueue::ensure(self.client.clone(), name, &attributes).await?))
    }

    async fn open(&self, name: &str) -> Result<Arc<dyn JobQueue>, QueueError> {
        Ok(Arc::new(SqsQueue::open(self.client.clone(), name).await?))
    }

    async fn remove(&self, name: &str) -> Result<(), QueueError> {
        let queue = match SqsQueue::open(self.client.clone(), name).await {
            Ok(q) => q,
            Err(e) if e.is_missing() => return Ok(()),
            Err(e) => return Err(e),
        };
        match self.client.delete_queue().queue_url(queue.url()).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code().is_some_and(|c| c.contains("NonExistentQueue")) => Ok(()),
            Err(e) => Err(QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())),
        }
    }
}
