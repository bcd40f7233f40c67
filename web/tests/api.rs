//! In-process tests of the web app's routes (issue 17): the whole app (middlewares and every
//! route of `routes::configure`) served by actix's test tools on the embedded backend in a
//! temporary folder, with no processor and no background loops. They cover what needs no real
//! processes — refusals of bad uploads, the JSON a job is shown as, paging, cancel, owners kept
//! apart, CSRF, `Idempotency-Key` replays, the OpenAPI document, the live streams' first events
//! — and that `serve` stops when its shutdown signal completes. The e2e suites cover the rest.

use std::cell::RefCell;
use std::future::poll_fn;
use std::path::PathBuf;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use bytes::Bytes;
use clap::Parser;
use darkroom_core::config::Backend;
use darkroom_web::server::{self, Shared};
use darkroom_web::Config;
use serde_json::{json, Value};

/// A small real photo (64×48 JPEG) from the fuzz seeds.
const PHOTO: &[u8] = include_bytes!("../../fuzz/seeds/images/j420.jpg");
const THUMBNAIL: &str = r#"{"preset":"thumbnail"}"#;
const BOUNDARY: &str = "darkroom-test-boundary";

/// The web app on a fresh embedded backend; the folder goes when it is dropped.
struct TestApp {
    dir: PathBuf,
    config: Config,
    backend: Backend,
    shared: Shared,
}

async fn spawn_app() -> TestApp {
    let dir = std::env::temp_dir().join(format!("darkroom-web-api-{}", uuid::Uuid::new_v4()));
    let config = Config::try_parse_from([
        "darkroom-web",
        "--backend",
        "embedded",
        "--data-dir",
        dir.to_str().unwrap(),
        "--bind",
        "127.0.0.1:0",
    ])
    .expect("test settings parse");
    let backend = config.backend.connect(true).await.expect("the embedded backend opens");
    let shared = Shared::new(&config, backend.clone()).await.expect("the app's state builds");
    TestApp { dir, config, backend, shared }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One answer, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body)))
    }

    /// A header's value ("" when absent).
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The API's error code.
    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

/// A browser: keeps the identity cookie the app gives it.
#[derive(Default)]
struct Browser {
    cookie: RefCell<Option<String>>,
}

impl Browser {
    fn request(&self, req: TestRequest) -> TestRequest {
        let req = req.peer_addr("127.0.0.1:40000".parse().unwrap());
        match self.cookie.borrow().as_ref() {
            Some(c) => req.insert_header((header::COOKIE, c.clone())),
            None => req,
        }
    }

    fn keep_cookie(&self, headers: &HeaderMap) {
        for v in headers.get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            if let Some(pair) = v.split(';').next().filter(|p| p.starts_with("darkroom_id=")) {
                *self.cookie.borrow_mut() = Some(pair.to_string());
            }
        }
    }

    async fn call(&self, app: &TestApp, req: TestRequest) -> Answer {
        let service = test::init_service(server::app(&app.shared)).await;
        let res = test::call_service(&service, self.request(req).to_request()).await;
        let (status, headers) = (res.status(), res.headers().clone());
        self.keep_cookie(&headers);
        let body = test::read_body(res).await;
        Answer { status, headers, body }
    }

    /// The first bytes of a streamed answer (an event stream that does not end).
    async fn first_chunk(&self, app: &TestApp, req: TestRequest) -> (StatusCode, String) {
        let service = test::init_service(server::app(&app.shared)).await;
        let res = test::call_service(&service, self.request(req).to_request()).await;
        let status = res.status();
        let mut body = Box::pin(res.into_body());
        let chunk = tokio::time::timeout(Duration::from_secs(5), poll_fn(|cx| body.as_mut().poll_next(cx)))
            .await
            .expect("the stream sends something at once");
        let text = chunk.map(|c| String::from_utf8_lossy(&c.ok().unwrap()).into_owned()).unwrap_or_default();
        (status, text)
    }

    async fn get(&self, app: &TestApp, path: &str) -> Answer {
        self.call(app, TestRequest::get().uri(path)).await
    }

    async fn post(&self, app: &TestApp, path: &str) -> Answer {
        self.call(app, TestRequest::post().uri(path)).await
    }

    /// `POST /api/jobs` with `files` (name, bytes) and a recipe.
    async fn upload(&self, app: &TestApp, files: &[(&str, &[u8])], recipe: &str) -> Answer {
        self.call(app, upload_request(files, recipe)).await
    }

    /// Upload the test photo; its job id.
    async fn upload_photo(&self, app: &TestApp) -> String {
        let a = self.upload(app, &[("photo.jpg", PHOTO)], THUMBNAIL).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
        a.json()["jobs"][0]["id"].as_str().unwrap().to_string()
    }
}

