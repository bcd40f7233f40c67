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

/// JSON Schema's `type` (one or a list): why `v` is none of them, if it is not.
fn type_error(rule: &Value, v: &Value) -> Option<String> {
    let types: Vec<&str> = match rule {
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        t => vec![t.as_str().unwrap()],
    };
    let ok = types.iter().any(|t| match *t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    });
    (!ok).then(|| format!("{v} is not {types:?}"))
}

/// `minItems`/`maxItems` on arrays, `minLength`/`maxLength` (in characters) on strings.
fn size_error(keyword: &str, rule: &Value, v: &Value) -> Option<String> {
    let (n, unit) = match keyword {
        "minItems" | "maxItems" => (v.as_array().map(Vec::len)?, "items"),
        _ => (v.as_str().map(|s| s.chars().count())?, "characters"),
    };
    let limit = rule.as_u64().unwrap() as usize;
    let under = keyword.starts_with("min") && n < limit;
    let over = keyword.starts_with("max") && n > limit;
    (under || over).then(|| format!("{n} {unit}, {keyword} {limit}"))
}

/// The OpenAPI document, and what the test saw of each documented operation.
struct Spec {
    doc: Value,
    /// (path template, method) → statuses answered.
    seen: std::sync::Mutex<std::collections::BTreeMap<(String, String), Vec<u16>>>,
}

