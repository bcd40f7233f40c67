//! The `ObjectStore` seam: where originals, outputs and job records are kept.
//!
//! Backends: [`s3::S3Store`] (Amazon S3 or any S3-compatible server) and [`fs::FsStore`]
//! (a folder, the embedded default).

#[cfg(feature = "backends")]
pub mod fs;
#[cfg(feature = "backends")]
pub mod s3;

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("object `{0}` does not exist")]
    NotFound(String),
    #[error("the object store is unavailable: {0}")]
    Unavailable(String),
    #[error("the object store refused the request: {0}")]
    Rejected(String),
    /// Only the operator can fix it (missing bucket, permission, credentials): retrying the
    /// same request cannot help.
    #[error(transparent)]
    Misconfigured(#[from] crate::misconfig::Misconfiguration),
}

impl StoreError {
    /// Worth retrying later (the store was down, slow or throttling).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// The configuration error this is, if it is one.
    pub fn misconfiguration(&self) -> Option<&crate::misconfig::Misconfiguration> {
        match self {
            StoreError::Misconfigured(m) => Some(m),
            _ => None,
        }
    }
}

/// Size and type of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub content_type: Option<String>,
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Store `body` at `key`, replacing what was there.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError>;
    /// Store the file at `path` at `key`, replacing what was there, without reading the file
    /// into memory (an upload of tens of MiB goes from disk to the store in small pieces).
    /// The file is left where it is; removing it stays the caller's job. Atomic like `put`:
    /// a reader sees the old object or the whole new one.
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), StoreError>;
    /// The bytes at `key`; `NotFound` if there are none.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;
    /// Size and type of the object at `key`, `None` if missing.
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError>;
    /// Every key starting with `prefix`, in lexical order.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Remove `key`; removing a missing key is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Check that the store exists and this process may use it (the bucket is there and
    /// readable, the folder writable), without touching any object. A configuration error is
    /// [`StoreError::Misconfigured`].
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
