//! `GET`/`HEAD /api/jobs/{id}/preview`: the small image a gallery card shows, never the
//! full-size output or the original. The processor makes one for every job in the same
//! sandbox pass as its outputs (processor/src/preview.rs) and reports it in `done`; a job done
//! before previews existed gets its smallest output instead; a job with neither (queued,
//! processing, failed) answers `404 no_preview`, and the card shows a placeholder. Owner only,
//! with the same download headers as the outputs (ETag, ranges, cache policy: crate::download).

use actix_web::{web, HttpRequest, HttpResponse};
use darkroom_protocol::lifecycle::JobRecord;
use darkroom_protocol::message::OutputInfo;
use serde_json::json;

use crate::api::owned;
use crate::download::{self, Download};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/jobs/{id}/preview", web::get().to(preview))
        .route("/api/jobs/{id}/preview", web::head().to(preview));
}

/// What a job's card shows: its preview, else its smallest output (jobs done before previews).
pub fn image_of(rec: &JobRecord) -> Option<&OutputInfo> {
    rec.preview
        .as_ref()
        .or_else(|| rec.outputs.iter().min_by_key(|o| (u64::from(o.width) * u64::from(o.height), o.bytes)))
}

/// The URL of a job's card image, if it has one.
pub fn url_of(rec: &JobRecord) -> Option<String> {
    image_of(rec).map(|_| format!("/api/jobs/{}/preview", rec.id))
}

async fn preview(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rec = owned(&state, &owner, &id).await?;
    let Some(image) = image_of(&rec) else {
        return Ok(HttpResponse::NotFound().json(json!({ "error": {
            "code": "no_preview",
            "message": format!(
                "this job has no preview: it is {}; a preview exists once the job is done",
                rec.state.as_str()
            ),
        }})));
    };
    let filename = format!("{}-preview.{}", crate::gallery::stem(&rec.filename), image.format.extension());
    let d = Download { key: &image.key, content_type: image.format.mime(), filename: &filename, attachment: false };
    download::respond(&req, &state, d).await
}