impl Spec {
    /// A `$ref` inside the document, resolved.
    fn resolve<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling $ref {r} in the document")),
            None => v,
        }
    }

    fn validate(&self, what: &str, schema: &Value, instance: &Value) {
        let mut errors = vec![];
        self.errors(schema, instance, "", &mut errors);
        assert!(errors.is_empty(), "{what}: the real body does not match the document: {errors:?}\nbody: {instance}");
    }

    /// JSON Schema (2020-12), the keywords web/openapi.json uses: `$ref`, `type` (one or a
    /// list), `const`, `enum`, `required`, `properties`, `items`, `oneOf`, `minItems`,
    /// `maxItems`, `minimum`, `minLength`, `maxLength`. A keyword it does not know fails the
    /// test, so the document cannot grow a rule that is not checked. (A validator crate would
    /// do; this keeps the AWS SDK from being rebuilt for its feature changes.)
    fn errors(&self, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        let Some(schema) = schema.as_object() else { return };
        for (k, rule) in schema {
            let fail = |out: &mut Vec<String>, why: String| out.push(format!("{at}: {why}"));
            match k.as_str() {
                "$ref" => self.errors(self.resolve(&serde_json::json!({ "$ref": rule })), v, at, out),
                "type" => {
                    if let Some(why) = type_error(rule, v) {
                        fail(out, why);
                    }
                }
                "const" if v != rule => fail(out, format!("{v} is not {rule}")),
                "enum" if !rule.as_array().unwrap().contains(v) => fail(out, format!("{v} is not one of {rule}")),
                "required" => {
                    for name in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if v.is_object() && v.get(name).is_none() {
                            fail(out, format!("`{name}` is missing"));
                        }
                    }
                }
                "properties" => {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(x) = v.get(name) {
                            self.errors(sub, x, &format!("{at}/{name}"), out);
                        }
                    }
                }
                "items" => {
                    for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                        self.errors(rule, x, &format!("{at}/{i}"), out);
                    }
                }
                "oneOf" => {
                    let matching = rule.as_array().unwrap().iter().filter(|sub| self.matches(sub, v, at)).count();
                    if matching != 1 {
                        fail(out, format!("{v} matches {matching} of oneOf, not exactly one"));
                    }
                }
                "minItems" | "maxItems" | "minLength" | "maxLength" => {
                    if let Some(why) = size_error(k, rule, v) {
                        fail(out, why);
                    }
                }
                "minimum" => {
                    if v.as_f64().is_some_and(|x| x < rule.as_f64().unwrap()) {
                        fail(out, format!("{v} < {rule}"));
                    }
                }
                // Annotations and string formats: described, not asserted (as JSON Schema's
                // default); `pattern` is checked on keys and names by the tests themselves.
                "description" | "format" | "pattern" | "contentMediaType" | "deprecated" | "const" | "enum" => {}
                other => panic!("the test's validator does not know the keyword `{other}`; teach it"),
            }
        }
    }

    fn matches(&self, schema: &Value, v: &Value, at: &str) -> bool {
        let mut e = vec![];
        self.errors(schema, v, at, &mut e);
        e.is_empty()
    }

    /// Check one real answer against the document: its status is documented for the
    /// operation, it has `X-Request-Id`, its content type is the documented one, and a JSON
    /// body validates against the documented schema. Returns the status and the body.
    async fn check(
        &self,
        path: &str,
        method: &str,
        resp: reqwest::Response,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let status = resp.status().as_u16();
        let what = format!("{} {path} → {status}", method.to_uppercase());
        let op = &self.doc["paths"][path][method];
        assert!(op.is_object(), "{what}: the operation is not in the document");
        self.seen.lock().unwrap().entry((path.to_string(), method.to_string())).or_default().push(status);
        let documented =
            op["responses"].get(status.to_string()).unwrap_or_else(|| panic!("{what}: status not documented"));
        let documented = self.resolve(documented);
        let headers = resp.headers().clone();
        assert!(headers.contains_key("x-request-id"), "{what}: no X-Request-Id");
        let ct = headers.get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let content = documented.get("content").and_then(Value::as_object);
        let body = resp.bytes().await.unwrap_or_default();
        let Some(content) = content else {
            assert!(body.is_empty() || method == "get" && status == 307, "{what}: a body where the document says none");
            return (status, headers, Value::Null);
        };
        if let Some(json) = content.get("application/json") {
            assert!(ct.starts_with("application/json"), "{what}: content type {ct:?}, documented application/json");
            let value: Value =
                serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {body:?}"));
            self.validate(&what, &json["schema"], &value);
            return (status, headers, value);
        }
        let matches = content.keys().any(|k| match k.split_once("/*") {
            Some((major, _)) => ct.starts_with(&format!("{major}/")),
            None => ct.starts_with(k.as_str()),
        });
        assert!(
            matches || method == "head" && ct.is_empty(),
            "{what}: content type {ct:?}, documented {:?}",
            content.keys()
        );
        (status, headers, Value::Null)
    }

    /// An event stream: the documented content type, and each event's data against the
    /// documented `itemSchema`, until a final state (or, with `first_only`, the first chunk).
    async fn check_events(&self, path: &str, resp: reqwest::Response, first_only: bool) -> Vec<Value> {
        use futures_util::StreamExt as _;
        let status = resp.status().as_u16();
        assert_eq!(status, 200, "GET {path}");
        self.seen.lock().unwrap().entry((path.to_string(), "get".into())).or_default().push(status);
        let content = &self.doc["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"];
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        assert!(resp.headers().contains_key("x-request-id"));
        let mut seen = Vec::new();
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        let read = async {
            while let Some(chunk) = stream.next().await {
                buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
                if first_only {
                    return;
                }
                while let Some(end) = buf.find("\n\n") {
                    let event: String = buf.drain(..end + 2).collect();
                    if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                        let v: Value = serde_json::from_str(data).unwrap();
                        self.validate(&format!("an event of GET {path}"), &content["itemSchema"], &v);
                        let last = matches!(v["state"].as_str(), Some("done" | "failed" | "cancelled"));
                        seen.push(v);
                        if last {
                            return;
                        }
                    }
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), read).await.expect("the event stream answers");
        seen
    }
}

