//! The HTML pages: the upload page with the caller's gallery, and one page per job. They work
//! without JavaScript (a form post, a page that refreshes, forms for delete and retry);
//! static/app.js makes them live (per-file uploads with progress, the recipe builder, SSE).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, Responder};
use askama::Template;
use askama_web::WebTemplate;
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::recipe::{Preset, MAX_OPS, MAX_OUTPUTS, PRESETS};

use crate::api::{owned, JobView};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::{ingest, AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/upload", web::post().to(upload))
        .route("/jobs/{id}", web::get().to(job_page));
}

/// File types the upload page offers (the server checks the bytes, whatever the name).
pub const ACCEPT: &str = "image/jpeg,image/png,image/webp,image/gif,image/tiff,image/bmp,image/heic,image/heif,.jpg,.jpeg,.png,.webp,.gif,.tif,.tiff,.bmp,.heic,.heif";

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
struct IndexPage {
    presets: &'static [Preset],
    jobs: Vec<JobView>,
    total: usize,
    filters: Vec<String>,
    filter: String,
    /// The link to the next (older) page, `None` on the last one.
    next_cursor: Option<String>,
    /// Whether this is a later page (`?cursor=`): a link back to the newest.
    paged: bool,
    deleted: bool,
    max_size: String,
    max_bytes: u64,
    max_pixels: u64,
    max_dimension: u32,
    max_outputs: usize,
    max_ops: usize,
    formats: &'static [&'static str],
    accept: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "job.html")]
struct JobPage {
    job: JobView,
    is_final: bool,
    can_retry: bool,
    previewable: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

/// An HTML error page.
pub fn error_response(status: StatusCode, title: &str, message: &str) -> HttpResponse {
    let page = ErrorPage { title: title.into(), message: message.into() };
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(page.render().unwrap_or_default())
}

fn error_page(e: &ApiError) -> HttpResponse {
    use actix_web::ResponseError;
    error_response(e.status_code(), "That did not work", e.body()["error"]["message"].as_str().unwrap_or(""))
}

/// `52428800` → `50 MB`, `3000000` → `2.9 MB` (as the page script writes sizes).
fn human_size(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        return format!("{} KB", bytes / 1024);
    }
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb.fract() == 0.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{mb:.1} MB")
    }
}

#[derive(serde::Deserialize)]
struct IndexQuery {
    state: Option<String>,
    deleted: Option<String>,
    cursor: Option<String>,
}

async fn index(
    state: web::Data<AppState>,
    owner: Owner,
    q: web::Query<IndexQuery>,
) -> Result<impl Responder, ApiError> {
    use crate::jobs::page::{Cursor, DEFAULT_LIMIT};
    // One page of the gallery, newest first; older ones behind "Load more" (`?cursor=`).
    let cursor = match q.cursor.as_deref().filter(|c| !c.is_empty()).map(Cursor::decode).transpose() {
        Ok(c) => c,
        Err(e) => {
            return Ok(actix_web::Either::Right(error_response(
                StatusCode::BAD_REQUEST,
                "That page does not exist",
                &e.to_string(),
            )))
        }
    };
    let wanted = q.state.as_deref().and_then(JobState::parse);
    let page = state.book.page(&owner.0, cursor.as_ref(), DEFAULT_LIMIT, wanted).await?;
    // The gallery filters by every state.
    let filters: Vec<String> = JobState::ALL.iter().map(|s| s.as_str().to_string()).collect();
    let filter = wanted.map(|s| s.as_str().to_string()).unwrap_or_default();
    let l = &state.limits;
    Ok(actix_web::Either::Left(IndexPage {
        presets: PRESETS,
        jobs: page.jobs.iter().map(JobView::from).collect(),
        total: page.total,
        filters,
        filter,
        next_cursor: page.next.map(|c| c.encode()),
        paged: cursor.is_some(),
        deleted: q.deleted.is_some(),
        max_size: human_size(l.max_input_bytes),
        max_bytes: l.max_input_bytes,
        max_pixels: l.max_pixels,
        max_dimension: l.max_output_dimension,
        max_outputs: MAX_OUTPUTS,
        max_ops: MAX_OPS,
        formats: darkroom_protocol::Format::NAMES,
        accept: ACCEPT,
    }))
}

async fn job_page(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> HttpResponse {
    match owned(&state, &owner, &id).await {
        Ok(rec) => {
            let job = JobView::from(&rec);
            let previewable = !matches!(job.original.content_type.as_str(), "image/heic" | "image/heif" | "image/tiff");
            let page =
                JobPage { is_final: rec.state.is_final(), can_retry: rec.state.is_retryable(), previewable, job };
            HttpResponse::Ok()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .body(page.render().unwrap_or_default())
        }
        Err(e) => error_page(&e),
    }
}

/// The form post used without JavaScript: store, queue, then to the job (or the gallery).
async fn upload(
    state: web::Data<AppState>,
    owner: Owner,
    request: crate::request_context::RequestContext,
    parts: crate::multipart_guard::Parts,
) -> HttpResponse {
    let result = async {
        let upload = ingest::receive(&state, parts).await?;
        ingest::submit(&state, &owner.0, upload, &request.trace).await
    }
    .await;
    match result {
        Ok(submitted) => {
            let target = match submitted.jobs.as_slice() {
                [one] if submitted.rejected.is_empty() => format!("/jobs/{}", one.id),
                _ => "/".to_string(),
            };
            HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish()
        }
        Err(e) => error_page(&e),
    }
}
