//! Live status over Server-Sent Events: `GET /api/jobs/{id}/events` sends the job's current
//! state at once, then every change, and ends after a final state (`done` or `failed`).
//!
//! Each event is `event: status`, `id: <timeline length>`, `data: <the job as JSON>`.
//! A client that reconnects (with or without Last-Event-ID) gets the current state first,
//! so nothing is missed.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use bytes::Bytes;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::api::{owned, JobView};
use crate::error::ApiError;
use crate::identity::Owner;
use crate::jobs::{JobBook, JobRecord};
use crate::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Follow {
    id: String,
    book: Arc<JobBook>,
    rx: broadcast::Receiver<JobRecord>,
    pending: Option<JobRecord>,
    /// `updated_at` of the last record sent (a timeline entry can be replaced, not only added).
    sent: Option<chrono::DateTime<chrono::Utc>>,
}

/// Format one record as an SSE event.
pub fn event(rec: &JobRecord) -> Bytes {
    let data = serde_json::to_string(&JobView::from(rec)).expect("views serialize");
    Bytes::from(format!("event: status\nid: {}\ndata: {data}\n\n", rec.timeline.len()))
}

pub async fn stream(state: web::Data<AppState>, owner: Owner, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    // Subscribe before reading, so a change between the two is not lost.
    let rx = state.book.subscribe();
    let rec = owned(&state, &owner, &id).await?;
    let follow = Follow { id: rec.id.clone(), book: state.book.clone(), rx, pending: Some(rec), sent: None };
    let body = futures_util::stream::unfold(Some(follow), |follow| async move {
        let mut f = follow?;
        loop {
            if let Some(rec) = f.pending.take() {
                f.sent = Some(rec.updated_at);
                let last = rec.state.is_final();
                return Some((Ok::<_, actix_web::Error>(event(&rec)), (!last).then_some(f)));
            }
            match tokio::time::timeout(KEEP_ALIVE, f.rx.recv()).await {
                Err(_) => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(f))),
                Ok(Ok(rec)) => {
                    if rec.id == f.id && (f.sent.is_none_or(|t| rec.updated_at > t) || rec.state.is_final()) {
                        f.pending = Some(rec);
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => f.pending = f.book.get(&f.id).await.ok().flatten(),
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}
