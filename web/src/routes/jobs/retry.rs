//! Try a failed job again: it goes back to the queue with its original and its recipe.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/jobs/{id}/retry` | `202` the job (queued again); `409 not_failed` unless it failed; `404` for another browser's job |
//! | `POST /jobs/{id}/retry` | the same from a form (no JavaScript), then `303` to the job's page |

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::owned;
use crate::error::ApiError;
use crate::identity::Owner;
use crate::request_context::RequestContext;
use crate::routes::html::HtmlError;
use crate::views::JobView;
use crate::AppState;
use darkroom_protocol::lifecycle::{JobRecord, Requeue};

async fn retry(state: &AppState, owner: &Owner, id: &str, request: &RequestContext) -> Result<JobRecord, ApiError> {
    let rec = owned(state, owner, id).await?;
    if !rec.state.is_retryable() {
        return Err(ApiError::NotFailed(rec.state.as_str()));
    }
    let requeued = state.book.requeue(&rec.id, &*state.backend.jobs, Requeue::ByOwner, Some(request.trace)).await?;
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
