//! The HTML pages: the upload page with the caller's gallery, and one page per job. They work
//! without JavaScript (a form post, a page that refreshes, forms for delete and retry);
//! static/app.js makes them live (per-file uploads with progress, the recipe builder, SSE).
//!
//! Their errors are [`HtmlError`](super::html::HtmlError): a page saying what happened, with
//! the status the API would answer. Form posts redirect (`303`) on success.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::recipe::{Preset, MAX_OPS, MAX_OUTPUTS, PRESETS};

use crate::error::ApiError;
use crate::identity::Owner;
use crate::routes::html::HtmlError;
use crate::routes::jobs::owned;
use crate::views::JobView;
use crate::{ingest, AppState};

/// File types the upload page offers (the server checks the bytes, whatever the name).
pub const ACCEPT: &str = "image/jpeg,image/png,image/webp,image/gif,image/tiff,image/bmp,image/heic,image/heif,.jpg,.jpeg,.png,.webp,.gif,.tif,.tiff,.bmp,.heic,.heif";

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
pub struct IndexPage {
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
pub struct IndexQuery {
    state: Option<String>,
    deleted: Option<String>,
    cursor: Option<String>,
}

/// `GET /`: the upload form and one page of the caller's gallery.
pub async fn index(
    state: web::Data<AppState>,
    owner: Owner,
    q: web::Query<IndexQuery>,
) -> Result<IndexPage, HtmlError> {
    use crate::jobs::page::{Cursor, DEFAULT_LIMIT};
    // One page of the gallery, newest first; older ones behind "Load more" (`?cursor=`).
    let cursor =
        q.cursor.as_deref().filter(|c| !c.is_empty()).map(Cursor::decode).transpose().map_err(HtmlError::NoSuchPage)?;
    let wanted = q.state.as_deref().and_then(JobState::parse);
    let page = state.book.page(&owner.0, cursor.as_ref(), DEFAULT_LIMIT, wanted).await.map_err(ApiError::from)?;
    // The gallery filters by every state.
    let filters: Vec<String> = JobState::ALL.iter().map(|s| s.as_str().to_string()).collect();
    let filter = wanted.map(|s| s.as_str().to_string()).unwrap_or_default();
    let l = &state.limits;
    Ok(IndexPage {
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
    })
}

/// `GET /jobs/{id}`: one job, live with JavaScript, refreshing without.
pub async fn job_page(
    state: web::Data<AppState>,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, HtmlError> {
    let rec = owned(&state, &owner, &id).await?;
    let job = JobView::from(&rec);
    let previewable = !matches!(job.original.content_type.as_str(), "image/heic" | "image/heif" | "image/tiff");
    let page = JobPage { is_final: rec.state.is_final(), can_retry: rec.state.is_retryable(), previewable, job };
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page.render().unwrap_or_default()))
}

/// `POST /upload`, the form post used without JavaScript: store, queue, then to the job (or
/// the gallery).
pub async fn upload(
    state: web::Data<AppState>,
    owner: Owner,
    request: crate::request_context::RequestContext,
    parts: crate::multipart_guard::Parts,
) -> Result<HttpResponse, HtmlError> {
    let upload = ingest::receive(&state, parts).await?;
    let submitted = ingest::submit(&state, &owner.0, upload, &request.trace).await?;
    let target = match submitted.jobs.as_slice() {
        [one] if submitted.rejected.is_empty() => format!("/jobs/{}", one.id),
        _ => "/".to_string(),
    };
    Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish())
}
