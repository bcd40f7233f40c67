//! The ops page (`/ops`): queue depths, workers (idle ones too, from their presence messages)
//! with their state and slots, throughput, retries, recent failures, and a button that sends dead-lettered jobs back to the job queue.
//!
//! Sign-in, behind `DARKROOM_ADMIN_TOKEN` (at least [`MIN_TOKEN_LEN`] characters; a shorter one
//! leaves the page off and says so):
//! - the token is taken by POST only (`/ops/login`, the page's form); `/ops?token=…` shows the
//!   form instead, since a token in a URL stays in browser history, proxies' logs and
//!   Referer headers;
//! - the comparison is of SHA-256 digests with a constant-time equality, so neither the
//!   token's length nor its first differing byte shows in the answer's timing;
//! - wrong tokens are limited per client address (IPv6: per /64): after [`LOGIN_FAILURES`] failures within a
//!   minute every sign-in from that address answers 429 with `Retry-After` until the oldest
//!   failure is a minute old (in memory, per web app process);
//! - a session is a cookie (HttpOnly, SameSite=Strict, `__Host-` and Secure over HTTPS) holding
//!   its expiry and a random nonce, signed with HMAC-SHA256 under a key derived from the cookie
//!   key and the admin token's digest. No server state: it survives a restart and works on
//!   every replica with the same key; changing the admin token ends every session. It lasts
//!   `DARKROOM_OPS_SESSION_TTL` (12 h). Signing out records the nonce as revoked at
//!   `system/ops-revoked/<nonce>` in the store (and in memory), which every replica checks,
//!   so the cookie is dead even if it was copied.
//!
//! Redrive (`POST /ops/redrive`): the web app's dead-letter watcher reads each dead letter
//! as it arrives, marks its job `failed` (code `gave_up`) and hides the message for 12 h, so
//! the job records are the reliable list of what the queue gave up on. The redrive
//! 1. takes the dead letters that are visible now (not yet read by the watcher): a job the web
//!    app knows is queued again from its record; a job it does not know (sent from outside)
//!    is sent back as it is; either way the dead letter is deleted. Unreadable ones are left.
//! 2. queues again every job whose record says `failed` with code `gave_up`, rebuilding the job
//!    message from the record (record back to `queued` with a timeline entry, attempts from 1).
//!
//! The hidden copies of step 2's jobs stay in the dead-letter queue until their 12 h are up;
//! the watcher then applies `gave_up` again, which changes nothing for a job that has since
//! finished (final states are kept).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use askama::Template;
use bytes::Bytes;
use darkroom_core::queue::{JobQueue, QueueCounts};
use darkroom_core::scaling::ScalingReport;
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::Requeue;
use darkroom_protocol::message::JobMessage;
use darkroom_protocol::trace::TraceParent;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::registry::{Registry, Snapshot, WorkerInfo, WorkerStatus, MINUTES};
use crate::identity::CookieSettings;
use crate::jobs::manage::ManageError;
use crate::request_context::RequestContext;
use crate::AppState;

/// The session cookie over plain HTTP.
const COOKIE: &str = "darkroom_ops";
/// The session cookie when cookies are Secure (`__Host-`: Path=/, no Domain).
const SECURE_COOKIE: &str = "__Host-darkroom_ops";
/// Shortest admin token that turns the page on.
pub const MIN_TOKEN_LEN: usize = 16;
/// Wrong tokens per client address per [`LOGIN_WINDOW`] before sign-in answers 429.
pub const LOGIN_FAILURES: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);
/// Client addresses whose failures are remembered at most.
const LOGIN_ADDRESSES: usize = 4096;
/// Where signed-out sessions' nonces are kept (one small object each, body: the expiry).
const REVOKED_PREFIX: &str = darkroom_protocol::keys::OPS_REVOKED_PREFIX;
/// Revoked nonces kept in memory at most (the store has them all).
const REVOKED_IN_MEMORY: usize = 1024;

