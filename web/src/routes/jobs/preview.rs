//! `GET`/`HEAD /api/jobs/{id}/preview`: the small image a gallery card shows, never the
//! full-size output or the original. The processor makes one for every job in the same
//! sandbox pass as its outputs (processor/src/preview.rs) and reports it in `done`; a job done
//! before previews existed gets its smallest output instead ([`views::card_image`]); a job with
//! neither (queued, processing, failed) answers `404 no_preview`, and the card shows a
//! placeholder. Owner only, with the same download headers as the outputs (ETag, ranges, cache
//! policy: crate::download).

use actix_web::{web, HttpRequest, HttpResponse};

use super::owned;
use crate::download::{self, Download};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::views;
use crate::AppState;

pub async fn preview(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rec = owned(&state, &owner, &id).await?;
    let image = views::card_image(&rec).ok_or(ApiError::NoPreview(rec.state.as_str()))?;
    let filename = format!("{}-preview.{}", download::stem(&rec.filename), image.format.extension());
    let d = Download { key: &image.key, content_type: image.format.mime(), filename: &filename, attachment: false };
    download::respond(&req, &state, d).await
}
