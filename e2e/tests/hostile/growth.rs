//! Unbounded growth (issue 12): nothing a client or a queue sender does makes the web app keep
//! more and more. Upload bursts past the rate get `429` with `Retry-After` and pass once that
//! wait is over; dropping cookies does not escape the per-address limit and a cookieless visit
//! writes nothing; the job and logo quotas hold; event streams are capped per identity and in
//! total, and a stream carries only its owner's jobs; 10 000 invented worker names leave the
//! ops page's registry bounded. (The job cache's bound is a web unit test: jobs::tests.)

use std::time::Duration;

use chrono::Utc;
use darkroom_e2e::{on_both_backends, Kind, TestApp};
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::message::StatusMessage;
use serde_json::Value;

/// An 8×8 PNG (small enough that a refused request's unread body never matters).
fn tiny_png(shade: u8) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(8, 8, image::Rgba([shade, 0, 0, 255]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

const THUMB: &str = r#"{"preset":"thumbnail"}"#;

/// POST /api/jobs with `files` tiny PNGs.
async fn upload(app: &TestApp, client: &reqwest::Client, files: usize) -> reqwest::Response {
    let mut form = reqwest::multipart::Form::new().text("recipe", THUMB);
    for n in 0..files {
        form = form.part("file", reqwest::multipart::Part::bytes(tiny_png(n as u8)).file_name(format!("p{n}.png")));
    }
    client.post(app.url("/api/jobs")).multipart(form).send().await.expect("POST /api/jobs")
}

async fn post_logo(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part("logo", reqwest::multipart::Part::bytes(tiny_png(7)).file_name("logo.png"));
    client.post(app.url("/api/logos")).multipart(form).send().await.expect("POST /api/logos")
}

/// A client that has its identity cookie already (as a browser that opened the page).
async fn browser(app: &TestApp) -> reqwest::Client {
    let client = TestApp::new_client();
    assert_eq!(client.get(app.url("/")).send().await.unwrap().status(), 200);
    client
}

/// The `Retry-After` seconds and the JSON error of a refusal with `status`.
async fn refused(resp: reqwest::Response, status: u16, code: &str) -> (u64, Value) {
    assert_eq!(resp.status(), status, "expected a {status} {code}");
    let retry = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().len() > 30, "{body}");
    (retry.unwrap_or(0), body)
}

async fn a_burst_of_uploads_past_the_rate_waits_for_retry_after(kind: Kind) {
    let app = TestApp::spawn_with_env(kind, true, 0, &[("DARKROOM_UPLOAD_RATE", "3/6s")]).await;
    let client = browser(&app).await;
    for n in 0..3 {
        assert_eq!(upload(&app, &client, 1).await.status(), 202, "upload {n} of the burst");
    }
    let (retry, body) = refused(upload(&app, &client, 1).await, 429, "rate_limited").await;
    assert!((1..=2).contains(&retry), "one token every 2 s: Retry-After {retry}");
    assert_eq!(body["error"]["retry_after"], retry, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("try again in"), "{body}");
    // The form post (no JavaScript) counts too, and answers a page with the same header.
    let form = reqwest::multipart::Form::new()
        .text("preset", "thumbnail")
        .part("file", reqwest::multipart::Part::bytes(tiny_png(1)).file_name("a.png"));
    let resp = client.post(app.url("/upload")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    // Another browser is not held back by this one's bucket.
    assert_eq!(upload(&app, &browser(&app).await, 1).await.status(), 202);

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let resp = upload(&app, &client, 1).await;
    assert_eq!(resp.status(), 202, "after Retry-After the upload passes: {}", resp.text().await.unwrap());
    let jobs: Value = client.get(app.url("/api/jobs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 4, "three in the burst and one after the wait");
}

async fn dropping_cookies_does_not_escape_the_address_limit(kind: Kind) {
    let env = [("DARKROOM_UPLOAD_RATE_PER_IP", "4/min"), ("DARKROOM_UPLOAD_RATE", "off")];
    let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let backend = app.backend().await;
    let objects_before = backend.store.list("").await.unwrap();
    // Cookieless visits mint an identity each, and keep nothing.
    let cookieless = reqwest::Client::new();
    let mut ids = std::collections::HashSet::new();
    for path in ["/", "/api/jobs", "/jobs/no-such-job", "/ops"].iter().cycle().take(40) {
        let resp = cookieless.get(app.url(path)).send().await.unwrap();
        let cookie = resp.headers().get("set-cookie").expect("a fresh identity").to_str().unwrap().to_string();
        ids.insert(cookie);
    }
    assert_eq!(ids.len(), 40, "every cookieless request got a new identity");
    assert_eq!(backend.store.list("").await.unwrap(), objects_before, "minting identities wrote nothing");

    for n in 0..4 {
        assert_eq!(upload(&app, &cookieless, 1).await.status(), 202, "cookieless upload {n}");
    }
    let (retry, body) = refused(upload(&app, &cookieless, 1).await, 429, "rate_limited").await;
    assert!((1..=15).contains(&retry), "Retry-After {retry}");
    assert!(body["error"]["message"].as_str().unwrap().contains("network address"), "{body}");
    // A browser with a cookie behind the same address shares the address's bucket.
    let (_, body) = refused(upload(&app, &browser(&app).await, 1).await, 429, "rate_limited").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("network address"), "{body}");
    // Forging X-Forwarded-For changes nothing: the web app does not trust it by default.
    let resp = cookieless
        .post(app.url("/api/jobs"))
        .header("x-forwarded-for", "203.0.113.77")
        .multipart(reqwest::multipart::Form::new().text("recipe", THUMB))
        .send()
        .await
        .unwrap();
    refused(resp, 429, "rate_limited").await;
}

async fn the_logo_and_job_quotas_hold(kind: Kind) {
    let env = [("DARKROOM_MAX_LOGOS_PER_IDENTITY", "2"), ("DARKROOM_MAX_JOBS_PER_IDENTITY", "2")];
    let app = TestApp::spawn_with_env(kind, true, 1, &env).await;
    let client = browser(&app).await;
    for _ in 0..2 {
        assert_eq!(post_logo(&app, &client).await.status(), 201);
    }
    refused(post_logo(&app, &client).await, 403, "logo_quota_exceeded").await;
    assert_eq!(post_logo(&app, &browser(&app).await).await.status(), 201, "another browser has its own quota");

    let resp = upload(&app, &client, 2).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    let first = body["jobs"][0]["id"].as_str().unwrap().to_string();
    refused(upload(&app, &client, 1).await, 403, "job_quota_exceeded").await;
    // Deleting a finished job makes room.
    let events = app.follow(&client, &first).await;
    assert_eq!(events.last().unwrap()["state"], "done");
    let resp = client.delete(app.url(&format!("/api/jobs/{first}"))).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(upload(&app, &client, 1).await.status(), 202, "room again after a delete");
}

/// Read `resp`'s event stream until `want` appears (true) or `limit` passes (false).
async fn stream_shows(resp: &mut reqwest::Response, want: &str, limit: Duration) -> bool {
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, resp.chunk()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if seen.contains(want) {
            return true;
        }
    }
    false
}

async fn event_streams_are_capped_per_identity_and_in_total(kind: Kind) {
    let env = [("DARKROOM_MAX_SSE_PER_IDENTITY", "2"), ("DARKROOM_MAX_SSE", "3")];
    let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let (alice, bob, carol) = (browser(&app).await, browser(&app).await, browser(&app).await);
    let open = |client: &reqwest::Client, path: &str| client.get(app.url(path)).send();
    let resp = upload(&app, &alice, 1).await;
    let body: Value = resp.json().await.unwrap();
    let job = body["jobs"][0]["id"].as_str().unwrap().to_string();

    let mut a1 = open(&alice, "/api/events").await.unwrap();
    let a2 = open(&alice, &format!("/api/jobs/{job}/events")).await.unwrap();
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    for path in ["/api/events".to_string(), format!("/api/jobs/{job}/events")] {
        let (retry, body) = refused(open(&alice, &path).await.unwrap(), 429, "too_many_streams").await;
        assert!(retry >= 1, "{path}: Retry-After");
        assert!(body["error"]["message"].as_str().unwrap().contains("this browser"), "{body}");
    }
    let mut b1 = open(&bob, "/api/events").await.unwrap();
    assert_eq!(b1.status(), 200);
    let (_, body) = refused(open(&carol, "/api/events").await.unwrap(), 429, "too_many_streams").await;
    assert!(body["error"]["message"].as_str().unwrap().contains("this server"), "the total cap: {body}");

    // A stream carries its owner's jobs only: alice's new job reaches her stream, not bob's.
    let resp = upload(&app, &alice, 1).await;
    let body: Value = resp.json().await.unwrap();
    let second = body["jobs"][0]["id"].as_str().unwrap().to_string();
    assert!(stream_shows(&mut a1, &second, Duration::from_secs(10)).await, "alice's stream shows her job");
    assert!(
        !stream_shows(&mut b1, "event: status", Duration::from_secs(1)).await,
        "bob's stream shows nothing of hers"
    );

    // A closed stream gives its place back.
    drop(a2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resp = open(&carol, "/api/events").await.unwrap();
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 429);
        assert!(tokio::time::Instant::now() < deadline, "the closed stream's place never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Each forged status the web app applies is a record write: the embedded backend takes the
/// full 10 000 names (about a minute), moto (a few dozen writes a second) 400 names past a cap of 20.
async fn invented_worker_names_leave_the_ops_registry_bounded(kind: Kind) {
    const TOKEN: &str = "growth-test-admin-token-0123456789";
    let (jobs, per_job, cap) = match kind {
        Kind::Embedded => (100usize, 100u32, 256usize),
        Kind::Moto => (20, 20, 20),
    };
    let cap_s = cap.to_string();
    let env = [
        ("DARKROOM_ADMIN_TOKEN", TOKEN),
        ("DARKROOM_UPLOAD_RATE", "off"),
        ("DARKROOM_UPLOAD_RATE_PER_IP", "off"),
        ("DARKROOM_OPS_MAX_WORKERS", cap_s.as_str()),
    ];
    let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let client = browser(&app).await;
    // Jobs without a processor: they stay queued and take the forged statuses.
    let mut ids = Vec::new();
    while ids.len() < jobs {
        let body: Value = upload(&app, &client, (jobs - ids.len()).min(10)).await.json().await.unwrap();
        ids.extend(body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()));
    }
    // `per_job` invented workers per job, each taking the job over in a new attempt.
    let backend = app.backend().await;
    let started = std::time::Instant::now();
    let mut batch = Vec::new();
    for n in 0..per_job {
        for id in &ids {
            let forged = StatusMessage {
                job_id: id.clone(),
                state: JobState::Processing,
                attempt: n + 1,
                worker: format!("invented-{id}-{n}"),
                at: Utc::now(),
                outputs: vec![],
                preview: None,
                error: None,
                note: None,
                traceparent: None,
            };
            batch.push(forged.to_json());
            if batch.len() == 10 {
                let bodies: Vec<&str> = batch.iter().map(String::as_str).collect();
                backend.replies.send_batch(&bodies).await.unwrap();
                batch.clear();
            }
        }
    }
    let names = jobs * per_job as usize;
    // The web app applies each (a record write apiece): allow minutes, print what it took.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let c = backend.replies.counts().await.unwrap();
        if c.visible == 0 && c.in_flight == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "forged statuses not consumed within 10 min: {c:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("{names} forged worker names sent and applied in {:?}", started.elapsed());

    let ops = TestApp::new_client();
    let resp = ops
        .post(app.url("/ops/login"))
        .header("origin", app.base_url.clone())
        .form(&[("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "signed in and sent on to /ops");
    let page = resp.text().await.unwrap();
    let workers = page.matches("data-worker=\"invented-").count();
    eprintln!("the ops page lists {workers} of {names} invented workers (cap {cap})");
    assert_eq!(workers, cap, "the registry holds its cap, not every name");
    assert!(page.contains(&format!("-{}\"", per_job - 1)), "the newest names are kept");
    assert!(!page.contains(&format!("invented-{}-0\"", ids[0])), "the oldest went first");
    let last = app.job(&client, &ids[0]).await;
    assert_eq!(last["worker"], format!("invented-{}-{}", ids[0], per_job - 1), "the statuses were applied");
}

on_both_backends!(
    a_burst_of_uploads_past_the_rate_waits_for_retry_after,
    dropping_cookies_does_not_escape_the_address_limit,
    the_logo_and_job_quotas_hold,
    event_streams_are_capped_per_identity_and_in_total,
    invented_worker_names_leave_the_ops_registry_bounded,
);
