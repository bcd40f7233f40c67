//! Clients that retry, change their minds and read the API's description (issue 16): a retried
//! `POST /api/jobs` with the same `Idempotency-Key` creates one job and replays the first
//! answer; a queued job can be cancelled and no worker renders it; every `/api` operation
//! answers as `GET /api/openapi.json` describes it.

use std::time::Duration;

use darkroom_e2e::{on_both_backends, Kind, TestApp};
use serde_json::Value;

use crate::{drained, submit, RECIPE};

async fn post_cancel(app: &TestApp, client: &reqwest::Client, id: &str) -> (u16, Value) {
    let resp = client.post(app.url(&format!("/api/jobs/{id}/cancel"))).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn a_queued_job_cancelled_is_never_rendered(kind: Kind) {
    // No processor yet: the job waits in the queue.
    let mut app = TestApp::spawn(kind, 0).await;
    let client = TestApp::new_client();
    let id = submit(&app, &client, "S01_rocket_640x427.jpg").await;
    // A browser following the job sees it end as `cancelled`.
    let events = tokio::spawn({
        let client = client.clone();
        let base = app.base_url.clone();
        let id = id.clone();
        async move { darkroom_e2e::follow_at(&client, &base, &id).await }
    });
    let (status, body) = post_cancel(&app, &TestApp::new_client(), &id).await;
    assert_eq!(status, 404, "another browser cannot cancel it (nor learn that it exists): {body}");
    assert_eq!(app.job(&client, &id).await["state"], "queued");

    let (status, body) = post_cancel(&app, &client, &id).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("cancelled")), "{body}");
    assert_eq!(app.job(&client, &id).await["state"], "cancelled");
    let (status, body) = post_cancel(&app, &client, &id).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("cancelled")), "cancelling twice is fine: {body}");
    let seen = tokio::time::timeout(Duration::from_secs(30), events).await.expect("the event stream ends").unwrap();
    assert_eq!(seen.last().unwrap()["state"], "cancelled", "{seen:?}");

    // Now a worker: it receives the job, finds it cancelled and deletes the message unrendered.
    app.start_processor();
    let backend = app.backend().await;
    drained(&*backend.jobs, "the cancelled job's message").await;
    let job = app.job(&client, &id).await;
    assert_eq!(job["state"], "cancelled", "{job}");
    assert_eq!(job["outputs"], serde_json::json!([]), "{job}");
    assert_eq!(backend.store.list(&format!("outputs/{id}/")).await.unwrap(), Vec::<String>::new(), "no outputs stored");
    let log = app.processors[0].log_text();
    assert!(log.contains("cancelled by its owner"), "the worker saw the job and skipped it:\n{log}");

    // A job that is done can no longer be cancelled.
    let done = submit(&app, &client, "S02_chelsea_451x300.png").await;
    assert_eq!(app.follow(&client, &done).await.last().unwrap()["state"], "done");
    let (status, body) = post_cancel(&app, &client, &done).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("not_cancellable")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("done"), "{body}");
    assert_eq!(app.job(&client, &done).await["state"], "done");
}

/// POST /api/jobs with `key` as its Idempotency-Key.
async fn upload_with_key(
    app: &TestApp,
    client: &reqwest::Client,
    key: &str,
    file: &str,
    recipe: &str,
) -> reqwest::Response {
    let bytes = std::fs::read(darkroom_e2e::corpus(file)).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("recipe", recipe.to_string())
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(file.to_string()));
    client.post(app.url("/api/jobs")).header("Idempotency-Key", key).multipart(form).send().await.unwrap()
}

fn job_ids(body: &Value) -> Vec<String> {
    body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect()
}

async fn jobs_of(app: &TestApp, client: &reqwest::Client) -> Vec<String> {
    let body: Value = client.get(app.url("/api/jobs")).send().await.unwrap().json().await.unwrap();
    job_ids(&body)
}

async fn a_retried_post_with_the_same_key_creates_one_job(kind: Kind) {
    let app = TestApp::spawn(kind, 0).await;
    let client = TestApp::new_client();
    let key = "retry-8d0c6c1e-3c39-4a5f-9a43-0f0e1d2c3b4a";
    let first = upload_with_key(&app, &client, key, "S01_rocket_640x427.jpg", RECIPE).await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none(), "the first answer is no replay");
    let first: Value = first.json().await.unwrap();
    let ids = job_ids(&first);
    assert_eq!(ids.len(), 1, "{first}");

    // The client did not get the answer and sends the same request again, twice.
    for _ in 0..2 {
        let again = upload_with_key(&app, &client, key, "S01_rocket_640x427.jpg", RECIPE).await;
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
        let again: Value = again.json().await.unwrap();
        assert_eq!(again, first, "the first answer, as it was");
    }
    assert_eq!(jobs_of(&app, &client).await, ids, "one job for three requests");
    let backend = app.backend().await;
    let c = backend.jobs.counts().await.unwrap();
    assert_eq!(c.visible + c.in_flight, 1, "one job message: {c:?}");

    // Another browser with the same key gets a job of its own.
    let other = TestApp::new_client();
    let theirs = upload_with_key(&app, &other, key, "S01_rocket_640x427.jpg", RECIPE).await;
    assert_eq!(theirs.status(), 202);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
    let theirs = job_ids(&theirs.json().await.unwrap());
    assert_eq!(theirs.len(), 1);
    assert_ne!(theirs, ids);
    assert_eq!(jobs_of(&app, &other).await, theirs);

    // The same key with another request: refused, nothing created.
    let recipe = r#"{"outputs":[{"name":"web","ops":[{"op":"resize","width":100}],"format":"png"}]}"#;
    for (file, recipe) in [("S02_chelsea_451x300.png", RECIPE), ("S01_rocket_640x427.jpg", recipe)] {
        let resp = upload_with_key(&app, &client, key, file, recipe).await;
        assert_eq!(resp.status(), 422);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    }
    assert_eq!(jobs_of(&app, &client).await, ids, "nothing created by the refused requests");

    // Keys that are not 1–255 visible ASCII characters.
    for bad in [String::new(), "x".repeat(256), "has space".into(), "tab\there".into()] {
        let resp = upload_with_key(&app, &client, &bad, "S01_rocket_640x427.jpg", RECIPE).await;
        assert_eq!(resp.status(), 400, "{bad:?}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_idempotency_key", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Idempotency-Key"), "{body}");
    }
    let resp = client
        .post(app.url("/api/jobs"))
        .header("Idempotency-Key", reqwest::header::HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap())
        .multipart(reqwest::multipart::Form::new().text("recipe", RECIPE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "a key that is not ASCII");
    assert_eq!(jobs_of(&app, &client).await, ids, "nothing created by bad keys");
}

on_both_backends!(a_queued_job_cancelled_is_never_rendered, a_retried_post_with_the_same_key_creates_one_job);
