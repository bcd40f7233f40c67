//! What one browser or one network address may take from the web app: token-bucket rate limits
//! on uploads (`POST /api/jobs`, the form post `POST /upload`) and logos (`POST /api/logos`),
//! quotas on the jobs and logos one identity keeps, and caps on open event streams (per
//! identity, per address and in total). Without these, anyone on the internet could fill the
//! store, the queue and the web app's memory as fast as the network allows.
//!
//! - Rates are buckets of `N` tokens refilled at `N` per period (`DARKROOM_UPLOAD_RATE=120/min`):
//!   a burst of `N`, then one every period/`N`. Over it: `429` with `Retry-After` (seconds) and
//!   `{"error":{"code":"rate_limited","message":…,"retry_after":…}}`, before the body is read.
//! - Each request takes a token from its identity's bucket and from its address's bucket. A
//!   request without a valid cookie gets a fresh identity (see [`crate::identity`]) with no
//!   history, so it is limited by its address alone, and no bucket is kept for that identity:
//!   throwing cookies away escapes nothing and costs the web app nothing.
//! - The address is the TCP peer. IPv6 addresses count per /64 (one customer's usual
//!   allocation). Behind a reverse proxy every request comes from the proxy: set
//!   `DARKROOM_TRUST_FORWARDED=true` there, and the last address of `X-Forwarded-For` (the one
//!   the proxy added) counts instead. Off by default: a client can write that header itself.
//! - Quotas (`DARKROOM_MAX_JOBS_PER_IDENTITY`, `DARKROOM_MAX_LOGOS_PER_IDENTITY`) count what the
//!   identity has in the store when a request starts; over them: `403 job_quota_exceeded` /
//!   `logo_quota_exceeded`. One request may hold several files, so the job quota may be passed
//!   by at most one request's files.
//! - The limiter's own memory is bounded: buckets live in an [`Lru`] of [`MAX_BUCKETS`], and a
//!   bucket that has refilled is the same as no bucket, so idle ones are dropped.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use darkroom_core::store::{ObjectStore, StoreError};
use darkroom_protocol::keys;
use serde_json::json;
use std::collections::HashMap;

use crate::error::ApiError;
use crate::identity::{Fresh, Owner};
use crate::lru::Lru;
use crate::AppState;

/// Most rate-limit buckets kept at once (about 100 bytes each); past it the least recently
/// used goes (it is then full again, which errs on the side of the client).
pub const MAX_BUCKETS: usize = 50_000;

/// Seconds a client refused an event stream is asked to wait.
pub const STREAM_RETRY_AFTER: u64 = 10;

/// A rate: `tokens` requests per `per`, in a burst or spread out; or no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    Off,
    Limit { tokens: u32, per: Duration },
}

impl FromStr for Rate {
    type Err = String;

    /// `120/min`, `10/s`, `1000/h`, `3/10s`, `5/2min`, or `off`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") {
            return Ok(Rate::Off);
        }
        let bad =
            || format!("`{s}` is not a rate: write requests per period, e.g. 120/min, 10/s, 3/10s, 1000/h, or off");
        let (n, period) = s.split_once('/').ok_or_else(bad)?;
        let tokens: u32 = n.trim().parse().map_err(|_| bad())?;
        let period = period.trim();
        let split = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (count, unit) = period.split_at(split);
        let count: u64 = if count.is_empty() { 1 } else { count.parse().map_err(|_| bad())? };
        let unit = match unit {
            "s" | "sec" | "second" => 1,
            "m" | "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "d" | "day" => 86_400,
            _ => return Err(bad()),
        };
        if tokens == 0 || count == 0 {
            return Err(format!("`{s}`: the rate must allow at least one request per period (or write `off`)"));
        }
        Ok(Rate::Limit { tokens, per: Duration::from_secs(count * unit) })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::Off => f.write_str("off"),
            Rate::Limit { tokens, per } => write!(f, "{tokens}/{}s", per.as_secs()),
        }
    }
}

