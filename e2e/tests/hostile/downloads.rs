//! Downloads through HTTP (issue 15, "Downloads"), on both backends: originals and outputs
//! stream from the store with a strong `ETag` (`If-None-Match` → 304), single `Range`
//! requests (206, exact bytes; 416 outside the file), a private cache policy and non-ASCII
//! names kept in `filename*`; the outputs zip opens with a zip library and holds the outputs
//! under their UTF-8 names; a large original streams with the web process's memory far below
//! its size; with `DARKROOM_DOWNLOAD_REDIRECT=presigned` the S3 backend answers 307 to a
//! presigned URL (only after checking ownership) that serves the bytes.

use std::io::Read;

use darkroom_e2e::{corpus, on_both_backends, Kind, TestApp};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_DISPOSITION, ETAG};
use serde_json::Value;

const PHOTO: &str = "S01_rocket_640x427.jpg";
const NAME: &str = "façade 東京.jpg";
const RECIPE: &str = r#"{"outputs":[{"name":"web","ops":[{"op":"resize","width":200}],"format":"png"},{"name":"thumb","ops":[{"op":"resize","width":64}],"format":"jpeg"}]}"#;

/// Upload the corpus photo under `NAME` with `client`; returns the job id.
async fn upload_named(app: &TestApp, client: &reqwest::Client) -> String {
    let bytes = std::fs::read(corpus(PHOTO)).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("recipe", RECIPE)
        .part("file", reqwest::multipart::Part::bytes(bytes).file_name(NAME));
    let resp = client.post(app.url("/api/jobs")).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    body["jobs"][0]["id"].as_str().unwrap().to_string()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The name a `Content-Disposition` gives in `filename*`, decoded.
fn filename_star(headers: &HeaderMap) -> String {
    let d = headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(d.contains("filename=\""), "an ASCII fallback too: {d}");
    let encoded = d.split("filename*=UTF-8''").nth(1).unwrap_or_else(|| panic!("no filename*: {d}"));
    percent_decode(encoded.split(';').next().unwrap().trim())
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers.get(name).unwrap_or_else(|| panic!("no {name} header in {headers:?}")).to_str().unwrap()
}

async fn get(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client.get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// Revalidation and ranges of the original: 304 for its tag, exact bytes for each range, 416
/// past the end, the whole file when If-Range names another tag.
async fn the_original_revalidates_and_serves_ranges(client: &reqwest::Client, url: &str, etag: &str, photo: &[u8]) {
    let size = photo.len();
    let resp = get(client, url, &[("if-none-match", etag)]).await;
    assert_eq!(resp.status(), 304, "unchanged: not sent again");
    assert_eq!(header(resp.headers(), "etag"), etag);
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = get(client, url, &[("if-none-match", "\"something-else\"")]).await;
    assert_eq!(resp.status(), 200, "another tag: the bytes");
    assert_eq!(resp.bytes().await.unwrap().len(), size);

    // Ranges: exact bytes.
    for (range, first, last) in
        [("bytes=10-19", 10, 19), ("bytes=-5", size - 5, size - 1), ("bytes=1000-", 1000, size - 1)]
    {
        let resp = get(client, url, &[("range", range)]).await;
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(header(resp.headers(), "content-range"), format!("bytes {first}-{last}/{size}"), "{range}");
        assert_eq!(header(resp.headers(), "etag"), etag);
        assert!(resp.bytes().await.unwrap() == photo[first..=last], "{range}: exact bytes");
    }
    let resp = get(client, url, &[("range", &format!("bytes={size}-"))]).await;
    assert_eq!(resp.status(), 416, "past the end");
    assert_eq!(header(resp.headers(), "content-range"), format!("bytes */{size}"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "range_not_satisfiable", "{body}");
    let resp = get(client, url, &[("range", "bytes=0-9"), ("if-range", "\"stale\"")]).await;
    assert_eq!(resp.status(), 200, "If-Range with another tag: the whole file");
    assert_eq!(resp.bytes().await.unwrap().len(), size);
}

/// Outputs stream like the original, named after the photo; the zip opens with a zip library,
/// the outputs under their UTF-8 names.
async fn outputs_and_the_zip_carry_the_photo_s_name(app: &TestApp, client: &reqwest::Client, id: &str) {
    let job = app.job(client, id).await;
    let mut outputs = std::collections::HashMap::new();
    for o in job["outputs"].as_array().unwrap() {
        let resp = get(client, &app.url(o["url"].as_str().unwrap()), &[]).await;
        assert_eq!(resp.status(), 200, "{o}");
        let name = filename_star(resp.headers());
        let etag = header(resp.headers(), "etag").to_string();
        let data = resp.bytes().await.unwrap();
        assert_eq!(data.len() as u64, o["bytes"].as_u64().unwrap(), "{o}");
        let tail = get(client, &app.url(o["url"].as_str().unwrap()), &[("range", "bytes=-100")]).await;
        assert_eq!(tail.status(), 206);
        assert!(tail.bytes().await.unwrap() == data[data.len() - 100..]);
        let again = get(client, &app.url(o["url"].as_str().unwrap()), &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), 304);
        outputs.insert(name, data);
    }
    let mut names: Vec<_> = outputs.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["façade 東京-thumb.jpg", "façade 東京-web.png"]);

    // The zip: opens with a zip library, the outputs under their UTF-8 names.
    let resp = get(client, &app.url(&format!("/api/jobs/{id}/outputs.zip")), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(filename_star(resp.headers()), "façade 東京-outputs.zip");
    let archive = resp.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).expect("the zip opens");
    assert_eq!(zip.len(), 2);
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        f.read_to_end(&mut data).expect("reads, CRC checked");
        let expected = outputs.get(f.name()).unwrap_or_else(|| panic!("unexpected entry {:?}", f.name()));
        assert!(&data == expected, "{}: the output's bytes", f.name());
    }
}