/// Whether the ops page is on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Access {
    /// No `DARKROOM_ADMIN_TOKEN`.
    Off,
    /// A token shorter than [`MIN_TOKEN_LEN`] (its length).
    TooShort(usize),
    /// The SHA-256 digest of the token.
    On([u8; 32]),
}

pub struct AdminState {
    access: Access,
    secure: bool,
    /// HMAC key of session cookies.
    session_key: [u8; 32],
    session_ttl: Duration,
    store: Arc<dyn ObjectStore>,
    revoked: Mutex<HashMap<String, i64>>,
    limiter: LoginLimiter,
    pub registry: Arc<Registry>,
}

/// A verified session cookie.
#[derive(Debug, PartialEq, Eq)]
struct Session {
    expires: i64,
    nonce: String,
}

impl AdminState {
    pub fn new(
        token: Option<String>,
        cookies: &CookieSettings,
        session_ttl: Duration,
        store: Arc<dyn ObjectStore>,
        registry: Arc<Registry>,
    ) -> Self {
        let access = match token.filter(|t| !t.trim().is_empty()) {
            None => Access::Off,
            Some(t) if t.chars().count() < MIN_TOKEN_LEN => {
                tracing::error!(
                    length = t.chars().count(),
                    "DARKROOM_ADMIN_TOKEN is shorter than {MIN_TOKEN_LEN} characters: the ops page stays off; \
                     set a longer one, e.g. `openssl rand -hex 24`"
                );
                Access::TooShort(t.chars().count())
            }
            Some(t) => Access::On(Sha256::digest(t.as_bytes()).into()),
        };
        // Bound to the token too: a new token ends every session of the old one.
        let mut purpose = b"ops-session\0".to_vec();
        if let Access::On(d) = &access {
            purpose.extend_from_slice(d);
        }
        AdminState {
            session_key: cookies.derive(&purpose),
            secure: cookies.secure(),
            access,
            session_ttl,
            store,
            revoked: Mutex::new(HashMap::new()),
            limiter: LoginLimiter::new(LOGIN_FAILURES, LOGIN_WINDOW),
            registry,
        }
    }

    fn enabled(&self) -> bool {
        matches!(self.access, Access::On(_))
    }

