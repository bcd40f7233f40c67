//! The `JobQueue` seam: a queue with SQS's semantics (at-least-once delivery, visibility
//! timeout, receive count, redrive to a dead-letter queue).
//!
//! Backends: [`sqs::SqsQueue`] (Amazon SQS or any SQS-compatible server) and
//! [`embedded::EmbeddedQueue`] (SQLite, shared by processes on one machine, the default).

#[cfg(feature = "backends")]
pub mod doorbell;
#[cfg(feature = "backends")]
pub mod embedded;
#[cfg(feature = "backends")]
pub mod sqs;

use std::time::Duration;

use async_trait::async_trait;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum QueueError {
    #[error("the receipt handle is no longer valid (the message was redelivered or deleted)")]
    StaleReceipt,
    #[error("the message is {0} bytes, over the queue's limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    #[error("the queue service is unavailable: {0}")]
    Unavailable(String),
    #[error("the queue service refused the request: {0}")]
    Rejected(String),
    #[error("a batch holds 1 to {MAX_BATCH} entries, got {0}")]
    BatchSize(usize),
    /// Only the operator can fix it (missing queue, permission, credentials): retrying the
    /// same request cannot help.
    #[error(transparent)]
    Misconfigured(#[from] crate::misconfig::Misconfiguration),
}

/// Most messages in one send, receive or delete batch (as SQS).
pub const MAX_BATCH: usize = 10;
/// Largest message body accepted by every backend (SQS's classic limit; emulators assume it).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Checks every backend applies before sending.
pub fn check_send(bodies: &[&str]) -> Result<(), QueueError> {
    if bodies.is_empty() || bodies.len() > MAX_BATCH {
        return Err(QueueError::BatchSize(bodies.len()));
    }
    if let Some(big) = bodies.iter().find(|b| b.len() > MAX_MESSAGE_BYTES) {
        return Err(QueueError::TooLarge(big.len()));
    }
    Ok(())
}

impl QueueError {
    /// Worth retrying later.
    pub fn is_transient(&self) -> bool {
        matches!(self, QueueError::Unavailable(_))
    }

    /// `queue` does not exist.
    pub fn no_such_queue(queue: &str, detail: impl Into<String>) -> Self {
        use crate::misconfig::{Misconfiguration, Problem, Resource};
        QueueError::Misconfigured(Misconfiguration::new(Resource::Queue(queue.to_string()), Problem::Missing, detail))
    }

    /// The configuration error this is, if it is one.
    pub fn misconfiguration(&self) -> Option<&crate::misconfig::Misconfiguration> {
        match self {
            QueueError::Misconfigured(m) => Some(m),
            _ => None,
        }
    }

    /// Does the queue not exist?
    pub fn is_missing(&self) -> bool {
        self.misconfiguration().is_some_and(|m| m.problem == crate::misconfig::Problem::Missing)
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
    /// Enqueue 1–10 bodies at once; returns their message ids in order.
    async fn send_batch(&self, bodies: &[&str]) -> Result<Vec<String>, QueueError>;
    /// Receive up to `max` (1–10) messages, waiting up to `wait` (at most 20 s) for the first
    /// one and returning as soon as one is there.
    async fn receive(&self, max: u32, wait: Duration) -> Result<Vec<Received>, QueueError>;
    /// Delete a received message for good. As SQS: deleting twice is fine, and a receipt from
    /// an earlier receive succeeds without deleting a message someone else now holds.
    async fn delete(&self, receipt: &str) -> Result<(), QueueError>;
    /// Delete 1–10 received messages.
    async fn delete_batch(&self, receipts: &[&str]) -> Result<(), QueueError>;
    /// Hide a received message for `timeout` from now (0 makes it visible at once).
    async fn change_visibility(&self, receipt: &str, timeout: Duration) -> Result<(), QueueError>;
    /// Approximate visible and in-flight counts.
    async fn counts(&self) -> Result<QueueCounts, QueueError>;
}
