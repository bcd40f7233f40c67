//! `POST /api/jobs`: upload photos with a recipe; `202` with the queued jobs (and the files
//! refused, if some were). The upload itself is [`crate::ingest`]'s; this handler adds the
//! optional `Idempotency-Key` ([`crate::idempotency`]): a retried request gets the first
//! answer again instead of queuing the photos twice.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::identity::Owner;
use crate::multipart_guard::Parts;
use crate::request_context::RequestContext;
use crate::AppState;
use crate::{idempotency, ingest, views};

/// `POST /api/jobs`, with an optional `Idempotency-Key`.
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    request: RequestContext,
    parts: Parts,
) -> Result<HttpResponse, ApiError> {
    // A bad key is refused before the body is read.
    let Some(key) = idempotency::key_of(req.headers())? else {
        let upload = ingest::receive(&state, parts).await?;
        return Ok(HttpResponse::Accepted().json(submitted_body(&state, &owner, upload, &request).await?));
    };
    let upload = ingest::receive(&state, parts).await?;
    let fingerprint = idempotency::fingerprint(&upload).await?;
    let store = &*state.backend.store;
    let claim = match state.idempotency.begin(store, &owner.0, &key, &fingerprint).await? {
        idempotency::Begin::Replay(answer) => {
            let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::ACCEPTED);
            return Ok(HttpResponse::build(status).insert_header((idempotency::REPLAYED, "true")).json(answer.body));
        }
        idempotency::Begin::Claimed(claim) => claim,
    };
    match submitted_body(&state, &owner, upload, &request).await {
        Ok(body) => {
            claim.complete(store, idempotency::Answer { status: 202, body: body.clone() }).await;
            Ok(HttpResponse::Accepted().json(body))
        }
        Err(e) => {
            claim.release(store).await;
            Err(e)
        }
    }
}

/// Store and queue an upload's jobs; the `202` answer's body.
async fn submitted_body(
    state: &AppState,
    owner: &Owner,
    upload: ingest::Upload,
    request: &RequestContext,
) -> Result<serde_json::Value, ApiError> {
    let submitted = ingest::submit(state, &owner.0, upload, &request.trace).await?;
    let jobs: Vec<_> = submitted.jobs.iter().map(views::submitted).collect();
    let mut body = json!({ "jobs": jobs });
    if !submitted.rejected.is_empty() {
        body["rejected"] = submitted
            .rejected
            .iter()
            .map(|(filename, e)| json!({ "filename": filename, "error": { "code": e.code(), "message": e.to_string() } }))
            .collect();
    }
    Ok(body)
}
