//! Test harness for Darkroom's end-to-end tests: real `darkroom-web` and `darkroom-processor`
//! processes on port 0, an HTTP client with a cookie jar (like a browser or `curl -c/-b`), on
//! either backend ([`Kind`]): a real S3/SQS-compatible server (moto, see
//! ../shared/LOCAL-AWS.md) or the embedded one (a fresh data folder).
//!
//! Every [`TestApp`] gets its own server or folder and its own bucket and queue names, so tests
//! run in parallel. Children are killed when the app is dropped (also when a test panics).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use darkroom_core::config::{Backend, BackendArgs, BackendKind};
use futures_util::StreamExt;
use serde_json::Value;

pub mod chaos;
pub mod command;
pub mod procfs;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A file from ../shared/corpus.
pub fn corpus(name: &str) -> PathBuf {
    let dir = std::env::var_os("DARKROOM_CORPUS").map(PathBuf::from).unwrap_or_else(|| root().join("../shared/corpus"));
    dir.join(name)
}

/// Build the two binaries once per test process and return their folder. Building here (not
/// trusting whatever is in target/) means a test never runs a stale binary. A release build
/// of the caller (a benchmark) gets release binaries. `DARKROOM_E2E_NO_BUILD=1` skips the
/// build (for a benchmark run right after `cargo build --release --workspace --bins`, on a
/// machine where another cargo may hold the package cache).
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    DIR.get_or_init(|| {
        let _g = LOCK.lock().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let exe = std::env::current_exe().unwrap();
        let release = exe.components().any(|c| c.as_os_str() == "release");
        let mut args = vec!["build", "--workspace", "--bins", "--quiet"];
        if release {
            args.push("--release");
        }
        if std::env::var_os("DARKROOM_E2E_NO_BUILD").is_none_or(|v| v != "1") {
            let status = Command::new(cargo).args(&args).current_dir(root()).status().expect("run cargo build");
            assert!(status.success(), "building darkroom-web and darkroom-processor failed");
        }
        // target/debug/deps/<test> -> target/debug; target/release/<bench> -> target/release
        let profile = if release { "release" } else { "debug" };
        exe.ancestors()
            .find(|d| d.file_name().is_some_and(|n| n == profile))
            .unwrap_or_else(|| exe.parent().and_then(Path::parent).unwrap())
            .to_path_buf()
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running moto server (S3 and SQS on one port).
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        let bin = std::env::var_os("DARKROOM_MOTO")
            .map(PathBuf::from)
            .unwrap_or_else(|| root().join(".venv-aws/bin/moto_server"));
        if !bin.exists() {
            bail!("{} is missing: run scripts/test (it installs moto into .venv-aws)", bin.display());
        }
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("start moto_server")?;
            let mut moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break; // port taken between probe and bind: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(moto);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        bail!("moto_server did not start")
    }

    /// The server's process id (benchmarks read its CPU time and memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Names unique to one test app.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{prefix}-{}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst), nanos % 100_000)
}

/// A child process whose output goes to a log file under target/e2e-logs.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// Send SIGTERM (as docker stop, systemd or Ctrl-C would).
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }
    /// Wait up to `limit` for the process to exit; its exit status, or None if still running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Peak resident memory of the process so far (`VmHWM` in /proc/<pid>/status), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }
    /// Resident memory of the process now (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_else(|e| panic!("read /proc/{}/status: {e}", self.child.id()));
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.child.id()))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// moto: S3 and SQS over HTTP through the AWS SDK.
    Moto,
    /// The embedded default: a folder and an SQLite queue database.
    Embedded,
}

/// A backend for one test: moto server or data folder, removed on drop.
pub struct Site {
    pub kind: Kind,
    pub moto: Option<Moto>,
    pub data_dir: PathBuf,
    pub names: Names,
    pub tag: String,
}

impl Site {
    pub fn new(kind: Kind) -> Site {
        let tag = unique("t");
        let names = Names {
            bucket: tag.to_lowercase(),
            jobs: format!("{tag}-jobs"),
            replies: format!("{tag}-replies"),
            dead_letters: format!("{tag}-dlq"),
        };
        let moto = (kind == Kind::Moto).then(|| Moto::start().expect("start moto"));
        let data_dir = root().join("target/e2e-data").join(&tag);
        Site { kind, moto, data_dir, names, tag }
    }

