//! The `JobQueue` seam: a queue with SQS's semantics (at-least-once delivery, visibility
//! timeout, receive count, redrive to a dead-letter queue).
//!
//! Backends: [`sqs::SqsQueue`] (Amazon SQS or any SQS-compatible server).

pub mod sqs;

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    #[error("queue `{0}` does not exist (run `darkroom-web --init` to create it)")]
    NoSuchQueue(String),
    #[error("the receipt handle is no longer valid (the message was redelivered or deleted)")]
    StaleReceipt,
    #[error("the message is too large for the queue ({0} bytes)")]
    TooLarge(usize),
    #[error("the queue service is unavailable: {0}")]
    Unavailable(String),
    #[error("the queue service refused the request: {0}")]
    Rejected(String),
}

impl QueueError {
    /// Worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }
}

/// A received message. `receipt` is needed to delete it or change its visibility.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub message_id: String,
    pub body: String,
    pub receipt: String,
    /// How many times the message has been received, this time included (from 1).
    pub receive_count: u32,
}

/// Approximate depth of a queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages waiting to be received.
    pub visible: u64,
    /// Messages received and not yet deleted or returned.
    pub in_flight: u64,
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// The queue's name (for logs and messages).
    fn name(&self) -> &str;
    /// Enqueue `body`; returns the message id.
    async fn send(&self, body: &str) -> Result<String, QueueError>;
    /// Receive up to `max` (1–10) messages, waiting up to `wait` for the first one.
    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError>;
    /// Delete a received message for good.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Hide a received message for `timeout` from now (0 makes it visible at once).
    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError>;
    /// Approximate visible and in-flight counts.
    async fn counts(&self) -> Result<QueueCounts, QueueError>;
}