/// Limits and quotas (each an environment variable; see the README's configuration table).
#[derive(clap::Args, Clone, Debug)]
pub struct Settings {
    /// Uploads (POST /api/jobs or the form) per identity: N/period (s, min, h), e.g. 120/min, or off.
    #[arg(long, env = "DARKROOM_UPLOAD_RATE", default_value = "120/min")]
    pub upload_rate: Rate,
    /// Uploads per client address (all identities behind it together).
    #[arg(long, env = "DARKROOM_UPLOAD_RATE_PER_IP", default_value = "600/min")]
    pub upload_rate_per_ip: Rate,
    /// Logo uploads (POST /api/logos) per identity.
    #[arg(long, env = "DARKROOM_LOGO_RATE", default_value = "30/min")]
    pub logo_rate: Rate,
    /// Logo uploads per client address.
    #[arg(long, env = "DARKROOM_LOGO_RATE_PER_IP", default_value = "120/min")]
    pub logo_rate_per_ip: Rate,
    /// Jobs one identity may keep (deleting finished jobs makes room).
    #[arg(long, env = "DARKROOM_MAX_JOBS_PER_IDENTITY", default_value_t = 2000)]
    pub max_jobs_per_identity: usize,
    /// Logos one identity may keep.
    #[arg(long, env = "DARKROOM_MAX_LOGOS_PER_IDENTITY", default_value_t = 100)]
    pub max_logos_per_identity: usize,
    /// Event streams (/api/events, /api/jobs/{id}/events) one identity may hold open.
    #[arg(long, env = "DARKROOM_MAX_SSE_PER_IDENTITY", default_value_t = 16)]
    pub max_sse_per_identity: usize,
    /// Event streams one client address may hold open.
    #[arg(long, env = "DARKROOM_MAX_SSE_PER_IP", default_value_t = 100)]
    pub max_sse_per_ip: usize,
    /// Event streams open in total.
    #[arg(long, env = "DARKROOM_MAX_SSE", default_value_t = 1000)]
    pub max_sse: usize,
    /// Count clients by the last X-Forwarded-For address (set behind a reverse proxy that adds it;
    /// never otherwise: clients can write that header).
    #[arg(long, env = "DARKROOM_TRUST_FORWARDED", default_value_t = false)]
    pub trust_forwarded: bool,
    /// Workers the ops page keeps (the one not heard from for longest goes first).
    #[arg(long, env = "DARKROOM_OPS_MAX_WORKERS", default_value_t = crate::admin::registry::MAX_WORKERS)]
    pub ops_max_workers: usize,
    /// Job records the web app caches in memory (a miss reads the store).
    #[arg(long, env = "DARKROOM_JOB_CACHE", default_value_t = crate::jobs::DEFAULT_CACHE)]
    pub job_cache: usize,
}

/// One client address as the limits count it: IPv4 as is, IPv6 by its /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    pub fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => ClientAddr(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientAddr(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    ClientAddr(IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)))
                }
            },
        }
    }

    /// The peer, or with `trust_forwarded` the last address of `X-Forwarded-For`.
    pub fn of(peer: Option<SocketAddr>, forwarded_for: Option<&str>, trust_forwarded: bool) -> Self {
        let forwarded =
            trust_forwarded.then(|| forwarded_for?.rsplit(',').next()?.trim().parse::<IpAddr>().ok()).flatten();
        let ip = forwarded.or(peer.map(|p| p.ip())).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        ClientAddr::new(ip)
    }

    pub fn of_request(req: &HttpRequest, trust_forwarded: bool) -> Self {
        let xff = req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Self::of(req.peer_addr(), xff, trust_forwarded)
    }
}

/// A token bucket: holds up to `tokens`, refilled continuously at `tokens` per `per`.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    level: f64,
    at: Instant,
    tokens: u32,
    per: Duration,
}

