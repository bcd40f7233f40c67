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
    use darkroom_core::message::Reply;
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
