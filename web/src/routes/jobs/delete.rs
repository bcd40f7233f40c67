//! Delete a finished job from "My photos": its record, its original, its outputs and its
//! preview all go.
//!
//! | request | answer |
//! |---|---|
//! | `DELETE /api/jobs/{id}` | `204`; `409 not_finished` while queued or processing; `404` for another browser's job |
//! | `POST /jobs/{id}/delete` | the same from a form (no JavaScript), then `303` to the gallery |

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::owned;
use crate::error::ApiError;
use crate::identity::Owner;
use crate::routes::html::HtmlError;
use crate::AppState;

async fn delete(state: &AppState, owner: &Owner, id: &str) -> Result<(), ApiError> {
    let rec = owned(state, owner, id).await?;
    state.book.delete_job(&rec.id).await?.ok_or(ApiError::NotFound)?;
    Ok(())
}

/// `DELETE /api/jobs/{id}`.
pub async fn delete_api(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    delete(&state, &owner, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /jobs/{id}/delete` (a form on the gallery and the job's page).
pub async fn delete_form(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, HtmlError> {
    delete(&state, &owner, &id).await?;
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, "/?deleted=1")).finish())
}
