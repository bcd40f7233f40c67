//! A job's bytes: `GET`/`HEAD /api/jobs/{id}/original`, `/api/jobs/{id}/outputs/{name}` (with
//! the download headers of [`crate::download`]: ETag, ranges, cache policy, `?download` for
//! `attachment`), and `GET /api/jobs/{id}/outputs.zip`, every output as one ZIP file (stored
//! entries, UTF-8 names, ZIP64 past 4 GiB, streamed as it is built: [`crate::zip`]). Owner only.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::TryStreamExt;

use super::owned;
use crate::download::{self, Download};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::AppState;

#[derive(serde::Deserialize)]
pub struct DownloadQuery {
    download: Option<String>,
}

/// `GET`/`HEAD /api/jobs/{id}/original`: the photo as uploaded.
pub async fn original(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
    q: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let rec = owned(&state, &owner, &id).await?;
    let d = Download {
        key: &rec.original_key,
        content_type: &rec.original_type,
        filename: &rec.filename,
        attachment: q.download.is_some(),
    };
    download::respond(&req, &state, d).await
}

/// `GET`/`HEAD /api/jobs/{id}/outputs/{name}`: one output.
pub async fn output(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    path: web::Path<(String, String)>,
    q: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let rec = owned(&state, &owner, &id).await?;
    let out = rec.outputs.iter().find(|o| o.name == name).ok_or(ApiError::NotFound)?;
    let filename = format!("{}-{}.{}", download::stem(&rec.filename), out.name, out.format.extension());
    let d = Download {
        key: &out.key,
        content_type: out.format.mime(),
        filename: &filename,
        attachment: q.download.is_some(),
    };
    download::respond(&req, &state, d).await
}

/// `GET /api/jobs/{id}/outputs.zip`: every output in one archive; `409 no_outputs` before
/// there are any.
pub async fn zip_all(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rec = owned(&state, &owner, &id).await?;
    if rec.outputs.is_empty() {
        return Err(ApiError::NoOutputs(rec.state.as_str()));
    }
    // Names in the archive as the photo was named (UTF-8, flagged as such), minus folders.
    let stem = download::file_name(download::stem(&rec.filename));
    let entries = rec
        .outputs
        .iter()
        .map(|o| crate::zip::Entry { name: format!("{stem}-{}.{}", o.name, o.format.extension()), key: o.key.clone() })
        .collect();
    let body = crate::zip::stream(state.backend.store.clone(), entries, rec.updated_at).map_err(|e| {
        tracing::warn!(error = %e, "zip download cut short");
        actix_web::error::ErrorServiceUnavailable("storage became unavailable during the download; try again")
    });
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            download::content_disposition(true, &format!("{stem}-outputs.zip")),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        // Built as it streams: no ranges.
        .insert_header((header::ACCEPT_RANGES, "none"))
        // Already-compressed images: the Compress middleware would only waste CPU.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .streaming(body))
}
