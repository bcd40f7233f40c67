//! The hostile suite (issue 12), on both backends: one test binary, one module per kind of
//! attack. `trust`:
//! - messages on the shared queues are not trusted as they are: a forged `done` cannot point a
//!   job at a key that is not its own output (the cookie key, another job's output), and a
//!   forged job message cannot have another job's original rendered into a job's outputs
//!   (straight onto the queues, as an outside sender would);
//! - every response carries the security headers (CSP without `unsafe-inline`, nosniff, no
//!   framing, a referrer policy), pages, API, downloads and errors alike;
//! - during an outage, `/healthz` and API errors tell anonymous clients that storage or the
//!   queue is unavailable, without the endpoint, bucket, queue names or paths behind it.

use std::time::Duration;

use darkroom_e2e::TestApp;
use serde_json::Value;

mod growth;
mod trust;

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
