//! The whole loop against a real S3/SQS-compatible server and real processes:
//! upload → S3 + SQS job → processor → reply queue → live status → download.

use std::time::Duration;

use darkroom_e2e::{corpus, decode, Kind, TestApp};
use darkroom_protocol::lifecycle::JobState;
use darkroom_protocol::message::{JobMessage, Reply};
use image::ImageFormat;
use serde_json::Value;

fn states(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["state"].as_str().unwrap().to_string()).collect()
}

async fn fetch(client: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    client.get(app.url(path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// An expected output: name, format, width, height.
type Expected = (&'static str, ImageFormat, u32, u32);
/// One request of the test: the files, the recipe, and what each file's job must make.
type Case = (&'static [&'static str], String, Vec<Expected>);

/// Three photos, one preset each request, plus a custom recipe with two outputs.
fn cases() -> Vec<Case> {
    vec![
        (
            &["M03_storm_1920x1280_exif.jpg", "D01_friends_orient6_3088x2056.jpg"],
            r#"{"preset":"thumbnail"}"#.into(),
            vec![("thumbnail", ImageFormat::Jpeg, 400, 267)],
        ),
        (&["S02_chelsea_451x300.png"], r#"{"preset":"grayscale"}"#.into(), vec![("grayscale", ImageFormat::Jpeg, 451, 300)]),
        (
            &["M02_wood_2560x1920_exif.jpg"],
            r#"{"outputs":[
                {"name":"web","ops":[{"op":"resize","width":1600,"height":1600,"fit":"inside"},{"op":"grayscale"}],"format":"jpeg","quality":85},
                {"name":"turned","ops":[{"op":"resize","width":300},{"op":"rotate","degrees":90}],"format":"png"},
                {"name":"card","ops":[{"op":"resize","width":400,"height":400,"fit":"cover","gravity":"attention"},{"op":"sepia"},{"op":"watermark","text":"Darkroom"}],"format":"webp","quality":70}
            ]}"#
            .into(),
            vec![
                ("web", ImageFormat::Jpeg, 1600, 1200),
                ("turned", ImageFormat::Png, 225, 300),
                ("card", ImageFormat::WebP, 400, 400),
            ],
        ),
    ]
}

/// Upload every case; each answer lists one queued job per file. Returns (job id, file, expected outputs).
async fn submit(app: &TestApp, cases: &[Case]) -> Vec<(String, &'static str, Vec<Expected>)> {
    let c = &app.client;
    let mut submitted = Vec::new();
    for (files, recipe, expect) in cases {
        let resp = app.upload(c, files, Some(recipe)).await;
        assert_eq!(resp.status(), 202, "upload {files:?}");
        let body: Value = resp.json().await.unwrap();
        let jobs = body["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), files.len());
        for (job, file) in jobs.iter().zip(files.iter()) {
            assert_eq!(job["state"], "queued");
            assert_eq!(job["filename"], *file);
            assert!(job["links"]["events"].as_str().unwrap().ends_with("/events"));
            submitted.push((job["id"].as_str().unwrap().to_string(), *file, expect.clone()));
        }
    }
    submitted
}

/// Follow one job to done: one attempt, the states in order.
async fn follow_to_done(app: &TestApp, id: &str, file: &str) {
    let events = app.follow(&app.client, id).await;
    let last = events.last().unwrap();
    if last["state"] != "done" {
        app.dump_logs();
    }
    assert_eq!(last["state"], "done", "{file}: {last}");
    let timeline: Vec<_> = last["timeline"].as_array().unwrap().iter().map(|t| t["state"].as_str().unwrap()).collect();
    assert_eq!(timeline, vec!["queued", "processing", "done"], "{file}");
    assert!(last["worker"].as_str().unwrap().starts_with("worker-"), "{last}");
    assert_eq!(last["attempts"], 1);
    assert!(states(&events).iter().all(|s| ["queued", "processing", "done"].contains(&s.as_str())));
}

/// Download every output of a done job and check its type, size and pixels; then the original.
async fn check_outputs(app: &TestApp, id: &str, file: &str, expect: &[Expected]) {
    let c = &app.client;
    let job: Value = fetch(c, app, &format!("/api/jobs/{id}")).await.json().await.unwrap();
    let outputs = job["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), expect.len(), "{file}");
    for (out, (name, format, w, h)) in outputs.iter().zip(expect) {
        assert_eq!(out["name"], *name);
        // D01 is a portrait once auto-oriented.
        let (w, h) = if file.starts_with("D01") { (266, 400) } else { (*w, *h) };
        assert_eq!(
            (out["width"].as_u64().unwrap(), out["height"].as_u64().unwrap()),
            (w as u64, h as u64),
            "{file} {name}"
        );
        let resp = fetch(c, app, out["url"].as_str().unwrap()).await;
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert_eq!(ct, format.to_mime_type(), "{file} {name}");
        let bytes = resp.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, out["bytes"].as_u64().unwrap());
        assert_eq!(decode(&bytes), (*format, w, h), "{file} {name}");
    }
    // The original comes back byte for byte, with its type.
    let resp = fetch(c, app, &format!("/api/jobs/{id}/original")).await;
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("image/"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), std::fs::read(corpus(file)).unwrap().as_slice());
}

/// Upload, wait for done, download every output and check it.
async fn presets_and_custom_recipes_reach_done_with_valid_outputs(kind: Kind) {
    let app = TestApp::spawn(kind, 2).await;
    let c = &app.client;

    let health = fetch(c, &app, "/healthz").await;
    assert_eq!(health.status(), 200);

    let submitted = submit(&app, &cases()).await;
    for (id, file, expect) in &submitted {
        follow_to_done(&app, id, file).await;
        check_outputs(&app, id, file, expect).await;
    }

    // The list has every job, newest first.
    let list: Value = fetch(c, &app, "/api/jobs").await.json().await.unwrap();
    let ids: Vec<_> = list["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap().to_string()).collect();
    let mut expected: Vec<_> = submitted.iter().map(|s| s.0.clone()).collect();
    expected.reverse();
    assert_eq!(ids, expected);
}

/// A job sent straight to the queue, as docs/protocol.md shows with the AWS CLI.
async fn job_submitted_straight_to_the_queue_is_processed(kind: Kind) {
    // No web app: it would consume the replies; here the test reads them, as an outside tool would.
    let app = TestApp::spawn_with(kind, false, 2).await;
    let backend = app.backend().await;

    let body = r#"{"version":1,"type":"job","job_id":"cli-job-1","original_key":"originals/cli-job-1","outputs":[{"name":"small","ops":[{"op":"resize","width":320}],"format":"png"}]}"#;
    // The documented message parses as a job.
    let parsed = JobMessage::from_json(body).expect("documented job message parses");
    assert_eq!(parsed.outputs[0].name, "small");
    let photo = corpus("S01_rocket_640x427.jpg");
    match app.site.moto.as_ref() {
        Some(moto) => {
            // Exactly the commands of docs/protocol.md.
            let aws = darkroom_e2e::root().join(".venv-aws/bin/aws");
            let run = |args: &[&str]| {
                let out = std::process::Command::new(&aws)
                    .args(["--endpoint-url", &moto.endpoint])
                    .args(args)
                    .envs(app.envs())
                    .output()
                    .unwrap_or_else(|e| panic!("run {}: {e} (scripts/test installs the AWS CLI)", aws.display()));
                assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8(out.stdout).unwrap()
            };
            let bucket_key = format!("s3://{}/originals/cli-job-1", app.site.names.bucket);
            run(&["s3", "cp", photo.to_str().unwrap(), &bucket_key]);
            let queue_url = run(&[
                "sqs",
                "get-queue-url",
                "--queue-name",
                &app.site.names.jobs,
                "--query",
                "QueueUrl",
                "--output",
                "text",
            ]);
            run(&["sqs", "send-message", "--queue-url", queue_url.trim(), "--message-body", body]);
        }
        None => {
            // The embedded backend has no CLI: the same object and message through its store and queue.
            backend
                .store
                .put("originals/cli-job-1", std::fs::read(&photo).unwrap().into(), "image/jpeg")
                .await
                .unwrap();
            backend.jobs.send(body).await.unwrap();
        }
    }

    // Wait for the worker's final status on the reply queue (long poll: returns on arrival).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    let done = loop {
        assert!(tokio::time::Instant::now() < deadline, "no final status within 120 s; saw {seen:?}");
        let msgs = backend.replies.receive(10, Duration::from_secs(20)).await.unwrap();
        let mut fin = None;
        for m in msgs {
            let reply = Reply::from_json(&m.body).expect("replies are status or presence messages");
            backend.replies.delete(&m.receipt).await.unwrap();
            let Reply::Status(s) = reply else { continue };
            seen.push(s.state);
            if s.state.is_final() {
                fin = Some(s);
            }
        }
        if let Some(s) = fin {
            break s;
        }
    };
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(done.job_id, "cli-job-1");
    assert_eq!(done.attempt, 1);
    assert!(done.worker.starts_with("worker-"), "{done:?}");
    assert_eq!(done.outputs[0].key, "outputs/cli-job-1/small.png");
    let bytes = backend.store.get("outputs/cli-job-1/small.png").await.unwrap();
    assert_eq!(decode(&bytes), (ImageFormat::Png, 320, 214));
    // The job message goes from the queue once the final status is out. The worker posts the
    // status first and deletes the message after (a crash in between redelivers, and the
    // redelivery re-announces), so the delete may land a moment after the status is read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let counts = backend.jobs.counts().await.unwrap();
        if (counts.visible, counts.in_flight) == (0, 0) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the job message is still queued: {counts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hostile files and bad requests get clear errors; nothing crashes; good work still flows.
async fn bad_input_gets_clear_errors_and_nothing_breaks(kind: Kind) {
    let mut app = TestApp::spawn(kind, 2).await;
    let c = &app.client;
    let thumb = Some(r#"{"preset":"thumbnail"}"#);

    let cases = [
        ("X02_text_named.jpg", 415, "not_an_image"),
        ("X03_empty.jpg", 400, "empty_file"),
        ("X04_bomb_20000x20000.png", 422, "too_many_pixels"),
    ];
    for (file, status, code) in cases {
        let resp = app.upload(c, &[file], thumb).await;
        assert_eq!(resp.status(), status, "{file}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{file}: {body}");
        assert_eq!(body["error"]["filename"], file);
        assert!(body["error"]["message"].as_str().unwrap().len() > 20, "{body}");
    }

    // Recipe problems name the field.
    let resp = app.upload(c, &["S01_rocket_640x427.jpg"], None).await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["error"]["code"].as_str(), body["error"]["field"].as_str()),
        (Some("missing_recipe"), Some("recipe"))
    );

    let resp = app
        .upload(c, &["S01_rocket_640x427.jpg"], Some(r#"{"outputs":[{"name":"x","ops":[{"op":"sparkle"}]}]}"#))
        .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_op");
    assert_eq!(body["error"]["field"], "outputs[0].ops[0].op");
    assert!(body["error"]["message"].as_str().unwrap().contains("sparkle"));

    let resp = app.upload(c, &[], thumb).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "missing_file");

    // A mixed batch: the good file is queued, the bad one is reported next to its name.
    let resp = app.upload(c, &["S01_rocket_640x427.jpg", "X02_text_named.jpg"], thumb).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(body["rejected"][0]["filename"], "X02_text_named.jpg");
    assert_eq!(body["rejected"][0]["error"]["code"], "not_an_image");
    let good = body["jobs"][0]["id"].as_str().unwrap().to_string();

    // A truncated JPEG passes the header check, then fails in the worker with a reason.
    let resp = app.upload(c, &["X01_truncated_half.jpg"], thumb).await;
    assert_eq!(resp.status(), 202);
    let truncated = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();
    let last = app.follow(c, &truncated).await.pop().unwrap();
    assert_eq!(last["state"], "failed", "{last}");
    assert_eq!(last["error"]["code"], "corrupt_image");
    assert!(last["error"]["message"].as_str().unwrap().contains("cut off"), "{last}");
    assert_eq!(last["attempts"], 1, "permanent failures are not retried");

    // A message on the job queue that is not ours does not crash a worker.
    let backend = app.backend().await;
    backend.jobs.send("hello, this is not a Darkroom job").await.unwrap();

    let last = app.follow(c, &good).await.pop().unwrap();
    assert_eq!(last["state"], "done", "{last}");

    // After all that, one more job still goes through, and every process is alive.
    let resp = app.upload(c, &["S03_camera_512x512_gray.png"], thumb).await;
    let id = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.follow(c, &id).await.pop().unwrap()["state"], "done");
    assert!(app.web.as_mut().unwrap().is_running(), "web app died");
    for p in app.processors.iter_mut() {
        assert!(p.is_running(), "a processor died: {}", std::fs::read_to_string(&p.log).unwrap_or_default());
    }
}

/// Jobs belong to the browser that made them, and survive a reload and a web app restart.
async fn jobs_are_private_and_survive_a_restart(kind: Kind) {
    let mut app = TestApp::spawn(kind, 1).await;
    let alice = TestApp::new_client();
    let bob = TestApp::new_client();

    let resp = app.upload(&alice, &["S01_rocket_640x427.jpg"], Some(r#"{"preset":"avatar"}"#)).await;
    assert_eq!(resp.status(), 202);
    let set_cookie = resp.headers().get("set-cookie").expect("identity cookie").to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    let id = resp.json::<Value>().await.unwrap()["jobs"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.follow(&alice, &id).await.pop().unwrap()["state"], "done");

    for path in [
        format!("/api/jobs/{id}"),
        format!("/api/jobs/{id}/original"),
        format!("/api/jobs/{id}/outputs/avatar"),
        format!("/api/jobs/{id}/events"),
    ] {
        assert_eq!(fetch(&bob, &app, &path).await.status(), 404, "bob must not see {path}");
    }
    let bobs: Value = fetch(&bob, &app, "/api/jobs").await.json().await.unwrap();
    assert_eq!(bobs["jobs"].as_array().unwrap().len(), 0);

    // A forged cookie is a stranger, not Alice.
    let forged = reqwest::Client::new();
    let resp =
        forged.get(app.url(&format!("/api/jobs/{id}"))).header("cookie", "darkroom_id=anything").send().await.unwrap();
    assert_eq!(resp.status(), 404);

    app.start_web();
    let list: Value = fetch(&alice, &app, "/api/jobs").await.json().await.unwrap();
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{list}");
    assert_eq!(jobs[0]["id"], id.as_str());
    assert_eq!(jobs[0]["state"], "done");
    let bytes = fetch(&alice, &app, jobs[0]["outputs"][0]["url"].as_str().unwrap()).await.bytes().await.unwrap();
    assert_eq!(decode(&bytes), (ImageFormat::Jpeg, 256, 256));

    // The pages render the job for its owner, without JavaScript.
    let html = fetch(&alice, &app, "/").await.text().await.unwrap();
    assert!(html.contains("S01_rocket_640x427.jpg") && html.contains("state-done"), "{html}");
    let html = fetch(&alice, &app, &format!("/jobs/{id}")).await.text().await.unwrap();
    assert!(html.contains(&format!("/api/jobs/{id}/outputs/avatar")), "{html}");
}

darkroom_e2e::on_both_backends!(
    presets_and_custom_recipes_reach_done_with_valid_outputs,
    job_submitted_straight_to_the_queue_is_processed,
    bad_input_gets_clear_errors_and_nothing_breaks,
    jobs_are_private_and_survive_a_restart,
);
