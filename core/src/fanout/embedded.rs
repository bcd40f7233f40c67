//! Replica inboxes in the embedded queue database: ordinary embedded queues (so a long poll
//! on one wakes across processes through the doorbell), removed with their messages.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::Inboxes;
use crate::queue::embedded::{EmbeddedDb, QueueSettings};
use crate::queue::{JobQueue, QueueError};

pub struct EmbeddedInboxes {
    db: Arc<EmbeddedDb>,
}

impl EmbeddedInboxes {
    pub fn new(db: Arc<EmbeddedDb>) -> Self {
        EmbeddedInboxes { db }
    }
}

/// A notice is deleted as it is received; this only matters if the receiver dies in between.
const VISIBILITY: Duration = Duration::from_secs(30);

#[async_trait]
impl Inboxes for EmbeddedInboxes {
    async fn create(&self, name: &str) -> Result<Arc<dyn JobQueue>, QueueError> {
        let (db, name) = (self.db.clone(), name.to_string());
        let q = tokio::task::spawn_blocking(move || {
            db.ensure(&name, &QueueSettings { visibility: VISIBILITY, redrive: None })
        })
        .await
        .map_err(|e| QueueError::Unavailable(e.to_string()))??;
        Ok(Arc::new(q))
    }

    async fn open(&self, name: &str) -> Result<Arc<dyn JobQueue>, QueueError> {
        let (db, name) = (self.db.clone(), name.to_string());
        let q = tokio::task::spawn_blocking(move || db.open_existing(&name))
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))??;
        Ok(Arc::new(q))
    }

    async fn remove(&self, name: &str) -> Result<(), QueueError> {
        let (db, name) = (self.db.clone(), name.to_string());
        tokio::task::spawn_blocking(move || db.remove(&name))
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?
    }
}