    /// Constant-time comparison of the SHA-256 digests of the token and `given`.
    fn token_ok(&self, given: &str) -> bool {
        let Access::On(digest) = &self.access else { return false };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        bool::from(digest.ct_eq(&given))
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE
        } else {
            COOKIE
        }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.session_key).expect("HMAC takes any key length");
        mac.update(payload.as_bytes());
        mac
    }

    /// `v1.<expiry, unix seconds>.<nonce>.<HMAC-SHA256 of what precedes, hex>`.
    fn sign(&self, expires: i64, nonce: &str) -> String {
        let payload = format!("v1.{expires}.{nonce}");
        let tag = hex(&self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{tag}")
    }

    /// The session a cookie value proves at `now` (unix seconds): signed by this key, not expired.
    fn verify(&self, value: &str, now: i64) -> Option<Session> {
        let (payload, tag) = value.rsplit_once('.')?;
        let tag = unhex(tag)?;
        self.mac(payload).verify_slice(&tag).ok()?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(expires), Some(nonce), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires: i64 = expires.parse().ok()?;
        (now < expires && is_nonce(nonce)).then(|| Session { expires, nonce: nonce.to_string() })
    }

    async fn authed(&self, req: &HttpRequest) -> bool {
        if !self.enabled() {
            return false;
        }
        let Some(c) = req.cookie(self.cookie_name()) else { return false };
        let Some(session) = self.verify(c.value(), chrono::Utc::now().timestamp()) else { return false };
        if self.revoked.lock().unwrap().contains_key(&session.nonce) {
            return false;
        }
        match self.store.head(&format!("{REVOKED_PREFIX}{}", session.nonce)).await {
            Ok(None) | Err(StoreError::NotFound(_)) => true,
            Ok(Some(_)) => {
                self.remember_revoked(&session);
                false
            }
            // The store is down: sessions signed out on this process are still refused above;
            // the ops page stays usable during the outage it is there to show.
            Err(e) => {
                tracing::warn!(error = %e, "cannot check whether an ops session was signed out; letting it in");
                true
            }
        }
    }

    fn start_session(&self) -> Cookie<'static> {
        use rand::Rng;
        let nonce: String = {
            let mut rng = rand::rng();
            hex(&rng.random::<[u8; 16]>())
        };
        let expires = chrono::Utc::now().timestamp() + self.session_ttl.as_secs() as i64;
        Cookie::build(self.cookie_name(), self.sign(expires, &nonce))
            .path(if self.secure { "/" } else { "/ops" })
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .max_age(CookieDuration::seconds(self.session_ttl.as_secs() as i64))
            .finish()
    }

    fn remember_revoked(&self, session: &Session) {
        let now = chrono::Utc::now().timestamp();
        let mut revoked = self.revoked.lock().unwrap();
        revoked.retain(|_, expires| *expires > now);
        if revoked.len() >= REVOKED_IN_MEMORY {
            if let Some(first) = revoked.iter().min_by_key(|(_, e)| **e).map(|(n, _)| n.clone()) {
                revoked.remove(&first);
            }
        }
        revoked.insert(session.nonce.clone(), session.expires);
    }

    /// End a session for good: in memory at once, in the store for every replica and restart.
    async fn revoke(&self, session: &Session) -> Result<(), StoreError> {
        self.remember_revoked(session);
        let key = format!("{REVOKED_PREFIX}{}", session.nonce);
        self.store.put(&key, Bytes::from(session.expires.to_string()), "text/plain").await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn is_nonce(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Wrong sign-ins per client address in a sliding window.
struct LoginLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn new(max: usize, window: Duration) -> Self {
        LoginLimiter { max, window, failures: Mutex::new(HashMap::new()) }
    }

    /// `Err(wait)` while `ip` has had `max` failures within the window.
    fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut all = self.failures.lock().unwrap();
        let Some(f) = all.get_mut(&ip) else { return Ok(()) };
        while f.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            f.pop_front();
        }
        match f.front() {
            Some(oldest) if f.len() >= self.max => Err(self.window - now.duration_since(*oldest)),
            None => {
                all.remove(&ip);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn fail(&self, ip: IpAddr, now: Instant) {
        let mut all = self.failures.lock().unwrap();
        if !all.contains_key(&ip) && all.len() >= LOGIN_ADDRESSES {
            all.retain(|_, f| f.back().is_some_and(|t| now.duration_since(*t) < self.window));
            if all.len() >= LOGIN_ADDRESSES {
                if let Some(stalest) = all.iter().min_by_key(|(_, f)| f.back().copied()).map(|(ip, _)| *ip) {
                    all.remove(&stalest);
                }
            }
        }
        let f = all.entry(ip).or_default();
        f.push_back(now);
        while f.len() > self.max {
            f.pop_front();
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ops", web::get().to(page))
        .route("/ops/login", web::post().to(login))
        .route("/ops/logout", web::post().to(logout))
        .route("/ops/redrive", web::post().to(redrive));
}

pub struct QueueRow {
    pub label: &'static str,
    pub name: String,
    pub counts: Result<QueueCounts, String>,
}

#[derive(Template)]
#[template(path = "ops.html")]
struct AdminPage {
    enabled: bool,
    authed: bool,
    login_failed: bool,
    /// A sign-in message (token in the URL, too many attempts, token too short).
    notice: Option<String>,
    flash: Option<String>,
    queues: Vec<QueueRow>,
    snap: Snapshot,
    chart: String,
    minutes: usize,
    /// What supervisors (`darkroom-processor supervise`) decided, newest report first.
    scaling: Vec<ScalingReport>,
    now: chrono::DateTime<chrono::Utc>,
}

impl AdminPage {
    fn empty(enabled: bool) -> Self {
        AdminPage {
            enabled,
            authed: false,
            login_failed: false,
            notice: None,
            flash: None,
            queues: vec![],
            snap: Snapshot { workers: vec![], events: vec![], retries: vec![], failures: vec![], per_minute: vec![] },
            chart: String::new(),
            minutes: MINUTES,
            scaling: vec![],
            now: chrono::Utc::now(),
        }
    }

    /// Seconds since `t`, for "seen 3 s ago".
    fn ago(&self, t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
        match t {
            None => "never".into(),
            Some(t) => {
                let s = (self.now - *t).num_seconds().max(0);
                if s < 120 {
                    format!("{s} s ago")
                } else {
                    format!("{} min ago", s / 60)
                }
            }
        }
    }

    /// A worker's state in words: `idle`, `busy 2 of 4`, `stopping, 1 job left`, `silent for 45 s`, `stopped`.
    fn worker_state(&self, w: &WorkerInfo) -> String {
        let slots = w.presence.as_ref().map(|p| p.slots);
        match w.status {
            WorkerStatus::Idle => "idle".into(),
            WorkerStatus::Busy => match slots {
                Some(m) => format!("busy {} of {m}", w.busy),
                None => format!("busy {}", w.busy),
            },
            WorkerStatus::Stopping => {
                format!("stopping, {} job{} left", w.busy, if w.busy == 1 { "" } else { "s" })
            }
            WorkerStatus::Silent => {
                if w.quiet_s < 120 {
                    format!("silent for {} s", w.quiet_s)
                } else {
                    format!("silent for {} min", w.quiet_s / 60)
                }
            }
            WorkerStatus::Stopped => "stopped".into(),
        }
    }

    fn short<'a>(&self, id: &'a str) -> &'a str {
        &id[id.len().saturating_sub(8)..]
    }
}

fn html(status: actix_web::http::StatusCode, page: &AdminPage) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(page.render().unwrap_or_else(|e| format!("template error: {e}")))
}

fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_string())).finish()
}

