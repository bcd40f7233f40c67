//! The HTML pages: the upload page with the caller's jobs, and one page per job. They work
//! without JavaScript (a form post, a page that refreshes); static/app.js makes them live.

use actix_multipart::Multipart;
use actix_web::http::header;
use actix_web::{web, HttpResponse, Responder};
use askama::Template;
use askama_web::WebTemplate;
use darkroom_core::recipe::{Preset, PRESETS};

use crate::api::{owned, JobView};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::{ingest, AppState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/upload", web::post().to(upload))
        .route("/jobs/{id}", web::get().to(job_page));
}

#[derive(Template, WebTemplate)]
#[template(path = "index.html")]
struct IndexPage {
    presets: &'static [Preset],
    jobs: Vec<JobView>,
    max_mb: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "job.html")]
struct JobPage {
    job: JobView,
    is_final: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    title: String,
    message: String,
}

fn error_page(e: &ApiError) -> HttpResponse {
    use actix_web::ResponseError;
    let page = ErrorPage {
        title: "That did not work".into(),
        message: e.body()["error"]["message"].as_str().unwrap_or("").to_string(),
    };
    HttpResponse::build(e.status_code())
        .content_type("text/html; charset=utf-8")
        .body(page.render().unwrap_or_default())
}

async fn index(state: web::Data<AppState>, owner: Owner) -> Result<impl Responder, ApiError> {
    let jobs = state.book.list(&owner.0).await?.iter().map(JobView::from).collect();
    Ok(IndexPage { presets: PRESETS, jobs, max_mb: state.limits.max_input_bytes / (1024 * 1024) })
}

async fn job_page(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> HttpResponse {
    match owned(&state, &owner, &id).await {
        Ok(rec) => {
            let page = JobPage { is_final: rec.state.is_final(), job: JobView::from(&rec) };
            HttpResponse::Ok().content_type("text/html; charset=utf-8").body(page.render().unwrap_or_default())
        }
        Err(e) => error_page(&e),
    }
}

/// The form post used without JavaScript: store, queue, then back to the list.
async fn upload(state: web::Data<AppState>, owner: Owner, payload: Multipart) -> HttpResponse {
    let result = async {
        let upload = ingest::read_multipart(payload, state.limits.max_input_bytes).await?;
        ingest::submit(&state, &owner.0, upload).await
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
