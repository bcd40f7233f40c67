//! The container path, for real: build the image from the `Dockerfile`, run
//! `docker-compose.yml` with three processors, upload through the web container's published
//! port, and break things the way ops people do:
//!
//! 1. the image: at most 200 MB, a non-root user, a health check, every library the binaries
//!    link present (`ldd`), and the engine reporting HEIC, AVIF and the libjpeg-turbo paths;
//! 2. crash: SIGKILL from the host to the main process of the processor that holds a job (as
//!    the OOM killer would): every job ends `done`, the job's timeline shows the lost worker and
//!    another container finishing it, and the crashed container runs again by its restart
//!    policy;
//! 3. an operator's `docker kill`: that container stays down and nothing is lost;
//! 4. scale down to one: the stopped containers drain (their jobs finish on them, exit 0).
//!
//! Needs a Docker engine and the base images: `scripts/test` sets them up first
//! (scripts/container-env, which on a machine without a registry builds local stand-ins).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use darkroom_e2e::command::{ok, run};
use darkroom_e2e::{corpus, root};
use serde_json::Value;

/// Largest image the issue allows.
const MAX_IMAGE_BYTES: u64 = 200 * 1000 * 1000;
/// Seconds a received job stays hidden: short, so a killed worker's job comes back quickly.
const VISIBILITY: u64 = 4;

fn docker(args: &[&str]) -> String {
    ok(Command::new("docker").args(args))
}

/// The compose project under test: its own name, port and token; `down` when dropped.
struct Compose {
    tool: Vec<String>,
    project: String,
    port: u16,
    token: String,
    logs: PathBuf,
}

