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
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::Stream;
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

    // Downloads

    /// What a download needs to know of the object at `key` before reading it (size, strong
    /// `ETag`, type, time), `None` if missing. The default reads the whole object (for stores
    /// without a cheaper way; both backends have one).
    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.get(key).await {
            Ok(data) => Ok(Some(ObjectMeta::of_bytes(&data))),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The object at `key`, or the part `range` asks for, as a stream of chunks: the object is
    /// never held in memory whole. `NotFound` if missing; a range outside the object is no
    /// error but [`Served::Unsatisfiable`] with an empty body. The default reads the whole
    /// object first (for stores without a streaming read; both backends stream).
    async fn get_stream(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectStream, StoreError> {
        let data = self.get(key).await?;
        let meta = ObjectMeta::of_bytes(&data);
        let (served, body) = match range.map(|r| r.resolve(meta.size)) {
            None => (Served::Whole, data),
            Some(None) => (Served::Unsatisfiable, Bytes::new()),
            Some(Some((first, last))) => (Served::Part { first, last }, data.slice(first as usize..=last as usize)),
        };
        let body: ByteStream = Box::pin(futures_util::stream::iter([Ok(body)]));
        Ok(ObjectStream { meta, served, body })
    }

    /// A URL from which anyone holding it may GET the object at `key` directly from the store
    /// for `ttl`, answered with the headers of `response`; `None` if this store cannot issue
    /// one (the folder store), so the caller serves the bytes itself.
    async fn presigned_get(
        &self,
        _key: &str,
        _ttl: Duration,
        _response: &ResponseHeaders,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
}

// Downloads

/// The part of an object a `Range: bytes=…` header asks for (one range; RFC 9110 §14.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=first-last`: both inclusive; a `last` past the end means the end.
    Span { first: u64, last: u64 },
    /// `bytes=first-`: from `first` to the end.
    From(u64),
    /// `bytes=-n`: the last `n` bytes (the whole object if it is shorter).
    Suffix(u64),
}

impl ByteRange {
    /// The first and last (inclusive) positions this range covers in an object of `size`
    /// bytes, or `None` if it covers none (the answer is then `416`).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            _ if size == 0 => None,
            ByteRange::Span { first, last } if first <= last && first < size => Some((first, last.min(size - 1))),
            ByteRange::Span { .. } => None,
            ByteRange::From(first) if first < size => Some((first, size - 1)),
            ByteRange::From(_) => None,
            ByteRange::Suffix(0) => None,
            ByteRange::Suffix(n) => Some((size.saturating_sub(n), size - 1)),
        }
    }

    /// As an HTTP `Range` header value (`bytes=0-99`).
    pub fn header_value(self) -> String {
        match self {
            ByteRange::Span { first, last } => format!("bytes={first}-{last}"),
            ByteRange::From(first) => format!("bytes={first}-"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// What a download tells the client about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size of the whole object, whatever part of it is served.
    pub size: u64,
    /// A strong entity tag, quoted as in the `ETag` header (`"…"`): it changes whenever the
    /// object's bytes do. S3's own ETag; on the folder store see [`fs`].
    pub etag: String,
    pub content_type: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

impl ObjectMeta {
    /// Meta of bytes held in memory: the entity tag is a hash of them.
    pub fn of_bytes(data: &[u8]) -> ObjectMeta {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        data.hash(&mut h);
        ObjectMeta {
            size: data.len() as u64,
            etag: format!("\"h{:016x}-{:x}\"", h.finish(), data.len()),
            content_type: None,
            last_modified: None,
        }
    }
}

/// Which part of the object an [`ObjectStream`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Served {
    /// All of it (no range was asked for, or the store ignored it).
    Whole,
    /// Bytes `first..=last` of it.
    Part { first: u64, last: u64 },
    /// The range asked for lies outside the object: the body is empty.
    Unsatisfiable,
}

impl Served {
    /// How many bytes the body carries, of an object of `size` bytes.
    pub fn len(self, size: u64) -> u64 {
        match self {
            Served::Whole => size,
            Served::Part { first, last } => last - first + 1,
            Served::Unsatisfiable => 0,
        }
    }
}

/// Chunks of an object as the store delivers them.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// An object (or part of one) being read.
pub struct ObjectStream {
    pub meta: ObjectMeta,
    pub served: Served,
    pub body: ByteStream,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream").field("meta", &self.meta).field("served", &self.served).finish()
    }
}

/// Headers the store should answer a presigned GET with (S3's `response-content-*`), so the
/// browser sees the same name and type as from the web app.
#[derive(Clone, Debug, Default)]
pub struct ResponseHeaders {
    pub content_type: Option<String>,
    pub content_disposition: Option<String>,
    pub cache_control: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_as_rfc_9110_says() {
        use ByteRange::*;
        assert_eq!(Span { first: 0, last: 9 }.resolve(100), Some((0, 9)));
        assert_eq!(Span { first: 90, last: 500 }.resolve(100), Some((90, 99)), "clamped to the end");
        assert_eq!(Span { first: 100, last: 200 }.resolve(100), None, "starts past the end");
        assert_eq!(Span { first: 5, last: 4 }.resolve(100), None);
        assert_eq!(From(99).resolve(100), Some((99, 99)));
        assert_eq!(From(100).resolve(100), None);
        assert_eq!(Suffix(10).resolve(100), Some((90, 99)));
        assert_eq!(Suffix(1000).resolve(100), Some((0, 99)), "longer than the object: all of it");
        assert_eq!(Suffix(0).resolve(100), None);
        assert_eq!(From(0).resolve(0), None, "an empty object has no bytes to serve");
    }
}
