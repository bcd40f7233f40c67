//! Watermark logos: `POST /api/logos` (multipart, one `logo` part) stores a small PNG for the
//! caller and answers `201 {"key":"logos/<owner>/<id>.png"}`, the key a recipe's watermark
//! names (`{"op":"watermark","image":"logos/…"}`). Checked by content, not by file name: a PNG
//! within the engine's logo limits that decodes completely.

use actix_multipart::Multipart;
use actix_web::{web, HttpResponse};
use bytes::BytesMut;
use darkroom_core::engine::ops::overlay::LOGO_LIMITS;
use darkroom_core::engine::{self, EngineError, InputFormat};
use darkroom_core::keys;
use futures_util::TryStreamExt;
use serde_json::json;

use crate::error::ApiError;
use crate::identity::Owner;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/logos", web::post().to(upload));
}

async fn upload(state: web::Data<AppState>, owner: Owner, mut payload: Multipart) -> Result<HttpResponse, ApiError> {
    let limit = LOGO_LIMITS.max_input_bytes;
    let mut logo: Option<(String, BytesMut)> = None;
    while let Some(mut field) = payload.try_next().await.map_err(|e| ApiError::BadUpload(e.to_string()))? {
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
        while let Some(chunk) = field.try_next().await.map_err(|e| ApiError::BadUpload(e.to_string()))? {
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
    let bytes = bytes.freeze();
    let file_error = |error| ApiError::File { filename: filename.clone(), error };
    let probe = engine::probe(&bytes, &LOGO_LIMITS).map_err(file_error)?;
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
    // Decode it all now, so a damaged PNG is refused here rather than failing jobs later.
    let check = bytes.clone();
    web::block(move || engine::decode::decode(&check, &LOGO_LIMITS, false).map(|_| ()))
        .await
        .map_err(|e| ApiError::BadUpload(format!("the logo could not be checked: {e}")))?
        .map_err(file_error)?;
    let key = keys::logo(&owner.0, &uuid::Uuid::new_v4().to_string());
    state.backend.store.put(&key, bytes, "image/png").await?;
    tracing::info!(%key, width = probe.width, height = probe.height, "logo stored");
    Ok(HttpResponse::Created().json(json!({ "key": key, "width": probe.width, "height": probe.height })))
}