    /// Backend settings for this site.
    pub fn args(&self, visibility_timeout: u32, max_receives: u32) -> BackendArgs {
        BackendArgs {
            backend: Some(match self.kind {
                Kind::Moto => BackendKind::Aws,
                Kind::Embedded => BackendKind::Embedded,
            }),
            data_dir: self.data_dir.clone(),
            bucket: self.names.bucket.clone(),
            job_queue: self.names.jobs.clone(),
            reply_queue: self.names.replies.clone(),
            dead_letter_queue: self.names.dead_letters.clone(),
            visibility_timeout,
            max_receives,
            s3_path_style: Some(true),
        }
    }

    /// Connect in-process (creating what is missing, as `--init` does).
    pub async fn connect(&self, visibility_timeout: u32, max_receives: u32) -> Backend {
        let args = self.args(visibility_timeout, max_receives);
        match &self.moto {
            Some(m) => {
                let sdk = darkroom_core::aws::local_sdk_config(&m.endpoint).await;
                args.connect_with(&sdk, true).await.expect("connect to moto")
            }
            None => args.connect_embedded().expect("open the embedded backend"),
        }
    }

    /// Environment for a Darkroom process on this site.
    pub fn envs(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DARKROOM_BUCKET", self.names.bucket.clone()),
            ("DARKROOM_JOB_QUEUE", self.names.jobs.clone()),
            ("DARKROOM_REPLY_QUEUE", self.names.replies.clone()),
            ("DARKROOM_DEAD_LETTER_QUEUE", self.names.dead_letters.clone()),
            ("DARKROOM_DATA_DIR", self.data_dir.to_string_lossy().into_owned()),
            ("RUST_LOG", "info".into()),
            ("RUST_BACKTRACE", "1".into()),
        ];
        match &self.moto {
            Some(m) => env.extend([
                ("DARKROOM_BACKEND", "aws".to_string()),
                ("AWS_ENDPOINT_URL", m.endpoint.clone()),
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_DEFAULT_REGION", "us-east-1".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                // The aws backend keeps no cookie key in the bucket: the web app needs one.
                ("DARKROOM_COOKIE_SECRET", format!("e2e-cookie-secret-{}-0123456789abcdef", self.tag)),
            ]),
            None => env.push(("DARKROOM_BACKEND", "embedded".to_string())),
        }
        env
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Settings shared by every process of one app.
#[derive(Clone, Debug)]
pub struct Names {
    pub bucket: String,
    pub jobs: String,
    pub replies: String,
    pub dead_letters: String,
}

pub struct TestApp {
    pub web: Option<Proc>,
    pub base_url: String,
    pub processors: Vec<Proc>,
    /// How many times each processor slot has been (re)started; a restarted processor gets a
    /// new worker id (`worker-{n}.{generation}`), as a new container or process would.
    generations: Vec<u32>,
    pub client: reqwest::Client,
    /// Extra environment for every process this app starts (settings under test).
    pub env: Vec<(String, String)>,
    // Last, so the processes die before their backend goes.
    pub site: Site,
}

pub fn log_dir() -> PathBuf {
    let d = root().join("target/e2e-logs");
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl TestApp {
    /// A backend + `darkroom-web --init` + `processors` processors.
    pub async fn spawn(kind: Kind, processors: usize) -> TestApp {
        Self::spawn_with(kind, true, processors).await
    }

    /// Like [`spawn`](Self::spawn); without the web app the bucket and queues are created
    /// in-process, as `--init` would.
    pub async fn spawn_with(kind: Kind, web: bool, processors: usize) -> TestApp {
        Self::spawn_with_env(kind, web, processors, &[]).await
    }

    /// Like [`spawn_with`](Self::spawn_with), with extra environment for every process.
    pub async fn spawn_with_env(kind: Kind, web: bool, processors: usize, env: &[(&str, &str)]) -> TestApp {
        let mut app = Self::new(kind, env);
        if web {
            app.start_web();
        } else {
            app.backend().await;
        }
        for _ in 0..processors {
            app.start_processor();
        }
        app
    }

    /// A backend and settings, no process started yet (start them with [`start_web`](Self::start_web)
    /// and [`start_processor`](Self::start_processor)).
    pub fn new(kind: Kind, env: &[(&str, &str)]) -> TestApp {
        TestApp {
            site: Site::new(kind),
            web: None,
            base_url: String::new(),
            processors: vec![],
            generations: vec![],
            client: Self::new_client(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    /// A fresh HTTP client with its own cookie jar (another browser).
    pub fn new_client() -> reqwest::Client {
        reqwest::Client::builder().cookie_store(true).build().unwrap()
    }

    pub fn envs(&self) -> Vec<(&'static str, String)> {
        self.site.envs()
    }

    fn command(&self, bin: &str, log_name: &str) -> (Command, PathBuf) {
        let log = log_dir().join(format!("{}-{log_name}.log", self.site.tag));
        let mut cmd = Command::new(bin_dir().join(bin));
        cmd.env_remove("AWS_ENDPOINT_URL")
            .envs(self.envs())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null());
        (cmd, log)
    }

    /// Start (or restart) the web app on a free port and wait for its URL.
    pub fn start_web(&mut self) {
        self.start_web_on("127.0.0.1:0");
    }

    /// Restart the web app (SIGKILL, as a crash) on the port it had, so clients reconnect to
    /// the same URL.
    pub fn restart_web_same_port(&mut self) {
        let bind = self.base_url.trim_start_matches("http://").to_string();
        self.start_web_on(&bind);
    }

    fn start_web_on(&mut self, bind: &str) {
        if let Some(mut old) = self.web.take() {
            old.kill();
        }
        let (proc, url) = self.spawn_web(bind, "web", &[]);
        self.base_url = url;
        self.web = Some(proc);
    }

    /// Another web app replica on this app's store and queues, on a free port (as a second
    /// process behind the same load balancer), with extra environment of its own. The app's
    /// own web app (if any) is untouched; the replica dies with its [`Replica`].
    pub fn start_replica(&self, name: &str, env: &[(&str, &str)]) -> Replica {
        let (proc, base_url) = self.spawn_web("127.0.0.1:0", name, env);
        Replica { proc, base_url }
    }

    fn spawn_web(&self, bind: &str, log_name: &str, env: &[(&str, &str)]) -> (Proc, String) {
        let (mut cmd, log) = self.command("darkroom-web", log_name);
        let mut child = cmd
            .args(["--init", "--bind", bind])
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start darkroom-web");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("darkroom-web listening on ") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
            }
        });
        let url = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            panic!("darkroom-web did not print its URL; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
        });
        (Proc { child, log }, url)
    }

