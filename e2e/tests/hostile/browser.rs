//! Browser-facing attacks, through HTTP as a browser (or a page of another site) would send
//! them: cross-site posts and deletes (uploads, logos, gallery forms, the ops redrive), forged
//! and foreign identity cookies, and the ops sign-in (token in the URL, guessing, sessions that
//! must outlive a restart, expire and end at sign-out). Also that the aws backend will not start
//! without `DARKROOM_COOKIE_SECRET` and keeps no cookie key in the bucket.

use std::time::{Duration, Instant};

use darkroom_e2e::{on_both_backends, Kind, TestApp};
use darkroom_protocol::keys;
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::RECIPE;

const EVIL: &str = "https://evil.example";
const TOKEN: &str = "hostile-browser-admin-token-0123";

fn photo_form(file: &str) -> Form {
    let bytes = std::fs::read(darkroom_e2e::corpus(file)).unwrap();
    Form::new().text("recipe", RECIPE).part("file", Part::bytes(bytes).file_name(file.to_string()))
}

fn logo_form() -> Form {
    let bytes = std::fs::read(darkroom_e2e::corpus("S02_chelsea_451x300.png")).unwrap();
    Form::new().part("logo", Part::bytes(bytes).file_name("logo.png"))
}

/// A client without a cookie store and without redirects: the test sees every Set-Cookie.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The Set-Cookie header for cookie `name`, if any.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// The value of a Set-Cookie header (`name=value; …` → `value`).
fn cookie_value(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_string()
}

async fn refused_json(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status(), 403, "{what}");
    assert!(set_cookie(resp.headers(), "darkroom_id").is_none(), "{what}: a refused request gets no identity");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "cross_site_request", "{what}: {body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("this site's own pages") && msg.contains("try again"), "{what}: {msg}");
}

async fn job_count(app: &TestApp, client: &reqwest::Client) -> usize {
    let body: Value = client.get(app.url("/api/jobs")).send().await.unwrap().json().await.unwrap();
    body["jobs"].as_array().unwrap().len()
}