fn upload_request(files: &[(&str, &[u8])], recipe: &str) -> TestRequest {
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![("recipe", None, recipe.as_bytes())];
    parts.extend(files.iter().map(|(name, bytes)| ("file", Some(*name), *bytes)));
    multipart(TestRequest::post().uri("/api/jobs"), &parts)
}

/// A `multipart/form-data` body of `(field, file name, bytes)` parts.
fn multipart(req: TestRequest, parts: &[(&str, Option<&str>, &[u8])]) -> TestRequest {
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes());
        if let Some(f) = filename {
            body.extend_from_slice(format!("; filename=\"{f}\"\r\nContent-Type: application/octet-stream").as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    req.insert_header((header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))).set_payload(body)
}

#[actix_web::test]
async fn an_upload_that_is_not_an_image_is_refused_by_content() {
    let app = spawn_app().await;
    let a = Browser::default().upload(&app, &[("holiday.jpg", b"just some text, not a JPEG")], THUMBNAIL).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.text());
    let e = &a.json()["error"];
    assert_eq!((e["code"].as_str(), e["field"].as_str()), (Some("not_an_image"), Some("file")));
    assert_eq!(e["filename"], "holiday.jpg");
    assert!(app.backend.store.list("originals/").await.unwrap().is_empty(), "nothing stored");
}

#[actix_web::test]
async fn recipes_with_an_unknown_op_or_too_many_outputs_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let b = Browser::default();
    let unknown = r#"{"outputs":[{"name":"a","ops":[{"op":"grayscale"},{"op":"explode"}]}]}"#;
    let a = b.upload(&app, &[("photo.jpg", PHOTO)], unknown).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text());
    assert_eq!(a.code(), "unknown_op");
    assert_eq!(a.json()["error"]["field"], "outputs[0].ops[1].op");

    let many: Vec<Value> = (0..11).map(|i| json!({ "name": format!("o{i}") })).collect();
    let a = b.upload(&app, &[("photo.jpg", PHOTO)], &json!({ "outputs": many }).to_string()).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text());
    assert_eq!((a.code().as_str(), a.json()["error"]["field"].as_str()), ("too_many_outputs", Some("outputs")));

    let a = b.call(&app, multipart(TestRequest::post().uri("/api/jobs"), &[("file", Some("p.jpg"), PHOTO)])).await;
    assert_eq!((a.status, a.code().as_str()), (StatusCode::BAD_REQUEST, "missing_recipe"));
}

#[actix_web::test]
async fn a_job_is_shown_as_the_documented_json() {
    let app = spawn_app().await;
    let b = Browser::default();
    let a = b.upload(&app, &[("photo.jpg", PHOTO)], THUMBNAIL).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let short = &a.json()["jobs"][0];
    let id = short["id"].as_str().unwrap();
    assert_eq!(short["state"], "queued");
    assert_eq!(short["filename"], "photo.jpg");
    assert_eq!(short["links"]["self"], format!("/api/jobs/{id}"));
    assert!(a.json().get("rejected").is_none(), "nothing rejected");

    let job = b.get(&app, &format!("/api/jobs/{id}")).await.json();
    assert_eq!(job["id"], id);
    assert_eq!(job["state"], "queued");
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["outputs"], json!([]));
    assert_eq!(job["preview_url"], Value::Null);
    assert_eq!(job["original"]["url"], format!("/api/jobs/{id}/original"));
    assert_eq!(job["original"]["content_type"], "image/jpeg");
    assert_eq!((job["original"]["width"].as_u64(), job["original"]["height"].as_u64()), (Some(64), Some(48)));
    assert_eq!(job["original"]["bytes"], PHOTO.len());
    assert_eq!(job["timeline"][0]["state"], "queued");
    assert_eq!(job["links"]["events"], format!("/api/jobs/{id}/events"));
    assert_eq!(job["links"]["page"], format!("/jobs/{id}"));

    let original = b.get(&app, &format!("/api/jobs/{id}/original")).await;
    assert_eq!(original.status, StatusCode::OK);
    assert_eq!(original.body.as_ref(), PHOTO);
    let no_preview = b.get(&app, &format!("/api/jobs/{id}/preview")).await;
    assert_eq!((no_preview.status, no_preview.code().as_str()), (StatusCode::NOT_FOUND, "no_preview"));
    let no_zip = b.get(&app, &format!("/api/jobs/{id}/outputs.zip")).await;
    assert_eq!((no_zip.status, no_zip.code().as_str()), (StatusCode::CONFLICT, "no_outputs"));
}

