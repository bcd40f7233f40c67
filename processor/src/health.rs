//! The processor's probe port: `/livez` (the process and its runtime answer), `/readyz`
//! (connected to its store and queues, its last receive from the job queue worked, and not
//! shutting down), for container health checks
//! and orchestrators, and `/metrics` (Prometheus, see [`crate::metrics`]). Off unless `DARKROOM_PROCESSOR_BIND` is set: `scripts/start` runs several
//! processors on one machine, where one fixed port would collide; the container image sets it.
//!
//! A few bytes of HTTP/1.1 on a plain listener, so the processor needs no web framework.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the probes report; the receive loop keeps it current.
#[derive(Debug, Default)]
pub struct Health {
    pub worker: String,
    pub slots: usize,
    busy: AtomicUsize,
    ready: AtomicBool,
}

impl Health {
    pub fn new(worker: String, slots: usize) -> Arc<Health> {
        Arc::new(Health { worker, slots, ..Health::default() })
    }
    /// Connected and taking jobs (true), or not yet / no longer (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }
    pub fn set_busy(&self, busy: usize) {
        self.busy.store(busy, Ordering::SeqCst);
    }
    fn body(&self) -> serde_json::Value {
        json!({
            "worker": self.worker,
            "ready": self.ready.load(Ordering::SeqCst),
            "slots": self.slots,
            "busy": self.busy.load(Ordering::SeqCst),
            "engine": darkroom_engine::capabilities(),
        })
    }
}

/// Serve the probes on `listener` until the process ends.
pub async fn run(listener: TcpListener, health: Arc<Health>) {
    serve(listener, move |path| match path {
        "/metrics" => ("200 OK", crate::metrics::CONTENT_TYPE, crate::metrics::get().render()),
        _ => {
            let (status, body) = probe(&health, path);
            (status, "application/json", body.to_string())
        }
    })
    .await
}

/// A status line, a content type and a body.
pub type Answer = (&'static str, &'static str, String);

/// Answer every GET on `listener` with `answer(path)`, one request per connection, until the
/// process ends. Shared by the probe port and the supervisor's (`crate::supervisor`).
pub async fn serve(listener: TcpListener, answer: impl Fn(&str) -> Answer + Send + Sync + 'static) {
    let answer = Arc::new(answer);
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let answer = answer.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, content_type, body) = answer(path);
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes()).await;
            let _ = conn.shutdown().await;
        });
    }
}

/// The answer to a probe path: status line and JSON body.
fn probe(health: &Health, path: &str) -> (&'static str, serde_json::Value) {
    match path {
        "/livez" => ("200 OK", health.body()),
        "/readyz" if health.ready.load(Ordering::SeqCst) => ("200 OK", health.body()),
        "/readyz" => ("503 Service Unavailable", health.body()),
        _ => ("404 Not Found", json!({"error": "not_found", "message": "try /livez, /readyz or /metrics"})),
    }
}
