//! The hostile suite (issue 12), on both backends: one test binary, one module per kind of
//! attack, each module's doc saying what it tries:
//! - `trust`: forged statuses and job messages straight onto the shared queues, security
//!   headers on every response, outages reported without internal details;
//! - `clients` (issue 16): retried uploads with an `Idempotency-Key`, cancelled jobs that no
//!   worker may render, the OpenAPI document against the real responses;
//! - `browser`: cross-site requests, forged and foreign cookies, ops sign-in;
//! - `files`: hostile files and junk messages straight onto the queue, past the web app;
//! - `limits`: amplification, and jobs past their time or memory limit;
//! - `uploads`: oversized recipe and file parts and huge part headers refused while reading
//!   with the web process's peak memory small; a full set of upload slots answers 503 with
//!   Retry-After; trickled bodies and request heads are cut off;
//! - `downloads`: ranges past the end, foreign owners asking for 304s and presigned URLs,
//!   non-ASCII and path-like names, large files that must not be held in memory (issue 15).
//! - `retention` (issue 16): aged jobs, unused old logos and expired idempotency records
//!   swept by `DARKROOM_RETENTION` with nothing else touched; two sweeping replicas at once.
//! - `gallery`: cursor pages of the gallery with forged cursors refused, cards that load only
//!   small previews, logos listed and deleted by their owner only (issue 16).

use std::time::Duration;

use darkroom_e2e::TestApp;
use serde_json::Value;

mod browser;
mod clients;
mod downloads;
mod files;
mod gallery;
mod growth;
mod limits;
mod retention;
mod trust;
mod uploads;

pub const RECIPE: &str = r#"{"outputs":[{"name":"web","ops":[{"op":"resize","width":200}],"format":"png"}]}"#;

pub async fn submit(app: &TestApp, client: &reqwest::Client, file: &str) -> String {
    let resp = app.upload(client, &[file], Some(RECIPE)).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["jobs"][0]["id"].as_str().unwrap().to_string()
}

/// Wait (bounded) until `queue` holds nothing visible or in flight: every message consumed.
pub async fn drained(queue: &dyn darkroom_core::queue::JobQueue, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let c = queue.counts().await.unwrap();
        if c.visible == 0 && c.in_flight == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} not consumed within 60 s: {c:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Read the reply queue until every job in `ids` has a final status; returns them in order.
pub async fn final_statuses(
    backend: &darkroom_core::config::Backend,
    ids: &[&str],
    limit: Duration,
) -> Vec<darkroom_protocol::message::StatusMessage> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut finals: Vec<Option<darkroom_protocol::message::StatusMessage>> = vec![None; ids.len()];
    while finals.iter().any(Option::is_none) {
        assert!(tokio::time::Instant::now() < deadline, "no final status within {limit:?}: {finals:?}");
        for m in backend.replies.receive(10, Duration::from_secs(1)).await.unwrap() {
            backend.replies.delete(&m.receipt).await.unwrap();
            // Presence messages of the processors share the reply queue: skip them.
            let darkroom_protocol::message::Reply::Status(s) =
                darkroom_protocol::message::Reply::from_json(&m.body).unwrap()
            else {
                continue;
            };
            if let Some(i) = ids.iter().position(|id| *id == s.job_id) {
                if s.state.is_final() {
                    finals[i] = Some(s);
                }
            }
        }
    }
    finals.into_iter().map(Option::unwrap).collect()
}