impl Compose {
    fn new() -> Compose {
        let tool: Vec<String> = match std::env::var("DARKROOM_COMPOSE") {
            Ok(t) => t.split_whitespace().map(String::from).collect(),
            Err(_) if run(Command::new("docker").args(["compose", "version"])).status.success() => {
                vec!["docker".into(), "compose".into()]
            }
            Err(_) => vec!["docker-compose".into()],
        };
        let info = run(Command::new("docker").arg("info"));
        assert!(
            info.status.success(),
            "no Docker engine answers (`docker info` failed): run scripts/container-env first (scripts/test does)\n{}",
            String::from_utf8_lossy(&info.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let logs = darkroom_e2e::log_dir().join("containers");
        std::fs::create_dir_all(&logs).unwrap();
        Compose {
            tool,
            project: format!("darkroomtest{}", std::process::id()),
            port,
            token: format!("test-token-{}", uuid_ish()),
            logs,
        }
    }

    /// Settings go in through an env file, as a user's `.env` does (the test's own, so a
    /// developer's `.env` is left alone).
    fn env_file(&self) -> PathBuf {
        let path = self.logs.join(format!("{}.env", self.project));
        if !path.exists() {
            let text = format!(
                "DARKROOM_ADMIN_TOKEN={}\nDARKROOM_COOKIE_SECRET=containers-test-secret-{}-0123456789abcdef\n\
                 DARKROOM_PUBLISH=127.0.0.1:{}\nDARKROOM_VISIBILITY_TIMEOUT={VISIBILITY}\n\
                 DARKROOM_PROCESSOR_CONCURRENCY=2\n",
                self.token, self.project, self.port
            );
            std::fs::write(&path, text).unwrap();
        }
        path
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.tool[0]);
        c.args(&self.tool[1..])
            .args(["-p", &self.project, "--env-file"])
            .arg(self.env_file())
            .arg("-f")
            .arg(root().join("docker-compose.yml"))
            .args(args)
            .current_dir(root())
            .env_remove("DARKROOM_ADMIN_TOKEN")
            .env_remove("DARKROOM_COOKIE_SECRET")
            .env("COMPOSE_INTERACTIVE_NO_CLI", "1");
        c
    }

    fn compose(&self, args: &[&str]) -> String {
        ok(&mut self.cmd(args))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Container ids of the processor service (running ones unless `all`).
    fn processors(&self, all: bool) -> Vec<String> {
        let mut args = vec!["ps", "-q"];
        if all {
            args.push("-a");
        }
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let mut c = Command::new("docker");
        c.args(&args).args([
            "--filter",
            &filter,
            "--filter",
            "label=com.docker.compose.service=processor",
            "--no-trunc",
        ]);
        ok(&mut c).lines().map(String::from).collect()
    }

    /// Follow every container's log into the test's log folder (for a failure's post-mortem).
    /// `compose logs` can leave out processors that were killed and restarted, so each
    /// processor container's own log (stdout and stderr) is saved too, killed ones included.
    fn save_logs(&self) {
        let out = self.cmd(&["logs", "--no-color", "-t"]).output();
        if let Ok(out) = out {
            let _ = std::fs::write(self.logs.join(format!("{}.log", self.project)), &out.stdout);
        }
        // Not `processors()`: it panics when docker fails, and this runs in `drop`.
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let listed = Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &filter,
                "--filter",
                "label=com.docker.compose.service=processor",
            ])
            .output();
        let ids = listed.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        for id in ids.lines() {
            if let Ok(out) = Command::new("docker").args(["logs", "-t", id]).output() {
                let short = &id[..12.min(id.len())];
                let path = self.logs.join(format!("{}-processor-{short}.log", self.project));
                let _ = std::fs::write(path, [out.stdout, out.stderr].concat());
            }
        }
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        // A passing test saved them before its `down`; a failing one stops here first.
        if std::thread::panicking() {
            self.save_logs();
        }
        let _ = self
            .cmd(&["down", "-v", "--remove-orphans", "-t", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn uuid_ish() -> String {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{t:x}{:x}", std::process::id())
}

fn inspect(container: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, container])
}

/// The container whose hostname starts the worker name (`<hostname>-1.<random>`, hostname =
/// the container id's first 12 characters).
fn container_of(worker: &str, containers: &[String]) -> Option<String> {
    containers.iter().find(|c| c.len() >= 12 && worker.starts_with(&format!("{}-", &c[..12]))).cloned()
}

async fn wait_until<T>(limit: Duration, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "not {what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Big photos with a recipe that takes each processor a second or more, so a job is in flight
/// long enough to be killed in.
const RECIPE: &str = r#"{"outputs":[
 {"name":"web","ops":[{"op":"resize","width":2400,"height":2400},{"op":"sharpen","sigma":1.2}],"format":"jpeg","quality":85},
 {"name":"soft","ops":[{"op":"blur","sigma":8}],"format":"webp","quality":80},
 {"name":"mono","ops":[{"op":"grayscale"},{"op":"contrast","factor":1.3}],"format":"png"}]}"#;
const PHOTOS: [&str; 4] = [
    "L01_painting-colors_6000x4000.jpg",
    "L02_kleiber_6028x3391.jpg",
    "L03_seeding_5312x2988_progressive.jpg",
    "M01_picosdeeuropa_3264x2448.jpg",
];

async fn upload(app: &Compose, client: &reqwest::Client, files: &[&str]) -> Vec<String> {
    let mut form = reqwest::multipart::Form::new().text("recipe", RECIPE.to_string());
    for f in files {
        let bytes = std::fs::read(corpus(f)).unwrap_or_else(|e| panic!("read corpus file {f}: {e}"));
        form = form.part("file", reqwest::multipart::Part::bytes(bytes).file_name(f.to_string()));
    }
    let resp = client.post(app.url("/api/jobs")).multipart(form).send().await.expect("POST /api/jobs");
    assert_eq!(resp.status(), 202, "upload accepted");
    let body: Value = resp.json().await.unwrap();
    body["jobs"].as_array().expect("jobs").iter().map(|j| j["id"].as_str().unwrap().to_string()).collect()
}

async fn job(app: &Compose, client: &reqwest::Client, id: &str) -> Value {
    client.get(app.url(&format!("/api/jobs/{id}"))).send().await.expect("GET job").json().await.expect("job JSON")
}

/// Wait until every job is final; all must be `done`.
async fn all_done(app: &Compose, client: &reqwest::Client, ids: &[String], limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let mut jobs = Vec::new();
        for id in ids {
            jobs.push(job(app, client, id).await);
        }
        if jobs.iter().all(|j| matches!(j["state"].as_str(), Some("done" | "failed"))) {
            for j in &jobs {
                assert_eq!(j["state"], "done", "every job ends done: {j}");
            }
            return jobs;
        }
        assert!(Instant::now() < deadline, "jobs not final within {limit:?}: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A job in `processing` held by a processor of `containers`: (job id, worker, container).
async fn job_in_flight(
    app: &Compose,
    client: &reqwest::Client,
    ids: &[String],
    containers: &[String],
) -> (String, String, String) {
    wait_until(Duration::from_secs(120), "a job processing", async || {
        for id in ids {
            let j = job(app, client, id).await;
            if j["state"] == "processing" {
                let worker = j["worker"].as_str()?.to_string();
                if let Some(c) = container_of(&worker, containers) {
                    return Some((id.clone(), worker, c));
                }
            }
        }
        None
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_scales_survives_kills_and_drains() {
    let app = Compose::new();
    the_image_is_small_stripped_and_complete(&app);
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    up_with_three_processors(&app, &client).await;
    a_killed_processor_s_job_finishes_on_another(&app, &client).await;
    an_operator_s_docker_kill_stays_down(&app, &client).await;
    scaling_down_drains_the_stopped_processors(&app, &client).await;
    app.save_logs();
    app.compose(&["down", "-t", "5"]);
}

/// The image: small, runs as a user, has a healthcheck and every library, binaries stripped.
fn the_image_is_small_stripped_and_complete(app: &Compose) {
    let started = Instant::now();
    app.compose(&["build", "--quiet"]);
    eprintln!("image built in {:.0} s", started.elapsed().as_secs_f64());
    let image = std::env::var("DARKROOM_IMAGE").unwrap_or_else(|_| "darkroom:latest".into());
    let size: u64 = inspect(&image, "{{.Size}}").parse().unwrap();
    eprintln!("image {image}: {:.1} MB", size as f64 / 1e6);
    assert!(size <= MAX_IMAGE_BYTES, "image is {size} bytes, over {MAX_IMAGE_BYTES}");
    let user = inspect(&image, "{{.Config.User}}");
    assert!(!user.is_empty() && !user.starts_with("0") && !user.starts_with("root"), "image runs as {user:?}");
    assert!(inspect(&image, "{{json .Config.Healthcheck}}").contains("darkroom-ctl"), "image has a HEALTHCHECK");
    let cmd: Vec<String> = serde_json::from_str(&inspect(&image, "{{json .Config.Cmd}}")).unwrap();
    assert_eq!(cmd[0], "darkroom-web", "exec-form command (the binary is PID 1 and gets signals)");
    let missing = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        &image,
        "-c",
        "for b in /usr/local/bin/darkroom-*; do ldd \"$b\"; done | grep 'not found' || true",
    ]);
    assert!(missing.is_empty(), "libraries missing in the image:\n{missing}");
    let engine: Value = serde_json::from_str(&docker(&[
        "run",
        "--rm",
        &image,
        "darkroom-processor",
        "--engine-info",
        "--require-complete",
    ]))
    .unwrap();
    eprintln!("engine in the image: {engine}");
    for part in ["heif_input", "avif_output", "turbojpeg", "libjpeg"] {
        assert_eq!(engine["engine"][part], true, "the image's engine has {part}: {engine}");
    }
    let copy = darkroom_e2e::log_dir().join(format!("darkroom-processor-{}", std::process::id()));
    let holder = docker(&["create", &image]);
    docker(&["cp", &format!("{holder}:/usr/local/bin/darkroom-processor"), copy.to_str().unwrap()]);
    docker(&["rm", &holder]);
    let sections = ok(Command::new("readelf").arg("-S").arg(&copy));
    let _ = std::fs::remove_file(&copy);
    assert!(!sections.contains(".symtab") && !sections.contains(".debug_"), "binaries are stripped");
}

/// Up with three processors; the ops page behind the env file's token; restart policy and memory limits.
async fn up_with_three_processors(app: &Compose, client: &reqwest::Client) {
    app.compose(&["up", "-d", "--scale", "processor=3"]);
    wait_until(Duration::from_secs(120), "web app healthy", async || {
        let r = client.get(app.url("/healthz")).send().await.ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let processors = wait_until(Duration::from_secs(120), "three processors ready", async || {
        let p = app.processors(false);
        let ready = p
            .iter()
            .filter(|c| {
                run(Command::new("docker").args(["exec", c, "darkroom-ctl", "health", "http://127.0.0.1:9090/readyz"]))
                    .status
                    .success()
            })
            .count();
        (p.len() == 3 && ready == 3).then_some(p)
    })
    .await;
    // The ops page is on, behind the token from the env file.
    let ops = client.get(app.url("/ops")).send().await.unwrap();
    assert_eq!(ops.status(), 403, "the ops page asks for the token");
    let ops = client.post(app.url("/ops/login")).form(&[("token", &app.token)]).send().await.unwrap();
    assert_eq!(ops.status(), 200, "the token from the env file opens the ops page");
    assert!(ops.text().await.unwrap().contains("Jobs"), "the ops page shows the queues");
    for c in &processors {
        assert_eq!(inspect(c, "{{.HostConfig.RestartPolicy.Name}}"), "unless-stopped");
        assert_ne!(inspect(c, "{{.HostConfig.Memory}}"), "0", "processor has a memory limit");
    }
}

/// Crash: SIGKILL to the main process of the processor holding a job.
/// The killed container comes back within a second or so and competes for the job with the
/// others once its visibility timeout ends; a round in which the restarted container itself
/// wins the job back is a recovery too, but this test wants to see another container finish
/// it, so it crashes again (at most six rounds; each loses with odds of about one in three).
async fn a_killed_processor_s_job_finishes_on_another(app: &Compose, client: &reqwest::Client) {
    let mut seen_another = false;
    for round in 1..=6 {
        let ids = upload(app, client, &PHOTOS[..3]).await;
        let running = app.processors(false);
        let (victim_job, victim_worker, victim) = job_in_flight(app, client, &ids, &running).await;
        let pid = inspect(&victim, "{{.State.Pid}}");
        let restarts_before: u32 = inspect(&victim, "{{.RestartCount}}").parse().unwrap();
        ok(Command::new("kill").args(["-KILL", &pid]));
        eprintln!(
            "round {round}: SIGKILL to pid {pid}: worker {victim_worker} in container {} during job {victim_job}",
            &victim[..12]
        );
        let jobs = all_done(app, client, &ids, Duration::from_secs(240)).await;
        let killed = jobs.iter().find(|j| j["id"] == victim_job.as_str()).unwrap();
        let timeline = killed["timeline"].as_array().unwrap();
        eprintln!("timeline of {victim_job}:");
        for t in timeline {
            eprintln!("  {} {:<12} {:<22} attempt {} {}", t["at"], t["state"], t["worker"], t["attempt"], t["note"]);
        }
        assert!(
            timeline.iter().any(|t| t["note"].as_str().is_some_and(|n| n.starts_with("worker lost"))
                && t["worker"] == victim_worker.as_str()),
            "the timeline shows {victim_worker} lost: {killed}"
        );
        let finisher = killed["worker"].as_str().unwrap();
        assert_ne!(finisher, victim_worker, "a new worker finished the job");
        let finisher_container =
            container_of(finisher, &app.processors(true)).expect("the finisher is one of the processor containers");
        wait_until(Duration::from_secs(60), "the crashed container running again", async || {
            let n: u32 = inspect(&victim, "{{.RestartCount}}").parse().ok()?;
            (n > restarts_before && inspect(&victim, "{{.State.Running}}") == "true").then_some(())
        })
        .await;
        eprintln!(
            "job {victim_job} finished by {finisher} (container {}); container {} restarted by its policy",
            &finisher_container[..12],
            &victim[..12]
        );
        if finisher_container != victim {
            seen_another = true;
            break;
        }
        eprintln!("round {round}: the restarted container took its job back; crashing again");
    }
    assert!(seen_another, "in six crashes, another container never finished the killed job");
    let processors = app.processors(false);
    assert_eq!(processors.len(), 3, "all three processors run again");
}

/// An operator's docker kill: stays down, nothing lost.
async fn an_operator_s_docker_kill_stays_down(app: &Compose, client: &reqwest::Client) {
    let ids = upload(app, client, &PHOTOS).await;
    let running = app.processors(false);
    let (_, stopped_worker, stopped) = job_in_flight(app, client, &ids, &running).await;
    docker(&["kill", &stopped]);
    eprintln!("docker kill {} (worker {stopped_worker})", &stopped[..12]);
    all_done(app, client, &ids, Duration::from_secs(240)).await;
    assert_eq!(inspect(&stopped, "{{.State.Running}}"), "false", "an operator's docker kill stays down");
    assert_eq!(app.processors(false).len(), 2);
}

/// Scale down to one: the stopped containers drain.
async fn scaling_down_drains_the_stopped_processors(app: &Compose, client: &reqwest::Client) {
    app.compose(&["up", "-d", "--scale", "processor=3"]); // start the killed one again: three
    let three = wait_until(Duration::from_secs(120), "three processors running", async || {
        let p = app.processors(false);
        (p.len() == 3).then_some(p)
    })
    .await;
    let batch: Vec<&str> = PHOTOS.iter().chain(PHOTOS.iter()).copied().collect();
    let ids = upload(app, client, &batch).await;
    // Wait until at least two containers hold jobs, so whichever two go, one was busy.
    wait_until(Duration::from_secs(120), "two processors busy", async || {
        let mut busy = std::collections::HashSet::new();
        for id in &ids {
            let j = job(app, client, id).await;
            if j["state"] == "processing" {
                busy.insert(container_of(j["worker"].as_str()?, &three)?);
            }
        }
        (busy.len() >= 2).then_some(())
    })
    .await;
    let mut waiters: Vec<(String, Child)> = three
        .iter()
        .map(|c| {
            let child = Command::new("docker").args(["wait", c]).stdout(Stdio::piped()).spawn().unwrap();
            (c.clone(), child)
        })
        .collect();
    app.compose(&["up", "-d", "--scale", "processor=1"]);
    let left = app.processors(false);
    assert_eq!(left.len(), 1, "one processor left");
    let mut drained = Vec::new();
    for (c, child) in waiters.iter_mut() {
        if left.contains(c) {
            let _ = child.kill();
            continue;
        }
        let out = child.wait_with_output_ref();
        let code = out.trim().to_string();
        assert_eq!(code, "0", "container {} exited {code} after scale-down (drained: 0)", &c[..12]);
        drained.push(c.clone());
    }
    assert_eq!(drained.len(), 2);
    let jobs = all_done(app, client, &ids, Duration::from_secs(240)).await;
    for j in &jobs {
        let lost = j["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["note"].as_str().is_some_and(|n| n.starts_with("worker lost")));
        assert!(!lost, "no job lost a worker when scaling down: {j}");
    }
    let drained_by: usize =
        jobs.iter().filter(|j| j["worker"].as_str().and_then(|w| container_of(w, &drained)).is_some()).count();
    eprintln!(
        "scaled down to 1: containers {} exited 0; {drained_by} of {} jobs finished on them",
        drained.iter().map(|c| &c[..12]).collect::<Vec<_>>().join(", "),
        jobs.len()
    );
    assert!(drained_by > 0, "the stopped containers finished the jobs they held");
}

trait WaitOutput {
    fn wait_with_output_ref(&mut self) -> String;
}

impl WaitOutput for Child {
    fn wait_with_output_ref(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut out) = self.stdout.take() {
            let _ = out.read_to_string(&mut s);
        }
        let _ = self.wait();
        s
    }
}
