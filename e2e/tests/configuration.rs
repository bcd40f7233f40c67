//! Misconfiguration is loud (issue 13): what a process says at start about the settings it
//! was given.

use std::process::{Command, Stdio};
use std::time::Duration;

use darkroom_e2e::{bin_dir, root, unique};

/// Start `darkroom-processor` with `backend` (or none) and no AWS settings, wait until it is
/// ready, and return what it logged.
async fn processor_log(backend: Option<&str>) -> String {
    let dir = root().join("target/e2e-data").join(unique("config"));
    let log = root().join("target/e2e-logs").join(format!("{}.log", unique("config")));
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mut cmd = Command::new(bin_dir().join("darkroom-processor"));
    for (k, _) in std::env::vars() {
        if k.starts_with("DARKROOM_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    if let Some(b) = backend {
        cmd.env("DARKROOM_BACKEND", b);
    }
    let out = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .env("DARKROOM_DATA_DIR", &dir)
        .env("DARKROOM_CONCURRENCY", "1")
        .env("RUST_LOG", "info")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("processor ready") {
            break text;
        }
        assert!(tokio::time::Instant::now() < deadline, "the processor never got ready:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

#[tokio::test]
async fn the_embedded_backend_by_default_is_said_as_a_warning() {
    let chosen = processor_log(None).await;
    assert!(
        chosen.contains("WARN") && chosen.contains("using the embedded backend because neither DARKROOM_BACKEND"),
        "no warning when the embedded backend was picked by default:\n{chosen}"
    );
    let asked = processor_log(Some("embedded")).await;
    assert!(!asked.contains("using the embedded backend because"), "a warning though it was asked for:\n{asked}");
}

#[tokio::test]
async fn json_logs_carry_the_job_on_every_line_of_it() {
    use darkroom_protocol::message::Reply;
    let app = darkroom_e2e::TestApp::spawn_with_env(
        darkroom_e2e::Kind::Embedded,
        false,
        1,
        &[("DARKROOM_LOG_FORMAT", "json")],
    )
    .await;
    let backend = app.site.connect(30, 3).await;
    let photo = std::fs::read(darkroom_e2e::corpus("S01_rocket_640x427.jpg")).unwrap();
    backend.store.put("originals/json-log-1", photo.into(), "image/jpeg").await.unwrap();
    backend
        .jobs
        .send(r#"{"version":1,"type":"job","job_id":"json-log-1","original_key":"originals/json-log-1","outputs":[{"name":"t","ops":[{"op":"resize","width":100}]}]}"#)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    'wait: loop {
        assert!(tokio::time::Instant::now() < deadline, "the job never finished");
        for m in backend.replies.receive(10, Duration::from_secs(1)).await.unwrap() {
            backend.replies.delete(&m.receipt).await.unwrap();
            // Presence messages of the processor share the reply queue: skip them.
            let Reply::Status(status) = Reply::from_json(&m.body).unwrap() else { continue };
            if status.state.is_final() {
                break 'wait;
            }
        }
    }
    let log = app.processors[0].log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["fields"]["message"] == "processor ready"), "{log}");
    let done = lines.iter().find(|l| l["fields"]["message"] == "job done").unwrap_or_else(|| panic!("{log}"));
    let job = done["spans"].as_array().unwrap().iter().find(|s| s["name"] == "job").expect("the job's span");
    assert_eq!(job["job_id"], "json-log-1", "{done}");
    assert_eq!(job["attempt"], 1, "{done}");
    assert_eq!(job["worker"], app.worker_id(0), "{done}");
}

/// The JSON lines of a log, each parsed (a line that is not JSON fails the test).
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The span named `name` a JSON log line was written in, if any.
fn span<'a>(line: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    line["spans"].as_array()?.iter().find(|s| s["name"] == name)
}

