//! `/api/jobs`: the jobs API (a contract: see README and docs/protocol.md). One file per
//! operation below; here the two reads of the caller's jobs and [`owned`], the ownership check
//! every handler under `/api/jobs/{id}` starts with. Errors are [`ApiError`].

pub mod cancel;
pub mod create;
pub mod delete;
pub mod files;
pub mod preview;
pub mod retry;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiError;
use crate::identity::Owner;
use crate::views::JobView;
use crate::AppState;
use darkroom_protocol::lifecycle::JobRecord;

/// The job `id` if `owner` owns it; [`ApiError::NotFound`] otherwise (another browser's job
/// is not found, never forbidden: its existence is not told).
pub async fn owned(state: &AppState, owner: &Owner, id: &str) -> Result<JobRecord, ApiError> {
    state.book.get_owned(id, &owner.0).await?.ok_or(ApiError::NotFound)
}

/// `GET /api/jobs?limit=&cursor=&state=`: one page of the caller's jobs, newest first
/// ([`crate::jobs::page`]), with `next_cursor` (`null` on the last page).
pub async fn list(
    state: web::Data<AppState>,
    owner: Owner,
    q: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let page = crate::jobs::page::from_query(&state.book, &owner.0, &q).await?;
    let jobs: Vec<JobView> = page.jobs.iter().map(JobView::from).collect();
    let next = page.next.as_ref().map(|c| c.encode());
    Ok(HttpResponse::Ok().json(json!({ "jobs": jobs, "next_cursor": next, "total": page.total })))
}

/// `GET /api/jobs/{id}`: the job as JSON.
pub async fn show(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let rec = owned(&state, &owner, &id).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&rec)))
}
