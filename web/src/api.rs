//! The HTTP API (a contract: see README and docs/protocol.md): jobs as JSON, their bytes.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use darkroom_protocol::lifecycle::{JobError, JobRecord, JobState, TimelineEntry};
use serde::Serialize;
use serde_json::json;

use crate::download::{self, Download};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::multipart_guard::Parts;
use crate::request_context::RequestContext;
use crate::AppState;
use crate::{idempotency, ingest};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/livez", web::get().to(livez))
        .route("/readyz", web::get().to(readyz))
        .route("/api/jobs", web::post().to(create))
        .route("/api/jobs", web::get().to(list))
        .route("/api/jobs/{id}", web::get().to(show))
        .route("/api/jobs/{id}/events", web::get().to(crate::events::stream))
        .route("/api/jobs/{id}/original", web::get().to(original))
        .route("/api/jobs/{id}/original", web::head().to(original))
        .route("/api/jobs/{id}/outputs/{name}", web::get().to(output))
        .route("/api/jobs/{id}/outputs/{name}", web::head().to(output));
}

#[derive(Serialize)]
pub struct OutputView {
    pub name: String,
    pub url: String,
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

#[derive(Serialize)]
pub struct OriginalView {
    pub url: String,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// A job as the API shows it.
#[derive(Serialize)]
pub struct JobView {
    pub id: String,
    pub state: JobState,
    pub filename: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: u32,
    pub worker: Option<String>,
    pub outputs: Vec<OutputView>,
    /// The small image a gallery card shows (`/api/jobs/{id}/preview`), once there is one.
    pub preview_url: Option<String>,
    pub error: Option<JobError>,
    pub original: OriginalView,
    pub timeline: Vec<TimelineEntry>,
    pub links: serde_json::Value,
}

impl From<&JobRecord> for JobView {
    fn from(r: &JobRecord) -> Self {
        let base = format!("/api/jobs/{}", r.id);
        JobView {
            id: r.id.clone(),
            state: r.state,
            filename: r.filename.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            attempts: r.attempts,
            worker: r.worker.clone(),
            outputs: r
                .outputs
                .iter()
                .map(|o| OutputView {
                    name: o.name.clone(),
                    url: format!("{base}/outputs/{}", o.name),
                    format: o.format.name(),
                    width: o.width,
                    height: o.height,
                    bytes: o.bytes,
                })
                .collect(),
            preview_url: crate::preview::url_of(r),
            error: r.error.clone(),
            original: OriginalView {
                url: format!("{base}/original"),
                content_type: r.original_type.clone(),
                width: r.original_width,
                height: r.original_height,
                bytes: r.original_bytes,
            },
            timeline: r.timeline.clone(),
            links: json!({ "self": base, "events": format!("{base}/events"), "page": format!("/jobs/{}", r.id) }),
        }
    }
}

/// Liveness: the process and its HTTP server answer. Touches neither the store nor the
/// queues, so an outage of those never gets a healthy web app restarted.
async fn livez() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({ "status": "ok" }))
}

/// A key nobody writes: the readiness check asks the store about it.
const READINESS_KEY: &str = "system/readyz";

/// Longest one dependency may take to answer a readiness check.
const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Readiness: the store and the job and reply queues answer, so the app can take uploads and
/// follow jobs. `503` with what is down (not how: the log has the detail) otherwise.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let b = &state.backend;
    let timed = |what: &'static str, r: Result<Result<(), String>, tokio::time::error::Elapsed>| match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: {what} is unreachable");
            Some(what)
        }
        Err(_) => {
            tracing::warn!("readiness check: {what} did not answer within {} s", READY_LIMIT.as_secs());
            Some(what)
        }
    };
    let (store, jobs, replies) = futures_util::join!(
        // Any answer of the store's (a refusal too) shows it is reachable: the web app may
        // not be allowed to read a key it never wrote, and that is no outage.
        tokio::time::timeout(READY_LIMIT, async {
            match b.store.head(READINESS_KEY).await {
                Err(e) if e.is_transient() => Err(e.to_string()),
                _ => Ok(()),
            }
        }),
        tokio::time::timeout(READY_LIMIT, async { b.jobs.counts().await.map(drop).map_err(|e| e.to_string()) }),
        tokio::time::timeout(READY_LIMIT, async { b.replies.counts().await.map(drop).map_err(|e| e.to_string()) }),
    );
    let down: Vec<&str> =
        [timed("the object store", store), timed("the job queue", jobs), timed("the reply queue", replies)]
            .into_iter()
            .flatten()
            .collect();
    let mut res = if down.is_empty() { HttpResponse::Ok() } else { HttpResponse::ServiceUnavailable() };
    res.insert_header((header::CACHE_CONTROL, "no-store"));
    if down.is_empty() {
        res.json(json!({ "status": "ready" }))
    } else {
        res.json(json!({
            "status": "not_ready",
            "unreachable": down,
            "error": format!("{} unreachable; see the web app's log", down.join(", ")),
        }))
    }
}