#[actix_web::test]
async fn the_job_list_pages_with_an_opaque_cursor() {
    let app = spawn_app().await;
    let b = Browser::default();
    let a = b.upload(&app, &[("a.jpg", PHOTO), ("b.jpg", PHOTO), ("c.jpg", PHOTO)], THUMBNAIL).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());

    let first = b.get(&app, "/api/jobs?limit=2").await.json();
    assert_eq!(first["total"], 3);
    let names: Vec<&str> = first["jobs"].as_array().unwrap().iter().map(|j| j["filename"].as_str().unwrap()).collect();
    assert_eq!(names, ["c.jpg", "b.jpg"], "newest first");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = b.get(&app, &format!("/api/jobs?limit=2&cursor={cursor}")).await.json();
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(second["jobs"][0]["filename"], "a.jpg");
    assert_eq!(second["next_cursor"], Value::Null);

    for (query, code) in
        [("cursor=bm9wZQ", "invalid_cursor"), ("limit=0", "invalid_limit"), ("state=lost", "invalid_state")]
    {
        let a = b.get(&app, &format!("/api/jobs?{query}")).await;
        assert_eq!((a.status, a.code().as_str()), (StatusCode::BAD_REQUEST, code), "{query}");
        assert_eq!(a.json()["error"]["field"], code.trim_start_matches("invalid_"));
    }
    // The gallery page refuses a bad cursor with a page, not JSON.
    let page = b.get(&app, "/?cursor=bm9wZQ").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.text().contains("That page does not exist"), "{}", page.text());
}

#[actix_web::test]
async fn a_queued_job_can_be_cancelled_and_then_deleted() {
    let app = spawn_app().await;
    let b = Browser::default();
    let id = b.upload_photo(&app).await;
    let a = b.post(&app, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["state"], "cancelled");
    let again = b.post(&app, &format!("/api/jobs/{id}/cancel")).await;
    assert_eq!((again.status, again.json()["state"].as_str()), (StatusCode::OK, Some("cancelled")));
    assert!(app.backend.store.head(&darkroom_protocol::keys::cancel_marker(&id)).await.unwrap().is_some());

    let retry = b.post(&app, &format!("/api/jobs/{id}/retry")).await;
    assert_eq!((retry.status, retry.code().as_str()), (StatusCode::CONFLICT, "not_failed"));

    let deleted = b.call(&app, TestRequest::delete().uri(&format!("/api/jobs/{id}"))).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(b.get(&app, &format!("/api/jobs/{id}")).await.status, StatusCode::NOT_FOUND);

    // A queued job cannot be deleted; from a form the refusal is a page.
    let id = b.upload_photo(&app).await;
    let a = b.call(&app, TestRequest::delete().uri(&format!("/api/jobs/{id}"))).await;
    assert_eq!((a.status, a.code().as_str()), (StatusCode::CONFLICT, "not_finished"));
    let form = b.post(&app, &format!("/jobs/{id}/delete")).await;
    assert_eq!(form.status, StatusCode::CONFLICT);
    assert!(form.text().contains("wait until it is done or failed"), "{}", form.text());
    let form = b.post(&app, &format!("/jobs/{id}/cancel")).await;
    assert_eq!(form.status, StatusCode::SEE_OTHER);
    assert_eq!(form.header("location"), format!("/jobs/{id}"));
}

#[actix_web::test]
async fn another_browser_finds_none_of_a_jobs_routes() {
    let app = spawn_app().await;
    let (owner, stranger) = (Browser::default(), Browser::default());
    let id = owner.upload_photo(&app).await;
    stranger.get(&app, "/api/jobs").await; // a cookie of its own
    assert!(stranger.cookie.borrow().is_some());
    for path in ["", "/original", "/preview", "/outputs.zip", "/events"] {
        let a = stranger.get(&app, &format!("/api/jobs/{id}{path}")).await;
        assert_eq!((a.status, a.code().as_str()), (StatusCode::NOT_FOUND, "not_found"), "GET {path}");
    }
    for path in ["/cancel", "/retry"] {
        let a = stranger.post(&app, &format!("/api/jobs/{id}{path}")).await;
        assert_eq!((a.status, a.code().as_str()), (StatusCode::NOT_FOUND, "not_found"), "POST {path}");
    }
    let a = stranger.call(&app, TestRequest::delete().uri(&format!("/api/jobs/{id}"))).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(stranger.get(&app, "/api/jobs").await.json()["total"], 0);
    let page = stranger.get(&app, &format!("/jobs/{id}")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.header("content-type").starts_with("text/html"));
    // The owner still sees it, queued.
    assert_eq!(owner.get(&app, &format!("/api/jobs/{id}")).await.json()["state"], "queued");
}