impl Bucket {
    /// A full bucket for `tokens` per `per`.
    pub fn full(tokens: u32, per: Duration, now: Instant) -> Self {
        Bucket { level: tokens as f64, at: now, tokens, per }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + elapsed * self.tokens as f64 / self.per.as_secs_f64()).min(self.tokens as f64);
        self.at = now;
    }

    /// How long until one token is there (zero: now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.level >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.level) * self.per.as_secs_f64() / self.tokens as f64)
        }
    }

    /// Take a token (call after [`wait`](Self::wait) said zero).
    pub fn take(&mut self) {
        self.level -= 1.0;
    }

    /// Refilled to the top: the same as no bucket.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.level >= self.tokens as f64
    }
}

/// What a request is about to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Upload,
    Logo,
}

impl Action {
    fn noun(self) -> &'static str {
        match self {
            Action::Upload => "uploads",
            Action::Logo => "logo uploads",
        }
    }
}

/// Who a limit counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    Identity(String),
    Addr(ClientAddr),
}

impl Subject {
    fn whom(&self) -> &'static str {
        match self {
            Subject::Identity(_) => "from this browser",
            Subject::Addr(_) => "from your network address",
        }
    }
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("Too many {} {}: try again in {retry_after} s.", .action.noun(), .subject.whom())]
    RateLimited { action: Action, subject: Subject, retry_after: u64 },
    #[error("This browser already keeps {limit} jobs, the most allowed. Delete finished jobs you no longer need, then upload again.")]
    JobQuota { limit: usize },
    #[error("This browser already keeps {limit} logos, the most allowed. Reuse one of them in your recipe (its key is logos/…).")]
    LogoQuota { limit: usize },
    #[error("Too many live status streams are open {}: close other tabs of this site, or try again in {retry_after} s.", .scope.whom())]
    TooManyStreams { scope: StreamScope, retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which stream cap was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamScope {
    Identity,
    Addr,
    Server,
}

impl StreamScope {
    fn whom(self) -> &'static str {
        match self {
            StreamScope::Identity => "in this browser",
            StreamScope::Addr => "from your network address",
            StreamScope::Server => "on this server",
        }
    }
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::JobQuota { .. } => "job_quota_exceeded",
            Refusal::LogoQuota { .. } => "logo_quota_exceeded",
            Refusal::TooManyStreams { .. } => "too_many_streams",
            Refusal::Store(_) => "storage_unavailable",
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::RateLimited { retry_after, .. } | Refusal::TooManyStreams { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// The JSON error body (with `retry_after` in seconds when waiting helps).
    pub fn body(&self) -> serde_json::Value {
        let mut err = json!({ "code": self.code(), "message": self.to_string() });
        if let Some(s) = self.retry_after() {
            err["retry_after"] = json!(s);
        }
        json!({ "error": err })
    }

    /// As HTML, for the form post without JavaScript.
    pub fn page(&self) -> HttpResponse {
        let message = match self {
            // The store's own message names endpoints and buckets: the log gets it, not the page.
            Refusal::Store(e) => {
                tracing::error!(error = %e, "quota check failed");
                ApiError::Store(e.clone()).to_string()
            }
            other => other.to_string(),
        };
        let mut res = crate::routes::html::error_response(self.status_code(), "Not now", &message);
        self.add_retry_after(&mut res);
        res
    }

    fn add_retry_after(&self, res: &mut HttpResponse) {
        if let Some(s) = self.retry_after() {
            res.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(s));
        }
    }
}

