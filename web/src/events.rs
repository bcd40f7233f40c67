//! Live status over Server-Sent Events: `GET /api/jobs/{id}/events` sends the job's current
//! state at once, then every change, and ends after a final state (`done` or `failed`);
//! `GET /api/events` sends every change to any of the caller's jobs and never ends.
//!
//! Both follow the owner's own feed ([`JobBook::subscribe_owner`]): a stream never receives,
//! let alone serialises, another browser's jobs. Each holds a [`StreamSlot`] while open: the
//! caps per identity, per address and in total ([`crate::rate_limit`]) answer `429` with
//! `Retry-After` past them, before anything is read or subscribed.
//!
//! Each event is `event: status`, `id: <timeline length>`, `data: <the job as JSON>`.
//! A client that reconnects (with or without Last-Event-ID) gets the current state first,
//! so nothing is missed.
//!
//! With several web app replicas, a job's changes reach this replica's feeds through change
//! notices ([`crate::replicas`]); a job stream that has heard nothing for [`RECHECK`] also
//! reads the record again (through the cache, whose entries live at most
//! `DARKROOM_JOB_CACHE_TTL`), so even a lost notice delays an event, never loses it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use darkroom_protocol::lifecycle::JobRecord;
use tokio::sync::broadcast::error::RecvError;

use crate::api::{owned, JobView};
use crate::identity::Owner;
use crate::jobs::{JobBook, OwnerFeed};
use crate::rate_limit::{Guard, StreamSlot};
use crate::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A job stream without news for this long reads the record again.
pub const RECHECK: Duration = Duration::from_secs(5);

struct Follow {
    id: String,
    book: Arc<JobBook>,
    rx: OwnerFeed,
    pending: Option<JobRecord>,
    /// `updated_at` of the last record sent (a timeline entry can be replaced, not only added).
    sent: Option<chrono::DateTime<chrono::Utc>>,
    _slot: StreamSlot,
}

/// Format one record as an SSE event.
pub fn event(rec: &JobRecord) -> Bytes {
    let data = serde_json::to_string(&JobView::from(rec)).expect("views serialize");
    Bytes::from(format!("event: status\nid: {}\ndata: {data}\n\n", rec.timeline.len()))
}

fn sse(body: impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_ENCODING, "identity"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}

pub async fn stream(
    state: web::Data<AppState>,
    guard: web::Data<Guard>,
    req: HttpRequest,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let slot = guard.open_stream(&owner.0, guard.addr(&req))?;
    // Subscribe before reading, so a change between the two is not lost.
    let rx = state.book.subscribe_owner(&owner.0);
    let rec = owned(&state, &owner, &id).await?;
    let follow =
        Follow { id: rec.id.clone(), book: state.book.clone(), rx, pending: Some(rec), sent: None, _slot: slot };
    let body = futures_util::stream::unfold(Some(follow), |follow| async move {
        let mut f = follow?;
        loop {
            if let Some(rec) = f.pending.take() {
                f.sent = Some(rec.updated_at);
                let last = rec.state.is_final();
                return Some((Ok::<_, actix_web::Error>(event(&rec)), (!last).then_some(f)));
            }
            match tokio::time::timeout(RECHECK, f.rx.recv()).await {
                Err(_) => match f.book.get(&f.id).await.ok().flatten() {
                    Some(rec) if f.sent.is_none_or(|t| rec.updated_at > t) || rec.state.is_final() => {
                        f.pending = Some(rec)
                    }
                    _ => return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(f))),
                },
                Ok(Ok(rec)) => {
                    if rec.id == f.id && (f.sent.is_none_or(|t| rec.updated_at > t) || rec.state.is_final()) {
                        f.pending = Some(Arc::unwrap_or_clone(rec));
                    }
                }
                Ok(Err(RecvError::Lagged(_))) => f.pending = f.book.get(&f.id).await.ok().flatten(),
                Ok(Err(RecvError::Closed)) => return None,
            }
        }
    });
    Ok(sse(body))
}

/// `GET /api/events`: every change to any of the caller's jobs, as SSE (`event: status`). No
/// replay: a client that (re)connects reads `GET /api/jobs` once to catch up; a lagging one
/// gets `event: resync`.
pub async fn owner_stream(
    state: web::Data<AppState>,
    guard: web::Data<Guard>,
    req: HttpRequest,
    owner: Owner,
) -> Result<HttpResponse, actix_web::Error> {
    let slot = guard.open_stream(&owner.0, guard.addr(&req))?;
    let feed = state.book.subscribe_owner(&owner.0);
    let start = futures_util::stream::once(async { Ok::<_, actix_web::Error>(Bytes::from_static(b": hello\n\n")) });
    let changes = futures_util::stream::unfold((feed, slot), |(mut feed, slot)| async move {
        match tokio::time::timeout(KEEP_ALIVE, feed.recv()).await {
            Err(_) => Some((Ok(Bytes::from_static(b": keep-alive\n\n")), (feed, slot))),
            Ok(Ok(rec)) => Some((Ok(event(&rec)), (feed, slot))),
            Ok(Err(RecvError::Lagged(_))) => {
                Some((Ok(Bytes::from_static(b"event: resync\ndata: {}\n\n")), (feed, slot)))
            }
            Ok(Err(RecvError::Closed)) => None,
        }
    });
    Ok(sse(futures_util::StreamExt::chain(start, changes)))
}