/// The readiness check's old name, kept as it was for existing health checks: `200` when the
/// job queue answers (with its depth), `503` otherwise. New deployments: `/livez`, `/readyz`.
async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    match state.backend.jobs.counts().await {
        Ok(c) => {
            HttpResponse::Ok().json(json!({ "status": "ok", "jobs_visible": c.visible, "jobs_in_flight": c.in_flight }))
        }
        Err(e) => {
            // The SDK's message names endpoints and queues: the log gets it, the client does not.
            tracing::warn!(error = %e, "health check: the job queue is unreachable");
            HttpResponse::ServiceUnavailable()
                .json(json!({ "status": "degraded", "error": "the job queue is unreachable; see the web app's log" }))
        }
    }
}

/// `POST /api/jobs`, with an optional `Idempotency-Key` ([`crate::idempotency`]).
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    request: RequestContext,
    parts: Parts,
) -> Result<HttpResponse, ApiError> {
    // A bad key is refused before the body is read.
    let Some(key) = idempotency::key_of(req.headers())? else {
        let upload = ingest::receive(&state, parts).await?;
        return create_jobs(&state, &owner, upload, &request).await;
    };
    let upload = ingest::receive(&state, parts).await?;
    let fingerprint = idempotency::fingerprint(&upload).await?;
    let store = &*state.backend.store;
    let claim = match state.idempotency.begin(store, &owner.0, &key, &fingerprint).await? {
        idempotency::Begin::Replay(answer) => {
            let status =
                actix_web::http::StatusCode::from_u16(answer.status).unwrap_or(actix_web::http::StatusCode::ACCEPTED);
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

async fn create_jobs(
    state: &AppState,
    owner: &Owner,
    upload: ingest::Upload,
    request: &RequestContext,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Accepted().json(submitted_body(state, owner, upload, request).await?))
}

/// Store and queue an upload's jobs; the `202` answer's body.
async fn submitted_body(
    state: &AppState,
    owner: &Owner,
    upload: ingest::Upload,
    request: &RequestContext,
) -> Result<serde_json::Value, ApiError> {
    let submitted = ingest::submit(state, &owner.0, upload, &request.trace).await?;
    let jobs: Vec<_> = submitted
        .jobs
        .iter()
        .map(|r| {
            let v = JobView::from(r);
            json!({ "id": v.id, "state": v.state, "filename": v.filename, "links": v.links })
        })
        .collect();
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

/// `GET /api/jobs?limit=&cursor=&state=`: one page of the caller's jobs, newest first
/// ([`crate::jobs::page`]), with `next_cursor` (`null` on the last page).
async fn list(
    state: web::Data<AppState>,
    owner: Owner,
    q: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    match crate::jobs::page::from_query(&state.book, &owner.0, &q).await {
        Ok(page) => {
            let jobs: Vec<JobView> = page.jobs.iter().map(JobView::from).collect();
            let next = page.next.as_ref().map(|c| c.encode());
            HttpResponse::Ok().json(json!({ "jobs": jobs, "next_cursor": next, "total": page.total }))
        }
        Err(e) => crate::jobs::page::error_response(e),
    }
}

pub async fn owned(state: &AppState, owner: &Owner, id: &str) -> Result<JobRecord, ApiError> {
    state.book.get_owned(id, &owner.0).await?.ok_or(ApiError::NotFound)
}

async fn show(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let rec = owned(&state, &owner, &id).await?;
    Ok(HttpResponse::Ok().json(JobView::from(&rec)))
}

#[derive(serde::Deserialize)]
struct DownloadQuery {
    download: Option<String>,
}

async fn original(
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

async fn output(
    req: HttpRequest,
    state: web::Data<AppState>,
    owner: Owner,
    path: web::Path<(String, String)>,
    q: web::Query<DownloadQuery>,
) -> Result<HttpResponse, ApiError> {
    let (id, name) = path.into_inner();
    let rec = owned(&state, &owner, &id).await?;
    let out = rec.outputs.iter().find(|o| o.name == name).ok_or(ApiError::NotFound)?;
    let filename = format!("{}-{}.{}", crate::gallery::stem(&rec.filename), out.name, out.format.extension());
    let d = Download {
        key: &out.key,
        content_type: out.format.mime(),
        filename: &filename,
        attachment: q.download.is_some(),
    };
    download::respond(&req, &state, d).await
}