impl ResponseError for Refusal {
    fn status_code(&self) -> StatusCode {
        match self {
            Refusal::RateLimited { .. } | Refusal::TooManyStreams { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::JobQuota { .. } | Refusal::LogoQuota { .. } => StatusCode::FORBIDDEN,
            Refusal::Store(e) => ApiError::Store(e.clone()).status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Refusal::Store(e) = self {
            return ApiError::Store(e.clone()).error_response();
        }
        let mut res = HttpResponse::build(self.status_code()).json(self.body());
        self.add_retry_after(&mut res);
        res
    }
}

/// Token buckets per (action, subject), bounded.
pub struct Limiter {
    buckets: Mutex<Lru<(Action, Subject), Bucket>>,
    calls: std::sync::atomic::AtomicU64,
}

impl Limiter {
    pub fn new(capacity: usize) -> Self {
        Limiter { buckets: Mutex::new(Lru::new(capacity)), calls: Default::default() }
    }

    /// Take one token from each subject's bucket, or none if any is empty (then: the subject
    /// that waits longest, and how long).
    pub fn take(&self, action: Action, subjects: &[(Subject, Rate)], now: Instant) -> Result<(), (Subject, Duration)> {
        let mut buckets = self.buckets.lock().unwrap();
        let mut worst: Option<(Subject, Duration)> = None;
        let mut ready = Vec::with_capacity(subjects.len());
        for (subject, rate) in subjects {
            let Rate::Limit { tokens, per } = *rate else { continue };
            let key = (action, subject.clone());
            let mut bucket = buckets.peek(&key).copied().unwrap_or_else(|| Bucket::full(tokens, per, now));
            let wait = bucket.wait(now);
            if wait > Duration::ZERO {
                if worst.as_ref().is_none_or(|(_, w)| wait > *w) {
                    worst = Some((subject.clone(), wait));
                }
            } else {
                ready.push((key, bucket));
            }
        }
        if let Some(w) = worst {
            return Err(w);
        }
        for (key, mut bucket) in ready {
            bucket.take();
            buckets.insert(key, bucket);
        }
        // Now and then, drop the buckets that have refilled (they are the same as none).
        if self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1024 == 1023 {
            buckets.drop_where(|_, b| b.clone().is_full(now));
        }
        Ok(())
    }

    pub fn buckets(&self) -> usize {
        self.buckets.lock().unwrap().len()
    }
}

/// Open event streams, counted per identity, per address and in total.
#[derive(Default)]
struct StreamCounts {
    total: usize,
    identities: HashMap<String, usize>,
    addrs: HashMap<ClientAddr, usize>,
}

/// Everything this module keeps, shared by the middleware and the event streams.
pub struct Guard {
    pub settings: Settings,
    limiter: Limiter,
    streams: std::sync::Arc<Mutex<StreamCounts>>,
}

/// One open event stream; dropping it (the stream ends or the client goes) frees its place.
pub struct StreamSlot {
    owner: String,
    addr: ClientAddr,
    counts: std::sync::Arc<Mutex<StreamCounts>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap();
        c.total -= 1;
        let mut dec = |n: &mut usize| {
            *n -= 1;
            *n == 0
        };
        if c.identities.get_mut(&self.owner).is_some_and(&mut dec) {
            c.identities.remove(&self.owner);
        }
        if c.addrs.get_mut(&self.addr).is_some_and(dec) {
            c.addrs.remove(&self.addr);
        }
    }
}

impl Guard {
    pub fn new(settings: Settings) -> Self {
        Guard { settings, limiter: Limiter::new(MAX_BUCKETS), streams: Default::default() }
    }

    pub fn addr(&self, req: &HttpRequest) -> ClientAddr {
        ClientAddr::of_request(req, self.settings.trust_forwarded)
    }

    /// A place for one more event stream of `owner` from `addr`, or the cap it would pass.
    pub fn open_stream(&self, owner: &str, addr: ClientAddr) -> Result<StreamSlot, Refusal> {
        let s = &self.settings;
        let mut c = self.streams.lock().unwrap();
        let refuse = |scope| Err(Refusal::TooManyStreams { scope, retry_after: STREAM_RETRY_AFTER });
        if c.identities.get(owner).copied().unwrap_or(0) >= s.max_sse_per_identity {
            return refuse(StreamScope::Identity);
        }
        if c.addrs.get(&addr).copied().unwrap_or(0) >= s.max_sse_per_ip {
            return refuse(StreamScope::Addr);
        }
        if c.total >= s.max_sse {
            return refuse(StreamScope::Server);
        }
        c.total += 1;
        *c.identities.entry(owner.to_string()).or_default() += 1;
        *c.addrs.entry(addr).or_default() += 1;
        Ok(StreamSlot { owner: owner.to_string(), addr, counts: self.streams.clone() })
    }

