//! Several web app replicas on one store and one set of queues behave as one (issue 15): two
//! `darkroom-web` processes, A (the app's own) and B ([`TestApp::start_replica`]), on both
//! backends. One browser (one cookie jar: cookies are per host, not per port, as behind one
//! load balancer) talks to both.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use darkroom_e2e::{Kind, TestApp};
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::message::StatusMessage;
use serde_json::Value;

const PHOTO: &str = "M03_storm_1920x1280_exif.jpg";
const RECIPE: &str = r#"{"outputs":[
    {"name":"slow","ops":[{"op":"resize","width":800,"height":800}],"format":"jpeg","quality":80},
    {"name":"thumb","ops":[{"op":"resize","width":200,"height":200,"fit":"cover"}],"format":"webp"}]}"#;

/// Upload `n` photos through `base` (the web app at that URL); returns their job ids.
async fn submit(client: &reqwest::Client, base: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < n {
        let mut form = reqwest::multipart::Form::new().text("recipe", RECIPE);
        for _ in 0..(n - ids.len()).min(10) {
            let bytes = std::fs::read(darkroom_e2e::corpus(PHOTO)).unwrap();
            form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(PHOTO));
        }
        let resp = client.post(format!("{base}/api/jobs")).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), 202, "upload through {base}");
        let body: Value = resp.json().await.unwrap();
        ids.extend(body["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()));
    }
    ids
}

/// Every job of this client as `base` lists it, by id.
async fn jobs(client: &reqwest::Client, base: &str) -> HashMap<String, Value> {
    let body: Value = client.get(format!("{base}/api/jobs")).send().await.unwrap().json().await.unwrap();
    body["jobs"].as_array().unwrap().iter().map(|j| (j["id"].as_str().unwrap().to_string(), j.clone())).collect()
}