/// Uploads from another site are refused: by Origin, by Sec-Fetch-Site, from a sibling
/// subdomain, from a sandboxed frame (Origin: null), and through the no-JavaScript form.
async fn cross_site_uploads_are_refused(app: &TestApp, client: &reqwest::Client) {
    for (header, value) in
        [("origin", EVIL), ("sec-fetch-site", "cross-site"), ("sec-fetch-site", "same-site"), ("origin", "null")]
    {
        let resp = client
            .post(app.url("/api/jobs"))
            .header(header, value)
            .multipart(photo_form("S01_rocket_640x427.jpg"))
            .send()
            .await
            .unwrap();
        refused_json(resp, &format!("upload with {header}: {value}")).await;
    }
    // The page's no-JavaScript upload form too, answered with a page.
    let resp = client
        .post(app.url("/upload"))
        .header("origin", EVIL)
        .header("sec-fetch-site", "cross-site")
        .multipart(photo_form("S01_rocket_640x427.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(resp.text().await.unwrap().contains("request from another site"));
    assert_eq!(job_count(app, client).await, 0, "nothing was queued");
}

/// The same upload from this site's page (as a browser sends it) works, and so does curl, and
/// so does the host a proxy forwards. Returns the first job's id, followed to done.
async fn same_site_uploads_work(app: &TestApp, client: &reqwest::Client, me: &str) -> String {
    let resp = client
        .post(app.url("/api/jobs"))
        .header("origin", me)
        .header("sec-fetch-site", "same-origin")
        .multipart(photo_form("S01_rocket_640x427.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "same-origin upload");
    let body: Value = resp.json().await.unwrap();
    let id = body["jobs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.upload(client, &["S02_chelsea_451x300.png"], Some(RECIPE)).await.status(), 202, "no headers");
    // Behind a proxy that says which host the browser asked for.
    let resp = client
        .post(app.url("/api/jobs"))
        .header("origin", "https://photos.example")
        .header("x-forwarded-host", "photos.example")
        .multipart(photo_form("S02_chelsea_451x300.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "the host a proxy forwards");
    assert_eq!(app.follow(client, &id).await.last().unwrap()["state"], "done");

    id
}

/// Delete (API and form) and retry from another site: refused, the job stays.
async fn cross_site_deletes_and_retries_are_refused(app: &TestApp, client: &reqwest::Client, id: &str) {
    let resp = client.delete(app.url(&format!("/api/jobs/{id}"))).header("origin", EVIL).send().await.unwrap();
    refused_json(resp, "DELETE").await;
    let resp = client.post(app.url(&format!("/api/jobs/{id}/retry"))).header("origin", EVIL).send().await.unwrap();
    refused_json(resp, "retry").await;
    let resp = client
        .post(app.url(&format!("/jobs/{id}/delete")))
        .header("sec-fetch-site", "cross-site")
        .form(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "delete form");
    assert_eq!(app.job(client, id).await["state"], "done", "the job is still there");
}

/// A logo is refused from another site and stored from this one; a delete from this site works.
async fn same_site_logo_and_delete_work(app: &TestApp, client: &reqwest::Client, me: &str, id: &str) {
    // Logo: refused from another site, stored from this one.
    let resp = client.post(app.url("/api/logos")).header("origin", EVIL).multipart(logo_form()).send().await.unwrap();
    refused_json(resp, "logo").await;
    let resp = client
        .post(app.url("/api/logos"))
        .header("origin", me)
        .header("sec-fetch-site", "same-origin")
        .multipart(logo_form())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "same-origin logo");

    // Delete from this site's page works.
    let resp = client
        .delete(app.url(&format!("/api/jobs/{id}")))
        .header("origin", me)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "same-origin delete");
    assert_eq!(client.get(app.url(&format!("/api/jobs/{id}"))).send().await.unwrap().status(), 404);
}

async fn cross_site_changes_are_refused_and_same_origin_ones_work(kind: Kind) {
    let app = TestApp::spawn(kind, 1).await;
    let client = TestApp::new_client();
    let me = app.base_url.clone();
    assert_eq!(job_count(&app, &client).await, 0); // (the identity cookie)

    cross_site_uploads_are_refused(&app, &client).await;
    let id = same_site_uploads_work(&app, &client, &me).await;
    cross_site_deletes_and_retries_are_refused(&app, &client, &id).await;
    same_site_logo_and_delete_work(&app, &client, &me, &id).await;
}

/// Sign in to the ops page with the form.
async fn sign_in(app: &TestApp, client: &reqwest::Client, token: &str) -> reqwest::Response {
    client.post(app.url("/ops/login")).form(&[("token", token)]).send().await.unwrap()
}

async fn ops_redrive_from_another_site_is_refused(kind: Kind) {
    // No processor: the test takes the job from the queue itself until the queue gives up.
    let env = [("DARKROOM_ADMIN_TOKEN", TOKEN), ("DARKROOM_MAX_RECEIVES", "1"), ("DARKROOM_VISIBILITY_TIMEOUT", "1")];
    let app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let client = TestApp::new_client();
    let id = crate::submit(&app, &client, "S01_rocket_640x427.jpg").await;
    let backend = app.site.connect(1, 1).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Receive without deleting, as a worker that dies: the second receive dead-letters it.
        backend.jobs.receive(10, Duration::from_millis(500)).await.unwrap();
        if app.job(&client, &id).await["error"]["code"] == "gave_up" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never reached the dead-letter queue");
    }
    let ops = TestApp::new_client();
    assert_eq!(sign_in(&app, &ops, TOKEN).await.status(), 200, "signed in");

    let resp = ops.post(app.url("/ops/redrive")).header("origin", EVIL).send().await.unwrap();
    assert_eq!(resp.status(), 403, "cross-site redrive");
    assert!(resp.text().await.unwrap().contains("another site"));
    let resp = ops.post(app.url("/ops/redrive")).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(resp.status(), 403, "cross-site redrive (Sec-Fetch-Site)");
    assert_eq!(app.job(&client, &id).await["state"], "failed", "nothing was redriven");
    assert_eq!(backend.jobs.counts().await.unwrap().visible, 0);

    let resp = ops
        .post(app.url("/ops/redrive"))
        .header("origin", &app.base_url)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "same-origin redrive (after its redirect)");
    assert!(resp.text().await.unwrap().contains("1 job queued again"));
    assert_eq!(app.job(&client, &id).await["state"], "queued", "the same-origin redrive queued it again");
}

async fn identity_cookies_resist_forgery_and_are_host_prefixed_over_https(kind: Kind) {
    let mut app = TestApp::spawn(kind, 0).await;
    let raw = raw_client();

    // Plain HTTP: `darkroom_id`, HttpOnly, SameSite=Lax, not Secure.
    let resp = raw.get(app.url("/api/jobs")).send().await.unwrap();
    let plain = set_cookie(resp.headers(), "darkroom_id").expect("identity cookie");
    assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Lax") && plain.contains("Path=/"), "{plain}");
    assert!(!plain.contains("Secure"), "{plain}");
    let alice = cookie_value(&plain);
    let jobs_url = app.url("/api/jobs");
    let as_alice = |cookie: String| {
        let (raw, url) = (raw.clone(), jobs_url.clone());
        async move {
            let resp = raw.post(url).header("cookie", cookie).multipart(photo_form("S01_rocket_640x427.jpg")).send();
            resp.await.unwrap()
        }
    };
    let resp = as_alice(format!("darkroom_id={alice}")).await;
    assert_eq!(resp.status(), 202);
    assert!(set_cookie(resp.headers(), "darkroom_id").is_none(), "alice keeps her identity");
    let id = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();
    let job_url = app.url(&format!("/api/jobs/{id}"));
    let get_job = |cookie: String| {
        let (raw, url) = (raw.clone(), job_url.clone());
        async move { raw.get(url).header("cookie", cookie).send().await.unwrap() }
    };
    assert_eq!(get_job(format!("darkroom_id={alice}")).await.status(), 200);

    // Tampered: the signature no longer matches; a stranger with a fresh identity.
    let last = alice.chars().last().unwrap();
    let tampered = format!("{}{}", &alice[..alice.len() - 1], if last == '0' { '1' } else { '0' });
    for forged in [tampered, "anything".into(), alice[44..].to_string()] {
        let resp = get_job(format!("darkroom_id={forged}")).await;
        assert_eq!(resp.status(), 404, "forged cookie {forged:?}");
        let fresh = set_cookie(resp.headers(), "darkroom_id").expect("a fresh identity");
        assert_ne!(cookie_value(&fresh), alice);
    }

    // Signed with another key (the web app restarted with another secret): no access either.
    app.env.push(("DARKROOM_COOKIE_SECRET".into(), "another-cookie-secret-for-this-test-0123456789".into()));
    app.restart_web_same_port();
    let resp = get_job(format!("darkroom_id={alice}")).await;
    assert_eq!(resp.status(), 404, "a cookie signed with another key");
    assert!(set_cookie(resp.headers(), "darkroom_id").is_some(), "a fresh identity");
    let bob = cookie_value(&set_cookie(resp.headers(), "darkroom_id").unwrap());

    // Behind HTTPS: `__Host-darkroom_id`, Secure, Path=/, no Domain; the old plain cookie is not
    // trusted (a sibling subdomain could have planted it) and is removed.
    app.env.push(("DARKROOM_PUBLIC_ORIGIN".into(), "https://darkroom.example".into()));
    app.restart_web_same_port();
    let resp = raw.get(app.url("/api/jobs")).header("cookie", format!("darkroom_id={bob}")).send().await.unwrap();
    let secure = set_cookie(resp.headers(), "__Host-darkroom_id").expect("a __Host- identity cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(secure.contains(attr), "{attr}: {secure}");
    }
    assert!(!secure.to_lowercase().contains("domain="), "{secure}");
    let removal = set_cookie(resp.headers(), "darkroom_id").expect("the old cookie is removed");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert_eq!(resp.json::<Value>().await.unwrap()["jobs"], serde_json::json!([]), "bob's old cookie is not trusted");
    let host_cookie = format!("__Host-darkroom_id={}", cookie_value(&secure));
    // The public origin may post; another one may not.
    let post = |origin: &'static str| {
        let (raw, url, cookie) = (raw.clone(), app.url("/api/jobs"), host_cookie.clone());
        async move {
            let req = raw.post(url).header("origin", origin).header("cookie", cookie);
            req.multipart(photo_form("S01_rocket_640x427.jpg")).send().await.unwrap()
        }
    };
    assert_eq!(post("https://darkroom.example").await.status(), 202, "the public origin");
    refused_json(post("http://darkroom.example").await, "the public host over plain http").await;
    let resp = raw.get(app.url("/api/jobs")).header("cookie", host_cookie).send().await.unwrap();
    assert!(set_cookie(resp.headers(), "__Host-darkroom_id").is_none(), "the __Host- cookie is an identity");
    assert_eq!(resp.json::<Value>().await.unwrap()["jobs"].as_array().unwrap().len(), 1);
}

async fn ops_sign_in_is_post_only_limited_and_sessions_are_signed(kind: Kind) {
    let env = [("DARKROOM_ADMIN_TOKEN", TOKEN)];
    let mut app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let raw = raw_client();
    let ops_url = app.url("/ops");
    let ops_page = |cookie: Option<String>| {
        let (raw, url) = (raw.clone(), ops_url.clone());
        async move {
            let mut req = raw.get(url);
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };

    // A token in the URL does not sign in: the form, and a word on why.
    let resp = raw.get(app.url(&format!("/ops?token={TOKEN}"))).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(set_cookie(resp.headers(), "darkroom_ops").is_none(), "no session from a URL");
    let page = resp.text().await.unwrap();
    assert!(page.contains("action=\"/ops/login\"") && page.contains("not accepted"), "{page}");

    // The form signs in: a signed session cookie, HttpOnly, SameSite=Strict, with a lifetime.
    let resp = raw.post(app.url("/ops/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    let set = set_cookie(resp.headers(), "darkroom_ops").expect("session cookie");
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Max-Age=43200"), "{set}");
    let session = format!("darkroom_ops={}", cookie_value(&set));
    assert_eq!(ops_page(Some(session.clone())).await, 200);
    assert_eq!(ops_page(Some(format!("{session}0"))).await, 403, "an altered session");

    // It survives a restart of the web app (nothing kept in memory).
    app.restart_web_same_port();
    assert_eq!(ops_page(Some(session.clone())).await, 200, "the session after a restart");

    // Sign-out ends it for good, also for a copy of the cookie and after a restart.
    let resp = raw.post(app.url("/ops/logout")).header("cookie", session.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert!(set_cookie(resp.headers(), "darkroom_ops").unwrap().contains("Max-Age=0"));
    assert_eq!(ops_page(Some(session.clone())).await, 403, "a signed-out session");
    app.restart_web_same_port();
    assert_eq!(ops_page(Some(session)).await, 403, "a signed-out session after a restart");

    // Sessions expire (a short lifetime for the test).
    app.env.push(("DARKROOM_OPS_SESSION_TTL".into(), "2".into()));
    app.restart_web_same_port();
    let resp = raw.post(app.url("/ops/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    let signed_in = Instant::now();
    let short = format!("darkroom_ops={}", cookie_value(&set_cookie(resp.headers(), "darkroom_ops").unwrap()));
    assert_eq!(ops_page(Some(short.clone())).await, 200);
    let deadline = signed_in + Duration::from_secs(15);
    while ops_page(Some(short.clone())).await == 200 {
        assert!(Instant::now() < deadline, "the session did not expire");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed_in.elapsed() >= Duration::from_millis(1000), "expired too early: {:?}", signed_in.elapsed());

    // Guessing: a few wrong tokens, then 429 with Retry-After, even for the right token.
    for i in 0..5 {
        let resp = raw.post(app.url("/ops/login")).form(&[("token", format!("wrong-guess-{i}"))]).send().await.unwrap();
        assert_eq!(resp.status(), 403, "wrong token {i}");
        assert!(resp.text().await.unwrap().contains("not the admin token"));
    }
    for token in ["wrong-guess-5", TOKEN] {
        let resp = raw.post(app.url("/ops/login")).form(&[("token", token)]).send().await.unwrap();
        assert_eq!(resp.status(), 429, "{token}");
        let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        assert!(set_cookie(resp.headers(), "darkroom_ops").is_none());
        assert!(resp.text().await.unwrap().contains("Too many wrong tokens"));
    }

    // A short admin token leaves the page off and says why.
    app.env.push(("DARKROOM_ADMIN_TOKEN".into(), "short-token".into()));
    app.restart_web_same_port();
    let resp = raw.get(app.url("/ops")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("must be at least 16"));
    let resp = raw.post(app.url("/ops/login")).form(&[("token", "short-token")]).send().await.unwrap();
    assert_eq!(resp.status(), 404, "no sign-in with a short token");
}

async fn the_aws_backend_needs_a_cookie_secret(kind: Kind) {
    let app = TestApp::spawn(kind, 0).await;
    let stored = app.backend().await.store.head(keys::COOKIE_KEY).await.unwrap();
    match kind {
        // The embedded backend keeps its key in the machine's private data folder.
        Kind::Embedded => assert!(stored.is_some(), "the embedded backend stores its key"),
        Kind::Moto => {
            assert!(stored.is_none(), "no cookie key in the bucket processors and submitters read");
            // Without DARKROOM_COOKIE_SECRET the web app refuses to start and says what to do.
            let out = std::process::Command::new(darkroom_e2e::bin_dir().join("darkroom-web"))
                .env_remove("AWS_ENDPOINT_URL")
                .envs(app.envs().into_iter().filter(|(k, _)| *k != "DARKROOM_COOKIE_SECRET"))
                .env_remove("DARKROOM_COOKIE_SECRET")
                .args(["--bind", "127.0.0.1:0"])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "started without a secret: {stderr}");
            assert!(stderr.contains("DARKROOM_COOKIE_SECRET is not set"), "{stderr}");
            assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
            assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
        }
    }
}

on_both_backends!(
    cross_site_changes_are_refused_and_same_origin_ones_work,
    ops_redrive_from_another_site_is_refused,
    identity_cookies_resist_forgery_and_are_host_prefixed_over_https,
    ops_sign_in_is_post_only_limited_and_sessions_are_signed,
    the_aws_backend_needs_a_cookie_secret,
);
