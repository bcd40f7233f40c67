//! Every route of the web app, in one table ([`configure`]): the whole HTTP surface on one
//! screen. The modules below follow the URL tree: `/api/jobs/...` in [`jobs`] (one file per
//! operation), the live streams in [`events`], `/api/logos` in [`logos`], the HTML pages and
//! their form posts in [`pages`]; the ops page's routes are its own module's (`crate::admin`).
//!
//! One error type per group, each an actix [`ResponseError`](actix_web::ResponseError): the
//! jobs API's [`ApiError`](crate::error::ApiError) (a JSON body
//! `{"error":{"code","message",...}}`), [`logos::LogoError`], and [`html::HtmlError`] (a page).
//! The API is a contract: README, docs/protocol.md and web/openapi.json describe it (the e2e
//! suite checks the document against every `/api` route in this table).

pub mod assets;
pub mod events;
pub mod health;
pub mod html;
pub mod jobs;
pub mod logos;
pub mod metrics;
pub mod op_schema;
pub mod openapi;
pub mod pages;

use actix_web::web;

/// Every route, by path.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use jobs::{cancel, create, delete, files, preview, retry};
    cfg
        // Health, for load balancers and orchestrators.
        .route("/livez", web::get().to(health::livez))
        .route("/readyz", web::get().to(health::readyz))
        .route("/healthz", web::get().to(health::healthz))
        // The jobs API.
        .route("/api/jobs", web::post().to(create::create))
        .route("/api/jobs", web::get().to(jobs::list))
        .route("/api/jobs/{id}", web::get().to(jobs::show))
        .route("/api/jobs/{id}", web::delete().to(delete::delete_api))
        .route("/api/jobs/{id}/cancel", web::post().to(cancel::cancel_api))
        .route("/api/jobs/{id}/retry", web::post().to(retry::retry_api))
        .route("/api/jobs/{id}/events", web::get().to(events::job_stream))
        .route("/api/jobs/{id}/original", web::get().to(files::original))
        .route("/api/jobs/{id}/original", web::head().to(files::original))
        .route("/api/jobs/{id}/outputs/{name}", web::get().to(files::output))
        .route("/api/jobs/{id}/outputs/{name}", web::head().to(files::output))
        .route("/api/jobs/{id}/outputs.zip", web::get().to(files::zip_all))
        .route("/api/jobs/{id}/preview", web::get().to(preview::preview))
        .route("/api/jobs/{id}/preview", web::head().to(preview::preview))
        // Every change to any of the caller's jobs (the gallery's one connection).
        .route("/api/events", web::get().to(events::owner_stream))
        // Watermark logos.
        .route("/api/logos", web::post().to(logos::upload))
        .route("/api/logos", web::get().to(logos::list))
        .route("/api/logos/{id}", web::delete().to(logos::delete))
        .route("/api/openapi.json", web::get().to(openapi::document))
        // The recipe builder's op schema (every op, its fields, ranges and defaults).
        .route("/api/ops", web::get().to(op_schema::ops))
        // Prometheus.
        .route("/metrics", web::get().to(metrics::scrape))
        // The pages, and the form posts that work without JavaScript.
        .route("/", web::get().to(pages::index))
        .route("/upload", web::post().to(pages::upload))
        .route("/jobs/{id}", web::get().to(pages::job_page))
        .route("/jobs/{id}/cancel", web::post().to(cancel::cancel_form))
        .route("/jobs/{id}/retry", web::post().to(retry::retry_form))
        .route("/jobs/{id}/delete", web::post().to(delete::delete_form))
        .route("/static/{file}", web::get().to(assets::asset))
        // The ops page (`/ops`, its sign-in and actions).
        .configure(crate::admin::routes);
}