/// Wait (up to 30 s) until the log at `path` has `line`.
async fn await_log(path: &std::path::Path, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(path).unwrap_or_default().contains(line) {
        assert!(Instant::now() < deadline, "no {line:?} in {} within 30 s", path.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn states(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["state"].as_str().unwrap()).collect()
}

/// (a) A browser uploads through A and follows its jobs live through B to `done`. B keeps
/// what it caches for an hour here, so only change notices can bring it the statuses A
/// consumed from the reply queue (the two share it): without the fan-out B's streams stall.
async fn upload_through_a_follow_through_b(kind: Kind) {
    let env = [
        ("RUST_LOG", "info,darkroom_web=debug"),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
        ("DARKROOM_TEST_STALL_MS", "500"),
    ];
    let mut app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let b = app.start_replica("web-b", &[("DARKROOM_JOB_CACHE_TTL", "3600000")]);
    let client = app.client.clone();
    // A has heard B join (B's `joined` notice) before the upload.
    await_log(&app.web.as_ref().unwrap().log, "another web app replica joined").await;
    let ids = submit(&client, &app.base_url, 6).await;
    // Every stream is open on B (its answer's head has come: B has subscribed and read the
    // queued job) before any processor starts.
    let mut streams = Vec::new();
    for id in &ids {
        streams.push(client.get(b.url(&format!("/api/jobs/{id}/events"))).send().await.unwrap());
    }
    let started = Instant::now();
    app.start_processor();
    app.start_processor();
    let follows: Vec<_> = ids
        .iter()
        .zip(streams)
        .map(|(id, resp)| {
            let id = id.clone();
            tokio::spawn(async move { darkroom_e2e::follow_response(resp, &id).await })
        })
        .collect();
    for (id, follow) in ids.iter().zip(follows) {
        let events = follow.await.unwrap();
        let states = states(&events);
        assert_eq!(states.first(), Some(&"queued"), "job {id} through B: {states:?}");
        assert_eq!(states.last(), Some(&"done"), "job {id} through B: {states:?}");
    }
    eprintln!(
        "{kind:?}: 6 jobs (0.5 s each) uploaded through A, followed live to done through B in {:?}",
        started.elapsed()
    );
    // B lists them done too (its cache was kept fresh by the notices).
    let listed = jobs(&client, &b.base_url).await;
    for id in &ids {
        assert_eq!(listed[id]["state"], "done", "B lists {id}: {}", listed[id]);
    }
    // Both replicas applied statuses (the reply queue is shared, competing consumers).
    let (log_a, log_b) = (app.web.as_ref().unwrap().log_text(), b.proc.log_text());
    eprintln!(
        "statuses applied: A {}, B {}",
        log_a.matches("status applied").count(),
        log_b.matches("status applied").count()
    );
}

/// (b) A batch uploaded through A; A is killed (SIGKILL) while the batch runs; every job
/// reaches `done` as B sees it, also the statuses A had received and never deleted (they
/// come back on the reply queue after its visibility timeout and B applies them).
async fn a_killed_during_a_batch_b_finishes_every_job(kind: Kind) {
    let env = [
        ("DARKROOM_VISIBILITY_TIMEOUT", "3"),
        ("DARKROOM_TEST_STALL_ON_OUTPUT", "slow"),
        ("DARKROOM_TEST_STALL_MS", "400"),
    ];
    let mut app = TestApp::spawn_with_env(kind, true, 2, &env).await;
    let b = app.start_replica("web-b", &[]);
    let client = app.client.clone();
    let ids = submit(&client, &app.base_url, 12).await;
    // Kill A once the batch is under way (some job done, some not).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = jobs(&client, &b.base_url).await;
        let done = ids.iter().filter(|id| all.get(*id).is_some_and(|j| j["state"] == "done")).count();
        if done >= 1 && done < ids.len() {
            eprintln!("{kind:?}: kill -9 A with {done} of {} jobs done", ids.len());
            break;
        }
        assert!(done < ids.len(), "the batch finished before A could be killed; make the jobs slower");
        assert!(Instant::now() < deadline, "no job done within 120 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.web.as_mut().unwrap().kill();
    let killed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let all = jobs(&client, &b.base_url).await;
        let open: Vec<&Value> = ids.iter().filter_map(|id| all.get(id)).filter(|j| j["state"] != "done").collect();
        if open.is_empty() && all.len() >= ids.len() {
            break;
        }
        if Instant::now() >= deadline {
            app.dump_logs();
            eprintln!("==== B ====\n{}", b.proc.log_text());
            panic!("{} of {} jobs not done through B within 180 s: {}", open.len(), ids.len(), open[0]);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("{kind:?}: every job done through B {:?} after A was killed", killed.elapsed());
    // Each job's own page through B says done, with its outputs.
    for id in &ids {
        let job = b.job(&client, id).await;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["outputs"].as_array().unwrap().len(), 2, "{job}");
    }
}

/// (c) Two replicas applying statuses of the same jobs at the same time lose none. Each of 2
/// jobs first gets `processing` of attempt 21; then a burst of `retrying` statuses of attempts
/// 1–20 (late arrivals: each adds exactly one timeline entry in any order) goes on the shared
/// reply queue, and both replicas consume it at once. Every job's timeline must have them all.
/// With plain (unconditional) writes instead, this loses entries on both backends.
async fn two_replicas_applying_statuses_concurrently_lose_none(kind: Kind) {
    const JOBS: usize = 2;
    const LATE: u32 = 20;
    let app = TestApp::spawn_with_env(kind, true, 0, &[]).await;
    let b = app.start_replica("web-b", &[]);
    let client = app.client.clone();
    let ids = submit(&client, &app.base_url, JOBS).await;
    let backend = app.backend().await;
    let status = |id: &str, state: JobState, attempt: u32| StatusMessage {
        job_id: id.to_string(),
        state,
        attempt,
        worker: format!("w{attempt}"),
        at: Utc::now(),
        outputs: vec![],
        error: None,
        note: None,
        traceparent: None,
        preview: None,
    };
    for id in &ids {
        backend.replies.send(&status(id, JobState::Processing, LATE + 1).to_json()).await.unwrap();
    }
    for id in &ids {
        app.wait_for_job(&client, id, Duration::from_secs(30), "processing", |j| j["state"] == "processing").await;
    }
    // The burst: interleaved across jobs, so both replicas' batches hold statuses of every job.
    let mut bodies = Vec::new();
    for attempt in 1..=LATE {
        for id in &ids {
            bodies.push(status(id, JobState::Retrying, attempt).to_json());
        }
    }
    for chunk in bodies.chunks(10) {
        let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
        backend.replies.send_batch(&chunk).await.unwrap();
    }
    // queued, processing (attempt 10), and the 9 late ones.
    let want = LATE as usize + 2;
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            // Through B: what it shows must be the stored record, whoever applied what.
            let job = b.job(&client, id).await;
            let timeline = job["timeline"].as_array().unwrap();
            if timeline.len() == want {
                let mut attempts: Vec<u64> = timeline.iter().map(|t| t["attempt"].as_u64().unwrap()).collect();
                attempts.sort();
                assert_eq!(attempts, (0..=LATE as u64 + 1).collect::<Vec<_>>(), "{job}");
                break;
            }
            assert!(timeline.len() < want, "more entries than statuses: {job}");
            if Instant::now() >= deadline {
                app.dump_logs();
                eprintln!("==== B ====\n{}", b.proc.log_text());
                let reply_counts = backend.replies.counts().await.unwrap();
                panic!(
                    "job {id}: {} of {want} timeline entries after 60 s (reply queue {reply_counts:?}): {job}",
                    timeline.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (log_a, log_b) = (app.web.as_ref().unwrap().log_text(), b.proc.log_text());
    let (applied_a, applied_b) = (log_a.matches("status applied").count(), log_b.matches("status applied").count());
    eprintln!("{kind:?}: statuses applied by A {applied_a}, by B {applied_b}");
    assert_eq!(applied_a + applied_b, JOBS * (want - 1), "every status applied exactly once");
    assert!(applied_a > 0 && applied_b > 0, "both replicas applied statuses (A {applied_a}, B {applied_b})");
}

/// (d) An ops session opened on A works on B, and signing out on B ends it on A. Both ops
/// pages list both workers: each worker posts one presence here (the next is a minute away),
/// which only one replica consumes, so the other lists it only because the presence was
/// passed on as a change notice.
async fn ops_session_opened_on_a_works_on_b(kind: Kind) {
    const TOKEN: &str = "replica-ops-token-0123456789";
    let env = [("DARKROOM_ADMIN_TOKEN", TOKEN), ("DARKROOM_WORKER_HEARTBEAT", "60")];
    let mut app = TestApp::spawn_with_env(kind, true, 0, &env).await;
    let b = app.start_replica("web-b", &[]);
    await_log(&app.web.as_ref().unwrap().log, "another web app replica joined").await;
    app.start_processor();
    app.start_processor();
    let signed_in = |page: &str| page.contains("action=\"/ops/redrive\"");
    // Sign in on A; keep the cookie as a copy too.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_redirects.post(app.url("/ops/login")).form(&[("token", TOKEN)]).send().await.unwrap();
    assert!(resp.status().is_success() || resp.status().is_redirection(), "sign in on A: {}", resp.status());
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("darkroom_ops="))
        .expect("a session cookie");
    let page_with = |url: String| {
        let (client, cookie) = (no_redirects.clone(), cookie.clone());
        async move { client.get(url).header("cookie", cookie).send().await.unwrap().text().await.unwrap() }
    };
    assert!(signed_in(&page_with(app.url("/ops")).await), "signed in on A");
    let page = page_with(b.url("/ops")).await;
    assert!(signed_in(&page), "the session opened on A is accepted by B:\n{page}");
    // Every worker on both pages.
    let deadline = Instant::now() + Duration::from_secs(30);
    for url in [app.url("/ops"), b.url("/ops")] {
        loop {
            let page = page_with(url.clone()).await;
            if (0..2).all(|n| page.contains(&format!("data-worker=\"{}\"", app.worker_id(n)))) {
                break;
            }
            assert!(Instant::now() < deadline, "{url} does not list both workers within 30 s:\n{page}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Sign out on B: the same cookie no longer opens A either.
    let resp = no_redirects.post(b.url("/ops/logout")).header("cookie", cookie.clone()).send().await.unwrap();
    assert!(resp.status().is_success() || resp.status().is_redirection(), "sign out on B: {}", resp.status());
    assert!(!signed_in(&page_with(app.url("/ops")).await), "signed out on B means signed out on A");
    assert!(!signed_in(&page_with(b.url("/ops")).await), "and on B");
}

darkroom_e2e::on_both_backends!(
    upload_through_a_follow_through_b,
    a_killed_during_a_batch_b_finishes_every_job,
    two_replicas_applying_statuses_concurrently_lose_none,
    ops_session_opened_on_a_works_on_b,
);