    /// Open event streams in total.
    pub fn open_streams(&self) -> usize {
        self.streams.lock().unwrap().total
    }

    /// Check `action` for this request: rates first (cheap), then the quota (a store listing).
    pub async fn admit(
        &self,
        action: Action,
        owner: &str,
        fresh: bool,
        addr: ClientAddr,
        store: &dyn ObjectStore,
    ) -> Result<(), Refusal> {
        let s = &self.settings;
        let (per_identity, per_addr) = match action {
            Action::Upload => (s.upload_rate, s.upload_rate_per_ip),
            Action::Logo => (s.logo_rate, s.logo_rate_per_ip),
        };
        let mut subjects = vec![(Subject::Addr(addr), per_addr)];
        // A fresh identity has no history: its address limits it, and nothing is kept for it.
        if !fresh {
            subjects.push((Subject::Identity(owner.to_string()), per_identity));
        }
        if let Err((subject, wait)) = self.limiter.take(action, &subjects, Instant::now()) {
            let retry_after = wait.as_secs_f64().ceil().max(1.0) as u64;
            tracing::info!(?action, ?subject, retry_after, "rate limited");
            return Err(Refusal::RateLimited { action, subject, retry_after });
        }
        if fresh {
            return Ok(());
        }
        match action {
            Action::Upload => {
                let jobs = store.list(&keys::owner_prefix(owner)).await?.len();
                if jobs >= s.max_jobs_per_identity {
                    return Err(Refusal::JobQuota { limit: s.max_jobs_per_identity });
                }
            }
            Action::Logo => {
                let logos = store.list(&keys::logos_of(owner)).await?.len();
                if logos >= s.max_logos_per_identity {
                    return Err(Refusal::LogoQuota { limit: s.max_logos_per_identity });
                }
            }
        }
        Ok(())
    }