#[derive(serde::Deserialize)]
struct PageQuery {
    token: Option<String>,
    redriven: Option<usize>,
    resent: Option<usize>,
    failed: Option<String>,
}

/// Bars of jobs finished per minute (done in green, failed in red above it).
pub fn chart(per_minute: &[(u32, u32)]) -> String {
    let (w, h, gap, top) = (22u32, 90u32, 4u32, 14u32);
    let max = per_minute.iter().map(|(d, f)| d + f).max().unwrap_or(0).max(1);
    let width = per_minute.len() as u32 * (w + gap);
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {width} {}" width="{width}" height="{}" role="img" aria-labelledby="chart-title"><title id="chart-title">Jobs finished per minute, last {} minutes: {}</title>"#,
        h + top + 16,
        h + top + 16,
        per_minute.len(),
        per_minute.iter().map(|(d, f)| format!("{}", d + f)).collect::<Vec<_>>().join(", ")
    );
    for (i, (done, failed)) in per_minute.iter().enumerate() {
        let x = i as u32 * (w + gap);
        let dh = done * h / max;
        let fh = failed * h / max;
        svg.push_str(&format!(r#"<rect x="{x}" y="{}" width="{w}" height="{dh}" class="bar-done"/>"#, top + h - dh));
        svg.push_str(&format!(
            r#"<rect x="{x}" y="{}" width="{w}" height="{fh}" class="bar-failed"/>"#,
            top + h - dh - fh
        ));
        if done + failed > 0 {
            svg.push_str(&format!(
                r#"<text x="{}" y="{}" class="bar-label">{}</text>"#,
                x + w / 2,
                top + h - dh - fh - 3,
                done + failed
            ));
        }
    }
    svg.push_str(&format!(
        r#"<text x="0" y="{}" class="axis">−{} min</text><text x="{width}" y="{}" class="axis end">now</text></svg>"#,
        top + h + 14,
        per_minute.len(),
        top + h + 14
    ));
    svg
}

/// Reports of supervisors heard from within [`SCALING_SHOWN_FOR`], newest first, at most
/// [`MAX_SCALING_REPORTS`]; unreadable ones are skipped (the page must render whatever is there).
async fn scaling_reports(store: &dyn ObjectStore) -> Vec<ScalingReport> {
    let Ok(keys) = store.list(keys::SCALING_PREFIX).await else { return vec![] };
    let mut reports = vec![];
    for key in keys.iter().filter(|k| k.ends_with(".json")).take(MAX_SCALING_REPORTS) {
        if let Ok(bytes) = store.get(key).await {
            if let Ok(r) = serde_json::from_slice::<ScalingReport>(&bytes) {
                reports.push(r);
            }
        }
    }
    let now = chrono::Utc::now();
    reports.retain(|r| (now - r.updated_at).to_std().is_ok_and(|age| age < SCALING_SHOWN_FOR) || r.updated_at > now);
    reports.sort_by_key(|r| std::cmp::Reverse(r.updated_at));
    reports
}

/// A supervisor's report is shown this long after its last update (a stopped one too).
const SCALING_SHOWN_FOR: Duration = Duration::from_secs(3600);
/// Most supervisor reports read per page view.
const MAX_SCALING_REPORTS: usize = 16;

async fn queue_row(label: &'static str, q: &Arc<dyn JobQueue>) -> QueueRow {
    QueueRow { label, name: q.name().to_string(), counts: q.counts().await.map_err(|e| e.to_string()) }
}

async fn page(
    state: web::Data<AppState>,
    ops: web::Data<AdminState>,
    req: HttpRequest,
    q: web::Query<PageQuery>,
) -> HttpResponse {
    if !ops.enabled() {
        return off_page(&ops);
    }
    if !ops.authed(&req).await {
        let mut p = AdminPage::empty(true);
        if q.token.is_some() {
            p.notice = Some(
                "Sign-in links (/ops?token=…) are not accepted: a token in an address stays in browser history \
                 and logs. Enter the token below."
                    .into(),
            );
        }
        return html(StatusCode::FORBIDDEN, &p);
    }
    let b = &state.backend;
    let queues = vec![
        queue_row("Jobs", &b.jobs).await,
        queue_row("Replies", &b.replies).await,
        queue_row("Dead letters", &b.dead_letters).await,
    ];
    let snap = ops.registry.snapshot();
    let flash = match (&q.failed, q.redriven, q.resent) {
        (Some(e), _, _) => Some(format!("Redrive stopped: {e}")),
        (None, Some(n), r) => Some(format!(
            "{n} job{} queued again{}.",
            if n == 1 { "" } else { "s" },
            r.filter(|r| *r > 0)
                .map(|r| format!(", {r} foreign message(s) sent back as they were"))
                .unwrap_or_default()
        )),
        _ => None,
    };
    let page = AdminPage {
        enabled: true,
        authed: true,
        login_failed: false,
        notice: None,
        flash,
        queues,
        chart: chart(&snap.per_minute),
        snap,
        minutes: MINUTES,
        scaling: scaling_reports(&*b.store).await,
        now: chrono::Utc::now(),
    };
    html(StatusCode::OK, &page)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

/// The page when the token is missing or too short (404: there is no ops page).
fn off_page(ops: &AdminState) -> HttpResponse {
    let mut p = AdminPage::empty(false);
    if let Access::TooShort(n) = ops.access {
        p.notice = Some(format!(
            "The ops page is off: DARKROOM_ADMIN_TOKEN is {n} characters long and must be at least \
             {MIN_TOKEN_LEN}. Set a longer one (e.g. `openssl rand -hex 24`) and restart darkroom-web."
        ));
    }
    html(StatusCode::NOT_FOUND, &p)
}

async fn login(ops: web::Data<AdminState>, req: HttpRequest, form: web::Form<LoginForm>) -> HttpResponse {
    if !ops.enabled() {
        return off_page(&ops);
    }
    // The peer address, not X-Forwarded-For (which any client can write); an IPv6 client is
    // its /64, which one attacker usually holds whole.
    let ip = match req.peer_addr().map(|a| a.ip()) {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))
        }
        Some(ip) => ip,
        None => IpAddr::from([0, 0, 0, 0]),
    };
    if let Err(wait) = ops.limiter.check(ip, Instant::now()) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        tracing::warn!(%ip, retry_after = secs, "ops sign-in refused: too many wrong tokens");
        let mut p = AdminPage::empty(true);
        p.notice = Some(format!(
            "Too many wrong tokens from your address ({LOGIN_FAILURES} within a minute). Try again in {secs} s."
        ));
        let mut res = html(StatusCode::TOO_MANY_REQUESTS, &p);
        res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs.max(1)));
        return res;
    }
    if ops.token_ok(form.token.trim()) {
        tracing::info!(%ip, "ops sign-in");
        let mut res = see_other("/ops");
        let _ = res.add_cookie(&ops.start_session());
        res
    } else {
        ops.limiter.fail(ip, Instant::now());
        tracing::warn!(%ip, "ops sign-in with a wrong token");
        let mut p = AdminPage::empty(true);
        p.login_failed = true;
        html(StatusCode::FORBIDDEN, &p)
    }
}

