//! Logo watermarks and AVIF through the real web app and processors: upload a PNG logo, use its
//! key in a recipe, get the watermarked outputs and an AVIF back; refusals are clear.

use darkroom_e2e::{Kind, TestApp};
use serde_json::Value;

/// A 200×100 PNG: left half opaque red, right half fully transparent.
fn half_red_logo() -> Vec<u8> {
    let img = image::RgbaImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgba([255, 0, 0, 255])
        } else {
            image::Rgba([0, 0, 255, 0])
        }
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
    out
}

async fn post_logo(app: &TestApp, client: &reqwest::Client, bytes: Vec<u8>, filename: &str) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .part("logo", reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()));
    client.post(app.url("/api/logos")).multipart(form).send().await.expect("POST /api/logos")
}

async fn get_bytes(app: &TestApp, client: &reqwest::Client, path: &str) -> (String, bytes::Bytes) {
    let resp = client.get(app.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(resp.status(), 200, "GET {path}");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    (ct, resp.bytes().await.unwrap())
}

/// Submit `recipe` for one corpus photo; returns the job id.
async fn submit(app: &TestApp, client: &reqwest::Client, photo: &str, recipe: &str) -> String {
    let resp = app.upload(client, &[photo], Some(recipe)).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    body["jobs"][0]["id"].as_str().unwrap().to_string()
}

async fn logo_watermark_and_avif_end_to_end(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let c = &app.client;

    let resp = post_logo(&app, c, half_red_logo(), "logo.png").await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let key = body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("logos/") && key.ends_with(".png"), "{body}");
    assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(200), Some(100)));

    let recipe = format!(
        r#"{{"outputs":[
            {{"name":"plain","ops":[{{"op":"resize","width":800}}],"format":"png"}},
            {{"name":"marked","ops":[{{"op":"resize","width":800}},{{"op":"watermark","image":"{key}","opacity":1,"scale":0.25,"margin":10}}],"format":"png"}},
            {{"name":"small","ops":[{{"op":"resize","width":800}}],"format":"avif","quality":70,"speed":8}}
        ]}}"#
    );
    let id = submit(&app, c, "M03_storm_1920x1280_exif.jpg", &recipe).await;
    let events = app.follow(c, &id).await;
    let last = events.last().unwrap();
    if last["state"] != "done" {
        app.dump_logs();
    }
    assert_eq!(last["state"], "done", "{last}");

    let (ct, plain) = get_bytes(&app, c, &format!("/api/jobs/{id}/outputs/plain")).await;
    assert_eq!(ct, "image/png");
    let (_, marked) = get_bytes(&app, c, &format!("/api/jobs/{id}/outputs/marked")).await;
    let plain = image::load_from_memory(&plain).unwrap().to_rgb8();
    let marked = image::load_from_memory(&marked).unwrap().to_rgb8();
    assert_eq!(marked.dimensions(), (800, 533));
    // The logo (200×100, bottom right, 10 px margin): red where it is opaque, the photo where
    // it is transparent, and the photo everywhere else.
    assert_eq!(marked.get_pixel(600, 430).0, [255, 0, 0]);
    assert_ne!(plain.get_pixel(600, 430).0, [255, 0, 0]);
    assert_eq!(marked.get_pixel(700, 470), plain.get_pixel(700, 470));
    assert_eq!(marked.get_pixel(100, 100), plain.get_pixel(100, 100));

    let (ct, avif) = get_bytes(&app, c, &format!("/api/jobs/{id}/outputs/small")).await;
    assert_eq!(ct, "image/avif");
    assert_eq!(&avif[4..12], b"ftypavif");
    let job: Value = c.get(app.url(&format!("/api/jobs/{id}"))).send().await.unwrap().json().await.unwrap();
    let small = job["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "small").unwrap();
    assert_eq!(
        (small["format"].as_str(), small["width"].as_u64(), small["height"].as_u64()),
        (Some("avif"), Some(800), Some(533))
    );
    let decoded = darkroom_engine::heif::decode(&avif).expect("libheif decodes our AVIF").to_rgb8();
    assert_eq!(decoded.dimensions(), (800, 533));
    let diff: f64 = decoded.as_raw().iter().zip(plain.as_raw()).map(|(a, b)| a.abs_diff(*b) as f64).sum::<f64>()
        / plain.as_raw().len() as f64;
    assert!(diff < 6.0, "AVIF is the same picture as the PNG (mean difference {diff:.2})");
    let (x, y) = (400, 100);
    let (p, q) = (plain.get_pixel(x, y).0, decoded.get_pixel(x, y).0);
    assert!((0..3).all(|i| p[i].abs_diff(q[i]) < 40), "pixel ({x},{y}): {p:?} vs {q:?}");
}