/// Every `/api` route the web app's source declares (`.route("/api/…", web::get()…)`), as
/// (path, method): what the document must cover.
fn served_api_routes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = darkroom_e2e::root().join("web/src");
    let mut files = vec![];
    for entry in walk(&dir) {
        files.push(std::fs::read_to_string(entry).unwrap());
    }
    for text in files {
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join("");
        for piece in flat.split("route(\"").skip(1) {
            let Some((path, rest)) = piece.split_once('"') else { continue };
            let Some(method) = rest.strip_prefix(",web::").and_then(|r| r.split_once("()")).map(|(m, _)| m) else {
                continue;
            };
            if path.starts_with("/api/") {
                out.push((path.to_string(), method.to_string()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// Drives the API for the OpenAPI test: a client (with its cookie) and the web app's base URL
/// (not the app, which starts a processor half-way).
struct Driver {
    c: reqwest::Client,
    base: String,
}

impl Driver {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    async fn get(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.c.get(self.url(path)).send().await
    }
    async fn post(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.c.post(self.url(path)).send().await
    }
    fn form(&self, file: &str, recipe: Option<&str>) -> reqwest::multipart::Form {
        let mut f = reqwest::multipart::Form::new();
        if let Some(r) = recipe {
            f = f.text("recipe", r.to_string());
        }
        let bytes = std::fs::read(darkroom_e2e::corpus(file)).unwrap();
        f.part("file", reqwest::multipart::Part::bytes(bytes).file_name(file.to_string()))
    }
    async fn upload(
        &self,
        file: &str,
        recipe: Option<&str>,
        key: Option<&str>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut r = self.c.post(self.url("/api/jobs")).multipart(self.form(file, recipe));
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send().await
    }
}

/// Every /api route the web app serves is documented.
fn every_served_route_is_documented(spec: &Spec) {
    let served = served_api_routes();
    assert!(served.len() >= 10, "the route scan found the routes: {served:?}");
    for (path, method) in &served {
        assert!(
            spec.doc["paths"][path][method].is_object(),
            "{} {path} is served but not in web/openapi.json",
            method.to_uppercase()
        );
    }
}

/// Uploads: accepted (and replayed), and each kind of refusal. Returns the accepted job's id.
async fn uploads_and_their_refusals(spec: &Spec, d: &Driver) -> String {
    let (status, _, body) = spec
        .check("/api/jobs", "post", d.upload("S01_rocket_640x427.jpg", Some(RECIPE), Some("doc-1")).await.unwrap())
        .await;
    assert_eq!(status, 202);
    let a = body["jobs"][0]["id"].as_str().unwrap().to_string();
    let (status, h, _) = spec
        .check("/api/jobs", "post", d.upload("S01_rocket_640x427.jpg", Some(RECIPE), Some("doc-1")).await.unwrap())
        .await;
    assert_eq!((status, h.get("idempotent-replayed").is_some()), (202, true));
    for (file, recipe, key, want) in [
        ("S02_chelsea_451x300.png", Some(RECIPE), Some("doc-1"), 422),
        ("S01_rocket_640x427.jpg", None, None, 400),
        ("S01_rocket_640x427.jpg", Some(r#"{"preset":"nope"}"#), None, 422),
        ("X02_text_named.jpg", Some(RECIPE), None, 415),
        ("S01_rocket_640x427.jpg", Some(RECIPE), Some("two words"), 400),
    ] {
        let (status, _, body) = spec.check("/api/jobs", "post", d.upload(file, recipe, key).await.unwrap()).await;
        assert_eq!(status, want, "{body}");
    }
    let foreign =
        d.c.post(d.url("/api/jobs"))
            .header("Origin", "https://evil.example")
            .multipart(d.form("S01_rocket_640x427.jpg", Some(RECIPE)));
    assert_eq!(spec.check("/api/jobs", "post", foreign.send().await.unwrap()).await.0, 403);

    a
}

/// Reading jobs: lists, pages, one job, and what a job that is not done refuses.
async fn reads_of_a_queued_job(spec: &Spec, d: &Driver, a: &str) {
    spec.check("/api/jobs", "get", d.get("/api/jobs").await.unwrap()).await;
    spec.check("/api/jobs", "get", d.get("/api/jobs?limit=1").await.unwrap()).await;
    assert_eq!(spec.check("/api/jobs", "get", d.get("/api/jobs?cursor=%21%21").await.unwrap()).await.0, 400);
    spec.check("/api/jobs/{id}", "get", d.get(&format!("/api/jobs/{a}")).await.unwrap()).await;
    assert_eq!(spec.check("/api/jobs/{id}", "get", d.get("/api/jobs/no-such-job").await.unwrap()).await.0, 404);
    assert_eq!(
        spec.check("/api/jobs/{id}", "delete", d.c.delete(d.url(&format!("/api/jobs/{a}"))).send().await.unwrap())
            .await
            .0,
        409
    );
    assert_eq!(
        spec.check("/api/jobs/{id}/retry", "post", d.post(&format!("/api/jobs/{a}/retry")).await.unwrap()).await.0,
        409
    );
    assert_eq!(
        spec.check("/api/jobs/{id}/outputs.zip", "get", d.get(&format!("/api/jobs/{a}/outputs.zip")).await.unwrap())
            .await
            .0,
        409
    );
    assert_eq!(
        spec.check("/api/jobs/{id}/outputs/{name}", "get", d.get(&format!("/api/jobs/{a}/outputs/web")).await.unwrap())
            .await
            .0,
        404
    );
}

/// A failed job (a worker's `failed`, straight onto the reply queue) is retried, then cancelled.
async fn a_failed_job_is_retried_then_cancelled(spec: &Spec, d: &Driver, app: &TestApp, a: &str) {
    let backend = app.backend().await;
    let failed = darkroom_protocol::message::StatusMessage {
        job_id: a.to_string(),
        state: darkroom_protocol::lifecycle::JobState::Failed,
        attempt: 1,
        worker: "w".into(),
        at: chrono::Utc::now(),
        outputs: vec![],
        error: Some(darkroom_protocol::lifecycle::JobError { code: "corrupt_image".into(), message: "damaged".into() }),
        note: None,
        traceparent: None,
        preview: None,
    };
    backend.replies.send(&failed.to_json()).await.unwrap();
    app.wait_for_job(&d.c, a, Duration::from_secs(30), "failed", |j| j["state"] == "failed").await;
    assert_eq!(
        spec.check("/api/jobs/{id}/retry", "post", d.post(&format!("/api/jobs/{a}/retry")).await.unwrap()).await.0,
        202
    );
    assert_eq!(
        spec.check("/api/jobs/{id}/cancel", "post", d.post(&format!("/api/jobs/{a}/cancel")).await.unwrap()).await.0,
        200
    );
    let events =
        spec.check_events("/api/jobs/{id}/events", d.get(&format!("/api/jobs/{a}/events")).await.unwrap(), false).await;
    assert_eq!(events.last().unwrap()["state"], "cancelled");
    spec.check_events("/api/events", d.get("/api/events").await.unwrap(), true).await;
}

/// A job that is done: its downloads, every way; then both jobs deleted.
async fn a_done_job_s_downloads(spec: &Spec, d: &Driver, app: &mut TestApp, a: &str) {
    app.start_processor();
    let (_, _, body) =
        spec.check("/api/jobs", "post", d.upload("S02_chelsea_451x300.png", Some(RECIPE), None).await.unwrap()).await;
    let b = body["jobs"][0]["id"].as_str().unwrap().to_string();
    let events =
        spec.check_events("/api/jobs/{id}/events", d.get(&format!("/api/jobs/{b}/events")).await.unwrap(), false).await;
    assert_eq!(events.last().unwrap()["state"], "done", "{events:?}");
    for (path, url) in [
        ("/api/jobs/{id}/original", format!("/api/jobs/{b}/original")),
        ("/api/jobs/{id}/outputs/{name}", format!("/api/jobs/{b}/outputs/web")),
    ] {
        let (status, h, _) = spec.check(path, "get", d.get(&url).await.unwrap()).await;
        assert_eq!(status, 200);
        let etag = h["etag"].to_str().unwrap().to_string();
        assert_eq!(spec.check(path, "head", d.c.head(d.url(&url)).send().await.unwrap()).await.0, 200);
        let ranged = d.c.get(d.url(&url)).header("Range", "bytes=0-9").send().await.unwrap();
        assert_eq!(spec.check(path, "get", ranged).await.0, 206);
        let cached = d.c.get(d.url(&url)).header("If-None-Match", etag).send().await.unwrap();
        assert_eq!(spec.check(path, "get", cached).await.0, 304);
        let past = d.c.get(d.url(&url)).header("Range", "bytes=999999999-").send().await.unwrap();
        assert_eq!(spec.check(path, "get", past).await.0, 416);
        let download = d.c.get(d.url(&format!("{url}?download=1"))).send().await.unwrap();
        assert_eq!(spec.check(path, "get", download).await.0, 200);
    }
    assert_eq!(
        spec.check("/api/jobs/{id}/outputs.zip", "get", d.get(&format!("/api/jobs/{b}/outputs.zip")).await.unwrap())
            .await
            .0,
        200
    );
    let preview = format!("/api/jobs/{b}/preview");
    assert_eq!(spec.check("/api/jobs/{id}/preview", "get", d.get(&preview).await.unwrap()).await.0, 200);
    assert_eq!(
        spec.check("/api/jobs/{id}/preview", "head", d.c.head(d.url(&preview)).send().await.unwrap()).await.0,
        200
    );
    assert_eq!(
        spec.check("/api/jobs/{id}/preview", "get", d.get("/api/jobs/no-such-job/preview").await.unwrap()).await.0,
        404
    );
    assert_eq!(
        spec.check("/api/jobs/{id}/cancel", "post", d.post(&format!("/api/jobs/{b}/cancel")).await.unwrap()).await.0,
        409
    );
    let other = TestApp::new_client();
    let theirs = other.post(d.url(&format!("/api/jobs/{b}/cancel"))).send().await.unwrap();
    assert_eq!(spec.check("/api/jobs/{id}/cancel", "post", theirs).await.0, 404);
    for id in [a, b.as_str()] {
        assert_eq!(
            spec.check("/api/jobs/{id}", "delete", d.c.delete(d.url(&format!("/api/jobs/{id}"))).send().await.unwrap())
                .await
                .0,
            204
        );
    }
}

/// Logos: a PNG is taken, anything else refused; listed and deleted.
async fn logos_taken_listed_and_deleted(spec: &Spec, d: &Driver) {
    let logo = |file: &str| {
        let bytes = std::fs::read(darkroom_e2e::corpus(file)).unwrap();
        let f = reqwest::multipart::Form::new()
            .part("logo", reqwest::multipart::Part::bytes(bytes).file_name(file.to_string()));
        d.c.post(d.url("/api/logos")).multipart(f).send()
    };
    assert_eq!(spec.check("/api/logos", "post", logo("S03_camera_512x512_gray.png").await.unwrap()).await.0, 201);
    assert_eq!(spec.check("/api/logos", "post", logo("S01_rocket_640x427.jpg").await.unwrap()).await.0, 415);
    let (status, _, listed) = spec.check("/api/logos", "get", d.get("/api/logos").await.unwrap()).await;
    assert_eq!(status, 200);
    let id = listed["logos"][0]["id"].as_str().expect("the logo is listed").to_string();
    let delete = |id: String| d.c.delete(d.url(&format!("/api/logos/{id}"))).send();
    assert_eq!(spec.check("/api/logos/{id}", "delete", delete(id.clone()).await.unwrap()).await.0, 204);
    assert_eq!(spec.check("/api/logos/{id}", "delete", delete(id).await.unwrap()).await.0, 404);
}

/// Every documented operation was driven and answered (not 404/405 every time).
fn every_documented_operation_was_driven(spec: &Spec) {
    let seen = spec.seen.lock().unwrap();
    for (path, item) in spec.doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys().filter(|m| *m != "parameters") {
            let statuses = seen
                .get(&(path.clone(), method.clone()))
                .unwrap_or_else(|| panic!("{} {path}: documented but not tested", method.to_uppercase()));
            assert!(
                statuses.iter().any(|s| *s != 404 && *s != 405),
                "{} {path} never answered: {statuses:?}",
                method.to_uppercase()
            );
        }
    }
}

async fn the_openapi_document_describes_every_real_response(kind: Kind) {
    let mut app = TestApp::spawn(kind, 0).await;
    let c = TestApp::new_client();
    let resp = c.get(app.url("/api/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let spec = Spec { doc: resp.json().await.unwrap(), seen: Default::default() };
    assert!(spec.doc["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1");
    spec.check("/api/openapi.json", "get", c.get(app.url("/api/openapi.json")).send().await.unwrap()).await;
    let (status, _, ops) = spec.check("/api/ops", "get", c.get(app.url("/api/ops")).send().await.unwrap()).await;
    assert_eq!((status, ops["ops"][0]["op"].as_str()), (200, Some("resize")), "the recipe builder's op schema: {ops}");
    every_served_route_is_documented(&spec);

    let d = Driver { c, base: app.base_url.clone() };
    for p in ["/livez", "/readyz", "/healthz"] {
        spec.check(p, "get", d.get(p).await.unwrap()).await;
    }
    let a = uploads_and_their_refusals(&spec, &d).await;
    reads_of_a_queued_job(&spec, &d, &a).await;
    a_failed_job_is_retried_then_cancelled(&spec, &d, &app, &a).await;
    a_done_job_s_downloads(&spec, &d, &mut app, &a).await;
    logos_taken_listed_and_deleted(&spec, &d).await;
    every_documented_operation_was_driven(&spec);
}

on_both_backends!(
    a_queued_job_cancelled_is_never_rendered,
    a_retried_post_with_the_same_key_creates_one_job,
    the_openapi_document_describes_every_real_response
);
