//! `Idempotency-Key` on `POST /api/jobs` (issue 16): a client that did not get the answer to an
//! upload (timeout, dropped connection) sends the same request again with the same key and
//! gets the first answer back, instead of a second job for the same photo.
//!
//! - The key: 1 to 255 visible ASCII characters (a UUID will do); anything else is refused
//!   with `400 invalid_idempotency_key` before the body is read.
//! - Keys are per browser identity (owner): two browsers may use the same key independently.
//! - The record lives in the object store at `idempotency/{owner}/{sha256(key)}.json`
//!   ([`keys::idempotency`]), so a retry that reaches another replica, or the web app after a
//!   restart, is answered the same. It holds a fingerprint of the request (SHA-256 over the
//!   recipe or preset and, per file, its name, length and bytes: the same bytes under another
//!   name would make a job with another filename, so that is another request), and once the
//!   request is handled its status and JSON body.
//! - A retry with the same fingerprint gets that status and body with `Idempotent-Replayed:
//!   true` and creates nothing; another fingerprint is `422 idempotency_key_reused`; a retry
//!   while the first is still being handled is `409 idempotency_key_in_use` with `Retry-After`.
//! - Only an accepted request (`202`) is remembered: a refused one created nothing and its
//!   claim is released, so the client may fix the request and send it again with the same key.
//! - A record is honoured for `DARKROOM_IDEMPOTENCY_TTL` seconds (default 24 h, as common
//!   payment APIs do: long past any client's retry loop, short enough that the records stay
//!   few); after that the key is new again. Deleting expired records is the retention
//!   sweeper's (or an S3 lifecycle rule on `idempotency/`).
//! - A claim whose request never finished (the web app was killed mid-request) is taken over
//!   after [`STALE_CLAIM`].

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_protocol::keys;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::ingest::Upload;

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// The response header that marks a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;
/// A claim older than this whose request never finished is taken over (its web app died).
pub const STALE_CLAIM: Duration = Duration::from_secs(300);
/// What `409 idempotency_key_in_use` tells the client to wait, in seconds.
pub const RETRY_AFTER: u64 = 1;

#[derive(clap::Args, Clone, Debug)]
pub struct IdempotencyArgs {
    /// Seconds an `Idempotency-Key` of `POST /api/jobs` is remembered: a retry within this time
    /// gets the first answer back; after it the key counts as new.
    #[arg(long, env = "DARKROOM_IDEMPOTENCY_TTL", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..=2_592_000))]
    pub idempotency_ttl: u64,
}

/// The idempotency settings and the keys being claimed in this process.
pub struct Idempotency {
    ttl: chrono::Duration,
    claiming: Mutex<HashSet<String>>,
}

/// What the store keeps for one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    fingerprint: String,
    claimed_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    /// The answer, once the request was handled; `None` while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answer: Option<Answer>,
}

/// A remembered answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

/// What to do with a request that carries a key.
pub enum Begin {
    /// Answer with this (the first request's answer).
    Replay(Answer),
    /// Handle it; then [`Claim::complete`] or [`Claim::release`].
    Claimed(Claim),
}

/// The right to handle the first request of a key.
pub struct Claim {
    object: String,
    record: Record,
}

/// The key of a request, if it has one; `400` when it is not 1–255 visible ASCII characters.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(HEADER);
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::BadIdempotencyKey("is sent more than once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() {
        return Err(ApiError::BadIdempotencyKey("is empty"));
    }
    if bytes.len() > MAX_KEY_LEN {
        return Err(ApiError::BadIdempotencyKey("is longer than 255 characters"));
    }
    if !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadIdempotencyKey("has characters other than visible ASCII (no spaces)"));
    }
    Ok(Some(String::from_utf8(bytes.to_vec()).expect("ASCII")))
}

/// The fingerprint of an upload: SHA-256 over its recipe (or preset) and each file's name,
/// length and bytes, read back from the spool on a blocking thread.
pub async fn fingerprint(upload: &Upload) -> Result<String, ApiError> {
    let mut head = Sha256::new();
    for part in [&upload.recipe, &upload.preset] {
        match part {
            Some(text) => {
                head.update((text.len() as u64).to_le_bytes());
                head.update(text.as_bytes());
            }
            None => head.update(u64::MAX.to_le_bytes()),
        }
    }
    let files: Vec<(String, u64, Option<std::path::PathBuf>)> = upload
        .files
        .iter()
        .map(|(name, s)| (name.clone(), s.len, s.file.as_ref().map(|f| f.path().to_path_buf())))
        .collect();
    let digest = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read as _;
        let mut h = head;
        let mut buf = vec![0u8; 256 * 1024];
        for (name, len, path) in files {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(len.to_le_bytes());
            if let Some(path) = path {
                let mut f = std::fs::File::open(path)?;
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
        }
        Ok(hex(&h.finalize()))
    })
    .await
    .map_err(|e| ApiError::Spool(format!("the fingerprint task failed: {e}")))?
    .map_err(crate::ingest::spool_error)?;
    Ok(digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The store key of `owner`'s record for `key`.
fn object(owner: &str, key: &str) -> String {
    keys::idempotency(owner, &hex(&Sha256::digest(key.as_bytes())))
}

/// May the record stored at an `idempotency/` key go (the retention sweeper asks)? Yes once it
/// has expired at `now` ([`Idempotency::begin`] treats the key as new then), or when it cannot
/// be read at all (`begin` treats that as new too).
pub fn is_expired_record(bytes: &[u8], now: DateTime<Utc>) -> bool {
    match serde_json::from_slice::<Record>(bytes) {
        Ok(r) => r.expires_at <= now,
        Err(_) => true,
    }
}

/// Releases the in-process claim on a key when the check-and-claim is over.
struct Claiming<'a>(&'a Idempotency, String);