async fn logout(ops: web::Data<AdminState>, req: HttpRequest) -> HttpResponse {
    let name = ops.cookie_name();
    let session = req.cookie(name).and_then(|c| ops.verify(c.value(), chrono::Utc::now().timestamp()));
    if let Some(session) = session {
        if let Err(e) = ops.revoke(&session).await {
            // Refused on this process at once; other replicas accept it until it expires.
            tracing::error!(error = %e, "cannot record an ops sign-out in the store");
        }
    }
    let mut res = see_other("/ops");
    let mut gone = Cookie::build(name, "").path(if ops.secure { "/" } else { "/ops" }).secure(ops.secure).finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    res
}

async fn redrive(state: web::Data<AppState>, ops: web::Data<AdminState>, req: HttpRequest) -> HttpResponse {
    if !ops.authed(&req).await {
        return see_other("/ops");
    }
    let trace = req.extensions().get::<RequestContext>().map(|r| r.trace);
    match redrive_all(&state, trace).await {
        Ok((requeued, resent)) => {
            tracing::warn!(requeued, resent, "operator redrive of dead-lettered jobs");
            see_other(&format!("/ops?redriven={requeued}&resent={resent}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "redrive failed");
            let msg: String =
                e.to_string().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' }).take(200).collect();
            see_other(&format!("/ops?failed={}", msg.trim().replace(' ', "+")))
        }
    }
}

/// Returns (jobs queued again from their records, foreign messages sent back as they were).
async fn redrive_all(state: &AppState, trace: Option<TraceParent>) -> anyhow::Result<(usize, usize)> {
    let b = &state.backend;
    let mut done: HashSet<String> = HashSet::new();
    let mut resent = 0;
    // 1. Dead letters visible right now (bounded: 20 batches of 10).
    for _ in 0..20 {
        let batch = b.dead_letters.receive(10, Duration::ZERO).await?;
        if batch.is_empty() {
            break;
        }
        for msg in batch {
            match JobMessage::from_json(&msg.body) {
                Ok(job) => {
                    if !done.contains(&job.job_id) {
                        match state.book.requeue(&job.job_id, &*b.jobs, Requeue::Redrive, trace).await {
                            Ok(Some(_)) => {
                                done.insert(job.job_id.clone());
                            }
                            Ok(None) => {
                                b.jobs.send(&msg.body).await?;
                                resent += 1;
                            }
                            // Done after all (a slow worker finished it): nothing to redo.
                            Err(ManageError::NotFinished(_)) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    b.dead_letters.delete(&msg.receipt).await?;
                }
                Err(e) => {
                    tracing::warn!(error = %e, message_id = %msg.message_id, "unreadable dead letter left in place");
                    let _ = b.dead_letters.change_visibility(&msg.receipt, Duration::ZERO).await;
                }
            }
        }
    }
    // 2. Jobs the queue gave up on, from their records.
    for rec in state.book.all_records().await? {
        if rec.was_given_up()
            && !done.contains(&rec.id)
            && state.book.requeue(&rec.id, &*b.jobs, Requeue::Redrive, trace).await?.is_some()
        {
            done.insert(rec.id.clone());
        }
    }
    Ok((done.len(), resent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_bar_pair_per_minute_and_says_what_it_shows() {
        let svg = chart(&[(0, 0), (3, 1), (1, 0)]);
        assert_eq!(svg.matches("class=\"bar-done\"").count(), 3);
        assert!(svg.contains("<title id=\"chart-title\">Jobs finished per minute, last 3 minutes: 0, 4, 1</title>"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }

    use actix_web::cookie::Key;
    use darkroom_core::store::fs::FsStore;

    fn ops(token: &str, key: &Key) -> AdminState {
        let dir = std::env::temp_dir().join(format!("darkroom-ops-test-{}", std::process::id()));
        let store: Arc<dyn ObjectStore> = Arc::new(FsStore::open(&dir).unwrap());
        let cookies = CookieSettings::with_key(key.clone(), false);
        AdminState::new(Some(token.into()), &cookies, Duration::from_secs(60), store, Registry::new())
    }

    #[test]
    fn token_check_compares_digests() {
        let key = Key::generate();
        let o = ops("s3cret-token-0123", &key);
        assert!(o.token_ok("s3cret-token-0123"));
        assert!(!o.token_ok("s3cret-token-012"), "a prefix");
        assert!(!o.token_ok("s3cret-token-0123-and-more"), "longer");
        assert!(!o.token_ok("S3cret-token-0123"));
        assert!(!o.token_ok(""));
        assert!(!ops("  ", &key).enabled(), "a blank token leaves the page off");
        let short = ops("only-15-chars!!", &key);
        assert_eq!(short.access, Access::TooShort(15));
        assert!(!short.token_ok("only-15-chars!!"), "a short token leaves the page off");
    }

    #[test]
    fn sessions_are_signed_expire_and_are_bound_to_key_and_token() {
        let key = Key::generate();
        let o = ops("s3cret-token-0123", &key);
        let nonce = "0123456789abcdef0123456789abcdef";
        let value = o.sign(1_000, nonce);
        assert_eq!(o.verify(&value, 999), Some(Session { expires: 1_000, nonce: nonce.into() }));
        assert_eq!(o.verify(&value, 1_000), None, "expired");
        assert_eq!(o.verify(&value.replace("v1.1000.", "v1.9000."), 999), None, "a longer expiry breaks the MAC");
        assert_eq!(o.verify(&format!("{value}0"), 999), None);
        assert_eq!(o.verify("v1.9999999999.x.00", 0), None);
        assert_eq!(ops("s3cret-token-0123", &key).verify(&value, 999).map(|s| s.expires), Some(1_000), "a restart");
        assert_eq!(ops("s3cret-token-0123", &Key::generate()).verify(&value, 999), None, "another cookie key");
        assert_eq!(ops("another-token-0123", &key).verify(&value, 999), None, "another admin token");
        let cookie = o.start_session();
        assert_eq!((cookie.http_only(), cookie.same_site()), (Some(true), Some(SameSite::Strict)));
        assert!(o.verify(cookie.value(), chrono::Utc::now().timestamp()).is_some());
    }

    #[test]
    fn wrong_sign_ins_are_limited_per_address_for_a_minute() {
        let limiter = LoginLimiter::new(3, Duration::from_secs(60));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.check(a, t0 + Duration::from_secs(i)).is_ok());
            limiter.fail(a, t0 + Duration::from_secs(i));
        }
        assert_eq!(limiter.check(a, t0 + Duration::from_secs(10)), Err(Duration::from_secs(50)));
        assert!(limiter.check(b, t0 + Duration::from_secs(10)).is_ok(), "per address");
        assert!(limiter.check(a, t0 + Duration::from_secs(60)).is_ok(), "the oldest failure left the window");
    }
}