async fn originals_and_outputs_stream_with_etags_ranges_and_their_names(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let client = TestApp::new_client();
    let id = upload_named(&app, &client).await;
    let events = app.follow(&client, &id).await;
    assert_eq!(events.last().unwrap()["state"], "done", "{events:?}");
    let photo = std::fs::read(corpus(PHOTO)).unwrap();
    let size = photo.len();
    let url = app.url(&format!("/api/jobs/{id}/original"));

    // Whole: the stored bytes, with the validators and the cache policy.
    let resp = get(&client, &url, &[]).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(header(&h, "content-length"), size.to_string());
    assert_eq!(h[ACCEPT_RANGES], "bytes");
    let cache = header(&h, CACHE_CONTROL.as_str());
    assert!(cache.contains("private") && cache.contains("immutable") && !cache.contains("public"), "{cache}");
    let etag = header(&h, ETAG.as_str()).to_string();
    assert!(etag.starts_with('"') && etag.len() > 2, "a strong ETag: {etag}");
    assert_eq!(filename_star(&h), NAME, "the name survives");
    assert!(resp.bytes().await.unwrap() == photo, "the original as uploaded");
    let stored = app.backend().await.store.get(&darkroom_protocol::keys::original(&id)).await.unwrap();
    assert!(stored == photo);

    // HEAD: the same headers, no body, nothing read.
    let resp = client.head(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(resp.headers(), "content-length"), size.to_string());
    assert_eq!(header(resp.headers(), "etag"), etag);
    assert_eq!(resp.headers()[ACCEPT_RANGES], "bytes");
    assert!(resp.bytes().await.unwrap().is_empty());

    the_original_revalidates_and_serves_ranges(&client, &url, &etag, &photo).await;
    outputs_and_the_zip_carry_the_photo_s_name(&app, &client, &id).await;

    // Someone else's browser: nothing.
    let other = TestApp::new_client();
    assert_eq!(get(&other, &url, &[]).await.status(), 404);
    assert_eq!(get(&other, &url, &[("if-none-match", &etag)]).await.status(), 404, "not even a 304");
}

