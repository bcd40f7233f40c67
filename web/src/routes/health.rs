//! Health checks for load balancers and orchestrators: `GET /livez` (the process answers),
//! `GET /readyz` (the store and the queues answer too), and `GET /healthz`, the readiness
//! check's old name, kept as it was.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use darkroom_protocol::keys;
use serde_json::json;

use crate::AppState;

/// Longest one dependency may take to answer a readiness check.
const READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Liveness: the process and its HTTP server answer. Touches neither the store nor the
/// queues, so an outage of those never gets a healthy web app restarted.
pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({ "status": "ok" }))
}

/// Readiness: the store and the job and reply queues answer, so the app can take uploads and
/// follow jobs. `503` with what is down (not how: the log has the detail) otherwise.
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let b = &state.backend;
    let (store, jobs, replies) = futures_util::join!(
        // Any answer of the store's (a refusal too) shows it is reachable: the web app may
        // not be allowed to read a key it never wrote, and that is no outage.
        tokio::time::timeout(READY_LIMIT, async {
            match b.store.head(keys::READINESS).await {
                Err(e) if e.is_transient() => Err(e.to_string()),
                _ => Ok(()),
            }
        }),
        tokio::time::timeout(READY_LIMIT, async { b.jobs.counts().await.map(drop).map_err(|e| e.to_string()) }),
        tokio::time::timeout(READY_LIMIT, async { b.replies.counts().await.map(drop).map_err(|e| e.to_string()) }),
    );
    let down: Vec<&str> =
        [down("the object store", store), down("the job queue", jobs), down("the reply queue", replies)]
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

/// `Some(what)` when one dependency did not answer in time or answered with an error (logged).
fn down(what: &'static str, r: Result<Result<(), String>, tokio::time::error::Elapsed>) -> Option<&'static str> {
    match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: {what} is unreachable");
            Some(what)
        }
        Err(_) => {
            tracing::warn!("readiness check: {what} did not answer within {} s", READY_LIMIT.as_secs());
            Some(what)
        }
    }
}

/// The readiness check's old name, kept as it was for existing health checks: `200` when the
/// job queue answers (with its depth), `503` otherwise. New deployments: `/livez`, `/readyz`.
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
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