    /// An extra setting of this app, or `default`.
    fn setting(&self, key: &str, default: &str) -> String {
        self.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_else(|| default.to_string())
    }

    /// Restart every processor that has exited; returns how many were restarted.
    pub fn restart_dead_processors(&mut self) -> usize {
        let mut restarted = 0;
        for i in 0..self.processors.len() {
            if !self.processors[i].is_running() {
                self.generations[i] += 1;
                self.processors[i] = self.spawn_processor(i, &[]);
                restarted += 1;
            }
        }
        restarted
    }

    /// Start `bin` (from the build's binaries) with `args` and extra `env` besides this app's
    /// settings; its standard error goes to a log named after `log_name`.
    pub fn start_process(&self, bin: &str, args: &[&str], env: &[(&str, &str)], log_name: &str) -> Proc {
        let (mut cmd, log) = self.command(bin, log_name);
        let child = cmd
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        Proc { child, log }
    }

    pub fn start_processor(&mut self) {
        self.start_processor_with(&[]);
    }

    /// Start one more processor with extra environment of its own.
    pub fn start_processor_with(&mut self, env: &[(&str, &str)]) {
        self.generations.push(0);
        let p = self.spawn_processor(self.processors.len(), env);
        self.processors.push(p);
    }

    /// The worker id processor `n` has now.
    pub fn worker_id(&self, n: usize) -> String {
        match self.generations[n] {
            0 => format!("worker-{n}"),
            g => format!("worker-{n}.{g}"),
        }
    }

