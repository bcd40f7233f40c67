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
