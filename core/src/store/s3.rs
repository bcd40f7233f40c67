//! `ObjectStore` on Amazon S3 (or an S3-compatible server) through aws-sdk-s3.
//!
//! Downloads stream GetObject's body as it arrives (with S3's own `Range` handling and ETag),
//! and can be handed to the client as a presigned GetObject URL instead.
//! Conditional writes are S3's own (since 2024): PutObject with `If-Match: <ETag>` or
//! `If-None-Match: *`; `412 PreconditionFailed` (or `409 ConditionalRequestConflict`, two
//! conditional writes of one key in flight at once) is [`StoreError::Conflict`]. moto 5.2.5
//! honours both headers on PutObject (`moto/s3/responses.py`, `put_object`).

use async_trait::async_trait;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
use aws_sdk_s3::Client;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use bytes::Bytes;

use super::{
    ByteRange, ByteStream as Chunks, ObjectInfo, ObjectMeta, ObjectStore, ObjectStream, ResponseHeaders, Served,
    StoreError, Version,
};
use crate::misconfig::{Misconfiguration, Problem, Resource};

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

fn classify<E, R>(bucket: &str, key: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(m) = crate::aws::misconfiguration(Resource::Bucket(bucket.to_string()), &e) {
        return StoreError::Misconfigured(m);
    }
    match &e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("");
            if matches!(code, "NoSuchKey" | "NotFound") {
                return StoreError::NotFound(key.to_string());
            }
            if matches!(code, "SlowDown" | "InternalError" | "ServiceUnavailable" | "RequestTimeout") {
                return StoreError::Unavailable(DisplayErrorContext(&e).to_string());
            }
            StoreError::Rejected(DisplayErrorContext(&e).to_string())
        }
        _ => StoreError::Unavailable(DisplayErrorContext(&e).to_string()),
    }
}

/// A HEAD answer has no body, so no error code: its status says what went wrong.
fn classify_head<E>(bucket: &str, key: &str, e: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = match &e {
        SdkError::ServiceError(se) if se.err().code().is_none() => Some(se.raw().status().as_u16()),
        _ => None,
    };
    let problem = match status {
        Some(403) => Problem::AccessDenied,
        Some(301) => Problem::WrongRegion,
        _ => return classify(bucket, key, e),
    };
    let detail = format!("HTTP {} to a HEAD request", status.unwrap_or(0));
    StoreError::Misconfigured(Misconfiguration::new(Resource::Bucket(bucket.to_string()), problem, detail))
}

/// S3's time as chrono's.
fn time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

/// `bytes 0-99/1000` → first, last, size.
fn content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (span, size) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.trim().parse().ok()?, last.trim().parse().ok()?, size.trim().parse().ok()?))
}

