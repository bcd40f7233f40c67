//! Try a failed job again: it goes back to the queue with its original and its recipe.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/jobs/{id}/retry` | `202` the job (queued again); `409 not_failed` unless it failed; `404` for another browser's job |
//! | `POST /jobs/{id}/retry` | the same from a form (no JavaScript), then `303` to the job's page |

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use darkroom_core::message::JobState;

use super::owned;
use crate::error::ApiError;
use crate::identity::Owner;
use crate::jobs::JobRecord;
use crate::request_context::RequestContext;
use crate::routes::html::HtmlError;
use crate::views::JobView;
use crate::AppState;

/// What the job's timeline says about a retry.
pub const RETRY_NOTE: &str = "retried by its owner";

async fn retry(state: &AppState, owner: &Owner, id: &str, request: &RequestContext) -> Result<JobRecord, ApiError> {
    let rec = owned(state, owner, id).await?;
    if rec.state != JobState::Failed {
        return Err(ApiError::NotFailed(rec.state.as_str()));
    }
    let requeued = state.book.requeue(&rec.id, &*state.backend.jobs, RETRY_NOTE, Some(request.trace)).await?;
    requeued.ok_or(ApiError::NotFound)
}

/// `POST /api/jobs/{id}/retry`.
pub async fn retry_api(
    state: web::Data<AppState>,
    owner: Owner,
    request: RequestContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rec = retry(&state, &owner, &id, &request).await?;
    Ok(HttpResponse::Accepted().json(JobView::from(&rec)))
}

/// `POST /jobs/{id}/retry` (a form on the job's page).
pub async fn retry_form(
    state: web::Data<AppState>,
    owner: Owner,
    request: RequestContext,
    id: web::Path<String>,
) -> Result<HttpResponse, HtmlError> {
    let rec = retry(&state, &owner, &id, &request).await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/jobs/{}", rec.id))).finish())
}
