//! `ObjectStore` in a folder: the embedded default. Same key layout as the S3 bucket, one
//! file per object under `{data_dir}/objects/`. Writes are atomic (temp file, fsync, rename),
//! so a reader or a crash never sees half an object, and keys cannot escape the folder.
//! [`ObjectStore::put_file`] links the file into the temp folder when it is on the same file
//! system (no copy) and copies it otherwise, then syncs and renames it into place the same way.
//!
//! Downloads ([`ObjectStore::get_stream`]) read the file in chunks from one open handle. Its
//! entity tag is derived from that handle's metadata: inode, size and modification time in
//! nanoseconds. Every write puts a *new* file in place by rename, so a rewritten object has a
//! new inode and a new time even when its size is the same; the tag is strong because the bytes
//! of one file under one inode never change here (nothing writes into a file in place). It
//! costs one `fstat`, no hashing, and every process on the same folder computes the same tag.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use sha2::{Digest, Sha256};

use super::{ByteRange, ByteStream, ObjectInfo, ObjectMeta, ObjectStore, ObjectStream, Served, StoreError, Version};
use crate::misconfig::{Misconfiguration, Problem, Resource};

#[derive(Clone, Debug)]
pub struct FsStore {
    root: PathBuf,
    objects: PathBuf,
    tmp: PathBuf,
    locks: PathBuf,
}

/// The version of an object holding `body`.
fn version_of(body: &[u8]) -> Version {
    let digest = Sha256::digest(body);
    Version(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
}

/// A file system error in the data folder `root`: one that permissions or a read-only mount
/// cause is a configuration error (it will not pass by itself), anything else an outage.
fn io_error(root: &Path, e: std::io::Error) -> StoreError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => StoreError::Misconfigured(
            Misconfiguration::new(Resource::DataDir(root.to_path_buf()), Problem::ReadOnly, e.to_string()),
        ),
        _ => StoreError::Unavailable(format!("file system: {e}")),
    }
}

/// Reject keys that could leave the folder or collide with our temp files.
fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = key.is_empty()
        || key.len() > 1024
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key.split('/').any(|seg| seg.is_empty() || seg == "." || seg == ".." || seg.starts_with(".tmp-"));
    if bad {
        return Err(StoreError::Rejected(format!("invalid object key `{key}`")));
    }
    Ok(())
}

impl FsStore {
    /// A store rooted at `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let objects = dir.join("objects");
        let tmp = dir.join("tmp");
        let locks = dir.join("locks");
        let io = |e| io_error(dir, e);
        std::fs::create_dir_all(&objects).map_err(io)?;
        std::fs::create_dir_all(&tmp).map_err(io)?;
        std::fs::create_dir_all(&locks).map_err(io)?;
        Ok(FsStore { root: dir.to_path_buf(), objects, tmp, locks })
    }

    /// The folder must take a new file: a read-only mount or a folder of another user fails
    /// here with a configuration error, at start rather than at the first upload.
    pub fn check_sync(&self) -> Result<(), StoreError> {
        let probe = self.tmp.join(format!(".tmp-check-{}", uuid::Uuid::new_v4().simple()));
        std::fs::File::create(&probe).map_err(self.io())?;
        std::fs::remove_file(&probe).map_err(self.io())
    }

    fn io(&self) -> impl Fn(std::io::Error) -> StoreError + '_ {
        |e| io_error(&self.root, e)
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.objects.join(key))
    }

    fn put_sync(&self, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(self.io())?;
        }
        let tmp = self.tmp.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(body)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(self.io())
    }

    fn put_file_sync(&self, key: &str, source: &Path) -> Result<(), StoreError> {
        let path = self.path(key)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(self.io())?;
        }
        let tmp = self.tmp.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        let result = (|| {
            // A second name for the same file costs nothing; across file systems, copy.
            if std::fs::hard_link(source, &tmp).is_err() {
                std::fs::copy(source, &tmp)?;
            }
            // Readable like an object `put` writes (the caller's file may be private to it).
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
            }
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(self.io())
    }

    fn read_sync(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match std::fs::read(&path) {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || path.is_dir() => Ok(None),
            Err(e) => Err(self.io()(e)),
        }
    }

    /// Compare and swap under the key's lock (see the module's documentation).
    fn put_if_sync(&self, key: &str, body: &[u8], expected: Option<&Version>) -> Result<Version, StoreError> {
        check_key(key)?;
        let stripe = Sha256::digest(key.as_bytes())[0];
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.locks.join(format!("{stripe:02x}.lock")))
            .map_err(self.io())?;
        // Released when `lock` is closed, also if this process dies holding it.
        lock.lock().map_err(self.io())?;
        let current = self.read_sync(key)?.map(|b| version_of(&b));
        if current.as_ref() != expected {
            return Err(StoreError::Conflict(key.to_string()));
        }
        self.put_sync(key, body)?;
        Ok(version_of(body))
    }

    fn list_sync(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        // Walk the deepest folder the prefix names, then filter by the full prefix.
        let dir_part = prefix.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        if !dir_part.is_empty() {
            check_key(dir_part)?;
        }
        let start = if dir_part.is_empty() { self.objects.clone() } else { self.objects.join(dir_part) };
        let mut keys = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io()(e)),
            };
            for entry in entries {
                let entry = entry.map_err(self.io())?;
                let path = entry.path();
                if entry.file_type().map_err(self.io())?.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.objects) {
                    let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                    if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// Bytes a download reads from the file at a time.
const CHUNK: usize = 256 * 1024;

/// The entity tag of the file whose metadata is `m` (see the module docs).
fn etag(m: &std::fs::Metadata) -> String {
    let nanos =
        m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos()).unwrap_or(0);
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let inode = 0u64;
    format!("\"{inode:x}-{:x}-{nanos:x}\"", m.len())
}

