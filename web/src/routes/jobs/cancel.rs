//! Cancel a job that still waits in the queue (issue 16): a person changed their mind, or
//! uploaded the wrong photo, and should not have to wait for (and pay for) its rendering.
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/jobs/{id}/cancel` | `200` the job, `cancelled` (also when it already was); `409 not_cancellable` once a worker started it or it is finished; `404` for another browser's job |
//! | `POST /jobs/{id}/cancel` | the same from a form (no JavaScript), then `303` to the job's page |
//!
//! The record is changed by [`crate::jobs::JobBook::cancel`], which also writes the cancel
//! marker the processor checks: the message stays in the queue until a worker receives it,
//! skips it and deletes it.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use darkroom_protocol::lifecycle::JobRecord;

use super::owned;
use crate::error::ApiError;
use crate::identity::Owner;
use crate::jobs::manage::ManageError;
use crate::routes::html::HtmlError;
use crate::views::JobView;
use crate::AppState;

async fn cancel(state: &AppState, owner: &Owner, id: &str) -> Result<JobRecord, ApiError> {
    let rec = owned(state, owner, id).await?;
    match state.book.cancel(&rec.id).await {
        Ok(Some(rec)) => Ok(rec),
        Ok(None) => Err(ApiError::NotFound),
        Err(ManageError::NotCancellable(s) | ManageError::NotFinished(s)) => Err(ApiError::NotCancellable(s.as_str())),
        Err(e) => Err(e.into()),
    }
}

/// `POST /api/jobs/{id}/cancel`.
pub async fn cancel_api(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let rec = cancel(&state, &owner, &id).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&rec)))
}

/// `POST /jobs/{id}/cancel` (a form on the job's page).
pub async fn cancel_form(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, HtmlError> {
    let rec = cancel(&state, &owner, &id).await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/jobs/{}", rec.id))).finish())
}
