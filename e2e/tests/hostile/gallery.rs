//! The gallery that pages (issue 16), on both backends: `GET /api/jobs` in cursor pages,
//! newest first, with no duplicate and no gap, foreign and forged cursors refused; the HTML
//! gallery's pages and its "Load more" link; cards that show the small preview the processor
//! makes for every job (never a full-size output or the original), a placeholder for a job
//! without one; and logos their owner can list and delete (nobody else can).

use std::collections::HashSet;

use darkroom_e2e::{decode, on_both_backends, Kind, TestApp};
use serde_json::Value;

use crate::RECIPE;

async fn get_json(app: &TestApp, client: &reqwest::Client, path: &str) -> (u16, Value) {
    let resp = client.get(app.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn ids(page: &Value) -> Vec<String> {
    page["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect()
}

/// Smaller pages walk the same order: every job, newest first.
async fn pages_of_seven_walk_the_same_order(app: &TestApp, client: &reqwest::Client, newest_first: &[String]) {
    let mut walked = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(c) => format!("/api/jobs?limit=7&cursor={c}"),
            None => "/api/jobs?limit=7".into(),
        };
        let (status, page) = get_json(app, client, &path).await;
        assert_eq!(status, 200, "{page}");
        assert!(page["jobs"].as_array().unwrap().len() <= 7);
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => next = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(walked, newest_first);
}

/// Refused: forged cursors, limits out of range, unknown states: 400 with the field at fault.
async fn bad_cursors_limits_and_states_are_refused(app: &TestApp, client: &reqwest::Client) {
    for (query, code) in [
        ("cursor=not-a-cursor", "invalid_cursor"),
        ("cursor=ajE6Li4veA", "invalid_cursor"), // base64 of "j1:../x"
        ("limit=0", "invalid_limit"),
        ("limit=101", "invalid_limit"),
        ("limit=many", "invalid_limit"),
        ("state=exploded", "invalid_state"),
    ] {
        let (status, body) = get_json(app, client, &format!("/api/jobs?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let (status, all) = get_json(app, client, "/api/jobs?limit=100").await;
    assert_eq!((status, all["jobs"].as_array().unwrap().len()), (200, 30));
}

/// The HTML gallery pages the same way, with a "Load more" link that works without JS.
async fn the_html_gallery_pages_too(app: &TestApp, client: &reqwest::Client, cursor: &str, uploaded: &[String]) {
    let html = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    let cards = |html: &str| html.matches(r#"<li class="job" data-id=""#).count();
    assert_eq!(cards(&html), 24, "the first page of the gallery");
    let more = format!(r#"href="/?cursor={cursor}""#);
    assert!(html.contains(&more), "a Load more link to the next page");
    let older = client.get(app.url(&format!("/?cursor={cursor}"))).send().await.unwrap().text().await.unwrap();
    assert_eq!(cards(&older), 6, "the second page of the gallery");
    assert!(!older.contains(r#"id="more""#), "no Load more on the last page");
    for id in &uploaded[..6] {
        assert!(older.contains(&format!(r#"data-id="{id}""#)), "the oldest jobs are on the second page");
    }
    let resp = client.get(app.url("/?cursor=garbage")).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // Times are ISO-8601 for the page script, in UTC text without it.
    assert!(html.contains(r#"<time class="created" datetime=""#) && html.contains(" UTC</time>"), "created times");
}

async fn thirty_jobs_come_in_pages_of_24_and_6_newest_first(kind: Kind) {
    // No processor: paging is about the records, and queued jobs are records too.
    let app = TestApp::spawn(kind, 0).await;
    let client = TestApp::new_client();
    let mut uploaded = Vec::new();
    for _ in 0..3 {
        let files = ["S01_rocket_640x427.jpg"; 10];
        let resp = app.upload(&client, &files, Some(RECIPE)).await;
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        uploaded.extend(ids(&body));
    }
    assert_eq!(uploaded.len(), 30);

    let (status, first) = get_json(&app, &client, "/api/jobs").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["jobs"].as_array().unwrap().len(), 24, "the default page is 24 jobs");
    assert_eq!(first["total"], 30);
    let cursor = first["next_cursor"].as_str().expect("a first page of 30 has a next_cursor").to_string();
    let (status, second) = get_json(&app, &client, &format!("/api/jobs?cursor={cursor}")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["jobs"].as_array().unwrap().len(), 6);
    assert!(second["next_cursor"].is_null(), "the last page has no next_cursor: {}", second["next_cursor"]);
    // The second page as a client sees it (shown with --nocapture), one line per job.
    println!(
        "{kind:?}: GET /api/jobs?cursor={cursor} → total {}, next_cursor {}",
        second["total"], second["next_cursor"]
    );
    for j in second["jobs"].as_array().unwrap() {
        println!("  {} {} {} {} {}", j["id"], j["state"], j["created_at"], j["filename"], j["preview_url"]);
    }

    let listed: Vec<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    let distinct: HashSet<&String> = listed.iter().collect();
    assert_eq!(distinct.len(), 30, "no duplicate across pages");
    let newest_first: Vec<String> = uploaded.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first, "every job once, newest first, no gap");
    let created: Vec<&str> = first["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["jobs"].as_array().unwrap())
        .map(|j| j["created_at"].as_str().unwrap())
        .collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = created.iter().map(|t| t.parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "created_at descends: {created:?}");

    pages_of_seven_walk_the_same_order(&app, &client, &newest_first).await;
    bad_cursors_limits_and_states_are_refused(&app, &client).await;
    // Another browser with this browser's cursor sees none of its jobs.
    let stranger = TestApp::new_client();
    let (status, theirs) = get_json(&app, &stranger, &format!("/api/jobs?cursor={cursor}")).await;
    assert_eq!(status, 200);
    assert_eq!(theirs["jobs"], serde_json::json!([]), "{theirs}");

    the_html_gallery_pages_too(&app, &client, &cursor, &uploaded).await;
}

async fn cards_show_a_small_preview_of_every_job_and_a_placeholder_otherwise(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let client = TestApp::new_client();
    // A full-size PNG output: the card must still load the small preview, not it.
    let recipe = r#"{"outputs":[{"name":"full","format":"png"}]}"#;
    let mut done = Vec::new();
    for file in ["M03_storm_1920x1280_exif.jpg", "S02_chelsea_451x300.png"] {
        let resp = app.upload(&client, &[file], Some(recipe)).await;
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        let id = ids(&body).remove(0);
        let events = app.follow(&client, &id).await;
        assert_eq!(events.last().unwrap()["state"], "done", "{events:?}");
        done.push(id);
    }
    let resp = app.upload(&client, &["X01_truncated_half.jpg"], Some(recipe)).await;
    let failed = match resp.status().as_u16() {
        202 => {
            let body: Value = resp.json().await.unwrap();
            let id = ids(&body).remove(0);
            let events = app.follow(&client, &id).await;
            assert_eq!(events.last().unwrap()["state"], "failed", "{events:?}");
            Some(id)
        }
        _ => None, // refused at upload: no job, no card
    };

    let (_, page) = get_json(&app, &client, "/api/jobs").await;
    for id in &done {
        let job = page["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id.as_str()).unwrap();
        let url = job["preview_url"].as_str().unwrap_or_else(|| panic!("a done job has a preview: {job}"));
        assert_eq!(url, format!("/api/jobs/{id}/preview"));
        let resp = client.get(app.url(url)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        assert!(resp.headers().contains_key("etag"), "the download headers of every download");
        assert!(resp.headers()["cache-control"].to_str().unwrap().starts_with("private"));
        let bytes = resp.bytes().await.unwrap();
        let (format, w, h) = decode(&bytes);
        assert_eq!(format, image::ImageFormat::Jpeg);
        assert!(w <= 320 && h <= 320 && w.max(h) >= 300, "a preview fits in 320×320: {w}×{h}");
        let full = job["outputs"][0]["bytes"].as_u64().unwrap();
        assert!(
            (bytes.len() as u64) * 10 < full,
            "the preview ({} B) is far smaller than the output ({full} B)",
            bytes.len()
        );
        // Only the owner.
        let resp = TestApp::new_client().get(app.url(url)).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    if let Some(id) = &failed {
        let job = page["jobs"].as_array().unwrap().iter().find(|j| j["id"] == id.as_str()).unwrap();
        assert!(job["preview_url"].is_null(), "a failed job has no preview: {job}");
        let (status, body) = get_json(&app, &client, &format!("/api/jobs/{id}/preview")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("no_preview")), "{body}");
    }

    // The gallery's cards load previews only: never an output, never an original.
    let html = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    let srcs: Vec<&str> = html.split(r#"<img src=""#).skip(1).map(|s| &s[..s.find('"').unwrap()]).collect();
    assert_eq!(srcs.len(), done.len(), "one image per done job: {srcs:?}");
    for id in &done {
        assert!(srcs.contains(&format!("/api/jobs/{id}/preview").as_str()), "{srcs:?}");
    }
    assert!(srcs.iter().all(|s| s.ends_with("/preview")), "{srcs:?}");
    if failed.is_some() {
        assert!(html.contains(r#"class="no-preview-img placeholder""#), "a placeholder for the failed job");
    }
}

async fn logos_are_listed_and_deleted_by_their_owner_only(kind: Kind) {
    let app = TestApp::spawn(kind, 0).await;
    let owner = TestApp::new_client();
    let stranger = TestApp::new_client();
    let png = std::fs::read(darkroom_e2e::corpus("S03_camera_512x512_gray.png")).unwrap();
    let mut keys = Vec::new();
    for _ in 0..2 {
        let form = reqwest::multipart::Form::new()
            .part("logo", reqwest::multipart::Part::bytes(png.clone()).file_name("logo.png"));
        let resp = owner.post(app.url("/api/logos")).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        keys.push(body["key"].as_str().unwrap().to_string());
    }
    let (status, list) = get_json(&app, &owner, "/api/logos").await;
    assert_eq!(status, 200, "{list}");
    let logos = list["logos"].as_array().unwrap();
    assert_eq!(logos.len(), 2, "{list}");
    for l in logos {
        assert!(keys.contains(&l["key"].as_str().unwrap().to_string()), "{l}");
        assert_eq!(l["bytes"].as_u64(), Some(png.len() as u64), "{l}");
        let created: chrono::DateTime<chrono::Utc> = l["created_at"].as_str().unwrap().parse().unwrap();
        assert!((chrono::Utc::now() - created).num_minutes().abs() < 10, "{l}");
        assert!(l["key"].as_str().unwrap().ends_with(&format!("/{}.png", l["id"].as_str().unwrap())), "{l}");
    }
    let (status, theirs) = get_json(&app, &stranger, "/api/logos").await;
    assert_eq!((status, theirs["logos"].as_array().unwrap().len()), (200, 0), "another browser sees none: {theirs}");

    let id = logos[0]["id"].as_str().unwrap().to_string();
    let resp = stranger.delete(app.url(&format!("/api/logos/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 404, "another browser cannot delete it");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "logo_not_found");
    let (_, list) = get_json(&app, &owner, "/api/logos").await;
    assert_eq!(list["logos"].as_array().unwrap().len(), 2, "still there after the stranger's attempt");

    let resp = owner.delete(app.url(&format!("/api/logos/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let (_, list) = get_json(&app, &owner, "/api/logos").await;
    let left: Vec<&str> = list["logos"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(left.len(), 1);
    assert_ne!(left[0], id);
    let backend = app.backend().await;
    let gone = logos[0]["key"].as_str().unwrap();
    assert!(backend.store.head(gone).await.unwrap().is_none(), "the object is gone from the store");
    let resp = owner.delete(app.url(&format!("/api/logos/{id}"))).send().await.unwrap();
    assert_eq!(resp.status(), 404, "deleted once");
    for bad in ["..%2Fx", "not%20an%20id"] {
        let resp = owner.delete(app.url(&format!("/api/logos/{bad}"))).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{bad}");
    }
}

on_both_backends!(
    thirty_jobs_come_in_pages_of_24_and_6_newest_first,
    cards_show_a_small_preview_of_every_job_and_a_placeholder_otherwise,
    logos_are_listed_and_deleted_by_their_owner_only,
);