/// Wait (up to 30 s) until some line of the log of `proc` satisfies `pred`; that line.
async fn logged(
    proc: &darkroom_e2e::Proc,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = proc.log_text();
        let lines = json_lines(&log);
        if let Some(line) = lines.iter().find(|l| pred(l)) {
            return (line.clone(), lines);
        }
        assert!(tokio::time::Instant::now() < deadline, "never logged: {what}\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_trace_id_follows_an_upload_from_the_web_app_to_the_processor_and_back() {
    let app = darkroom_e2e::TestApp::spawn_with_env(
        darkroom_e2e::Kind::Embedded,
        true,
        1,
        &[("DARKROOM_LOG_FORMAT", "json")],
    )
    .await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let request_id = "e2e-upload-7";
    let photo = std::fs::read(darkroom_e2e::corpus("S01_rocket_640x427.jpg")).unwrap();
    let form = reqwest::multipart::Form::new()
        .text("recipe", r#"{"outputs":[{"name":"t","ops":[{"op":"resize","width":100}]}]}"#)
        .part("file", reqwest::multipart::Part::bytes(photo).file_name("rocket.jpg"));
    let resp = app
        .client
        .post(app.url("/api/jobs"))
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .header("x-request-id", request_id)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.headers().get("x-request-id").map(|v| v.to_str().unwrap()), Some(request_id));
    let body: serde_json::Value = resp.json().await.unwrap();
    let id = body["jobs"][0]["id"].as_str().unwrap().to_string();
    app.wait_for_job(&app.client, &id, Duration::from_secs(60), "done", |j| j["state"] == "done").await;

    // The web app: the upload's lines carry the request id and the trace id…
    let web = app.web.as_ref().unwrap();
    let (queued, _) = logged(web, "the upload's `job queued` line", |l| {
        l["fields"]["message"] == "job queued" && l["fields"]["job_id"] == id.as_str()
    })
    .await;
    let request = span(&queued, "request").unwrap_or_else(|| panic!("no request span: {queued}"));
    assert_eq!(request["request_id"], request_id, "{queued}");
    assert_eq!(request["trace_id"], trace_id, "{queued}");
    let (access, _) = logged(web, "the upload's access line", |l| {
        l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("POST /api/jobs 202"))
    })
    .await;
    assert_eq!(span(&access, "request").map(|s| &s["request_id"]), Some(&request_id.into()), "{access}");
    // … and so does the `done` status the processor sent back, once applied.
    let (applied, _) = logged(web, "the applied `done` status", |l| {
        l["fields"]["message"] == "status applied"
            && l["fields"]["job_id"] == id.as_str()
            && l["fields"]["state"] == "done"
    })
    .await;
    assert_eq!(span(&applied, "status").map(|s| &s["trace_id"]), Some(&trace_id.into()), "{applied}");
    // A request without headers gets an id of its own and a trace of its own.
    let other = app.client.get(app.url("/api/jobs")).send().await.unwrap();
    let other_id = other.headers().get("x-request-id").expect("a generated request id").to_str().unwrap();
    assert!(!other_id.is_empty() && other_id != request_id, "{other_id}");
    let (other_line, _) = logged(web, "the other request's access line", |l| {
        span(l, "request").is_some_and(|s| s["request_id"] == other_id)
    })
    .await;
    let other_trace = span(&other_line, "request").unwrap()["trace_id"].as_str().unwrap().to_string();
    assert!(other_trace.len() == 32 && other_trace != trace_id, "{other_line}");
    // An error body names the request id, for a bug report.
    let missing =
        app.client.get(app.url("/api/jobs/no-such-job")).header("x-request-id", "e2e-missing-1").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let error: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(error["error"]["request_id"], "e2e-missing-1", "{error}");

    // The processor: every line of the job is in the same trace, and its receipt says how long
    // the job waited in the queue.
    let (received, lines) = logged(&app.processors[0], "the job's `job received` line", |l| {
        l["fields"]["message"] == "job received" && span(l, "job").is_some_and(|s| s["job_id"] == id.as_str())
    })
    .await;
    assert!(received["fields"]["queue_wait_ms"].is_u64(), "no queue wait on {received}");
    let job_lines: Vec<_> =
        lines.iter().filter(|l| span(l, "job").is_some_and(|s| s["job_id"] == id.as_str())).collect();
    assert!(job_lines.iter().any(|l| l["fields"]["message"] == "job done"), "{job_lines:?}");
    for line in job_lines {
        assert_eq!(span(line, "job").unwrap()["trace_id"], trace_id, "{line}");
    }
}
