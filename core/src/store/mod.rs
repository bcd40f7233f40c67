//! The `ObjectStore` seam: where originals, outputs and job records are kept.
//!
//! Backends: [`s3::S3Store`] (Amazon S3 or any S3-compatible server) and [`fs::FsStore`]
//! (a folder, the embedded default).
//!
//! Conditional writes ([`ObjectStore::get_versioned`], [`ObjectStore::put_if`]) let several
//! processes rewrite one small object (a job record) without losing each other's changes:
//! read it with its [`Version`], change it, and write it back only if it is still at that
//! version; on [`StoreError::Conflict`] read again and redo the change. S3 does it with
//! `If-Match: <ETag>` / `If-None-Match: *` on PutObject; the folder with a lock file shared by
//! every process on the machine around compare-and-rename.

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
    /// A conditional write found the object changed (or created, or deleted) since it was
    /// read: read it again and redo the change.
    #[error("object `{0}` changed since it was read")]
    Conflict(String),
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

/// What an object was when it was read (S3's ETag; the folder's content digest). Two reads
/// of the same bytes may give the same version: writing over either is then the same write.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(pub String);

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Store `body` at `key`, replacing what was there.
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError>;
    /// Store the file at `path` at `key`, replacing what was there, without reading the file
    /// into memory (an upload of tens of MiB goes from disk to the store in small pieces).
    /// The file is left where it is; removing it stays the caller's job. Atomic like `put`:
    /// a reader sees the old object or the whole new one.
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), StoreError>;

    // Conditional writes

    /// The bytes at `key` and their [`Version`]; `NotFound` if there are none.
    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version), StoreError> {
        let _ = key;
        Err(StoreError::Rejected("this object store has no conditional writes".into()))
    }
    /// Store `body` at `key` only if the object is still at `expected` (`None`: only if there is
    /// no object at `key`), atomically with respect to every other `put_if` and `put` on `key`,
    /// from any process. [`StoreError::Conflict`] when it is not (changed, created or deleted
    /// meanwhile): nothing was written. Returns the new version.
    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let _ = (key, body, content_type, expected);
        Err(StoreError::Rejected("this object store has no conditional writes".into()))
    }
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
