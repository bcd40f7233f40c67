//! Watermark logos: `POST /api/logos` (multipart, one `logo` part) stores a small PNG for the
//! caller and answers `201 {"key":"logos/<owner>/<id>.png"}`, the key a recipe's watermark
//! names (`{"op":"watermark","image":"logos/…"}`). Checked by content, not by file name: a PNG
//! within the logo limits (`LOGO_LIMITS`) that decodes completely.
//!
//! `GET /api/logos` lists the caller's logos (newest first: key, id, size, upload time) and
//! `DELETE /api/logos/{id}` removes one (`204`; `404 logo_not_found` for an id the caller has
//! no logo under, another browser's included). A job queued with a logo deleted afterwards
//! fails with the engine's "logo was not provided" reason; finished jobs keep their outputs.
//!
//! A logo upload takes one of the upload slots and must arrive within the upload timeout, like
//! a photo ([`crate::upload_limits`]); a logo is at most 2 MiB, so it is read into memory
//! (stopped as soon as it passes the limit), then probed and decoded on a blocking thread.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use bytes::Bytes;
use darkroom_protocol::keys;
use darkroom_protocol::probe::check_png_decodes;
use darkroom_protocol::{InputFormat, Probe, Refusal, LOGO_LIMITS};
use serde_json::json;

use crate::error::ApiError;
use crate::identity::Owner;
use crate::multipart_guard::{Parts, Small};
use crate::AppState;

/// Everything the logo routes refuse: the API's errors (an upload's limits, the store) and
/// two of their own.
#[derive(Debug, thiserror::Error)]
pub enum LogoError {
    /// `415 logo_not_png`: an image, but not a PNG.
    #[error("Logos must be PNG files (this one is {format}). Export the logo as PNG, ideally with a transparent background.")]
    NotPng { filename: String, format: &'static str },
    /// `404 logo_not_found`: no logo with this id under the caller's own prefix.
    #[error("you have no logo with this id; GET /api/logos lists yours")]
    NotFound,
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<darkroom_core::store::StoreError> for LogoError {
    fn from(e: darkroom_core::store::StoreError) -> Self {
        LogoError::Api(e.into())
    }
}

impl ResponseError for LogoError {
    fn status_code(&self) -> StatusCode {
        match self {
            LogoError::NotPng { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            LogoError::NotFound => StatusCode::NOT_FOUND,
            LogoError::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            LogoError::NotPng { filename, .. } => json!({ "error": {
                "code": "logo_not_png", "field": "logo", "filename": filename, "message": self.to_string(),
            }}),
            LogoError::NotFound => json!({ "error": { "code": "logo_not_found", "message": self.to_string() }}),
            LogoError::Api(e) => return e.error_response(),
        };
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// `POST /api/logos`.
pub async fn upload(state: web::Data<AppState>, owner: Owner, parts: Parts) -> Result<HttpResponse, LogoError> {
    let _slot = state.uploads.enter()?;
    let timeout = state.uploads.timeout;
    let (filename, bytes) = tokio::time::timeout(timeout, read_logo(parts))
        .await
        .map_err(|_| ApiError::UploadTimeout { seconds: timeout.as_secs() })??;
    let probe = check(&filename, bytes.clone()).await?;
    if probe.format != InputFormat::Png {
        return Err(LogoError::NotPng { filename, format: probe.format.mime() });
    }
    let key = keys::logo(&owner.0, &uuid::Uuid::new_v4().to_string());
    state.backend.store.put(&key, bytes, "image/png").await?;
    tracing::info!(%key, width = probe.width, height = probe.height, "logo stored");
    Ok(HttpResponse::Created().json(json!({ "key": key, "width": probe.width, "height": probe.height })))
}

/// Probe, and decode it all now, so a damaged PNG is refused here rather than failing jobs
/// later: both on a blocking thread.
async fn check(filename: &str, bytes: Bytes) -> Result<Probe, ApiError> {
    web::block(move || {
        let probe = darkroom_protocol::probe(&bytes, &LOGO_LIMITS)?;
        if probe.format == InputFormat::Png {
            check_png_decodes(&bytes, &LOGO_LIMITS)?;
        }
        Ok::<_, Refusal>(probe)
    })
    .await
    .map_err(|e| ApiError::BadUpload(format!("the logo could not be checked: {e}")))?
    .map_err(|error| ApiError::File { filename: filename.to_string(), error })
}

/// Most logos `GET /api/logos` lists (each costs one metadata request to the store).
pub const MAX_LISTED: usize = 200;

/// `GET /api/logos`.
pub async fn list(state: web::Data<AppState>, owner: Owner) -> Result<HttpResponse, LogoError> {
    let store = &state.backend.store;
    let mut keys: Vec<String> =
        store.list(&keys::logos_of(&owner.0)).await?.into_iter().filter(|k| keys::is_logo_key(k)).collect();
    keys.truncate(MAX_LISTED);
    let stats = futures_util::future::join_all(keys.iter().map(|k| store.stat(k))).await;
    let mut logos = Vec::with_capacity(keys.len());
    for (key, stat) in keys.iter().zip(stats) {
        // Gone between the listing and now (deleted meanwhile): not listed.
        let Some(meta) = stat? else { continue };
        let Some(id) = keys::logo_id(key) else { continue };
        logos.push(json!({ "id": id, "key": key, "bytes": meta.size, "created_at": meta.last_modified }));
    }
    logos.sort_by(|a, b| {
        b["created_at"].as_str().cmp(&a["created_at"].as_str()).then(a["id"].as_str().cmp(&b["id"].as_str()))
    });
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "logos": logos })))
}

/// `DELETE /api/logos/{id}`.
pub async fn delete(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, LogoError> {
    if !keys::is_valid_id(&id) {
        return Err(LogoError::NotFound);
    }
    // Only under the caller's own prefix: another browser's logo id is simply not found here.
    let key = keys::logo(&owner.0, &id);
    if state.backend.store.head(&key).await?.is_none() {
        return Err(LogoError::NotFound);
    }
    state.backend.store.delete(&key).await?;
    tracing::info!(%key, "logo deleted by its owner");
    Ok(HttpResponse::NoContent().finish())
}

/// The one `logo` part: its file name and bytes, refused as soon as it passes the logo limit.
async fn read_logo(mut parts: Parts) -> Result<(String, Bytes), ApiError> {
    let limit = LOGO_LIMITS.max_input_bytes;
    let mut logo: Option<(String, Bytes)> = None;
    while let Some(mut field) = parts.next_part().await? {
        let name = field.name().unwrap_or_default().to_string();
        if name != "logo" {
            return Err(ApiError::BadUpload(format!(
                "unexpected form field `{name}`; send one `logo` part (a PNG file)"
            )));
        }
        if logo.is_some() {
            return Err(ApiError::BadUpload("send one `logo` part per request".into()));
        }
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .unwrap_or("logo.png")
            .chars()
            .take(200)
            .collect();
        let buf = match parts.read_small(&mut field, limit).await? {
            Small::Whole(bytes) => bytes,
            Small::TooLarge { bytes } => {
                return Err(ApiError::File { filename, error: Refusal::FileTooLarge { bytes, limit } })
            }
        };
        logo = Some((filename, buf));
    }
    let (filename, bytes) =
        logo.ok_or_else(|| ApiError::BadUpload("the request has no `logo` part; attach a PNG file".into()))?;
    Ok((filename, bytes))
}