fn meta(m: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        size: m.len(),
        etag: etag(m),
        content_type: None,
        last_modified: m.modified().ok().map(chrono::DateTime::<chrono::Utc>::from),
    }
}

/// `len` bytes of `file` from where it stands, in chunks of at most [`CHUNK`].
fn file_chunks(file: tokio::fs::File, len: u64, key: String) -> ByteStream {
    use tokio::io::AsyncReadExt;
    Box::pin(futures_util::stream::unfold((file, len), move |(mut file, left)| {
        let key = key.clone();
        async move {
            if left == 0 {
                return None;
            }
            let want = left.min(CHUNK as u64) as usize;
            let mut buf = bytes::BytesMut::with_capacity(want);
            let mut read = 0;
            while read < want {
                match file.read_buf(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => read += n,
                    Err(e) => return Some((Err(StoreError::Unavailable(format!("reading `{key}`: {e}"))), (file, 0))),
                }
            }
            if read == 0 {
                // Shorter than its metadata said: a broken download, never a silently short one.
                let e = StoreError::Unavailable(format!("`{key}` ended {left} bytes early"));
                return Some((Err(e), (file, 0)));
            }
            Some((Ok(buf.freeze()), (file, left - read as u64)))
        }
    }))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| StoreError::Unavailable(format!("store task failed: {e}")))?
}

#[async_trait]
impl ObjectStore for FsStore {
    async fn put(&self, key: &str, body: Bytes, _content_type: &str) -> Result<(), StoreError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.put_sync(&key, &body)).await
    }

    async fn put_file(&self, key: &str, path: &Path, _content_type: &str) -> Result<(), StoreError> {
        let (this, key, source) = (self.clone(), key.to_string(), path.to_path_buf());
        blocking(move || this.put_file_sync(&key, &source)).await
    }

    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version), StoreError> {
        let body = self.get(key).await?;
        let version = version_of(&body);
        Ok((body, version))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        _content_type: &str,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let (this, key, expected) = (self.clone(), key.to_string(), expected.cloned());
        blocking(move || this.put_if_sync(&key, &body, expected.as_ref())).await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || path.is_dir() => {
                Err(StoreError::NotFound(key.to_string()))
            }
            Err(e) => Err(self.io()(e)),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectInfo { size: m.len(), content_type: None })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io()(e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let (this, prefix) = (self.clone(), prefix.to_string());
        blocking(move || this.list_sync(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io()(e)),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        let this = self.clone();
        blocking(move || this.check_sync()).await
    }

    // Downloads

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(meta(&m))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io()(e)),
        }
    }

    async fn get_stream(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectStream, StoreError> {
        use tokio::io::AsyncSeekExt;
        let path = self.path(key)?;
        let not_found = || StoreError::NotFound(key.to_string());
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(e) => return Err(self.io()(e)),
        };
        // The metadata of the open file: what is streamed is what the tag describes, even if
        // the object is replaced meanwhile.
        let m = file.metadata().await.map_err(self.io())?;
        if !m.is_file() {
            return Err(not_found());
        }
        let meta = meta(&m);
        let served = match range.map(|r| r.resolve(meta.size)) {
            None => Served::Whole,
            Some(None) => Served::Unsatisfiable,
            Some(Some((first, last))) => Served::Part { first, last },
        };
        if let Served::Part { first, .. } = served {
            file.seek(std::io::SeekFrom::Start(first)).await.map_err(self.io())?;
        }
        let body = file_chunks(file, served.len(meta.size), key.to_string());
        Ok(ObjectStream { meta, served, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a\\b", "a/.tmp-1"] {
            assert!(check_key(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["originals/abc", "outputs/j/web.jpg", "jobs/x.json", "owners/o/j"] {
            assert!(check_key(good).is_ok(), "{good:?}");
        }
    }

    #[tokio::test]
    async fn put_file_stores_a_copy_and_leaves_the_source() {
        let dir = std::env::temp_dir().join(format!("darkroom-fs-put-file-{}", uuid::Uuid::new_v4().simple()));
        let store = FsStore::open(&dir).unwrap();
        // Same file system (a link) and the path the web app uses.
        let source = dir.join("tmp").join("upload");
        std::fs::write(&source, b"first").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        store.put_file("originals/a", &source, "image/png").await.unwrap();
        assert_eq!(store.get("originals/a").await.unwrap(), Bytes::from_static(b"first"));
        assert!(source.exists(), "the source stays the caller's");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("objects/originals/a")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "readable by other processes like any object");
        }
        // Replacing an object; the removed source does not take the object with it.
        std::fs::remove_file(&source).unwrap();
        std::fs::write(&source, b"second").unwrap();
        store.put_file("originals/a", &source, "image/png").await.unwrap();
        std::fs::remove_file(&source).unwrap();
        assert_eq!(store.get("originals/a").await.unwrap(), Bytes::from_static(b"second"));
        assert!(store.put_file("../x", &source, "image/png").await.is_err(), "keys are checked");
        let leftovers: Vec<_> = std::fs::read_dir(dir.join("tmp")).unwrap().collect();
        assert!(leftovers.is_empty(), "no temp file left behind: {leftovers:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
