//! Browser tests: headless Debian Chromium (driven by playwright-core from Node, see
//! e2e/browser/) against the real system: `darkroom-web` and `darkroom-processor` processes
//! started by the harness, exactly as in the other e2e tests.
//!
//! Each test starts an app, then runs `node e2e/browser/<script>.mjs` with the app's URL in
//! `DARKROOM_URL` and streams the script's output. The script can ask the harness to act on
//! the processes (start one with extra settings, wait for one to exit) by printing a line
//! `@@harness {"cmd":…}` on stdout; the answer comes back as one JSON line on its stdin. So
//! the script waits on events ("worker-0 has exited") instead of sleeping.
//!
//! One backend: the embedded one. The browser tests test the pages, the JavaScript and the
//! web app's HTTP behaviour, which do not depend on the backend (the pipeline, fault and
//! conformance tests already run on both); the embedded backend starts in milliseconds and
//! needs no Python, which keeps these slow tests (a browser + several processes on a 2-core
//! machine) as short as they can be.
//!
//! Screenshots land in target/browser-screenshots/<script>/ (the paths are printed).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use tokio::sync::Mutex;

use darkroom_e2e::{corpus, root, Kind, TestApp};
use serde_json::{json, Value};

/// The admin token the ops page is configured with in these tests.
const ADMIN_TOKEN: &str = "browser-test-admin-token";

/// One browser test at a time: each runs Chromium and several processes on a small machine (an
/// async lock: held across the awaits of the whole test, and released if the test panics).
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

fn browser_dir() -> PathBuf {
    root().join("e2e/browser")
}

/// `npm ci` when node_modules is missing or older than package-lock.json (scripts/test-deps
/// does the same; this keeps `cargo test` working on its own).
fn ensure_node_modules() {
    let dir = browser_dir();
    let stamp = dir.join("node_modules/.darkroom-lock");
    let lock = std::fs::read(dir.join("package-lock.json")).expect("e2e/browser/package-lock.json");
    if std::fs::read(&stamp).ok().as_deref() == Some(&lock[..]) {
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .status()
        .expect("run npm ci (is Node.js installed? scripts/test-deps installs it)");
    assert!(status.success(), "npm ci in e2e/browser failed");
    std::fs::write(&stamp, lock).unwrap();
}

fn out(line: &str) {
    // Straight to the process's stderr, past the test harness's capture: the browser test's
    // progress shows while it runs.
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "{line}");
}

/// Run one browser script against `app`; panics (after dumping the logs) unless it exits 0.
async fn run_script(app: &mut TestApp, script: &str) {
    ensure_node_modules();
    let shots = root().join("target/browser-screenshots").join(script.trim_end_matches(".mjs"));
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    out(&format!("==> browser test {script} against {} (screenshots: {})", app.base_url, shots.display()));
    let mut child = Command::new("node")
        .arg(browser_dir().join(script))
        .current_dir(browser_dir())
        .env("DARKROOM_URL", &app.base_url)
        .env("DARKROOM_SCREENSHOTS", &shots)
        .env("DARKROOM_CORPUS", corpus(""))
        .env("DARKROOM_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node (is Node.js installed? scripts/test-deps installs it)");
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read lines on a thread; act on harness requests here, where the app lives.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = match rx.try_recv() {
            Ok(l) => l,
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
            Err(std::sync::mpsc::TryRecvError::Disconnected) => break,
        };
        match line.strip_prefix("@@harness ") {
            None => out(&line),
            Some(req) => {
                let req: Value = serde_json::from_str(req).expect("harness request is JSON");
                out(&format!("    [harness] {req}"));
                let answer = harness(app, &req).await;
                out(&format!("    [harness] -> {answer}"));
                let _ = writeln!(stdin, "{answer}");
                let _ = stdin.flush();
            }
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    if !status.success() {
        app.dump_logs();
    }
    assert!(status.success(), "browser test {script} failed ({status}); screenshots in {}", shots.display());
    out(&format!("==> browser test {script} passed; screenshots in {}", shots.display()));
}

/// Carry out one request of a browser script.
async fn harness(app: &mut TestApp, req: &Value) -> Value {
    match req["cmd"].as_str().unwrap_or("") {
        // {"cmd":"start-processor","env":{"K":"V"}} -> {"index":n,"worker":"worker-n"}
        "start-processor" => {
            let extra: Vec<(String, String)> = req["env"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            let before = app.env.len();
            app.env.extend(extra);
            app.start_processor();
            app.env.truncate(before);
            let n = app.processors.len() - 1;
            json!({ "index": n, "worker": format!("worker-{n}") })
        }
        // {"cmd":"wait-processor-exit","index":n,"seconds":s} -> {"exited":bool}
        "wait-processor-exit" => {
            let n = req["index"].as_u64().unwrap_or(0) as usize;
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs(req["seconds"].as_u64().unwrap_or(60));
            loop {
                if !app.processors[n].is_running() {
                    break json!({ "exited": true });
                }
                if std::time::Instant::now() > deadline {
                    break json!({ "exited": false });
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
        // {"cmd":"kill-processor","index":n} -> {"killed":true}
        "kill-processor" => {
            let n = req["index"].as_u64().unwrap_or(0) as usize;
            app.processors[n].kill();
            json!({ "killed": true })
        }
        other => json!({ "error": format!("unknown harness command {other:?}") }),
    }
}

async fn app_with(processors: usize, env: &[(&str, &str)]) -> TestApp {
    let mut env = env.to_vec();
    env.push(("DARKROOM_ADMIN_TOKEN", ADMIN_TOKEN));
    TestApp::spawn_with_env(Kind::Embedded, true, processors, &env).await
}

/// Upload page, recipe builder, live gallery, before/after, downloads, errors next to the
/// file, delete and retry, another browser's isolation, the no-JavaScript path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_in_chromium() {
    let _one = ONE_AT_A_TIME.lock().await;
    // Small limits, so the page's own checks can be seen refusing corpus photos.
    let mut app = app_with(2, &[("DARKROOM_MAX_UPLOAD_BYTES", "3000000"), ("DARKROOM_MAX_PIXELS", "10000000")]).await;
    run_script(&mut app, "pages.mjs").await;
}

/// The ops page: admin token, queue depths, workers, and a killed worker's job retried by
/// another worker, live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_page_in_chromium() {
    let _one = ONE_AT_A_TIME.lock().await;
    // No processor at first: the script starts them (one that dies on its job, then a sound one).
    let mut app = app_with(0, &[("DARKROOM_VISIBILITY_TIMEOUT", "3"), ("DARKROOM_MAX_RECEIVES", "3")]).await;
    run_script(&mut app, "ops.mjs").await;
}