async fn logo_refusals_are_clear(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let c = &app.client;

    // Not a PNG (checked by content, whatever the name says).
    let jpeg = std::fs::read(darkroom_e2e::corpus("S01_rocket_640x427.jpg")).unwrap();
    let resp = post_logo(&app, c, jpeg, "logo.png").await;
    assert_eq!(resp.status(), 415);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "logo_not_png", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("PNG"), "{body}");
    // Not an image at all.
    let resp = post_logo(&app, c, b"hello".to_vec(), "logo.png").await;
    assert_eq!(resp.status(), 415);
    // Too large: over the logo limit (2 MiB), refused while reading.
    let resp = post_logo(&app, c, vec![0u8; 3 * 1024 * 1024], "huge.png").await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "file_too_large", "{body}");
    // A decompression bomb is refused from its header.
    let bomb = std::fs::read(darkroom_e2e::corpus("X04_bomb_20000x20000.png")).unwrap();
    let resp = post_logo(&app, c, bomb, "bomb.png").await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_pixels", "{body}");
    // No logo part.
    let form = reqwest::multipart::Form::new().text("other", "x");
    let resp = c.post(app.url("/api/logos")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 400);

    // A recipe may only name logo keys: anything else is refused before queuing.
    let resp = app
        .upload(
            c,
            &["S01_rocket_640x427.jpg"],
            Some(r#"{"outputs":[{"name":"a","ops":[{"op":"watermark","image":"originals/x"}]}]}"#),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("invalid_logo"), Some("outputs[0].ops[0].image"))
    );

    // Another browser's logo, or one of ours that is not stored, is refused before queuing.
    let recipe = r#"{"outputs":[{"name":"a","ops":[{"op":"watermark","image":"logos/nobody/0000-none.png"}]}]}"#;
    let resp = app.upload(c, &["S01_rocket_640x427.jpg"], Some(recipe)).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_logo", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("another browser"), "{body}");
    let resp = post_logo(&app, c, half_red_logo(), "logo.png").await;
    let key = resp.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    let missing = format!("{}/0000-none.png", key.rsplit_once('/').unwrap().0);
    let recipe = format!(r#"{{"outputs":[{{"name":"a","ops":[{{"op":"watermark","image":"{missing}"}}]}}]}}"#);
    let resp = app.upload(c, &["S01_rocket_640x427.jpg"], Some(&recipe)).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("logo_missing"), Some("outputs[0].ops[0].image")),
        "{body}"
    );
}

/// A logo that disappears after the job was queued fails the job in the worker, clearly and
/// without retries.
async fn a_logo_gone_before_processing_fails_the_job_clearly(kind: Kind) {
    let mut app = TestApp::spawn(kind, 0).await;
    let c = app.client.clone();
    let resp = post_logo(&app, &c, half_red_logo(), "logo.png").await;
    let key = resp.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();
    let recipe = format!(r#"{{"outputs":[{{"name":"a","ops":[{{"op":"watermark","image":"{key}"}}]}}]}}"#);
    let id = submit(&app, &c, "S01_rocket_640x427.jpg", &recipe).await;
    app.backend().await.store.delete(&key).await.unwrap();
    app.start_processor();
    let events = app.follow(&c, &id).await;
    let last = events.last().unwrap();
    assert_eq!(last["state"], "failed", "{last}");
    assert_eq!(last["error"]["code"], "logo_missing", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains(&key), "{last}");
    assert_eq!(last["attempts"], 1, "a missing logo is not retried: {last}");
}

darkroom_e2e::on_both_backends!(
    logo_watermark_and_avif_end_to_end,
    logo_refusals_are_clear,
    a_logo_gone_before_processing_fails_the_job_clearly,
);