    /// Rate-limit buckets held now.
    pub fn buckets(&self) -> usize {
        self.limiter.buckets()
    }
}

/// The limited routes, and whether the answer is a page (the form post) or JSON.
fn action_of(req: &ServiceRequest) -> Option<(Action, bool)> {
    if req.method() != Method::POST {
        return None;
    }
    match req.path() {
        "/api/jobs" => Some((Action::Upload, false)),
        "/upload" => Some((Action::Upload, true)),
        "/api/logos" => Some((Action::Logo, false)),
        _ => None,
    }
}

/// Refuse uploads and logos over a rate or quota before their body is read. Runs inside the
/// identity middleware (it needs the [`Owner`]).
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some((action, page)) = action_of(&req) else {
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    let guard = req.app_data::<web::Data<Guard>>().expect("Guard is registered").clone();
    let state = req.app_data::<web::Data<AppState>>().expect("AppState is registered").clone();
    let owner = req.extensions().get::<Owner>().cloned().expect("identity middleware runs first");
    let fresh = req.extensions().get::<Fresh>().is_some();
    let addr = guard.addr(req.request());
    match guard.admit(action, &owner.0, fresh, addr, &*state.backend.store).await {
        Ok(()) => next.call(req).await.map(ServiceResponse::map_into_left_body),
        Err(refusal) => {
            let res = if page { refusal.page() } else { refusal.error_response() };
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(tokens: u32, secs: u64) -> Rate {
        Rate::Limit { tokens, per: Duration::from_secs(secs) }
    }

    #[test]
    fn rates_parse_and_say_what_is_wrong() {
        assert_eq!("120/min".parse::<Rate>().unwrap(), limit(120, 60));
        assert_eq!(" 10/s ".parse::<Rate>().unwrap(), limit(10, 1));
        assert_eq!("3/10s".parse::<Rate>().unwrap(), limit(3, 10));
        assert_eq!("1000/h".parse::<Rate>().unwrap(), limit(1000, 3600));
        assert_eq!("5/2min".parse::<Rate>().unwrap(), limit(5, 120));
        assert_eq!("off".parse::<Rate>().unwrap(), Rate::Off);
        for bad in ["", "120", "x/min", "10/fortnight", "0/min", "5/0s", "-1/s"] {
            let e = bad.parse::<Rate>().unwrap_err();
            assert!(e.contains("e.g.") || e.contains("at least one"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_bucket_allows_a_burst_then_one_per_interval() {
        let t0 = Instant::now();
        let mut b = Bucket::full(3, Duration::from_secs(6), t0);
        for _ in 0..3 {
            assert_eq!(b.wait(t0), Duration::ZERO);
            b.take();
        }
        let wait = b.wait(t0);
        assert!(wait > Duration::from_millis(1990) && wait <= Duration::from_secs(2), "{wait:?}");
        assert_eq!(b.wait(t0 + Duration::from_secs(2)), Duration::ZERO, "one token every 2 s");
        b.take();
        assert!(b.wait(t0 + Duration::from_secs(3)) > Duration::ZERO);
        assert!(!b.is_full(t0 + Duration::from_secs(3)));
        assert!(b.is_full(t0 + Duration::from_secs(60)), "refills to the top, no further");
        for _ in 0..3 {
            assert_eq!(b.wait(t0 + Duration::from_secs(60)), Duration::ZERO);
            b.take();
        }
        assert!(b.wait(t0 + Duration::from_secs(60)) > Duration::ZERO);
    }

    #[test]
    fn a_request_takes_from_every_bucket_or_from_none() {
        let l = Limiter::new(100);
        let now = Instant::now();
        let addr = Subject::Addr(ClientAddr::new("10.0.0.1".parse().unwrap()));
        let id = |n: u32| Subject::Identity(format!("id{n}"));
        // Identity: 2 per minute; address: 3 per minute.
        let both = |n| [(id(n), limit(2, 60)), (addr.clone(), limit(3, 60))];
        assert!(l.take(Action::Upload, &both(1), now).is_ok());
        assert!(l.take(Action::Upload, &both(1), now).is_ok());
        let (who, wait) = l.take(Action::Upload, &both(1), now).unwrap_err();
        assert_eq!(who, id(1));
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30), "{wait:?}");
        // The refusal took nothing from the address: another identity behind it gets its last token.
        assert!(l.take(Action::Upload, &both(2), now).is_ok());
        let (who, _) = l.take(Action::Upload, &both(3), now).unwrap_err();
        assert_eq!(who, addr, "a new identity (or no cookie) does not escape the address's limit");
        // Logos are counted apart from uploads.
        assert!(l.take(Action::Logo, &both(1), now).is_ok());
        assert!(l.take(Action::Upload, &[(id(9), Rate::Off)], now).is_ok());
    }

    #[test]
    fn the_limiter_keeps_a_bounded_number_of_buckets() {
        let l = Limiter::new(1000);
        let now = Instant::now();
        for n in 0..100_000u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            let _ = l.take(Action::Upload, &[(Subject::Addr(ClientAddr::new(ip)), limit(5, 60))], now);
        }
        assert_eq!(l.buckets(), 1000);
        // Idle buckets refill and are dropped.
        let later = now + Duration::from_secs(120);
        for _ in 0..1024 {
            let _ = l.take(Action::Upload, &[(Subject::Identity("x".into()), limit(100_000, 60))], later);
        }
        assert!(l.buckets() <= 1, "{}", l.buckets());
    }

    #[test]
    fn addresses_count_ipv6_by_its_64_and_forwarded_only_when_trusted() {
        let a = ClientAddr::new("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddr::new("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = ClientAddr::new("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(ClientAddr::new("::ffff:10.1.2.3".parse().unwrap()), ClientAddr::new("10.1.2.3".parse().unwrap()));
        let peer: SocketAddr = "192.0.2.7:5555".parse().unwrap();
        let xff = Some("203.0.113.9, 198.51.100.4");
        assert_eq!(ClientAddr::of(Some(peer), xff, false), ClientAddr::new(peer.ip()));
        assert_eq!(ClientAddr::of(Some(peer), xff, true), ClientAddr::new("198.51.100.4".parse().unwrap()));
        assert_eq!(ClientAddr::of(Some(peer), Some("junk"), true), ClientAddr::new(peer.ip()));
    }

    fn settings() -> Settings {
        use clap::Parser;
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            s: Settings,
        }
        T::parse_from(["t", "--max-sse-per-identity", "2", "--max-sse-per-ip", "3", "--max-sse", "4"]).s
    }

    /// A store that must not be touched.
    struct Untouchable;

    #[async_trait::async_trait]
    impl ObjectStore for Untouchable {
        async fn put(&self, key: &str, _: bytes::Bytes, _: &str) -> Result<(), StoreError> {
            panic!("put {key}")
        }
        async fn put_file(&self, key: &str, _: &std::path::Path, _: &str) -> Result<(), StoreError> {
            panic!("put_file {key}")
        }
        async fn get(&self, key: &str) -> Result<bytes::Bytes, StoreError> {
            panic!("get {key}")
        }
        async fn head(&self, key: &str) -> Result<Option<darkroom_core::store::ObjectInfo>, StoreError> {
            panic!("head {key}")
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            panic!("list {prefix}")
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            panic!("delete {key}")
        }
    }

    #[tokio::test]
    async fn fresh_identities_cost_nothing_and_share_their_address_limit() {
        let mut s = settings();
        s.upload_rate_per_ip = limit(5, 60);
        let g = Guard::new(s);
        let addr = ClientAddr::new("192.0.2.1".parse().unwrap());
        for n in 0..5 {
            let owner = format!("fresh{n}");
            g.admit(Action::Upload, &owner, true, addr, &Untouchable).await.expect("within the address's rate");
        }
        assert_eq!(g.buckets(), 1, "one bucket for the address, none for the five identities");
        let e = g.admit(Action::Upload, "fresh5", true, addr, &Untouchable).await.unwrap_err();
        assert!(matches!(e, Refusal::RateLimited { subject: Subject::Addr(_), .. }), "{e}");
        assert_eq!(e.status_code(), StatusCode::TOO_MANY_REQUESTS);
        let res = e.error_response();
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "12", "one token every 12 s");
        assert_eq!(e.body()["error"]["retry_after"], 12);
    }

    #[test]
    fn stream_caps_per_identity_address_and_in_total_and_slots_come_back() {
        let g = Guard::new(settings());
        let home = ClientAddr::new("10.0.0.1".parse().unwrap());
        let away = ClientAddr::new("10.0.0.2".parse().unwrap());
        let a1 = g.open_stream("a", home).unwrap();
        let _a2 = g.open_stream("a", home).unwrap();
        let e = g.open_stream("a", away).err().unwrap();
        assert!(matches!(e, Refusal::TooManyStreams { scope: StreamScope::Identity, .. }), "{e}");
        assert_eq!(e.status_code(), StatusCode::TOO_MANY_REQUESTS);
        let _b1 = g.open_stream("b", home).unwrap();
        let e = g.open_stream("c", home).err().unwrap();
        assert!(matches!(e, Refusal::TooManyStreams { scope: StreamScope::Addr, .. }), "{e}");
        let _c1 = g.open_stream("c", away).unwrap();
        let e = g.open_stream("d", away).err().unwrap();
        assert!(matches!(e, Refusal::TooManyStreams { scope: StreamScope::Server, .. }), "{e}");
        drop(a1);
        assert_eq!(g.open_streams(), 3);
        let d1 = g.open_stream("d", away).unwrap();
        drop(d1);
        drop(g.open_stream("x", away).unwrap());
        assert!(!g.streams.lock().unwrap().identities.contains_key("x"), "nothing kept once a stream ends");
    }
}
