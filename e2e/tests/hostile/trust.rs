//! Trust between processes and toward anonymous clients: forged statuses and job messages
//! straight onto the shared queues, security headers on every response, outages reported
//! without internal details.

use std::time::Duration;

use chrono::Utc;
use darkroom_e2e::{on_both_backends, Kind, TestApp};
use darkroom_protocol::keys;
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::message::{OutputInfo, StatusMessage};
use darkroom_protocol::Format;

use crate::{drained, submit};
use serde_json::Value;

async fn a_forged_done_cannot_point_a_job_at_another_key(kind: Kind) {
    // No processor: the job stays queued, and only the forged statuses reach it.
    let app = TestApp::spawn(kind, 0).await;
    let client = TestApp::new_client();
    let id = submit(&app, &client, "S01_rocket_640x427.jpg").await;
    let backend = app.backend().await;
    for key in [keys::COOKIE_KEY.to_string(), "outputs/another-job/web.png".into(), format!("outputs/{id}/../x.png")] {
        let forged = StatusMessage {
            job_id: id.clone(),
            state: JobState::Done,
            attempt: 1,
            worker: "forger".into(),
            at: Utc::now(),
            outputs: vec![OutputInfo { name: "web".into(), key, format: Format::Png, width: 1, height: 1, bytes: 64 }],
            preview: None,
            error: None,
            note: None,
            traceparent: None,
        };
        backend.replies.send(&forged.to_json()).await.unwrap();
    }
    drained(&*backend.replies, "the forged statuses").await;
    let job = app.job(&client, &id).await;
    assert_eq!(job["state"], "queued", "a forged done is ignored: {job}");
    assert_eq!(job["outputs"], serde_json::json!([]), "{job}");
    let resp = client.get(app.url(&format!("/api/jobs/{id}/outputs/web"))).send().await.unwrap();
    assert_eq!(resp.status(), 404, "no output to download");
    let body = resp.bytes().await.unwrap();
    // On the aws backend the key is DARKROOM_COOKIE_SECRET, not an object (hostile/browser.rs).
    if let Ok(secret) = backend.store.get(keys::COOKIE_KEY).await {
        assert!(!body.windows(secret.len().min(16)).any(|w| secret.starts_with(w)), "the cookie key is never served");
    }
}

async fn a_forged_job_cannot_render_another_jobs_original(kind: Kind) {
    let env = [("DARKROOM_VISIBILITY_TIMEOUT", "2"), ("DARKROOM_MAX_RECEIVES", "2")];
    let app = TestApp::spawn_with_env(kind, true, 1, &env).await;
    let client = TestApp::new_client();
    let a = submit(&app, &client, "S01_rocket_640x427.jpg").await;
    let b = submit(&app, &client, "S02_chelsea_451x300.png").await;
    for id in [&a, &b] {
        let events = app.follow(&client, id).await;
        assert_eq!(events.last().unwrap()["state"], "done", "{events:?}");
    }
    let output = |id: String| {
        let client = client.clone();
        let url = app.url(&format!("/api/jobs/{id}/outputs/web"));
        async move { client.get(url).send().await.unwrap().bytes().await.unwrap() }
    };
    let before = output(a.clone()).await;
    let record_before = app.job(&client, &a).await;

    // Job a's id with job b's original: it would overwrite a's output with b's photo.
    let forged = format!(
        r#"{{"version":1,"type":"job","job_id":"{a}","original_key":"originals/{b}","outputs":[{{"name":"web","format":"png"}}]}}"#
    );
    // (connect with the app's own settings: connecting also sets the queues' attributes)
    let backend = app.site.connect(2, 2).await;
    backend.jobs.send(&forged).await.unwrap();
    // The processor refuses it every time; after two deliveries the queue dead-letters it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let c = backend.dead_letters.counts().await.unwrap();
        if c.visible + c.in_flight >= 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the forged job never reached the dead-letter queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(output(a.clone()).await, before, "job a's output is untouched");
    let record = app.job(&client, &a).await;
    assert_eq!(record["state"], "done");
    assert_eq!(record["timeline"], record_before["timeline"], "nothing reached job a's record");
    let log = app.processors[0].log_text();
    assert!(log.contains("original_key must be originals/"), "the processor says why it refused the message");
}

async fn every_response_carries_the_security_headers(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let client = TestApp::new_client();
    let id = submit(&app, &client, "S01_rocket_640x427.jpg").await;
    let events = app.follow(&client, &id).await;
    assert_eq!(events.last().unwrap()["state"], "done");
    for path in [
        "/".to_string(),
        format!("/jobs/{id}"),
        "/api/jobs".into(),
        format!("/api/jobs/{id}"),
        format!("/api/jobs/{id}/outputs/web"),
        format!("/api/jobs/{id}/original"),
        "/static/app.js".into(),
        "/api/jobs/no-such-job".into(),
        "/no-such-page".into(),
    ] {
        let resp = client.get(app.url(&path)).send().await.unwrap();
        let h = resp.headers();
        let csp = h.get("content-security-policy").unwrap_or_else(|| panic!("{path}: no CSP")).to_str().unwrap();
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("object-src 'none'"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
    }
}

async fn an_outage_is_reported_without_internal_details(kind: Kind) {
    let mut app = TestApp::new(kind, &[]);
    let proxy = darkroom_e2e::chaos::proxy_for(&mut app).await;
    app.start_web();
    let client = TestApp::new_client();
    let secrets: Vec<String> = vec![
        app.site.names.bucket.clone(),
        app.site.names.jobs.clone(),
        app.site.data_dir.to_string_lossy().into_owned(),
        proxy
            .as_ref()
            .map(|p| p.endpoint.trim_start_matches("http://").to_string())
            .unwrap_or_else(|| "127.0.0.1:".into()),
        "sqlite".into(),
        "dispatch".into(),
    ];
    let check = |what: &str, body: &str| {
        for s in &secrets {
            assert!(!body.to_lowercase().contains(&s.to_lowercase()), "{what} tells an anonymous client {s:?}: {body}");
        }
    };
    // The outage: the server cut off (moto), or the queue database locked (embedded).
    let _lock = darkroom_e2e::chaos::begin_outage(proxy.as_ref(), &app.site.data_dir);
    let resp = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    assert!(body.contains("unreachable"), "{body}");
    check("/healthz", &body);
    if proxy.is_some() {
        // Storage too (the embedded store is a folder, which a locked queue database leaves up).
        let resp = client.get(app.url("/api/jobs")).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
        check("/api/jobs", &body.to_string());
    }
    // The web app's log has the detail.
    assert!(app.web.as_ref().unwrap().log_text().contains("health check: the job queue is unreachable"));
}

on_both_backends!(
    an_outage_is_reported_without_internal_details,
    a_forged_done_cannot_point_a_job_at_another_key,
    a_forged_job_cannot_render_another_jobs_original,
    every_response_carries_the_security_headers,
);
