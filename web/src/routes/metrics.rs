//! `GET /metrics`, the Prometheus scrape: the registry itself is [`crate::metrics`]; this route
//! reads the gauges that are read at scrape time (open streams, workers) and renders it.

use actix_web::{web, HttpResponse};

use crate::metrics;

/// `GET /metrics`: this process's metrics ([`crate::metrics`]), with the gauges read at scrape time.
pub async fn scrape(
    state: web::Data<crate::AppState>,
    guard: web::Data<crate::rate_limit::Guard>,
    ops: web::Data<crate::admin::AdminState>,
) -> HttpResponse {
    metrics::get().set_workers(&ops.registry.counts());
    let body = metrics::get().render(&state.backend, guard.open_streams()).await;
    HttpResponse::Ok().content_type(metrics::CONTENT_TYPE).insert_header(("cache-control", "no-store")).body(body)
}