/// A 160 MiB original (put straight into the store: uploads are capped far lower) streams to
/// the client while the web process's peak resident memory grows by far less than its size.
async fn a_large_original_streams_without_being_held_in_memory(kind: Kind) {
    const MIB: usize = 1024 * 1024;
    const SIZE: usize = 160 * MIB;
    let mut app = TestApp::spawn(kind, 0).await;
    let client = TestApp::new_client();
    let id = upload_named(&app, &client).await;
    let big: Vec<u8> = (0..SIZE).map(|i| (i / 4096 % 251) as u8).collect();
    let crc = crc32fast::hash(&big);
    app.backend().await.store.put(&darkroom_protocol::keys::original(&id), big.into(), "image/jpeg").await.unwrap();
    let before = app.web.as_mut().unwrap().peak_rss_kib();

    let resp = get(&client, &app.url(&format!("/api/jobs/{id}/original")), &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(resp.headers(), "content-length"), SIZE.to_string());
    let (mut got, mut hasher) = (0usize, crc32fast::Hasher::new());
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        got += chunk.len();
        hasher.update(&chunk);
    }
    assert_eq!((got, hasher.finalize()), (SIZE, crc), "every byte, in order");
    let after = app.web.as_mut().unwrap().peak_rss_kib();
    let grew = after.saturating_sub(before);
    eprintln!("{kind:?}: a {} MiB download: web peak RSS {before} KiB -> {after} KiB", SIZE / MIB);
    assert!(grew < 32 * 1024, "the web app's peak memory grew by {grew} KiB for a {} MiB download", SIZE / MIB);
}

/// `DARKROOM_DOWNLOAD_REDIRECT=presigned`: on S3 a 307 to a presigned GetObject URL whose GET
/// serves the bytes under the same name (moto serves presigned URLs without checking their
/// signature: this proves the redirect and the URL's shape, not AWS's signature check); on the
/// embedded backend the setting has no effect and the web app serves the bytes.
async fn presigned_redirects_after_checking_the_owner(kind: Kind) {
    let env = [("DARKROOM_DOWNLOAD_REDIRECT", "presigned"), ("DARKROOM_DOWNLOAD_REDIRECT_TTL", "120")];
    let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let client =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let id = upload_named(&app, &client).await;
    let photo = std::fs::read(corpus(PHOTO)).unwrap();
    let url = app.url(&format!("/api/jobs/{id}/original"));

    let other = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let refused = get(&other, &url, &[]).await;
    assert_eq!(refused.status(), 404, "another browser gets no URL");
    assert!(refused.headers().get("location").is_none());

    let resp = get(&client, &url, &[]).await;
    match kind {
        Kind::Embedded => {
            assert_eq!(resp.status(), 200, "a folder cannot presign: served as usual");
            assert!(resp.bytes().await.unwrap() == photo);
        }
        Kind::Moto => {
            assert_eq!(resp.status(), 307);
            assert!(header(resp.headers(), "cache-control").contains("no-store"));
            let location = header(resp.headers(), "location").to_string();
            let endpoint = &app.site.moto.as_ref().unwrap().endpoint;
            assert!(location.starts_with(&format!("{endpoint}/{}/originals/", app.site.names.bucket)), "{location}");
            for part in ["X-Amz-Signature=", "X-Amz-Expires=120", "response-content-disposition="] {
                assert!(location.contains(part), "{part} in {location}");
            }
            // Straight from the bucket, no cookie needed: the URL is the credential.
            let direct = get(&reqwest::Client::new(), &location, &[]).await;
            assert_eq!(direct.status(), 200, "{location}");
            assert_eq!(filename_star(direct.headers()), NAME, "S3 answers with the name the web app chose");
            assert!(direct.bytes().await.unwrap() == photo, "the original's bytes");
        }
    }
    // The pages' <img> of an original follow the redirect: the CSP allows the store's origin
    // for images (and nothing else new), only when downloads redirect there.
    let page = get(&client, &app.url("/"), &[]).await;
    let csp = header(page.headers(), "content-security-policy").to_string();
    let img_src = csp.split(';').find(|d| d.trim().starts_with("img-src")).unwrap().trim().to_string();
    match &app.site.moto {
        Some(m) => assert_eq!(img_src, format!("img-src 'self' data: blob: {}", m.endpoint), "{csp}"),
        None => assert_eq!(img_src, "img-src 'self' data: blob:", "{csp}"),
    }
}

on_both_backends!(
    originals_and_outputs_stream_with_etags_ranges_and_their_names,
    a_large_original_streams_without_being_held_in_memory,
    presigned_redirects_after_checking_the_owner,
);