/// An S3 ETag as given (already quoted); quoted if a server left the quotes off.
fn quoted(etag: Option<&str>) -> String {
    match etag {
        Some(e) if e.starts_with('"') || e.starts_with("W/") => e.to_string(),
        Some(e) => format!("\"{e}\""),
        None => "\"\"".to_string(),
    }
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Store { client, bucket: bucket.into() }
    }

    /// The whole object read into memory (records, manifests: small objects) and its ETag.
    async fn get_whole(&self, key: &str) -> Result<(Bytes, Option<String>), StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        let etag = out.e_tag().map(str::to_string);
        let data = out.body.collect().await.map_err(|e| StoreError::Unavailable(format!("reading `{key}`: {e}")))?;
        Ok((data.into_bytes(), etag))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Create the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self, region: Option<&str>) -> Result<(), StoreError> {
        // Several processes may create the bucket at once; a server under load has been seen
        // answering one of them NoSuchBucket meanwhile (moto in CI). Ask again before giving up.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_ensure_bucket(region).await {
                Err(StoreError::NotFound(_)) if attempt < 5 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(StoreError::Misconfigured(m)) if m.problem == Problem::Missing && attempt < 5 => {
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn try_ensure_bucket(&self, region: Option<&str>) -> Result<(), StoreError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        if let Some(region) = region.filter(|r| *r != "us-east-1") {
            req = req.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(region))
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.code(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")) => Ok(()),
            Err(e) => Err(classify(&self.bucket, &self.bucket, e)),
        }
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        Ok(())
    }

    async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<(), StoreError> {
        // Read from disk in small pieces as it is sent (and again on a retry); one PUT, as
        // objects here are at most DARKROOM_MAX_UPLOAD_BYTES (S3 takes 5 GiB in one PUT).
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError::Unavailable(format!("reading {} to store `{key}`: {e}", path.display())))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        Ok(())
    }

    async fn get_versioned(&self, key: &str) -> Result<(Bytes, Version), StoreError> {
        let (data, etag) = self.get_whole(key).await?;
        let etag = etag.ok_or_else(|| {
            StoreError::Rejected(format!("`{key}` came without an ETag: no conditional write possible"))
        })?;
        Ok((data, Version(etag)))
    }

    async fn put_if(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        expected: Option<&Version>,
    ) -> Result<Version, StoreError> {
        let req = self.client.put_object().bucket(&self.bucket).key(key).content_type(content_type);
        let req = match expected {
            Some(v) => req.if_match(&v.0),
            None => req.if_none_match("*"),
        };
        match req.body(ByteStream::from(body)).send().await {
            Ok(out) => Ok(Version(out.e_tag().unwrap_or_default().to_string())),
            Err(e) if matches!(e.code(), Some("PreconditionFailed" | "ConditionalRequestConflict")) => {
                Err(StoreError::Conflict(key.to_string()))
            }
            Err(e) => match classify(&self.bucket, key, e) {
                // If-Match on an object deleted meanwhile.
                StoreError::NotFound(_) if expected.is_some() => Err(StoreError::Conflict(key.to_string())),
                other => Err(other),
            },
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        Ok(self.get_whole(key).await?.0)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                content_type: out.content_type().map(str::to_string),
            })),
            Err(SdkError::ServiceError(se)) if se.err().is_not_found() => Ok(None),
            Err(e) => match classify_head(&self.bucket, key, e) {
                StoreError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(&self.bucket, prefix, e))?;
            keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_string)));
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        Ok(())
    }

    /// HeadBucket (s3:ListBucket): 404 is a missing bucket, 403 a missing permission (or
    /// refused credentials: a HEAD answer carries no code to tell them apart), 301 another region.
    async fn check(&self) -> Result<(), StoreError> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 404 => {
                Err(StoreError::Misconfigured(Misconfiguration::new(
                    Resource::Bucket(self.bucket.clone()),
                    Problem::Missing,
                    "HeadBucket: 404 Not Found",
                )))
            }
            Err(e) => Err(classify_head(&self.bucket, &self.bucket, e)),
        }
    }

    // Downloads

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: quoted(out.e_tag()),
                content_type: out.content_type().map(str::to_string),
                last_modified: time(out.last_modified()),
            })),
            Err(SdkError::ServiceError(se)) if se.err().is_not_found() => Ok(None),
            Err(e) => match classify_head(&self.bucket, key, e) {
                StoreError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get_stream(&self, key: &str, range: Option<ByteRange>) -> Result<ObjectStream, StoreError> {
        let unsatisfiable = || async {
            let meta = self.stat(key).await?.ok_or_else(|| StoreError::NotFound(key.to_string()))?;
            let body: Chunks = Box::pin(futures_util::stream::empty());
            Ok(ObjectStream { meta, served: Served::Unsatisfiable, body })
        };
        if range == Some(ByteRange::Suffix(0)) {
            return unsatisfiable().await;
        }
        let sent = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_range(range.map(ByteRange::header_value))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(SdkError::ServiceError(se)) if se.raw().status().as_u16() == 416 => return unsatisfiable().await,
            Err(e) => return Err(classify(&self.bucket, key, e)),
        };
        let length = out.content_length().unwrap_or(0).max(0) as u64;
        let (served, size) = match out.content_range().and_then(content_range) {
            Some((first, last, size)) => (Served::Part { first, last }, size),
            // No range asked for, or the server ignored it: the whole object.
            None => (Served::Whole, length),
        };
        let meta = ObjectMeta {
            size,
            etag: quoted(out.e_tag()),
            content_type: out.content_type().map(str::to_string),
            last_modified: time(out.last_modified()),
        };
        let key = key.to_string();
        let body: Chunks = Box::pin(futures_util::stream::unfold(Some(out.body), move |body| {
            let key = key.clone();
            async move {
                let mut body = body?;
                match body.next().await? {
                    Ok(chunk) => Some((Ok(chunk), Some(body))),
                    Err(e) => Some((Err(StoreError::Unavailable(format!("reading `{key}`: {e}"))), None)),
                }
            }
        }));
        Ok(ObjectStream { meta, served, body })
    }

    async fn presigned_get(
        &self,
        key: &str,
        ttl: std::time::Duration,
        response: &ResponseHeaders,
    ) -> Result<Option<String>, StoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::Rejected(format!("presigning `{key}` for {ttl:?}: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_response_content_type(response.content_type.clone())
            .set_response_content_disposition(response.content_disposition.clone())
            .set_response_cache_control(response.cache_control.clone())
            .presigned(config)
            .await
            .map_err(|e| classify(&self.bucket, key, e))?;
        Ok(Some(request.uri().to_string()))
    }
}