impl Drop for Claiming<'_> {
    fn drop(&mut self) {
        self.0.claiming.lock().unwrap().remove(&self.1);
    }
}

impl Idempotency {
    pub fn new(args: &IdempotencyArgs) -> Self {
        Idempotency { ttl: chrono::Duration::seconds(args.idempotency_ttl as i64), claiming: Mutex::default() }
    }

    /// Look the key up: replay its answer, refuse it (`422` another request, `409` still being
    /// handled), or claim it for this request.
    pub async fn begin(
        &self,
        store: &dyn ObjectStore,
        owner: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<Begin, ApiError> {
        let object = object(owner, key);
        let in_use = || ApiError::IdempotencyKeyInUse { retry_after: RETRY_AFTER };
        if !self.claiming.lock().unwrap().insert(object.clone()) {
            return Err(in_use());
        }
        let _claiming = Claiming(self, object.clone());
        let now = Utc::now();
        let (existing, version) = read(store, &object).await?;
        if let Some(existing) = existing {
            let live = existing.expires_at > now;
            let stale = existing.answer.is_none()
                && now - existing.claimed_at > chrono::Duration::from_std(STALE_CLAIM).expect("small");
            if live && !stale {
                if existing.fingerprint != fingerprint {
                    return Err(ApiError::IdempotencyKeyReused);
                }
                return match existing.answer {
                    Some(answer) => Ok(Begin::Replay(answer)),
                    None => Err(in_use()),
                };
            }
        }
        let record =
            Record { fingerprint: fingerprint.to_string(), claimed_at: now, expires_at: now + self.ttl, answer: None };
        match claim(store, &object, &record, version.as_ref()).await {
            Ok(()) => Ok(Begin::Claimed(Claim { object, record })),
            // Another request (on any replica) claimed the key between the read and now.
            Err(StoreError::Conflict(_)) => Err(in_use()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Write the claim record, only if the key's object is still as read (`None`: absent), by the
/// store's conditional write: of two requests with one key on any replicas, one claims it and
/// the other gets [`StoreError::Conflict`] (answered `409`).
async fn claim(
    store: &dyn ObjectStore,
    object: &str,
    record: &Record,
    seen: Option<&darkroom_core::store::Version>,
) -> Result<(), StoreError> {
    let json = serde_json::to_vec(record).expect("records serialize");
    store.put_if(object, Bytes::from(json), "application/json", seen).await.map(|_| ())
}

async fn write(store: &dyn ObjectStore, object: &str, record: &Record) -> Result<(), StoreError> {
    let json = serde_json::to_vec(record).expect("records serialize");
    store.put(object, Bytes::from(json), "application/json").await
}

/// The key's record (`None` when absent or unreadable) and the version of its object.
async fn read(
    store: &dyn ObjectStore,
    object: &str,
) -> Result<(Option<Record>, Option<darkroom_core::store::Version>), StoreError> {
    match store.get_versioned(object).await {
        Ok((bytes, version)) => match serde_json::from_slice(&bytes) {
            Ok(r) => Ok((Some(r), Some(version))),
            Err(e) => {
                tracing::warn!(key = object, error = %e, "unreadable idempotency record; treating the key as new");
                Ok((None, Some(version)))
            }
        },
        Err(StoreError::NotFound(_)) => Ok((None, None)),
        Err(e) => Err(e),
    }
}

impl Claim {
    /// Remember the answer (the jobs are created: a failure here is logged, not the client's).
    pub async fn complete(mut self, store: &dyn ObjectStore, answer: Answer) {
        self.record.answer = Some(answer);
        if let Err(e) = write(store, &self.object, &self.record).await {
            tracing::warn!(key = %self.object, error = %e,
                "could not store the answer of an idempotent request; a retry will wait for the claim to go stale");
        }
    }

    /// The request was refused and created nothing: forget the claim.
    pub async fn release(self, store: &dyn ObjectStore) {
        if let Err(e) = store.delete(&self.object).await {
            tracing::warn!(key = %self.object, error = %e, "could not release an idempotency claim; it goes stale by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HeaderName::from_static(HEADER), HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn keys_are_one_to_255_visible_ascii_characters() {
        assert_eq!(key_of(&headers(&[])).unwrap(), None);
        assert_eq!(key_of(&headers(&[b"abc-123_~!"])).unwrap().as_deref(), Some("abc-123_~!"));
        assert!(key_of(&headers(&["k".repeat(255).as_bytes()])).unwrap().is_some());
        for bad in [&b""[..], "k".repeat(256).as_bytes(), b"a b", b"a\tb", "café".as_bytes()] {
            let e = key_of(&headers(&[bad])).unwrap_err();
            assert_eq!(e.code(), "invalid_idempotency_key", "{bad:?}");
        }
        assert!(key_of(&headers(&[b"a", b"b"])).is_err(), "two keys");
    }

    #[test]
    fn records_of_different_owners_and_keys_are_apart() {
        assert_ne!(object("o1", "k"), object("o2", "k"));
        assert_ne!(object("o1", "k"), object("o1", "k2"));
        assert!(object("o1", "../../x").starts_with("idempotency/o1/"));
        assert!(!object("o1", "../../x").contains(".."));
    }
}
