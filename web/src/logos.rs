//! Watermark logos: `POST /api/logos` (multipart, one `logo` part) stores a small PNG for the
//! caller and answers `201 {"key":"logos/<owner>/<id>.png"}`, the key a recipe's watermark
//! names (`{"op":"watermark","image":"logos/…"}`). Checked by content, not by file name: a PNG
//! within the engine's logo limits that decodes completely.
//!
//! A logo upload takes one of the upload slots and must arrive within the upload timeout, like
//! a photo ([`crate::upload_limits`]); a logo is at most 2 MiB, so it is read into memory
//! (stopped as soon as it passes the limit), then probed and decoded on a blocking thread.

use actix_web::{web, HttpResponse};
use bytes::{Bytes, BytesMut};
use darkroom_core::engine::ops::overlay::LOGO_LIMITS;
use darkroom_core::engine::{self, EngineError, InputFormat};
use darkroom_core::keys;
use serde_json::json;

use crate::error::ApiError;
use crate::identity::Owner;
use crate::multipart_guard::Parts;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/logos", web::post().to(upload));
}

async fn upload(state: web::Data<AppState>, owner: Owner, parts: Parts) -> Result<HttpResponse, ApiError> {
    let _slot = state.uploads.enter()?;
    let timeout = state.uploads.timeout;
    let (filename, bytes) = tokio::time::timeout(timeout, read_logo(parts))
        .await
        .map_err(|_| ApiError::UploadTimeout { seconds: timeout.as_secs() })??;
    let file_error = |error| ApiError::File { filename: filename.clone(), error };
    // Probe, and decode it all now, so a damaged PNG is refused here rather than failing jobs
    // later: both on a blocking thread.
    let check = bytes.clone();
    let probe = web::block(move || {
        let probe = engine::probe(&check, &LOGO_LIMITS)?;
        if probe.format == InputFormat::Png {
            engine::decode::decode(&check, &LOGO_LIMITS, false)?;
        }
        Ok::<_, EngineError>(probe)
    })
    .await
    .map_err(|e| ApiError::BadUpload(format!("the logo could not be checked: {e}")))?
    .map_err(file_error)?;
    if probe.format != InputFormat::Png {
        return Ok(HttpResponse::UnsupportedMediaType().json(json!({ "error": {
            "code": "logo_not_png",
            "field": "logo",
            "filename": filename,
            "message": format!(
                "Logos must be PNG files (this one is {}). Export the logo as PNG, ideally with a transparent background.",
                probe.format.mime()
            ),
        }})));
    }
    let key = keys::logo(&owner.0, &uuid::Uuid::new_v4().to_string());
    state.backend.store.put(&key, bytes, "image/png").await?;
    tracing::info!(%key, width = probe.width, height = probe.height, "logo stored");
    Ok(HttpResponse::Created().json(json!({ "key": key, "width": probe.width, "height": probe.height })))
}

/// The one `logo` part: its file name and bytes, refused as soon as it passes the logo limit.
async fn read_logo(mut parts: Parts) -> Result<(String, Bytes), ApiError> {
    let limit = LOGO_LIMITS.max_input_bytes;
    let mut logo: Option<(String, BytesMut)> = None;
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
        let mut buf = BytesMut::new();
        while let Some(chunk) = parts.next_chunk(&mut field).await? {
            let bytes = (buf.len() + chunk.len()) as u64;
            if bytes > limit {
                return Err(ApiError::File { filename, error: EngineError::FileTooLarge { bytes, limit } });
            }
            buf.extend_from_slice(&chunk);
        }
        logo = Some((filename, buf));
    }
    let (filename, bytes) =
        logo.ok_or_else(|| ApiError::BadUpload("the request has no `logo` part; attach a PNG file".into()))?;
    Ok((filename, bytes.freeze()))
}
