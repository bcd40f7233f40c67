//! "My photos" actions: delete a job (its objects go too), retry a failed one, download all
//! of a job's outputs as one ZIP file. JSON endpoints for the page script, and form posts
//! for the pages without JavaScript.
//!
//! | request | answer |
//! |---|---|
//! | `DELETE /api/jobs/{id}` | `204`; `409 not_finished` while queued or processing |
//! | `POST /api/jobs/{id}/retry` | `202` the job (queued again); `409 not_failed` unless it failed |
//! | `GET /api/jobs/{id}/outputs.zip` | the outputs as a ZIP (stored entries, UTF-8 names, ZIP64 past 4 GiB), streamed |
//! | `GET /api/events` | `text/event-stream` of every change to any of the caller's jobs (`event: status`, the job as JSON); never ends. One connection for a whole gallery: browsers allow only 6 per host over HTTP/1.1 |
//! | `POST /jobs/{id}/delete`, `POST /jobs/{id}/retry` | the same, then `303` to the gallery / the job page |

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use darkroom_protocol::lifecycle::{JobRecord, Requeue};
use futures_util::TryStreamExt;
use serde_json::json;

use crate::api::{owned, JobView};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::jobs::manage::ManageError;
use crate::request_context::RequestContext;
use crate::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/jobs/{id}", web::delete().to(delete_api))
        .route("/api/jobs/{id}/retry", web::post().to(retry_api))
        .route("/api/jobs/{id}/outputs.zip", web::get().to(zip_all))
        .route("/api/events", web::get().to(crate::events::owner_stream))
        .route("/jobs/{id}/delete", web::post().to(delete_form))
        .route("/jobs/{id}/retry", web::post().to(retry_form));
}

/// A refusal or failure of an action, as the API's JSON error.
enum ActionError {
    Api(ApiError),
    Conflict(&'static str, String),
}

impl From<ApiError> for ActionError {
    fn from(e: ApiError) -> Self {
        ActionError::Api(e)
    }
}

impl From<ManageError> for ActionError {
    fn from(e: ManageError) -> Self {
        match e {
            ManageError::NotFinished(_) => ActionError::Conflict("not_finished", e.to_string()),
            ManageError::NotCancellable(state) => ActionError::Api(ApiError::NotCancellable(state.as_str())),
            ManageError::Store(e) => ActionError::Api(ApiError::Store(e)),
            ManageError::Queue(e) => ActionError::Api(ApiError::Queue(e)),
        }
    }
}

impl ActionError {
    fn response(&self) -> HttpResponse {
        match self {
            ActionError::Api(e) => actix_web::ResponseError::error_response(e),
            ActionError::Conflict(code, message) => {
                HttpResponse::Conflict().json(json!({ "error": { "code": code, "message": message } }))
            }
        }
    }
}

async fn delete(state: &AppState, owner: &Owner, id: &str) -> Result<(), ActionError> {
    let rec = owned(state, owner, id).await?;
    state.book.delete_job(&rec.id).await?.ok_or(ApiError::NotFound)?;
    Ok(())
}

async fn retry(state: &AppState, owner: &Owner, id: &str, request: &RequestContext) -> Result<JobRecord, ActionError> {
    let rec = owned(state, owner, id).await?;
    if !rec.state.is_retryable() {
        return Err(ActionError::Conflict(
            "not_failed",
            format!("only a failed job can be retried; this one is {}", rec.state.as_str()),
        ));
    }
    let requeued = state.book.requeue(&rec.id, &*state.backend.jobs, Requeue::ByOwner, Some(request.trace)).await?;
    Ok(requeued.ok_or(ApiError::NotFound)?)
}

async fn delete_api(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> HttpResponse {
    match delete(&state, &owner, &id).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => e.response(),
    }
}

async fn retry_api(
    state: web::Data<AppState>,
    owner: Owner,
    request: RequestContext,
    id: web::Path<String>,
) -> HttpResponse {
    match retry(&state, &owner, &id, &request).await {
        Ok(rec) => HttpResponse::Accepted().json(JobView::from(&rec)),
        Err(e) => e.response(),
    }
}

fn form_error(e: ActionError) -> HttpResponse {
    let res = e.response();
    let status = res.status();
    let message = match &e {
        ActionError::Api(a) => a.body()["error"]["message"].as_str().unwrap_or("").to_string(),
        ActionError::Conflict(_, m) => m.clone(),
    };
    crate::pages::error_response(status, "That did not work", &message)
}

async fn delete_form(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> HttpResponse {
    match delete(&state, &owner, &id).await {
        Ok(()) => HttpResponse::SeeOther().insert_header((header::LOCATION, "/?deleted=1")).finish(),
        Err(e) => form_error(e),
    }
}

async fn retry_form(
    state: web::Data<AppState>,
    owner: Owner,
    request: RequestContext,
    id: web::Path<String>,
) -> HttpResponse {
    match retry(&state, &owner, &id, &request).await {
        Ok(rec) => HttpResponse::SeeOther().insert_header((header::LOCATION, format!("/jobs/{}", rec.id))).finish(),
        Err(e) => form_error(e),
    }
}

/// `photo.jpg` → `photo`.
pub fn stem(filename: &str) -> &str {
    filename.rsplit_once('.').map(|(s, _)| s).filter(|s| !s.is_empty()).unwrap_or(filename)
}

async fn zip_all(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> HttpResponse {
    let rec = match owned(&state, &owner, &id).await {
        Ok(r) => r,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    if rec.outputs.is_empty() {
        return ActionError::Conflict(
            "no_outputs",
            format!("the job is {} and has no outputs yet", rec.state.as_str()),
        )
        .response();
    }
    // Names in the archive as the photo was named (UTF-8, flagged as such), minus folders.
    let stem = crate::download::file_name(stem(&rec.filename));
    let entries = rec
        .outputs
        .iter()
        .map(|o| crate::zip::Entry { name: format!("{stem}-{}.{}", o.name, o.format.extension()), key: o.key.clone() })
        .collect();
    let body = crate::zip::stream(state.backend.store.clone(), entries, rec.updated_at).map_err(|e| {
        tracing::warn!(error = %e, "zip download cut short");
        actix_web::error::ErrorServiceUnavailable("storage became unavailable during the download; try again")
    });
    HttpResponse::build(StatusCode::OK)
        .content_type("application/zip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            crate::download::content_disposition(true, &format!("{stem}-outputs.zip")),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        // Built as it streams: no ranges.
        .insert_header((header::ACCEPT_RANGES, "none"))
        // Already-compressed images: the Compress middleware would only waste CPU.
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .streaming(body)
}
