//! The ops page (`/ops`): queue depths, workers seen recently, throughput, retries, recent
//! failures, and a button that sends dead-lettered jobs back to the job queue.
//!
//! Behind `DARKROOM_ADMIN_TOKEN`: `/ops?token=…` once (or the login form) starts an operator
//! session: a random id in an HttpOnly, SameSite=Strict cookie scoped to /ops, kept in memory
//! (a restart of the web app asks for the token again). SameSite=Strict also keeps other
//! sites from posting the redrive form. Without a configured token the page says how to turn
//! it on.
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

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use darkroom_core::message::JobMessage;
use darkroom_core::queue::{JobQueue, QueueCounts};

use crate::jobs::manage::ManageError;
use crate::workers::{Registry, Snapshot, MINUTES};
use crate::AppState;

const COOKIE: &str = "darkroom_ops";
const MAX_SESSIONS: usize = 64;

pub struct OpsState {
    token: Option<String>,
    secure: bool,
    sessions: Mutex<VecDeque<String>>,
    pub registry: Arc<Registry>,
}

impl OpsState {
    pub fn new(token: Option<String>, secure: bool, registry: Arc<Registry>) -> Self {
        let token = token.filter(|t| !t.trim().is_empty());
        OpsState { token, secure, sessions: Mutex::new(VecDeque::new()), registry }
    }

    fn token_ok(&self, given: &str) -> bool {
        let Some(token) = &self.token else { return false };
        let (a, b) = (token.as_bytes(), given.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn authed(&self, req: &HttpRequest) -> bool {
        let Some(c) = req.cookie(COOKIE) else { return false };
        self.sessions.lock().unwrap().iter().any(|s| s == c.value())
    }

    fn start_session(&self) -> Cookie<'static> {
        use rand::Rng;
        let id: String = {
            let mut rng = rand::rng();
            (0..32).map(|_| format!("{:02x}", rng.random::<u8>())).collect()
        };
        let mut s = self.sessions.lock().unwrap();
        s.push_back(id.clone());
        while s.len() > MAX_SESSIONS {
            s.pop_front();
        }
        Cookie::build(COOKIE, id).path("/ops").http_only(true).same_site(SameSite::Strict).secure(self.secure).finish()
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
struct OpsPage {
    enabled: bool,
    authed: bool,
    login_failed: bool,
    flash: Option<String>,
    queues: Vec<QueueRow>,
    snap: Snapshot,
    chart: String,
    minutes: usize,
    now: chrono::DateTime<chrono::Utc>,
}

impl OpsPage {
    fn empty(enabled: bool) -> Self {
        OpsPage {
            enabled,
            authed: false,
            login_failed: false,
            flash: None,
            queues: vec![],
            snap: Snapshot { workers: vec![], events: vec![], retries: vec![], failures: vec![], per_minute: vec![] },
            chart: String::new(),
            minutes: MINUTES,
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

    fn short<'a>(&self, id: &'a str) -> &'a str {
        &id[id.len().saturating_sub(8)..]
    }
}

fn html(status: actix_web::http::StatusCode, page: &OpsPage) -> HttpResponse {
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

async fn queue_row(label: &'static str, q: &Arc<dyn JobQueue>) -> QueueRow {
    QueueRow { label, name: q.name().to_string(), counts: q.counts().await.map_err(|e| e.to_string()) }
}

async fn page(
    state: web::Data<AppState>,
    ops: web::Data<OpsState>,
    req: HttpRequest,
    q: web::Query<PageQuery>,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    if ops.token.is_none() {
        return html(StatusCode::NOT_FOUND, &OpsPage::empty(false));
    }
    if let Some(t) = &q.token {
        if ops.token_ok(t) {
            let mut res = see_other("/ops");
            let _ = res.add_cookie(&ops.start_session());
            return res;
        }
        let mut p = OpsPage::empty(true);
        p.login_failed = true;
        return html(StatusCode::FORBIDDEN, &p);
    }
    if !ops.authed(&req) {
        return html(StatusCode::FORBIDDEN, &OpsPage::empty(true));
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
    let page = OpsPage {
        enabled: true,
        authed: true,
        login_failed: false,
        flash,
        queues,
        chart: chart(&snap.per_minute),
        snap,
        minutes: MINUTES,
        now: chrono::Utc::now(),
    };
    html(StatusCode::OK, &page)
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(ops: web::Data<OpsState>, form: web::Form<LoginForm>) -> HttpResponse {
    if ops.token_ok(form.token.trim()) {
        let mut res = see_other("/ops");
        let _ = res.add_cookie(&ops.start_session());
        res
    } else {
        let mut p = OpsPage::empty(ops.token.is_some());
        p.login_failed = true;
        html(actix_web::http::StatusCode::FORBIDDEN, &p)
    }
}

async fn logout(ops: web::Data<OpsState>, req: HttpRequest) -> HttpResponse {
    if let Some(c) = req.cookie(COOKIE) {
        ops.sessions.lock().unwrap().retain(|s| s != c.value());
    }
    let mut res = see_other("/ops");
    let mut gone = Cookie::build(COOKIE, "").path("/ops").finish();
    gone.make_removal();
    let _ = res.add_cookie(&gone);
    res
}

const REDRIVE_NOTE: &str = "sent back to the job queue from the dead-letter queue by an operator";

async fn redrive(state: web::Data<AppState>, ops: web::Data<OpsState>, req: HttpRequest) -> HttpResponse {
    if !ops.authed(&req) {
        return see_other("/ops");
    }
    match redrive_all(&state).await {
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
async fn redrive_all(state: &AppState) -> anyhow::Result<(usize, usize)> {
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
                        match state.book.requeue(&job.job_id, &*b.jobs, REDRIVE_NOTE).await {
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
        let gave_up = rec.state.as_str() == "failed" && rec.error.as_ref().is_some_and(|e| e.code == "gave_up");
        if gave_up && !done.contains(&rec.id) && state.book.requeue(&rec.id, &*b.jobs, REDRIVE_NOTE).await?.is_some() {
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

    #[test]
    fn token_check() {
        let ops = OpsState::new(Some("s3cret-token".into()), false, Registry::new());
        assert!(ops.token_ok("s3cret-token"));
        assert!(!ops.token_ok("s3cret-tokeN"));
        assert!(!ops.token_ok(""));
        let off = OpsState::new(Some("  ".into()), false, Registry::new());
        assert!(!off.token_ok("  "), "a blank token leaves the page off");
    }
}
