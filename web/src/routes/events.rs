//! Live status over Server-Sent Events: `GET /api/jobs/{id}/events` sends the job's current
//! state at once, then every change, and ends after a final state (`done` or `failed`);
//! `GET /api/events` sends every change to any of the caller's jobs and never ends (one
//! connection for a whole gallery: browsers allow only 6 per host over HTTP/1.1).
//!
//! One implementation ([`Live`]) serves both; a [`Watch`] says what it follows. Both follow the
//! owner's own feed ([`JobBook::subscribe_owner`]): a stream never receives, let alone
//! serialises, another browser's jobs. Each holds a [`StreamSlot`] while open: the caps per
//! identity, per address and in total ([`crate::rate_limit`]) answer `429` with `Retry-After`
//! past them, before anything is read or subscribed.
//!
//! Each event is `event: status`, `id: <timeline length>`, `data: <the job as JSON>`
//! ([`crate::views::JobView`]). A client of a job stream that reconnects (with or without
//! Last-Event-ID) gets the current state first, so nothing is missed; the gallery stream has no
//! replay (a client that (re)connects reads `GET /api/jobs` once to catch up) and sends
//! `event: resync` when it lags behind.
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
use chrono::{DateTime, Utc};
use tokio::sync::broadcast::error::RecvError;

use crate::identity::Owner;
use crate::jobs::{JobBook, OwnerFeed};
use crate::rate_limit::{Guard, StreamSlot};
use crate::routes::jobs::owned;
use crate::views::JobView;
use crate::AppState;
use darkroom_protocol::lifecycle::JobRecord;

/// The gallery stream sends a comment this often when nothing happens.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A job stream without news for this long reads the record again.
pub const RECHECK: Duration = Duration::from_secs(5);

const KEEP_ALIVE_COMMENT: &[u8] = b": keep-alive\n\n";

/// Format one record as an SSE event.
pub fn event(rec: &JobRecord) -> Bytes {
    let data = serde_json::to_string(&JobView::from(rec)).expect("views serialize");
    Bytes::from(format!("event: status\nid: {}\ndata: {data}\n\n", rec.timeline.len()))
}

/// `GET /api/jobs/{id}/events`.
pub async fn job_stream(
    state: web::Data<AppState>,
    guard: web::Data<Guard>,
    req: HttpRequest,
    owner: Owner,
    id: web::Path<String>,
) -> Result<HttpResponse, actix_web::Error> {
    let slot = guard.open_stream(&owner.0, guard.addr(&req))?;
    // Subscribe before reading, so a change between the two is not lost.
    let feed = state.book.subscribe_owner(&owner.0);
    let rec = owned(&state, &owner, &id).await?;
    let watch = Watch::Job { id: rec.id.clone(), book: state.book.clone(), pending: Some(Box::new(rec)), sent: None };
    Ok(Live { feed, watch, _slot: slot, ended: false }.respond())
}

/// `GET /api/events`: every change to any of the caller's jobs.
pub async fn owner_stream(
    state: web::Data<AppState>,
    guard: web::Data<Guard>,
    req: HttpRequest,
    owner: Owner,
) -> Result<HttpResponse, actix_web::Error> {
    let slot = guard.open_stream(&owner.0, guard.addr(&req))?;
    let feed = state.book.subscribe_owner(&owner.0);
    Ok(Live { feed, watch: Watch::Owner { greeted: false }, _slot: slot, ended: false }.respond())
}

/// What a stream follows.
enum Watch {
    /// One job: its current state first, then its changes; ends after a final state.
    Job {
        id: String,
        book: Arc<JobBook>,
        /// The record to send next.
        pending: Option<Box<JobRecord>>,
        /// `updated_at` of the last record sent (a timeline entry can be replaced, not only added).
        sent: Option<DateTime<Utc>>,
    },
    /// Every job of the owner, as they change; `: hello` first.
    Owner { greeted: bool },
}

/// What a stream does with what the feed gave it.
enum Step {
    Send(Bytes),
    /// Nothing to send yet: wait on the feed again.
    Wait,
    End,
}

/// One open stream: the owner's feed, what it follows, and its slot under the caps.
struct Live {
    feed: OwnerFeed,
    watch: Watch,
    _slot: StreamSlot,
    /// A job stream sent its final state.
    ended: bool,
}

impl Live {
    fn respond(self) -> HttpResponse {
        let body = futures_util::stream::unfold(self, |mut live| async move {
            live.next().await.map(|bytes| (Ok::<_, actix_web::Error>(bytes), live))
        });
        HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::CONTENT_ENCODING, "identity"))
            .insert_header(("X-Accel-Buffering", "no"))
            .streaming(body)
    }

    /// The next bytes to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(first) = self.ready() {
                return Some(first);
            }
            let quiet = match self.watch {
                Watch::Job { .. } => RECHECK,
                Watch::Owner { .. } => KEEP_ALIVE,
            };
            let received = tokio::time::timeout(quiet, self.feed.recv()).await;
            match self.on(received).await {
                Step::Send(bytes) => return Some(bytes),
                Step::Wait => {}
                Step::End => return None,
            }
        }
    }

    /// What is due before waiting: a job's pending record, the gallery stream's greeting.
    fn ready(&mut self) -> Option<Bytes> {
        match &mut self.watch {
            Watch::Job { pending, sent, .. } => {
                let rec = pending.take()?;
                *sent = Some(rec.updated_at);
                self.ended = rec.state.is_final();
                Some(event(&rec))
            }
            Watch::Owner { greeted: false } => {
                self.watch = Watch::Owner { greeted: true };
                Some(Bytes::from_static(b": hello\n\n"))
            }
            Watch::Owner { greeted: true } => None,
        }
    }

    /// Handle what the feed gave (or that it gave nothing for a while).
    async fn on(&mut self, received: Result<Result<Arc<JobRecord>, RecvError>, tokio::time::error::Elapsed>) -> Step {
        match (&mut self.watch, received) {
            (_, Ok(Err(RecvError::Closed))) => Step::End,
            (Watch::Owner { .. }, Err(_)) => Step::Send(Bytes::from_static(KEEP_ALIVE_COMMENT)),
            (Watch::Owner { .. }, Ok(Ok(rec))) => Step::Send(event(&rec)),
            (Watch::Owner { .. }, Ok(Err(RecvError::Lagged(_)))) => {
                Step::Send(Bytes::from_static(b"event: resync\ndata: {}\n\n"))
            }
            (Watch::Job { id, book, pending, sent }, Err(_)) => match book.get(id).await.ok().flatten() {
                Some(rec) if news(&rec, *sent) => {
                    *pending = Some(Box::new(rec));
                    Step::Wait
                }
                _ => Step::Send(Bytes::from_static(KEEP_ALIVE_COMMENT)),
            },
            (Watch::Job { id, pending, sent, .. }, Ok(Ok(rec))) => {
                if rec.id == *id && news(&rec, *sent) {
                    *pending = Some(Box::new(Arc::unwrap_or_clone(rec)));
                }
                Step::Wait
            }
            (Watch::Job { id, book, pending, .. }, Ok(Err(RecvError::Lagged(_)))) => {
                *pending = book.get(id).await.ok().flatten().map(Box::new);
                Step::Wait
            }
        }
    }
}

/// Whether a job stream should send `rec`: newer than what it sent, or final.
fn news(rec: &JobRecord, sent: Option<DateTime<Utc>>) -> bool {
    sent.is_none_or(|t| rec.updated_at > t) || rec.state.is_final()
}
