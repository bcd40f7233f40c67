//! `JobQueue` on Amazon SQS (or an SQS-compatible server) through aws-sdk-sqs.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry,
};
use aws_sdk_sqs::Client;

use super::{check_send, JobQueue, QueueCounts, QueueError, Received, MAX_BATCH};
use crate::misconfig::Resource;

#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    name: String,
    url: String,
}

fn classify<E, R>(queue: &str, e: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(m) = crate::aws::misconfiguration(Resource::Queue(queue.to_string()), &e) {
        return QueueError::Misconfigured(m);
    }
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            if code.contains("ReceiptHandleIsInvalid")
                || code.contains("InvalidParameterValue") && format!("{e:?}").contains("eceipt")
            {
                QueueError::StaleReceipt
            } else if code.contains("MessageTooLong") {
                QueueError::TooLarge(0)
            } else if code.contains("Throttl") || code.contains("ServiceUnavailable") || code.contains("InternalError")
            {
                QueueError::Unavailable(DisplayErrorContext(&e).to_string())
            } else {
                QueueError::Rejected(DisplayErrorContext(&e).to_string())
            }
        }
        _ => QueueError::Unavailable(DisplayErrorContext(&e).to_string()),
    }
}

/// Is `name_or_url` a queue URL rather than a name?
pub fn is_url(name_or_url: &str) -> bool {
    name_or_url.starts_with("http://") || name_or_url.starts_with("https://")
}

impl SqsQueue {
    /// Find an existing queue by name or URL.
    pub async fn open(client: Client, name_or_url: &str) -> Result<Self, QueueError> {
        if is_url(name_or_url) {
            let name = name_or_url.trim_end_matches('/').rsplit('/').next().unwrap_or(name_or_url).to_string();
            return Ok(SqsQueue { client, name, url: name_or_url.to_string() });
        }
        let out = client.get_queue_url().queue_name(name_or_url).send().await.map_err(|e| classify(name_or_url, e))?;
        let url = out
            .queue_url()
            .ok_or_else(|| QueueError::no_such_queue(name_or_url, "GetQueueUrl returned no URL"))?
            .to_string();
        Ok(SqsQueue { client, name: name_or_url.to_string(), url })
    }

    /// Open the queue, creating it if it is missing, and set its attributes.
    pub async fn ensure(
        client: Client,
        name_or_url: &str,
        attributes: &[(QueueAttributeName, String)],
    ) -> Result<Self, QueueError> {
        let queue = match Self::open(client.clone(), name_or_url).await {
            Ok(q) => q,
            Err(e) if e.is_missing() && !is_url(name_or_url) => {
                let out =
                    client.create_queue().queue_name(name_or_url).send().await.map_err(|e| classify(name_or_url, e))?;
                let url = out.queue_url().unwrap_or_default().to_string();
                SqsQueue { client, name: name_or_url.to_string(), url }
            }
            Err(e) => return Err(e),
        };
        if !attributes.is_empty() {
            let attrs: HashMap<_, _> = attributes.iter().cloned().collect();
            queue
                .client
                .set_queue_attributes()
                .queue_url(&queue.url)
                .set_attributes(Some(attrs))
                .send()
                .await
                .map_err(|e| classify(&queue.name, e))?;
        }
        Ok(queue)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The queue's ARN (needed for redrive policies).
    pub async fn arn(&self) -> Result<String, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        out.attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| QueueError::Rejected(format!("queue `{}` has no ARN", self.name)))
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, body: &str) -> Result<String, QueueError> {
        check_send(&[body])?;
        let out = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn send_batch(&self, bodies: &[&str]) -> Result<Vec<String>, QueueError> {
        check_send(bodies)?;
        let entries = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(*b).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Rejected(e.to_string()))?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        if let Some(f) = out.failed().first() {
            return Err(QueueError::Rejected(format!(
                "batch entry {} failed: {}",
                f.id(),
                f.message().unwrap_or(f.code())
            )));
        }
        let mut ids = vec![String::new(); bodies.len()];
        for ok in out.successful() {
            if let Ok(i) = ok.id().parse::<usize>() {
                ids[i] = ok.message_id().to_string();
            }
        }
        Ok(ids)
    }

    async fn delete_batch(&self, receipts: &[&str]) -> Result<(), QueueError> {
        if receipts.is_empty() || receipts.len() > MAX_BATCH {
            return Err(QueueError::BatchSize(receipts.len()));
        }
        let entries = receipts
            .iter()
            .enumerate()
            .map(|(i, r)| DeleteMessageBatchRequestEntry::builder().id(i.to_string()).receipt_handle(*r).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Rejected(e.to_string()))?;
        let out = self
            .client
            .delete_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        match out.failed().first() {
            Some(f) => {
                Err(QueueError::Rejected(format!("batch entry {} failed: {}", f.id(), f.message().unwrap_or(f.code()))))
            }
            None => Ok(()),
        }
    }

    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError> {
        if max == 0 || max as usize > MAX_BATCH {
            return Err(QueueError::BatchSize(max as usize));
        }
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(timeout.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        Ok(())
    }

    async fn counts(&self) -> Result<QueueCounts, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| classify(&self.name, e))?;
        let get = |k: QueueAttributeName| -> u64 {
            out.attributes().and_then(|a| a.get(&k)).and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        Ok(QueueCounts {
            visible: get(QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}