    /// Start processor number `n` under its current worker id.
    fn spawn_processor(&self, n: usize, env: &[(&str, &str)]) -> Proc {
        let id = self.worker_id(n);
        let (mut cmd, log) = self.command("darkroom-processor", &id);
        let child = cmd
            .env("DARKROOM_WORKER_ID", &id)
            .env("DARKROOM_CONCURRENCY", self.setting("DARKROOM_CONCURRENCY", "2"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .expect("start darkroom-processor");
        Proc { child, log }
    }

    /// GET /api/jobs/{id} with `client`.
    pub async fn job(&self, client: &reqwest::Client, id: &str) -> Value {
        let resp = client.get(self.url(&format!("/api/jobs/{id}"))).send().await.expect("GET /api/jobs/{id}");
        assert_eq!(resp.status(), 200, "GET /api/jobs/{id}");
        resp.json().await.expect("job JSON")
    }

    /// Poll the job (every 50 ms, up to `limit`) until `pred` holds; returns it then.
    pub async fn wait_for_job(
        &self,
        client: &reqwest::Client,
        id: &str,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.job(client, id).await;
            if pred(&job) {
                return job;
            }
            if Instant::now() >= deadline {
                self.dump_logs();
                panic!("job {id}: not {what} within {limit:?}: {job}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// POST /api/jobs with `files` from the corpus and `recipe` JSON.
    pub async fn upload(&self, client: &reqwest::Client, files: &[&str], recipe: Option<&str>) -> reqwest::Response {
        let mut form = reqwest::multipart::Form::new();
        if let Some(r) = recipe {
            form = form.text("recipe", r.to_string());
        }
        for f in files {
            let bytes = std::fs::read(corpus(f)).unwrap_or_else(|e| panic!("read corpus file {f}: {e}"));
            form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(f.to_string()));
        }
        client.post(self.url("/api/jobs")).multipart(form).send().await.expect("POST /api/jobs")
    }

    /// Follow the job's event stream until a final state; returns every status seen.
    pub async fn follow(&self, client: &reqwest::Client, id: &str) -> Vec<Value> {
        follow_at(client, &self.base_url, id).await
    }

    /// A backend handle on this app's store and queues (for tests that go around the web app).
    pub async fn backend(&self) -> Backend {
        self.site.connect(30, 3).await
    }

    /// Print the logs of every process (on failure it helps to see them).
    pub fn dump_logs(&self) {
        for p in self.web.iter().chain(self.processors.iter()) {
            eprintln!("==== {} ====\n{}", p.log.display(), std::fs::read_to_string(&p.log).unwrap_or_default());
        }
    }
}

/// A second (third, …) web app process on the same backend as a [`TestApp`].
pub struct Replica {
    pub proc: Proc,
    pub base_url: String,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GET /api/jobs/{id} through this replica with `client`.
    pub async fn job(&self, client: &reqwest::Client, id: &str) -> Value {
        let resp = client.get(self.url(&format!("/api/jobs/{id}"))).send().await.expect("GET /api/jobs/{id}");
        assert_eq!(resp.status(), 200, "GET /api/jobs/{id} through {}", self.base_url);
        resp.json().await.expect("job JSON")
    }
}

/// Decode image bytes and return (format, width, height).
pub fn decode(bytes: &[u8]) -> (image::ImageFormat, u32, u32) {
    let format = image::guess_format(bytes).expect("output is a known image format");
    let img = image::load_from_memory_with_format(bytes, format).expect("output decodes");
    (format, img.width(), img.height())
}

/// Follow `GET {base}/api/jobs/{id}/events` until a final state; returns every status seen.
pub async fn follow_at(client: &reqwest::Client, base: &str, id: &str) -> Vec<Value> {
    let resp = client.get(format!("{base}/api/jobs/{id}/events")).send().await.expect("GET events");
    follow_response(resp, id).await
}

/// Read an event-stream response until a final state; returns every status seen.
pub async fn follow_response(resp: reqwest::Response, id: &str) -> Vec<Value> {
    let fut = async {
        let mut seen = Vec::new();
        assert_eq!(resp.status(), 200, "events for {id}");
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut stream = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(chunk) = stream.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.expect("event stream chunk")));
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    let v: Value = serde_json::from_str(data).expect("event data is JSON");
                    let last = matches!(v["state"].as_str(), Some("done" | "failed" | "cancelled"));
                    seen.push(v);
                    if last {
                        return seen;
                    }
                }
            }
        }
        panic!("event stream for {id} ended before a final state: {seen:?}");
    };
    tokio::time::timeout(Duration::from_secs(180), fut)
        .await
        .unwrap_or_else(|_| panic!("job {id} not final within 180 s"))
}

/// Generate one `#[tokio::test]` per backend for each `async fn name(kind: Kind)` listed:
/// `moto::name` and `embedded::name`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Kind::Moto).await })*
        }
        mod embedded {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::Kind::Embedded).await })*
        }
    };
}