#[actix_web::test]
async fn a_request_from_another_site_is_refused_before_any_handler() {
    let app = spawn_app().await;
    let b = Browser::default();
    let req =
        upload_request(&[("photo.jpg", PHOTO)], THUMBNAIL).insert_header((header::ORIGIN, "https://evil.example"));
    let a = b.call(&app, req).await;
    assert_eq!((a.status, a.code().as_str()), (StatusCode::FORBIDDEN, "cross_site_request"));
    let form = b.call(&app, TestRequest::post().uri("/upload").insert_header(("sec-fetch-site", "cross-site"))).await;
    assert_eq!(form.status, StatusCode::FORBIDDEN);
    assert!(form.text().contains("Refused: request from another site"), "{}", form.text());
    assert!(app.backend.store.list("originals/").await.unwrap().is_empty(), "nothing stored");
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let b = Browser::default();
    let send = || upload_request(&[("photo.jpg", PHOTO)], THUMBNAIL).insert_header(("idempotency-key", "key-1"));
    let first = b.call(&app, send()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    assert!(first.headers.get("idempotent-replayed").is_none());
    let second = b.call(&app, send()).await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(second.header("idempotent-replayed"), "true");
    assert_eq!(second.json(), first.json());
    assert_eq!(b.get(&app, "/api/jobs").await.json()["total"], 1, "one job, not two");

    let other = upload_request(&[("other.jpg", PHOTO)], THUMBNAIL).insert_header(("idempotency-key", "key-1"));
    let a = b.call(&app, other).await;
    assert_eq!((a.status, a.code().as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"));
    let bad = upload_request(&[("photo.jpg", PHOTO)], THUMBNAIL).insert_header(("idempotency-key", ""));
    assert_eq!(b.call(&app, bad).await.code(), "invalid_idempotency_key");
}

#[actix_web::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;
    let a = Browser::default().get(&app, "/api/openapi.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.header("content-type").starts_with("application/json"));
    let doc = a.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in ["/api/jobs", "/api/jobs/{id}", "/api/jobs/{id}/cancel", "/api/logos", "/api/events"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
}

#[actix_web::test]
async fn logos_refuse_what_is_not_a_png_and_ids_they_do_not_have() {
    let app = spawn_app().await;
    let b = Browser::default();
    let a = b.call(&app, multipart(TestRequest::post().uri("/api/logos"), &[("logo", Some("logo.jpg"), PHOTO)])).await;
    assert_eq!((a.status, a.code().as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, "logo_not_png"));
    assert_eq!(
        (a.json()["error"]["field"].as_str(), a.json()["error"]["filename"].as_str()),
        (Some("logo"), Some("logo.jpg"))
    );
    let a = b.call(&app, TestRequest::delete().uri("/api/logos/nope")).await;
    assert_eq!((a.status, a.code().as_str()), (StatusCode::NOT_FOUND, "logo_not_found"));
    let a = b.get(&app, "/api/logos").await;
    assert_eq!(a.json(), json!({ "logos": [] }));
}

#[actix_web::test]
async fn both_live_streams_start_with_what_they_promise() {
    let app = spawn_app().await;
    let b = Browser::default();
    let id = b.upload_photo(&app).await;
    // A job stream sends the current state at once, and ends after a final one.
    b.post(&app, &format!("/api/jobs/{id}/cancel")).await;
    let a = b.get(&app, &format!("/api/jobs/{id}/events")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), "text/event-stream");
    let text = a.text();
    assert!(text.starts_with("event: status\nid: 2\ndata: "), "{text}");
    assert_eq!(text.matches("event: status").count(), 1, "one event, then the end: {text}");
    let data: Value = serde_json::from_str(text.lines().nth(2).unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!((data["id"].as_str(), data["state"].as_str()), (Some(id.as_str()), Some("cancelled")));
    // The gallery stream greets, and stays open.
    let (status, first) = b.first_chunk(&app, TestRequest::get().uri("/api/events")).await;
    assert_eq!((status, first.as_str()), (StatusCode::OK, ": hello\n\n"));
}

#[actix_web::test]
async fn serve_stops_when_its_shutdown_signal_completes() {
    let app = spawn_app().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = actix_web::rt::spawn(darkroom_web::serve(app.config.clone(), app.backend.clone(), listener, async {
        let _ = stopped.await;
    }));
    let answer = get_over_tcp(addr, "/livez").await;
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    stop.send(()).unwrap();
    let result = tokio::time::timeout(Duration::from_secs(20), serving).await.expect("serve returns after the signal");
    result.expect("serve does not panic").expect("serve stops cleanly");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

/// `GET path` over a plain TCP connection, retried until the server answers (at most 10 s).
async fn get_over_tcp(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            if s.read_to_string(&mut out).await.is_ok() && !out.is_empty() {
                return out;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
